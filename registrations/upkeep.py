"""Registrations' upkeep jobs (mice/upkeep.py runs them on the scheduler's timer)."""

from __future__ import annotations

import datetime as dt

from django.conf import settings

from mice.upkeep import upkeep_job
from registrations.idempotency import idempotency_purge
from registrations.services import registrations_expire_overdue, registrations_schedule_missing_deadlines


@upkeep_job("idempotency_keys_expired")
def idempotency_keys_expired() -> int:
    """Idempotency-Key and form-token records past IDEMPOTENCY_KEY_TTL_HOURS: they can no longer be replayed."""
    return idempotency_purge()


@upkeep_job("payment_deadlines_overdue")
def payment_deadlines_overdue() -> int:
    """Pending registrations whose deadline message never came: expired as that message would have."""
    return registrations_expire_overdue(grace=dt.timedelta(seconds=settings.MICE_UPKEEP_DEADLINE_GRACE))


@upkeep_job("payment_deadlines_missing")
def payment_deadlines_missing() -> int:
    """Pending registrations made without a payment deadline (by code older than deadlines): given theirs."""
    return registrations_schedule_missing_deadlines()
