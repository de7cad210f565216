"""Benchmark: raw RabbitMQ publishing vs. the outbox relay, and commit-to-handler latency.

Run from the project root:  .venv/bin/python bench/relay.py   (about 1-2 minutes)

It makes its own RabbitMQ vhost and PostgreSQL database and removes both at the end, whatever happens.

  (a) raw publishing: persistent 1 KB messages to a durable quorum queue, publisher confirms,
      pipelined (aiormq and py-amqp); one-confirm-at-a-time for reference.
  (b) the relay draining a backlog of outbox rows (in-process Relay.relay_batch() loop, no worker).
      (a) and (b) run interleaved in rounds and (b)/(a) is the median of the per-round ratios: on a
      shared machine a busy moment then hits both sides of the ratio instead of one.
  latency: a real Celery worker and relay subprocess, a steady load of one emit per transaction,
      commit wall-clock time (here) to handler start (the Effect row's created_at, in the worker).

Flags: see --help. --profile adds one extra, untimed drain under cProfile and prints its top costs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import datetime as dt
import io
import json
import math
import os
import platform
import pstats
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiormq  # noqa: E402
import amqp  # noqa: E402
import psycopg2  # noqa: E402
from kombu import Connection  # noqa: E402
from pamqp import commands as spec  # noqa: E402

from bench.runtime import bench_database, cpu_model, interrupted, ram_gib, say  # noqa: E402
from tests.broker import rabbitmqctl, throwaway_vhost  # noqa: E402

RAW_EXCHANGE = "bench.raw"
RAW_QUEUE = "bench.raw"
RELAYPUB_QUEUE = "bench.relaypub"  # bound to mice.events: the relay's own publisher, without the database
QUORUM = {"x-queue-type": "quorum"}
PROBE_QUEUE = "tests.probe.slow"
LATENCY_TARGET_MS = 100.0
RATIO_TARGET = 0.50
CONTENTION: list[str] = []  # other test processes seen at the checkpoints of this run


# ---------------------------------------------------------------------------------------------- machine


def rabbitmq_version(broker_url: str) -> str:
    with Connection(broker_url, connect_timeout=5) as connection:
        connection.connect()
        props = connection.connection.server_properties
        return f"{props.get('product', 'RabbitMQ')} {props.get('version', '?')}"


def postgres_version(server_dsn: str) -> str:
    with contextlib.closing(psycopg2.connect(server_dsn)) as pg, pg.cursor() as cursor:
        cursor.execute("SHOW server_version")
        return f"PostgreSQL {cursor.fetchone()[0]}"


def other_activity() -> str:
    """Other test runs, workers, relays or benches on this machine (they share the CPUs, broker and database)."""
    mine = {os.getpid(), os.getppid()}
    seen: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if os.getpgid(int(entry.name)) == os.getpgid(0):
                continue
        except OSError:
            continue
        text = " ".join(a.decode(errors="replace") for a in argv)
        for needle in ("pytest", "celery", "outbox_relay", "dead_letter_recorder", "manage.py", "gunicorn", "bench/"):
            if needle in text:
                seen[needle] = seen.get(needle, 0) + 1
                break
    text = ", ".join(f"{k} x{v}" for k, v in seen.items())
    pressure = cpu_pressure()
    if text or pressure >= 50:  # this bench's own load alone can reach 20-30%
        CONTENTION.append(f"{text or 'no test processes'}, CPU pressure {pressure:.0f}%")
    return f"{text or 'none seen'}; CPU pressure (PSI some avg10) {pressure:.0f}%"


def cpu_pressure() -> float:
    """Share of the last 10 s in which some runnable task waited for a CPU (Linux PSI); -1 if unavailable."""
    try:
        first = Path("/proc/pressure/cpu").read_text().split()
        return float(next(x for x in first if x.startswith("avg10=")).split("=")[1])
    except (OSError, StopIteration, ValueError):
        return -1.0


def machine(broker_url: str, server_dsn: str) -> dict[str, str]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "host": socket.gethostname(),
        "cpu": f"{cpu_model()} x {os.cpu_count()} (usable by this process: {affinity})",
        "ram": ram_gib(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "rabbitmq": rabbitmq_version(broker_url),
        "postgresql": postgres_version(server_dsn),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "load average at start": load,
        "other test processes": other_activity(),
    }


# ---------------------------------------------------------------------------------------------- database


def migrate(database_url: str, broker_url: str) -> float:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": database_url}
    env["CELERY_BROKER_URL"] = broker_url
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


def setup_django(database_url: str, broker_url: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ["DATABASE_URL"] = database_url
    os.environ["CELERY_BROKER_URL"] = broker_url
    import django

    django.setup()


# ---------------------------------------------------------------------------------------------- (a) raw


def amqp_params(broker_url: str) -> dict[str, Any]:
    parts = urlsplit(broker_url)
    return {
        "host": f"{parts.hostname}:{parts.port or 5672}",
        "userid": parts.username or "guest",
        "password": parts.password or "guest",
        "virtual_host": parts.path[1:] or "/",
    }


def fresh_raw_queue(broker_url: str, queue: str = RAW_QUEUE, exchange: str = RAW_EXCHANGE) -> None:
    """Delete and declare a durable quorum queue bound to a durable direct exchange: every run starts empty."""
    conn = amqp.Connection(**amqp_params(broker_url), heartbeat=0)
    conn.connect()
    try:
        ch = conn.channel()
        ch.exchange_declare(exchange, "direct", durable=True, auto_delete=False)
        ch.queue_delete(queue)
        ch.queue_declare(queue, durable=True, auto_delete=False, arguments=QUORUM)
        ch.queue_bind(queue, exchange, routing_key=queue)
        ch.close()
    finally:
        conn.close()


def drop_queue(broker_url: str, queue: str) -> None:
    conn = amqp.Connection(**amqp_params(broker_url), heartbeat=0)
    conn.connect()
    try:
        ch = conn.channel()
        ch.queue_delete(queue)
        ch.close()
    finally:
        conn.close()


def queue_depth(broker_url: str, queue: str) -> int | None:
    from tests.broker import queue_depth as depth

    return depth(broker_url, queue)


async def _aiormq_publish(broker_url: str, body: bytes, n: int, window: int) -> tuple[float, int]:
    """`window` coroutines publishing in a loop, each awaiting its own confirm: at most `window` unconfirmed.

    (Long-lived coroutines measured faster here than a task per message behind a semaphore.)
    Returns (seconds, messages not acked).
    """
    connection = await aiormq.connect(broker_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        props = spec.Basic.Properties(delivery_mode=2, content_type="application/octet-stream")
        failed = 0
        remaining = n

        async def publisher() -> None:
            nonlocal failed, remaining
            while remaining > 0:
                remaining -= 1
                try:
                    confirmation = await channel.basic_publish(
                        body, exchange=RAW_EXCHANGE, routing_key=RAW_QUEUE, properties=props, mandatory=True, wait=False
                    )
                    if not isinstance(confirmation, spec.Basic.Ack):
                        failed += 1
                except Exception:  # noqa: BLE001 - a returned or nacked message, or a dead channel: not confirmed
                    failed += 1

        started = time.perf_counter()
        await asyncio.gather(*(publisher() for _ in range(min(window, n))))
        elapsed = time.perf_counter() - started
    finally:
        await connection.close()
    return elapsed, failed


async def _aiormq_one_by_one(broker_url: str, body: bytes, n: int) -> tuple[float, int]:
    connection = await aiormq.connect(broker_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        props = spec.Basic.Properties(delivery_mode=2, content_type="application/octet-stream")
        failed = 0
        started = time.perf_counter()
        for _ in range(n):
            confirmation = await channel.basic_publish(
                body, exchange=RAW_EXCHANGE, routing_key=RAW_QUEUE, properties=props, mandatory=True
            )
            if not isinstance(confirmation, spec.Basic.Ack):
                failed += 1
        elapsed = time.perf_counter() - started
    finally:
        await connection.close()
    return elapsed, failed


def aiormq_pipelined(broker_url: str, body: bytes, n: int, window: int) -> tuple[float, int]:
    return asyncio.run(_aiormq_publish(broker_url, body, n, window))


def aiormq_one_by_one(broker_url: str, body: bytes, n: int) -> tuple[float, int]:
    return asyncio.run(_aiormq_one_by_one(broker_url, body, n))


def pyamqp_pipelined(broker_url: str, body: bytes, n: int, window: int) -> tuple[float, int]:
    """py-amqp alone, the way mice.publisher.ConfirmingPublisher works, with O(1) settling of acks."""
    conn = amqp.Connection(**amqp_params(broker_url), heartbeat=0)
    conn.connect()
    try:
        ch = conn.channel()
        ch.confirm_select()
        pending: dict[int, None] = {}  # insertion order == tag order
        failed = 0

        def settle(tag: int, multiple: bool, ok: bool) -> None:
            nonlocal failed
            if multiple:
                while pending:
                    first = next(iter(pending))
                    if first > tag:
                        break
                    del pending[first]
                    failed += not ok
            elif pending.pop(tag, 0) is None:
                failed += not ok

        ch.events["basic_ack"].add(lambda tag, multiple: settle(tag, multiple, True))
        ch.events["basic_nack"].add(lambda tag, multiple: settle(tag, multiple, False))
        returned = 0

        def on_return(*_: Any) -> None:
            nonlocal returned
            returned += 1

        ch.events["basic_return"].add(on_return)
        started = time.perf_counter()
        for tag in range(1, n + 1):
            pending[tag] = None
            message = amqp.Message(
                body, delivery_mode=2, content_type="application/octet-stream", message_id=uuid.uuid4().hex
            )
            ch.basic_publish(message, exchange=RAW_EXCHANGE, routing_key=RAW_QUEUE, mandatory=True)
            while len(pending) >= window:
                conn.drain_events(timeout=10)
        while pending:
            conn.drain_events(timeout=10)
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    return elapsed, failed + returned


def kombu_one_by_one(broker_url: str, body: bytes, n: int) -> tuple[float, int]:
    """kombu with confirm_publish=True: every publish waits for its own confirm (the Celery default here)."""
    with Connection(broker_url, transport_options={"confirm_publish": True}, heartbeat=0) as connection:
        producer = connection.Producer()
        started = time.perf_counter()
        for _ in range(n):
            producer.publish(
                body,
                exchange=RAW_EXCHANGE,
                routing_key=RAW_QUEUE,
                delivery_mode=2,
                content_type="application/octet-stream",
                content_encoding="binary",
                mandatory=True,
                retry=False,
            )
        elapsed = time.perf_counter() - started
    return elapsed, 0


def relay_publisher_only(broker_url: str, n: int, batch: int) -> tuple[float, int, int]:
    """mice.publisher.ConfirmingPublisher with prebuilt task messages, in relay-sized batches: no database.

    Returns (seconds, failed, message bytes). Shows how much of (b) is the publisher and how much the rest.
    """
    from mice.events import Envelope, get_event_type
    from mice.publisher import ConfirmingPublisher
    from mice.task_messages import task_message
    from mice.topology import EVENTS, maybe_declare_all

    etype = get_event_type("probe.slept")
    messages = []
    for i in range(n):
        event = Envelope.new(etype, subject=f"bench-{i}", data={"seconds": 0})
        msg = task_message(
            outbox_id=i + 1,
            handler=RELAYPUB_QUEUE,
            envelope_json=json.dumps(event.to_dict()),
            event_id=event.id,
        )
        messages.append(((i + 1, RELAYPUB_QUEUE), RELAYPUB_QUEUE, msg))
    size = len(messages[0][2].body)
    publisher = ConfirmingPublisher(broker_url, exchange=EVENTS.name, declare=maybe_declare_all)
    publisher.connect()
    fresh_raw_queue(broker_url, RELAYPUB_QUEUE, exchange="mice.events")
    failed = 0
    try:
        started = time.perf_counter()
        for i in range(0, n, batch):
            outcome = publisher.publish(messages[i : i + batch])
            failed += len(outcome.failed)
        elapsed = time.perf_counter() - started
    finally:
        publisher.close()
        drop_queue(broker_url, RELAYPUB_QUEUE)
    return elapsed, failed, size


def check_confirmed(what: str, failed: int) -> None:
    """A run where the broker did not ack everything (e.g. it was restarted by another test run) is void."""
    if failed:
        raise RuntimeError(f"{what}: {failed} messages were not confirmed; the broker had trouble, run again")


# ---------------------------------------------------------------------------------------------- (b) relay


def insert_backlog(n: int, chunk: int = 2000) -> float:
    """N outbox rows for probe.slept {"seconds": 0}, built as mice.outbox.outbox_store builds them."""
    from django.db import connection, transaction

    from mice.events import Envelope, get_event_type
    from mice.models import OutboxMessage

    etype = get_event_type("probe.slept")
    started = time.perf_counter()
    for start in range(0, n, chunk):
        rows = []
        for i in range(start, min(n, start + chunk)):
            event = Envelope.new(etype, subject=f"bench-{i}", data={"seconds": 0})
            rows.append(
                OutboxMessage(
                    event_id=event.id,
                    event_type=event.type,
                    correlation_id=event.correlationid,
                    envelope=event.to_dict(),
                    handler="",
                )
            )
        with transaction.atomic():
            OutboxMessage.objects.bulk_create(rows, batch_size=1000)
    elapsed = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE mice_outboxmessage")
    return elapsed


def truncate_tables() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE mice_outboxmessage, mice_inboxentry, probe_effect")


def drain(broker_url: str, batch_size: int, profile: cProfile.Profile | None = None) -> tuple[float, int]:
    """Time Relay.relay_batch() in a loop until nothing is left; returns (seconds, rows).

    As `manage.py outbox_relay` does, MICE_RELAY_CONCURRENCY loops run in threads of one process.
    """
    import threading

    from django.conf import settings
    from django.db import connection, connections

    from mice.relay import Relay, RelayConfig

    threads_n = settings.MICE_RELAY_CONCURRENCY
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
            while True:
                got = relays[i].relay_batch()
                if not got:
                    break
                counts[i] += got
        finally:
            if i:
                connections.close_all()

    try:
        if profile is not None:
            profile.enable()
        started = time.perf_counter()
        workers = [threading.Thread(target=loop, args=(i,)) for i in range(1, threads_n)]
        for w in workers:
            w.start()
        loop(0)
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - started
        if profile is not None:
            profile.disable()
    finally:
        for relay in relays:
            relay.publisher.close()
            relay.wakeup.close()
    return elapsed, sum(counts)


def relay_loops() -> int:
    from django.conf import settings

    return int(settings.MICE_RELAY_CONCURRENCY)


def declare_topology(broker_url: str) -> None:
    from mice.topology import maybe_declare_all

    with Connection(broker_url, connect_timeout=5) as connection:
        connection.connect()
        mismatches = maybe_declare_all(connection)
    if mismatches:
        raise RuntimeError(f"topology mismatch in a fresh vhost: {mismatches}")


def purge(broker_url: str, queue: str) -> None:
    with Connection(broker_url, connect_timeout=5) as connection:
        channel: Any = connection.channel()
        channel.queue_purge(queue)
        channel.close()


def drain_run(broker_url: str, args: argparse.Namespace, profile: cProfile.Profile | None = None) -> dict[str, Any]:
    """A fresh backlog (not timed), then the timed drain; checks every row was sent and the queue holds N."""
    from mice.models import OutboxMessage

    n = args.backlog
    truncate_tables()
    purge(broker_url, PROBE_QUEUE)
    insert_secs = insert_backlog(n)
    secs, rows = drain(broker_url, args.batch_size, profile)
    pending = OutboxMessage.objects.filter(sent_at__isnull=True).count()
    depth = queue_depth(broker_url, PROBE_QUEUE)
    truncate_tables()
    purge(broker_url, PROBE_QUEUE)
    return {
        "insert_rate": n / insert_secs,
        "secs": secs,
        "rows": rows,
        "rate": rows / secs,
        "pending": pending,
        "depth": depth,
        "ok": depth == n and rows == n and pending == 0,
    }


def throughput(broker_url: str, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """(a) and (b), interleaved in rounds so that both see the same machine; the ratio is taken per round.

    Each round: aiormq pipelined, py-amqp pipelined, the relay's publisher alone, then the relay's drain.
    """
    import logging

    logging.getLogger("mice.relay").setLevel(logging.WARNING)  # one INFO line per batch is noise here
    body = os.urandom(1024)
    n, window = args.messages, args.window
    say(
        f"\n== throughput: {args.repeats} rounds; each round runs (a) and (b) back to back, so that a busy moment "
        "on this shared machine hits both =="
    )
    say(
        f"(a) raw publishing: {n:,} persistent (delivery_mode 2) 1 KB messages to a durable quorum queue through a "
        f"direct exchange, mandatory, publisher confirms pipelined with {window} outstanding; fresh queue every run"
    )
    say(
        f"(b) the relay draining a backlog of {args.backlog:,} outbox rows (probe.slept, one subscriber, no worker): "
        f"in-process Relay(batch_size={args.batch_size}).relay_batch() until it returns 0, "
        "in MICE_RELAY_CONCURRENCY threads as manage.py outbox_relay runs it"
    )
    declare_topology(broker_url)
    rates: dict[str, list[float]] = {"aiormq": [], "py-amqp": [], "relay publisher": [], "relay drain": []}
    paired: list[float] = []
    drains: list[dict[str, Any]] = []
    relay_msg_size = 0
    for run in range(1, args.repeats + 1):
        say(f"  round {run} (other test processes now: {other_activity()})")
        fresh_raw_queue(broker_url)
        secs, failed = aiormq_pipelined(broker_url, body, n, window)
        check_confirmed("aiormq", failed)
        rates["aiormq"].append(n / secs)
        fresh_raw_queue(broker_url)
        secs, failed = pyamqp_pipelined(broker_url, body, n, window)
        check_confirmed("py-amqp", failed)
        rates["py-amqp"].append(n / secs)
        drop_queue(broker_url, RAW_QUEUE)
        secs, failed, relay_msg_size = relay_publisher_only(broker_url, n, args.batch_size)
        check_confirmed("relay publisher", failed)
        rates["relay publisher"].append(n / secs)
        d = drain_run(broker_url, args)
        drains.append(d)
        rates["relay drain"].append(d["rate"])
        best = max(rates["aiormq"][-1], rates["py-amqp"][-1])
        paired.append(d["rate"] / best)
        say(
            f"    (a) aiormq {rates['aiormq'][-1]:>7,.0f} msg/s   py-amqp {rates['py-amqp'][-1]:>7,.0f} msg/s   "
            f"[relay's ConfirmingPublisher alone, no DB, batches of {args.batch_size}: "
            f"{rates['relay publisher'][-1]:,.0f} msg/s]"
        )
        say(
            f"    (b) drained {d['rows']:,} rows in {d['secs']:.2f} s = {d['rate']:,.0f} msg/s confirmed "
            f"(backlog inserted at {d['insert_rate']:,.0f} rows/s, not timed); rows still pending {d['pending']}; "
            f"queue {PROBE_QUEUE} depth {d['depth']} ({'== N, ok' if d['ok'] else 'MISMATCH'}); "
            f"this round (b)/(a) = {paired[-1]:.0%}"
        )
    medians = {k: statistics.median(v) for k, v in rates.items()}
    best_client = max(("aiormq", "py-amqp"), key=lambda k: medians[k])
    say("  medians: " + ", ".join(f"{k} {v:,.0f} msg/s" for k, v in medians.items()))
    say(f"  (a) = best pipelined client by median: {best_client}, {medians[best_client]:,.0f} msg/s")
    say(f"  (b) = {medians['relay drain']:,.0f} msg/s (relay task message body {relay_msg_size} bytes + ~21 headers)")

    m = args.confirm_each
    say(f"\n-- reference: one confirm at a time, {m:,} messages --")
    fresh_raw_queue(broker_url)
    secs, _ = aiormq_one_by_one(broker_url, body, m)
    one_aiormq = m / secs
    fresh_raw_queue(broker_url)
    secs, _ = kombu_one_by_one(broker_url, body, m)
    one_kombu = m / secs
    drop_queue(broker_url, RAW_QUEUE)
    say(f"  aiormq awaiting each confirm: {one_aiormq:,.0f} msg/s   kombu confirm_publish=True: {one_kombu:,.0f} msg/s")

    if args.profile:
        profile = cProfile.Profile()
        d = drain_run(broker_url, args, profile)
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)
        say(
            f"\n-- cProfile of one extra drain ({d['rows']:,} rows in {d['secs']:.2f} s under the profiler, "
            "not counted) --"
        )
        say(out.getvalue())

    a = {
        "rates": rates,
        "medians": medians,
        "best_client": best_client,
        "a": medians[best_client],
        "one_aiormq": one_aiormq,
        "one_kombu": one_kombu,
        "relay_msg_size": relay_msg_size,
    }
    b = {
        "b": medians["relay drain"],
        "paired": paired,
        "ratio": statistics.median(paired),
        "depth_ok": all(d["ok"] for d in drains),
        "batch_size": args.batch_size,
        "backlog": args.backlog,
    }
    return a, b


# ---------------------------------------------------------------------------------------------- latency


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    if not sorted_values:
        return math.nan
    k = max(0, math.ceil(p / 100 * len(sorted_values)) - 1)
    return sorted_values[k]


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def _proc_stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat as [comm, state, ppid, pgrp, session, ...]: index i is field i + 2 of proc(5)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return [text[text.index("(") + 1 : text.rindex(")")], *text[text.rindex(")") + 2 :].split()]


ProcMatch = Callable[[int, list[str]], bool]


def in_group(pgid: int) -> ProcMatch:
    return lambda pid, fields: fields[3] == str(pgid)


def named(comm: str) -> ProcMatch:
    return lambda pid, fields: fields[0] == comm


def cpu_ticks(selectors: dict[str, ProcMatch]) -> dict[str, dict[int, int]]:
    """CPU ticks (user + system) used so far by each live process of each selected set; "machine busy" is the
    whole machine (neither idle nor iowait), under pid 0."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            if fields is not None:
                stats[int(entry.name)] = fields
    out: dict[str, dict[int, int]] = {}
    for name, match in selectors.items():
        out[name] = {pid: int(f[12]) + int(f[13]) for pid, f in stats.items() if match(pid, f)}
    cpu = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    out["machine busy"] = {0: sum(cpu) - cpu[3] - cpu[4]}
    return out


