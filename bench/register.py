"""Benchmark: POST /api/registrations/ through gunicorn, against the same database writes without the web layer.

Run from the project root:  .venv/bin/python bench/register.py   (about 3-4 minutes)

It creates its own PostgreSQL database (mice_bench_reg_<pid>), migrates it, and drops it at the end whatever
happens. No relay or Celery worker runs: registering must not wait on them (the 202 is answered once the
registration and its outbox row are committed).

  web:  gunicorn config.wsgi in a couple of worker/thread configurations (e.g. 2 workers x 4 threads gthread,
        4 sync workers), driven by N concurrent clients (threads, one keep-alive http.client connection each),
        unique e-mail per request, payment_token tok_visa, spread round-robin over 1 event (one hot row: the
        event row is updated, so locked, by every registration) and over 8 events. Only 202s count.
  bare: registrations.services.registration_create(...) called in-process from the same number of threads
        (each its own database connection), same events, same duration; plus one thread alone.
  sql:  where the time goes in one registration_create (single thread, statement timings), on a fresh event
        and on one that already has many registrations.

Each run uses fresh events (capacity 1,000,000, 120.00 EUR) and starts from emptied registration and outbox
tables, so runs are comparable. Flags: see --help. --profile adds a cProfile of registration_create and of
the whole view in-process (django.test.Client, no network).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import http.client
import io
import json
import os
import platform
import pstats
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg2  # noqa: E402

from bench.runtime import bench_database, cpu_model, interrupted, ram_gib, say  # noqa: E402

SETTINGS = "config.settings"
BENCH_SECRET_KEY = secrets.token_urlsafe(50)
CAPACITY = 1_000_000
PRICE = Decimal("120.00")
CLK_TCK = os.sysconf("SC_CLK_TCK")
CONTENTION: list[str] = []  # other test processes seen at the checkpoints of this run


# ---------------------------------------------------------------------------------------------- machine


def postgres_info(server_dsn: str) -> tuple[str, str]:
    with contextlib.closing(psycopg2.connect(server_dsn)) as pg, pg.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = f"PostgreSQL {cursor.fetchone()[0]}"
        knobs = []
        for name in ("synchronous_commit", "fsync", "shared_buffers", "max_connections"):
            cursor.execute(f"SHOW {name}")
            knobs.append(f"{name}={cursor.fetchone()[0]}")
        return version, ", ".join(knobs)


def other_activity() -> str:
    """Other test runs, workers, relays or benches on this machine (they share the CPUs and the database)."""
    mine = {os.getpid(), os.getppid()}
    seen: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            if os.getpgid(int(entry.name)) == os.getpgid(0):
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = " ".join(a.decode(errors="replace") for a in argv)
        for needle in ("pytest", "celery", "outbox_relay", "gunicorn", "bench/"):
            if needle in text:
                seen[needle] = seen.get(needle, 0) + 1
                break
    text = ", ".join(f"{k} x{v}" for k, v in seen.items())
    if text:
        CONTENTION.append(text)
    return text or "none seen"


def machine(server_dsn: str) -> dict[str, str]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    version, knobs = postgres_info(server_dsn)
    return {
        "host": socket.gethostname(),
        "cpu": f"{cpu_model()} x {os.cpu_count()} (usable by this process: {affinity})",
        "ram": ram_gib(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "postgresql": version,
        "postgresql settings": knobs,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "load average at start": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
        "other test processes": other_activity(),
    }


# ---------------------------------------------------------------------------------------------- CPU accounting


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        if int(text.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def machine_busy() -> float:
    """CPU seconds spent by the whole machine (all cores, not idle, not iowait) since boot."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in first]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / CLK_TCK


def scan_processes(gunicorn_master: int | None, database: str) -> dict[str, dict[int, float]]:
    """CPU seconds so far of the gunicorn master and workers, and of the PostgreSQL backends of `database`."""
    groups: dict[str, dict[int, float]] = {"gunicorn": {}, "postgres backends": {}}
    marker = f" {database} ".encode()  # a backend's title: "postgres: 15/main: user dbname host(port) state"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm, rest = stat.rsplit(")", 1)
        fields = rest.split()
        cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15 of stat)
        if gunicorn_master is not None and gunicorn_master in (pid, int(fields[1])):
            groups["gunicorn"][pid] = cpu
        elif comm.endswith("(postgres"):
            try:
                if marker in (entry / "cmdline").read_bytes():
                    groups["postgres backends"][pid] = cpu
            except OSError:
                continue
    return groups


