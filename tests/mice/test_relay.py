"""The relay against real PostgreSQL and RabbitMQ: concurrency, late commits, crashes, unroutable messages."""

import contextlib
import datetime as dt
import re
import subprocess
import sys
import threading
import time

import psycopg2
import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone
from kombu import Connection

from mice.models import OutboxMessage
from mice.outbox import emit, outbox_purge
from tests.broker import black_hole_proxy, queue_depth
from tests.probe.models import Effect
from tests.processes import ROOT, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def unsent():
    return OutboxMessage.objects.filter(sent_at__isnull=True).count()


def test_two_relays_on_10000_events_publish_each_once(system, broker_url):
    # given a backlog of 10,000 committed events with one handler, and no worker consuming
    with transaction.atomic():
        for i in range(10_000):
            emit("probe.slept", subject=f"s{i}", data={"seconds": 0})
    # when two relays drain it at once
    first, second = system.relay(), system.relay()
    wait_until(lambda: unsent() == 0, timeout=120, what="every row sent")
    # then the queue holds each event once, and both relays took part
    wait_until(lambda: queue_depth(broker_url, "tests.probe.slow") == 10_000, timeout=10, what="10,000 messages")
    assert "relayed batch" in first.log() and "relayed batch" in second.log()
    assert first.terminate() == 0 and second.terminate() == 0
    assert queue_depth(broker_url, "tests.probe.slow") == 10_000


def test_a_transaction_that_commits_late_behind_higher_ids_is_still_published(system):
    system.worker()
    system.relay()
    inserted, release = threading.Event(), threading.Event()
    late = {}

    def slow_transaction():
        try:
            with transaction.atomic():
                late["envelope"] = emit("probe.pinged", subject="late", data={})
                inserted.set()
                release.wait(30)
        finally:
            connection.close()

    thread = threading.Thread(target=slow_transaction)
    thread.start()
    inserted.wait(10)
    with transaction.atomic():
        early = emit("probe.pinged", subject="early", data={})
    wait_until(lambda: Effect.objects.filter(event_id=early.id).count() == 2, what="the early event handled")

    release.set()
    thread.join(10)

    wait_until(lambda: Effect.objects.filter(event_id=late["envelope"].id).count() == 2, what="the late event handled")
    late_row = OutboxMessage.objects.get(event_id=late["envelope"].id)
    assert late_row.id < OutboxMessage.objects.get(event_id=early.id).id


@contextlib.contextmanager
def commits_marking_rows_sent_held(database_url):
    """Hold any transaction that marks outbox rows sent at its COMMIT, until the block ends.

    A deferred constraint trigger runs at commit time and waits for an advisory lock held here: the
    relay publishes, gets the broker's confirms, and then hangs exactly between them and its commit.
    """
    table = OutboxMessage._meta.db_table
    holder = psycopg2.connect(database_url)
    holder.autocommit = True
    try:
        with holder.cursor() as cursor:
            cursor.execute(
                "CREATE OR REPLACE FUNCTION test_wait_at_commit() RETURNS trigger AS $$ "
                "BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN NULL; END; $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                f"CREATE CONSTRAINT TRIGGER test_wait_at_commit AFTER UPDATE ON {table} "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.sent_at IS NOT NULL) "
                "EXECUTE FUNCTION test_wait_at_commit()"
            )
            cursor.execute("SELECT pg_advisory_lock(4242)")
        yield
    finally:
        with holder.cursor() as cursor:
            cursor.execute(f"DROP TRIGGER IF EXISTS test_wait_at_commit ON {table}")
        holder.close()  # releases the advisory lock


def test_relay_killed_between_broker_confirm_and_its_commit_the_redelivery_is_deduplicated(system, database_url):
    worker = system.worker()
    with transaction.atomic():
        envelope = emit("probe.slept", subject="s", data={"seconds": 0})
    with commits_marking_rows_sent_held(database_url):
        relay = system.relay()
        wait_until(lambda: Effect.objects.filter(event_id=envelope.id).exists(), what="the handler ran once")
        relay.kill()  # confirmed by the broker and handled, but never committed as sent
    assert OutboxMessage.objects.get(event_id=envelope.id).sent_at is None

    system.relay()

    wait_until(lambda: unsent() == 0, what="the row published again and marked sent")
    wait_until(lambda: f"event_id={envelope.id}" in worker.log() and "outcome=duplicate" in worker.log())
    assert Effect.objects.filter(event_id=envelope.id).count() == 1


def test_a_duplicate_delivery_with_the_same_event_id_runs_the_handler_once(system):
    worker = system.worker()
    system.relay()
    with transaction.atomic():
        envelope = emit("probe.slept", subject="s", data={"seconds": 0})
    wait_until(lambda: Effect.objects.filter(event_id=envelope.id).exists())

    OutboxMessage.objects.filter(event_id=envelope.id).update(sent_at=None)  # published a second time

    wait_until(lambda: "outcome=duplicate" in worker.log(), what="the duplicate acknowledged and skipped")
    assert Effect.objects.filter(event_id=envelope.id).count() == 1


