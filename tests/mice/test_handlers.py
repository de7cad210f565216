"""Handlers under failure, against the real broker: retries held by RabbitMQ, dead letters, crashes, poison."""

import re
import threading
import time

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from kombu import Connection

from mice.models import DeadLetter, DeadLetterAction, HandlerFailure, InboxEntry, OutboxMessage
from mice.outbox import emit
from mice.topology import maybe_declare_all
from tests.broker import queue_depth
from tests.probe.models import Effect, Switch
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_transient_failure_retries_with_growing_delays_held_by_the_broker_then_succeeds_once(system, broker_url):
    system.worker()
    system.relay()
    seen: dict[str, int] = {"tests.probe.flaky.retry.500ms": 0, "tests.probe.flaky.retry.1000ms": 0}
    done = threading.Event()

    def watch_retry_queues():
        while not done.is_set():
            for name in seen:
                seen[name] = max(seen[name], queue_depth(broker_url, name) or 0)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch_retry_queues)
    watcher.start()
    try:
        with transaction.atomic():
            envelope = emit("probe.flaked", subject="s", data={"failures": 2})
        wait_until(lambda: Effect.objects.filter(event_id=envelope.id, handler="probe.flaky").exists(), timeout=30)
    finally:
        done.set()
        watcher.join()

    failures = list(HandlerFailure.objects.filter(event_id=envelope.id).order_by("attempt"))
    assert [(f.attempt, f.outcome) for f in failures] == [(1, "retrying"), (2, "retrying")]
    succeeded_at = Effect.objects.get(event_id=envelope.id).created_at
    # The delays grow (0.5 s, then 1 s) and each waited in the broker's retry queue, not in the worker.
    assert (failures[1].created_at - failures[0].created_at).total_seconds() >= 0.45
    assert (succeeded_at - failures[1].created_at).total_seconds() >= 0.95
    assert seen == {"tests.probe.flaky.retry.500ms": 1, "tests.probe.flaky.retry.1000ms": 1}
    assert InboxEntry.objects.filter(event_id=envelope.id).count() == 1
    time.sleep(1)
    assert Effect.objects.filter(event_id=envelope.id, handler="probe.flaky").count() == 1


def test_a_non_atomic_handler_keeps_what_it_committed_before_failing_and_is_skipped_once_it_succeeded(system):
    system.worker()
    system.relay()
    with transaction.atomic():
        envelope = emit("probe.stepped", subject="s", data={"failures": 2})
    wait_until(lambda: Effect.objects.filter(event_id=envelope.id, handler="probe.stepped").exists(), timeout=30)

    # Each attempt's step committed on its own: an atomic handler's would have rolled back with its failure.
    assert Effect.objects.filter(event_id=envelope.id, handler="probe.stepped.before").count() == 3
    assert [f.outcome for f in HandlerFailure.objects.filter(event_id=envelope.id).order_by("attempt")] == [
        "retrying",
        "retrying",
    ]
    assert InboxEntry.objects.filter(event_id=envelope.id, handler="tests.probe.stepped").count() == 1

    # A redelivery after success is skipped by the inbox row written when the handler returned.
    row = OutboxMessage.objects.get(event_id=envelope.id)
    OutboxMessage.objects.filter(pk=row.pk).update(sent_at=None)
    wait_until(lambda: OutboxMessage.objects.get(pk=row.pk).sent_at is not None)
    skipped = re.compile(rf"event_id={envelope.id} .*handler=tests.probe.stepped .*outcome=duplicate")
    wait_until(lambda: skipped.search(system.dump_logs()), what="the handler skipping the redelivery")
    assert Effect.objects.filter(event_id=envelope.id).count() == 4


def test_a_handler_that_always_fails_is_dead_lettered_with_its_exception_and_a_replay_after_the_fix_runs_it_once(
    system, settings, broker_url
):
    system.worker()
    system.relay()
    system.recorder()
    with transaction.atomic():
        envelope = emit("probe.broke", subject="reg-1", data={})

    wait_until(lambda: DeadLetter.objects.filter(event_id=envelope.id).exists(), timeout=30, what="a dead letter")
    dead = DeadLetter.objects.get(event_id=envelope.id)
    assert dead.handler == dead.queue == "tests.probe.always_fails"
    assert dead.reason == "rejected"
    assert dead.attempts == 3  # the policy's attempts, counted across Celery's separate retry messages
    assert dead.exception_type == "tests.probe.handlers.FlakyError"
    assert "always_fails" in dead.traceback and "FlakyError" in dead.traceback
    assert dead.x_death[0]["queue"] == "tests.probe.always_fails"
    assert dead.event_type == "probe.broke" and dead.correlation_id == envelope.correlationid
    assert dead.body[0][0]["id"] == envelope.id
    assert Effect.objects.filter(event_id=envelope.id).count() == 0

    # when the bug is fixed and an operator replays it from the admin
    Switch.objects.create(name="fixed", on=True)
    operator = User.objects.create_user("ops", password="pw", is_staff=True)
    operator.user_permissions.add(
        Permission.objects.get(codename="replay_deadletter"), Permission.objects.get(codename="view_deadletter")
    )
    client = Client()
    client.force_login(operator)
    response = client.post(
        reverse("admin:mice_deadletter_changelist"), {"action": "replay_selected", "_selected_action": [dead.pk]}
    )
    assert response.status_code == 302

    # then it runs once, in the handler that failed only
    wait_until(lambda: Effect.objects.filter(event_id=envelope.id).exists(), timeout=30, what="the replay handled")
    time.sleep(1)
    assert Effect.objects.filter(event_id=envelope.id).count() == 1
    dead.refresh_from_db()
    assert dead.status == DeadLetter.Status.REPLAYED
    action = DeadLetterAction.objects.get(dead_letter=dead)
    assert (action.action, action.user) == ("replayed", operator)