class CpuProbe:
    """CPU used during the measured window by: this process, the gunicorn processes, the bench DB's backends.

    The processes are sampled twice a second: a connection older than DATABASE_CONN_MAX_AGE is replaced by a new
    backend during a run, and the CPU of a process that exits mid-run must still count (up to its last sample).
    """

    def __init__(self, gunicorn_master: int | None, database: str) -> None:
        self.gunicorn_master = gunicorn_master
        self.database = database
        self.start: dict[str, dict[int, float]] = {}
        self.last: dict[str, dict[int, float]] = {}
        self.stop = threading.Event()
        self.sampler: threading.Thread | None = None

    def _sample(self) -> None:
        for name, now in scan_processes(self.gunicorn_master, self.database).items():
            self.last.setdefault(name, {}).update(now)

    def _loop(self) -> None:
        while not self.stop.wait(0.5):
            self._sample()

    def begin(self) -> None:
        self.start = scan_processes(self.gunicorn_master, self.database)
        self.last = {name: dict(pids) for name, pids in self.start.items()}
        times = os.times()
        self.start_own = times.user + times.system
        self.start_machine = machine_busy()
        self.sampler = threading.Thread(target=self._loop, name="cpu-sampler", daemon=True)
        self.sampler.start()

    def end(self) -> dict[str, float]:
        times = os.times()
        machine = machine_busy() - self.start_machine
        self.stop.set()
        if self.sampler is not None:
            self.sampler.join()
        self._sample()
        used = {"client/bench process": times.user + times.system - self.start_own}
        for name, last in self.last.items():
            before = self.start.get(name, {})
            used[name] = sum(max(0.0, cpu - before.get(pid, 0.0)) for pid, cpu in last.items())
        used["machine"] = machine
        return used


def bench_db_name() -> str:
    from django.conf import settings

    return str(settings.DATABASES["default"]["NAME"])


# ---------------------------------------------------------------------------------------------- database


def django_env(database_url: str) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "DATABASE_URL": database_url,
        "DATABASE_CONN_MAX_AGE": "60",
        "DEBUG": "0",  # DEBUG would also keep every query in memory
        # Production settings over plain http:// on the loopback.
        "SECRET_KEY": os.environ.get("SECRET_KEY") or BENCH_SECRET_KEY,
        "SECURE_SSL_REDIRECT": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        # Every request comes from 127.0.0.1: a limit it never reaches, so each registration still pays for
        # its rate-limit counter (one upsert, here always on the same row: the worst case) but is never refused.
        "MICE_RATE_LIMIT_REGISTRATIONS": "1000000000/1h",
    }


def migrate(database_url: str) -> float:
    env = {**os.environ, **django_env(database_url)}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py migrate failed:\n{result.stdout}\n{result.stderr}")
    return time.perf_counter() - started


def setup_django(database_url: str) -> None:
    os.environ.update(django_env(database_url))
    import django

    django.setup()


_event_batches = iter(range(1, 1_000_000))


def fresh_events(n: int) -> list[str]:
    """n new events with room for everyone; the registration and outbox tables emptied first."""
    from django.db import connection

    from mice.models import OutboxMessage
    from registrations.models import Registration
    from tests.factories import make_event

    with connection.cursor() as cursor:
        cursor.execute(f'TRUNCATE "{Registration._meta.db_table}", "{OutboxMessage._meta.db_table}" CASCADE')
    batch = next(_event_batches)
    return [
        make_event(slug=f"bench-{batch}-{i}", capacity=CAPACITY, price=PRICE, currency="EUR").slug for i in range(n)
    ]


def registrations_committed(slugs: list[str]) -> int:
    from registrations.models import Event

    return sum(Event.objects.filter(slug__in=slugs).values_list("seats_taken", flat=True))


# ---------------------------------------------------------------------------------------------- load


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


