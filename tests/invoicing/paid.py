"""Test data: a succeeded charge and its payment.succeeded payload, as the charge handler leaves them."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from invoicing.models import Charge, Refund
from registrations import payloads
from registrations.models import Event
from tests.factories import make_event


def paid_charge(
    *,
    event: Event | None = None,
    amount: str | None = None,
    vat_rate: str | None = None,
    first_name: str = "Ada",
    last_name: str = "Lovelace",
    company: str = "",
    email: str = "ada@example.com",
) -> tuple[Charge, dict[str, Any]]:
    """A charge the gateway made for a (fictitious) registration of `event`, and the payment.succeeded data."""
    event = event or make_event()
    gross = Decimal(amount) if amount is not None else event.price
    registration_id = uuid.uuid4()
    charge = Charge.objects.create(
        registration_id=registration_id,
        amount=gross,
        currency=event.currency,
        status=Charge.Status.SUCCEEDED,
        gateway="sandbox",
        gateway_reference=f"ch_sandbox_{registration_id.hex[:16]}",
    )
    data = {
        "registration_id": str(registration_id),
        "charge_id": charge.pk,
        "amount": f"{gross:.2f}",
        "currency": event.currency,
        "vat_rate": vat_rate if vat_rate is not None else f"{event.vat_rate:.2f}",
        "gateway": "sandbox",
        "gateway_reference": charge.gateway_reference,
        "event": payloads.event_summary(event),
        "attendee": {"first_name": first_name, "last_name": last_name, "email": email, "company": company},
    }
    return charge, data


def refunded(charge: Charge, *, reason: str = "cancelled_by_staff") -> dict[str, Any]:
    """A succeeded refund of the whole charge, and the payment.refunded data."""
    refund = Refund.objects.create(
        charge=charge,
        amount=charge.amount,
        reason=reason,
        status=Refund.Status.SUCCEEDED,
        idempotency_key=f"refund-{charge.registration_id}",
        gateway_reference=f"re_sandbox_{charge.registration_id.hex[:16]}",
    )
    return {
        "registration_id": str(charge.registration_id),
        "charge_id": charge.pk,
        "refund_id": refund.pk,
        "amount": f"{refund.amount:.2f}",
        "currency": charge.currency,
        "gateway": "sandbox",
        "gateway_reference": refund.gateway_reference,
        "reason": reason,
        "event": {},
    }
