"""Registrations (60 in the short form, thousands in the long one) while workers, the relay, RabbitMQ and
database connections are killed at random and the mail server refuses a third of the messages: once everything
has drained, nothing is lost or doubled.

The short form runs in the suite. The long form is the same test, bigger (3,000 registrations over ten
minutes): `MICE_FAULTS_LONG=1 scripts/test tests/faults/test_chaos.py -s`. MICE_FAULTS_REGISTRATIONS and
MICE_FAULTS_SECONDS set other sizes; MICE_FAULTS_SEED replays a run's schedule of faults (the seed is printed).
"""

from __future__ import annotations

import collections
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import psycopg2
import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from analytics.selectors import event_figures_list
from invoicing.models import CreditNote, Invoice, Refund
from mice.deadletters import dead_letter_replay
from mice.models import DeadLetter, OutboxMessage
from notifications.models import EmailLog
from registrations.models import Registration
from tests.broker import broker_answers, broker_stopped, rabbitmqctl
from tests.cluster import NODES, Cluster
from tests.factories import make_event
from tests.faults.invariants import Expected, saga_invariants
from tests.faults.test_database_outages import post
from tests.notifications import smtp_sink
from tests.processes import ROOT, Process, free_port, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]

LONG = os.environ.get("MICE_FAULTS_LONG") == "1"
REGISTRATIONS = int(os.environ.get("MICE_FAULTS_REGISTRATIONS", "3000" if LONG else "60"))
STORM_SECONDS = float(os.environ.get("MICE_FAULTS_SECONDS", "600" if LONG else "30"))
SEED = int(os.environ.get("MICE_FAULTS_SEED", str(random.SystemRandom().randrange(10**6))))
# One in ten: free; the rest paid, with Stripe's test tokens (tok_flaky fails twice, then succeeds).
TOKENS = ["tok_visa"] * 5 + ["tok_chargeDeclined"] * 2 + ["tok_flaky"] * 2 + [""]
FAULTS = ("worker child", "worker", "relay", "broker stop", "broker kill", "database")
# After each kind has struck once: a RabbitMQ kill costs a long restart, so it is not drawn again.
LATER_FAULTS = ("worker child", "worker child", "worker", "relay", "broker stop", "database")


def token_of(i: int) -> str:
    return TOKENS[i % len(TOKENS)]


class Mail:
    """The SMTP server, its own process, refusing a third of the messages (451, try again later)."""

    def __init__(self, system, out: Path) -> None:
        self.port = free_port()
        self.out = out
        argv = [sys.executable, "-m", "tests.notifications.smtp_sink", str(self.port), str(out)]
        self.process = system.start("smtp", argv, MICE_TEST_SMTP_FAIL_RATE="0.33")
        self.process.wait_for_log("listening")

    def env(self) -> dict[str, str]:
        return smtp_sink.client_env(self.port)

    def copies(self) -> collections.Counter[tuple[str, str]]:
        """How many times each (Message-ID, recipient) was accepted."""
        return collections.Counter((m["message_id"], r) for m in smtp_sink.received(self.out) for r in m["rcpt_tos"])


class MainNode:
    """The machine's RabbitMQ node, which the suite uses: stopped, or killed, and always started again."""

    def stop_for(self, seconds: float) -> None:
        with broker_stopped():
            time.sleep(seconds)

    def kill(self) -> None:
        status = json.loads(rabbitmqctl("status", "--formatter", "json"))
        try:
            os.kill(int(status["pid"]), 9)
            wait_until(lambda: not broker_answers(), timeout=30, what="RabbitMQ gone")
        finally:
            ensure_services()


class ClusterNodes:
    """The local three-node cluster (scripts/rabbitmq-cluster): one node at a time stopped or killed."""

    def __init__(self, cluster: Cluster, rng: random.Random) -> None:
        self.cluster, self.rng = cluster, rng

    def stop_for(self, seconds: float) -> None:
        node = self.rng.choice(NODES)
        self.cluster.ctl("stop_app", node=node)
        try:
            time.sleep(seconds)
        finally:
            self.cluster.ctl("start_app", node=node)

    def kill(self) -> None:
        node = self.rng.choice(NODES)
        self.cluster.kill_node(node)
        try:
            time.sleep(self.rng.uniform(5, 15))
        finally:
            self.cluster.restart_node(node)