@dataclass
class Outcome:
    """What one client thread saw: (completion time, latency s) per success; errors as (status, body)."""

    ok: list[tuple[float, float]] = field(default_factory=list)
    errors: list[tuple[float, str, str]] = field(default_factory=list)


@dataclass
class RunResult:
    label: str
    events: int
    clients: int
    rate: float
    p50: float
    p95: float
    p99: float
    errors: int
    first_half: float
    second_half: float
    committed_ok: bool
    cpu: dict[str, float]
    count: int
    seconds: float
    error_samples: list[str]


def drive(
    worker: Callable[[int, threading.Event, Outcome], None],
    clients: int,
    warmup: float,
    duration: float,
    probe: Callable[[], CpuProbe],
) -> tuple[list[Outcome], float, float, dict[str, float]]:
    """Run `clients` threads of `worker` for warmup + duration s; their outcomes, the window, the CPU used in it."""
    stop = threading.Event()
    outcomes = [Outcome() for _ in range(clients)]
    threads = [
        threading.Thread(target=worker, args=(i, stop, outcomes[i]), name=f"client-{i}", daemon=True)
        for i in range(clients)
    ]
    for t in threads:
        t.start()
    try:
        time.sleep(warmup)
        cpu = probe()  # after the warm-up: every connection (and its PostgreSQL backend) exists by now
        cpu.begin()
        t0 = time.perf_counter()
        time.sleep(duration)
        t1 = time.perf_counter()
        used = cpu.end()
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    return outcomes, t0, t1, used


def summarize(
    label: str, events: int, clients: int, outcomes: list[Outcome], t0: float, t1: float, cpu: dict[str, float]
) -> RunResult:
    done = [(end, lat) for o in outcomes for end, lat in o.ok if t0 <= end <= t1]
    latencies = sorted(lat * 1000 for _, lat in done)
    middle = (t0 + t1) / 2
    half = (t1 - t0) / 2
    errors = [e for o in outcomes for e in o.errors]
    samples = []
    for _, status, body in errors[:5]:
        samples.append(f"{status}: {body[:300]}")
    return RunResult(
        label=label,
        events=events,
        clients=clients,
        rate=len(done) / (t1 - t0),
        p50=percentile(latencies, 50),
        p95=percentile(latencies, 95),
        p99=percentile(latencies, 99),
        errors=len(errors),
        first_half=sum(1 for end, _ in done if end < middle) / half,
        second_half=sum(1 for end, _ in done if end >= middle) / half,
        committed_ok=True,
        cpu=cpu,
        count=len(done),
        seconds=t1 - t0,
        error_samples=samples,
    )


def others_cores(result: RunResult) -> float:
    """Cores kept busy by everything but this benchmark (other tests, PostgreSQL's own background processes)."""
    ours = sum(v for k, v in result.cpu.items() if k != "machine")
    return max(0.0, result.cpu.get("machine", 0.0) - ours) / result.seconds


def report(result: RunResult) -> None:
    say(
        f"  {result.label:<26} events {result.events}  clients {result.clients:>2}:  "
        f"{result.rate:7,.0f} registrations/s  p50 {result.p50:6.1f}  p95 {result.p95:6.1f}  "
        f"p99 {result.p99:6.1f} ms  errors {result.errors}  "
        f"(1st/2nd half {result.first_half:,.0f}/{result.second_half:,.0f}/s)"
    )
    if result.cpu and result.count > 0:
        parts = [
            f"{name} {used / result.count * 1000:.2f}"
            for name, used in result.cpu.items()
            if name != "machine" and used > 0
        ]
        busy = result.cpu["machine"] / result.seconds
        say(
            f"      CPU ms per registration: {', '.join(parts)}; machine busy {busy:.2f} of {os.cpu_count()} cores, "
            f"{others_cores(result):.2f} of them outside this benchmark"
        )
    for sample in result.error_samples:
        say(f"      ERROR {sample}")
    if not result.committed_ok:
        say("      WARNING: seats_taken does not match the 202s answered")


