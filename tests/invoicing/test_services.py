"""Charges and refunds on PostgreSQL, called as their handlers call them (the gateway is the real sandbox)."""

import sqlite3
import threading

import pytest
from django.conf import settings
from django.db import connection, transaction

from invoicing.gateways import GatewayUnavailable, SandboxGateway
from invoicing.models import Charge, Refund
from invoicing.services import ChargeImpossible, ChargeInFlight, charge_create, refund_create
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
    assert refund_create(cancelled=cancelled_data(registration)) is None

    charge = charge_create(registration=created)

    assert charge is not None and charge.status == "voided"
    assert ledger("ledger_charges", str(registration.pk)) == []
    assert not OutboxMessage.objects.filter(event_type__startswith="payment.").exists()


def test_a_charge_whose_registration_is_cancelled_but_not_yet_voided_is_not_made():
    """The charge handler may run before invoicing handled registration.cancelled: it asks registrations."""
    registration, created = register()
    registration_cancel(registration_id=registration.pk, reason="cancelled_by_staff")

    charge = charge_create(registration=created)

    assert charge is not None and charge.status == "voided"
    assert ledger("ledger_charges", str(registration.pk)) == []


def test_a_succeeded_charge_of_a_cancelled_registration_is_refunded_once():
    registration, created = register()
    charge_create(registration=created)
    registration_cancel(registration_id=registration.pk, reason="payment_deadline_passed")

    first = refund_create(cancelled=cancelled_data(registration))
    again = refund_create(cancelled=cancelled_data(registration))  # a redelivery, or a second cancellation

    assert first is not None and again is not None and first.pk == again.pk
    assert Refund.objects.count() == 1
    assert len(ledger("ledger_refunds", f"refund-{registration.pk}")) == 1
    (refunded,) = OutboxMessage.objects.filter(event_type="payment.refunded")
    assert refunded.correlation_id == str(registration.pk)
    assert refunded.envelope["data"]["amount"] == "120.00"


class HeldGateway(SandboxGateway):
    """The real sandbox, held at the gateway (inside `charge`) until the test lets it go."""

    def __init__(self, *, then_time_out: bool = False):
        super().__init__()
        self.at_gateway, self.release = threading.Event(), threading.Event()
        self.while_held = None
        self.then_time_out = then_time_out

    def charge(self, **kwargs):
        self.at_gateway.set()
        if self.while_held is not None:
            self.while_held()
        assert self.release.wait(30)
        result = super().charge(**kwargs)
        if self.then_time_out:
            raise GatewayUnavailable("sandbox: timed out after charging")
        return result


def in_thread(func):
    def run():
        try:
            func()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_the_gateway_is_called_with_the_attempt_committed_and_no_transaction_or_lock_held(monkeypatch):
    registration, created = register()
    gateway = HeldGateway()
    monkeypatch.setattr("invoicing.services.get_gateway", lambda: gateway)
    seen = {}

    def look_from_another_connection():
        def look():
            with transaction.atomic():
                # NOWAIT: fails at once if the charging transaction still held the row
                charge = Charge.objects.select_for_update(nowait=True).get(registration_id=registration.pk)
                seen.update(attempts=charge.attempts, status=charge.status)

        thread = in_thread(look)
        thread.join(10)
        seen["charging_in_transaction"] = connection.in_atomic_block

    gateway.while_held = look_from_another_connection
    gateway.release.set()
    charge = charge_create(registration=created)

    assert seen == {"attempts": 1, "status": "pending", "charging_in_transaction": False}
    assert charge is not None and charge.status == "succeeded"


def test_a_replay_after_the_gateway_forgot_the_idempotency_key_finds_the_charge_instead_of_charging_again(
    monkeypatch,
):
    # given a charge the gateway made but whose answer was lost (a timeout), and a message dead-lettered
    registration, created = register()
    gateway = HeldGateway(then_time_out=True)
    gateway.release.set()
    monkeypatch.setattr("invoicing.services.get_gateway", lambda: gateway)
    with pytest.raises(GatewayUnavailable):
        charge_create(registration=created)
    # when the dead letter is replayed days later, after the gateway forgot the key (Stripe keeps them 24 h)
    gateway.idempotency_keys_forget()
    gateway.then_time_out = False
    charge = charge_create(registration=created)

    # then the charge made the first time is recorded, and the card was charged once
    made = gateway.charges_made(idempotency_key=str(registration.pk))
    assert len(made) == 1
    assert charge is not None and charge.status == "succeeded" and charge.gateway_reference == made[0].reference
    assert charge.attempts == 2
    assert OutboxMessage.objects.filter(event_type="payment.succeeded").count() == 1


