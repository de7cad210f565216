"""The relay's statements on outbox rows: claiming due rows with their routes, marking them sent or held back."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.db import connections
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils import timezone

from mice.models import OutboxMessage, Route
from mice.routing import route_table

# The relay's logger: these lines are the relay's account of its rows.
log = logging.getLogger("mice.relay")

# (id, event type, event id, envelope as JSON text, the handlers to send it to): an outbox row as the relay
# reads it, with its routes (or the one handler a dead-letter replay is addressed to).
Row = tuple[int, str, Any, str, list[str]]


def outbox_rows_claim(*, using: str, batch_size: int) -> list[Row]:
    """Lock the oldest due unsent rows other relays have not locked, mark them sent, read their routes
    (PostgreSQL).

    Rows are found by `sent_at IS NULL`, never by a high-water mark, so a row whose transaction
    commits late, behind higher ids, is still claimed. The envelope comes back as JSON text: it goes
    into the message body as it is. The event id comes back as text too: the message needs nothing
    else of it, and a UUID object per row, then its str(), cost more than the rest of the claim's Python.
    One statement, one round trip: each row is written once, and its routes are read in the statement's
    snapshot, taken after the row's event committed, so every route committed before that event is seen
    (mice/routing.py).
    """
    outbox, route = OutboxMessage._meta.db_table, Route._meta.db_table
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"WITH claimed AS (UPDATE {outbox} SET sent_at = now() WHERE id IN ("
            f"  SELECT id FROM {outbox} WHERE sent_at IS NULL AND available_at <= now()"
            "   ORDER BY available_at, id LIMIT %s FOR UPDATE SKIP LOCKED"
            " ) RETURNING id, event_type, event_id, handler, envelope)"
            " SELECT c.id, c.event_type, c.event_id::text, c.envelope::text, CASE WHEN c.handler <> '' THEN"
            f"  ARRAY[c.handler::text] ELSE ARRAY(SELECT r.handler::text FROM {route} r"
            "  WHERE r.event_type = c.event_type ORDER BY r.handler) END"
            " FROM claimed c ORDER BY c.id",
            [batch_size],
        )
        return [
            (row_id, etype, event_id, envelope, list(handlers))
            for row_id, etype, event_id, envelope, handlers in cursor.fetchall()
        ]


def outbox_rows_read_pending(*, using: str, batch_size: int) -> list[Row]:
    """The oldest due unsent rows, read without taking the database's write lock (SQLite), and their routes
    (read after the rows, so every route committed before their events is seen)."""
    pending = OutboxMessage.objects.using(using).filter(sent_at__isnull=True, available_at__lte=timezone.now())
    rows = list(
        pending.order_by("available_at", "id").values_list(
            "id", "event_type", "event_id", "handler", Cast("envelope", TextField())
        )[:batch_size]
    )
    routes = route_table(using=using) if rows else {}
    return [
        (row_id, etype, event_id, envelope, [handler] if handler else routes.get(etype, []))
        for row_id, etype, event_id, handler, envelope in rows
    ]


def outbox_rows_mark_sent(*, using: str, row_ids: list[int]) -> None:
    """Mark read rows sent (SQLite's path: after the broker confirmed them), unless another relay did."""
    OutboxMessage.objects.using(using).filter(id__in=row_ids, sent_at__isnull=True).update(sent_at=timezone.now())


def outbox_rows_hold_back(*, using: str, held_back: dict[int, str]) -> None:
    """Keep undelivered rows pending, each retried later with its own backoff, and say so loudly."""
    now = timezone.now()
    for row_id, reason in held_back.items():
        row = OutboxMessage.objects.using(using).only("attempts", "event_type", "event_id").get(id=row_id)
        attempts = row.attempts + 1
        delay = dt.timedelta(seconds=min(300.0, 2.0 ** min(attempts, 9)))
        OutboxMessage.objects.using(using).filter(id=row_id).update(
            sent_at=None, attempts=attempts, last_error=reason[:2000], available_at=now + delay
        )
        log.error(
            "outbox row not delivered, kept pending",
            extra={
                "mice": {
                    "outbox_id": row_id,
                    "event_id": str(row.event_id),
                    "event_type": row.event_type,
                    "attempts": attempts,
                    "error": reason,
                    "retry_in_s": delay.total_seconds(),
                }
            },
        )
