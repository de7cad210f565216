"""Workers send Celery task events, which Flower (or any event receiver) reads from the broker."""

import threading
import time
from typing import Any

import pytest
from django.db import transaction

from mice.outbox import emit
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_worker_reports_each_task_it_receives_and_finishes(system, broker_url):
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
            system.relay()
            time.sleep(1)  # the receiver's queue is bound

            with transaction.atomic():
                emit("probe.pinged", subject="s", data={})

            wait_until(lambda: len(succeeded) >= 2, timeout=30, what="two task-succeeded events")
        finally:
            receiver.should_stop = True
            listening.join(timeout=10)

    assert {event["name"] for event in received} >= {"tests.probe.record_a", "tests.probe.record_b"}
    assert {event["uuid"] for event in succeeded} <= {event["uuid"] for event in received}