# ---------------------------------------------------------------------------------------------- web


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Gunicorn:
    workers: int
    threads: int
    database_url: str
    log_dir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def label(self) -> str:
        kind = "gthread" if self.threads > 1 else "sync"
        return f"gunicorn {self.workers}x{self.threads} {kind}"

    def start(self) -> None:
        self.port = free_port()
        self.log_path = self.log_dir / f"gunicorn-{self.workers}x{self.threads}.log"
        cmd = [
            str(ROOT / ".venv" / "bin" / "gunicorn"),
            "config.wsgi",
            "--workers",
            str(self.workers),
            "--threads",
            str(self.threads),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--no-control-socket",  # the default socket path is shared by every gunicorn on the machine
            "--error-logfile",
            str(self.log_path),
            "--log-level",
            "warning",
        ]
        env = {**os.environ, **django_env(self.database_url)}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.label} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    conn.close()
                    break
                conn.close()
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.label} did not answer within 60 s:\n{self.log_tail()}")
            time.sleep(0.1)
        # Every worker answers the health check before the load starts, so imports are not measured.
        deadline = time.monotonic() + 30
        while len(self.pids()) < self.workers + 1 and time.monotonic() < deadline:
            time.sleep(0.1)

    def pids(self) -> list[int]:
        if self.process is None:
            return []
        return [self.process.pid, *children_of(self.process.pid)]

    def log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        pids = self.pids()
        self.process.send_signal(signal.SIGQUIT)  # quick shutdown (SIGTERM would wait for keep-alive clients)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        for pid in pids[1:]:  # workers are gone with their master; make sure
            with contextlib.suppress(OSError):
                os.kill(pid, 0)
                os.kill(pid, signal.SIGKILL)


def http_client(port: int, slugs: list[str], tag: str) -> Callable[[int, threading.Event, Outcome], None]:
    def worker(index: int, stop: threading.Event, outcome: Outcome) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        n = 0
        while not stop.is_set():
            n += 1
            body = json.dumps(
                {
                    "event": slugs[(index + n) % len(slugs)],
                    "first_name": "Ada",
                    "last_name": "Lovelace",
                    "email": f"{tag}.{index}.{n}@bench.example.com",
                    "company": "Analytical Engines Ltd",
                    "payment_token": "tok_visa",
                }
            )
            started = time.perf_counter()
            try:
                conn.request("POST", "/api/registrations/", body=body, headers=headers)
                response = conn.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException) as exc:
                outcome.errors.append((time.perf_counter(), type(exc).__name__, str(exc)))
                conn.close()
                time.sleep(0.01)
                continue
            ended = time.perf_counter()
            if response.status == 202:
                outcome.ok.append((ended, ended - started))
            else:
                outcome.errors.append((ended, str(response.status), answer.decode(errors="replace")))
        conn.close()

    return worker


# ---------------------------------------------------------------------------------------------- bare


def service_client(slugs: list[str], tag: str) -> Callable[[int, threading.Event, Outcome], None]:
    from django.db import connections

    from registrations.services import registration_create

    def worker(index: int, stop: threading.Event, outcome: Outcome) -> None:
        n = 0
        try:
            while not stop.is_set():
                n += 1
                started = time.perf_counter()
                try:
                    registration_create(
                        event_slug=slugs[(index + n) % len(slugs)],
                        first_name="Ada",
                        last_name="Lovelace",
                        email=f"{tag}.{index}.{n}@bench.example.com",
                        company="Analytical Engines Ltd",
                        payment_token="tok_visa",
                    )
                except Exception as exc:  # noqa: BLE001 - reported, like a non-202
                    outcome.errors.append((time.perf_counter(), type(exc).__name__, str(exc)))
                    continue
                ended = time.perf_counter()
                outcome.ok.append((ended, ended - started))
        finally:
            connections.close_all()  # this thread's own connection

    return worker


def run_web(server: Gunicorn, events: int, clients: int, args: argparse.Namespace) -> RunResult:
    slugs = fresh_events(events)
    tag = f"w{server.workers}x{server.threads}e{events}c{clients}"
    outcomes, t0, t1, cpu = drive(
        http_client(server.port, slugs, tag),
        clients,
        args.warmup,
        args.duration,
        lambda: CpuProbe(server.process.pid if server.process else None, bench_db_name()),
    )
    result = summarize(server.label, events, clients, outcomes, t0, t1, cpu)
    result.committed_ok = registrations_committed(slugs) == sum(len(o.ok) for o in outcomes)
    return result


