"""Topology declaration: idempotent, and a changed queue is reported with what to do, never a crash."""

import pytest
from amqp import Message
from django.core.management import CommandError, call_command
from kombu import Connection

from mice.topology import all_queues, maybe_declare_all
from tests.broker import queue_depth


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
