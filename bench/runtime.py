"""What every benchmark script needs: the machine it runs on, unbuffered output, its own database URL."""

from __future__ import annotations

import platform
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
