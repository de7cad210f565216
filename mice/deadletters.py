"""Dead letters: recording what RabbitMQ dead-lettered, and replaying or discarding it."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from django.db import transaction

from mice.events import EVENT_TYPES, Envelope
from mice.metrics import DEAD_LETTERS_RECORDED, known_label
from mice.models import DeadLetter, DeadLetterAction, HandlerFailure
from mice.outbox import outbox_store
from mice.subscriptions import SUBSCRIPTIONS

log = logging.getLogger("mice.deadletters")


# Why RabbitMQ dead-letters a message (x-death "reason"): the values a metric label may take.
DEATH_REASONS = frozenset({"rejected", "expired", "maxlen", "delivery_limit"})


class ReplayError(RuntimeError):
    """The dead letter cannot be replayed as it is (already handled, or no readable event)."""


def _json_ready(value: Any) -> Any:
    """AMQP header values (datetimes, bytes, nested tables) made JSON-ready."""
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def dead_letter_record(*, body: bytes | str, headers: Mapping[str, Any], routing_key: str) -> DeadLetter:
    """Store one dead-lettered message; recording the same message twice returns the first row.

    Whatever the message holds (a body that is not a task, odd headers), it is stored: the recorder
    must never stall its queue on one message it cannot read.
    """
    headers = _json_ready(dict(headers or {}))
    raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    x_death = [d for d in headers.get("x-death") or [] if isinstance(d, dict)]
    # x-death is sorted most recent first: a retried message first "expired" in a retry queue and
    # then was "rejected" by its work queue, which is the death that counts.
    last_death = x_death[0] if x_death else {}
    queue = str(last_death.get("queue") or headers.get("x-last-death-queue") or "")
    reason = str(last_death.get("reason") or headers.get("x-last-death-reason") or "")
    routing_keys = last_death.get("routing-keys") or [routing_key]
    parsed, envelope = _task_body(raw)
    if _redact(envelope):  # the envelope is inside `parsed`: store the redacted text, and no Celery repr of it
        raw = json.dumps(parsed)
        headers = {k: v for k, v in headers.items() if k not in ("argsrepr", "kwargsrepr")}
    event_id = str(envelope.get("id") or "")
    handler = str(headers.get("task") or queue)
    task_id = str(headers.get("id") or "")
    key = f"{task_id or uuid.uuid5(uuid.NAMESPACE_OID, raw)}:{queue}:{reason}"
    failure = None if reason == "delivery_limit" else _last_failure(event_id, handler)
    if reason == "delivery_limit":
        exception_type = "WorkerLost"
        exception_message = (
            f"the worker running {handler} died {last_death.get('count', '?')} time(s) in a row on this message "
            f"(delivery limit reached)"
        )
        tb = ""
    elif failure is not None:
        exception_type, exception_message, tb = failure.exception_type, failure.exception_message, failure.traceback
    else:
        exception_type, exception_message, tb = "", f"dead-lettered by RabbitMQ: {reason}", ""
    dead_letter, created = DeadLetter.objects.get_or_create(
        key=key[:200],
        defaults={
            "event_id": _uuid_or_none(event_id),
            "event_type": str(envelope.get("type") or "")[:200],
            "correlation_id": str(envelope.get("correlationid") or "")[:64],
            "handler": handler[:200],
            "queue": queue[:200],
            "routing_key": str(routing_keys[0] if routing_keys else routing_key)[:200],
            "reason": reason[:40],
            "attempts": _attempts(headers),
            "exception_type": exception_type,
            "exception_message": exception_message,
            "traceback": tb,
            "body": parsed,
            "raw_body": raw,
            "headers": headers,
            "x_death": x_death,
        },
    )
    if created:
        DEAD_LETTERS_RECORDED.labels(known_label(handler, SUBSCRIPTIONS), known_label(reason, DEATH_REASONS)).inc()
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


def dead_letter_record_raw(*, body: bytes | str, error: str) -> DeadLetter:
    """The fallback when a message cannot be stored as it is (e.g. a NUL byte PostgreSQL refuses in JSON):
    keep its text, escaped, and why; it cannot be replayed, but it is not lost and does not stall the queue."""
    raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    digest = hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest()
    dead_letter, _ = DeadLetter.objects.get_or_create(
        key=f"raw:{digest}",
        defaults={
            "raw_body": raw.replace("\x00", "\\u0000"),
            "exception_type": "UnrecordableMessage",
            "exception_message": error[:10_000],
        },
    )
    log.error("dead letter stored raw", extra={"mice": {"dead_letter_id": dead_letter.pk, "error": error}})
    return dead_letter


def _task_body(raw: str) -> tuple[Any, dict[str, Any]]:
    """(the parsed body or None, the envelope or {}) of a Celery protocol-2 body `[[envelope], {}, {...}]`."""
    try:
        parsed: Any = json.loads(raw)
    except ValueError:
        return None, {}
    try:
        envelope = parsed[0][0]
    except (IndexError, KeyError, TypeError):
        return parsed, {}
    return parsed, envelope if isinstance(envelope, dict) else {}


def _redact(envelope: dict[str, Any]) -> bool:
    """Drop the secret fields its event type declares from the envelope's data; True if any was there."""
    declared = EVENT_TYPES.get(str(envelope.get("type") or ""))
    data = envelope.get("data")
    if declared is None or not isinstance(data, dict):
        return False
    found = [name for name in declared.secret_fields if name in data]
    for name in found:
        del data[name]
    return bool(found)


def _attempts(headers: Mapping[str, Any]) -> int:
    try:
        return max(1, int(headers.get("mice_attempt") or 1))
    except (TypeError, ValueError):
        return 1


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
            envelope = Envelope.from_dict(body[0][0])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ReplayError(f"dead letter {locked.pk} holds no readable event: {exc!r}") from exc
        if not locked.handler:
            raise ReplayError(f"dead letter {locked.pk} names no handler to replay to")
        outbox_id = outbox_store(envelope=envelope, handler=locked.handler).pk
        locked.status = DeadLetter.Status.REPLAYED
        locked.save(update_fields=["status", "updated_at"])
        DeadLetterAction.objects.create(
            dead_letter=locked, action=DeadLetterAction.Action.REPLAYED, user=user, outbox_message_id=outbox_id
        )
    log.info(
        "dead letter replayed",
        extra={"mice": {"dead_letter_id": locked.pk, "event_id": envelope.id, "handler": locked.handler}},
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