def run_bare(events: int, clients: int, args: argparse.Namespace) -> RunResult:
    slugs = fresh_events(events)
    tag = f"b{events}c{clients}"
    outcomes, t0, t1, cpu = drive(
        service_client(slugs, tag), clients, args.warmup, args.duration, lambda: CpuProbe(None, bench_db_name())
    )
    label = "bare registration_create" if clients > 1 else "bare, one thread"
    result = summarize(label, events, clients, outcomes, t0, t1, cpu)
    result.committed_ok = registrations_committed(slugs) == sum(len(o.ok) for o in outcomes)
    return result


def load_phase(args: argparse.Namespace, database_url: str, log_dir: Path) -> tuple[list[RunResult], list[RunResult]]:
    """Every gunicorn configuration is started up front; then, for each (events, clients) point, each web
    configuration and the bare run back to back (order rotated from point to point), so that the figures
    compared with each other were measured within a minute of each other on this noisy machine."""
    servers = (
        []
        if args.skip_web
        else [Gunicorn(*(int(x) for x in c.split("x")), database_url, log_dir) for c in args.configs]
    )
    web: list[RunResult] = []
    bare: list[RunResult] = []
    try:
        for server in servers:
            server.start()
            say(f"  started {server.label} on port {server.port} (pids {', '.join(map(str, server.pids()))})")
        points = [(events, clients) for events in args.events for clients in args.clients]
        for n, (events, clients) in enumerate(points):
            say(f"\n-- {events} event(s), {clients} concurrent clients --")
            paths: list[Gunicorn | None] = [*servers, *([] if args.skip_bare else [None])]
            shift = n % len(paths)
            for server in paths[shift:] + paths[:shift]:
                if server is None:
                    result = run_bare(events, clients, args)
                    bare.append(result)
                else:
                    result = run_web(server, events, clients, args)
                    web.append(result)
                report(result)
        if not args.skip_bare:
            say("\n-- one thread --")
            result = run_bare(args.events[0], 1, args)
            report(result)
            bare.append(result)
    finally:
        for server in servers:
            server.stop()
    return web, bare


# ---------------------------------------------------------------------------------------------- sql


