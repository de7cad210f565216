"""Idempotent requests: the first answer for a key is stored with the request's fingerprint and replayed.

Used by the REST API (`Idempotency-Key` header) and by the web form (a token per rendered form, so a
double click or back-and-resubmit creates one registration).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from registrations.models import IdempotencyRecord


class IdempotencyKeyReused(Exception):
    """The key was used before with a different request."""


def fingerprint(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def idempotent_call(
    *, key: str, request_fingerprint: str, produce: Callable[[], tuple[int, dict[str, Any]]]
) -> tuple[int, dict[str, Any], bool]:
    """Run `produce` once per key within the TTL; return (status, body, replayed).

    The record is inserted first, in the same transaction as whatever `produce` writes: a concurrent
    request with the same key waits on the unique index until the first commits, then replays its
    answer. Raises IdempotencyKeyReused when the key comes back with another request.
    """
    ttl = dt.timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    with transaction.atomic():
        IdempotencyRecord.objects.filter(key=key, created_at__lt=timezone.now() - ttl).delete()
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    key=key, request_fingerprint=request_fingerprint, response_status=0, response_body={}
                )
        except IntegrityError:
            existing = IdempotencyRecord.objects.get(key=key)
            if existing.request_fingerprint != request_fingerprint:
                raise IdempotencyKeyReused(key) from None
            return existing.response_status, existing.response_body, True
        status, body = produce()
        record.response_status, record.response_body = status, body
        record.save(update_fields=["response_status", "response_body"])
    return status, body, False


def idempotent_answer_stored(*, key: str) -> bool:
    """Whether a request with this key would be answered from the record (a replay, or a 422): it creates
    nothing, so rate limits need not count it."""
    cutoff = timezone.now() - dt.timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    return IdempotencyRecord.objects.filter(key=key, created_at__gte=cutoff).exists()


def idempotency_purge() -> int:
    """Delete records past their TTL: an upkeep job (registrations/upkeep.py), or `manage.py purge_idempotency_keys`."""
    cutoff = timezone.now() - dt.timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    return int(IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()[0])
