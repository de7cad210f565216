"""The machine a benchmark ran on, and what else ran on it meanwhile: every script prints both with its figures."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import platform
import socket
import time
from pathlib import Path

from bench.runtime import say


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


def postgres_version(server_dsn: str, *, settings: tuple[str, ...] = ()) -> str:
    """ "PostgreSQL 15.x", followed by the named server settings (those that weigh on a commit's cost)."""
    import psycopg2

    with contextlib.closing(psycopg2.connect(server_dsn)) as pg, pg.cursor() as cursor:
        cursor.execute("SHOW server_version")
        text = f"PostgreSQL {cursor.fetchone()[0]}"
        knobs = []
        for name in settings:
            cursor.execute(f"SHOW {name}")
            knobs.append(f"{name}={cursor.fetchone()[0]}")
    return f"{text} ({', '.join(knobs)})" if knobs else text


def rabbitmq_version(broker_url: str) -> str:
    from kombu import Connection

    with Connection(broker_url, connect_timeout=5) as connection:
        connection.connect()
        props = connection.connection.server_properties
        return f"{props.get('product', 'RabbitMQ')} {props.get('version', '?')}"


def cpu_pressure() -> float:
    """Share of the last 10 s in which some runnable task waited for a CPU (Linux PSI); -1 if unavailable."""
    try:
        first = Path("/proc/pressure/cpu").read_text().split()
        return float(next(x for x in first if x.startswith("avg10=")).split("=")[1])
    except (OSError, StopIteration, ValueError):
        return -1.0


def cpu_speed_ms() -> float:
    """Milliseconds a fixed piece of Python work (a million multiply-adds) takes on one CPU, best of three.

    On a shared VM the host lends more or less of a core from one minute to the next: seen here, 351 to
    470 ms for five times this work with nothing else running in the VM. Printed beside the figures so that
    two runs can be compared: the same code is that much slower when this is.
    """
    best = math.inf
    for _ in range(3):
        started = time.perf_counter()
        sum(i * i for i in range(1_000_000))
        best = min(best, time.perf_counter() - started)
    return best * 1000


class Neighbours:
    """Other test runs, workers, relays, servers or benchmarks on this machine, looked for at checkpoints.

    They share the two cores, the broker and the database with the benchmark: a run that saw them says so
    next to its figures.
    """

    NEEDLES = ("pytest", "celery", "outbox_relay", "dead_letter_recorder", "manage.py", "gunicorn", "bench/")
    PRESSURE = 50.0  # a benchmark's own load alone can reach 20-30% of CPU pressure

    def __init__(self) -> None:
        # Process groups of this benchmark's own subprocesses started in sessions of their own (tests.processes
        # starts the relay, worker and recorder so): theirs too, not neighbours.
        self.own_groups: set[int] = set()
        self.checks = 0
        self.names: set[str] = set()
        self.pressures: list[float] = []
        self.speeds: list[float] = []

    def check(self) -> str:
        mine = os.getpgid(0)
        counts: dict[str, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                group = os.getpgid(int(entry.name))
                if group == mine or group in self.own_groups:  # this benchmark and the servers it started
                    continue
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            text = " ".join(a.decode(errors="replace") for a in argv)
            for needle in self.NEEDLES:
                if needle in text:
                    counts[needle] = counts.get(needle, 0) + 1
                    break
        found = ", ".join(f"{k} x{v}" for k, v in counts.items())
        pressure = cpu_pressure()
        self.checks += 1
        self.names.update(counts)
        self.pressures.append(pressure)
        speed = cpu_speed_ms()
        self.speeds.append(speed)
        return f"{found or 'none seen'}; CPU pressure (PSI some avg10) {pressure:.0f}%; CPU speed probe {speed:.0f} ms"

    def verdict(self) -> str:
        """Two sentences for the summary: was the machine shared while this ran, and how fast was its CPU?"""
        top = max(self.pressures, default=-1.0)
        speed = (
            f" The CPU speed probe (`bench/machine.py`, lower is faster) took {min(self.speeds):.0f}-"
            f"{max(self.speeds):.0f} ms at the checkpoints."
            if self.speeds
            else ""
        )
        if self.names or top >= self.PRESSURE:
            return (
                f"Other load at the {self.checks} checkpoints of this run ({', '.join(sorted(self.names)) or 'none'} "
                f"seen; CPU pressure up to {top:.0f}%): the figures are pessimistic and noisier than usual.{speed}"
            )
        return (
            f"No other test processes and no CPU pressure >= {self.PRESSURE:.0f}% at the {self.checks} checkpoints."
            + speed
        )


def describe(
    neighbours: Neighbours, *, pg_url: str | None = None, broker_url: str | None = None, **extra: str
) -> dict[str, str]:
    """What to print as "== machine ==": hardware, versions, load, neighbours. No server, no version: it says so."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    unused = "not used by this benchmark"
    return {
        "host": socket.gethostname(),
        "cpu": f"{cpu_model()} x {os.cpu_count()} (usable by this process: {affinity})",
        "ram": ram_gib(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "postgresql": postgres_version(pg_url, settings=("synchronous_commit", "fsync", "shared_buffers"))
        if pg_url
        else unused,
        "rabbitmq": rabbitmq_version(broker_url) if broker_url else unused,
        **extra,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "load average at start": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
        "other test processes": neighbours.check(),
    }


def print_machine(info: dict[str, str]) -> None:
    say("== machine ==")
    for key, value in info.items():
        say(f"  {key:<22} {value}")


def measured_on(info: dict[str, str]) -> str:
    """The first sentence of a summary: when and on what."""
    versions = [info[k] for k in ("python", "postgresql", "rabbitmq") if not info[k].startswith("not used")]
    return f"Measured {info['date']} on `{info['host']}`: {info['cpu']}, {info['ram']} RAM, {', '.join(versions)}."


def print_end(neighbours: Neighbours) -> None:
    say(f"\nload average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    say(f"other test processes at end: {neighbours.check()}")
