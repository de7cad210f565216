"""Refunds: a charge that succeeds for a cancelled registration is given back, once, and the saga shows it."""

import sqlite3

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from invoicing.gateways import SandboxGateway
from invoicing.models import Charge, Refund
from mice.models import OutboxMessage
from mice.selectors import timeline
from registrations.models import Event, Registration
from registrations.services import registration_cancel, registration_create
from tests.factories import make_event
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def late_gateway(system):
    """Workers whose gateway answers a charge only after the registration was cancelled."""
    system.env["PAYMENT_GATEWAY"] = "tests.invoicing.late_gateway.LateSandboxGateway"
    system.worker(concurrency=3)
    system.relay()
    return system


def gateway_refunds(key):
    SandboxGateway()  # makes its ledger if no charge was ever made
    with sqlite3.connect(settings.SANDBOX_GATEWAY_PATH) as ledger:
        return ledger.execute("SELECT reference FROM ledger_refunds WHERE idempotency_key = ?", (key,)).fetchall()


def register(event, email="ada@example.com"):
    return registration_create(
        event_slug=event.slug, first_name="Ada", last_name="Lovelace", email=email, payment_token="tok_visa"
    )


def test_a_charge_succeeding_after_staff_cancelled_the_registration_is_refunded_once(late_gateway):
    # given a registration whose charge is at the gateway
    event = make_event(capacity=1)
    registration = register(event)
    wait_until(lambda: "late gateway: holding the charge" in late_gateway.dump_logs(), timeout=60)

    # when staff cancel it, and the gateway then charges the card
    registration_cancel(registration_id=registration.pk, reason="cancelled_by_staff")

    # then the attendee is refunded, exactly once, and the registration's timeline says so
    correlation = str(registration.pk)
    wait_until(
        lambda: OutboxMessage.objects.filter(correlation_id=correlation, event_type="payment.refunded").exists(),
        timeout=90,
        what="payment.refunded",
    )
    assert Charge.objects.get(registration_id=registration.pk).status == "succeeded"
    (refunded,) = OutboxMessage.objects.filter(correlation_id=correlation, event_type="payment.refunded")
    assert refunded.envelope["data"]["amount"] == "120.00"
    assert len(gateway_refunds(f"refund-{registration.pk}")) == 1
    assert Registration.objects.get(pk=registration.pk).status == "cancelled"
    assert Event.objects.get(pk=event.pk).seats_left == 1
    assert any(entry.what == "event payment.refunded" for entry in timeline(correlation_id=correlation))
    User.objects.create_superuser("root", "root@example.com", "pw")
    staff = Client()
    staff.login(username="root", password="pw")
    page = staff.get(reverse("admin:registrations_registration_change", args=[registration.pk]))
    assert "payment.refunded" in page.content.decode()


def test_a_charge_succeeding_after_the_payment_deadline_cancelled_the_registration_is_refunded(late_gateway):
    # given a registration whose charge is at a gateway that answers only after the deadline
    event = make_event(capacity=1, payment_deadline_seconds=3)
    registration = register(event)

    # when the deadline passes, and the charge then succeeds
    correlation = str(registration.pk)
    wait_until(
        lambda: OutboxMessage.objects.filter(correlation_id=correlation, event_type="payment.refunded").exists(),
        timeout=90,
        what="payment.refunded",
    )

    # then the registration stays cancelled with its seat released, and the attendee is refunded once
    cancelled = Registration.objects.get(pk=registration.pk)
    assert (cancelled.status, cancelled.cancellation_reason) == ("cancelled", "payment_deadline_passed")
    assert Event.objects.get(pk=event.pk).seats_left == 1
    charge = Charge.objects.get(registration_id=registration.pk)
    assert charge.status == "succeeded"
    refund = Refund.objects.get(charge=charge)
    assert (refund.status, refund.amount, refund.reason) == ("succeeded", charge.amount, "payment_deadline_passed")
    assert gateway_refunds(refund.idempotency_key) == [(refund.gateway_reference,)]
    what = [entry.what for entry in timeline(correlation_id=correlation)]
    assert what.index("event registration.cancelled") < what.index("event payment.refunded")
    # the cancellation's handler, retried while the charge was at the gateway, then finds the refund made
    wait_until(
        lambda: (
            "handled by invoicing.refund_cancelled_registration"
            in [entry.what for entry in timeline(correlation_id=correlation)]
        ),
        timeout=30,
        what="the cancellation handled",
    )
    assert len(gateway_refunds(refund.idempotency_key)) == 1
    # and nothing confirms or invoices it: the charge landed after the cancellation, so no payment.succeeded
    assert not OutboxMessage.objects.filter(correlation_id=correlation, event_type="payment.succeeded").exists()
    assert Registration.objects.get(pk=registration.pk).status == "cancelled"


def test_a_charge_whose_answer_was_lost_is_found_by_the_next_attempt_and_not_made_again(system):
    # given a gateway that charges the card but whose answer never reaches us (it times out after charging)
    system.env["PAYMENT_GATEWAY"] = "tests.invoicing.late_gateway.ChargesThenTimesOutGateway"
    system.worker(concurrency=2)
    system.relay()
    registration = register(make_event())
    # then the retry asks the gateway before charging, finds the charge, and confirms the registration
    wait_until(lambda: Registration.objects.get(pk=registration.pk).status == "confirmed", timeout=60, what="confirmed")
    charge = Charge.objects.get(registration_id=registration.pk)
    assert (charge.status, charge.attempts) == ("succeeded", 2)
    assert [made.reference for made in SandboxGateway().charges_made(idempotency_key=str(registration.pk))] == [
        charge.gateway_reference
    ]


def test_a_charge_made_by_an_attempt_whose_outcome_was_lost_is_refunded_once_its_registration_is_cancelled(system):
    # given a gateway that charges the card but whose answer is lost, and that cannot be asked about it either
    system.env["PAYMENT_GATEWAY"] = "tests.invoicing.late_gateway.ChargesThenGoesDarkGateway"
    system.env["MICE_CHARGE_ATTEMPT_TIMEOUT"] = "2"
    system.worker(concurrency=2)
    system.relay()
    registration = register(make_event(capacity=1, payment_deadline_seconds=3))
    # when the payment deadline cancels the registration while its charge is still being retried
    wait_until(
        lambda: Registration.objects.get(pk=registration.pk).status == "cancelled", timeout=60, what="the deadline"
    )
    # then the charge the gateway did make is found and refunded, once
    wait_until(lambda: gateway_refunds(f"refund-{registration.pk}"), timeout=60, what="the charge refunded")
    wait_until(
        lambda: OutboxMessage.objects.filter(
            correlation_id=str(registration.pk), event_type="payment.refunded"
        ).exists(),
        what="payment.refunded",
    )
    assert Refund.objects.filter(charge__registration_id=registration.pk).count() == 1
    assert len(gateway_refunds(f"refund-{registration.pk}")) == 1
    assert len(SandboxGateway().charges_made(idempotency_key=str(registration.pk))) == 1
