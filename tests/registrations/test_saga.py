"""The payment saga end to end: the real relay, RabbitMQ, Celery workers, PostgreSQL and the sandbox gateway."""

import json
import re
import threading
import urllib.error
import urllib.request
from decimal import Decimal

import pytest

from analytics.models import RegistrationRecord
from invoicing.gateways import get_gateway
from invoicing.models import Charge
from mice.models import HandlerFailure, InboxEntry, OutboxMessage
from registrations.models import Event, Registration
from registrations.services import registration_create
from tests.factories import make_event
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def running(system):
    system.worker(concurrency=2)
    system.relay()
    return system


def register(event, token, email="ada@example.com"):
    return registration_create(
        event_slug=event.slug, first_name="Ada", last_name="Lovelace", email=email, payment_token=token
    )


def final_status(registration, timeout=60):
    wait_until(
        lambda: Registration.objects.get(pk=registration.pk).status != "pending",
        timeout=timeout,
        what=f"registration {registration.pk} leaves pending",
    )
    return Registration.objects.get(pk=registration.pk)


def events_of(registration):
    return list(OutboxMessage.objects.filter(correlation_id=str(registration.pk)).order_by("id"))


def test_tok_visa_ends_confirmed_with_one_charge_and_a_causal_chain(running):
    event = make_event(capacity=3)
    registration = register(event, "tok_visa")

    assert final_status(registration).status == "confirmed"
    charge = Charge.objects.get(registration_id=registration.pk)
    assert (charge.status, charge.amount, charge.currency) == ("succeeded", Decimal("120.00"), "EUR")
    assert charge.gateway_reference.startswith("ch_sandbox_")
    wait_until(lambda: len(events_of(registration)) == 5)
    created, deadline, paid, *after_payment = (row.envelope for row in events_of(registration))
    assert deadline["type"] == "registration.payment_deadline_reached"  # held in the outbox until then
    assert [created["type"], paid["type"]] == ["registration.created", "payment.succeeded"]
    # the payment's two consequences are handled concurrently: either may be recorded first
    by_type = {e["type"]: e for e in after_payment}
    confirmed, invoiced = by_type["registration.confirmed"], by_type["invoice.issued"]
    assert created.get("causationid") is None and deadline["causationid"] == created["id"]
    assert paid["causationid"] == created["id"] and confirmed["causationid"] == paid["id"]
    assert invoiced["causationid"] == paid["id"]
    assert {e["correlationid"] for e in (created, paid, confirmed, invoiced)} == {str(registration.pk)}
    assert Event.objects.get(pk=event.pk).seats_left == 2


def test_tok_charge_declined_ends_cancelled_with_the_seat_given_back(running):
    event = make_event(capacity=1)
    registration = register(event, "tok_chargeDeclined")

    cancelled = final_status(registration)

    assert cancelled.status == "cancelled"
    assert cancelled.cancellation_reason == "payment_failed:card_declined"
    assert Event.objects.get(pk=event.pk).seats_left == 1
    assert Charge.objects.get(registration_id=registration.pk).status == "declined"
    # a decline is a business outcome: not retried
    assert not HandlerFailure.objects.filter(correlation_id=str(registration.pk)).exists()
    # the seat is really free again: someone else gets it
    assert register(event, "tok_visa", email="grace@example.com").status == "pending"


def test_tok_flaky_ends_confirmed_with_exactly_one_charge(running):
    registration = register(make_event(), "tok_flaky")

    assert final_status(registration).status == "confirmed"
    assert Charge.objects.filter(registration_id=registration.pk).count() == 1
    failures = HandlerFailure.objects.filter(
        handler="invoicing.charge_registration", correlation_id=str(registration.pk)
    )
    assert [f.outcome for f in failures.order_by("attempt")] == ["retrying", "retrying"]


def test_the_same_event_delivered_twice_charges_once(running):
    registration = register(make_event(), "tok_visa")
    assert final_status(registration).status == "confirmed"
    reference = Charge.objects.get(registration_id=registration.pk).gateway_reference

    created = OutboxMessage.objects.get(correlation_id=str(registration.pk), event_type="registration.created")
    OutboxMessage.objects.filter(pk=created.pk).update(sent_at=None)  # delivered a second time
    wait_until(lambda: OutboxMessage.objects.get(pk=created.pk).sent_at is not None)
    skipped = re.compile(rf"event_id={created.event_id} .*handler=invoicing.charge_registration .*outcome=duplicate")
    wait_until(lambda: skipped.search(running.dump_logs()), what="the charge handler skipping the duplicate")

    assert Charge.objects.filter(registration_id=registration.pk).count() == 1
    again = get_gateway().charge(
        token="tok_visa", amount=Decimal("120.00"), currency="EUR", idempotency_key=str(registration.pk)
    )
    assert again.reference == reference  # the gateway holds one charge for this registration
    assert InboxEntry.objects.filter(handler="invoicing.charge_registration", event_id=created.event_id).count() == 1


def test_a_free_event_confirms_without_a_charge_and_the_figures_follow(running):
    event = make_event(price=Decimal("0"), slug="free-meetup")
    registration = register(event, "")

    assert Registration.objects.get(pk=registration.pk).status == "confirmed"
    wait_until(lambda: RegistrationRecord.objects.filter(event_slug="free-meetup", status="confirmed").count() == 1)
    assert not Charge.objects.exists()
    # the confirmation, emitted beside the registration, names it as its cause: the timeline is one chain
    created, confirmed = (row.envelope for row in events_of(registration))
    assert (created["type"], confirmed["type"]) == ("registration.created", "registration.confirmed")
    assert confirmed["causationid"] == created["id"]


def post_registration(base_url, payload, headers=None):
    request = urllib.request.Request(
        f"{base_url}/api/registrations/",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_50_concurrent_requests_for_10_seats_confirm_exactly_10_and_answer_the_rest_409(running):
    base_url = running.web()
    event = make_event(capacity=10)
    barrier = threading.Barrier(50)
    answers: list[tuple[int, dict]] = []

    def attempt(i):
        barrier.wait()
        answers.append(
            post_registration(
                base_url,
                {
                    "event": event.slug,
                    "first_name": "Attendee",
                    "last_name": str(i),
                    "email": f"attendee{i}@example.com",
                    "payment_token": "tok_visa",
                },
            )
        )

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    accepted = [body for code, body in answers if code == 202]
    refused = [body for code, body in answers if code == 409]
    assert len(accepted) == 10 and len(refused) == 40
    assert {body["code"] for body in refused} == {"sold_out"}
    wait_until(
        lambda: Registration.objects.filter(event=event, status="confirmed").count() == 10,
        timeout=90,
        what="the 10 accepted registrations confirmed",
    )
    assert Registration.objects.filter(event=event).count() == 10
    assert Event.objects.get(pk=event.pk).seats_left == 0
    assert Charge.objects.filter(registration_id__in=[body["id"] for body in accepted]).count() == 10
