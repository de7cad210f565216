"""Counting hits against a limit: one atomic upsert per hit, shared by every process through the database."""

from __future__ import annotations

import dataclasses
import logging
import math
import time

from django.db import DatabaseError, connection
from django.db.models import F

from ratelimits.models import Counter
from ratelimits.rules import Scope, configured_rule

log = logging.getLogger("mice.ratelimits")


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The answer to one hit: whether it is allowed and, if not, when the client may come back."""

    scope: Scope
    client: str
    allowed: bool
    window_start: float = 0.0
    retry_after: int = 0  # whole seconds until the window ends; 0 when there is no limit

    @property
    def retry_after_minutes(self) -> int:
        return max(1, math.ceil(self.retry_after / 60))


# One statement on PostgreSQL and on SQLite (3.35+): insert the counter, or add the hit to it, or open
# a new window if the last one has ended; the row lock taken by ON CONFLICT serialises concurrent hits.
_HIT = """
INSERT INTO {table} (scope, client, window_start, hits) VALUES (%s, %s, %s, 1)
ON CONFLICT (scope, client) DO UPDATE SET
    hits = CASE WHEN {table}.window_start <= %s THEN 1 ELSE {table}.hits + 1 END,
    window_start = CASE WHEN {table}.window_start <= %s THEN excluded.window_start ELSE {table}.window_start END
RETURNING hits, window_start
"""


def rate_limit_hit(*, scope: Scope, client: str) -> Verdict:
    """Count one hit for `client` and tell whether it is within the limit.

    Call it outside any transaction that may roll back, so the hit counts whatever the request's
    outcome. A hit over the limit counts too, but never extends the window. Hits are counted before
    the work they guard (a password check, a registration), so concurrent requests can never get
    more than `limit` through in a window.
    """
    rule = configured_rule(scope)
    if rule is None:
        return Verdict(scope=scope, client=client, allowed=True)
    now = time.time()
    ended = now - rule.period
    with connection.cursor() as cursor:
        cursor.execute(
            _HIT.format(table=connection.ops.quote_name(Counter._meta.db_table)),
            [str(scope), client, now, ended, ended],
        )
        hits, window_start = cursor.fetchone()
    if hits == 1:
        # A new window: the moment to drop counters whose windows have ended, so the table holds
        # about one row per client seen in the last period.
        Counter.objects.filter(scope=scope, window_start__lte=ended).delete()
    return Verdict(
        scope=scope,
        client=client,
        allowed=hits <= rule.limit,
        window_start=window_start,
        # Clamped to the period: a concurrent first hit in another process may have opened the window a
        # moment after this process read its clock.
        retry_after=max(1, min(math.ceil(rule.period), math.ceil(window_start + rule.period - now))),
    )


def rate_limit_release(*, verdict: Verdict) -> None:
    """Take back an allowed hit that turned out not to count (a sign-in that succeeded, a request that failed).

    Best effort: if the database cannot be written (often the very reason the request failed), the hit
    stays counted, which errs on the safe side; the error is logged, not raised over the request's own.
    """
    if not (verdict.allowed and verdict.retry_after):
        return
    try:
        Counter.objects.filter(
            scope=verdict.scope, client=verdict.client, window_start=verdict.window_start, hits__gt=0
        ).update(hits=F("hits") - 1)
    except DatabaseError:
        log.warning("rate limit hit not taken back", extra={"mice": {"scope": str(verdict.scope)}}, exc_info=True)


def rate_limit_counters_purge() -> int:
    """Delete counters whose window has ended (and every counter of a limit turned off); returns how many.

    A counter is dropped when its client comes back after its window (`rate_limit_hit`); this catches the
    clients that never come back, so the table holds about one row per client seen in the last period.
    """
    now = time.time()
    purged = 0
    for scope in Scope:
        rule = configured_rule(scope)
        counters = Counter.objects.filter(scope=scope)
        if rule is not None:
            counters = counters.filter(window_start__lte=now - rule.period)
        purged += int(counters.delete()[0])
    return purged
