"""Charging registrations."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction

from invoicing.events import PAYMENT_FAILED, PAYMENT_SUCCEEDED
from invoicing.gateways import get_gateway
from invoicing.models import Charge
from mice.outbox import emit
from registrations.selectors import payment_token_get


class ChargeImpossible(Exception):
    """Nothing to charge with: not retried (the registration's payment deadline will cancel it)."""


def charge_create(*, registration: dict[str, Any]) -> Charge | None:
    """Charge a registration once (its id is the idempotency key) and emit the outcome.

    A decline is a business outcome (payment.failed), not an exception. A transient gateway error
    propagates so the handler retries; the gateway's idempotency makes the retry safe.
    Returns None for a free registration, which needs no charge.
    """
    registration_id = registration["registration_id"]
    amount = Decimal(registration["amount"])
    if amount == 0:
        return None
    existing = Charge.objects.filter(registration_id=registration_id).first()
    if existing is not None:
        return existing
    # Version 1 of registration.created carried the token (still emitted by an old web process during a
    # deploy); version 2 leaves it with registrations.
    token = registration.get("payment_token") or payment_token_get(registration_id=registration_id)
    if not token:
        raise ChargeImpossible(f"registration {registration_id} has no payment token")
    gateway = get_gateway()
    result = gateway.charge(
        token=token,
        amount=amount,
        currency=registration["currency"],
        idempotency_key=str(registration_id),
    )
    with transaction.atomic():
        charge = Charge.objects.create(
            registration_id=registration_id,
            amount=amount,
            currency=registration["currency"],
            status=Charge.Status.SUCCEEDED if result.succeeded else Charge.Status.DECLINED,
            gateway=gateway.name,
            gateway_reference=result.reference,
            decline_code=result.decline_code,
        )
        if result.succeeded:
            emit(
                PAYMENT_SUCCEEDED,
                subject=str(registration_id),
                data={
                    "registration_id": str(registration_id),
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
                subject=str(registration_id),
                data={
                    "registration_id": str(registration_id),
                    "reason": result.decline_code,
                    "message": result.message,
                },
            )
    return charge
