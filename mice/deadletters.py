"""Dead letters: recording what RabbitMQ dead-lettered, and replaying or discarding it."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from django.db import transaction

from mice.events import Event
from mice.models import DeadLetter, DeadLetterAction, HandlerFailure
from mice.outbox import outbox_store

log = logging.getLogger("mice.deadletters")


class ReplayError(RuntimeError):
    """The dead letter cannot be replayed as it is (already handled, or no readable event)."""


def _plain(value: Any) -> Any:
    """AMQP header values (datetimes, bytes, nested tables) made JSON-ready."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def dead_letter_record(*, body: bytes | str, headers: Mapping[str, Any], routing_key: str) -> DeadLetter:
    """Store one dead-lettered message; recording the same message twice returns the first row."""
    headers = _plain(dict(headers or {}))
    raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    x_death: list[dict[str, Any]] = headers.get("x-death") or []
    # x-death is sorted most recent first: a retried message first "expired" in a retry queue and
    # then was "rejected" by its work queue, which is the death that counts.
    last_death = x_death[0] if x_death else {}
    queue = str(last_death.get("queue") or headers.get("x-last-death-queue") or "")
    reason = str(last_death.get("reason") or headers.get("x-last-death-reason") or "")
    routing_keys = last_death.get("routing-keys") or [routing_key]
    try:
        parsed: Any = json.loads(raw)
    except ValueError:
        parsed = None
    envelope = parsed[0][0] if isinstance(parsed, list) and parsed and parsed[0] else None
    envelope = envelope if isinstance(envelope, dict) else None
    event_id = str(headers.get("mice_event_id") or (envelope or {}).get("id") or "")
    handler = str(headers.get("task") or queue)
    task_id = str(headers.get("id") or "")
    key = f"{task_id or uuid.uuid5(uuid.NAMESPACE_OID, raw)}:{queue}:{reason}"
    failure = _last_failure(event_id, handler)
    if failure is not None:
        exception_type, exception_message, tb = failure.exception_type, failure.exception_message, failure.traceback
    elif reason == "delivery_limit":
        exception_type = "WorkerLost"
        exception_message = (
            f"the worker running {handler} died {last_death.get('count', '?')} time(s) in a row on this message "
            f"(delivery limit reached)"
        )
        tb = ""
    else:
        exception_type, exception_message, tb = "", f"dead-lettered by RabbitMQ: {reason}", ""
    dead_letter, created = DeadLetter.objects.get_or_create(
        key=key[:200],
        defaults={
            "event_id": _uuid_or_none(event_id),
            "event_type": str(headers.get("mice_event_type") or (envelope or {}).get("type") or ""),
            "correlation_id": str(headers.get("mice_correlation_id") or (envelope or {}).get("correlationid") or ""),
            "handler": handler,
            "queue": queue,
            "routing_key": str(routing_keys[0] if routing_keys else routing_key),
            "reason": reason,
            "attempts": int(headers.get("mice_attempt") or 1),
            "exception_type": exception_type,
            "exception_message": exception_message,
            "traceback": tb,
            "body": parsed,
            "raw_body": raw,
            "headers": headers,
            "x_death": x_death,
        },
    )
    log.info(
        "dead letter recorded" if created else "dead letter already recorded",
        extra={
            "mice": {
                "dead_letter_id": dead_letter.pk,
                "event_id": event_id,
                "correlation_id": dead_letter.correlation_id,
                "handler": handler,
                "reason": reason,
                "exception": exception_type,
            }
        },
    )
    return dead_letter


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _last_failure(event_id: str, handler: str) -> HandlerFailure | None:
    if _uuid_or_none(event_id) is None:
        return None
    return HandlerFailure.objects.filter(event_id=event_id, handler=handler).order_by("-id").first()


def dead_letter_replay(*, dead_letter: DeadLetter, user: Any) -> DeadLetter:
    """Send the message again to the one handler it failed in, through the outbox (so transactionally)."""
    with transaction.atomic():
        locked = DeadLetter.objects.select_for_update().get(pk=dead_letter.pk)
        if locked.status != DeadLetter.Status.NEW:
            raise ReplayError(f"dead letter {locked.pk} is already {locked.status}")
        body: Any = locked.body
        try:
            event = Event.from_dict(body[0][0])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ReplayError(f"dead letter {locked.pk} holds no readable event: {exc!r}") from exc
        if not locked.handler:
            raise ReplayError(f"dead letter {locked.pk} names no handler to replay to")
        outbox_id = outbox_store(event=event, handler=locked.handler).pk
        locked.status = DeadLetter.Status.REPLAYED
        locked.save(update_fields=["status", "updated_at"])
        DeadLetterAction.objects.create(
            dead_letter=locked, action=DeadLetterAction.Action.REPLAYED, user=user, outbox_message_id=outbox_id
        )
    log.info(
        "dead letter replayed",
        extra={"mice": {"dead_letter_id": locked.pk, "event_id": event.id, "handler": locked.handler}},
    )
    return locked


def dead_letter_discard(*, dead_letter: DeadLetter, user: Any) -> DeadLetter:
    with transaction.atomic():
        locked = DeadLetter.objects.select_for_update().get(pk=dead_letter.pk)
        if locked.status != DeadLetter.Status.NEW:
            raise ReplayError(f"dead letter {locked.pk} is already {locked.status}")
        locked.status = DeadLetter.Status.DISCARDED
        locked.save(update_fields=["status", "updated_at"])
        DeadLetterAction.objects.create(dead_letter=locked, action=DeadLetterAction.Action.DISCARDED, user=user)
    log.info("dead letter discarded", extra={"mice": {"dead_letter_id": locked.pk, "handler": locked.handler}})
    return locked