def test_a_bug_is_not_retried_but_dead_lettered_at_once(system):
    system.worker()
    system.relay()
    system.recorder()
    with transaction.atomic():
        envelope = emit("probe.broke", subject="s", data={"kind": "bug"})

    wait_until(lambda: DeadLetter.objects.filter(event_id=envelope.id).exists(), timeout=30)
    dead = DeadLetter.objects.get(event_id=envelope.id)
    assert dead.attempts == 1
    assert dead.exception_type == "builtins.ValueError"
    assert [f.outcome for f in HandlerFailure.objects.filter(event_id=envelope.id)] == ["dead-lettered"]


def handler_transaction_open() -> bool:
    """A worker's transaction holds the inbox row while its handler sleeps: another session sees it open."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND state = 'idle in transaction' AND query LIKE %s",
            [f"INSERT INTO {InboxEntry._meta.db_table} %"],
        )
        return cursor.fetchone()[0] > 0


def test_a_worker_killed_mid_handler_processes_the_event_exactly_once(system):
    worker = system.worker()
    system.relay()
    with transaction.atomic():
        envelope = emit("probe.slept", subject="s", data={"seconds": 3})
    wait_until(handler_transaction_open, what="the handler running, its transaction open")
    time.sleep(0.5)  # inside the handler's sleep

    worker.kill()  # SIGKILL, worker and pool together
    system.worker()

    wait_until(lambda: Effect.objects.filter(event_id=envelope.id).exists(), timeout=40, what="the redelivery handled")
    time.sleep(1)
    assert Effect.objects.filter(event_id=envelope.id).count() == 1
    assert InboxEntry.objects.filter(event_id=envelope.id).count() == 1


def test_a_message_that_kills_its_worker_every_time_is_dead_lettered_and_innocent_messages_are_processed(system):
    worker = system.worker(concurrency=2)
    system.relay()
    system.recorder()
    with transaction.atomic():
        poison = emit("probe.crashed", subject="poison", data={})
        innocents = [emit("probe.pinged", subject=f"ok{i}", data={"n": i}) for i in range(5)]

    wait_until(lambda: DeadLetter.objects.filter(event_id=poison.id).exists(), timeout=90, what="poison dead-lettered")
    dead = DeadLetter.objects.get(event_id=poison.id)
    assert dead.reason == "delivery_limit"
    assert dead.exception_type == "WorkerLost"
    wait_until(lambda: Effect.objects.filter(event_id__in=[e.id for e in innocents]).count() == 10, timeout=30)
    assert worker.alive()


@pytest.fixture
def changed_queue(broker_url):
    """tests.probe.slow redeclared with other arguments, as an older deployment might have left it; restored after."""
    with Connection(broker_url) as conn:
        channel = conn.channel()
        channel.queue_delete("tests.probe.slow")
        channel.queue_declare(
            "tests.probe.slow",
            durable=True,
            auto_delete=False,
            arguments={"x-queue-type": "quorum", "x-delivery-limit": 7},
        )
        yield "tests.probe.slow"
        conn.channel().queue_delete("tests.probe.slow")
        assert maybe_declare_all(conn) == []


def test_a_queue_whose_arguments_changed_does_not_crash_the_worker(system, changed_queue):
    worker = system.worker()
    system.relay()
    with transaction.atomic():
        envelope = emit("probe.pinged", subject="s", data={})

    wait_until(lambda: Effect.objects.filter(event_id=envelope.id).count() == 2, what="other handlers still served")
    assert worker.alive()
    assert f"mice_topology --recreate {changed_queue}" in worker.log()


@pytest.mark.django_db(transaction=True)
def test_a_retry_that_cannot_be_parked_leaves_the_message_with_the_broker(system, broker_url):
    # given a worker that already parked one retry (so its connection has declared the retry queue)
    system.worker(concurrency=1)
    system.relay()
    with transaction.atomic():
        first = emit("probe.flaked", subject="first", data={"failures": 1})
    wait_until(lambda: Effect.objects.filter(event_id=first.id).exists(), timeout=30, what="the first event handled")
    # when the retry queue is deleted (by hand, in the management UI) and another event fails once
    with Connection(broker_url) as connection:
        connection.channel().queue_delete("tests.probe.flaky.retry.500ms")
    with transaction.atomic():
        second = emit("probe.flaked", subject="second", data={"failures": 1})
    # then its message was not acknowledged into nowhere: the broker still had it, and it was handled
    wait_until(
        lambda: Effect.objects.filter(event_id=second.id).exists(),
        timeout=30,
        what="the event handled although its retry could not be stored",
    )
    assert HandlerFailure.objects.filter(event_id=second.id, outcome="requeued").count() == 1