def cpu_used(before: dict[str, dict[int, int]], after: dict[str, dict[int, int]]) -> dict[str, float]:
    """Seconds of CPU per set between two snapshots, counting processes alive at the second one (a process that
    ended in between is missing, one that started is counted from its start)."""
    tick = os.sysconf("SC_CLK_TCK")
    return {
        name: sum(t - before.get(name, {}).get(pid, 0) for pid, t in pids.items()) / tick
        for name, pids in after.items()
    }


def db_sessions() -> int:
    """Sessions (connections) ever opened to the bench database (pg_stat_database, PostgreSQL 14+)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else -1


def offer_load(rate: float, seconds: float, tag: str) -> tuple[dict[str, float], float, float]:
    """One emit per transaction, paced by the clock; returns ({event id: commit wall time}, seconds, worst lag)."""
    from django.db import transaction

    from mice.outbox import emit

    total = round(rate * seconds)
    commits: dict[str, float] = {}
    worst_lag = 0.0
    started = time.perf_counter()
    for i in range(total):
        due = started + i / rate
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        else:
            worst_lag = max(worst_lag, now - due)
        with transaction.atomic():
            event = emit("probe.slept", subject=f"{tag}-{i}", data={"seconds": 0})
        commits[event.id] = time.time()  # right after COMMIT returned
    return commits, time.perf_counter() - started, worst_lag


def handled_at(event_ids: list[str]) -> dict[str, float]:
    from tests.probe.models import Effect

    found: dict[str, float] = {}
    for i in range(0, len(event_ids), 2000):
        chunk = event_ids[i : i + 2000]
        for event_id, created in Effect.objects.filter(handler="probe.slow", event_id__in=chunk).values_list(
            "event_id", "created_at"
        ):
            found.setdefault(str(event_id), created.timestamp())
    return found


def sent_at(event_ids: list[str]) -> dict[str, float]:
    from mice.models import OutboxMessage

    found: dict[str, float] = {}
    for i in range(0, len(event_ids), 2000):
        chunk = event_ids[i : i + 2000]
        for event_id, sent in OutboxMessage.objects.filter(event_id__in=chunk, sent_at__isnull=False).values_list(
            "event_id", "sent_at"
        ):
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
    say(f"other test processes now: {other_activity()}")
    truncate_tables()
    purge(broker_url, PROBE_QUEUE)
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
        worker = system.worker(concurrency=args.concurrency)
        system.env = project_env
        relay = system.relay()
        relay.wait_for_log("relay connected to the broker", timeout=30)
        say(f"  worker (prefork -c {args.concurrency}) and relay up in {time.perf_counter() - started:.1f} s")

        # Warm-up, not measured: first task imports, connections, the pool children's first database use.
        warm, _, _ = offer_load(args.rate, args.warmup, "warmup")
        if not wait_until(lambda: len(handled_at(list(warm))) >= len(warm), timeout=30):
            raise RuntimeError("warm-up events were not all handled in 30 s:\n" + system.dump_logs())
        relay_log_before = len(relay.log())

        me = os.getpid()
        pgids: dict[str, ProcMatch] = {
            "worker (main + pool)": in_group(worker.pid),
            "relay": in_group(relay.pid),
            "bench (emitting)": lambda pid, fields: pid == me,
            "rabbitmq (beam.smp)": named("beam.smp"),
            "postgresql (all backends)": named("postgres"),
        }
        cpu_before, wall_before, sessions_before = cpu_ticks(pgids), time.perf_counter(), db_sessions()
        commits, offered_secs, worst_lag = offer_load(args.rate, args.duration, "load")
        ids = list(commits)
        wait_until(lambda: len(handled_at(ids)) >= len(ids), timeout=60, interval=0.25)
        cpu_after, wall_after = cpu_ticks(pgids), time.perf_counter()
        time.sleep(0.6)  # statistics of ended sessions reach pg_stat_database within PGSTAT_MIN_INTERVAL
        sessions = db_sessions() - sessions_before
        handled = handled_at(ids)
        sent = sent_at(ids)
        batches, rows_per_batch, batch_ms = relay_batches(relay.log()[relay_log_before:])
        if not worker.alive() or not relay.alive():
            say("  WARNING: a subprocess died:\n" + system.dump_logs())
    finally:
        system.stop_all()
    lat = sorted((handled[e] - commits[e]) * 1000 for e in ids if e in handled)
    to_sent = sorted((sent[e] - commits[e]) * 1000 for e in ids if e in sent)
    missing = len(ids) - len(lat)
    span = max(handled.values()) - min(handled.values()) if len(handled) > 1 else math.nan
    kept_up = len(handled) / span if len(handled) > 1 else math.nan
    result = {
        "offered": len(ids),
        "achieved_rate": len(ids) / offered_secs,
        "worst_lag_ms": worst_lag * 1000,
        "missing": missing,
        "p50": percentile(lat, 50),
        "p95": percentile(lat, 95),
        "p99": percentile(lat, 99),
        "max": lat[-1] if lat else math.nan,
        "sent_p50": percentile(to_sent, 50),
        "sent_p99": percentile(to_sent, 99),
        "batches": batches,
        "rows_per_batch": rows_per_batch,
        "batch_ms": batch_ms,
        "kept_up": kept_up,
        "sessions_per_event": sessions / max(1, len(ids)),
        "experiment": f"worker CELERY_DB_REUSE_MAX={args.worker_db_reuse}" if args.worker_db_reuse else "",
    }
    say(
        f"  offered {len(ids):,} events in {offered_secs:.1f} s ({result['achieved_rate']:.0f}/s achieved, "
        f"worst pacing lag {result['worst_lag_ms']:.1f} ms); handled {len(lat):,}, missing {missing}"
    )
    say(
        f"  commit -> handler start: p50 {result['p50']:.1f} ms, p95 {result['p95']:.1f} ms, "
        f"p99 {result['p99']:.1f} ms, max {result['max']:.1f} ms"
    )
    say(
        f"  (part of it) commit -> relay marked sent (after confirms): p50 {result['sent_p50']:.1f} ms, "
        f"p99 {result['sent_p99']:.1f} ms; relay batches {batches}, {rows_per_batch:.2f} rows/batch, "
        f"median batch {batch_ms:.1f} ms"
    )
    per_second = []
    step = max(1, round(args.rate))
    for i in range(0, len(ids), step):
        window = sorted((handled[e] - commits[e]) * 1000 for e in ids[i : i + step] if e in handled)
        if window:
            per_second.append(f"{percentile(window, 50):.0f}/{window[-1]:.0f}")
    say(f"  per second of load, p50/max ms: {' '.join(per_second)}")
    if len(handled) > 1:
        say(f"  handler starts spread over {span:.1f} s: the worker kept up with {kept_up:.0f} events/s")
    say(
        f"  new PostgreSQL connections to the bench database during the load: {sessions:,} "
        f"({sessions / max(1, len(ids)):.2f} per event)"
    )
    spent = wall_after - wall_before
    say(f"  CPU from load start until all handled ({spent:.1f} s wall; ms of CPU per event, share of one core):")
    cores = os.cpu_count() or 1
    for name, used in cpu_used(cpu_before, cpu_after).items():
        share = f"{used / spent / cores:.0%} of {cores} cores" if name == "machine busy" else f"{used / spent:.0%}"
        say(f"    {name:<28} {used * 1000 / max(1, len(ids)):6.2f} ms/event  {share}")
    say("    (processes that ended meanwhile, e.g. a PostgreSQL backend per new connection, count only in machine")
    say("    busy, which also counts anything else running on the machine)")
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
    ok = result["p99"] < LATENCY_TARGET_MS and missing == 0
    say(f"  p99 < {LATENCY_TARGET_MS:.0f} ms: {'YES' if ok else 'NO'}")
    result["ok"] = ok
    return result


# ---------------------------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000, help="messages per pipelined raw run")
    parser.add_argument("--window", type=int, default=500, help="outstanding unconfirmed messages (raw runs)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of (a) + (b) throughput runs")
    parser.add_argument("--confirm-each", type=int, default=2_000, help="messages for one-confirm-at-a-time")
    parser.add_argument("--backlog", type=int, default=20_000, help="outbox rows for the drain")
    parser.add_argument("--batch-size", type=int, default=500, help="relay batch size")
    parser.add_argument("--rate", type=float, default=200.0, help="events/s offered in the latency run")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of load in the latency run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured load first")
    parser.add_argument("--concurrency", type=int, default=2, help="worker prefork concurrency")
    parser.add_argument(
        "--worker-db-reuse",
        type=int,
        default=0,
        metavar="N",
        help="experiment: run the latency worker with CELERY_DB_REUSE_MAX=N (a generated settings module on top "
        "of tests.settings; the project's settings are not touched). Default: the project's settings as they are",
    )
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--profile", action="store_true", help="also profile one extra drain with cProfile")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL server (a database to connect to for CREATE/DROP DATABASE)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the subprocess logs (path is printed)")
    return parser.parse_args()


def summary(info: dict[str, str], a: dict[str, Any], b: dict[str, Any], lat: dict[str, Any] | None) -> None:
    ratio = b["ratio"]
    other = "py-amqp" if a["best_client"] == "aiormq" else "aiormq"
    rows = [
        (
            f"(a) raw publish, 1 KB persistent, quorum queue, pipelined confirms ({a['best_client']})",
            f"{a['a']:,.0f} msg/s",
        ),
        (f"raw publish, pipelined, {other}", f"{a['medians'][other]:,.0f} msg/s"),
        (
            "relay's ConfirmingPublisher alone (prebuilt task messages, no DB)",
            f"{a['medians']['relay publisher']:,.0f} msg/s",
        ),
        (
            "raw publish, one confirm at a time (aiormq / kombu)",
            f"{a['one_aiormq']:,.0f} / {a['one_kombu']:,.0f} msg/s",
        ),
        (
            f"(b) relay draining a {b['backlog']:,}-row outbox backlog (batch {b['batch_size']}, "
            f"{relay_loops()} loops), in-process",
            f"{b['b']:,.0f} msg/s (queue depth == N after each run: {'yes' if b['depth_ok'] else 'NO'})",
        ),
        (
            f"(b) / (a), median of per-round ratios; target >= {RATIO_TARGET:.0%}",
            f"{ratio:.0%} ({'met' if ratio >= RATIO_TARGET else 'NOT met'})",
        ),
    ]
    if lat is not None:
        if lat["experiment"]:
            rows.append(("EXPERIMENT (not the project's settings)", lat["experiment"]))
        rows.append(
            (
                f"commit -> handler start at {lat['achieved_rate']:.0f} events/s: p50 / p95 / p99 / max",
                f"{lat['p50']:.1f} / {lat['p95']:.1f} / {lat['p99']:.1f} / {lat['max']:.1f} ms",
            )
        )
        rows.append(
            (
                "worker throughput in that run (prefork -c 2) / new PostgreSQL connections per event",
                f"{lat['kept_up']:.0f} events/s / {lat['sessions_per_event']:.2f}",
            )
        )
        rows.append(
            (
                f"p99 < {LATENCY_TARGET_MS:.0f} ms",
                f"{'yes' if lat['ok'] else 'NO'} ({lat['offered']:,} events, {lat['missing']} missing)",
            )
        )
    say("\n== summary (markdown) ==\n")
    say(
        f"Measured {info['date']} on `{info['host']}`: {info['cpu']}, {info['ram']} RAM, {info['python']}, "
        f"{info['rabbitmq']}, {info['postgresql']}. Medians of repeated runs; noisy shared machine."
    )
    if CONTENTION:
        say(
            f"Other load was seen at the checkpoints of this run ({'; '.join(CONTENTION)}): "
            "the figures are pessimistic and noisier than usual."
        )
    else:
        say("No other test processes and no heavy CPU pressure (>= 50%) were seen at the checkpoints of this run.")
    say()
    say("| measurement | result |")
    say("| --- | --- |")
    for label, value in rows:
        say(f"| {label} | {value} |")
    say()


@contextlib.contextmanager
def bench_vhost() -> Iterator[str]:
    """tests.broker.throwaway_vhost, plus a check that it is really gone afterwards.

    throwaway_vhost swallows a failed delete_vhost; other test runs on this machine stop and start
    RabbitMQ, so keep trying for a while rather than leave the vhost behind.
    """
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


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, interrupted)
    os.chdir(ROOT)
    wall = time.perf_counter()
    log_dir = Path(tempfile.mkdtemp(prefix="mice-bench-"))
    keep_logs = args.keep_logs
    try:
        with bench_vhost() as broker_url, bench_database(args.pg_url, prefix="mice_bench") as database_url:
            info = machine(broker_url, args.pg_url)
            say("== machine ==")
            for key, value in info.items():
                say(f"  {key:<22} {value}")
            say(f"  vhost {urlsplit(broker_url).path[1:]}, database {urlsplit(database_url).path[1:]}")
            migrate_secs = migrate(database_url, broker_url)
            say(f"  migrated in {migrate_secs:.1f} s")
            setup_django(database_url, broker_url)

            a, b = throughput(broker_url, args)
            say(
                f"\n(b)/(a): median of the per-round ratios {b['ratio']:.0%} "
                f"({', '.join(f'{r:.0%}' for r in b['paired'])}); ratio of the medians "
                f"{b['b']:,.0f} / {a['a']:,.0f} = {b['b'] / a['a']:.0%}. Target >= {RATIO_TARGET:.0%}: "
                f"{'MET' if b['ratio'] >= RATIO_TARGET else 'NOT MET'}"
            )
            lat = None if args.skip_latency else latency(broker_url, database_url, args, log_dir)
            say(f"\nload average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
            say(f"other test processes at end: {other_activity()}")
            summary(info, a, b, lat)
    except BaseException:
        keep_logs = keep_logs or any(log_dir.iterdir())
        raise
    finally:
        if keep_logs:
            say(f"subprocess logs kept in {log_dir}")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)
        say(f"total run time {time.perf_counter() - wall:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
