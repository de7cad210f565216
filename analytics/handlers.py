"""Analytics' subscriptions: each event updates analytics' own rows, from which the figures are derived."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from analytics.models import RevenueEntry
from analytics.services import refund_record, registration_record_update, revenue_entry_record
from mice.events import Envelope
from mice.handlers import subscribe


def _time(envelope: Envelope) -> dt.datetime:
    """When it happened: the envelope's time (set when the event was emitted, in the same transaction)."""
    return dt.datetime.fromisoformat(envelope.time)


@subscribe("registration.created")
def count_registration(envelope: Envelope) -> None:
    registration_record_update(
        registration_id=envelope.data["registration_id"],
        event_slug=envelope.data["event"]["slug"],
        at=_time(envelope),
        received=True,
        confirmed=envelope.data.get("status") == "confirmed",  # a free event's registration is confirmed at once
    )


@subscribe("registration.confirmed")
def count_confirmation(envelope: Envelope) -> None:
    registration_record_update(
        registration_id=envelope.data["registration_id"],
        event_slug=envelope.data["event"]["slug"],
        at=_time(envelope),
        confirmed=True,
    )


@subscribe("registration.cancelled")
def count_cancellation(envelope: Envelope) -> None:
    registration_record_update(
        registration_id=envelope.data["registration_id"],
        event_slug=envelope.data["event"]["slug"],
        at=_time(envelope),
        cancelled=True,
    )


def _record_revenue(envelope: Envelope, *, kind: RevenueEntry.Kind, document_id_field: str) -> None:
    """An invoice adds to revenue, a credit note takes it back: one entry per document, whatever redelivers it."""
    revenue_entry_record(
        kind=kind,
        document_id=str(envelope.data[document_id_field]),
        number=str(envelope.data.get("number", "")),
        registration_id=envelope.data["registration_id"],
        event_slug=envelope.data["event"]["slug"],
        currency=envelope.data["currency"],
        net=Decimal(envelope.data["net"]),
        gross=Decimal(envelope.data["gross"]),
        at=_time(envelope),
    )


@subscribe("invoice.issued")
def count_invoice(envelope: Envelope) -> None:
    _record_revenue(envelope, kind=RevenueEntry.Kind.INVOICE, document_id_field="invoice_id")


@subscribe("credit_note.issued")
def count_credit_note(envelope: Envelope) -> None:
    _record_revenue(envelope, kind=RevenueEntry.Kind.CREDIT_NOTE, document_id_field="credit_note_id")


@subscribe("payment.refunded")
def count_refund(envelope: Envelope) -> None:
    refund_record(
        refund_id=str(envelope.data["refund_id"]),
        registration_id=envelope.data["registration_id"],
        event_slug=envelope.data["event"]["slug"],
        currency=envelope.data["currency"],
        amount=Decimal(envelope.data["amount"]),
        at=_time(envelope),
    )