class Storm(threading.Thread):
    """One fault after another, at random, each undone before the next; every kind at least once."""

    def __init__(
        self,
        system,
        broker: MainNode | ClusterNodes,
        *,
        workers: list[Process],
        relays: list[Process],
        worker_env: dict[str, str],
    ) -> None:
        super().__init__(daemon=True)
        self.system, self.broker, self.workers, self.relays = system, broker, workers, relays
        self.worker_env = worker_env
        self.rng = random.Random(SEED + 1)
        self.stopping = threading.Event()
        self.done: list[tuple[float, str]] = []
        self.error: BaseException | None = None
        settings = connection.settings_dict
        self.database = settings["NAME"]
        self.dsn = {"host": settings["HOST"] or "127.0.0.1", "port": settings["PORT"] or 5432, "user": settings["USER"]}
        connection.ensure_connection()
        self.own_backend = connection.connection.info.backend_pid  # the test's own connection: left alone

    def run(self) -> None:
        schedule = list(FAULTS)
        self.rng.shuffle(schedule)
        started = time.monotonic()
        try:
            # Until told to stop, and in any case until every kind of fault has struck once.
            while not self.stopping.wait(self.rng.uniform(1.5, 4.0)) or schedule:
                fault = schedule.pop(0) if schedule else self.rng.choice(LATER_FAULTS)
                getattr(self, "_" + fault.replace(" ", "_"))()
                self.done.append((round(time.monotonic() - started, 1), fault))
        except BaseException as error:  # noqa: BLE001 - reported by the test, which fails on it
            self.error = error

    def _worker_child(self) -> None:
        worker = self.rng.choice(self.workers)
        children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
        if children:
            os.kill(int(self.rng.choice(children)), 9)

    def _worker(self) -> None:
        victim = self.rng.choice(self.workers)
        victim.kill()  # the main process and its pool: SIGKILL
        self.workers[self.workers.index(victim)] = self.system.worker(concurrency=2, **self.worker_env)

    def _relay(self) -> None:
        victim = self.rng.choice(self.relays)
        victim.kill()
        self.relays[self.relays.index(victim)] = self.system.relay()

    def _broker_stop(self) -> None:
        self.broker.stop_for(self.rng.uniform(2, 6))

    def _broker_kill(self) -> None:
        self.broker.kill()

    def _database(self) -> None:
        killer = psycopg2.connect(dbname="postgres", **self.dsn)
        try:
            killer.autocommit = True
            with killer.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid NOT IN (pg_backend_pid(), %s)",
                    [self.database, self.own_backend],
                )
        finally:
            killer.close()


def ensure_services() -> None:
    """Start RabbitMQ (and PostgreSQL) again if they do not answer, as the test command does."""
    subprocess.run(
        ["bash", "-c", "source scripts/services.sh && ensure_postgres && ensure_rabbitmq"],
        cwd=ROOT,
        check=True,
        timeout=300,
    )


def register(base_url: str, payload: dict, deadline: float) -> int:
    """A careful client: the same Idempotency-Key until the registration is acknowledged."""
    key = str(uuid.uuid4())
    while True:
        try:
            status = post(base_url, payload, key)
            if status < 500 and status != 429:
                return status
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{payload['email']} not acknowledged in time")
        time.sleep(0.5)


def drained(paid_event, free_event) -> bool:
    registrations = Registration.objects.filter(event__in=[paid_event, free_event])
    return (
        not registrations.filter(status="pending").exists()
        and not OutboxMessage.objects.filter(sent_at__isnull=True, available_at__lte=timezone.now()).exists()
        and not EmailLog.objects.exclude(status="sent").exists()
        and EmailLog.objects.count() >= 2 * registrations.count()
        and Invoice.objects.count() >= registrations.filter(status="confirmed", event=paid_event).count()
        and not DeadLetter.objects.filter(status="new").exists()
    )


def test_registrations_under_a_storm_of_faults_are_neither_lost_nor_doubled(system, tmp_path):
    storm_of_faults(system, MainNode(), tmp_path, relays=1)


@pytest.mark.long
@pytest.mark.cluster
def test_on_a_three_node_cluster_a_storm_with_node_crashes_loses_and_doubles_nothing(cluster, cluster_system, tmp_path):
    storm_of_faults(cluster_system, ClusterNodes(cluster, random.Random(SEED)), tmp_path, relays=2)


