"""The outbox relay: claims committed outbox rows and publishes them to RabbitMQ with pipelined confirms.

A row is marked sent only after the broker confirmed every message made from it. Anything short of
that (broker gone, a nack, an unroutable message, a confirm that never came) leaves the row pending
to be published again later; the handlers' inbox makes the duplicate harmless.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from amqp import Message
from django.conf import settings
from django.db import DatabaseError, connections, router, transaction

from mice.handlers import inbox_purge
from mice.metrics import EVENTS_HELD_BACK, EVENTS_RELAYED
from mice.models import OutboxMessage
from mice.outbox import outbox_purge
from mice.outbox_claims import (
    Row,
    outbox_rows_claim,
    outbox_rows_hold_back,
    outbox_rows_mark_sent,
    outbox_rows_read_pending,
)
from mice.publisher import BrokerUnavailable, ConfirmingPublisher
from mice.routing import routes_declare
from mice.task_messages import task_message
from mice.topology import EVENTS
from mice.wakeup import Wakeup

log = logging.getLogger("mice.relay")


@dataclasses.dataclass
class RelayConfig:
    batch_size: int = 500
    poll_interval: float = 1.0
    confirm_timeout: float = 10.0
    heartbeat: float = 30.0
    retention: dt.timedelta = dt.timedelta(days=7)
    inbox_retention: dt.timedelta = dt.timedelta(days=30)
    purge_every: float = 300.0
    max_backoff: float = 30.0
    # Busy, the loops of a process claim at most once per `linger` seconds between them, so that one claim,
    # publish and commit carry several rows; a backlog (full batches) is claimed without waiting.
    linger: float = 0.010

    @classmethod
    def from_settings(cls) -> RelayConfig:
        return cls(
            batch_size=settings.MICE_RELAY_BATCH_SIZE,
            poll_interval=settings.MICE_RELAY_POLL_INTERVAL,
            confirm_timeout=settings.MICE_RELAY_CONFIRM_TIMEOUT,
            linger=settings.MICE_RELAY_LINGER_MS / 1000,
            heartbeat=settings.MICE_BROKER_HEARTBEAT,
            retention=dt.timedelta(hours=settings.MICE_OUTBOX_RETENTION_HOURS),
            inbox_retention=dt.timedelta(hours=settings.MICE_INBOX_RETENTION_HOURS),
        )


def sleep_until(deadline: float, should_stop: Callable[[], bool]) -> None:
    """Sleep until `deadline` (time.monotonic()), looking at `should_stop` at least every 0.1 s.

    The time left is read once per step: read twice, it can turn negative in between, and time.sleep()
    raises ValueError on a negative length.
    """
    while not should_stop():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(0.1, left))


class ClaimPacer:
    """Turns to claim, at least `linger` seconds apart, shared by the relay loops of one process.

    At a steady rate each notification would otherwise wake every loop for a claim of about one row: a
    transaction, a publish and a wait for its confirm per event. Waiting for its turn lets the events of
    that moment gather, so that one claim takes them all, and a loop woken with the others does not claim
    the same moment's rows again (finding none). Latency grows by at most `linger`.
    """

    def __init__(self, linger: float) -> None:
        self.linger = linger
        self._lock = threading.Lock()
        self._next = 0.0

    def wait_turn(self, should_stop: Callable[[], bool]) -> None:
        with self._lock:
            now = time.monotonic()
            turn = max(now, self._next)
            self._next = turn + self.linger
        sleep_until(turn, should_stop)


class Relay:
    def __init__(
        self, *, broker_url: str, config: RelayConfig, origin: str | None = None, pacer: ClaimPacer | None = None
    ) -> None:
        self.config = config
        self.pacer = pacer or ClaimPacer(config.linger)
        self.publisher = ConfirmingPublisher(
            broker_url,
            exchange=EVENTS.name,
            declare=routes_declare,
            confirm_timeout=config.confirm_timeout,
            heartbeat=config.heartbeat,
            should_stop=lambda: self.stopping,
        )
        self.wakeup = Wakeup(config.poll_interval)
        self.origin = origin or f"relay@{socket.gethostname()}:{os.getpid()}"
        self.stopping = False
        self._last_purge = 0.0

    def stop(self, *_: Any) -> None:
        self.stopping = True
        self.wakeup.interrupt()

    def run(self, *, until: Callable[[], bool] | None = None) -> None:
        """The relay loop, until stop() (or `until`); survives the broker and the database going away."""
        log.info("relay started", extra={"mice": {"origin": self.origin, "batch_size": self.config.batch_size}})
        failures = 0
        while not self.stopping and not (until and until()):
            try:
                if not self.publisher.connected:
                    for mismatch in self.publisher.connect():
                        log.error(mismatch.advice())
                    log.info("relay connected to the broker", extra={"mice": {"broker": self.publisher.host}})
                if self.publisher.blocked:
                    # Claiming rows now would hold their locks until the confirm timeout: wait unlocked.
                    self.publisher.wait_unblocked(self.config.poll_interval)
                    continue
                published = self.relay_batch()
                self.maybe_purge()
                failures = 0
                if published < self.config.batch_size:
                    # Woken at least every quarter heartbeat, so that keepalive() keeps the connection alive
                    # (busy, the connection is read anyway while confirms are awaited).
                    self.wakeup.wait(
                        min(self.config.poll_interval, self.config.heartbeat / 4 or self.config.poll_interval)
                    )
                    self.publisher.keepalive()
                    self.pacer.wait_turn(lambda: self.stopping)
            except BrokerUnavailable as exc:
                failures += 1
                self._back_off("broker unavailable", exc, failures)
            except DatabaseError as exc:
                failures += 1
                self.wakeup.close()
                for conn in connections.all():
                    conn.close()  # Django reconnects on next use
                self._back_off("database unavailable", exc, failures)
            except Exception as exc:  # a bug must not silently end one loop of several
                failures += 1
                log.exception("relay loop failed")
                self._back_off("relay loop failed", exc, failures)
        self.publisher.close()
        self.wakeup.close()
        log.info("relay stopped")

    def _back_off(self, what: str, exc: Exception, failures: int) -> None:
        delay = min(self.config.max_backoff, 0.25 * 2 ** min(failures, 10))
        log.warning(what, extra={"mice": {"error": repr(exc), "retry_in_s": delay, "failures": failures}})
        sleep_until(time.monotonic() + delay, lambda: self.stopping)

    def relay_batch(self) -> int:
        """Claim one batch, publish it, keep back what the broker did not confirm. Returns the rows claimed.

        On PostgreSQL rows are marked sent as they are claimed (SKIP LOCKED, so relays never share a row),
        in a transaction that commits only after the broker confirmed every message: a crash or a broker
        failure before that rolls the mark back. Elsewhere (SQLite, whose one writer must never wait on the
        broker) rows are read, published, and only then marked sent in a short transaction: the write lock is
        never held while the broker is awaited. A crash in between publishes them again, which the
        handlers' inbox makes harmless.
        """
        started = time.monotonic()
        using = router.db_for_write(OutboxMessage)
        if connections[using].vendor == "postgresql":  # the claim statement is PostgreSQL's SQL
            with transaction.atomic(using=using):
                rows = outbox_rows_claim(using=using, batch_size=self.config.batch_size)
                if not rows:
                    return 0
                messages, held_back = self._publish(rows)
                outbox_rows_hold_back(using=using, held_back=held_back)
        else:
            rows = outbox_rows_read_pending(using=using, batch_size=self.config.batch_size)
            if not rows:
                return 0
            messages, held_back = self._publish(rows)
            with transaction.atomic(using=using):
                outbox_rows_mark_sent(using=using, row_ids=[row[0] for row in rows if row[0] not in held_back])
                outbox_rows_hold_back(using=using, held_back=held_back)
        # Counted once committed: a batch rolled back by a failure is published again, and counted then.
        counts = collections.Counter((row_id in held_back, event_type) for row_id, event_type, *_ in rows)
        for (was_held_back, event_type), count in counts.items():  # one metric update per type, not per row
            (EVENTS_HELD_BACK if was_held_back else EVENTS_RELAYED).labels(event_type).inc(count)
        log.info(
            "relayed batch",
            extra={
                "mice": {
                    "rows": len(rows),
                    "messages": messages,
                    "sent": len(rows) - len(held_back),
                    "held_back": len(held_back),
                    "duration_ms": round((time.monotonic() - started) * 1000, 1),
                }
            },
        )
        return len(rows)

    def _publish(self, rows: list[Row]) -> tuple[int, dict[int, str]]:
        """Publish one message per handler of each row; returns (messages, {row id: why it was not delivered})."""
        held_back: dict[int, str] = {}
        messages: list[tuple[Any, str, Message]] = []
        for row_id, event_type, event_id, envelope_json, handlers in rows:
            if not handlers:
                held_back[row_id] = (
                    f"no subscription to {event_type!r}: routed to no one. It is published once a process "
                    "that subscribes to it has started (workers and relays declare their routes at start)."
                )
            for handler in handlers:
                message = task_message(
                    outbox_id=row_id, handler=handler, envelope_json=envelope_json, event_id=str(event_id)
                )
                messages.append(((row_id, handler), handler, message))
        if messages:
            outcome = self.publisher.publish(messages)
            for (row_id, _), reason in outcome.failed.items():
                held_back.setdefault(row_id, reason)
        return len(messages), held_back

    def maybe_purge(self) -> None:
        if time.monotonic() - self._last_purge < self.config.purge_every:
            return
        self._last_purge = time.monotonic()
        purged = {
            "outbox": outbox_purge(retention=self.config.retention),
            "inbox": inbox_purge(retention=self.config.inbox_retention),
        }
        if any(purged.values()):
            log.info("purged", extra={"mice": purged})


def run_relays(*, broker_url: str, config: RelayConfig, concurrency: int) -> None:
    """Run `concurrency` relay loops in this process until SIGTERM or SIGINT.

    Each loop has its own database and broker connections and claims its own batches (SKIP LOCKED),
    exactly as separate relay processes would; in threads, one loop publishes while another waits
    on PostgreSQL or on confirms. Two loops drained a backlog about 25% faster than one
    (bench/relay_throughput.py).
    """
    connection = connections[router.db_for_write(OutboxMessage)]
    if concurrency > 1 and not connection.features.has_select_for_update_skip_locked:
        log.warning(f"{connection.vendor} cannot SKIP LOCKED: running one relay loop, not {concurrency}")
        concurrency = 1
    pacer = ClaimPacer(config.linger)
    relays = [
        Relay(
            broker_url=broker_url,
            config=config,
            origin=f"relay@{socket.gethostname()}:{os.getpid()}/{i}",
            pacer=pacer,
        )
        for i in range(concurrency)
    ]

    def stop(*_: Any) -> None:
        for relay in relays:
            relay.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def run_in_thread(relay: Relay) -> None:
        try:
            relay.run()
        finally:
            connections.close_all()  # this thread's own connections

    threads = [threading.Thread(target=run_in_thread, args=(relay,), name=relay.origin) for relay in relays[1:]]
    for thread in threads:
        thread.start()
    try:
        relays[0].run()
    finally:
        stop()
        for thread in threads:
            thread.join()