def test_an_unroutable_publish_stays_pending_until_its_queue_exists(system, broker_url, settings):
    relay = system.relay()
    relay.wait_for_log("relay connected")
    with Connection(broker_url) as conn:
        conn.channel().queue_delete("tests.probe.slow")
    with transaction.atomic():
        envelope = emit("probe.slept", subject="s", data={"seconds": 0})

    relay.wait_for_log("kept pending")
    row = OutboxMessage.objects.get(event_id=envelope.id)
    assert row.sent_at is None
    assert row.attempts >= 1
    assert "unroutable" in row.last_error and "NO_ROUTE" in row.last_error

    settings.CELERY_BROKER_URL = broker_url
    call_command("mice_topology")

    wait_until(lambda: unsent() == 0, timeout=30, what="the held-back row published once the queue exists")
    assert queue_depth(broker_url, "tests.probe.slow") == 1


def test_the_relay_is_woken_by_a_commit_not_by_polling(system):
    relay = system.relay(MICE_RELAY_POLL_INTERVAL="60")
    relay.wait_for_log("relay connected")
    time.sleep(0.5)  # the relay is now blocked waiting, with a minute until its next poll
    with transaction.atomic():
        emit("probe.slept", subject="s", data={"seconds": 0})

    wait_until(lambda: unsent() == 0, timeout=5, what="the row published within seconds, well before the poll")


def batch_sizes(relay_log: str) -> list[int]:
    return [int(m) for m in re.findall(r"relayed batch\b.*?\brows=(\d+)", relay_log)]


def test_a_busy_relay_gathers_a_stream_of_commits_into_one_batch_and_a_lone_event_waits_for_nothing(system):
    # given two relay loops that, busy, claim at most once per 1.5 s between them (a long linger, to see it)
    relay = system.relay(MICE_RELAY_LINGER_MS="1500", MICE_RELAY_CONCURRENCY="2", MICE_RELAY_POLL_INTERVAL="60")
    relay.wait_for_log("relay connected")
    time.sleep(3.5)  # a quiet spell: every turn the loops took while starting has passed

    # when one event commits after the quiet spell
    with transaction.atomic():
        lone = emit("probe.slept", subject="lone", data={"seconds": 0})
    # then it is relayed at once, not a linger later
    wait_until(lambda: unsent() == 0, timeout=10, what="the lone event published")
    row = OutboxMessage.objects.get(event_id=lone.id)
    assert (row.sent_at - row.created_at).total_seconds() < 1.0

    # when 20 events commit one by one right after it, while the relay is busy
    for i in range(20):
        with transaction.atomic():
            emit("probe.slept", subject=f"stream-{i}", data={"seconds": 0})
    wait_until(lambda: unsent() == 0, timeout=15, what="the stream published")
    # then one claim took them all: one transaction, one publish and one wait for confirms, not twenty
    assert batch_sizes(relay.log()) == [1, 20]
    assert relay.terminate() == 0


def test_the_relay_stops_cleanly_on_sigterm(system):
    relay = system.relay()
    relay.wait_for_log("relay connected")

    assert relay.terminate() == 0
    assert "relay stopped" in relay.log()


def test_sent_rows_are_purged_after_the_retention_and_pending_rows_never_are():
    with transaction.atomic():
        old_sent, recent_sent, old_pending = (emit("probe.slept", subject=str(i), data={}) for i in range(3))
    long_ago = timezone.now() - dt.timedelta(days=30)
    OutboxMessage.objects.filter(event_id=old_sent.id).update(sent_at=long_ago)
    OutboxMessage.objects.filter(event_id=recent_sent.id).update(sent_at=timezone.now())
    OutboxMessage.objects.filter(event_id=old_pending.id).update(created_at=long_ago)

    purged = outbox_purge(retention=dt.timedelta(days=7))

    assert purged == 1
    assert {str(e) for e in OutboxMessage.objects.values_list("event_id", flat=True)} == {
        recent_sent.id,
        old_pending.id,
    }


def test_a_single_relay_works_on_the_sqlite_default(system, tmp_path, broker_url):
    sqlite_url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    env = {**system.env, "DATABASE_URL": sqlite_url}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, cwd=ROOT, check=True)
    emit_one = (
        "import django; django.setup()\n"
        "from django.db import transaction\nfrom mice.outbox import emit\n"
        "with transaction.atomic(): emit('probe.slept', subject='sqlite', data={'seconds': 0})\n"
    )
    subprocess.run([sys.executable, "-c", emit_one], env=env, cwd=ROOT, check=True)

    relay = system.start("relay", [sys.executable, "manage.py", "outbox_relay"], DATABASE_URL=sqlite_url)

    wait_until(lambda: queue_depth(broker_url, "tests.probe.slow") == 1, timeout=20, what="the event published")
    assert relay.terminate() == 0


