"""The PostgreSQL backend's health check: no round trip while a connection is quiet, a new connection once the
server has ended it."""

import psycopg2
import pytest
from django.db import close_old_connections, connection

from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def from_outside(sql: str, *params: object) -> object:
    """A statement on a connection of its own, as an operator or a failover would act."""
    params_dsn = connection.get_connection_params()
    other = psycopg2.connect(**params_dsn)
    try:
        other.autocommit = True
        with other.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()[0]
    finally:
        other.close()


def test_a_quiet_reused_connection_is_checked_without_a_statement_on_the_server():
    # given a connection whose last statement is known
    pid = backend_pid()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'the last statement'")

    # when Django checks it, as at the start of a request or a handler run
    assert connection.is_usable()

    # then the server ran nothing more on it (Django's own check would have run SELECT 1)
    assert from_outside("SELECT query FROM pg_stat_activity WHERE pid = %s", pid) == "SELECT 'the last statement'"


def test_a_connection_the_server_ended_is_replaced_before_the_next_statement():
    # given a connection that the server ends (pg_terminate_backend, as a restart or a failover would)
    pid = backend_pid()
    assert from_outside("SELECT pg_terminate_backend(%s)", pid) is True
    wait_until(lambda: not connection.is_usable(), timeout=5, what="the check sees the connection ended")

    # when the next request or handler run begins
    close_old_connections()

    # then its first statement runs on a new connection, with no error
    assert backend_pid() != pid
