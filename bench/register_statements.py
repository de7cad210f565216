"""Benchmark: where one registration's time goes, on one thread: its SQL statements, and Django + DRF around it.

Run from the project root:  .venv/bin/python bench/register_statements.py   (under a minute)

It creates its own PostgreSQL database (mice_bench_stmt_<pid>), migrates it, and drops it at the end whatever
happens. No web server, relay or worker runs.

  statements: registration_create called --calls times on one thread with every statement timed, on a fresh
              event and on one that already has --backlog registrations (a popular conference).
  in-process: registration_create alone against the whole view through django.test.Client (no HTTP server),
              best of two rounds, wall and CPU ms per call: the difference is Django + DRF themselves.

--profile adds a cProfile of registration_create and of the whole view. Throughput under concurrent load:
bench/register_throughput.py.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.machine import Neighbours, describe, measured_on, print_end, print_machine  # noqa: E402
from bench.registering import attendee, django_env, fresh_events, register  # noqa: E402
from bench.runtime import DEFAULT_PG_URL, bench_database, bench_run, migrate, say, setup_django  # noqa: E402


def step_of(sql: str) -> str:
    """Which step of a registration a statement is (the names the table prints)."""
    head = sql.lstrip().upper()
    if head.startswith("SELECT") and "REGISTRATIONS_EVENT" in head:
        return "SELECT event"
    if head.startswith("SELECT 1 AS") or ("LIMIT 1" in head and "REGISTRATION" in head):
        return "SELECT already registered?"
    if head.startswith("INSERT") and "REGISTRATIONS_REGISTRATION" in head:
        return "INSERT registration"
    if head.startswith("UPDATE") and "REGISTRATIONS_EVENT" in head:
        return "UPDATE event seats_taken"
    if head.startswith("INSERT") and "PAYMENTTOKEN" in head:
        return "INSERT payment token"
    if head.startswith("INSERT") and "OUTBOX" in head:
        return "INSERT outbox row"
    if head.startswith(("SAVEPOINT", "RELEASE")):
        return "SAVEPOINT / RELEASE"
    return "other: " + head[:40]


def timed_registrations(slug: str, tag: str, calls: int) -> tuple[dict[str, float], float]:
    """`calls` registrations for one event; (seconds per step, summed over the calls; total seconds)."""
    from django.db import connection

    spent: dict[str, float] = {}

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            key = step_of(sql)
            spent[key] = spent.get(key, 0.0) + time.perf_counter() - started

    original_commit = connection._commit

    def commit() -> Any:  # COMMIT does not go through execute wrappers
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
                register(slug, f"{tag}.{i}@bench.example.com")
            total = time.perf_counter() - started
    finally:
        del connection._commit  # back to the class's method
    return spent, total


def statements(calls: int, backlog: int) -> dict[str, float]:
    """Statement timings of registration_create, on a fresh event and on one with `backlog` registrations."""
    from django.db import connection

    from registrations.models import Event, Registration

    fresh = fresh_events(2)
    timed_registrations(fresh[0], "sqlwarm", calls)
    spent_fresh, total_fresh = timed_registrations(fresh[0], "sqlfresh", calls)

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
    spent_full, total_full = timed_registrations(fresh[1], "sqlfull", calls)

    say(f"\n-- where the time goes: registration_create on one thread, {calls} calls, ms per call --")
    say(f"  {'step':<30} {'fresh event':>12} {f'event with {backlog:,} regs':>24}")
    for key in dict.fromkeys([*spent_fresh, *spent_full]):
        a = spent_fresh.get(key, 0) / calls * 1000
        b = spent_full.get(key, 0) / calls * 1000
        say(f"  {key:<30} {a:12.3f} {b:24.3f}")
    py_fresh = (total_fresh - sum(spent_fresh.values())) / calls * 1000
    py_full = (total_full - sum(spent_full.values())) / calls * 1000
    say(f"  {'Python (ORM, payloads, ...)':<30} {py_fresh:12.3f} {py_full:24.3f}")
    say(f"  {'total':<30} {total_fresh / calls * 1000:12.3f} {total_full / calls * 1000:24.3f}")
    say("  (the event row is locked from the UPDATE of seats_taken to the COMMIT)")
    return {
        "fresh_ms": total_fresh / calls * 1000,
        "full_ms": total_full / calls * 1000,
        "commit_ms": spent_fresh.get("COMMIT", 0) / calls * 1000,
    }


def post_view(client: Any, slug: str, email: str) -> int:
    """The whole view through django.test.Client: its status code."""
    response = client.post("/api/registrations/", data=attendee(slug, email), content_type="application/json")
    return int(response.status_code)


def in_process(calls: int) -> dict[str, float]:
    """One thread, no HTTP server: registration_create alone vs. the whole view via django.test.Client.

    Best of two rounds each, wall and CPU ms per call: the difference is the cost of Django + DRF themselves.
    """
    from django.test import Client

    slug = fresh_events(1)[0]
    client = Client(SERVER_NAME="localhost")

    def service(i: int, tag: str) -> None:
        register(slug, f"{tag}.{i}@bench.example.com")

    def view(i: int, tag: str) -> None:
        if (status := post_view(client, slug, f"{tag}.{i}@bench.example.com")) != 202:
            raise RuntimeError(f"the view answered {status}")

    best: dict[str, tuple[float, float]] = {}
    for round_ in range(3):
        for name, call in (("service", service), ("view", view)):
            wall, cpu = time.perf_counter(), time.process_time()
            for i in range(calls if round_ else 30):  # round 0 warms up (imports, caches)
                call(i, f"inproc.{name}.{round_}")
            if round_:
                per = ((time.perf_counter() - wall) / calls * 1000, (time.process_time() - cpu) / calls * 1000)
                best[name] = min(best.get(name, per), per)
    say(f"\n-- one thread, in-process, no HTTP server ({calls} calls, best of 2 rounds), ms per call --")
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


def profile(calls: int) -> None:
    import pstats

    from django.test import Client

    slug = fresh_events(1)[0]

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
    with profiler:
        for i in range(calls):
            register(slug, f"prof.{i}@bench.example.com")
    top(profiler, "registration_create in-process", time.perf_counter() - started)

    client = Client(SERVER_NAME="localhost")
    profiler = cProfile.Profile()
    started = time.perf_counter()
    with profiler:
        ok = sum(post_view(client, slug, f"profweb.{i}@bench.example.com") == 202 for i in range(calls))
    top(
        profiler,
        f"the whole view through django.test.Client ({ok}/{calls} answered 202)",
        time.perf_counter() - started,
    )


def summary(info: dict[str, str], neighbours: Neighbours, result: dict[str, float], args: argparse.Namespace) -> None:
    say("\n== summary (markdown) ==\n")
    say(f"{measured_on(info)} One thread, {args.calls} calls per figure; noisy shared machine.")
    say(neighbours.verdict())
    say()
    say("| measurement | ms per registration |")
    say("| --- | ---: |")
    say(f"| registration_create, fresh event (wall) | {result['fresh_ms']:.2f} |")
    say(f"| registration_create, event with {args.backlog:,} registrations (wall) | {result['full_ms']:.2f} |")
    say(f"| of which COMMIT, fresh event | {result['commit_ms']:.2f} |")
    say(f"| registration_create alone, in-process (CPU) | {result['service_cpu_ms']:.2f} |")
    say(f"| the whole view through django.test.Client, in-process (CPU) | {result['view_cpu_ms']:.2f} |")
    say()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300, help="registration_create calls per figure")
    parser.add_argument("--backlog", type=int, default=20_000, help="registrations of the 'popular' event")
    parser.add_argument("--profile", action="store_true", help="also cProfile the service and the whole view")
    parser.add_argument(
        "--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server (a database to connect to for CREATE/DROP DATABASE)"
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    neighbours = Neighbours()
    with (
        bench_run(log_prefix="mice-bench-stmt-"),
        bench_database(args.pg_url, prefix="mice_bench_stmt") as database_url,
    ):
        info = describe(neighbours, pg_url=args.pg_url)
        print_machine(info)
        say(f"  database {urlsplit(database_url).path[1:]}")
        say(f"  migrated in {migrate(django_env(database_url)):.1f} s")
        setup_django(django_env(database_url))
        result = {**statements(args.calls, args.backlog), **in_process(args.calls)}
        if args.profile:
            profile(max(100, args.calls))
        print_end(neighbours)
        summary(info, neighbours, result, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
