"""Benchmark: registrations through the whole saga at a steady offered rate; commit-to-confirmation-e-mail latency
and the memory of every process.

Run from the project root:  .venv/bin/python bench/saga.py --rate 20,50 --seconds 30 [--workers N]
(1-2 minutes to start the processes, then per rate 35 s of load and the time the saga takes to drain: minutes
for a rate above what the workers keep up with; 13 minutes for 20,50 on the shared 2-core machine.)

It makes its own PostgreSQL database (mice_bench_saga_<pid>) and RabbitMQ vhost and removes both at the end,
whatever happens. The real processes run as the Procfile runs them (`/bin/sh -c` + its line, production
settings): gunicorn (`web:`), `manage.py outbox_relay`, --workers Celery workers (`worker:`, each with its pool of
-c children) and `manage.py dead_letter_recorder`; e-mail goes through Django's SMTP backend to an SMTP server of
our own (tests/notifications/smtp_sink.py) that records when it accepted each message, by Message-ID.

Load, open-loop: registrations are POSTed to /api/registrations/ at fixed times (rate r: the i-th at i/r s),
whether or not the earlier ones are answered or have gone through the saga, by --senders threads (so a slow
answer delays a send only when every sender is busy: the worst delay is reported). The first --warmup seconds of
each rate are load but not measured. Every registration is paid (tok_visa): charge (sandbox gateway), invoice,
invoice PDF, the "received" e-mail and the confirmation e-mail with the PDF attached, dashboard figures: 11
handler runs per registration.

Measured per registration: commit (Registration.created_at) to the confirmation e-mail accepted by the SMTP server
(its Message-ID is <confirmed.<registration id>@...>): p50/p95/p99. The hops of that path come from the rows the
saga leaves: outbox rows (created_at, sent_at), Charge and EmailLog. Whether the system kept up: the
backlog (registrations answered 202 whose confirmation is not yet accepted), sampled each second. Memory: RSS (and
PSS) of each process tree, sampled each second; the maximum is reported (bench/memory.py).
Figures go to bench/results/saga.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import math
import os
import re
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.cpu import CpuProbe, ProcMatch, all_stats, backends_of, named, this_process  # noqa: E402
from bench.machine import Neighbours, describe, measured_on, print_end, print_machine  # noqa: E402
from bench.measure import Percentiles, percentile  # noqa: E402
from bench.memory import MemoryProbe, Peak, descendants  # noqa: E402
from bench.registering import attendee, django_env, fresh_events  # noqa: E402
from bench.runtime import DEFAULT_PG_URL, bench_database, bench_run, bench_vhost, migrate, say, setup_django  # noqa: E402

LATENCY_TARGET_S = 1.0
MEMORY_TARGET_MIB = 150.0
RESULTS = ROOT / "bench" / "results" / "saga.json"

# The handlers (queues) between a registration's commit and its confirmation e-mail, and its confirmed status.
CRITICAL_PATH = (
    "invoicing.charge_registration",
    "invoicing.issue_invoice",
    "notifications.send_paid_registration_confirmed",
    "registrations.confirm_paid_registration",
)

# The confirmation e-mail's path, hop by hop: (label, from point, to point). Points are named in `points()`.
HOPS = [
    ("commit -> registration.created published", "commit", "created_sent"),
    ("-> charge handler started", "created_sent", "charge_started"),
    ("-> charged (payment.succeeded committed)", "charge_started", "paid"),
    ("-> payment.succeeded published", "paid", "paid_sent"),
    ("-> invoice issued (invoice.issued committed)", "paid_sent", "invoiced"),
    ("-> invoice.issued published", "invoiced", "invoiced_sent"),
    ("-> e-mail handler recorded the e-mail", "invoiced_sent", "email_row"),
    ("-> accepted by the SMTP server", "email_row", "accepted"),
]


# --- the processes --------------------------------------------------------------------------------------------


@dataclass
class Processes:
    """The Procfile's processes and the SMTP server, started through tests.processes.ProcfileProcesses."""

    system: Any
    sink_file: Path
    web_url: str = ""
    roles: dict[str, Any] = field(default_factory=dict)  # role -> tests.processes.Process

    def root(self, role: str) -> int | None:
        process = self.roles.get(role)
        return process.pid if process is not None and process.alive() else None

    def dead(self) -> list[str]:
        return [role for role, process in self.roles.items() if not process.alive()]


