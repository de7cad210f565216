"""Read-only views of the messaging records, for admin pages of other apps."""

from __future__ import annotations

import dataclasses
import datetime as dt

from django.db import connections, router, transaction
from django.db.models import Count, Min, Q
from django.utils import timezone

from mice.models import DeadLetter, HandlerFailure, InboxEntry, OutboxMessage


@dataclasses.dataclass(frozen=True)
class TimelineEntry:
    at: dt.datetime
    what: str
    detail: str


def timeline(*, correlation_id: str) -> list[TimelineEntry]:
    """Everything that happened in one saga: events emitted, handlers that ran, failures, dead letters."""
    events = list(OutboxMessage.objects.filter(correlation_id=correlation_id).order_by("id"))
    event_ids = {row.event_id for row in events}
    entries = [
        TimelineEntry(
            row.created_at,
            f"event {row.event_type}" + (f" (replay to {row.handler})" if row.handler else ""),
            f"id {row.event_id}; "
            + (f"published {row.sent_at:%H:%M:%S.%f}"[:-3] if row.sent_at else "not yet published")
            + (f"; {row.last_error}" if row.last_error else ""),
        )
        for row in events
    ]
    entries += [
        TimelineEntry(entry.processed_at, f"handled by {entry.handler}", f"event {entry.event_id}")
        for entry in InboxEntry.objects.filter(event_id__in=event_ids)
    ]
    entries += [
        TimelineEntry(
            failure.created_at,
            f"{failure.handler} failed (attempt {failure.attempt}, {failure.outcome})",
            f"{failure.exception_type}: {failure.exception_message[:200]}",
        )
        for failure in HandlerFailure.objects.filter(correlation_id=correlation_id)
    ]
    entries += [
        TimelineEntry(dead.created_at, f"dead letter in {dead.handler} ({dead.status})", dead.exception_type)
        for dead in DeadLetter.objects.filter(correlation_id=correlation_id)
    ]
    return sorted(entries, key=lambda e: e.at)


@dataclasses.dataclass(frozen=True)
class OutboxBacklog:
    pending: int  # unsent rows that are due now
    lag_seconds: float  # how long the oldest of them has been due (0 when none is)
    scheduled: int  # unsent rows held until later (a saga's deadline, a delivery retry's backoff)
    held_back: int  # unsent rows the relay failed to deliver at least once


def outbox_backlog(*, statement_timeout_ms: int | None = None) -> OutboxBacklog:
    """What the relay has yet to publish, read from the outbox's partial index of unsent rows.

    `statement_timeout_ms` bounds the queries on PostgreSQL (health checks and scrapes must answer in time).
    """
    using = router.db_for_read(OutboxMessage)
    now = timezone.now()
    with transaction.atomic(using=using):
        connection = connections[using]
        if statement_timeout_ms and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL statement_timeout = %s", [int(statement_timeout_ms)])
        unsent = OutboxMessage.objects.using(using).filter(sent_at__isnull=True)
        figures = unsent.aggregate(
            pending=Count("id", filter=Q(available_at__lte=now)),
            oldest_due=Min("available_at", filter=Q(available_at__lte=now)),
            scheduled=Count("id", filter=Q(available_at__gt=now)),
            held_back=Count("id", filter=Q(attempts__gt=0)),
        )
    oldest = figures["oldest_due"]
    return OutboxBacklog(
        pending=figures["pending"],
        lag_seconds=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
        scheduled=figures["scheduled"],
        held_back=figures["held_back"],
    )


def dead_letters_waiting() -> dict[str, int]:
    """Dead letters nobody replayed or discarded yet, per handler."""
    rows = DeadLetter.objects.filter(status=DeadLetter.Status.NEW).values_list("handler").annotate(n=Count("id"))
    return {handler or "unknown": n for handler, n in rows}
