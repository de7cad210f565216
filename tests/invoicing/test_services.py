"""Charges and refunds on PostgreSQL, called as their handlers call them (the gateway is the real sandbox)."""

import sqlite3
import threading

import pytest
from django.conf import settings
from django.db import connection, transaction

from invoicing.gateways import SandboxGateway
from invoicing.models import Charge, Refund
from invoicing.services import ChargeImpossible, charge_create, refund_create
from mice.models import OutboxMessage
from registrations import payloads
from registrations.services import registration_cancel, registration_create
from tests.factories import make_event

pytestmark = pytest.mark.django_db(transaction=True)


def register(token="tok_visa", **event):
    registration = registration_create(
        event_slug=make_event(**event).slug,
        first_name="Ada",
        last_name="Lovelace",
        email="ada@example.com",
        payment_token=token,
    )
    return registration, payloads.registration_created(registration)


def cancelled_data(registration):
    (row,) = OutboxMessage.objects.filter(correlation_id=str(registration.pk), event_type="registration.cancelled")
    return row.envelope["data"]


def ledger(table, key):
    SandboxGateway()
    with sqlite3.connect(settings.SANDBOX_GATEWAY_PATH) as db:
        return db.execute(f"SELECT * FROM {table} WHERE idempotency_key = ?", (key,)).fetchall()


def test_a_registration_cancelled_before_its_charge_is_never_charged():
    registration, created = register()
    registration_cancel(registration_id=registration.pk, reason="payment_deadline_passed")
    with transaction.atomic():
        assert refund_create(cancelled=cancelled_data(registration)) is None

    with transaction.atomic():
        charge = charge_create(registration=created)

    assert charge is not None and charge.status == "voided"
    assert ledger("charges", str(registration.pk)) == []
    assert not OutboxMessage.objects.filter(event_type__startswith="payment.").exists()


def test_a_charge_whose_registration_is_cancelled_but_not_yet_voided_is_not_made():
    """The charge handler may run before invoicing handled registration.cancelled: it asks registrations."""
    registration, created = register()
    registration_cancel(registration_id=registration.pk, reason="cancelled_by_staff")

    with transaction.atomic():
        charge = charge_create(registration=created)

    assert charge is not None and charge.status == "voided"
    assert ledger("charges", str(registration.pk)) == []


def test_a_succeeded_charge_of_a_cancelled_registration_is_refunded_once():
    registration, created = register()
    with transaction.atomic():
        charge_create(registration=created)
    registration_cancel(registration_id=registration.pk, reason="payment_deadline_passed")

    with transaction.atomic():
        first = refund_create(cancelled=cancelled_data(registration))
    with transaction.atomic():
        again = refund_create(cancelled=cancelled_data(registration))  # a redelivery, or a second cancellation

    assert first is not None and again is not None and first.pk == again.pk
    assert Refund.objects.count() == 1
    assert len(ledger("refunds", f"refund-{registration.pk}")) == 1
    (refunded,) = OutboxMessage.objects.filter(event_type="payment.refunded")
    assert refunded.correlation_id == str(registration.pk)
    assert refunded.envelope["data"]["amount"] == "120.00"


def test_a_cancellation_during_the_charge_waits_for_it_and_refunds_it(monkeypatch):
    registration, created = register()
    at_gateway, release = threading.Event(), threading.Event()
    gateway = SandboxGateway()
    real_charge = gateway.charge

    def slow_charge(**kwargs):
        at_gateway.set()
        release.wait(30)
        return real_charge(**kwargs)

    # the real sandbox, held at the gateway until the cancellation is under way
    monkeypatch.setattr(gateway, "charge", slow_charge)
    monkeypatch.setattr("invoicing.services.get_gateway", lambda: gateway)
    refunds = []

    def charge():
        try:
            with transaction.atomic():
                charge_create(registration=created)
        finally:
            connection.close()

    def cancel():
        try:
            registration_cancel(registration_id=registration.pk, reason="payment_deadline_passed")
            with transaction.atomic():
                refunds.append(refund_create(cancelled=cancelled_data(registration)))
        finally:
            connection.close()

    charging = threading.Thread(target=charge)
    charging.start()
    assert at_gateway.wait(30)
    cancelling = threading.Thread(target=cancel)
    cancelling.start()
    cancelling.join(1.5)
    assert cancelling.is_alive()  # waiting on the charge row, not deciding without it
    release.set()
    charging.join(30)
    cancelling.join(30)

    assert Charge.objects.get(registration_id=registration.pk).status == "succeeded"
    assert len(refunds) == 1 and refunds[0] is not None and refunds[0].status == "succeeded"


def test_a_pending_registration_without_a_token_is_not_charged_but_dead_lettered():
    _, created = register()
    from registrations.models import PaymentToken

    PaymentToken.objects.all().delete()

    with pytest.raises(ChargeImpossible), transaction.atomic():
        charge_create(registration=created)
    assert not Charge.objects.exists()