def procfile_concurrency() -> int:
    """Pool children per worker when the Procfile's line gives none: the settings' CELERY_WORKER_CONCURRENCY."""
    return int(os.environ.get("MICE_WORKER_CONCURRENCY", "4"))


@contextlib.contextmanager
def start_processes(database_url: str, broker_url: str, log_dir: Path, args: argparse.Namespace) -> Iterator[Processes]:
    from tests.processes import ProcfileProcesses, free_port, procfile_command

    sink_port = free_port()
    sink_file = log_dir / "smtp-accepted.jsonl"
    system = ProcfileProcesses(database_url=database_url, broker_url=broker_url, log_dir=log_dir)
    # Production settings (config.settings, DEBUG off), not the tests' settings.
    system.env.update(django_env(database_url))
    system.env.pop("MICE_RELAY_POLL_INTERVAL", None)  # the production default
    system.env.update(
        CELERY_BROKER_URL=broker_url,
        LOG_LEVEL="INFO",  # as deployed: every handler run logs its duration, which this script reads back
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(sink_port),
        SANDBOX_GATEWAY_PATH=str(log_dir / "sandbox-gateway.sqlite3"),
    )
    system.env.update(args.set)  # experiments (--set): printed with the figures
    procs = Processes(system=system, sink_file=sink_file)
    try:
        sink = system.start(
            "smtp-sink", [sys.executable, "-m", "tests.notifications.smtp_sink", str(sink_port), str(sink_file)]
        )
        sink.wait_for_log("smtp sink listening", timeout=30)
        procs.roles["smtp sink"] = sink
        for i in range(1, args.workers + 1):
            line = procfile_command("worker") + f" -n saga-{i}-%h@%h"
            if args.concurrency:
                line += f" -c {args.concurrency}"
            if args.critical_worker:  # worker 1 runs the confirmation's path alone, the others everything else
                line += (" -Q " if i == 1 else " -X ") + ",".join(CRITICAL_PATH)
            worker = system.start(f"worker-{i}", ["/bin/sh", "-c", line])
            procs.roles[f"worker {i}"] = worker
        for i in range(1, args.workers + 1):
            procs.roles[f"worker {i}"].wait_for_log("ready.", timeout=120)
        relay = system.start("relay", ["/bin/sh", "-c", procfile_command("relay")])
        relay.wait_for_log("relay connected to the broker", timeout=60)
        procs.roles["relay"] = relay
        recorder = system.start("recorder", ["/bin/sh", "-c", procfile_command("recorder")])
        procs.roles["recorder"] = recorder
        procs.web_url = system.procfile_web()
        procs.roles["web"] = system.processes[-1]
        yield procs
    finally:
        system.stop_all()


# --- the load -------------------------------------------------------------------------------------------------


@dataclass
class Sent:
    index: int
    due: float  # time.time() it was due
    lag: float  # s after due that it was sent
    latency: float  # s to the answer
    status: str


