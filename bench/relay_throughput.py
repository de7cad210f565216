"""Benchmark: the outbox relay's throughput against raw RabbitMQ publishing on the same machine.

Run from the project root:  .venv/bin/python bench/relay_throughput.py   (about a minute)

It makes its own RabbitMQ vhost and PostgreSQL database and removes both at the end, whatever happens.

  (a) raw publishing: persistent 1 KB messages to a durable quorum queue, publisher confirms,
      pipelined (aiormq and py-amqp); the relay's ConfirmingPublisher alone (no database); and
      one-confirm-at-a-time (aiormq, kombu) for reference.
  (b) the relay draining a backlog of outbox rows (in-process Relay.relay_batch() loops, no worker).
  (a) and (b) run interleaved in rounds and (b)/(a) is the median of the per-round ratios: on a
  shared machine a busy moment then hits both sides of the ratio instead of one. Target: >= 75%.

Flags: see --help. --profile adds one extra, untimed drain under cProfile and prints its top costs.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import os
import pstats
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import probe_events, raw_publish  # noqa: E402
from bench.machine import Neighbours, describe, measured_on, print_end, print_machine  # noqa: E402
from bench.runtime import DEFAULT_PG_URL, bench_database, bench_run, bench_vhost, migrate, say  # noqa: E402
from bench.runtime import setup_django as django_setup  # noqa: E402

RATIO_TARGET = 0.75


def settings_env(database_url: str, broker_url: str) -> dict[str, str]:
    return {"DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": database_url, "CELERY_BROKER_URL": broker_url}


def insert_backlog(n: int, chunk: int = 2000) -> float:
    """n outbox rows waiting to be relayed; returns the seconds it took (not part of the measurement)."""
    from django.db import connection, transaction

    from mice.models import OutboxMessage

    started = time.perf_counter()
    for start in range(0, n, chunk):
        with transaction.atomic():
            OutboxMessage.objects.bulk_create(probe_events.outbox_rows(start, min(n, start + chunk)), batch_size=1000)
    elapsed = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE mice_outboxmessage")
    return elapsed


def relay_loops() -> int:
    from django.conf import settings

    return int(settings.MICE_RELAY_CONCURRENCY)


def drain(broker_url: str, batch_size: int, profile: cProfile.Profile | None = None) -> tuple[float, int]:
    """Time Relay.relay_batch() in a loop until nothing is left; returns (seconds, rows).

    As `manage.py outbox_relay` does, MICE_RELAY_CONCURRENCY loops run in threads of one process.
    """
    from django.db import connection, connections

    from mice.relay import Relay, RelayConfig

    threads_n = relay_loops()
    relays = [
        Relay(broker_url=broker_url, config=RelayConfig(batch_size=batch_size), origin=f"bench-relay/{i}")
        for i in range(threads_n)
    ]
    for relay in relays:
        relay.publisher.connect()
    connection.ensure_connection()
    counts = [0] * threads_n

    def loop(i: int) -> None:
        try:
            while got := relays[i].relay_batch():
                counts[i] += got
        finally:
            if i:
                connections.close_all()  # this thread's own connection

    try:
        if profile is not None:
            profile.enable()
        started = time.perf_counter()
        others = [threading.Thread(target=loop, args=(i,)) for i in range(1, threads_n)]
        for thread in others:
            thread.start()
        loop(0)
        for thread in others:
            thread.join()
        elapsed = time.perf_counter() - started
        if profile is not None:
            profile.disable()
    finally:
        for relay in relays:
            relay.publisher.close()
            relay.wakeup.close()
    return elapsed, sum(counts)


def drain_run(broker_url: str, args: argparse.Namespace, profile: cProfile.Profile | None = None) -> dict[str, Any]:
    """A fresh backlog (not timed), then the timed drain; checks every row was sent and the queue holds N."""
    from mice.models import OutboxMessage
    from tests.broker import queue_depth

    n = args.backlog
    probe_events.empty(broker_url)
    insert_secs = insert_backlog(n)
    secs, rows = drain(broker_url, args.batch_size, profile)
    pending = OutboxMessage.objects.filter(sent_at__isnull=True).count()
    depth = queue_depth(broker_url, probe_events.PROBE_QUEUE)
    probe_events.empty(broker_url)
    return {
        "insert_rate": n / insert_secs,
        "secs": secs,
        "rows": rows,
        "rate": rows / secs,
        "pending": pending,
        "depth": depth,
        "ok": depth == n and rows == n and pending == 0,
    }


def one_round(broker_url: str, args: argparse.Namespace, body: bytes) -> tuple[dict[str, float], dict[str, Any], int]:
    """aiormq pipelined, py-amqp pipelined, the relay's publisher alone, then the relay's drain, back to back."""
    n, window = args.messages, args.window
    rates: dict[str, float] = {}
    raw_publish.fresh_raw_queue(broker_url)
    secs, failed = raw_publish.aiormq_pipelined(broker_url, body, n, window)
    raw_publish.check_confirmed("aiormq", failed)
    rates["aiormq"] = n / secs
    raw_publish.fresh_raw_queue(broker_url)
    secs, failed = raw_publish.pyamqp_pipelined(broker_url, body, n, window)
    raw_publish.check_confirmed("py-amqp", failed)
    rates["py-amqp"] = n / secs
    raw_publish.drop_queue(broker_url, raw_publish.RAW_QUEUE)
    secs, failed, message_size = raw_publish.relay_publisher_only(broker_url, n, args.batch_size)
    raw_publish.check_confirmed("relay publisher", failed)
    rates["relay publisher"] = n / secs
    drained = drain_run(broker_url, args)
    rates["relay drain"] = drained["rate"]
    return rates, drained, message_size


def throughput(broker_url: str, args: argparse.Namespace, neighbours: Neighbours) -> dict[str, Any]:
    logging.getLogger("mice.relay").setLevel(logging.WARNING)  # one INFO line per batch is noise here
    body = os.urandom(1024)
    say(
        f"\n== throughput: {args.repeats} rounds; each round runs (a) and (b) back to back, so that a busy moment "
        "on this shared machine hits both =="
    )
    say(
        f"(a) raw publishing: {args.messages:,} persistent (delivery_mode 2) 1 KB messages to a durable quorum queue "
        f"through a direct exchange, mandatory, publisher confirms pipelined with {args.window} outstanding; "
        "fresh queue every run"
    )
    say(
        f"(b) the relay draining a backlog of {args.backlog:,} outbox rows (probe.slept, one subscriber, no worker): "
        f"in-process Relay(batch_size={args.batch_size}).relay_batch() until it returns 0, "
        "in MICE_RELAY_CONCURRENCY threads as manage.py outbox_relay runs it"
    )
    probe_events.declare_topology(broker_url)
    rates: dict[str, list[float]] = {"aiormq": [], "py-amqp": [], "relay publisher": [], "relay drain": []}
    paired: list[float] = []
    drains: list[dict[str, Any]] = []
    message_size = 0
    for run in range(1, args.repeats + 1):
        say(f"  round {run} (other test processes now: {neighbours.check()})")
        got, d, message_size = one_round(broker_url, args, body)
        for name, rate in got.items():
            rates[name].append(rate)
        drains.append(d)
        paired.append(d["rate"] / max(got["aiormq"], got["py-amqp"]))
        say(
            f"    (a) aiormq {got['aiormq']:>7,.0f} msg/s   py-amqp {got['py-amqp']:>7,.0f} msg/s   "
            f"[relay's ConfirmingPublisher alone, no DB, batches of {args.batch_size}: "
            f"{got['relay publisher']:,.0f} msg/s]"
        )
        say(
            f"    (b) drained {d['rows']:,} rows in {d['secs']:.2f} s = {d['rate']:,.0f} msg/s confirmed "
            f"(backlog inserted at {d['insert_rate']:,.0f} rows/s, not timed); rows still pending {d['pending']}; "
            f"queue {probe_events.PROBE_QUEUE} depth {d['depth']} ({'== N, ok' if d['ok'] else 'MISMATCH'}); "
            f"this round (b)/(a) = {paired[-1]:.0%}"
        )
    medians = {k: statistics.median(v) for k, v in rates.items()}
    best_client = max(("aiormq", "py-amqp"), key=lambda k: medians[k])
    say("  medians: " + ", ".join(f"{k} {v:,.0f} msg/s" for k, v in medians.items()))
    say(f"  (a) = best pipelined client by median: {best_client}, {medians[best_client]:,.0f} msg/s")
    say(f"  (b) = {medians['relay drain']:,.0f} msg/s (relay task message body {message_size} bytes + 3 headers)")

    m = args.confirm_each
    say(f"\n-- reference: one confirm at a time, {m:,} messages --")
    raw_publish.fresh_raw_queue(broker_url)
    secs, _ = raw_publish.aiormq_one_by_one(broker_url, body, m)
    one_aiormq = m / secs
    raw_publish.fresh_raw_queue(broker_url)
    secs, _ = raw_publish.kombu_one_by_one(broker_url, body, m)
    one_kombu = m / secs
    raw_publish.drop_queue(broker_url, raw_publish.RAW_QUEUE)
    say(f"  aiormq awaiting each confirm: {one_aiormq:,.0f} msg/s   kombu confirm_publish=True: {one_kombu:,.0f} msg/s")

    if args.profile:
        profile = cProfile.Profile()
        d = drain_run(broker_url, args, profile)
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)
        say(f"\n-- cProfile of one extra drain ({d['rows']:,} rows in {d['secs']:.2f} s profiled, untimed) --")
        say(out.getvalue())

    ratio = statistics.median(paired)
    say(
        f"\n(b)/(a): median of the per-round ratios {ratio:.0%} ({', '.join(f'{r:.0%}' for r in paired)}); "
        f"ratio of the medians {medians['relay drain']:,.0f} / {medians[best_client]:,.0f} = "
        f"{medians['relay drain'] / medians[best_client]:.0%}. Target >= {RATIO_TARGET:.0%}: "
        f"{'MET' if ratio >= RATIO_TARGET else 'NOT MET'}"
    )
    return {
        "medians": medians,
        "best_client": best_client,
        "one_aiormq": one_aiormq,
        "one_kombu": one_kombu,
        "ratio": ratio,
        "depth_ok": all(d["ok"] for d in drains),
    }


def summary(info: dict[str, str], neighbours: Neighbours, result: dict[str, Any], args: argparse.Namespace) -> None:
    medians, best = result["medians"], result["best_client"]
    other = "py-amqp" if best == "aiormq" else "aiormq"
    ratio = result["ratio"]
    rows = [
        (f"(a) raw publish, 1 KB persistent, quorum queue, pipelined confirms ({best})", f"{medians[best]:,.0f} msg/s"),
        (f"raw publish, pipelined, {other}", f"{medians[other]:,.0f} msg/s"),
        ("relay's ConfirmingPublisher alone (prebuilt messages, no DB)", f"{medians['relay publisher']:,.0f} msg/s"),
        (
            "raw publish, one confirm at a time (aiormq / kombu)",
            f"{result['one_aiormq']:,.0f} / {result['one_kombu']:,.0f} msg/s",
        ),
        (
            f"(b) relay draining a {args.backlog:,}-row outbox backlog (batch {args.batch_size}, "
            f"{relay_loops()} loops), in-process",
            f"{medians['relay drain']:,.0f} msg/s (queue depth == N after each run: "
            f"{'yes' if result['depth_ok'] else 'NO'})",
        ),
        (
            f"(b) / (a), median of per-round ratios; target >= {RATIO_TARGET:.0%}",
            f"{ratio:.0%} ({'met' if ratio >= RATIO_TARGET else 'NOT met'})",
        ),
    ]
    say("\n== summary (markdown) ==\n")
    say(f"{measured_on(info)} Medians of {args.repeats} interleaved rounds; noisy shared machine.")
    say(neighbours.verdict())
    say()
    say("| measurement | result |")
    say("| --- | --- |")
    for label, value in rows:
        say(f"| {label} | {value} |")
    say()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000, help="messages per pipelined raw run")
    parser.add_argument("--window", type=int, default=500, help="outstanding unconfirmed messages (raw runs)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of (a) + (b)")
    parser.add_argument("--confirm-each", type=int, default=2_000, help="messages for one-confirm-at-a-time")
    parser.add_argument("--backlog", type=int, default=20_000, help="outbox rows for the drain")
    parser.add_argument("--batch-size", type=int, default=500, help="relay batch size")
    parser.add_argument("--profile", action="store_true", help="also profile one extra drain with cProfile")
    parser.add_argument(
        "--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server (a database to connect to for CREATE/DROP DATABASE)"
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    neighbours = Neighbours()
    with (
        bench_run(log_prefix="mice-bench-relay-"),
        bench_vhost() as broker_url,
        bench_database(args.pg_url, prefix="mice_bench") as database_url,
    ):
        info = describe(neighbours, pg_url=args.pg_url, broker_url=broker_url)
        print_machine(info)
        say(f"  vhost {urlsplit(broker_url).path[1:]}, database {urlsplit(database_url).path[1:]}")
        env = settings_env(database_url, broker_url)
        say(f"  migrated in {migrate(env):.1f} s")
        django_setup(env)
        result = throughput(broker_url, args, neighbours)
        print_end(neighbours)
        summary(info, neighbours, result, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
