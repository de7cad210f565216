"""Fixtures: event payloads as the producers build them, and a real SMTP server in a thread."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.notifications import smtp_sink
from tests.processes import free_port

EVENT = {"slug": "pycon-2027", "name": "PyCon 2027", "venue": "Lisbon", "starts_at": "2027-05-01T09:00:00+00:00"}


def attendee(**overrides: str) -> dict[str, str]:
    return {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", "company": "", **overrides}


def created(*, amount: str = "120.00", **attendee_fields: str) -> dict[str, Any]:
    return {
        "registration_id": str(uuid.uuid4()),
        "status": "pending" if amount != "0.00" else "confirmed",
        "event": EVENT,
        "attendee": attendee(**attendee_fields),
        "amount": amount,
        "currency": "EUR",
        "vat_rate": "20.00",
    }


class SmtpServer:
    def __init__(self, port: int, out: Path) -> None:
        self.port = port
        self.out = out

    def received(self) -> list[dict[str, Any]]:
        return smtp_sink.received(self.out)


@pytest.fixture
def smtp_server(tmp_path: Path, settings: Any) -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) in a thread, and Django's SMTP backend pointed at it."""
    port = free_port()
    out = tmp_path / "smtp.jsonl"
    controller = smtp_sink.start(port, out)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.EMAIL_TIMEOUT = 5
    yield SmtpServer(port, out)
    controller.stop()
