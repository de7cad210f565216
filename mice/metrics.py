"""Prometheus instruments of the messaging core, and the small HTTP server that exposes a process's metrics.

Labels hold only handler names, outcomes, reasons and event types: never anything about an attendee. A label
value that does not come from this code (a handler or event type read from a dead-lettered message) is
replaced by "other", so a malformed message cannot grow the series without bound.

Processes that fork (gunicorn's workers, Celery's prefork pool) share their counts through files in
`PROMETHEUS_MULTIPROC_DIR`, which their parent sets before anything imports prometheus_client
(gunicorn.conf.py, config/celery.py); every other process keeps them in memory.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

log = logging.getLogger("mice.metrics")

# Handler runs take milliseconds to minutes (the hard time limit is 300 s by default).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

EVENTS_EMITTED = Counter(
    "mice_events_emitted", "Events committed to the outbox (counted when their transaction commits).", ["event_type"]
)
EVENTS_RELAYED = Counter(
    "mice_events_relayed", "Outbox rows the relay published and marked sent (broker confirmed).", ["event_type"]
)
EVENTS_HELD_BACK = Counter(
    "mice_events_held_back",
    "Outbox rows the relay could not deliver and kept pending for a later attempt.",
    ["event_type"],
)
HANDLER_RUNS = Counter(
    "mice_handler_runs",
    "Handler runs by outcome: ok, duplicate (skipped by the inbox), retrying, requeued, dead-lettered.",
    ["handler", "outcome"],
)
HANDLER_DURATION = Histogram(
    "mice_handler_duration_seconds",
    "Time a handler run took, by outcome.",
    ["handler", "outcome"],
    buckets=DURATION_BUCKETS,
)
HANDLER_RETRIES = Counter(
    "mice_handler_retries", "Failed handler runs parked in a retry queue for a later attempt.", ["handler"]
)
HANDLER_DEAD_LETTERED = Counter(
    "mice_handler_dead_lettered", "Handler runs that failed for good and were rejected to the DLX.", ["handler"]
)
DEAD_LETTERS_RECORDED = Counter(
    "mice_dead_letters_recorded",
    "Dead-lettered messages the recorder stored (reason from x-death: rejected, delivery_limit, ...).",
    ["handler", "reason"],
)


def known_label(value: str, known: Any) -> str:
    """`value` if this code declares it (a key of `known`), else "other"."""
    return value if value in known else "other"


def process_registry() -> CollectorRegistry:
    """What this process exposes: every process's files when its parent set a multiprocess folder, else its own."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return registry
    return REGISTRY


def metrics_serve(*, variable: str) -> None:
    """Serve this process's metrics over HTTP if the environment variable `variable` names a port.

    `PORT` binds the loopback only; `HOST:PORT` (e.g. `0.0.0.0:9101`) binds that address. Unset or empty:
    nothing is served. The server runs in a daemon thread and answers scrapes without touching the database.
    """
    spec = os.environ.get(variable, "").strip()
    if not spec:
        return
    host, _, port = spec.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    start_http_server(int(port), addr=host, registry=process_registry())
    log.info("metrics served", extra={"mice": {"address": f"{host}:{port}"}})
