"""An SMTP server for benchmarks that accepts every message, each of its replies `delay` seconds late.

Run as its own process (`python -m bench.smtp_server PORT DELAY COUNT_FILE`), so that stopping it leaves
nothing listening on the port (the e-mail server down) and its work never competes with the benchmark's
clients for the GIL. It appends one line to COUNT_FILE per accepted message (no fsync: a count, not a
record; tests/notifications/smtp_sink.py records messages for tests).

A late reply is the whole reply: the last line of a multi-line one (EHLO's) waits, its continuation lines
do not. Django's SMTP backend waits for 7 replies per message (greeting, EHLO, MAIL, RCPT, DATA, the end of
the data, QUIT), so a 2 s delay makes one e-mail take about 14 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, AnyStr

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

ROOT = Path(__file__).resolve().parent.parent


class LateSMTP(SMTP):
    def __init__(self, handler: Any, *, delay: float, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.delay = delay

    async def push(self, status: AnyStr) -> None:
        text = status.decode() if isinstance(status, bytes) else status
        if self.delay > 0 and text[3:4] != "-":  # "250-PIPELINING" continues the reply; "250 HELP" ends it
            await asyncio.sleep(self.delay)
        await super().push(status)


class Counter:
    def __init__(self, out: Path) -> None:
        self.out = out

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.out.open("a") as f:
            f.write("1\n")
        return "250 2.0.0 Message accepted for delivery"


class LateController(Controller):
    def __init__(self, handler: Any, *, delay: float, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.delay = delay

    def factory(self) -> SMTP:
        return LateSMTP(self.handler, delay=self.delay, **self.SMTP_kwargs)


def accepted(out: Path) -> int:
    """Messages the server accepted so far."""
    try:
        return len(out.read_bytes().splitlines())
    except FileNotFoundError:
        return 0


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def smtp_server(port: int, delay: float, count_file: Path, log_dir: Path) -> Iterator[None]:
    """The server listening on 127.0.0.1:`port` (replies `delay` s late) until the block ends; then nothing is."""
    log = (log_dir / f"smtp-{port}.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.smtp_server", str(port), str(delay), str(count_file)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        # Only the port is checked: a greeting would take `delay` s.
        while not answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the SMTP server on port {port} did not start (see {log.name})")
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def main() -> None:
    port, delay, out = int(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3])
    # The controller's start-up check only waits for the connection to be taken, not for the late greeting.
    controller = LateController(Counter(out), delay=delay, hostname="127.0.0.1", port=port)
    controller.start()
    print(f"SMTP server on 127.0.0.1:{port}, replies {delay:g} s late", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    controller.stop()


if __name__ == "__main__":
    main()