def unlocked_unsent(database_url):
    """Unsent rows no relay holds right now (a claim in progress locks its rows until it commits)."""
    table = OutboxMessage._meta.db_table
    with contextlib.closing(psycopg2.connect(database_url)) as probe, probe.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM (SELECT id FROM {table} WHERE sent_at IS NULL FOR UPDATE SKIP LOCKED) s")
        return cursor.fetchone()[0]


def a_full_window_of_messages():
    """500 rows of an event with two handlers: a default batch making exactly the 1,000-message window."""
    with transaction.atomic():
        for i in range(500):
            emit("probe.pinged", subject=f"s{i}", data={"n": i})


def test_a_relay_whose_broker_stops_answering_gives_its_rows_back(system, broker_url, database_url):
    with black_hole_proxy() as proxy:
        # given a relay whose broker connection goes silent (confirms stop arriving, nothing is refused)
        stuck = system.relay(
            CELERY_BROKER_URL=proxy.url(broker_url), MICE_RELAY_CONFIRM_TIMEOUT="3", MICE_RELAY_CONCURRENCY="1"
        )
        stuck.wait_for_log("relay connected")
        proxy.swallow()
        # when it claims a batch that fills its window of unconfirmed messages
        a_full_window_of_messages()
        wait_until(lambda: unlocked_unsent(database_url) == 0, what="the stuck relay holding the whole batch")
        # then it lets go after its confirm timeout, and a healthy relay publishes every row
        system.relay(MICE_RELAY_CONCURRENCY="1")
        wait_until(lambda: unsent() == 0, timeout=60, what="the batch published by the healthy relay")
        assert "publisher confirms did not arrive" in stuck.log()


def test_a_relay_waiting_for_confirms_stops_on_sigterm_and_marks_nothing_sent(system, broker_url, database_url):
    with black_hole_proxy() as proxy:
        relay = system.relay(
            CELERY_BROKER_URL=proxy.url(broker_url), MICE_RELAY_CONFIRM_TIMEOUT="600", MICE_RELAY_CONCURRENCY="1"
        )
        relay.wait_for_log("relay connected")
        proxy.swallow()
        a_full_window_of_messages()
        wait_until(lambda: unlocked_unsent(database_url) == 0, what="the relay waiting on its batch's confirms")

        assert relay.terminate(timeout=15) == 0  # it stopped by itself: terminate() kills (-9) after 15 s
        assert "relay stopped" in relay.log()
        assert unsent() == 500 == unlocked_unsent(database_url)  # nothing unconfirmed was marked sent


def test_an_idle_relay_notices_a_dead_broker_connection_by_its_heartbeats(system, broker_url):
    with black_hole_proxy() as proxy:
        relay = system.relay(
            CELERY_BROKER_URL=proxy.url(broker_url), MICE_BROKER_HEARTBEAT="2", MICE_RELAY_CONCURRENCY="1"
        )
        relay.wait_for_log("relay connected")
        proxy.swallow()  # a half-open connection: nothing is closed, nothing answers

        relay.wait_for_log("broker unavailable", timeout=30)


def test_on_sqlite_registering_never_waits_for_the_relay_to_hear_from_the_broker(system, tmp_path, broker_url):
    sqlite_url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    env = {**system.env, "DATABASE_URL": sqlite_url}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, cwd=ROOT, check=True)
    emit_one = (
        "import django; django.setup()\n"
        "from django.db import transaction\nfrom mice.outbox import emit\n"
        "with transaction.atomic(): emit('probe.slept', subject='sqlite', data={'seconds': 0})\n"
    )
    with black_hole_proxy() as proxy:
        relay = system.start(
            "relay",
            [sys.executable, "manage.py", "outbox_relay"],
            DATABASE_URL=sqlite_url,
            CELERY_BROKER_URL=proxy.url(broker_url),
            MICE_RELAY_CONFIRM_TIMEOUT="120",
        )
        relay.wait_for_log("relay connected")
        proxy.swallow()
        # given the relay publishing an event and waiting for a confirm that does not come
        subprocess.run([sys.executable, "-c", emit_one], env=env, cwd=ROOT, check=True)
        time.sleep(2)  # the relay polls SQLite every 0.5 s: it has now read the row and is waiting
        # when an attendee's transaction writes meanwhile, it commits (SQLite would say "database is locked")
        writer = subprocess.run(
            [sys.executable, "-c", emit_one], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert writer.returncode == 0, writer.stderr[-2000:]
        assert relay.terminate() == 0