def sql_phase(calls: int, backlog: int) -> dict[str, Any]:
    """Statement timings of registration_create on one thread, on a fresh event and on one with `backlog` rows."""
    from django.db import connection

    from registrations.models import Event, Registration
    from registrations.services import registration_create

    def classify(sql: str) -> str:
        head = sql.lstrip().upper()
        if head.startswith("SELECT") and "REGISTRATIONS_EVENT" in head:
            return "SELECT event"
        if head.startswith("SELECT 1 AS") or ("LIMIT 1" in head and "REGISTRATION" in head):
            return "SELECT already registered?"
        if head.startswith("INSERT") and "REGISTRATIONS_REGISTRATION" in head:
            return "INSERT registration"
        if head.startswith("UPDATE") and "REGISTRATIONS_EVENT" in head:
            return "UPDATE event seats_taken"
        if head.startswith("INSERT") and "OUTBOX" in head:
            return "INSERT outbox row"
        if head.startswith(("SAVEPOINT", "RELEASE")):
            return "SAVEPOINT / RELEASE"
        return "other: " + head[:40]

    def timed_run(slug: str, tag: str) -> tuple[dict[str, float], float]:
        spent: dict[str, float] = {}

        def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                key = classify(sql)
                spent[key] = spent.get(key, 0.0) + time.perf_counter() - started

        original_commit = connection._commit

        def commit() -> Any:
            started = time.perf_counter()
            try:
                return original_commit()
            finally:
                spent["COMMIT"] = spent.get("COMMIT", 0.0) + time.perf_counter() - started

        connection._commit = commit  # type: ignore[method-assign]
        try:
            with connection.execute_wrapper(wrapper):
                started = time.perf_counter()
                for i in range(calls):
                    registration_create(
                        event_slug=slug,
                        first_name="Ada",
                        last_name="Lovelace",
                        email=f"{tag}.{i}@bench.example.com",
                        company="Analytical Engines Ltd",
                        payment_token="tok_visa",
                    )
                total = time.perf_counter() - started
        finally:
            del connection._commit  # back to the class's method
        return spent, total

    fresh = fresh_events(2)
    timed_run(fresh[0], "sqlwarm")
    spent_fresh, total_fresh = timed_run(fresh[0], "sqlfresh")

    # An event that already has `backlog` registrations (a popular conference), inserted in bulk.
    event = Event.objects.get(slug=fresh[1])
    Registration.objects.bulk_create(
        [
            Registration(event=event, first_name="A", last_name="B", email=f"old.{i}@bench.example.com", company="")
            for i in range(backlog)
        ],
        batch_size=5000,
    )
    with connection.cursor() as cursor:
        cursor.execute(f'ANALYZE "{Registration._meta.db_table}"')
    spent_full, total_full = timed_run(fresh[1], "sqlfull")

    say(f"\n-- where the time goes: registration_create on one thread, {calls} calls, ms per call --")
    keys = list(dict.fromkeys([*spent_fresh, *spent_full]))
    say(f"  {'step':<30} {'fresh event':>12} {f'event with {backlog:,} regs':>24}")
    for key in keys:
        a = spent_fresh.get(key, 0) / calls * 1000
        b = spent_full.get(key, 0) / calls * 1000
        say(f"  {key:<30} {a:12.3f} {b:24.3f}")
    py_fresh = (total_fresh - sum(spent_fresh.values())) / calls * 1000
    py_full = (total_full - sum(spent_full.values())) / calls * 1000
    say(f"  {'Python (ORM, payloads, ...)':<30} {py_fresh:12.3f} {py_full:24.3f}")
    say(f"  {'total':<30} {total_fresh / calls * 1000:12.3f} {total_full / calls * 1000:24.3f}")
    say("  (the event row is locked from the UPDATE of seats_taken to the COMMIT)")

    inproc = inprocess_view(calls)
    return {
        "calls": calls,
        "backlog": backlog,
        "fresh_ms": total_fresh / calls * 1000,
        "full_ms": total_full / calls * 1000,
        "commit_ms": spent_fresh.get("COMMIT", 0) / calls * 1000,
        **inproc,
    }


def inprocess_view(calls: int) -> dict[str, float]:
    """One thread, no HTTP server: registration_create alone vs. the whole view via django.test.Client.

    Best of two rounds each, wall and CPU ms per call: the difference is the cost of Django + DRF themselves.
    """
    from django.test import Client

    from registrations.services import registration_create

    slugs = fresh_events(1)
    client = Client(SERVER_NAME="localhost")

    def service(i: int, tag: str) -> None:
        registration_create(
            event_slug=slugs[0],
            first_name="Ada",
            last_name="Lovelace",
            email=f"{tag}.{i}@bench.example.com",
            company="Analytical Engines Ltd",
            payment_token="tok_visa",
        )

    def view(i: int, tag: str) -> None:
        response = client.post(
            "/api/registrations/",
            data={
                "event": slugs[0],
                "first_name": "Ada",
                "last_name": "Lovelace",
                "email": f"{tag}.{i}@bench.example.com",
                "company": "Analytical Engines Ltd",
                "payment_token": "tok_visa",
            },
            content_type="application/json",
        )
        if response.status_code != 202:
            raise RuntimeError(f"the view answered {response.status_code}: {response.content[:300]!r}")

    best: dict[str, tuple[float, float]] = {}
    for round_ in range(3):
        for name, call in (("service", service), ("view", view)):
            wall, cpu = time.perf_counter(), time.process_time()
            for i in range(calls if round_ else 30):  # round 0 warms up (imports, caches)
                call(i, f"inproc.{name}.{round_}")
            if round_:
                per = ((time.perf_counter() - wall) / calls * 1000, (time.process_time() - cpu) / calls * 1000)
                best[name] = min(best.get(name, per), per)
    say(f"\n  one thread, in-process, no HTTP server ({calls} calls, best of 2 rounds), ms per call:")
    for name, label in (("service", "registration_create alone"), ("view", "the whole view (django.test.Client)")):
        say(f"    {label:<38} wall {best[name][0]:6.2f}   CPU {best[name][1]:6.2f}")
    say(
        f"    Django + DRF around the service: CPU {best['view'][1] - best['service'][1]:.2f} ms per registration "
        "(django.test.Client itself included)"
    )
    return {
        "service_cpu_ms": best["service"][1],
        "view_cpu_ms": best["view"][1],
        "service_wall_ms": best["service"][0],
        "view_wall_ms": best["view"][0],
    }