def offer(port: int, slugs: list[str], rate: float, seconds: float, tag: str, senders: int, sent: list[Sent]) -> None:
    """Open loop: registration i is sent at start + i / rate by whichever sender thread took it, answered or not.
    Each answer is appended to `sent` as it comes (read meanwhile by the backlog's watcher)."""
    total = round(rate * seconds)
    taken = iter(range(total))
    lock = threading.Lock()
    start = time.time() + 0.2
    headers = {"Content-Type": "application/json", "Accept": "application/json"}

    def sender() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                i = next(taken, None)
            if i is None:
                break
            due = start + i / rate
            if (wait := due - time.time()) > 0:
                time.sleep(wait)
            body = json.dumps(attendee(slugs[i % len(slugs)], f"{tag}.{i}@bench.example.com"))
            began = time.time()
            # gunicorn closes a keep-alive connection idle for 2 s, which a sender at a low rate often is: the
            # next request on it fails before reaching the application. Sent again on a new connection with
            # the same Idempotency-Key, it cannot register twice.
            for attempt in range(3):
                try:
                    conn.request(
                        "POST", "/api/registrations/", body=body, headers={**headers, "Idempotency-Key": f"{tag}.{i}"}
                    )
                    response = conn.getresponse()
                    response.read()
                    status = str(response.status)
                    break
                except (OSError, http.client.HTTPException) as exc:
                    status = type(exc).__name__
                    conn.close()
                    if attempt < 2:
                        time.sleep(0.01)
            with lock:
                sent.append(Sent(i, due, began - due, time.time() - began, status))
        conn.close()

    threads = [threading.Thread(target=sender, name=f"sender-{n}", daemon=True) for n in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


class SinkLog:
    """The SMTP server's record, read incrementally: Message-ID -> accepted_at, and the confirmations per tag."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.accepted: dict[str, float] = {}
        self.confirmed_by_tag: dict[str, int] = {}

    def poll(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1  # a line still being written waits for the next poll
        self.offset += end
        for line in chunk[:end].splitlines():
            record = json.loads(line)
            message_id = record["message_id"]
            self.accepted.setdefault(message_id, record["accepted_at"])
            if message_id.startswith("<confirmed."):
                tag = (record["rcpt_tos"] or ["?"])[0].partition(".")[0]
                self.confirmed_by_tag[tag] = self.confirmed_by_tag.get(tag, 0) + 1


@dataclass
class Backlog:
    """Once a second: (time, registrations answered 202, confirmations accepted) for one rate's registrations."""

    points: list[tuple[float, int, int]] = field(default_factory=list)

    def slope(self, since: float, until: float) -> float:
        """Least-squares growth of the backlog (answered - confirmed) between two times, in registrations/s."""
        pts = [(t, a - c) for t, a, c in self.points if since <= t <= until]
        if len(pts) < 3:
            return math.nan
        mt = statistics.fmean(t for t, _ in pts)
        mb = statistics.fmean(b for _, b in pts)
        den = sum((t - mt) ** 2 for t, _ in pts)
        return sum((t - mt) * (b - mb) for t, b in pts) / den if den else math.nan

    def at(self, when: float) -> int:
        before = [a - c for t, a, c in self.points if t <= when]
        return before[-1] if before else 0


def watch(
    stop: threading.Event, sink: SinkLog, tag: str, answered: list[Sent], backlog: Backlog, queues: dict[str, int]
) -> None:
    """Backlog each second; the broker's queue depths (ready messages) every 2 s, keeping each queue's maximum."""
    from kombu import Connection

    from mice.topology import queue_state, work_queues

    names = [q.name for q in work_queues()]
    connection = Connection(os.environ["CELERY_BROKER_URL"], connect_timeout=5)
    tick = 0
    try:
        while not stop.wait(1.0):
            sink.poll()
            ok = sum(1 for s in list(answered) if s.status == "202")
            backlog.points.append((time.time(), ok, sink.confirmed_by_tag.get(tag, 0)))
            tick += 1
            if tick % 2 == 0:
                with contextlib.suppress(Exception):
                    for name in names:
                        state = queue_state(connection, name)
                        if state is not None:
                            queues[name] = max(queues.get(name, 0), state[0])
    finally:
        connection.release()


# --- what the saga left in the database -----------------------------------------------------------------------


def chunks(values: list[str], size: int = 1000) -> Iterator[list[str]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


def points(tag: str, measured_from: int) -> dict[str, dict[str, float]]:
    """Per measured registration id: the time (epoch s) of each point of its confirmation e-mail's path."""
    from invoicing.models import Charge
    from mice.models import OutboxMessage
    from notifications.models import EmailLog
    from registrations.models import Registration

    found: dict[str, dict[str, float]] = {}
    registrations = Registration.objects.filter(email__startswith=f"{tag}.")
    for email, registration_id, created in registrations.values_list("email", "id", "created_at"):
        if int(email.split(".")[1].split("@")[0]) >= measured_from:
            found[str(registration_id)] = {"commit": created.timestamp()}
    ids = list(found)
    names = {
        "registration.created": ("created_sent", None),
        "payment.succeeded": ("paid_sent", "paid"),
        "invoice.issued": ("invoiced_sent", "invoiced"),
    }
    for part in chunks(ids):
        rows = OutboxMessage.objects.filter(correlation_id__in=part, handler="", event_type__in=list(names))
        for saga, kind, created, sent in rows.values_list("correlation_id", "event_type", "created_at", "sent_at"):
            sent_name, created_name = names[kind]
            if sent is not None:
                found[saga][sent_name] = sent.timestamp()
            if created_name:
                found[saga][created_name] = created.timestamp()
        for rid, created in Charge.objects.filter(registration_id__in=part).values_list(
            "registration_id", "created_at"
        ):
            found[str(rid)]["charge_started"] = created.timestamp()
        # The invoice's own row is committed with invoice.issued: that outbox row's created_at stands for both.
        emails = EmailLog.objects.filter(registration_id__in=part, kind=EmailLog.Kind.CONFIRMED)
        for rid, created in emails.values_list("registration_id", "created_at"):
            found[str(rid)]["email_row"] = created.timestamp()
    return found


def dashboard_matches(slugs: list[str]) -> tuple[bool, str]:
    """The dashboard's per-event figures against the registrations' own truth, once everything has drained."""
    from analytics.models import RegistrationRecord
    from registrations.models import Registration

    truth = Registration.objects.filter(event__slug__in=slugs, status="confirmed").count()
    shown = RegistrationRecord.objects.filter(status="confirmed").count()
    return truth == shown, f"confirmed registrations {truth}, confirmed on the dashboard's records {shown}"


HANDLER_LINE = re.compile(r'msg="handler ran".*?\bhandler=(\S+).*?\bduration_ms=([\d.]+)')


def handler_times(log_texts: list[str]) -> dict[str, list[float]]:
    """Each handler's run times (ms) from the workers' "handler ran" log lines."""
    times: dict[str, list[float]] = {}
    for text in log_texts:
        for line in text.splitlines():
            if (m := HANDLER_LINE.search(line)) is not None:
                times.setdefault(m.group(1).strip('"'), []).append(float(m.group(2)))
    return times


# --- one rate -------------------------------------------------------------------------------------------------


def cpu_sets(procs: Processes) -> dict[str, ProcMatch]:
    from bench.registering import bench_db_name

    sets: dict[str, ProcMatch] = {}
    for role in procs.roles:
        root = procs.root(role)
        if root is not None:
            tree = set(descendants(root, all_stats()))
            sets[role] = (lambda members, r: lambda pid, f: pid in members or int(f[2]) in members or pid == r)(
                tree, root
            )
    sets["bench (senders)"] = this_process()
    sets["postgres (bench db backends)"] = backends_of(bench_db_name())
    sets["rabbitmq (all vhosts)"] = named("beam.smp")
    return sets


def run_rate(
    procs: Processes, sink: SinkLog, memory: MemoryProbe, slugs: list[str], rate: float, args: argparse.Namespace
) -> dict[str, Any]:
    tag = f"r{int(rate)}x{int(time.time()) % 100000}"
    say(f"\n== {rate:g} registrations/s: {args.warmup:g} s warm-up + {args.seconds:g} s measured, tag {tag} ==")
    port = int(urlsplit(procs.web_url).port or 80)
    warm_n = round(rate * args.warmup)
    total = round(rate * (args.warmup + args.seconds))
    answered: list[Sent] = []
    backlog = Backlog()
    queues: dict[str, int] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(stop, sink, tag, answered, backlog, queues), daemon=True)
    worker_logs_before = {r: len(p.log()) for r, p in procs.roles.items() if r.startswith("worker")}
    probe = CpuProbe(cpu_sets(procs))
    watcher.start()
    began = time.time()
    probe.begin()
    sender = threading.Thread(
        target=offer,
        args=(port, slugs, rate, args.warmup + args.seconds, tag, args.senders, answered),
        name="offer",
        daemon=True,
    )
    sender.start()
    measured_start = began + 0.2 + args.warmup
    sender.join()
    load_end = time.time()
    load_seconds = load_end - began
    sent = sorted(answered, key=lambda s: s.index)
    ok = [s for s in sent if s.status == "202"]
    worst_lag = max((one.lag for one in sent), default=0.0)
    failures: dict[str, int] = {}
    for one in sent:
        if one.status != "202":
            failures[one.status] = failures.get(one.status, 0) + 1
    say(
        f"  offered {len(sent):,} of {total:,} in {load_seconds:.1f} s; 202: {len(ok):,}, "
        f"other: {len(sent) - len(ok)} {failures or ''}; {len(sent) / load_seconds:.1f}/s achieved (a send is late "
        f"only when every sender waits on an answer): worst send lag {worst_lag * 1000:.0f} ms"
    )
    # Drain: until every answered registration's confirmation is accepted, or the timeout.
    deadline = time.time() + args.drain_timeout
    while time.time() < deadline:
        sink.poll()
        if sink.confirmed_by_tag.get(tag, 0) >= len(ok):
            break
        time.sleep(0.5)
    drained_at = time.time()
    # From load start until drained: every handler run of these registrations is inside the window.
    cpu = probe.end()
    stop.set()
    watcher.join()
    sink.poll()
    drain = drained_at - load_end
    confirmed = sink.confirmed_by_tag.get(tag, 0)
    say(f"  confirmations accepted {confirmed:,} of {len(ok):,}, {drain:.1f} s after the load ended")

    second_half = (measured_start + (load_end - measured_start) / 2, load_end)
    slope = backlog.slope(*second_half)
    backlog_end = backlog.at(load_end)

    pts = points(tag, warm_n)
    for rid, p in pts.items():
        if (at := sink.accepted.get(f"<confirmed.{rid}@{args.message_id_domain}>")) is not None:
            p["accepted"] = at
    latencies = [p["accepted"] - p["commit"] for p in pts.values() if "accepted" in p]
    lat = Percentiles.of(latencies)
    measured_secs = load_end - measured_start
    accepted_all = sorted(p["accepted"] for p in pts.values() if "accepted" in p)
    completed_rate = len([a for a in accepted_all if measured_start <= a <= load_end]) / max(1e-9, measured_secs)
    # Over the whole run, drain included: the rate at which the system really completes sagas.
    first_commit = min((p["commit"] for p in pts.values()), default=math.nan)
    throughput = len(accepted_all) / (accepted_all[-1] - first_commit) if len(accepted_all) > 1 else math.nan
    kept_up = (
        confirmed >= len(ok)
        and len(ok) == len(sent)
        and (math.isnan(slope) or slope < 0.05 * rate)
        and backlog_end <= max(rate * 2 * max(lat.p95, 0.5), 5)
    )
    say(
        f"  commit -> confirmation e-mail accepted ({lat.count:,} measured): p50 {lat.p50 * 1000:.0f} ms, "
        f"p95 {lat.p95 * 1000:.0f} ms, p99 {lat.p99 * 1000:.0f} ms, max {lat.max * 1000:.0f} ms"
    )
    say(
        f"  completed sagas: {throughput:.1f}/s from first measured commit to last confirmation, "
        f"{completed_rate:.1f}/s inside the measured window, of {rate:g}/s offered; backlog at load end "
        f"{backlog_end}, its growth over the 2nd half {slope:+.2f}/s; kept up: {'YES' if kept_up else 'NO'}"
    )
    http_lat = Percentiles.of(s.latency * 1000 for s in ok if s.index >= warm_n)
    say(f"  POST /api/registrations/ answered in {http_lat.text()}")

    hops = []
    for label, a, b in HOPS:
        values = [p[b] - p[a] for p in pts.values() if a in p and b in p]
        h = Percentiles.of(v * 1000 for v in values)
        hops.append({"hop": label, "p50_ms": h.p50, "p95_ms": h.p95, "p99_ms": h.p99, "count": h.count})
    # The slowest 5%: where their time went, hop by hop (median of each hop among them).
    slow_cut = lat.p95
    slow = [p for p in pts.values() if "accepted" in p and p["accepted"] - p["commit"] >= slow_cut]
    for hop, (_, a, b) in zip(hops, HOPS, strict=True):
        values = [(p[b] - p[a]) * 1000 for p in slow if a in p and b in p]
        hop["slowest_5pct_median_ms"] = percentile(values, 50)
    say("  hops of the confirmation e-mail's path, ms (p50 / p95 / p99; median among the slowest 5%):")
    for hop in hops:
        say(
            f"    {hop['hop']:<48} {hop['p50_ms']:8.1f} {hop['p95_ms']:8.1f} {hop['p99_ms']:8.1f}   "
            f"{hop['slowest_5pct_median_ms']:8.1f}"
        )

    worker_texts = [procs.roles[r].log()[n:] for r, n in worker_logs_before.items()]
    runs = handler_times(worker_texts)
    busy_ms = sum(sum(v) for v in runs.values())
    n_runs = sum(len(v) for v in runs.values())
    slots = args.workers * (args.concurrency or procfile_concurrency())
    span = max(drained_at - began, 1e-9)
    handler_rows = [
        {
            "handler": h,
            "runs": len(v),
            "p50_ms": percentile(v, 50),
            "p95_ms": percentile(v, 95),
            "total_s": sum(v) / 1000,
        }
        for h, v in sorted(runs.items(), key=lambda kv: -sum(kv[1]))
    ]
    say(
        f"  handler runs: {n_runs:,} ({n_runs / max(1, len(ok)):.1f} "
        f"per registration), {busy_ms / 1000:.1f} s of handler time = {busy_ms / 1000 / span / slots:.0%} of "
        f"{slots} pool slots over the {span:.0f} s from load start to drained"
    )
    for row in handler_rows:
        say(f"    {row['handler']:<58} {row['runs']:6,} runs  p50 {row['p50_ms']:7.1f}  p95 {row['p95_ms']:7.1f} ms")
    if queues:
        deepest = sorted(queues.items(), key=lambda kv: -kv[1])[:5]
        say("  deepest queues (most ready messages seen): " + ", ".join(f"{q} {n}" for q, n in deepest))

    cores = os.cpu_count() or 1
    say(f"  CPU from load start to drained ({span:.0f} s), cores busy (ms of CPU per registration):")
    cpu_rows = {}
    for name, used in cpu.items():
        cpu_rows[name] = {"cores": used / span, "ms_per_registration": used * 1000 / max(1, len(sent))}
        say(f"    {name:<30} {used / span:5.2f}  ({used * 1000 / max(1, len(sent)):6.1f} ms)")
    say(f"    (machine: all {cores} cores; rabbitmq and machine include other runs on this machine and broker)")

    peaks = memory.peaks(began, drained_at)
    print_memory(peaks)
    ok_dashboard, dashboard_text = dashboard_matches(slugs)
    say(f"  dashboard: {dashboard_text}: {'matches' if ok_dashboard else 'DIFFERS'} (all rates so far)")
    dead = procs.dead()
    if dead:
        say(f"  WARNING: processes died: {', '.join(dead)}")
    return {
        "rate_offered": rate,
        "seconds_measured": args.seconds,
        "warmup_seconds": args.warmup,
        "sent": len(sent),
        "load_seconds": load_seconds,
        "offered_rate_achieved": len(sent) / load_seconds,
        "answered_202": len(ok),
        "not_202": failures,
        "worst_send_lag_ms": max((s.lag for s in sent), default=0) * 1000,
        "http_latency_ms": asdict(http_lat),
        "confirmations_accepted": confirmed,
        "drain_seconds": drain,
        "latency_commit_to_confirmation_ms": {k: v * 1000 if k != "count" else v for k, v in asdict(lat).items()},
        "p95_under_1s": lat.p95 < LATENCY_TARGET_S,
        "completed_sagas_per_s_while_measured": completed_rate,
        "completed_sagas_per_s_over_run": throughput,
        "backlog_at_load_end": backlog_end,
        "backlog_growth_per_s_second_half": slope,
        "kept_up": kept_up,
        "hops": hops,
        "handlers": handler_rows,
        "pool_utilisation": busy_ms / 1000 / span / slots,
        "deepest_queues": dict(sorted(queues.items(), key=lambda kv: -kv[1])[:10]),
        "cpu": cpu_rows,
        "memory_mib": [p.as_dict() for p in peaks],
        "memory_under_150mib": all(p.process_rss < MEMORY_TARGET_MIB for p in peaks),
        "dashboard_matches": ok_dashboard,
        "processes_died": dead,
    }


def print_memory(peaks: list[Peak]) -> None:
    say("  memory, MiB, max over the samples (largest process RSS / its PSS; whole tree RSS / PSS, children included):")
    for p in peaks:
        pss = f"{p.process_pss:6.1f}" if p.process_pss is not None else "     -"
        total_pss = f"{p.total_pss:6.1f}" if p.total_pss is not None else "     -"
        say(
            f"    {p.role:<10} {p.processes} proc  {p.process_rss:6.1f} / {pss}   tree {p.total_rss:6.1f} / {total_pss}"
            f"   ({p.process_rss_name})"
        )


# --- main -----------------------------------------------------------------------------------------------------


def summary(
    info: dict[str, str], neighbours: Neighbours, results: list[dict[str, Any]], args: argparse.Namespace
) -> None:
    say("\n== summary (markdown) ==\n")
    say(
        f"{measured_on(info)} Web (Procfile: gunicorn 2 workers x 4 threads), relay, {args.workers} Celery worker(s) "
        f"x {args.concurrency or procfile_concurrency()} pool children, dead-letter recorder, SMTP server and the "
        "load generator all on this machine."
    )
    say(neighbours.verdict())
    if experiments(args):
        say(f"EXPERIMENT, not the Procfile's settings: {experiments(args)}.")
    say()
    say(
        "| offered /s (achieved) | completed sagas /s (over the run) | kept up "
        "| commit -> confirmation e-mail p50 / p95 / p99 (ms) "
        "| p95 < 1 s | drain after load (s) | POST p99 (ms) |"
    )
    say("| ---: | ---: | --- | ---: | --- | ---: | ---: |")
    for r in results:
        lat = r["latency_commit_to_confirmation_ms"]
        say(
            f"| {r['rate_offered']:g} ({r['offered_rate_achieved']:.1f}) | {r['completed_sagas_per_s_over_run']:.1f} | "
            f"{'yes' if r['kept_up'] else 'no'} | {lat['p50']:.0f} / {lat['p95']:.0f} / {lat['p99']:.0f} | "
            f"{'yes' if r['p95_under_1s'] else 'no'} | {r['drain_seconds']:.1f} | {r['http_latency_ms']['p99']:.0f} |"
        )
    say()
    say("| offered /s | process | largest process RSS / PSS (MiB) | tree RSS / PSS (MiB) | processes |")
    say("| ---: | --- | ---: | ---: | ---: |")
    for r in results:
        for p in r["memory_mib"]:
            pss = f"{p['process_pss']:.0f}" if p["process_pss"] is not None else "-"
            tpss = f"{p['total_pss']:.0f}" if p["total_pss"] is not None else "-"
            say(
                f"| {r['rate_offered']:g} | {p['role']} | {p['process_rss']:.0f} / {pss} "
                f"| {p['total_rss']:.0f} / {tpss} "
                f"| {p['processes']} |"
            )
    say()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--rate",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[20.0, 50.0],
        help="offered registrations/s, comma separated: one run each, in order (default 20,50)",
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per rate (default 30)")
    parser.add_argument("--warmup", type=float, default=5.0, help="unmeasured seconds of load first (default 5)")
    parser.add_argument("--workers", type=int, default=1, help="Celery worker processes (the Procfile's line each)")
    parser.add_argument("--concurrency", type=int, default=0, help="pool children per worker (default: the Procfile's)")
    parser.add_argument(
        "--critical-worker",
        action="store_true",
        help="EXPERIMENT (not the Procfile): worker 1 consumes only the confirmation's path "
        "(-Q), the other workers everything else (-X); needs --workers 2 or more",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        type=lambda s: tuple(s.split("=", 1)),
        metavar="NAME=VALUE",
        help="EXPERIMENT: an environment variable for every process (repeatable), e.g. MICE_WORKER_TASK_EVENTS=0",
    )
    parser.add_argument("--senders", type=int, default=16, help="sender threads (open loop; default 16)")
    parser.add_argument("--events", type=int, default=1, help="MICE events the registrations go to (default 1)")
    parser.add_argument("--drain-timeout", type=float, default=180.0, help="s to wait for the saga after the load")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server (for CREATE/DROP DATABASE)")
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help=f"JSON figures (default {RESULTS.relative_to(ROOT)})"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs (path is printed)")
    args = parser.parse_args()
    if args.critical_worker and args.workers < 2:
        parser.error("--critical-worker needs --workers 2 or more")
    return args


def experiments(args: argparse.Namespace) -> str:
    """What this run changed from the Procfile and the production settings ("" for nothing)."""
    changes = [f"{name}={value}" for name, value in args.set]
    if args.critical_worker:
        changes.append("worker 1 -Q " + ",".join(CRITICAL_PATH) + ", the others -X the same")
    if args.concurrency:
        changes.append(f"-c {args.concurrency} per worker")
    return "; ".join(changes)


def main() -> int:
    args = parse_args()
    neighbours = Neighbours()
    results: list[dict[str, Any]] = []
    with (
        bench_run(log_prefix="mice-bench-saga-", keep_logs=args.keep_logs) as log_dir,
        bench_database(args.pg_url, prefix="mice_bench_saga") as database_url,
        bench_vhost() as broker_url,
    ):
        info = describe(
            neighbours,
            pg_url=args.pg_url,
            broker_url=broker_url,
            processes=f"web (Procfile), relay, {args.workers} worker(s) x {args.concurrency or 'Procfile'} "
            "children, recorder",
            **({"EXPERIMENT": experiments(args)} if experiments(args) else {}),
        )
        print_machine(info)
        env = {**django_env(database_url), "CELERY_BROKER_URL": broker_url}
        say(f"  database {urlsplit(database_url).path[1:]}, vhost {urlsplit(broker_url).path[1:]}")
        say(f"  migrated in {migrate(env):.1f} s")
        setup_django(env)
        from django.conf import settings

        args.message_id_domain = settings.MICE_EMAIL_MESSAGE_ID_DOMAIN
        slugs = fresh_events(args.events)
        started = time.perf_counter()
        with start_processes(database_url, broker_url, log_dir, args) as procs:
            say(
                f"  processes up in {time.perf_counter() - started:.1f} s: "
                + ", ".join(f"{role} {procs.root(role)}" for role in procs.roles)
            )
            memory = MemoryProbe({role: (lambda r: lambda: procs.root(r))(role) for role in procs.roles})
            memory.start()
            sink = SinkLog(procs.sink_file)
            try:
                for rate in args.rate:
                    results.append(run_rate(procs, sink, memory, slugs, rate, args))
            finally:
                memory.stop()
            if procs.dead():
                say("WARNING: processes died:\n" + procs.system.dump_logs())
        print_end(neighbours)
        summary(info, neighbours, results, args)
        args.results.parent.mkdir(parents=True, exist_ok=True)
        figures = {
            "benchmark": "bench/saga.py",
            "command": " ".join(sys.argv),
            "machine": info,
            "shared_machine": neighbours.verdict(),
            "targets": {"p95_commit_to_confirmation_s": LATENCY_TARGET_S, "memory_per_process_mib": MEMORY_TARGET_MIB},
            "workers": args.workers,
            "concurrency": args.concurrency or f"Procfile ({procfile_concurrency()})",
            "experiment": experiments(args),
            "runs": results,
            "written_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        args.results.write_text(json.dumps(figures, indent=2, default=str) + "\n")
        say(f"figures written to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
