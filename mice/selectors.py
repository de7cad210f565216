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
class HandlerOutcome:
    """What one handler made of one event: processed, retrying, dead-lettered, or not yet run."""

    handler: str
    outcome: str
    at: dt.datetime | None
    failures: tuple[tuple[int, str, str], ...]  # (attempt, outcome, "ExceptionType: message")
    dead_letter_id: int | None = None
    dead_letter_status: str = ""


@dataclasses.dataclass(frozen=True)
class SagaStep:
    """One event of a saga, what caused it, and every handler's outcome."""

    event_id: str
    event_type: str
    at: dt.datetime
    causation_id: str | None
    cause_type: str | None
    published_at: dt.datetime | None
    due_at: dt.datetime  # when the relay may publish it: later than `at` for a held-back timeout or retry
    last_error: str
    replay_to: str
    handlers: tuple[HandlerOutcome, ...]


def saga(*, correlation_id: str) -> list[SagaStep]:
    """A saga as a chain of events, each with every subscribed handler's outcome: the failure console's view.

    The handlers expected are the subscriptions this process knows for the type (a replay: its one handler),
    plus any other that left a trace (an inbox row, a failure, a dead letter), such as a retired handler.
    """
    from mice.subscriptions import SUBSCRIPTIONS  # filled once every app's handlers were discovered

    rows = list(OutboxMessage.objects.filter(correlation_id=correlation_id).order_by("created_at", "id"))
    event_ids = {row.event_id for row in rows}
    type_of = {str(row.event_id): row.event_type for row in rows}
    processed = {
        (str(entry.event_id), entry.handler): entry.processed_at
        for entry in InboxEntry.objects.filter(event_id__in=event_ids)
    }
    failures: dict[tuple[str, str], list[HandlerFailure]] = {}
    for failure in HandlerFailure.objects.filter(correlation_id=correlation_id).order_by("created_at", "id"):
        failures.setdefault((str(failure.event_id), failure.handler), []).append(failure)
    dead: dict[tuple[str, str], DeadLetter] = {
        (str(letter.event_id), letter.handler): letter
        for letter in DeadLetter.objects.filter(correlation_id=correlation_id).order_by("created_at", "id")
    }
    steps = []
    for row in rows:
        event_id = str(row.event_id)
        expected = (
            [row.handler]
            if row.handler
            else [sub.handler for sub in SUBSCRIPTIONS.values() if sub.event_type == row.event_type]
        )
        # A replay goes to its one handler: the other handlers' traces belong to the original event's row.
        traced = set() if row.handler else {h for (eid, h) in {*processed, *failures, *dead} if eid == event_id}
        outcomes = []
        for handler in sorted(set(expected) | traced):
            key = (event_id, handler)
            tried = failures.get(key, [])
            letter = dead.get(key)
            if key in processed:
                outcome, at = "processed", processed[key]
            elif letter is not None:
                outcome, at = "dead-lettered", letter.created_at
            elif tried:
                outcome, at = tried[-1].outcome, tried[-1].created_at
            else:
                outcome, at = "waiting", None
            outcomes.append(
                HandlerOutcome(
                    handler=handler,
                    outcome=outcome,
                    at=at,
                    failures=tuple(
                        (f.attempt, f.outcome, f"{f.exception_type.rpartition('.')[2]}: {f.exception_message[:200]}")
                        for f in tried
                    ),
                    dead_letter_id=letter.pk if letter else None,
                    dead_letter_status=letter.status if letter else "",
                )
            )
        causation = row.envelope.get("causationid")
        steps.append(
            SagaStep(
                event_id=event_id,
                event_type=row.event_type,
                at=row.created_at,
                causation_id=causation,
                cause_type=type_of.get(str(causation)) if causation else None,
                published_at=row.sent_at,
                due_at=row.available_at,
                last_error=row.last_error,
                replay_to=row.handler,
                handlers=tuple(outcomes),
            )
        )
    return steps


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


@dataclasses.dataclass(frozen=True)
class OutboxState:
    """What an operator asks of the outbox (admin's outbox page): is the relay keeping up, is anything stuck?"""

    backlog: OutboxBacklog
    held_back: list[OutboxMessage]  # due rows the relay tried and could not send, with their last error
    relayed_last_minute: int
    relayed_last_5_minutes: int

    @property
    def relay_rate(self) -> float:
        """Events relayed per second over the last five minutes."""
        return self.relayed_last_5_minutes / 300


def outbox_state(*, held_back_limit: int = 20) -> OutboxState:
    now = timezone.now()
    sent = OutboxMessage.objects.filter(sent_at__gte=now - dt.timedelta(minutes=5)).aggregate(
        five=Count("id"), one=Count("id", filter=Q(sent_at__gte=now - dt.timedelta(minutes=1)))
    )
    return OutboxState(
        backlog=outbox_backlog(),
        held_back=list(
            OutboxMessage.objects.filter(sent_at__isnull=True, available_at__lte=now, attempts__gt=0).order_by("id")[
                :held_back_limit
            ]
        ),
        relayed_last_minute=sent["one"],
        relayed_last_5_minutes=sent["five"],
    )
