"""Benchmark: registering while the e-mail server is slow or down, or RabbitMQ stopped, against a synchronous baseline.

Run from the project root:
    .venv/bin/python bench/decoupling.py                     all four conditions (about 5 minutes; STOPS RABBITMQ)
    .venv/bin/python bench/decoupling.py --conditions a,b,c  without (d): RabbitMQ is left alone

It makes its own PostgreSQL database and RabbitMQ vhost and removes both at the end, whatever happens.

Two paths, each `POST`ing registrations (unique e-mail, tok_visa, round-robin over fresh events) from
--clients concurrent keep-alive clients with a --timeout (a request that takes longer is an error, counted at
its timeout) to gunicorn run with the Procfile's web options (2 workers x 4 threads, --preload):
  event-driven: POST /api/registrations/ with the production settings (config.settings), the real relay,
                Celery worker (the Procfile's 4 pool processes) and dead-letter recorder running: they charge,
                issue and render the invoice and send the e-mails through SMTP meanwhile, competing for the same
                two cores.
  baseline:     POST /bench/baseline/registrations/ (bench/baseline/views.py, routed only by bench.settings):
                the same API view, then the charge (sandbox gateway), the invoice PDF, the e-mail over SMTP
                and a publish to RabbitMQ with Celery's retry policy, all inside the request. No relay runs
                (the design it stands for has none), so its outbox rows stay unsent.
under four conditions:
  (a) all healthy: the SMTP server answers at once;
  (b) the e-mail server answering after --smtp-delay s: every reply of the SMTP server comes that late (about
      7 replies per e-mail, so 14 s per e-mail at 2 s; bench/smtp_server.py);
  (c) the e-mail server down: nothing listens on its port (connections are refused);
  (d) RabbitMQ stopped (`rabbitmqctl stop_app`), started again afterwards whatever happens, then checked with
      scripts/services.sh's ensure_rabbitmq. Other test runs on the machine lose the broker meanwhile.

Per condition, the event-driven cell runs first, then the baseline on a freshly started server (the
baseline's abandoned requests of one condition must not weigh on the next); each cell starts from emptied
queues and fresh events, then --warmup s of load, then --duration s measured. A cell's throughput counts the
202s that ended in the measured window; its p50/p99 and errors count every request under way at some time in
the window, with its whole latency (a failure at the time it took to fail, a hang at the client timeout).

Figures go to --out (bench/results/ by default): decoupling.json, decoupling.md and the chart decoupling.png.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import http.client
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.cpu import CpuProbe, ProcMatch, in_group, process_and_children  # noqa: E402
from bench.gunicorn import Gunicorn, free_port, procfile_web  # noqa: E402
from bench.load import Outcome, drive, http_client  # noqa: E402
from bench.machine import Neighbours, describe, measured_on, print_end, print_machine  # noqa: E402
from bench.measure import Percentiles  # noqa: E402
from bench.registering import django_env, fresh_events, registrations_committed  # noqa: E402
from bench.runtime import (  # noqa: E402
    DEFAULT_PG_URL,
    bench_database,
    bench_run,
    bench_vhost,
    migrate,
    say,
    setup_django,
)
from bench.smtp_server import accepted, smtp_server  # noqa: E402
from tests.processes import Process, ProcfileProcesses  # noqa: E402

FLAT = 1.2  # the event-driven path's p99 in (b)-(d) stays within this factor of (a)'s
COLLAPSED = 0.5  # the baseline has collapsed when fewer than this share of (a)'s registrations succeed


@dataclasses.dataclass(frozen=True)
class Condition:
    key: str
    title: str
    smtp_up: bool = True
    smtp_late: bool = False
    broker_up: bool = True


CONDITIONS = {
    "a": Condition("a", "all healthy"),
    "b": Condition("b", "e-mail server slow", smtp_late=True),
    "c": Condition("c", "e-mail server down", smtp_up=False),
    "d": Condition("d", "RabbitMQ stopped", broker_up=False),
}


@dataclasses.dataclass(frozen=True)
class Design:
    key: str
    title: str
    url: str
    settings: str


PATHS = (
    Design("event", "event-driven", "/api/registrations/", "config.settings"),
    Design("baseline", "synchronous baseline", "/bench/baseline/registrations/", "bench.settings"),
)


@dataclasses.dataclass
class Run:
    """One cell measured once (one round): its raw samples, kept so that the rounds can be pooled."""

    condition: str
    path: str
    seconds: float
    ok_in_window: int  # 202s that ended in the measured window
    ok_ms: list[float]  # latencies of the 202s under way in the window
    error_ms: list[float]  # the time each failed request under way in the window took to fail
    error_kinds: dict[str, int]
    error_samples: list[str]
    cpu: dict[str, float]
    committed: int = 0
    emails_accepted: int = 0


@dataclasses.dataclass
class Cell:
    """A condition x path, its rounds pooled: every sample of every round, over their measured seconds."""

    condition: str
    path: str
    rounds: int
    seconds: float
    ok: int  # 202s that ended in the measured windows
    requests: int  # requests under way in the measured windows, answered or failed
    errors: int  # failed requests among those
    rate: float
    p50_ms: float
    p99_ms: float
    ok_p99_ms: float
    round_p99_ms: list[float]
    committed: int
    emails_accepted: int
    web_cores: float
    background_cores: float
    machine_cores: float
    error_kinds: dict[str, int]
    error_samples: list[str]

    @classmethod
    def of(cls, runs: list[Run]) -> Cell:
        seconds = sum(r.seconds for r in runs)
        ok = [v for r in runs for v in r.ok_ms]
        every = Percentiles.of([*ok, *(v for r in runs for v in r.error_ms)])
        kinds: dict[str, int] = {}
        for run in runs:
            for kind, count in run.error_kinds.items():
                kinds[kind] = kinds.get(kind, 0) + count

        def cores(*names: str) -> float:
            return sum(r.cpu.get(name, 0.0) for r in runs for name in names) / seconds

        return cls(
            condition=runs[0].condition,
            path=runs[0].path,
            rounds=len(runs),
            seconds=seconds,
            ok=sum(r.ok_in_window for r in runs),
            requests=len(ok) + sum(len(r.error_ms) for r in runs),
            errors=sum(len(r.error_ms) for r in runs),
            rate=sum(r.ok_in_window for r in runs) / seconds,
            p50_ms=every.p50,
            p99_ms=every.p99,
            ok_p99_ms=Percentiles.of(ok).p99,
            round_p99_ms=[Percentiles.of([*r.ok_ms, *r.error_ms]).p99 for r in runs],
            committed=sum(r.committed for r in runs),
            emails_accepted=sum(r.emails_accepted for r in runs),
            web_cores=cores("web"),
            background_cores=cores("worker", "recorder", "relay"),
            machine_cores=cores("machine"),
            error_kinds=kinds,
            error_samples=list(dict.fromkeys(sample for r in runs for sample in r.error_samples))[:3],
        )


def settings_env(database_url: str, broker_url: str, smtp_port: int, log_dir: Path) -> dict[str, str]:
    """Production settings on the loopback (bench/registering.py), e-mail through SMTP to the benchmark's server."""
    return {
        **django_env(database_url),
        "CELERY_BROKER_URL": broker_url,
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_port),
        "SANDBOX_GATEWAY_PATH": str(log_dir / "sandbox-gateway.sqlite3"),
    }


