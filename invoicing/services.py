"""Charging registrations, and refunding the charges of cancelled ones."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from invoicing.events import PAYMENT_FAILED, PAYMENT_REFUNDED, PAYMENT_SUCCEEDED
from invoicing.gateways import ChargeAlreadyRefunded, ChargeResult, PaymentGateway, get_gateway
from invoicing.models import Charge, Refund
from registrations.selectors import payment_token_get, registration_get, registration_status_get

log = logging.getLogger("invoicing")


class ChargeImpossible(Exception):
    """Nothing to charge with: not retried (the registration's payment deadline will cancel it)."""


class ChargeInFlight(Exception):
    """A charge attempt is at the gateway right now: its outcome decides what a cancellation does. Transient."""


def _no_transaction_open() -> None:
    if transaction.get_connection().in_atomic_block:
        raise RuntimeError(
            "charges and refunds commit their attempt before calling the gateway: call them outside a transaction"
        )


def _charge_claim(*, registration_id: str, defaults: dict[str, Any]) -> Charge:
    """The registration's charge row, inserted if missing, locked until the caller's (short) transaction ends.

    Both the charge and a cancellation go through here, so each decides on the other's committed state.
    (ON CONFLICT DO NOTHING waits for a concurrent insert of the same registration to commit or roll back.)
    """
    Charge.objects.bulk_create([Charge(registration_id=registration_id, **defaults)], ignore_conflicts=True)
    return Charge.objects.select_for_update().get(registration_id=registration_id)


def _attempt_is_over(charge: Charge) -> bool:
    """Whether the last gateway call can no longer be under way (its worker died, or it gave up)."""
    if charge.attempted_at is None:
        return True
    return timezone.now() - charge.attempted_at > dt.timedelta(seconds=settings.MICE_CHARGE_ATTEMPT_TIMEOUT)


def charge_create(*, registration: dict[str, Any]) -> Charge | None:
    """Charge a registration once (its id is the idempotency key) and emit the outcome.

    Exactly once even when the gateway has forgotten the idempotency key (Stripe keeps them 24 hours) and a
    dead letter is replayed days later: each attempt is committed (`attempts`, `attempted_at`) before the
    gateway is called, and an attempt after one whose outcome was lost asks the gateway for the charge
    (`charge_made`, by the key kept with the charge) before charging again. No transaction or row lock is
    held while the gateway is called.

    A decline is a business outcome (payment.failed), not an exception. A transient gateway error
    propagates so the handler retries. A registration already cancelled (its payment deadline passed while
    the charge was retried, or staff cancelled it) is not charged: its row is voided; a charge that lands
    after the cancellation is refunded. Returns None for a free registration, which needs no charge.
    """
    _no_transaction_open()
    registration_id = str(registration["registration_id"])
    amount = Decimal(registration["amount"])
    if amount == 0:
        return None
    gateway = get_gateway()
    with transaction.atomic():
        charge = _charge_claim(
            registration_id=registration_id,
            defaults={
                "amount": amount,
                "currency": registration["currency"],
                "status": Charge.Status.PENDING,
                "gateway": gateway.name,
            },
        )
        if charge.status != Charge.Status.PENDING:  # decided before (a redelivery), or voided by a cancellation
            decided = charge
        else:
            decided = None
            cancelled = registration_status_get(registration_id=registration_id) == "cancelled"
            if cancelled and charge.attempts == 0:
                charge.status = Charge.Status.VOIDED
                charge.save(update_fields=["status"])
                log.info("charge voided: registration cancelled", extra={"mice": {"registration_id": registration_id}})
                return charge
            # Version 1 of registration.created carried the token (an old web process may still emit it during
            # a deploy); version 2 leaves it with registrations.
            token = registration.get("payment_token") or payment_token_get(registration_id=registration_id)
            lost_before = charge.attempts > 0
            if not token and not lost_before and not cancelled:  # rolls the claim back: no attempt recorded
                raise ChargeImpossible(f"registration {registration_id} has no payment token")
            charge.attempts += 1
            charge.attempted_at = timezone.now()
            charge.save(update_fields=["attempts", "attempted_at"])
    if decided is not None:
        _refund_finish(charge=decided, event=registration.get("event", {}))  # one interrupted after the charge
        return decided

    # The attempt is on record. Now the gateway, with nothing of ours open.
    result: ChargeResult | None = None
    if lost_before:
        made = gateway.charge_made(idempotency_key=registration_id)
        if made is not None:
            result = ChargeResult(succeeded=True, reference=made.reference)
            log.warning(
                "charge found at the gateway: an earlier attempt's outcome was lost",
                extra={"mice": {"registration_id": registration_id, "gateway_reference": made.reference}},
            )
    if result is None and not cancelled:
        if not token:
            raise ChargeImpossible(f"registration {registration_id} has no payment token")
        result = gateway.charge(token=token, amount=amount, currency=charge.currency, idempotency_key=registration_id)

    with transaction.atomic():
        charge = Charge.objects.select_for_update().get(pk=charge.pk)
        if charge.status in (Charge.Status.SUCCEEDED, Charge.Status.DECLINED):
            return charge  # a concurrent run recorded it first
        late = charge.status == Charge.Status.VOIDED or (
            registration_status_get(registration_id=registration_id) == "cancelled"
        )
        if result is None or (late and not result.succeeded):
            charge.status = Charge.Status.VOIDED
            charge.save(update_fields=["status"])
            return charge
        charge.status = Charge.Status.SUCCEEDED if result.succeeded else Charge.Status.DECLINED
        charge.gateway, charge.gateway_reference, charge.decline_code = (
            gateway.name,
            result.reference,
            result.decline_code,
        )
        charge.save(update_fields=["status", "gateway", "gateway_reference", "decline_code"])
        if late:
            # The registration was cancelled while the gateway charged: no payment.succeeded (nothing to
            # confirm or invoice); the charge is given back below, for the cancellation's reason.
            cancelled_registration = registration_get(registration_id=registration_id)
            reason = (cancelled_registration.cancellation_reason if cancelled_registration else "") or "cancelled"
            Refund.objects.bulk_create([_refund_for(charge, reason=reason)], ignore_conflicts=True)
        elif result.succeeded:
            PAYMENT_SUCCEEDED.send(
                subject=registration_id,
                data={
                    "registration_id": registration_id,
                    "charge_id": charge.pk,
                    "amount": f"{amount:.2f}",
                    "currency": charge.currency,
                    "vat_rate": registration.get("vat_rate", "0.00"),
                    "gateway": gateway.name,
                    "gateway_reference": result.reference,
                    "event": registration.get("event", {}),
                    "attendee": registration.get("attendee", {}),
                },
            )
        else:
            PAYMENT_FAILED.send(
                subject=registration_id,
                data={"registration_id": registration_id, "reason": result.decline_code, "message": result.message},
            )
    if late:
        log.warning(
            "charge landed after its registration was cancelled", extra={"mice": {"registration_id": registration_id}}
        )
        _refund_finish(charge=charge, event=registration.get("event", {}))
    return charge


def refund_create(*, cancelled: dict[str, Any]) -> Refund | None:
    """On a registration's cancellation: refund its charge if it succeeded, or make sure none ever happens.

    `cancelled` is registration.cancelled's data. With no charge yet for a registration that was pending, a
    voided row is left, so a charge still queued or retrying never reaches the gateway. A charge attempt at
    the gateway right now is not waited for (ChargeInFlight: retried later); one whose outcome was lost is
    looked up at the gateway. The refund row, committed before the gateway is called, and the gateway's
    idempotency key (`refund-<registration id>`) make the refund happen once.
    """
    _no_transaction_open()
    registration_id = str(cancelled["registration_id"])
    with transaction.atomic():
        if cancelled.get("was_confirmed"):
            # Confirmed means paid (its charge row exists) or free (nothing to charge, nothing to void).
            charge = Charge.objects.select_for_update().filter(registration_id=registration_id).first()
        else:
            charge = _charge_claim(
                registration_id=registration_id,
                defaults={"amount": Decimal("0"), "currency": "", "status": Charge.Status.VOIDED, "gateway": ""},
            )
        if charge is None or charge.status == Charge.Status.DECLINED:
            return None
        if charge.status == Charge.Status.PENDING:
            if not _attempt_is_over(charge):
                raise ChargeInFlight(f"the charge of {registration_id} is at the gateway")
            if charge.attempts == 0:
                charge.status = Charge.Status.VOIDED
                charge.save(update_fields=["status"])
        if charge.status == Charge.Status.SUCCEEDED:
            Refund.objects.bulk_create(
                [_refund_for(charge, reason=str(cancelled.get("reason", "")))], ignore_conflicts=True
            )
    if charge.status != Charge.Status.SUCCEEDED:
        # Voided, or an attempt whose outcome was lost: did the gateway charge anyway? (An older release, or
        # an attempt that died after the gateway charged, leaves no trace of it here.)
        charge = _charge_reconcile(charge=charge, gateway=get_gateway(), reason=str(cancelled.get("reason", "")))
        if charge.status != Charge.Status.SUCCEEDED:
            return None
    return _refund_finish(charge=charge, event=cancelled.get("event", {}))


def _charge_reconcile(*, charge: Charge, gateway: PaymentGateway, reason: str) -> Charge:
    """Ask the gateway, by idempotency key, for a charge we have no outcome for; record it, to be refunded."""
    made = gateway.charge_made(idempotency_key=str(charge.registration_id))
    with transaction.atomic():
        charge = Charge.objects.select_for_update().get(pk=charge.pk)
        if charge.status not in (Charge.Status.PENDING, Charge.Status.VOIDED):
            return charge  # decided meanwhile
        if made is None:
            if charge.status == Charge.Status.PENDING:
                charge.status = Charge.Status.VOIDED
                charge.save(update_fields=["status"])
            return charge
        charge.status = Charge.Status.SUCCEEDED
        charge.gateway, charge.gateway_reference = gateway.name, made.reference
        charge.amount, charge.currency = made.amount, made.currency
        charge.save(update_fields=["status", "gateway", "gateway_reference", "amount", "currency"])
        Refund.objects.bulk_create([_refund_for(charge, reason=reason)], ignore_conflicts=True)
    log.warning(
        "charge found at the gateway for a cancelled registration",
        extra={"mice": {"registration_id": str(charge.registration_id), "gateway_reference": made.reference}},
    )
    return charge


def _refund_for(charge: Charge, *, reason: str) -> Refund:
    return Refund(
        charge=charge, amount=charge.amount, reason=reason[:200], idempotency_key=f"refund-{charge.registration_id}"
    )


def _refund_finish(*, charge: Charge, event: dict[str, Any]) -> Refund | None:
    """Give back the charge's refund, recorded as requested, at the gateway (no transaction open), once."""
    refund = Refund.objects.filter(charge=charge).first()
    if refund is None or refund.status == Refund.Status.SUCCEEDED:
        return refund
    gateway = get_gateway()
    try:
        result = gateway.refund(
            charge_reference=charge.gateway_reference, amount=refund.amount, idempotency_key=refund.idempotency_key
        )
    except ChargeAlreadyRefunded:
        # An earlier attempt refunded it, its answer was lost, and the gateway has since forgotten the key.
        # We make one refund per charge, so the charge's refund at the gateway is that one.
        made = gateway.refunds_made(charge_reference=charge.gateway_reference)
        if not made:
            raise
        result = made[0]
    with transaction.atomic():
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        if refund.status == Refund.Status.SUCCEEDED:
            return refund  # finished by a concurrent run
        refund.status = Refund.Status.SUCCEEDED
        refund.gateway_reference = result.reference
        refund.save(update_fields=["status", "gateway_reference", "updated_at"])
        registration_id = str(charge.registration_id)
        PAYMENT_REFUNDED.send(
            subject=registration_id,
            data={
                "registration_id": registration_id,
                "charge_id": charge.pk,
                "refund_id": refund.pk,
                "amount": f"{refund.amount:.2f}",
                "currency": charge.currency,
                "gateway": charge.gateway,
                "gateway_reference": result.reference,
                "reason": refund.reason,
                "event": event,
            },
            correlation_id=registration_id,
        )
    log.info(
        "charge refunded",
        extra={"mice": {"registration_id": registration_id, "refund_id": refund.pk, "reason": refund.reason}},
    )
    return refund
