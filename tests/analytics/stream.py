"""Events about made-up registrations, shaped as registrations/events.py and invoicing/events.py shape them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from invoicing.events import CREDIT_NOTE_ISSUED, INVOICE_ISSUED, PAYMENT_REFUNDED
from mice.events import Envelope, EventType
from registrations.events import REGISTRATION_CANCELLED, REGISTRATION_CONFIRMED, REGISTRATION_CREATED
from registrations.models import Event

ATTENDEE = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", "company": ""}


@dataclasses.dataclass
class Story:
    """The events one registration produced, in the order they happened."""

    registration_id: str
    events: list[Envelope]


def _envelope(etype: EventType, registration_id: str, data: dict[str, Any], at: dt.datetime) -> Envelope:
    made = Envelope.new(etype, subject=registration_id, data=data, correlation_id=registration_id)
    return dataclasses.replace(made, time=at.isoformat())


def _event_ref(event: Event) -> dict[str, str]:
    return {"slug": event.slug, "name": event.name, "venue": event.venue, "starts_at": event.starts_at.isoformat()}


def created(event: Event, rid: str, at: dt.datetime, *, free: bool = False) -> Envelope:
    data = {
        "registration_id": rid,
        "status": "confirmed" if free else "pending",
        "event": _event_ref(event),
        "attendee": ATTENDEE,
        "amount": str(event.price),
        "currency": event.currency,
        "vat_rate": str(event.vat_rate),
    }
    return _envelope(REGISTRATION_CREATED, rid, data, at)


def confirmed(event: Event, rid: str, at: dt.datetime) -> Envelope:
    return _envelope(
        REGISTRATION_CONFIRMED, rid, {"registration_id": rid, "event": _event_ref(event), "attendee": ATTENDEE}, at
    )


def cancelled(event: Event, rid: str, at: dt.datetime, *, was_confirmed: bool = False) -> Envelope:
    data = {
        "registration_id": rid,
        "event": _event_ref(event),
        "attendee": ATTENDEE,
        "reason": "payment_failed:card_declined",
        "was_confirmed": was_confirmed,
    }
    return _envelope(REGISTRATION_CANCELLED, rid, data, at)


def _amounts(gross: Decimal, currency: str) -> dict[str, str]:
    net = (gross / Decimal("1.2")).quantize(Decimal("0.01"))
    return {"currency": currency, "net": str(net), "vat_rate": "20.00", "vat": str(gross - net), "gross": str(gross)}


def invoice_issued(event: Event, rid: str, at: dt.datetime, *, invoice_id: int, gross: Decimal) -> Envelope:
    data = {
        "registration_id": rid,
        "invoice_id": invoice_id,
        "number": f"2027-{invoice_id:06d}",
        "issued_on": at.date().isoformat(),
        **_amounts(gross, event.currency),
        "event": {"slug": event.slug, "name": event.name},
        "attendee": ATTENDEE,
    }
    return _envelope(INVOICE_ISSUED, rid, data, at)


def credit_note_issued(
    event: Event, rid: str, at: dt.datetime, *, credit_note_id: int, invoice_id: int, gross: Decimal
) -> Envelope:
    data = {
        "registration_id": rid,
        "credit_note_id": credit_note_id,
        "number": f"CN-2027-{credit_note_id:06d}",
        "invoice_number": f"2027-{invoice_id:06d}",
        "issued_on": at.date().isoformat(),
        **_amounts(gross, event.currency),
        "event": {"slug": event.slug, "name": event.name},
    }
    return _envelope(CREDIT_NOTE_ISSUED, rid, data, at)


def payment_refunded(event: Event, rid: str, at: dt.datetime, *, refund_id: int, amount: Decimal) -> Envelope:
    data = {
        "registration_id": rid,
        "charge_id": refund_id,
        "refund_id": refund_id,
        "amount": str(amount),
        "currency": event.currency,
        "gateway": "sandbox",
        "gateway_reference": f"re_sandbox_{refund_id:04d}",
        "reason": "cancelled_by_staff",
        "event": {"slug": event.slug, "name": event.name},
    }
    return _envelope(PAYMENT_REFUNDED, rid, data, at)


def new_id() -> str:
    return str(uuid.uuid4())
