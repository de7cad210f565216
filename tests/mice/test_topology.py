"""Topology declaration: idempotent, and a changed queue is reported with what to do, never a crash."""

import pytest
from amqp import Message
from django.core.management import CommandError, call_command
from django.db import transaction
from django.db.models import Q
from kombu import Connection

from mice.events import Envelope
from mice.management.commands import mice_topology
from mice.models import OutboxMessage
from mice.outbox import emit
from mice.topology import all_queues, maybe_declare_all
from tests.broker import queue_depth
from tests.processes import wait_until


@pytest.fixture
def broker(settings, broker_url):
    settings.CELERY_BROKER_URL = broker_url
    with Connection(broker_url) as connection:
        yield connection


def test_declaring_twice_is_harmless(broker):
    assert maybe_declare_all(broker) == []
    assert maybe_declare_all(broker) == []
    assert all(queue_depth(broker.as_uri(include_password=True), q.name) is not None for q in all_queues())


def test_every_work_queue_dead_letters_safely_and_has_a_delivery_limit():
    work = [q for q in all_queues() if q.exchange.name == "mice.events"]
    assert work
    for queue in work:
        args = queue.queue_arguments
        assert args["x-queue-type"] == "quorum"
        assert args["x-dead-letter-exchange"] == "mice.dlx"
        assert args["x-dead-letter-strategy"] == "at-least-once" and args["x-overflow"] == "reject-publish"
        assert args["x-delivery-limit"] >= 1


@pytest.mark.django_db
def test_a_changed_queue_is_reported_with_advice_and_recreated_only_when_empty(broker, capsys):
    channel = broker.channel()
    channel.queue_delete("tests.probe.record_a")
    channel.queue_declare("tests.probe.record_a", durable=True, auto_delete=False, arguments={"x-queue-type": "quorum"})
    broker.default_channel.basic_publish(Message(b"leftover"), exchange="", routing_key="tests.probe.record_a")

    with pytest.raises(CommandError, match="differ"):
        call_command("mice_topology")
    assert "mice_topology --recreate tests.probe.record_a" in capsys.readouterr().err

    with pytest.raises(CommandError, match="still holds 1 message"):
        call_command("mice_topology", recreate="tests.probe.record_a")

    broker.channel().queue_purge("tests.probe.record_a")
    call_command("mice_topology", recreate="tests.probe.record_a")
    assert maybe_declare_all(broker) == []


@pytest.mark.django_db(transaction=True)
def test_recreating_a_queue_while_the_relay_publishes_to_it_loses_nothing(system, broker, broker_url, monkeypatch):
    relay = system.relay()
    relay.wait_for_log("relay connected")
    real_queue_state = mice_topology.queue_state
    published: dict[str, Envelope] = {}

    def found_empty_then_a_publish(connection, name):
        """The queue is found empty and unused; right then the relay publishes an event to it."""
        state = real_queue_state(connection, name)
        if name == "tests.probe.slow" and not published:
            with transaction.atomic():
                published["envelope"] = emit("probe.slept", subject="s", data={"seconds": 0})
            row = OutboxMessage.objects.filter(event_id=published["envelope"].id)
            wait_until(lambda: row.filter(Q(sent_at__isnull=False) | Q(attempts__gt=0)).exists(), what="a publish")
        return state

    monkeypatch.setattr(mice_topology, "queue_state", found_empty_then_a_publish)
    call_command("mice_topology", recreate="tests.probe.slow")

    wait_until(lambda: queue_depth(broker_url, "tests.probe.slow") == 1, timeout=30, what="the event in the new queue")
    wait_until(lambda: not OutboxMessage.objects.filter(sent_at__isnull=True).exists(), what="its row marked sent")
