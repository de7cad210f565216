"""Django's PostgreSQL backend with a health check that needs no round trip while the connection is quiet."""

from __future__ import annotations

from django.db.backends.postgresql import base

from mice.readiness import readable


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        """Usable if the server has sent nothing since the last statement; otherwise ask it (`SELECT 1`).

        An idle connection receives nothing it did not ask for. A server that ends one (`pg_terminate_backend`,
        a restart or failover, `idle_session_timeout`) sends its FATAL error or closes the socket, and either
        makes the socket readable. Django runs this check on every reused connection at the start of each
        request and each handler run (`CONN_HEALTH_CHECKS`); its own check is a `SELECT 1`: a round trip, a
        statement on the server and two context switches each time.
        """
        connection = self.connection
        if connection is not None and not connection.closed and not readable([connection.fileno()], 0):
            return True
        return super().is_usable()
