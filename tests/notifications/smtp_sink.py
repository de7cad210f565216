"""A real SMTP server for tests (aiosmtpd): records every message it accepts as a JSON line in a file.

Recipients whose local part starts with `refused` get a permanent 550, `later` a temporary 451; a message
to `slow...` is accepted only after MICE_TEST_SMTP_SLOW seconds (time to kill the sender mid-send). With
MICE_TEST_SMTP_FAIL_RATE (0..1) that share of messages, at random, is refused with a temporary 451 at DATA:
an unreliable provider.
Run as a process (`python -m tests.notifications.smtp_sink PORT FILE`) so that a test can stop it and start
it again, or in a thread with `start()`.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


class Recorder:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.lock = threading.Lock()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        local = address.partition("@")[0]
        if local.startswith("refused"):
            return "550 5.1.1 <" + address + ">: mailbox unavailable"
        if local.startswith("later"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if random.random() < float(os.environ.get("MICE_TEST_SMTP_FAIL_RATE", "0")):
            return "451 4.3.0 temporarily unable to accept the message, try again later"
        if any(rcpt.startswith("slow") for rcpt in envelope.rcpt_tos):
            await asyncio.sleep(float(os.environ.get("MICE_TEST_SMTP_SLOW", "3")))
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        message = email.message_from_bytes(content, policy=email.policy.default)
        record: dict[str, Any] = {
            "accepted_at": time.time(),
            "rcpt_tos": list(envelope.rcpt_tos),
            "message_id": str(message.get("Message-ID", "")),
            "subject": str(message.get("Subject", "")),
            "to": str(message.get("To", "")),
            "cc": str(message.get("Cc", "")),
            "bcc": str(message.get("Bcc", "")),
            "header_names": list(message.keys()),
            "attachments": [part.get_filename() for part in message.iter_attachments()],
        }
        with self.lock, self.out.open("a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return "250 2.0.0 Message accepted for delivery"


def client_env(port: int) -> dict[str, str]:
    """The environment that points a process's Django SMTP backend at this server."""
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(port),
        "EMAIL_TIMEOUT": "5",
    }


def received(out: Path) -> list[dict[str, Any]]:
    """Every message the server accepted so far."""
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def start(port: int, out: Path) -> Controller:
    controller = Controller(Recorder(out), hostname="127.0.0.1", port=port)
    controller.start()
    return controller


def main() -> None:
    port, out = int(sys.argv[1]), Path(sys.argv[2])
    controller = start(port, out)
    print(f"smtp sink listening on 127.0.0.1:{port}", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    controller.stop()


if __name__ == "__main__":
    main()