@contextlib.contextmanager
def email_server(condition: Condition, port: int, delay: float, count_file: Path, log_dir: Path) -> Iterator[None]:
    if not condition.smtp_up:
        yield  # nothing on the port: connections are refused
        return
    with smtp_server(port, delay if condition.smtp_late else 0.0, count_file, log_dir):
        yield


def rabbitmq_ensured() -> None:
    """scripts/services.sh's ensure_rabbitmq, unless the broker answers within 30 s of start_app anyway."""
    script = f'. "{ROOT / "scripts" / "services.sh"}"; wait_for_port 127.0.0.1 5672 30 || ensure_rabbitmq'
    subprocess.run(["bash", "-c", script], check=True, timeout=600)


@contextlib.contextmanager
def rabbitmq_stopped() -> Iterator[None]:
    """RabbitMQ's application stopped (its port closes) for the block, and started again whatever happens."""
    from tests.broker import rabbitmqctl

    say("  stopping RabbitMQ (rabbitmqctl stop_app)")
    stopped = time.perf_counter()
    try:
        rabbitmqctl("stop_app")
        yield
    finally:
        try:
            rabbitmqctl("start_app", timeout=120)
        except Exception as exc:  # noqa: BLE001 - ensure_rabbitmq below starts it another way
            say(f"  WARNING: rabbitmqctl start_app failed: {exc}")
        rabbitmq_ensured()
        say(f"  RabbitMQ started again (it was stopped for {time.perf_counter() - stopped:.0f} s)")


