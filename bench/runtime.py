"""What every benchmark script needs to run: unbuffered output, its own database and vhost, migrated, cleaned up."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def say(text: str = "") -> None:
    print(text, flush=True)


def with_dbname(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def interrupted(*_: Any) -> None:
    """SIGTERM handler: unwind like Ctrl-C, so the finally blocks drop the database and vhost."""
    raise KeyboardInterrupt("SIGTERM")


@contextlib.contextmanager
def bench_run(*, log_prefix: str, keep_logs: bool = False) -> Iterator[Path]:
    """The frame of a script's main(): SIGTERM unwinds, cwd is the project root, a log folder for subprocesses
    (kept with --keep-logs or when the run failed with something in it), and the total run time at the end."""
    signal.signal(signal.SIGTERM, interrupted)
    os.chdir(ROOT)
    wall = time.perf_counter()
    log_dir = Path(tempfile.mkdtemp(prefix=log_prefix))
    try:
        yield log_dir
    except BaseException:
        keep_logs = keep_logs or any(log_dir.iterdir())
        raise
    finally:
        if keep_logs:
            say(f"subprocess logs kept in {log_dir}")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)
        say(f"total run time {time.perf_counter() - wall:.0f} s")


@contextlib.contextmanager
def bench_database(server_url: str, *, prefix: str) -> Iterator[str]:
    """CREATE DATABASE <prefix>_<pid>; close our connections and DROP it WITH (FORCE) afterwards, whatever happened."""
    import psycopg2

    name = f"{prefix}_{os.getpid()}"
    admin = psycopg2.connect(server_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        try:
            yield with_dbname(server_url, name)
        finally:
            with contextlib.suppress(Exception):
                from django.db import connections

                connections.close_all()
            with admin.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            say(f"dropped database {name}")
    finally:
        admin.close()


@contextlib.contextmanager
def bench_vhost() -> Iterator[str]:
    """tests.broker.throwaway_vhost, plus a check that it is really gone afterwards.

    throwaway_vhost swallows a failed delete_vhost; other test runs on this machine stop and start
    RabbitMQ, so keep trying for a while rather than leave the vhost behind.
    """
    from tests.broker import rabbitmqctl, throwaway_vhost

    name = ""
    try:
        with throwaway_vhost() as broker_url:
            name = urlsplit(broker_url).path[1:]
            yield broker_url
    finally:
        if name:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if name not in rabbitmqctl("list_vhosts", "--quiet", "--no-table-headers", timeout=30).split():
                        say(f"deleted vhost {name}")
                        break
                    rabbitmqctl("delete_vhost", name)
                except Exception as exc:  # noqa: BLE001 - the broker may be down for a moment: retry
                    if time.monotonic() > deadline:
                        say(f"WARNING: could not delete vhost {name}: {exc}; delete it with rabbitmqctl")
                        break
                    time.sleep(2)


def migrate(env: dict[str, str]) -> float:
    """manage.py migrate in a subprocess with these settings variables; returns the seconds it took."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py migrate failed:\n{result.stdout}\n{result.stderr}")
    return time.perf_counter() - started


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    import django

    django.setup()
