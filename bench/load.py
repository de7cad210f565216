"""Closed-loop load: N client threads, each one request after another, and what each saw (times, errors)."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.cpu import CpuProbe
from bench.registering import attendee

Client = Callable[[int, threading.Event, "Outcome"], None]  # (client index, stop, what it saw)


@dataclass
class Outcome:
    """What one client thread saw: (completion time, latency s) per success; per error (completion time,
    latency s, status or exception name, body). An error's latency is the time it took to fail: a client
    timeout counts at its timeout, so a server that hangs shows in the latencies instead of stalling the run."""

    ok: list[tuple[float, float]] = field(default_factory=list)
    errors: list[tuple[float, float, str, str]] = field(default_factory=list)


def drive(
    client: Client, clients: int, warmup: float, duration: float, probe: CpuProbe
) -> tuple[list[Outcome], float, float, dict[str, float]]:
    """Run `clients` threads of `client` for warmup + duration s; their outcomes, the window, the CPU used in it."""
    stop = threading.Event()
    outcomes = [Outcome() for _ in range(clients)]
    threads = [
        threading.Thread(target=client, args=(i, stop, outcomes[i]), name=f"client-{i}", daemon=True)
        for i in range(clients)
    ]
    for t in threads:
        t.start()
    try:
        time.sleep(warmup)  # by its end every connection (and its PostgreSQL backend) exists
        probe.begin()
        t0 = time.perf_counter()
        time.sleep(duration)
        t1 = time.perf_counter()
        used = probe.end()
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    return outcomes, t0, t1, used


def http_client(
    port: int, slugs: list[str], tag: str, *, path: str = "/api/registrations/", timeout: float = 60.0
) -> Client:
    """Clients that POST one registration after another to `path` over one keep-alive connection each (a new
    one after an error), a unique e-mail address per request, round-robin over `slugs`; only a 202 counts."""

    def client(index: int, stop: threading.Event, outcome: Outcome) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        n = 0
        while not stop.is_set():
            n += 1
            body = json.dumps(attendee(slugs[(index + n) % len(slugs)], f"{tag}.{index}.{n}@bench.example.com"))
            started = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException) as exc:
                ended = time.perf_counter()
                outcome.errors.append((ended, ended - started, type(exc).__name__, str(exc)))
                conn.close()
                time.sleep(0.01)
                continue
            ended = time.perf_counter()
            if response.status == 202:
                outcome.ok.append((ended, ended - started))
            else:
                outcome.errors.append((ended, ended - started, str(response.status), answer.decode(errors="replace")))
        conn.close()

    return client
