"""Benchmark: commit-to-handler latency through the outbox relay, under a steady load, with a real worker.

Run from the project root:  .venv/bin/python bench/relay_latency.py   (about half a minute)

It makes its own RabbitMQ vhost and PostgreSQL database and removes both at the end, whatever happens.
A real Celery worker and relay run as subprocesses; this process emits a steady load of one event per
transaction and measures, per event, commit wall-clock time (here) to handler start (the Effect row's
created_at, in the worker). It also counts the CPU each process spent per event and the new PostgreSQL
connections opened. Target: p99 < 100 ms, nothing missing.

--capacity instead climbs steps of rate (200, 300, ... events/s, 10 s each) in several rounds and reports the
highest rate whose p99 stays under 100 ms: median and spread over the rounds (about 3 minutes).

Flags: see --help. --worker-db-reuse N runs the worker with CELERY_DB_REUSE_MAX=N (an experiment).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import probe_events  # noqa: E402
from bench.cpu import CpuProbe, in_group, named, this_process  # noqa: E402
from bench.machine import Neighbours, describe, measured_on, print_end, print_machine  # noqa: E402
from bench.measure import Percentiles, percentile  # noqa: E402
from bench.runtime import DEFAULT_PG_URL, bench_database, bench_run, bench_vhost, migrate, say  # noqa: E402
from bench.runtime import setup_django as django_setup  # noqa: E402

LATENCY_TARGET_MS = 100.0


def settings_env(database_url: str, broker_url: str) -> dict[str, str]:
    return {"DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": database_url, "CELERY_BROKER_URL": broker_url}


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def db_counters() -> tuple[int, int]:
    """Sessions (connections) ever opened to the bench database and transactions committed in it, every
    process's (pg_stat_database; sessions needs PostgreSQL 14+). A `SELECT 1` in autocommit counts as one."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions, xact_commit FROM pg_stat_database WHERE datname = current_database()")
        row = cursor.fetchone()
    return (int(row[0]) if row and row[0] is not None else -1), (int(row[1]) if row else -1)


def offer_load(rate: float, seconds: float, tag: str, emitters: int = 1) -> tuple[dict[str, float], float, float]:
    """One emit per transaction, paced by the clock; returns ({event id: commit wall time}, seconds, worst lag).

    With `emitters` > 1, that many threads (each its own database connection) share the schedule, event i
    going to thread i mod emitters: on a busy machine one thread's transactions cannot keep up with a high rate.
    """
    from django.db import connections

    total = round(rate * seconds)
    commits: dict[str, float] = {}
    lags = [0.0] * emitters
    started = time.perf_counter()

    def emit(k: int) -> None:
        try:
            for i in range(k, total, emitters):
                due = started + i / rate
                now = time.perf_counter()
                if due > now:
                    time.sleep(due - now)
                else:
                    lags[k] = max(lags[k], now - due)
                event_id = probe_events.emit_probe(f"{tag}-{i}")
                commits[event_id] = time.time()  # right after COMMIT returned
        finally:
            if k:
                connections.close_all()  # this thread's own connection

    threads = [threading.Thread(target=emit, args=(k,)) for k in range(1, emitters)]
    for thread in threads:
        thread.start()
    emit(0)
    for thread in threads:
        thread.join()
    return commits, time.perf_counter() - started, max(lags)


def handled_at(event_ids: list[str]) -> dict[str, float]:
    from tests.probe.models import Effect

    found: dict[str, float] = {}
    for i in range(0, len(event_ids), 2000):
        rows = Effect.objects.filter(handler="probe.slow", event_id__in=event_ids[i : i + 2000])
        for event_id, created in rows.values_list("event_id", "created_at"):
            found.setdefault(str(event_id), created.timestamp())
    return found


def sent_at(event_ids: list[str]) -> dict[str, float]:
    from mice.models import OutboxMessage

    found: dict[str, float] = {}
    for i in range(0, len(event_ids), 2000):
        rows = OutboxMessage.objects.filter(event_id__in=event_ids[i : i + 2000], sent_at__isnull=False)
        for event_id, sent in rows.values_list("event_id", "sent_at"):
            found[str(event_id)] = sent.timestamp()
    return found


