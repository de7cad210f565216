"""Delivery through the real relay, RabbitMQ and Celery workers: each committed event reaches each handler once."""

import pytest
from django.db import transaction

from mice.models import InboxEntry, OutboxMessage
from mice.outbox import emit
from tests.broker import queue_depth
from tests.probe.models import Effect
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def effects(event_id, handler=None):
    qs = Effect.objects.filter(event_id=event_id)
    return qs.filter(handler=handler).count() if handler else qs.count()


def test_each_committed_event_reaches_each_handler_once(system):
    system.worker()
    system.relay()
    with transaction.atomic():
        events = [emit("probe.pinged", subject=f"s{i}", data={"n": i}) for i in range(20)]

    wait_until(lambda: Effect.objects.count() == 40, timeout=30, what="40 effects")

    for event in events:
        assert effects(event.id, "probe.record_a") == 1
        assert effects(event.id, "probe.record_b") == 1
    assert OutboxMessage.objects.filter(sent_at__isnull=True).count() == 0


def test_a_rolled_back_transaction_publishes_nothing(system, broker_url):
    system.relay()
    with pytest.raises(RuntimeError), transaction.atomic():
        emit("probe.pinged", subject="s", data={})
        raise RuntimeError("rollback")
    with transaction.atomic():
        marker = emit("probe.slept", subject="marker", data={"seconds": 0})

    wait_until(lambda: OutboxMessage.objects.filter(event_id=marker.id, sent_at__isnull=False).exists())
    assert queue_depth(broker_url, "tests.probe.record_a") == 0
    assert queue_depth(broker_url, "tests.probe.slow") == 1


def test_an_event_emitted_by_a_handler_is_delivered_with_the_saga_correlation(system):
    system.worker()
    system.relay()
    with transaction.atomic():
        cause = emit("probe.chained", subject="reg-9", data={})

    wait_until(lambda: Effect.objects.filter(handler="probe.record_a").count() == 1)
    effect_event = Effect.objects.get(handler="probe.record_a").event_id
    row = OutboxMessage.objects.get(event_id=effect_event)
    assert row.envelope["correlationid"] == cause.correlationid
    assert row.envelope["causationid"] == cause.id
    assert InboxEntry.objects.filter(event_id=cause.id, handler="tests.probe.chain").count() == 1