def summarize(condition: str, path: str, outcomes: list[Outcome], t0: float, t1: float, cpu: dict[str, float]) -> Run:
    """Throughput from the 202s that ended in the measured window [t0, t1]; latencies and errors from every
    request under way at some time in it, each with its whole latency. A request that hangs until its
    timeout thus counts even when the window is shorter than the timeout (the clients finish the requests
    they have under way after t1, so those end too)."""

    def under_way(end: float, latency: float) -> bool:
        return end >= t0 and end - latency <= t1

    errors = [e for o in outcomes for e in o.errors if under_way(e[0], e[1])]
    kinds: dict[str, int] = {}
    for _, _, status, _ in errors:
        kinds[status] = kinds.get(status, 0) + 1
    return Run(
        condition=condition,
        path=path,
        seconds=t1 - t0,
        ok_in_window=sum(1 for o in outcomes for end, _ in o.ok if t0 <= end <= t1),
        ok_ms=[lat * 1000 for o in outcomes for end, lat in o.ok if under_way(end, lat)],
        error_ms=[lat * 1000 for _, lat, _, _ in errors],
        error_kinds=kinds,
        error_samples=list(
            {status: f"{status}: {' '.join(body.split())[:160]}" for _, _, status, body in errors}.values()
        ),
        cpu=cpu,
    )


