"""Analytics' subscriptions: each event updates analytics' own rows, from which the figures are derived."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from analytics.models import RevenueEntry
from analytics.services import refund_record, registration_record_update, revenue_entry_record
from mice.consumers import subscribe
from mice.events import Event


def _time(event: Event) -> dt.datetime:
    """When it happened: the envelope's time (set when the event was emitted, in the same transaction)."""
    return dt.datetime.fromisoformat(event.time)


@subscribe("registration.created")
def count_registration(event: Event) -> None:
    registration_record_update(
        registration_id=event.data["registration_id"],
        event_slug=event.data["event"]["slug"],
        at=_time(event),
        received=True,
        confirmed=event.data.get("status") == "confirmed",  # a free event's registration is confirmed at once
    )


@subscribe("registration.confirmed")
def count_confirmation(event: Event) -> None:
    registration_record_update(
        registration_id=event.data["registration_id"],
        event_slug=event.data["event"]["slug"],
        at=_time(event),
        confirmed=True,
    )


@subscribe("registration.cancelled")
def count_cancellation(event: Event) -> None:
    registration_record_update(
        registration_id=event.data["registration_id"],
        event_slug=event.data["event"]["slug"],
        at=_time(event),
        cancelled=True,
    )


def _record_revenue(event: Event, *, kind: RevenueEntry.Kind, document_id_field: str) -> None:
    """An invoice adds to revenue, a credit note takes it back: one entry per document, whatever redelivers it."""
    revenue_entry_record(
        kind=kind,
        document_id=str(event.data[document_id_field]),
        number=str(event.data.get("number", "")),
        registration_id=event.data["registration_id"],
        event_slug=event.data["event"]["slug"],
        currency=event.data["currency"],
        net=Decimal(event.data["net"]),
        gross=Decimal(event.data["gross"]),
        at=_time(event),
    )


@subscribe("invoice.issued")
def count_invoice(event: Event) -> None:
    _record_revenue(event, kind=RevenueEntry.Kind.INVOICE, document_id_field="invoice_id")


@subscribe("credit_note.issued")
def count_credit_note(event: Event) -> None:
    _record_revenue(event, kind=RevenueEntry.Kind.CREDIT_NOTE, document_id_field="credit_note_id")


@subscribe("payment.refunded")
def count_refund(event: Event) -> None:
    refund_record(
        refund_id=str(event.data["refund_id"]),
        registration_id=event.data["registration_id"],
        event_slug=event.data["event"]["slug"],
        currency=event.data["currency"],
        amount=Decimal(event.data["amount"]),
        at=_time(event),
    )
