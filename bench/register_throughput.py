"""Benchmark: POST /api/registrations/ through gunicorn, against the same database writes without the web layer.

Run from the project root:  .venv/bin/python bench/register_throughput.py   (about 3 minutes)

It creates its own PostgreSQL database (mice_bench_reg_<pid>), migrates it, and drops it at the end whatever
happens. No relay or Celery worker runs: registering must not wait on them (the 202 is answered once the
registration and its outbox row are committed).

  web:  gunicorn config.wsgi in a couple of worker/thread configurations (e.g. 2 workers x 4 threads gthread,
        4 sync workers), driven by N concurrent clients (threads, one keep-alive http.client connection each),
        unique e-mail per request, payment_token tok_visa, spread round-robin over 1 event (one hot row: the
        event row is updated, so locked, by every registration) and over 8 events. Only 202s count.
  bare: registrations.services.registration_create(...) called in-process from the same number of threads
        (each its own database connection), same events, same duration; plus one thread alone.

Each run uses fresh events (capacity 1,000,000, 120.00 EUR) and starts from emptied registration and outbox
tables, so runs are comparable. Where one registration's time goes: bench/register_statements.py.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.cpu import CpuProbe, ProcMatch, backends_of, process_and_children, this_process  # noqa: E402
from bench.gunicorn import Gunicorn  # noqa: E402
from bench.load import Client, Outcome, drive, http_client  # noqa: E402
from bench.machine import Neighbours, describe, measured_on, print_end, print_machine  # noqa: E402
from bench.measure import Percentiles  # noqa: E402
from bench.registering import (  # noqa: E402
    bench_db_name,
    django_env,
    fresh_events,
    register,
    registrations_committed,
)
from bench.runtime import DEFAULT_PG_URL, bench_database, bench_run, migrate, say, setup_django  # noqa: E402


@dataclass
class RunResult:
    label: str
    events: int
    clients: int
    rate: float
    latency: Percentiles
    errors: int
    first_half: float
    second_half: float
    committed_ok: bool
    cpu: dict[str, float]
    count: int
    seconds: float
    error_samples: list[str]

    def others_cores(self) -> float:
        """Cores kept busy by everything but this benchmark (other tests, PostgreSQL's own background processes)."""
        ours = sum(v for k, v in self.cpu.items() if k != "machine")
        return max(0.0, self.cpu.get("machine", 0.0) - ours) / self.seconds


def summarize(
    label: str, events: int, clients: int, outcomes: list[Outcome], t0: float, t1: float, cpu: dict[str, float]
) -> RunResult:
    done = [(end, lat) for o in outcomes for end, lat in o.ok if t0 <= end <= t1]
    middle, half = (t0 + t1) / 2, (t1 - t0) / 2
    errors = [e for o in outcomes for e in o.errors]
    return RunResult(
        label=label,
        events=events,
        clients=clients,
        rate=len(done) / (t1 - t0),
        latency=Percentiles.of(lat * 1000 for _, lat in done),
        errors=len(errors),
        first_half=sum(1 for end, _ in done if end < middle) / half,
        second_half=sum(1 for end, _ in done if end >= middle) / half,
        committed_ok=True,
        cpu=cpu,
        count=len(done),
        seconds=t1 - t0,
        error_samples=[f"{status}: {body[:300]}" for _, _, status, body in errors[:5]],
    )


def report(result: RunResult) -> None:
    lat = result.latency
    say(
        f"  {result.label:<26} events {result.events}  clients {result.clients:>2}:  "
        f"{result.rate:7,.0f} registrations/s  p50 {lat.p50:6.1f}  p95 {lat.p95:6.1f}  "
        f"p99 {lat.p99:6.1f} ms  errors {result.errors}  "
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
            f"{result.others_cores():.2f} of them outside this benchmark"
        )
    for sample in result.error_samples:
        say(f"      ERROR {sample}")
    if not result.committed_ok:
        say("      WARNING: seats_taken does not match the 202s answered")


def service_client(slugs: list[str], tag: str) -> Client:
    from django.db import connections

    def client(index: int, stop: threading.Event, outcome: Outcome) -> None:
        n = 0
        try:
            while not stop.is_set():
                n += 1
                started = time.perf_counter()
                try:
                    register(slugs[(index + n) % len(slugs)], f"{tag}.{index}.{n}@bench.example.com")
                except Exception as exc:  # noqa: BLE001 - reported, like a non-202
                    ended = time.perf_counter()
                    outcome.errors.append((ended, ended - started, type(exc).__name__, str(exc)))
                    continue
                ended = time.perf_counter()
                outcome.ok.append((ended, ended - started))
        finally:
            connections.close_all()  # this thread's own connection

    return client


def cpu_probe(server: Gunicorn | None) -> CpuProbe:
    sets: dict[str, ProcMatch] = {"client/bench process": this_process()}
    if server is not None and server.process is not None:
        sets["gunicorn"] = process_and_children(server.process.pid)
    sets["postgres backends"] = backends_of(bench_db_name())
    return CpuProbe(sets)


def run(server: Gunicorn | None, events: int, clients: int, args: argparse.Namespace) -> RunResult:
    """One point: fresh events, `clients` clients for warm-up + duration, through `server` or bare (None)."""
    slugs = fresh_events(events)
    if server is not None:
        tag = f"w{server.workers}x{server.threads}e{events}c{clients}"
        client, label = http_client(server.port, slugs, tag), server.label
    else:
        tag = f"b{events}c{clients}"
        client, label = service_client(slugs, tag), "bare registration_create" if clients > 1 else "bare, one thread"
    outcomes, t0, t1, cpu = drive(client, clients, args.warmup, args.duration, cpu_probe(server))
    result = summarize(label, events, clients, outcomes, t0, t1, cpu)
    result.committed_ok = registrations_committed(slugs) == sum(len(o.ok) for o in outcomes)
    return result


def load_phase(args: argparse.Namespace, database_url: str, log_dir: Path) -> tuple[list[RunResult], list[RunResult]]:
    """Every gunicorn configuration is started up front; then, for each (events, clients) point, each web
    configuration and the bare run back to back (order rotated from point to point), so that the figures
    compared with each other were measured within a minute of each other on this noisy machine."""
    env = django_env(database_url)
    shapes = [] if args.skip_web else [config.split("x") for config in args.configs]  # WORKERSxTHREADS
    servers = [Gunicorn(int(workers), int(threads), env, log_dir) for workers, threads in shapes]
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
            for path in paths[shift:] + paths[:shift]:
                result = run(path, events, clients, args)
                (bare if path is None else web).append(result)
                report(result)
        if not args.skip_bare:
            say("\n-- one thread --")
            result = run(None, args.events[0], 1, args)
            report(result)
            bare.append(result)
    finally:
        for server in servers:
            server.stop()
    return web, bare


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
    info: dict[str, str], neighbours: Neighbours, web: list[RunResult], bare: list[RunResult], duration: float
) -> None:
    say("\n== summary (markdown) ==\n")
    say(
        f"{measured_on(info)} One run of {duration:.0f} s per line after a warm-up; client and server share "
        "the machine; noisy shared machine."
    )
    say(neighbours.verdict())
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
        lat = r.latency
        say(
            f"| {name} | {r.events} | {r.clients} | {r.rate:,.0f} | {lat.p50:.1f} | {lat.p95:.1f} | {lat.p99:.1f} | "
            f"{r.errors} | {app / per:.2f} | {pg / per:.2f} | {r.others_cores():.2f} |"
        )
    if web and bare:
        say()
        for line in ratio_table(web, bare):
            say(line)
    say()


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
    parser.add_argument("--skip-web", action="store_true")
    parser.add_argument("--skip-bare", action="store_true")
    parser.add_argument(
        "--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server (a database to connect to for CREATE/DROP DATABASE)"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the gunicorn logs (path is printed)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    neighbours = Neighbours()
    with (
        bench_run(log_prefix="mice-bench-reg-", keep_logs=args.keep_logs) as log_dir,
        bench_database(args.pg_url, prefix="mice_bench_reg") as database_url,
    ):
        info = describe(neighbours, pg_url=args.pg_url)
        print_machine(info)
        say(f"  database {urlsplit(database_url).path[1:]}")
        say(f"  migrated in {migrate(django_env(database_url)):.1f} s")
        setup_django(django_env(database_url))
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
        print_end(neighbours)
        summary(info, neighbours, web, bare, args.duration)
    return 0


if __name__ == "__main__":
    sys.exit(main())
