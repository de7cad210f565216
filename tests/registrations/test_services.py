"""Registration services: seats, guards, and the events they emit."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from mice.models import OutboxMessage
from registrations.models import Event, Registration
from registrations.selectors import payment_token_get
from registrations.services import RegistrationRefused, registration_cancel, registration_confirm, registration_create
from tests.factories import make_event

pytestmark = pytest.mark.django_db(transaction=True)


def register(event, email="ada@example.com", token="tok_visa", **extra):
    return registration_create(
        event_slug=event.slug, first_name="Ada", last_name="Lovelace", email=email, payment_token=token, **extra
    )


def emitted(event_type):
    return list(OutboxMessage.objects.filter(event_type=event_type).order_by("id"))


def test_registering_takes_a_seat_and_emits_registration_created_in_the_same_transaction():
    event = make_event(capacity=5)

    registration = register(event, company="Engines Ltd")

    event.refresh_from_db()
    assert registration.status == "pending" and event.seats_left == 4
    (created,) = emitted("registration.created")
    assert created.envelope["subject"] == str(registration.id)
    assert created.envelope["correlationid"] == str(registration.id)
    data = created.envelope["data"]
    assert (data["amount"], data["currency"]) == ("120.00", "EUR")
    assert "payment_token" not in data and payment_token_get(registration_id=registration.id) == "tok_visa"
    assert data["attendee"]["company"] == "Engines Ltd"


def test_a_free_event_confirms_at_once_without_a_token():
    event = make_event(price=Decimal("0"))

    registration = register(event, token="")

    assert registration.status == "confirmed"
    assert [r.event_type for r in OutboxMessage.objects.order_by("id")] == [
        "registration.created",
        "registration.confirmed",
    ]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"capacity": 0}, "sold_out"),
        ({"registration_closes_at": timezone.now() - dt.timedelta(minutes=1)}, "closed"),
        ({"registration_opens_at": timezone.now() + dt.timedelta(days=1)}, "closed"),
    ],
)
def test_refusals_say_why_and_leave_nothing_behind(change, code):
    event = make_event(**change)

    with pytest.raises(RegistrationRefused) as refused:
        register(event)

    assert refused.value.code == code
    assert Registration.objects.count() == 0 and OutboxMessage.objects.count() == 0


def test_a_paid_event_needs_a_payment_token():
    with pytest.raises(RegistrationRefused) as refused:
        register(make_event(), token="")
    assert refused.value.code == "payment_required"


def test_one_active_registration_per_email_per_event_whatever_the_case():
    event = make_event()
    first = register(event, email="ada@example.com")

    with pytest.raises(RegistrationRefused) as refused:
        register(event, email="ADA@Example.com")
    assert refused.value.code == "already_registered"

    registration_cancel(registration_id=first.id, reason="changed plans")
    assert register(event, email="Ada@example.com").status == "pending"


def test_cancelling_gives_the_seat_back_once_and_a_late_confirmation_never_revives_it():
    event = make_event(capacity=1)
    registration = register(event)

    registration_cancel(registration_id=registration.id, reason="payment_failed:card_declined")
    registration_cancel(registration_id=registration.id, reason="again")
    confirmed = registration_confirm(registration_id=registration.id)

    event.refresh_from_db()
    assert confirmed.status == "cancelled"
    assert confirmed.cancellation_reason == "payment_failed:card_declined"
    assert event.seats_taken == 0
    assert len(emitted("registration.cancelled")) == 1 and emitted("registration.confirmed") == []


def test_confirming_twice_emits_one_confirmation():
    registration = register(make_event())

    registration_confirm(registration_id=registration.id)
    registration_confirm(registration_id=registration.id)

    assert len(emitted("registration.confirmed")) == 1


def test_concurrent_registrations_for_the_last_seats_never_oversell():
    event = make_event(capacity=10)
    barrier = threading.Barrier(50)
    outcomes: list[str] = []

    def attempt(i):
        try:
            barrier.wait()
            register(event, email=f"attendee{i}@example.com")
            outcomes.append("registered")
        except RegistrationRefused as refused:
            outcomes.append(refused.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(set(outcomes)) == ["registered", "sold_out"]
    assert outcomes.count("registered") == 10
    assert Event.objects.get(pk=event.pk).seats_taken == 10
    assert Registration.objects.filter(event=event).count() == 10
    assert len(emitted("registration.created")) == 10
