"""Events about made-up registrations, shaped as registrations/events.py and invoicing/events.py shape them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from invoicing.events import CREDIT_NOTE_ISSUED, INVOICE_ISSUED, PAYMENT_REFUNDED
from mice.events import Event, EventType
from registrations.events import REGISTRATION_CANCELLED, REGISTRATION_CONFIRMED, REGISTRATION_CREATED
from registrations.models import Event as MiceEvent

ATTENDEE = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", "company": ""}


@dataclasses.dataclass
class Story:
    """The events one registration produced, in the order they happened."""

    registration_id: str
    events: list[Event]


def _event(etype: EventType, registration_id: str, data: dict[str, Any], at: dt.datetime) -> Event:
    made = Event.new(etype, subject=registration_id, data=data, correlation_id=registration_id)
    return dataclasses.replace(made, time=at.isoformat())


def _event_ref(event: MiceEvent) -> dict[str, str]:
    return {"slug": event.slug, "name": event.name, "venue": event.venue, "starts_at": event.starts_at.isoformat()}


def created(event: MiceEvent, rid: str, at: dt.datetime, *, free: bool = False) -> Event:
    data = {
        "registration_id": rid,
        "status": "confirmed" if free else "pending",
        "event": _event_ref(event),
        "attendee": ATTENDEE,
        "amount": str(event.price),
        "currency": event.currency,
        "vat_rate": str(event.vat_rate),
    }
    return _event(REGISTRATION_CREATED, rid, data, at)


def confirmed(event: MiceEvent, rid: str, at: dt.datetime) -> Event:
    return _event(
        REGISTRATION_CONFIRMED, rid, {"registration_id": rid, "event": _event_ref(event), "attendee": ATTENDEE}, at
    )


def cancelled(event: MiceEvent, rid: str, at: dt.datetime, *, was_confirmed: bool = False) -> Event:
    data = {
        "registration_id": rid,
        "event": _event_ref(event),
        "attendee": ATTENDEE,
        "reason": "payment_failed:card_declined",
        "was_confirmed": was_confirmed,
    }
    return _event(REGISTRATION_CANCELLED, rid, data, at)


def _amounts(gross: Decimal, currency: str) -> dict[str, str]:
    net = (gross / Decimal("1.2")).quantize(Decimal("0.01"))
    return {"currency": currency, "net": str(net), "vat_rate": "20.00", "vat": str(gross - net), "gross": str(gross)}


def invoice_issued(event: MiceEvent, rid: str, at: dt.datetime, *, invoice_id: int, gross: Decimal) -> Event:
    data = {
        "registration_id": rid,
        "invoice_id": invoice_id,
        "number": f"2027-{invoice_id:06d}",
        "issued_on": at.date().isoformat(),
        **_amounts(gross, event.currency),
        "event": {"slug": event.slug, "name": event.name},
        "attendee": ATTENDEE,
    }
    return _event(INVOICE_ISSUED, rid, data, at)


def credit_note_issued(
    event: MiceEvent, rid: str, at: dt.datetime, *, credit_note_id: int, invoice_id: int, gross: Decimal
) -> Event:
    data = {
        "registration_id": rid,
        "credit_note_id": credit_note_id,
        "number": f"CN-2027-{credit_note_id:06d}",
        "invoice_number": f"2027-{invoice_id:06d}",
        "issued_on": at.date().isoformat(),
        **_amounts(gross, event.currency),
        "event": {"slug": event.slug, "name": event.name},
    }
    return _event(CREDIT_NOTE_ISSUED, rid, data, at)


def payment_refunded(event: MiceEvent, rid: str, at: dt.datetime, *, refund_id: int, amount: Decimal) -> Event:
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
    return _event(PAYMENT_REFUNDED, rid, data, at)


def new_id() -> str:
    return str(uuid.uuid4())
