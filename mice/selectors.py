"""Read-only views of the messaging records, for admin pages of other apps."""

from __future__ import annotations

import dataclasses
import datetime as dt

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
