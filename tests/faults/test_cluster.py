"""Beyond one machine: two relays and two workers on a three-node RabbitMQ cluster, one node killed mid-run.

Quorum queues keep a replica of every message on each node: a node's crash moves every process's connection
to another node and nothing is lost or done twice. Runs on the local cluster of scripts/rabbitmq-cluster
(ports 5681-5683), never on the main node; part of the long form of the suite (MICE_FAULTS_LONG=1).
"""

import collections
import itertools
import time
import uuid

import pytest
from django.db import transaction

from mice.models import DeadLetter
from mice.outbox import emit
from mice.topology import all_queues
from registrations.models import Registration
from registrations.services import registration_create
from tests.broker import queue_depth
from tests.e2e.test_side_effects import Mailbox, kind_of
from tests.factories import make_event
from tests.faults.invariants import Expected, saga_invariants
from tests.processes import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults, pytest.mark.cluster, pytest.mark.long]

TOKENS = {"tok_visa": "confirmed", "tok_chargeDeclined": "cancelled", "tok_flaky": "confirmed"}
REGISTRATIONS = 210
KILLED = 1  # the node every process tries first: each of them has to move


def test_a_cluster_that_loses_a_node_mid_run_loses_and_doubles_nothing(cluster, cluster_system, tmp_path):
    mail = tmp_path / "mail"
    mail.mkdir()
    cluster_system.env.update(
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(mail),
        # An e-mail send cut short (a worker killed mid-send) is sent again once its lease expires: seconds
        # here, not 5 minutes.
        MICE_EMAIL_SEND_LEASE="20",
    )
    cluster_system.recorder()
    workers = [cluster_system.worker(concurrency=2) for _ in range(2)]
    relays = [cluster_system.relay(MICE_RELAY_CONCURRENCY="1") for _ in range(2)]
    for relay in relays:
        relay.wait_for_log("relay connected", timeout=60)
    event = make_event(capacity=REGISTRATIONS)
    tokens = itertools.cycle(TOKENS)
    registrations: list[tuple[Registration, str]] = []
    broken: list[str] = []
    started = time.monotonic()

    # when registrations keep coming while node 1 crashes, stays down a while and comes back
    for i in range(REGISTRATIONS):
        if i == REGISTRATIONS // 3:
            wait_until(
                lambda: Registration.objects.exclude(status="pending").exists(), timeout=120, what="the saga running"
            )
            cluster.kill_node(KILLED)
            killed_at = time.monotonic()
        if i == 2 * REGISTRATIONS // 3:
            cluster.restart_node(KILLED)
            restarted_at = time.monotonic()
        token = next(tokens)
        registration = registration_create(
            event_slug=event.slug,
            first_name="Ada",
            last_name="Lovelace",
            email=f"attendee{i}@example.com",
            payment_token=token,
        )
        registrations.append((registration, token))
        if i % 30 == 0:  # and a handler that fails through all its retries now and then: a dead letter each
            with transaction.atomic():
                broken.append(emit("probe.broke", subject=f"broken{i}", data={}).id)
        time.sleep(0.1)

    wait_until(
        lambda: not Registration.objects.filter(status="pending").exists(),
        timeout=600,
        interval=1,
        what="every registration settled",
    )
    wait_until(
        lambda: DeadLetter.objects.count() >= len(broken), timeout=300, interval=1, what="every dead letter recorded"
    )
    mailbox = Mailbox(mail)
    wait_until(lambda: len(mailbox.messages()) >= 2 * REGISTRATIONS, timeout=300, interval=1, what="every e-mail sent")
    time.sleep(5)  # a duplicate would show up by now
    settled_in = time.monotonic() - started

    # then every registration ended as its token dictates, with one charge, one invoice and one e-mail of each
    # kind (the file backend keeps every copy: none may be doubled), and no due outbox row is left unsent
    e_mails: dict[str, list[str]] = collections.defaultdict(list)
    for message in mailbox.messages():
        e_mails[message["To"].addresses[0].addr_spec].append(kind_of(message))
    expected = [Expected(r, TOKENS[token], paid=TOKENS[token] == "confirmed") for r, token in registrations]
    checked = saga_invariants(expected, e_mails)
    dead_letters = sorted(DeadLetter.objects.values_list("event_id", "handler", "reason"))
    left_in_queues = {q.name: queue_depth(cluster.url(2), q.name) for q in all_queues()}
    members = cluster.quorum_members("mice.dead_letters")
    print(
        f"\n{REGISTRATIONS} registrations on a 3-node cluster, node {KILLED} killed at "
        f"{killed_at - started:.1f}s and back at {restarted_at - started:.1f}s; everything settled in "
        f"{settled_in:.1f}s. {checked}; dead letters: {len(dead_letters)} of {len(broken)}; "
        f"mice.dead_letters members: {members}"
    )
    # nothing stalled either: a lost dead-letter confirm once held retries for 6 minutes (docs/operations.md)
    assert settled_in < 300
    # every message that failed for good was recorded once, and only those
    assert dead_letters == sorted((uuid.UUID(event_id), "tests.probe.always_fails", "rejected") for event_id in broken)
    assert {name: depth for name, depth in left_in_queues.items() if depth} == {}
    assert set(members) == {"mice-c1@localhost", "mice-c2@localhost", "mice-c3@localhost"}
    assert all(process.alive() for process in [*workers, *relays])
