"""Rate limits' upkeep job (mice/upkeep.py runs it on the scheduler's timer)."""

from __future__ import annotations

from mice.upkeep import upkeep_job
from ratelimits.services import rate_limit_counters_purge


@upkeep_job("rate_limit_counters_expired")
def rate_limit_counters_expired() -> int:
    return rate_limit_counters_purge()
