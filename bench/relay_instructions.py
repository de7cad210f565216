"""Benchmark: the relay's own CPU work per message, counted in instructions (repeatable on a noisy machine).

Run from the project root:
  .venv/bin/python bench/relay_instructions.py            (runs itself twice under valgrind's callgrind)

Wall-clock rates on this shared machine move by 2x from one minute to the next; an instruction count does not.
This times, per message, the Python work the relay does between the claim statement and the broker's socket:
building the Celery task message from a claimed row (mice.relay.Relay._publish -> mice.task_messages), py-amqp
encoding its method, header and body frames (written to a sink instead of a socket), and settling the confirms
(mice.publisher.ConfirmingPublisher, acks delivered with multiple=True every `--ack-every` messages, as the
broker sends them). No database, no broker: the rows are made up as the claim statement returns them.

It runs the same work for N and for 2N rows under callgrind and prints (I(2N) - I(N)) / N: the start-up
(interpreter, Django, imports) cancels out.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HANDLER = "tests.probe.slow"


class _SinkTransport:
    """Where py-amqp's frame writer writes: a socket that takes every byte, and answers each send with the
    acks the broker would send for what it carried (multiple=True up to the last tag)."""

    def __init__(self) -> None:
        self.sent = 0
        self.publisher: Any = None

    def write(self, data: Any) -> None:
        self.sent += len(data)
        if self.publisher is not None and self.publisher._pending:
            self.publisher._on_ack(self.publisher._tag, True)


class _OfflineAmqpConnection:
    """What the publisher and py-amqp's frame writer use of py-amqp's connection, with no broker behind it.
    `sock` is one end of a socket pair nobody writes to: select() finds nothing to read, as between confirms."""

    frame_max = 131072
    bytes_sent = 0

    def __init__(self, transport: _SinkTransport) -> None:
        self.transport = transport
        self.sock, self._other_end = socket.socketpair()


class _OfflineConnection:
    """kombu's Connection as the publisher uses it: drain_events() delivers the acks still due."""

    def __init__(self, publisher: Any) -> None:
        self.transport = _SinkTransport()
        self.connection = _OfflineAmqpConnection(self.transport)
        self.publisher = publisher

    def drain_events(self, timeout: float | None = None) -> None:
        if self.publisher._pending:
            self.publisher._on_ack(self.publisher._tag, True)

    def heartbeat_check(self) -> None:
        return None


class _OfflineChannel:
    """py-amqp's Channel.basic_publish as it runs for a confirm-mode channel, minus the socket and the non-blocking
    read before each message (system calls, counted apart: see --help). For a publisher that calls it; one that
    writes frames itself only uses `channel_id`."""

    channel_id = 1

    def __init__(self, connection: _OfflineConnection, ack_every: int) -> None:
        from amqp import spec
        from amqp.method_framing import frame_writer
        from amqp.serialization import dumps

        self.connection = connection
        self.ack_every = ack_every
        self.published = 0
        self._dumps = dumps
        self._sig = spec.Basic.Publish
        self._write = frame_writer(connection.connection, _SinkTransport())
        self._sink = connection.transport

    def basic_publish(self, msg: Any, exchange: str = "", routing_key: str = "", mandatory: bool = False) -> None:
        args = self._dumps("Bssbb", (0, exchange, routing_key, mandatory, False))
        self._write(1, 1, self._sig, args, msg)
        self._sink.sent += len(args) + len(msg.body) + 60
        self.published += 1
        if self.published % self.ack_every == 0:
            self.connection.drain_events(0)


def claimed_rows(n: int) -> list[Any]:
    """Rows as mice.outbox_claims.outbox_rows_claim returns them (the envelope as JSON text), made cheaply
    (one real envelope, its id varied) so that making them adds little to the count per message."""
    from bench import probe_events

    envelope = probe_events.outbox_rows(0, 1)[0].envelope
    template = json.dumps({**envelope, "id": "{id}"})
    rows = []
    for i in range(1, n + 1):
        event_id = str(uuid.UUID(int=i))
        rows.append((i, probe_events.PROBE_TYPE, event_id, template.replace("{id}", str(event_id)), [HANDLER]))
    return rows


def work(n: int, batch: int, ack_every: int) -> int:
    """Publish n made-up claimed rows through Relay._publish in batches; returns the bytes written."""
    from mice.relay import Relay, RelayConfig

    relay = Relay(broker_url="amqp://offline//", config=RelayConfig(batch_size=batch), origin="instructions")
    publisher: Any = relay.publisher
    connection = _OfflineConnection(publisher)
    connection.transport.publisher = publisher
    publisher.connection = connection
    publisher._channel = _OfflineChannel(connection, ack_every)
    rows = claimed_rows(n)
    for start in range(0, n, batch):
        _, held_back = relay._publish(rows[start : start + batch])
        if held_back:
            raise RuntimeError(f"held back offline: {held_back}")
    return connection.transport.sent


def callgrind(n: int, args: argparse.Namespace) -> int:
    """Instructions executed by `work(n)` in a fresh interpreter, start-up included."""
    with tempfile.TemporaryDirectory(prefix="mice-callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--inner",
            str(n),
            "--batch",
            str(args.batch),
            "--ack-every",
            str(args.ack_every),
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if done.returncode:
            raise RuntimeError(f"callgrind run failed:\n{done.stderr[-3000:]}")
        found = re.search(r"Collected\s*:\s*(\d+)", done.stderr)
        if not found:
            raise RuntimeError(f"no instruction count in callgrind's output:\n{done.stderr[-3000:]}")
        return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000, help="N: rows in the smaller run (the other has 2N)")
    parser.add_argument("--batch", type=int, default=500, help="relay batch size")
    parser.add_argument("--ack-every", type=int, default=50, help="messages per multiple=True ack")
    parser.add_argument("--inner", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    os.environ.setdefault("DATABASE_URL", "sqlite:///:memory:")
    import django

    django.setup()
    if args.inner:
        work(args.inner, args.batch, args.ack_every)
        return 0
    if not shutil.which("valgrind"):
        print("valgrind is not installed (apt-get install valgrind)")
        return 1
    n = args.rows
    sent = work(n, args.batch, args.ack_every)
    small, large = callgrind(n, args), callgrind(2 * n, args)
    print(
        f"relay CPU work per message (build the task message, encode its frames, settle its confirm), "
        f"batch {args.batch}, an ack every {args.ack_every}: {(large - small) / n:,.0f} instructions "
        f"(callgrind: {small:,} for {n:,} rows, {large:,} for {2 * n:,}); {sent / n:.0f} bytes on the wire per message"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
