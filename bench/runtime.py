"""What every benchmark script needs: the machine it runs on, unbuffered output, its own database URL."""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit


def say(text: str = "") -> None:
    print(text, flush=True)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ram_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def with_dbname(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def interrupted(*_: Any) -> None:
    """SIGTERM handler: unwind like Ctrl-C, so the finally blocks drop the database and vhost."""
    raise KeyboardInterrupt("SIGTERM")


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
