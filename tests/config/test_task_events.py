"""Workers send Celery task events once asked, as Flower asks them, and Flower (or any event receiver) reads
them from the broker. Unasked, they send none: three broker messages less per handler run."""

import threading
import time
from typing import Any

import pytest
from celery import Celery
from django.db import transaction

from mice.outbox import emit
from tests.probe.models import Effect
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def enabled(broker_url: str) -> bool:
    """Broadcast enable_events, as Flower does every few seconds; True once a worker replied. (An app of its own:
    a control command goes out through its app's producer pool, which is bound to that app's broker URL.)"""
    with Celery(broker=broker_url) as flower:
        return bool(flower.control.enable_events(reply=True, timeout=2))


def test_a_worker_reports_each_task_it_receives_and_finishes_once_asked_as_flower_asks(system, broker_url):
    from config.celery import app

    received: list[dict[str, Any]] = []
    succeeded: list[dict[str, Any]] = []
    with app.connection(broker_url) as connection:
        receiver = app.events.Receiver(
            connection, handlers={"task-received": received.append, "task-succeeded": succeeded.append}
        )
        listening = threading.Thread(target=receiver.capture, kwargs={"limit": None, "timeout": None}, daemon=True)
        listening.start()
        try:
            system.worker()
            system.relay().wait_for_log("relay connected")
            time.sleep(1)  # the receiver's queue is bound

            # unasked, a worker runs its handlers without a word on the event exchange
            with transaction.atomic():
                quiet = emit("probe.pinged", subject="quiet", data={})
            wait_until(lambda: Effect.objects.filter(event_id=quiet.id).count() == 2, what="both handlers ran")
            time.sleep(1)
            assert received == [] and succeeded == []

            # asked as Flower asks (its enable_events option, through the workers' remote control), it reports
            wait_until(lambda: enabled(broker_url), timeout=30, what="a worker answering enable_events")
            with transaction.atomic():
                emit("probe.pinged", subject="s", data={})

            wait_until(lambda: len(succeeded) >= 2, timeout=30, what="two task-succeeded events")
        finally:
            receiver.should_stop = True
            listening.join(timeout=10)

    assert {event["name"] for event in received} >= {"tests.probe.record_a", "tests.probe.record_b"}
    assert {event["uuid"] for event in succeeded} <= {event["uuid"] for event in received}
