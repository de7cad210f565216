"""Faults in the services themselves: RabbitMQ stopped, PostgreSQL connections killed. Nothing is lost."""

import time

import pytest
from django.db import connection, transaction

from invoicing.models import Charge
from mice.models import OutboxMessage
from mice.outbox import emit
from registrations.models import Registration
from tests.broker import broker_stopped, memory_alarm
from tests.factories import make_event
from tests.mice.test_relay import unlocked_unsent
from tests.probe.models import Effect
from tests.processes import wait_until
from tests.registrations.test_saga import post_registration

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]


def test_events_committed_while_the_broker_is_stopped_are_published_after_it_returns(system):
    worker = system.worker()
    relay = system.relay()
    relay.wait_for_log("relay connected")

    with broker_stopped():
        started = time.monotonic()
        with transaction.atomic():
            events = [emit("probe.pinged", subject=f"s{i}", data={"n": i}) for i in range(10)]
        committed_in = time.monotonic() - started
        relay.wait_for_log("broker unavailable", timeout=30)
        assert OutboxMessage.objects.filter(sent_at__isnull=True).count() == 10
        assert relay.alive()

    wait_until(lambda: Effect.objects.count() == 20, timeout=120, what="every event handled once the broker is back")
    assert committed_in < 1.0  # committing never waited on the broker
    for event in events:
        assert Effect.objects.filter(event_id=event.id).count() == 2
    assert worker.alive() and relay.alive()


def test_the_relay_and_the_workers_survive_their_database_connections_being_killed(system):
    system.worker()
    relay = system.relay()
    with transaction.atomic():
        first = emit("probe.pinged", subject="before", data={})
    wait_until(lambda: Effect.objects.filter(event_id=first.id).count() == 2)

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    with transaction.atomic():
        second = emit("probe.pinged", subject="after", data={})

    wait_until(lambda: Effect.objects.filter(event_id=second.id).count() == 2, timeout=60, what="handled after")
    assert relay.alive()


def test_registering_while_rabbitmq_is_stopped_answers_202_at_once_and_completes_after_it_returns(system):
    base_url = system.web()
    system.worker()
    relay = system.relay()
    relay.wait_for_log("relay connected")
    event = make_event(capacity=5)

    with broker_stopped():
        started = time.monotonic()
        code, body = post_registration(
            base_url,
            {
                "event": event.slug,
                "first_name": "Ada",
                "last_name": "Lovelace",
                "email": "ada@example.com",
                "payment_token": "tok_visa",
            },
        )
        answered_in = time.monotonic() - started
        assert code == 202 and body["status"] == "pending"
        assert Registration.objects.get(pk=body["id"]).status == "pending"

    wait_until(
        lambda: Registration.objects.get(pk=body["id"]).status == "confirmed",
        timeout=120,
        what="the registration confirmed once RabbitMQ is back",
    )
    assert answered_in < 2.0  # answered at once: registering never waits on the broker
    assert Charge.objects.filter(registration_id=body["id"]).count() == 1


def test_a_relay_blocked_by_a_broker_alarm_holds_no_rows_and_publishes_once_it_lifts(system, database_url):
    system.worker()
    relay = system.relay(MICE_RELAY_CONFIRM_TIMEOUT="600", MICE_RELAY_CONCURRENCY="1")
    relay.wait_for_log("relay connected")

    with memory_alarm():
        with transaction.atomic():
            events = [emit("probe.pinged", subject=f"s{i}", data={"n": i}) for i in range(10)]
        relay.wait_for_log("broker blocks publishing", timeout=30)
        # the relay does not sit on its batch until the confirm timeout: other relays could take the rows
        wait_until(lambda: unlocked_unsent(database_url) == 10, timeout=30, what="the batch given back")
        assert relay.alive()

    wait_until(lambda: Effect.objects.count() == 20, timeout=120, what="every event handled once the alarm cleared")
    for event in events:
        assert Effect.objects.filter(event_id=event.id).count() == 2
