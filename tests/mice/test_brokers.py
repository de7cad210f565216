"""A broker URL list (`;`-separated, a cluster's nodes): every process reaches whichever node answers."""

import pytest
from django.core.management import call_command

from mice.publisher import ConfirmingPublisher
from mice.topology import EVENTS
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