def test_a_cancellation_during_the_charge_does_not_wait_for_it_and_the_charge_is_refunded_when_it_lands(monkeypatch):
    registration, created = register()
    gateway = HeldGateway()
    monkeypatch.setattr("invoicing.services.get_gateway", lambda: gateway)
    outcome = {}
    charging = in_thread(lambda: outcome.update(charge=charge_create(registration=created)))
    assert gateway.at_gateway.wait(30)

    # the cancellation neither waits for the gateway nor decides without it: it is retried later
    registration_cancel(registration_id=registration.pk, reason="payment_deadline_passed")
    with pytest.raises(ChargeInFlight):
        refund_create(cancelled=cancelled_data(registration))
    assert charging.is_alive()

    gateway.release.set()
    charging.join(30)
    again = refund_create(cancelled=cancelled_data(registration))  # the retried cancellation

    assert outcome["charge"].status == "succeeded"
    assert again is not None and again.status == "succeeded"
    assert Refund.objects.count() == 1
    assert len(ledger("ledger_refunds", f"refund-{registration.pk}")) == 1
    assert OutboxMessage.objects.filter(event_type="payment.refunded").count() == 1
    # the registration is cancelled: nothing confirms or invoices it
    assert not OutboxMessage.objects.filter(event_type="payment.succeeded").exists()


def test_a_pending_registration_without_a_token_is_not_charged_but_dead_lettered():
    _, created = register()
    from registrations.models import PaymentToken

    PaymentToken.objects.all().delete()

    with pytest.raises(ChargeImpossible):
        charge_create(registration=created)
    assert not Charge.objects.exists()  # no attempt on record: the payment deadline's cancellation voids it


def test_the_previous_release_can_still_insert_charges_during_the_deploy():
    """Its INSERT names only the columns it knows: the attempt columns need database defaults."""
    registration, _ = register()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO invoicing_charge (registration_id, amount, currency, status, gateway, gateway_reference, "
            "decline_code, created_at) VALUES (%s, 120, 'EUR', 'pending', 'sandbox', '', '', now())",
            [registration.pk],
        )
    assert Charge.objects.get(registration_id=registration.pk).attempts == 0


class RefundAnswerLost(SandboxGateway):
    """The real sandbox, whose refund answer is lost once (a timeout after the provider refunded)."""

    def __init__(self):
        super().__init__()
        self.lose_next_answer = True

    def refund(self, **kwargs):
        result = super().refund(**kwargs)
        if self.lose_next_answer:
            self.lose_next_answer = False
            raise GatewayUnavailable("sandbox: timed out after refunding")
        return result


def test_a_refund_retried_after_the_gateway_forgot_its_key_finds_the_refund_instead_of_refunding_again(monkeypatch):
    # given a paid registration cancelled, whose refund the gateway made but whose answer was lost
    registration, created = register()
    charge_create(registration=created)
    registration_cancel(registration_id=registration.pk, reason="cancelled_by_staff")
    gateway = RefundAnswerLost()
    monkeypatch.setattr("invoicing.services.get_gateway", lambda: gateway)
    with pytest.raises(GatewayUnavailable):
        refund_create(cancelled=cancelled_data(registration))
    # when the message is retried (or its dead letter replayed) after the gateway forgot the idempotency key
    gateway.idempotency_keys_forget()
    refund = refund_create(cancelled=cancelled_data(registration))

    # then the card was refunded once, and that refund is the one recorded
    charge = Charge.objects.get(registration_id=registration.pk)
    made = gateway.refunds_made(charge_reference=charge.gateway_reference)
    assert len(made) == 1
    assert refund is not None and refund.status == "succeeded" and refund.gateway_reference == made[0].reference
    assert OutboxMessage.objects.filter(event_type="payment.refunded").count() == 1
