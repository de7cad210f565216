"""A broker URL list (`;`-separated, a cluster's nodes): every process reaches whichever node answers."""

import os
import threading
import time
import uuid

import pytest
from django.core.management import call_command
from kombu import Queue

from mice.publisher import ConfirmingPublisher
from mice.task_messages import task_message
from mice.topology import EVENTS
from mice.wakeup import Wakeup
from tests.processes import free_port

pytestmark = pytest.mark.django_db(transaction=True)


def dead_node() -> str:
    return f"amqp://guest:guest@127.0.0.1:{free_port()}//"


def test_the_publisher_reaches_the_one_node_that_answers_at_the_end_of_the_list(broker_url):
    publisher = ConfirmingPublisher(f"{dead_node()};{dead_node()};{broker_url}", exchange=EVENTS.name)

    publisher.connect()

    try:
        assert publisher.connected and publisher.host == "127.0.0.1:5672"
    finally:
        publisher.close()


def test_a_publisher_that_lost_its_node_starts_again_from_the_node_that_answered_last(broker_url):
    publisher = ConfirmingPublisher(f"{dead_node()};{broker_url};{dead_node()}", exchange=EVENTS.name)
    publisher.connect()
    publisher.close()

    publisher.connect()

    try:
        assert publisher.node == 1
    finally:
        publisher.close()


def test_mice_topology_declares_through_any_node_of_the_list(settings, broker_url, capsys):
    settings.CELERY_BROKER_URL = f"{dead_node()};{dead_node()};{broker_url}"

    call_command("mice_topology")

    assert "topology declared" in capsys.readouterr().out


def test_the_publisher_and_the_wakeup_work_in_a_process_with_over_a_thousand_files_open(broker_url):
    # given a process with over a thousand files open, so that its next sockets and pipes are numbered 1024 or
    # more: select() cannot watch those, and a relay that used it failed every loop, stalled for good
    read_end, write_end = os.pipe()
    held = [os.dup(read_end) for _ in range(1100)]
    publisher = ConfirmingPublisher(broker_url, exchange=EVENTS.name)
    wakeup = Wakeup(poll_interval=5.0)
    try:
        publisher.connect()
        assert publisher.connection.connection.sock.fileno() >= 1024
        queue = Queue(f"test.fds.{uuid.uuid4().hex}", EVENTS, routing_key="test.fds", exclusive=True, auto_delete=True)
        queue(publisher.connection.default_channel).declare()

        # when it publishes with confirms and keeps its connection alive, and a commit wakes it up
        publisher.keepalive()
        message = task_message(outbox_id=1, handler="test.fds", envelope_json="{}", event_id=str(uuid.uuid4()))
        outcome = publisher.publish([("row 1", "test.fds", message)])
        publisher.keepalive()
        started = time.monotonic()
        threading.Timer(0.3, wakeup.interrupt).start()
        wakeup.wait()

        # then the broker confirmed the message, and the wait ended on the wake-up, not at its timeout
        assert outcome.confirmed == {"row 1"} and outcome.failed == {}
        assert time.monotonic() - started < 3.0
    finally:
        publisher.close()
        wakeup.close()
        for fd in [*held, read_end, write_end]:
            os.close(fd)