def prime(server: Gunicorn, path: Design) -> None:
    """Have each worker process of a fresh server load what its first request loads (the urlconf, the views'
    modules, the baseline's PDF fonts) before it is measured: seconds of imports on a busy machine are not a
    design's cost. Empty bodies, refused by validation (400): nothing is registered, charged or sent."""

    def one(_: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        try:
            conn.request("POST", path.url, body="{}", headers={"Content-Type": "application/json"})
            conn.getresponse().read()
        finally:
            conn.close()

    slots = server.workers * server.threads  # enough at once that every worker process gets some
    with ThreadPoolExecutor(slots) as pool:
        list(pool.map(one, range(4 * slots)))


def run_cell(
    condition: Condition,
    path: Design,
    server: Gunicorn,
    background: dict[str, ProcMatch],
    count_file: Path,
    args: argparse.Namespace,
) -> Run:
    slugs = fresh_events(args.events)
    assert server.process is not None
    probe = CpuProbe({"web": process_and_children(server.process.pid), **background})
    client = http_client(server.port, slugs, f"{condition.key}{path.key}", path=path.url, timeout=args.timeout)
    emails_before = accepted(count_file)
    outcomes, t0, t1, cpu = drive(client, args.clients, args.warmup, args.duration, probe)
    run = summarize(condition.key, path.key, outcomes, t0, t1, cpu)
    run.emails_accepted = accepted(count_file) - emails_before
    run.committed = registrations_committed(slugs)
    report(Cell.of([run]))
    return run


def ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def report(cell: Cell) -> None:
    title = next(p.title for p in PATHS if p.key == cell.path)
    say(
        f"  {title:<21} {cell.rate:6.1f} registrations/s  p50 {ms(cell.p50_ms):>7}  p99 {ms(cell.p99_ms):>7} ms  "
        f"errors {cell.errors}  (202s {cell.ok}; registrations committed {cell.committed}; e-mails accepted by the "
        f"SMTP server {cell.emails_accepted})"
    )
    say(
        f"      CPU, cores: web {cell.web_cores:.2f}, relay + worker + recorder {cell.background_cores:.2f}, "
        f"whole machine {cell.machine_cores:.2f} of {os.cpu_count()}"
    )
    if cell.error_kinds:
        say(f"      errors by kind: {', '.join(f'{k} x{v}' for k, v in cell.error_kinds.items())}")
        for sample in cell.error_samples:
            say(f"      e.g. {sample!r}")


def measure(
    args: argparse.Namespace,
    env: dict[str, str],
    broker_url: str,
    database_url: str,
    log_dir: Path,
    neighbours: Neighbours,
) -> list[Cell]:
    workers, threads, options = procfile_web()
    system = ProcfileProcesses(database_url=database_url, broker_url=broker_url, log_dir=log_dir)
    system.env.update(env)  # production settings, not the tests'
    count_file = log_dir / "smtp-accepted.txt"
    smtp_port = int(env["EMAIL_PORT"])
    event_server = Gunicorn(
        workers, threads, {**env, "DJANGO_SETTINGS_MODULE": PATHS[0].settings}, log_dir, options, "event-driven"
    )
    runs: list[Run] = []
    try:
        started = time.perf_counter()
        event_server.start()
        prime(event_server, PATHS[0])
        worker = system.worker(concurrency=4)  # as the Procfile's worker (CELERY_WORKER_CONCURRENCY)
        recorder = system.recorder()
        neighbours.own_groups |= {worker.pid, recorder.pid}  # each leads a process group of its own
        say(
            f"  started gunicorn {workers}x{threads} ({' '.join(options)}), worker, recorder in "
            f"{time.perf_counter() - started:.1f} s"
        )
        for n in range(1, args.rounds + 1):
            for key in args.conditions:
                condition = CONDITIONS[key]
                late = f", every reply {args.smtp_delay:g} s late" if condition.smtp_late else ""
                of = f" (round {n} of {args.rounds})" if args.rounds > 1 else ""
                say(f"\n-- ({key}) {condition.title}{late}{of} --")
                say(f"  other test processes: {neighbours.check()}")
                runs.extend(
                    condition_runs(
                        condition, system, event_server, [worker, recorder], smtp_port, count_file, neighbours, args
                    )
                )
                for process in (worker, recorder):
                    if not process.alive():
                        say(f"  WARNING: the {process.name} died (the event-driven path had nothing behind it):")
                        say(process.log()[-3000:])
    finally:
        system.stop_all()
        event_server.stop()
    return [
        Cell.of(chosen)
        for key in args.conditions
        for path in PATHS
        if (chosen := [r for r in runs if r.condition == key and r.path == path.key])
    ]


def condition_runs(
    condition: Condition,
    system: ProcfileProcesses,
    event_server: Gunicorn,
    behind: list[Process],
    smtp_port: int,
    count_file: Path,
    neighbours: Neighbours,
    args: argparse.Namespace,
) -> list[Run]:
    """Both paths under one condition: the event-driven one with a relay running, then the baseline on a fresh
    server (the abandoned requests of an earlier condition must not weigh on it) with none."""
    runs: list[Run] = []
    workers, threads, options = event_server.workers, event_server.threads, event_server.options
    env = {**event_server.env, "DJANGO_SETTINGS_MODULE": PATHS[1].settings}
    with email_server(condition, smtp_port, args.smtp_delay, count_file, system.log_dir):
        system.purge_queues()  # an earlier cell's backlog is not this cell's work
        relay = system.relay(LOG_LEVEL="INFO")  # INFO: its "connected" line says it is ready
        neighbours.own_groups.add(relay.pid)
        baseline = Gunicorn(workers, threads, env, system.log_dir, options, "baseline")
        try:
            relay.wait_for_log("relay connected to the broker", timeout=60)
            baseline.start()
            prime(baseline, PATHS[1])
            # Each was started in a session of its own: its process group is it and its children (a worker's pool).
            background = {process.name: in_group(process.pid) for process in [*behind, relay]}
            with contextlib.nullcontext() if condition.broker_up else rabbitmq_stopped():
                runs.append(run_cell(condition, PATHS[0], event_server, background, count_file, args))
                relay.terminate()  # the baseline's design has no relay: its outbox rows stay unsent
                if condition.broker_up:
                    system.purge_queues()  # the worker's backlog would weigh on the baseline's cores
                runs.append(run_cell(condition, PATHS[1], baseline, background, count_file, args))
        finally:
            relay.terminate()
            baseline.stop()
    return runs


def cell_of(cells: list[Cell], condition: str, path: str) -> Cell | None:
    return next((c for c in cells if c.condition == condition and c.path == path), None)


def ratio(cells: list[Cell], cell: Cell) -> float:
    healthy = cell_of(cells, "a", cell.path)
    if healthy is None or not healthy.p99_ms or math.isnan(healthy.p99_ms) or math.isnan(cell.p99_ms):
        return math.nan
    return cell.p99_ms / healthy.p99_ms


def table(cells: list[Cell]) -> list[str]:
    lines = [
        "| condition | path | registrations/s | p50 ms | p99 ms | errors (share) | p99 / (a) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for cell in cells:
        path = next(p.title for p in PATHS if p.key == cell.path)
        r = ratio(cells, cell)
        lines.append(
            f"| ({cell.condition}) {CONDITIONS[cell.condition].title} | {path} | {cell.rate:,.1f} | "
            f"{ms(cell.p50_ms)} | {ms(cell.p99_ms)} | {cell.errors} ({failed_share(cell):.0f}%) | "
            f"{'-' if math.isnan(r) else f'{r:.2f}x'} |"
        )
    return lines


def verdicts(cells: list[Cell]) -> list[str]:
    lines = []
    for cell in cells:
        healthy = cell_of(cells, "a", cell.path)
        if cell.condition == "a" or healthy is None:
            continue
        r = ratio(cells, cell)
        share = cell.rate / healthy.rate if healthy.rate else math.nan
        if cell.path == "event":
            flat = r <= FLAT and cell.errors == 0
            lines.append(
                f"- ({cell.condition}) event-driven: p99 {r:.2f}x (a)'s, {share:.0%} of its throughput, "
                f"{cell.errors} errors: {'flat' if flat else 'NOT flat'} (p99 within {FLAT}x of (a), no errors)"
            )
        else:
            collapsed = share < COLLAPSED
            lines.append(
                f"- ({cell.condition}) baseline: {share:.0%} of (a)'s throughput, {cell.errors} errors, p99 "
                f"{ms(cell.p99_ms)} ms: {'collapsed' if collapsed else 'did NOT collapse'} "
                f"(below {COLLAPSED:.0%} of (a)'s registrations/s)"
            )
    return lines


def chart(cells: list[Cell], out: Path, subtitle: str, args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display: write the file only
    import matplotlib.pyplot as plt

    conditions = list(dict.fromkeys(c.condition for c in cells))
    labels = {
        "a": "(a) healthy",
        "b": f"(b) SMTP replies\n{args.smtp_delay:g} s late",
        "c": "(c) SMTP down",
        "d": "(d) RabbitMQ\nstopped",
    }
    colours = {"event": "#1d4e89", "baseline": "#c0392b"}
    panels = [
        ("registrations/s (202s)", lambda c: c.rate, False),
        ("p99 latency, ms (log scale)", lambda c: c.p99_ms, True),
        (f"failed requests, % (5xx, {args.timeout:g} s timeouts...)", failed_share, False),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(13, 4.6))
    width = 0.38
    for ax, (title, value, log) in zip(axes, panels, strict=True):
        for offset, path in ((-width / 2, PATHS[0]), (width / 2, PATHS[1])):
            xs, ys = [], []
            for i, key in enumerate(conditions):
                cell = cell_of(cells, key, path.key)
                if cell is not None:
                    xs.append(i + offset)
                    y = value(cell)
                    ys.append(0.0 if math.isnan(y) else y)
            bars = ax.bar(xs, ys, width, label=path.title if ax is axes[0] else None, color=colours[path.key])
            ax.bar_label(bars, labels=[ms(y) if log else f"{y:,.0f}" for y in ys], fontsize=7, padding=2)
        ax.set_title(title, fontsize=10)
        ax.set_xticks(range(len(conditions)), [labels[k] for k in conditions], fontsize=8)
        if log:
            ax.set_yscale("log")
            ax.margins(y=0.15)
        else:  # from 0, with room above the tallest bar for its label; an axis of zeros still shows 0 to 1
            tallest = max((bar.get_height() for bar in ax.patches), default=0.0)
            ax.set_ylim(0, max(1.0, tallest * 1.12))
    fig.suptitle("POST /api/registrations/ under gunicorn: event-driven against a synchronous baseline", fontsize=11)
    fig.legend(loc="upper center", bbox_to_anchor=(0.5, 0.94), ncol=2, fontsize=8, frameon=False)
    fig.text(0.5, 0.005, subtitle, ha="center", fontsize=7, color="#616e7c", wrap=True)
    fig.tight_layout(rect=(0, 0.06, 1, 0.9))
    fig.savefig(out, dpi=90)
    plt.close(fig)


def failed_share(cell: Cell) -> float:
    """Failed requests as a percentage of those under way in the window: comparable between a condition
    whose failures take 10 s each and one whose failures are instant, unlike their counts."""
    return 100.0 * cell.errors / cell.requests if cell.requests else math.nan


def json_ready(value: Any) -> Any:
    """NaN (a figure without samples) as null: JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def write_results(
    cells: list[Cell], info: dict[str, str], neighbours: Neighbours, args: argparse.Namespace, seconds: float
) -> list[str]:
    args.out.mkdir(parents=True, exist_ok=True)
    shared = neighbours.verdict()
    per_cell = f"{args.warmup:g} s warm-up + {args.duration:g} s measured per cell"
    if args.rounds > 1:
        per_cell = f"{args.rounds} rounds of {per_cell}, pooled"
    md = [
        f"{measured_on(info)} {args.clients} concurrent clients, {per_cell}, client timeout {args.timeout:g} s; "
        f"{seconds:.0f} s from the start to these figures. {shared}",
        "",
        *table(cells),
        "",
        *verdicts(cells),
    ]
    if args.rounds > 1:
        md += ["", "p99 of each round, ms (the spread is the machine's noise):"]
        md += [
            f"- ({c.condition}) {next(p.title for p in PATHS if p.key == c.path)}: "
            + ", ".join(ms(v) for v in c.round_p99_ms)
            for c in cells
        ]
    (args.out / "decoupling.md").write_text("\n".join(md) + "\n")
    payload = {
        "machine": info,
        "neighbours": shared,
        "arguments": vars(args),
        "run_seconds": round(seconds, 1),
        "cells": [{**dataclasses.asdict(c), "p99_ratio_to_a": ratio(cells, c)} for c in cells],
    }
    (args.out / "decoupling.json").write_text(json.dumps(json_ready(payload), indent=2) + "\n")
    subtitle = f"{measured_on(info)} {per_cell}, {args.clients} clients. {shared}"
    chart(cells, args.out / "decoupling.png", subtitle, args)
    return md


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--conditions",
        type=lambda s: [c.strip() for c in s.split(",") if c.strip()],
        default=["a", "b", "c", "d"],
        help="which of a,b,c,d to run, in that order (default all; d stops RabbitMQ for the whole machine)",
    )
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--events", type=int, default=8, help="events the registrations are spread over")
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per cell (default 15)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="go through the conditions this many times, pooling each cell's samples (on a shared machine, "
        "e.g. --rounds 3 --duration 5: other load drifts over the rounds instead of landing on one condition)",
    )
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds of load before each cell")
    parser.add_argument("--timeout", type=float, default=10.0, help="client timeout, s (default 10)")
    parser.add_argument("--smtp-delay", type=float, default=2.0, help="(b): seconds each SMTP reply comes late")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="where the figures go")
    parser.add_argument(
        "--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server (a database to connect to for CREATE/DROP DATABASE)"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs (path is printed)")
    args = parser.parse_args()
    unknown = [c for c in args.conditions if c not in CONDITIONS]
    if unknown or not args.conditions:
        parser.error(f"--conditions takes letters among a,b,c,d, not {','.join(unknown) or 'nothing'}")
    args.conditions = [c for c in CONDITIONS if c in args.conditions]
    return args


def main() -> int:
    args = parse_args()
    if "d" in args.conditions:
        say(
            "NOTE: condition (d) stops RabbitMQ for about a minute: any other test run on this machine loses its "
            "broker meanwhile. It is started again whatever happens. --conditions a,b,c leaves it alone."
        )
    neighbours = Neighbours()
    wall = time.perf_counter()
    with (
        bench_run(log_prefix="mice-bench-decoupling-", keep_logs=args.keep_logs) as log_dir,
        bench_database(args.pg_url, prefix="mice_bench_decoupling") as database_url,
        bench_vhost() as broker_url,
    ):
        info = describe(neighbours, pg_url=args.pg_url, broker_url=broker_url)
        print_machine(info)
        env = settings_env(database_url, broker_url, free_port(), log_dir)
        say(f"  database {urlsplit(database_url).path[1:]}, vhost {urlsplit(broker_url).path[1:]}")
        say(f"  migrated in {migrate(env):.1f} s")
        setup_django(env)
        say(
            f"\nEach cell: {args.warmup:g} s warm-up, {args.duration:g} s measured, {args.clients} clients, timeout "
            f"{args.timeout:g} s. registrations/s counts the 202s that ended in the window; p50/p99 every request "
            "under way in it."
        )
        cells = measure(args, env, broker_url, database_url, log_dir, neighbours)
        print_end(neighbours)
        md = write_results(cells, info, neighbours, args, time.perf_counter() - wall)
        say("\n== summary (markdown) ==\n")
        for line in md:
            say(line)
        say(f"\nfigures: {args.out}/decoupling.md and decoupling.json, chart {args.out}/decoupling.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
