"""Upkeep: jobs that keep the tables small and catch what the messages missed, run on a timer by one process.

Each app declares its jobs in its own `upkeep.py` with `@upkeep_job("name")`; a job deletes or repairs what
is due and returns how many rows it touched. `python manage.py mice_upkeep` (the Procfile's `scheduler`) runs
every job each `MICE_UPKEEP_INTERVAL` seconds. A job is idempotent and, on PostgreSQL, runs under a session
advisory lock taken without waiting, so two schedulers (a deploy's overlap, a second copy by mistake) never
run one job at the same time: the second skips it until the next round.

The outbox's and the inbox's retention is not a job here: every relay already applies it (mice/relay.py).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import zlib
from collections.abc import Callable

from django.db import DatabaseError, close_old_connections, connection
from django.utils.module_loading import autodiscover_modules

log = logging.getLogger("mice.upkeep")

Job = Callable[[], int]

JOBS: dict[str, Job] = {}


def upkeep_job(name: str) -> Callable[[Job], Job]:
    """Declare `func` an upkeep job; `name` appears in the log and keys its lock, so keep it stable."""

    def declare(func: Job) -> Job:
        if name in JOBS and JOBS[name] is not func:
            raise ValueError(f"two upkeep jobs are named {name!r}")
        JOBS[name] = func
        return func

    return declare


def upkeep_jobs() -> dict[str, Job]:
    """Every app's jobs: imports each installed app's `upkeep` module once."""
    autodiscover_modules("upkeep")
    return dict(sorted(JOBS.items()))


@dataclasses.dataclass(frozen=True)
class Outcome:
    job: str
    outcome: str  # "done", "skipped" (another scheduler holds it) or "failed"
    count: int = 0
    duration_ms: float = 0.0


def _lock_key(name: str) -> int:
    """A stable 32-bit key per job, in a namespace of its own (the two-key form of the advisory lock)."""
    return zlib.crc32(name.encode()) - 2**31


_NAMESPACE = zlib.crc32(b"mice.upkeep") - 2**31


class _Locked:
    """A session advisory lock on PostgreSQL, taken without waiting; other databases run one scheduler."""

    def __init__(self, name: str) -> None:
        self.key = _lock_key(name)
        self.postgres = connection.vendor == "postgresql"

    def acquire(self) -> bool:
        if not self.postgres:
            return True
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_NAMESPACE, self.key])
            return bool(cursor.fetchone()[0])

    def release(self) -> None:
        if self.postgres:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_NAMESPACE, self.key])


def upkeep_run(*, jobs: dict[str, Job]) -> list[Outcome]:
    """Run each job once, logging one line per job; a failing job is logged and the others still run."""
    return [_run_one(name, job) for name, job in jobs.items()]


def _run_one(name: str, job: Job) -> Outcome:
    close_old_connections()  # a connection the database closed since the last round is replaced, not reused
    started = time.monotonic()
    lock = _Locked(name)
    try:
        if not lock.acquire():
            outcome = Outcome(job=name, outcome="skipped")
            log.info("upkeep job skipped: another scheduler runs it", extra={"mice": {"job": name}})
            return outcome
        try:
            count = job()
        finally:
            lock.release()
    except Exception as exc:
        duration_ms = round((time.monotonic() - started) * 1000, 1)
        log.exception(
            "upkeep job failed", extra={"mice": {"job": name, "error": repr(exc), "duration_ms": duration_ms}}
        )
        if isinstance(exc, DatabaseError):
            connection.close()  # a broken connection (and any lock on it) is dropped; the next round reconnects
        return Outcome(job=name, outcome="failed", duration_ms=duration_ms)
    duration_ms = round((time.monotonic() - started) * 1000, 1)
    log.info("upkeep job done", extra={"mice": {"job": name, "count": count, "duration_ms": duration_ms}})
    return Outcome(job=name, outcome="done", count=count, duration_ms=duration_ms)


class Scheduler:
    """Runs every job now and then each `interval` seconds, until `stop()` (SIGTERM, SIGINT)."""

    def __init__(self, *, jobs: dict[str, Job], interval: float) -> None:
        self.jobs = jobs
        self.interval = interval
        self._stopping = threading.Event()

    def stop(self, *_: object) -> None:
        self._stopping.set()

    def run(self) -> None:
        log.info("upkeep started", extra={"mice": {"jobs": ",".join(self.jobs), "interval_s": self.interval}})
        while not self._stopping.is_set():
            for name, job in self.jobs.items():
                if self._stopping.is_set():
                    break
                _run_one(name, job)
            self._stopping.wait(self.interval)
        connection.close()
        log.info("upkeep stopped")