# ---------------------------------------------------------------------------------------------- profile


def profile_phase(calls: int) -> None:
    from django.test import Client

    from registrations.services import registration_create

    slugs = fresh_events(1)

    def top(profiler: cProfile.Profile, title: str, elapsed: float) -> None:
        say(f"\n-- cProfile: {title}: {elapsed / calls * 1000:.2f} ms per call (under the profiler) --")
        for order, count in (("cumulative", 22), ("tottime", 15)):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(count)
            say(f"  by {order}:")
            for line in out.getvalue().splitlines():
                if line.strip() and "function calls" not in line and not line.lstrip().startswith(("Ordered", "List")):
                    say("  " + line.rstrip())

    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for i in range(calls):
        registration_create(
            event_slug=slugs[0],
            first_name="Ada",
            last_name="Lovelace",
            email=f"prof.{i}@bench.example.com",
            company="Analytical Engines Ltd",
            payment_token="tok_visa",
        )
    profiler.disable()
    top(profiler, "registration_create in-process", time.perf_counter() - started)

    client = Client(SERVER_NAME="localhost")
    ok = 0
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for i in range(calls):
        response = client.post(
            "/api/registrations/",
            data={
                "event": slugs[0],
                "first_name": "Ada",
                "last_name": "Lovelace",
                "email": f"profweb.{i}@bench.example.com",
                "company": "Analytical Engines Ltd",
                "payment_token": "tok_visa",
            },
            content_type="application/json",
        )
        ok += response.status_code == 202
    profiler.disable()
    top(
        profiler,
        f"the whole view through django.test.Client ({ok}/{calls} answered 202)",
        time.perf_counter() - started,
    )


# ---------------------------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--configs",
        type=lambda s: s.split(","),
        default=["2x4", "4x1"],
        help="gunicorn WORKERSxTHREADS, comma separated (threads > 1 means gthread); default 2x4,4x1",
    )
    parser.add_argument(
        "--events", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8], help="events to spread over"
    )
    parser.add_argument(
        "--clients", type=lambda s: [int(x) for x in s.split(",")], default=[16, 32], help="concurrent clients"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds of load before each run")
    parser.add_argument("--sql-calls", type=int, default=300, help="registration_create calls per statement timing")
    parser.add_argument("--backlog", type=int, default=20_000, help="registrations of the 'popular' event (sql)")
    parser.add_argument("--skip-web", action="store_true")
    parser.add_argument("--skip-bare", action="store_true")
    parser.add_argument("--profile", action="store_true", help="also cProfile the service and the whole view")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL server (a database to connect to for CREATE/DROP DATABASE)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the gunicorn logs (path is printed)")
    return parser.parse_args()


def best_config(web: list[RunResult]) -> str:
    totals: dict[str, list[float]] = {}
    for r in web:
        totals.setdefault(r.label, []).append(r.rate)
    return max(totals, key=lambda k: statistics.fmean(totals[k]))


def ratio_table(web: list[RunResult], bare: list[RunResult]) -> list[str]:
    """Markdown: one row per (events, clients), bare registrations/s, then each web configuration and its ratio."""
    labels = list(dict.fromkeys(r.label for r in web))
    best = best_config(web)
    head = [f"**{label}** (best)" if label == best else label for label in labels]
    lines = [
        "| events, clients | bare registrations/s | " + " | ".join(f"{h}: /s (web/bare)" for h in head) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in labels) + " |",
    ]
    for b in bare:
        if b.clients == 1:
            continue
        cells = []
        for label in labels:
            w = next((r for r in web if r.label == label and r.events == b.events and r.clients == b.clients), None)
            ratio = f"{w.rate / b.rate:.0%}" if w and b.rate > 0 else "-"
            cells.append(f"{w.rate:,.0f} ({ratio})" if w else "-")
        lines.append(f"| {b.events}, {b.clients} | {b.rate:,.0f} | " + " | ".join(cells) + " |")
    return lines


