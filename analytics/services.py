"""Recording what the events say about registrations and revenue (called by the handlers, once per event).

Every write here converges: whatever order a registration's events arrive in, and however often one is
delivered, the row ends with the same values (timestamps take the earliest time reported, a cancellation is
final, a document is stored once), so the figures derived from the rows are exact.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from django.db import transaction

from analytics.models import RefundRecord, RegistrationRecord, RevenueEntry
from mice.events import Envelope
from mice.subscriptions import SUBSCRIPTIONS


def _earliest(current: dt.datetime | None, candidate: dt.datetime) -> dt.datetime:
    return candidate if current is None or candidate < current else current


def registration_record_update(
    *,
    registration_id: uuid.UUID | str,
    event_slug: str,
    at: dt.datetime,
    received: bool = False,
    confirmed: bool = False,
    cancelled: bool = False,
) -> RegistrationRecord:
    """Note one event about a registration: it was received (registered), confirmed and/or cancelled `at`.

    The row is inserted if missing (a no-op when a concurrent handler for the same registration inserted
    it first) and then locked, so two handlers of one registration never overwrite each other's field.
    The status follows from the timestamps: a cancellation wins over a confirmation, whichever came first
    (registrations never confirms a cancelled registration, nor revives one).
    """
    with transaction.atomic():
        RegistrationRecord.objects.bulk_create(
            [RegistrationRecord(registration_id=registration_id, event_slug=event_slug, received_at=at)],
            ignore_conflicts=True,
        )
        record = RegistrationRecord.objects.select_for_update().get(registration_id=registration_id)
        if received and not record.received_at_known:
            record.received_at, record.received_at_known = at, True
        elif not record.received_at_known:
            record.received_at = _earliest(record.received_at, at)
        if confirmed:
            record.confirmed_at = _earliest(record.confirmed_at, at)
        if cancelled:
            record.cancelled_at = _earliest(record.cancelled_at, at)
        if record.cancelled_at is not None:
            record.status = RegistrationRecord.Status.CANCELLED
        elif record.confirmed_at is not None:
            record.status = RegistrationRecord.Status.CONFIRMED
        else:
            record.status = RegistrationRecord.Status.PENDING
        record.save(update_fields=["received_at", "received_at_known", "confirmed_at", "cancelled_at", "status"])
    return record


def revenue_entry_record(
    *,
    kind: RevenueEntry.Kind,
    document_id: str,
    number: str,
    registration_id: uuid.UUID | str,
    event_slug: str,
    currency: str,
    net: Decimal,
    gross: Decimal,
    at: dt.datetime,
) -> None:
    """Count an invoice's amounts, or subtract a credit note's; a document already counted is not counted again.

    Revenue comes from invoices and credit notes, not from payment events: a charge that succeeded after its
    registration was cancelled is refunded without an invoice, so counting payments would count it.
    """
    sign = Decimal(-1) if kind == RevenueEntry.Kind.CREDIT_NOTE else Decimal(1)
    RevenueEntry.objects.bulk_create(
        [
            RevenueEntry(
                kind=kind,
                document_id=document_id,
                number=number,
                registration_id=registration_id,
                event_slug=event_slug,
                currency=currency,
                net=sign * abs(net),
                gross=sign * abs(gross),
                issued_at=at,
            )
        ],
        ignore_conflicts=True,
    )


def refund_record(
    *,
    refund_id: str,
    registration_id: uuid.UUID | str,
    event_slug: str,
    currency: str,
    amount: Decimal,
    at: dt.datetime,
) -> None:
    """Note a refunded charge once (shown on the dashboard; revenue itself moves only with credit notes)."""
    RefundRecord.objects.bulk_create(
        [
            RefundRecord(
                refund_id=refund_id,
                registration_id=registration_id,
                event_slug=event_slug,
                currency=currency,
                amount=amount,
                refunded_at=at,
            )
        ],
        ignore_conflicts=True,
    )


def records_replay(*, envelopes: Iterable[Mapping[str, Any]]) -> int:
    """Apply events to analytics' rows as its handlers do, outside the inbox; returns how many were applied.

    Safe beside the running handlers and any number of times: every write converges (see the module's
    docstring), so an event applied here and again by its handler counts once.
    """
    handlers: dict[str, list[Callable[[Envelope], None]]] = {}
    for subscription in SUBSCRIPTIONS.values():
        if subscription.handler.startswith("analytics."):
            handlers.setdefault(subscription.event_type, []).append(subscription.func)
    applied = 0
    for stored in envelopes:
        funcs = handlers.get(str(stored.get("type")), [])
        if not funcs:
            continue
        envelope = Envelope.from_dict(stored)
        with transaction.atomic():
            for func in funcs:
                func(envelope)
        applied += 1
    return applied
