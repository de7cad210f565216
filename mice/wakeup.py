"""Waking the relay the moment a transaction commits an outbox row: LISTEN/NOTIFY on PostgreSQL.

The NOTIFY is sent by a statement-level trigger on the outbox table, created by migration
`mice/migrations/0002_outbox_notify_trigger.py` on the channel named below. Other databases poll.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from django.db import connections, router

from mice.models import OutboxMessage
from mice.readiness import readable

log = logging.getLogger("mice.wakeup")

# The channel the trigger of migration 0002 notifies; change both together.
NOTIFY_CHANNEL = "mice_outbox"


class Wakeup:
    """Blocks until a transaction commits an outbox row (LISTEN/NOTIFY on PostgreSQL) or the poll interval ends."""

    def __init__(self, poll_interval: float) -> None:
        self.poll_interval = poll_interval
        self._pg: Any = None
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)

    def interrupt(self) -> None:
        try:
            os.write(self._write_fd, b"x")
        except BlockingIOError:
            pass

    def _listen(self) -> Any:
        connection = connections[router.db_for_write(OutboxMessage)]
        if connection.vendor != "postgresql":
            return None
        if self._pg is None or self._pg.closed:
            import psycopg2

            params = connection.get_connection_params()
            self._pg = psycopg2.connect(**params)
            self._pg.set_session(autocommit=True)
            with self._pg.cursor() as cursor:
                cursor.execute(f"LISTEN {NOTIFY_CHANNEL}")
        return self._pg

    def wait(self, timeout: float | None = None) -> None:
        """Return on a commit's notification, interrupt(), or after `timeout` (default: the poll interval)."""
        fds = [self._read_fd]
        try:
            pg = self._listen()
        except Exception as exc:  # noqa: BLE001 - without notifications the relay still polls
            log.warning("LISTEN unavailable, polling", extra={"mice": {"error": repr(exc)}})
            pg = self._pg = None
        if pg is not None:
            fds.append(pg.fileno())
        ready = readable(fds, self.poll_interval if timeout is None else timeout)
        if self._read_fd in ready:
            os.read(self._read_fd, 1024)
        if pg is not None and ready:
            try:
                pg.poll()
                pg.notifies.clear()
            except Exception:  # noqa: BLE001 - a broken LISTEN connection is reopened on the next wait
                self.close()

    def close(self) -> None:
        if self._pg is not None:
            try:
                self._pg.close()
            except Exception:  # noqa: BLE001
                pass
            self._pg = None
