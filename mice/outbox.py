"""Emitting events: the only way to publish is an outbox row written in the caller's transaction.

Apps send domain signals (`REGISTRATION_CREATED.send(subject=..., data=...)`, mice/events.py); the outbox is
the receiver of every event type's signal and turns each into a row here. `emit` is the same, called directly.
"""

from __future__ import annotations

import contextvars
import datetime as dt
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from django.db import connections, router, transaction
from django.utils import timezone

from mice.events import Envelope, EventType, connect_to_every_type, get_event_type
from mice.metrics import EVENTS_EMITTED
from mice.models import OutboxMessage


class OutboxError(RuntimeError):
    """Emitting outside a transaction: the event would not commit or roll back with its cause."""


# The event whose handler is running, so that events it emits inherit its correlation id and
# name it as their cause without every handler threading them through by hand.
_causing_envelope: contextvars.ContextVar[Envelope | None] = contextvars.ContextVar(
    "mice_causing_envelope", default=None
)


@contextmanager
def caused_by(envelope: Envelope) -> Iterator[None]:
    token = _causing_envelope.set(envelope)
    try:
        yield
    finally:
        _causing_envelope.reset(token)


def emit(
    etype: EventType | str,
    *,
    subject: str,
    data: Mapping[str, Any],
    correlation_id: str | None = None,
    deliver_at: dt.datetime | None = None,
) -> Envelope:
    """Record an event in the outbox, in the current transaction; the relay publishes it after commit.

    Inside a handler the new event carries the handled event's correlation id and names it as cause.
    Outside one (staff or an attendee acting on a running saga, upkeep), an event joining an existing saga
    names that saga's latest event as its cause, so the saga's timeline stays one chain.
    `deliver_at` holds the event back until then (a saga's timeout): the relay claims only rows whose
    `available_at` has come, so the delay survives any restart and needs no scheduler.
    """
    declared = get_event_type(etype) if isinstance(etype, str) else etype
    if declared.retired:
        raise OutboxError(f"event type {declared.name!r} is retired and must not be emitted")
    connection = connections[router.db_for_write(OutboxMessage)]
    if not connection.in_atomic_block:
        raise OutboxError(
            f"emit({declared.name!r}) was called outside transaction.atomic(): wrap the business change and "
            "the emit in one atomic block so the event commits, or rolls back, with it"
        )
    cause = _causing_envelope.get()
    causation_id = cause.id if cause else None
    if cause is None and correlation_id:
        causation_id = _saga_latest_event_id(correlation_id)
    envelope = Envelope.new(
        declared,
        subject=subject,
        data=data,
        correlation_id=correlation_id or (cause.correlationid if cause else None),
        causation_id=causation_id,
    )
    outbox_store(envelope=envelope, deliver_at=deliver_at)
    transaction.on_commit(EVENTS_EMITTED.labels(declared.name).inc, using=connection.alias)
    return envelope


def _saga_latest_event_id(correlation_id: str) -> str | None:
    """The saga's latest event that has happened: not a replay's copy, nor a timeout still held back.

    None for a saga's first event, and for a saga whose rows the retention has purged.
    """
    latest = (
        OutboxMessage.objects.filter(correlation_id=correlation_id, handler="", available_at__lte=timezone.now())
        .order_by("-id")
        .values_list("event_id", flat=True)
        .first()
    )
    return str(latest) if latest else None


def outbox_store(*, envelope: Envelope, handler: str = "", deliver_at: dt.datetime | None = None) -> OutboxMessage:
    """Write the row; `handler` restricts delivery to one handler (a dead-letter replay).

    `deliver_at` (timezone-aware) is the earliest moment the relay publishes it; now when not given.
    """
    if deliver_at is not None and timezone.is_naive(deliver_at):
        raise ValueError("deliver_at must be timezone-aware")
    return OutboxMessage.objects.create(
        event_id=envelope.id,
        event_type=envelope.type,
        correlation_id=envelope.correlationid,
        envelope=envelope.to_dict(),
        handler=handler,
        available_at=deliver_at or timezone.now(),
    )


def outbox_purge(*, retention: dt.timedelta, chunk: int = 5000) -> int:
    """Delete sent outbox rows older than the retention, in chunks (the relay calls it now and then)."""
    queryset = OutboxMessage.objects.filter(sent_at__lt=timezone.now() - retention)
    return purge_in_chunks(queryset, chunk=chunk)


def purge_in_chunks(queryset: Any, *, chunk: int = 5000) -> int:
    """Delete what `queryset` selects, `chunk` rows per statement, so no purge holds long locks."""
    purged = 0
    while True:
        ids = list(queryset.values_list("id", flat=True)[:chunk])
        if not ids:
            return purged
        purged += queryset.model.objects.filter(id__in=ids).delete()[0]


def _record_domain_signal(
    sender: EventType,
    *,
    subject: str,
    data: Mapping[str, Any],
    correlation_id: str | None = None,
    deliver_at: dt.datetime | None = None,
    **kwargs: Any,
) -> Envelope:
    """The outbox as the receiver of every event type's domain signal."""
    return emit(sender, subject=subject, data=data, correlation_id=correlation_id, deliver_at=deliver_at)


connect_to_every_type(_record_domain_signal)