def storm_of_faults(system, broker: MainNode | ClusterNodes, tmp_path: Path, *, relays: int) -> None:
    print(f"\nfaults seed {SEED}: {REGISTRATIONS} registrations, storm of {STORM_SECONDS:.0f} s")
    # given every process of the system, and a mail server that refuses a third of the messages
    paid = make_event(capacity=REGISTRATIONS, payment_deadline_seconds=6 * 3600)
    free = make_event(capacity=REGISTRATIONS, price=Decimal("0"))
    mail = Mail(system, tmp_path / "smtp.jsonl")
    # An e-mail send cut short by a killed worker is sent again once its lease expires: seconds here rather
    # than the default 5 minutes.
    worker_env = {**mail.env(), "MICE_EMAIL_SEND_LEASE": "10"}
    base_url = system.web()
    workers = [system.worker(concurrency=2, **worker_env) for _ in range(2)]
    relay_processes = [system.relay(MICE_RELAY_CONCURRENCY="1") for _ in range(relays)]
    system.recorder()

    # when attendees register while faults strike
    storm = Storm(system, broker, workers=workers, relays=relay_processes, worker_env=worker_env)
    storm.start()
    started = time.monotonic()
    pace = STORM_SECONDS * 0.8 / REGISTRATIONS  # registrations spread over most of the storm

    def attendee(i: int) -> int:
        time.sleep(max(0.0, started + i * pace - time.monotonic()))
        token = token_of(i)
        payload = {
            "event": (free if not token else paid).slug,
            "first_name": "Attendee",
            "last_name": f"Number {i}",
            "email": f"attendee{i}@example.com",
            **({"payment_token": token} if token else {}),
        }
        return register(base_url, payload, deadline=started + STORM_SECONDS + 600)

    try:
        with ThreadPoolExecutor(max_workers=8) as clients:
            answers = list(clients.map(attendee, range(REGISTRATIONS)))
        storm.stopping.wait(max(0.0, STORM_SECONDS - (time.monotonic() - started)))
    finally:
        storm.stopping.set()
        storm.join(300)
        ensure_services()
    assert storm.error is None, f"a fault could not be made or undone: {storm.error!r}"
    print("faults:", collections.Counter(fault for _, fault in storm.done), storm.done)
    assert set(FAULTS) <= {fault for _, fault in storm.done}, "every kind of fault struck at least once"
    assert collections.Counter(answers) == {202: REGISTRATIONS}

    # then, once everything has drained (dead letters, if any, replayed as staff would)
    for process in [*storm.workers, *storm.relays]:
        assert process.alive(), process.log()[-3000:]
    wait_until(lambda: drained(paid, free) or _replay_dead_letters(), timeout=600, interval=1, what="drained")
    print(f"drained {time.monotonic() - started:.0f} s after the first registration")
    # A process running a handler killed between the mail server's acceptance and the commit of "sent" (a
    # window of milliseconds) sends that e-mail again under the same Message-ID: each such copy needs a pool
    # child killed, or a worker (with its 2 children). A worker cut off from the broker lets its sends finish.
    kills = collections.Counter(fault for _, fault in storm.done)
    interruptions = kills["worker child"] + 2 * kills["worker"]
    report = verify(paid, free, mail, interruptions=interruptions)
    print("after the storm:", json.dumps(report, indent=1))


def _replay_dead_letters() -> bool:
    waiting = list(DeadLetter.objects.filter(status="new"))
    if waiting:
        staff, _ = User.objects.get_or_create(username="chaos-staff", defaults={"is_staff": True})
        print(f"replaying {len(waiting)} dead letters:", [(d.handler, d.exception_type) for d in waiting])
        for dead_letter in waiting:
            dead_letter_replay(dead_letter=dead_letter, user=staff)
    return False


def verify(paid, free, mail: Mail, *, interruptions: int) -> dict:
    registrations = {r.email: r for r in Registration.objects.filter(event__in=[paid, free])}
    assert len(registrations) == REGISTRATIONS  # every registration is there

    # each ended as its token dictates, with one charge, one invoice and one e-mail of each kind, or none
    expected = []
    for i in range(REGISTRATIONS):
        token = token_of(i)
        status = "cancelled" if token == "tok_chargeDeclined" else "confirmed"
        paid_for = status == "confirmed" and token != ""
        expected.append(Expected(registrations[f"attendee{i}@example.com"], status, paid=paid_for))
    e_mails: dict[str, list[str]] = collections.defaultdict(list)
    for (message_id, recipient), n in mail.copies().items():
        e_mails[recipient] += [message_id.strip("<>").split(".", 1)[0]] * n
    checked = saga_invariants(expected, e_mails, extra_copies=interruptions)
    assert Refund.objects.count() == 0 and CreditNote.objects.count() == 0  # nothing refunded
    invoices = list(Invoice.objects.all())

    # the dashboard's figures equal the database's truth
    (dashboard,) = [f for f in event_figures_list() if f.slug == paid.slug]
    truth = collections.Counter(r.status for r in registrations.values() if r.event_id == paid.pk)
    assert (dashboard.received, dashboard.confirmed, dashboard.cancelled, dashboard.pending) == (
        sum(truth.values()),
        truth["confirmed"],
        truth["cancelled"],
        0,
    )
    assert [(m.currency, m.gross) for m in dashboard.revenue] == [("EUR", sum(i.gross for i in invoices))]

    # every dead letter replayed and done
    dead_letters = collections.Counter(DeadLetter.objects.values_list("status", flat=True))
    assert set(dead_letters) <= {"replayed"}
    doubled = {f"{message_id} to {recipient}": n for (message_id, recipient), n in mail.copies().items() if n > 1}
    return {**checked, "which e-mails, and their copies": doubled, "dead letters": dict(dead_letters)}