def summary(
    info: dict[str, str], web: list[RunResult], bare: list[RunResult], sql: dict[str, Any] | None, duration: float
) -> None:
    say("\n== summary (markdown) ==\n")
    say(
        f"Measured {info['date']} on `{info['host']}`: {info['cpu']}, {info['ram']} RAM, {info['python']}, "
        f"{info['postgresql']} ({info['postgresql settings']}). One run of {duration:.0f} s per line after a "
        "warm-up; client and server share the machine; noisy shared machine."
    )
    if CONTENTION:
        say(
            f"Other test processes were active during this run ({'; '.join(CONTENTION)} at the checkpoints): "
            "the figures are pessimistic and noisier than usual."
        )
    else:
        say("No other test processes were seen at the checkpoints of this run.")
    say()
    say(
        "| path | events | concurrency | registrations/s | p50 ms | p95 ms | p99 ms | errors "
        "| app CPU ms/reg | PostgreSQL CPU ms/reg | others' CPU, cores |"
    )
    say("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    best = best_config(web) if web else ""
    labels = list(dict.fromkeys(r.label for r in web))
    for r in [*sorted(web, key=lambda r: labels.index(r.label)), *bare]:
        name = f"**{r.label}**" if r.label == best else r.label
        app = r.cpu.get("gunicorn") or r.cpu.get("client/bench process", 0.0)
        pg = r.cpu.get("postgres backends", 0.0)
        per = max(1, r.count) / 1000
        say(
            f"| {name} | {r.events} | {r.clients} | {r.rate:,.0f} | {r.p50:.1f} | {r.p95:.1f} | {r.p99:.1f} | "
            f"{r.errors} | {app / per:.2f} | {pg / per:.2f} | {others_cores(r):.2f} |"
        )
    if web and bare:
        say()
        for line in ratio_table(web, bare):
            say(line)
    if sql:
        say()
        say(
            f"One registration_create on one thread: {sql['fresh_ms']:.2f} ms on a fresh event, "
            f"{sql['full_ms']:.2f} ms on an event with {sql['backlog']:,} registrations; "
            f"COMMIT {sql['commit_ms']:.2f} ms. In-process, one thread: registration_create costs "
            f"{sql['service_cpu_ms']:.2f} ms of CPU, the whole view {sql['view_cpu_ms']:.2f} ms."
        )
    say()


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, interrupted)
    os.chdir(ROOT)
    wall = time.perf_counter()
    log_dir = Path(tempfile.mkdtemp(prefix="mice-bench-reg-"))
    keep_logs = args.keep_logs
    try:
        with bench_database(args.pg_url, prefix="mice_bench_reg") as database_url:
            info = machine(args.pg_url)
            say("== machine ==")
            for key, value in info.items():
                say(f"  {key:<22} {value}")
            say(f"  database {urlsplit(database_url).path[1:]}")
            say(f"  migrated in {migrate(database_url):.1f} s")
            setup_django(database_url)
            say(
                f"\nEach line: {args.warmup:.0f} s warm-up, then {args.duration:.0f} s measured; only 202s count. "
                "CPU ms per registration over the measured window."
            )
            say(
                "web: gunicorn config.wsgi, clients are threads here with one keep-alive http.client connection each;"
                "\nbare: registration_create called in-process by as many threads, one DB connection each."
            )
            web, bare = load_phase(args, database_url, log_dir)
            if web and bare:
                say("\nweb / bare, same events and concurrency (the web layer's cost):")
                for line in ratio_table(web, bare):
                    say("  " + line)
            sql = sql_phase(args.sql_calls, args.backlog) if args.sql_calls > 0 else None
            if args.profile:
                profile_phase(max(100, args.sql_calls))
            say(f"\nload average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
            say(f"other test processes at end: {other_activity()}")
            summary(info, web, bare, sql, args.duration)
    except BaseException:
        keep_logs = keep_logs or any(log_dir.iterdir())
        raise
    finally:
        if keep_logs:
            say(f"gunicorn logs kept in {log_dir}")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)
        say(f"total run time {time.perf_counter() - wall:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