def relay_batches(log_text: str) -> tuple[int, float, float]:
    """(batches, mean rows per batch, median batch duration ms) from the relay's logfmt lines."""
    rows: list[int] = []
    durations: list[float] = []
    for line in log_text.splitlines():
        if 'msg="relayed batch"' not in line:
            continue
        r = re.search(r"\brows=(\d+)", line)
        d = re.search(r"\bduration_ms=([\d.]+)", line)
        if r and d:
            rows.append(int(r.group(1)))
            durations.append(float(d.group(1)))
    if not rows:
        return 0, math.nan, math.nan
    return len(rows), statistics.mean(rows), statistics.median(durations)


def latency(broker_url: str, database_url: str, args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    from tests.processes import ProcfileProcesses

    say(f"\n== latency: {args.rate:.0f} events/s for {args.duration:.0f} s, one emit per transaction ==")
    say("commit (wall clock, bench process) -> handler start (Effect.created_at, set in the handler; the inbox")
    say("insert before it is included, so this slightly over-states the latency); real worker + relay subprocesses")
    probe_events.declare_topology(broker_url)
    probe_events.empty(broker_url)
    system = ProcfileProcesses(database_url=database_url, broker_url=broker_url, log_dir=log_dir)
    try:
        started = time.perf_counter()
        project_env = dict(system.env)
        if args.worker_db_reuse:
            # Celery's Django fixup closes the database connection around every task unless CELERY_DB_REUSE_MAX
            # is set; this shows what that costs without changing the project's settings.
            (log_dir / "bench_worker_settings.py").write_text(
                f"from tests.settings import *  # noqa: F403\nCELERY_DB_REUSE_MAX = {args.worker_db_reuse}\n"
            )
            system.env.update(DJANGO_SETTINGS_MODULE="bench_worker_settings", PYTHONPATH=f"{log_dir}{os.pathsep}{ROOT}")
            say(f"  EXPERIMENT: worker with CELERY_DB_REUSE_MAX={args.worker_db_reuse}, not the project's settings")
        worker = system.worker(concurrency=args.concurrency, **worker_env(args))
        system.env = project_env
        relay = system.relay(**relay_env(args))
        relay.wait_for_log("relay connected to the broker", timeout=30)
        say(f"  worker (prefork -c {args.concurrency}) and relay up in {time.perf_counter() - started:.1f} s")

        # Warm-up, not measured: first task imports, connections, the pool children's first database use.
        warm, _, _ = offer_load(args.rate, args.warmup, "warmup")
        if not wait_until(lambda: len(handled_at(list(warm))) >= len(warm), timeout=30):
            raise RuntimeError("warm-up events were not all handled in 30 s:\n" + system.dump_logs())
        relay_log_before = len(relay.log())

        probe = CpuProbe(
            {
                "worker (main + pool)": in_group(worker.pid),
                "relay": in_group(relay.pid),
                "bench (emitting)": this_process(),
                "rabbitmq (beam.smp)": named("beam.smp"),
                "postgresql (all backends)": named("postgres"),
            }
        )
        sessions_before, commits_before = db_counters()
        probe.begin()
        wall_before = time.perf_counter()
        commits, offered_secs, worst_lag = offer_load(args.rate, args.duration, "load", args.emitters)
        ids = list(commits)
        wait_until(lambda: len(handled_at(ids)) >= len(ids), timeout=60, interval=0.25)
        cpu, spent = probe.end(), time.perf_counter() - wall_before
        time.sleep(0.6)  # statistics of ended sessions reach pg_stat_database within PGSTAT_MIN_INTERVAL
        sessions_after, commits_after = db_counters()
        sessions, transactions = sessions_after - sessions_before, commits_after - commits_before
        handled = handled_at(ids)
        sent = sent_at(ids)
        batches, rows_per_batch, batch_ms = relay_batches(relay.log()[relay_log_before:])
        if not worker.alive() or not relay.alive():
            say("  WARNING: a subprocess died:\n" + system.dump_logs())
    finally:
        system.stop_all()
    lat = Percentiles.of((handled[e] - commits[e]) * 1000 for e in ids if e in handled)
    to_sent = Percentiles.of((sent[e] - commits[e]) * 1000 for e in ids if e in sent)
    missing = len(ids) - lat.count
    span = max(handled.values()) - min(handled.values()) if len(handled) > 1 else math.nan
    kept_up = len(handled) / span if len(handled) > 1 else math.nan
    say(
        f"  offered {len(ids):,} events in {offered_secs:.1f} s ({len(ids) / offered_secs:.0f}/s achieved, "
        f"worst pacing lag {worst_lag * 1000:.1f} ms); handled {lat.count:,}, missing {missing}"
    )
    say(f"  commit -> handler start: {lat.text()}")
    say(
        f"  (part of it) commit -> relay marked sent (after confirms): p50 {to_sent.p50:.1f} ms, "
        f"p99 {to_sent.p99:.1f} ms; relay batches {batches}, {rows_per_batch:.2f} rows/batch, "
        f"median batch {batch_ms:.1f} ms"
    )
    per_second = []
    step = max(1, round(args.rate))
    for i in range(0, len(ids), step):
        window = [(handled[e] - commits[e]) * 1000 for e in ids[i : i + step] if e in handled]
        if window:
            per_second.append(f"{percentile(window, 50):.0f}/{max(window):.0f}")
    say(f"  per second of load, p50/max ms: {' '.join(per_second)}")
    if len(handled) > 1:
        say(f"  handler starts spread over {span:.1f} s: the worker kept up with {kept_up:.0f} events/s")
    say(
        f"  new PostgreSQL connections to the bench database during the load: {sessions:,} "
        f"({sessions / max(1, len(ids)):.2f} per event); transactions committed: {transactions / max(1, len(ids)):.2f}"
        " per event (every process's, the benchmark's own reads included)"
    )
    say(f"  CPU from load start until all handled ({spent:.1f} s wall; ms of CPU per event, share of one core):")
    cores = os.cpu_count() or 1
    for name, used in cpu.items():
        share = f"{used / spent / cores:.0%} of {cores} cores" if name == "machine" else f"{used / spent:.0%}"
        say(f"    {name:<28} {used * 1000 / max(1, len(ids)):6.2f} ms/event  {share}")
    say("    (machine also counts anything else running on the machine)")
    if kept_up < 0.95 * args.rate:
        say(
            f"  NOTE: the worker fell behind ({kept_up:.0f}/s handled < {args.rate:.0f}/s offered), so these"
            " latencies are mostly queueing and grow with the run's length."
        )
        if sessions >= 0.5 * len(ids) and not args.worker_db_reuse:
            say(
                "  It opened a new PostgreSQL connection per task: Celery's Django fixup closes the connection before"
                " and after every task unless CELERY_DB_REUSE_MAX is set. Compare: --worker-db-reuse 1000"
            )
    ok = lat.p99 < LATENCY_TARGET_MS and missing == 0
    say(f"  p99 < {LATENCY_TARGET_MS:.0f} ms: {'YES' if ok else 'NO'}")
    return {
        "offered": len(ids),
        "achieved_rate": len(ids) / offered_secs,
        "missing": missing,
        "latency": lat,
        "kept_up": kept_up,
        "sessions_per_event": sessions / max(1, len(ids)),
        "relay_cpu_ms": cpu["relay"] * 1000 / max(1, len(ids)),
        "machine_share": cpu["machine"] / spent / cores,
        "experiment": f"worker CELERY_DB_REUSE_MAX={args.worker_db_reuse}" if args.worker_db_reuse else "",
        "ok": ok,
    }


def relay_env(args: argparse.Namespace) -> dict[str, str]:
    """--relay-env KEY=VALUE pairs: an experiment on the relay's environment, the project's files untouched."""
    env = dict(pair.split("=", 1) for pair in args.relay_env)
    if env:
        say(f"  EXPERIMENT: relay environment {env}, not the project's defaults")
    return env


def worker_env(args: argparse.Namespace) -> dict[str, str]:
    """--worker-env KEY=VALUE pairs: an experiment on the worker's environment, the project's files untouched."""
    env = dict(pair.split("=", 1) for pair in args.worker_env)
    if env:
        say(f"  EXPERIMENT: worker environment {env}, not the project's defaults")
    return env


def step_latency(rate: float, seconds: float, tag: str, emitters: int) -> dict[str, Any]:
    """One step of the capacity search: `rate` events/s for `seconds`, then commit -> handler start of each."""
    commits, offered_secs, _ = offer_load(rate, seconds, tag, emitters)
    ids = list(commits)
    # Long enough for a backlog to drain, short enough that a rate far past capacity ends the search quickly.
    wait_until(lambda: len(handled_at(ids)) >= len(ids), timeout=max(10.0, seconds), interval=0.25)
    handled = handled_at(ids)
    lat = Percentiles.of((handled[e] - commits[e]) * 1000 for e in ids if e in handled)
    span = max(handled.values()) - min(handled.values()) if len(handled) > 1 else math.nan
    sent = sent_at(ids)
    return {
        "rate": rate,
        "to_sent": Percentiles.of((sent[e] - commits[e]) * 1000 for e in ids if e in sent),
        "handled_rate": len(handled) / span if span else math.nan,
        "achieved": len(ids) / offered_secs,
        "latency": lat,
        "missing": len(ids) - lat.count,
    }


def step_passes(step: dict[str, Any]) -> bool:
    """p99 under the target, nothing missing, and the load really offered (the emitter is on this machine too)."""
    return bool(
        step["latency"].p99 < LATENCY_TARGET_MS and not step["missing"] and step["achieved"] >= 0.95 * step["rate"]
    )


def capacity(broker_url: str, database_url: str, args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    """The highest steady rate whose commit -> handler p99 stays under the target, in several rounds.

    Each round climbs the steps (`--steps`) on one worker and one relay, and stops at the first step that
    fails: p99 over the target, an event missing, or the emitter short of the offered rate (then the
    machine, not the relay, was the limit, and the round says so).
    """
    from tests.processes import ProcfileProcesses

    steps = [float(r) for r in args.steps.split(",")]
    say(
        f"\n== capacity: steps {', '.join(f'{r:.0f}' for r in steps)} events/s, {args.step_seconds:.0f} s each, "
        f"{args.rounds} rounds; a round stops at the first step with p99 >= {LATENCY_TARGET_MS:.0f} ms, an event "
        "missing, or fewer than 95% of the offered events emitted =="
    )
    probe_events.declare_topology(broker_url)
    found: list[float] = []
    at_200: list[float] = []
    for round_no in range(1, args.rounds + 1):
        probe_events.empty(broker_url)
        system = ProcfileProcesses(database_url=database_url, broker_url=broker_url, log_dir=log_dir)
        best = 0.0
        try:
            worker = system.worker(concurrency=args.concurrency, **worker_env(args))
            relay = system.relay(**relay_env(args))
            relay.wait_for_log("relay connected to the broker", timeout=30)
            warm = list(offer_load(steps[0], args.warmup, f"warmup{round_no}")[0])
            if not wait_until(lambda warm=warm: len(handled_at(warm)) >= len(warm), timeout=30):  # type: ignore[misc]
                raise RuntimeError("warm-up events were not all handled in 30 s:\n" + system.dump_logs())
            say(f"  round {round_no}:")
            for rate in steps:
                step = step_latency(rate, args.step_seconds, f"r{round_no}-{rate:.0f}", args.emitters)
                ok = step_passes(step)
                lat: Percentiles = step["latency"]
                say(
                    f"    {rate:>5.0f}/s offered, {step['achieved']:>5.0f}/s emitted: p50 {lat.p50:6.1f} ms, "
                    f"p99 {lat.p99:7.1f} ms, max {lat.max:7.1f} ms, missing {step['missing']}, "
                    f"handled at {step['handled_rate']:.0f}/s; commit -> relay marked sent p99 "
                    f"{step['to_sent'].p99:.1f} ms: "
                    f"{'pass' if ok else 'FAIL'}"
                )
                if rate == 200:
                    at_200.append(lat.p99)
                if not ok:
                    if step["achieved"] < 0.95 * rate:
                        say("      (the emitter fell short of the offered rate: the machine was the limit here)")
                    break
                best = rate
            if not worker.alive() or not relay.alive():
                say("  WARNING: a subprocess died:\n" + system.dump_logs())
        finally:
            system.stop_all()
        found.append(best)
        say(f"    highest passing rate this round: {best:.0f} events/s")
    return {"found": found, "at_200": at_200, "steps": steps}


def capacity_summary(
    info: dict[str, str], neighbours: Neighbours, result: dict[str, Any], args: argparse.Namespace
) -> None:
    found, at_200 = result["found"], result["at_200"]
    rows = [
        (
            f"highest steady rate with commit -> handler p99 < {LATENCY_TARGET_MS:.0f} ms "
            f"(steps {args.steps}, {args.step_seconds:.0f} s each; median, min-max over {len(found)} rounds)",
            f"{statistics.median(found):.0f} events/s ({min(found):.0f}-{max(found):.0f}; "
            f"rounds: {', '.join(f'{r:.0f}' for r in found)})",
        ),
    ]
    if at_200:
        rows.append(
            (
                "p99 at 200 events/s in each round (target < 25 ms)",
                " / ".join(f"{v:.1f} ms" for v in at_200)
                + f" ({'met' if max(at_200) < 25 else 'NOT met'} in every round)",
            )
        )
    say("\n== summary (markdown) ==\n")
    say(f"{measured_on(info)} Worker prefork -c {args.concurrency}, one relay; noisy shared machine.")
    say(neighbours.verdict())
    say()
    say("| measurement | result |")
    say("| --- | --- |")
    for label, value in rows:
        say(f"| {label} | {value} |")
    say()


def summary(info: dict[str, str], neighbours: Neighbours, result: dict[str, Any], args: argparse.Namespace) -> None:
    lat: Percentiles = result["latency"]
    rows = []
    if result["experiment"]:
        rows.append(("EXPERIMENT (not the project's settings)", result["experiment"]))
    rows += [
        (
            f"commit -> handler start at {result['achieved_rate']:.0f} events/s: p50 / p95 / p99 / max",
            f"{lat.p50:.1f} / {lat.p95:.1f} / {lat.p99:.1f} / {lat.max:.1f} ms",
        ),
        (
            f"worker throughput in that run (prefork -c {args.concurrency}) / new PostgreSQL connections per event",
            f"{result['kept_up']:.0f} events/s / {result['sessions_per_event']:.2f}",
        ),
        ("relay CPU per event / machine busy", f"{result['relay_cpu_ms']:.2f} ms / {result['machine_share']:.0%}"),
        (
            f"p99 < {LATENCY_TARGET_MS:.0f} ms",
            f"{'yes' if result['ok'] else 'NO'} ({result['offered']:,} events, {result['missing']} missing)",
        ),
    ]
    say("\n== summary (markdown) ==\n")
    say(f"{measured_on(info)} One run of {args.duration:.0f} s after {args.warmup:.0f} s of warm-up.")
    say(neighbours.verdict())
    say()
    say("| measurement | result |")
    say("| --- | --- |")
    for label, value in rows:
        say(f"| {label} | {value} |")
    say()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0, help="events/s offered")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of load")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured load first")
    parser.add_argument(
        "--concurrency", type=int, default=4, help="worker prefork concurrency (default 4, as the Procfile's worker)"
    )
    parser.add_argument(
        "--emitters", type=int, default=4, help="threads emitting the load (one transaction per event each)"
    )
    parser.add_argument(
        "--worker-db-reuse",
        type=int,
        default=0,
        metavar="N",
        help="experiment: run the worker with CELERY_DB_REUSE_MAX=N (a generated settings module on top "
        "of tests.settings; the project's settings are not touched). Default: the project's settings as they are",
    )
    parser.add_argument(
        "--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server (a database to connect to for CREATE/DROP DATABASE)"
    )
    parser.add_argument(
        "--capacity",
        action="store_true",
        help="instead of one rate: find the highest steady rate with p99 under the target, over --rounds rounds",
    )
    parser.add_argument("--steps", default="200,300,400,500,600,800", help="capacity: rates to climb, events/s")
    parser.add_argument("--step-seconds", type=float, default=10.0, help="capacity: seconds of load per step")
    parser.add_argument("--rounds", type=int, default=3, help="capacity: rounds (median and spread reported)")
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="experiment: run the worker with this environment variable (repeatable), e.g. MICE_WORKER_TASK_EVENTS=0",
    )
    parser.add_argument(
        "--relay-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="experiment: run the relay with this environment variable (repeatable), e.g. MICE_RELAY_CONCURRENCY=1",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the subprocess logs (path is printed)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    neighbours = Neighbours()
    with (
        bench_run(log_prefix="mice-bench-latency-", keep_logs=args.keep_logs) as log_dir,
        bench_vhost() as broker_url,
        bench_database(args.pg_url, prefix="mice_bench_lat") as database_url,
    ):
        info = describe(neighbours, pg_url=args.pg_url, broker_url=broker_url)
        print_machine(info)
        say(f"  vhost {urlsplit(broker_url).path[1:]}, database {urlsplit(database_url).path[1:]}")
        env = settings_env(database_url, broker_url)
        say(f"  migrated in {migrate(env):.1f} s")
        django_setup(env)
        if args.capacity:
            found = capacity(broker_url, database_url, args, log_dir)
            print_end(neighbours)
            capacity_summary(info, neighbours, found, args)
        else:
            result = latency(broker_url, database_url, args, log_dir)
            print_end(neighbours)
            summary(info, neighbours, result, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
