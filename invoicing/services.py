"""Charging registrations, and refunding the charges of cancelled ones."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.db import transaction

from invoicing.events import PAYMENT_FAILED, PAYMENT_REFUNDED, PAYMENT_SUCCEEDED
from invoicing.gateways import PaymentGateway, get_gateway
from invoicing.models import Charge, Refund
from mice.outbox import emit
from registrations.selectors import payment_token_get, registration_status_get

log = logging.getLogger("invoicing")


class ChargeImpossible(Exception):
    """Nothing to charge with: not retried (the registration's payment deadline will cancel it)."""


def _charge_claim(*, registration_id: str, defaults: dict[str, Any]) -> Charge:
    """The registration's charge row, inserted if missing, locked until the caller's transaction ends.

    Both the charge and a cancellation go through here, so one of them always waits for the other: a
    cancellation handled while the gateway is being called finds the outcome, not an empty table.
    (ON CONFLICT DO NOTHING waits for a concurrent insert of the same registration to commit or roll back.)
    """
    Charge.objects.bulk_create([Charge(registration_id=registration_id, **defaults)], ignore_conflicts=True)
    return Charge.objects.select_for_update().get(registration_id=registration_id)


def _charge_reconcile(*, charge: Charge, gateway: PaymentGateway) -> bool:
    """Record a charge the gateway made for an attempt whose transaction never committed; True if there was one.

    The charge runs inside the handler's transaction: if the gateway charged and the commit then failed (the
    worker died, the database dropped, the provider answered after our timeout), no row says so. Before a
    charge is given up as never made (its registration was cancelled), the gateway is asked by the same
    idempotency key, so such a charge is refunded instead of forgotten.
    """
    made = gateway.charge_made(idempotency_key=str(charge.registration_id))
    if made is None:
        return False
    charge.status = Charge.Status.SUCCEEDED
    charge.gateway, charge.gateway_reference = gateway.name, made.reference
    charge.amount, charge.currency = made.amount, made.currency
    charge.save(update_fields=["status", "gateway", "gateway_reference", "amount", "currency"])
    log.warning(
        "charge found at the gateway for a cancelled registration",
        extra={"mice": {"registration_id": str(charge.registration_id), "gateway_reference": made.reference}},
    )
    return True


def charge_create(*, registration: dict[str, Any]) -> Charge | None:
    """Charge a registration once (its id is the idempotency key) and emit the outcome.

    A decline is a business outcome (payment.failed), not an exception. A transient gateway error
    propagates so the handler retries; the gateway's idempotency makes the retry safe. A registration
    already cancelled (its payment deadline passed while the charge was retried, or staff cancelled it)
    is not charged: its row is voided. Returns None for a free registration, which needs no charge.
    """
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
            return charge
        # Asked after the row is claimed: a cancellation committed later than this read finds the row
        # locked, waits for the outcome and refunds it if it succeeded.
        if registration_status_get(registration_id=registration_id) == "cancelled":
            if not _charge_reconcile(charge=charge, gateway=gateway):
                charge.status = Charge.Status.VOIDED
                charge.save(update_fields=["status"])
                log.info("charge voided: registration cancelled", extra={"mice": {"registration_id": registration_id}})
            return charge  # reconciled as succeeded: the cancellation's handler (to come) refunds it
        # Version 1 of registration.created carried the token (an old web process may still emit it during
        # a deploy); version 2 leaves it with registrations.
        token = registration.get("payment_token") or payment_token_get(registration_id=registration_id)
        if not token:
            raise ChargeImpossible(f"registration {registration_id} has no payment token")
        result = gateway.charge(token=token, amount=amount, currency=charge.currency, idempotency_key=registration_id)
        charge.status = Charge.Status.SUCCEEDED if result.succeeded else Charge.Status.DECLINED
        charge.gateway_reference = result.reference
        charge.decline_code = result.decline_code
        charge.save(update_fields=["status", "gateway_reference", "decline_code"])
        if result.succeeded:
            emit(
                PAYMENT_SUCCEEDED,
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
            emit(
                PAYMENT_FAILED,
                subject=registration_id,
                data={"registration_id": registration_id, "reason": result.decline_code, "message": result.message},
            )
    return charge


def refund_create(*, cancelled: dict[str, Any]) -> Refund | None:
    """On a registration's cancellation: refund its charge if it succeeded, or make sure none ever happens.

    `cancelled` is registration.cancelled's data. With no charge yet for a registration that was pending, a
    voided row is left, so a charge still queued or retrying never reaches the gateway. A charge being
    made right now is waited for (its row is locked), then refunded if it succeeded. The refund row and
    the gateway's idempotency key (`refund-<registration id>`) make the refund happen once.
    """
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
        if charge is not None and charge.status == Charge.Status.VOIDED:
            _charge_reconcile(charge=charge, gateway=get_gateway())
        if charge is None or charge.status != Charge.Status.SUCCEEDED:
            return None
        existing = Refund.objects.filter(charge=charge).first()
        if existing is not None:
            return existing
        refund = Refund.objects.create(
            charge=charge,
            amount=charge.amount,
            reason=str(cancelled.get("reason", ""))[:200],
            idempotency_key=f"refund-{registration_id}",
        )
        result = get_gateway().refund(
            charge_reference=charge.gateway_reference, amount=charge.amount, idempotency_key=refund.idempotency_key
        )
        refund.status = Refund.Status.SUCCEEDED
        refund.gateway_reference = result.reference
        refund.save(update_fields=["status", "gateway_reference", "updated_at"])
        emit(
            PAYMENT_REFUNDED,
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
                "event": cancelled.get("event", {}),
            },
            correlation_id=registration_id,
        )
    log.info(
        "charge refunded",
        extra={"mice": {"registration_id": registration_id, "refund_id": refund.pk, "reason": refund.reason}},
    )
    return refund
