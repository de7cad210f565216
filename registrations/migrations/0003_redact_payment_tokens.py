"""Take the payment token out of the stored registration.created events (version 1 carried it).

Outbox rows and dead letters written before version 2 hold the token in their envelope, and a dead
letter also in its raw body and in Celery's `argsrepr` header. The token of a registration that is
still pending moves to its PaymentToken row first, so that a row not yet relayed (or a dead letter
replayed later) can still be charged: the charge handler falls back to that row.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import migrations

REDACTED = "[redacted]"
# The key and its string value, in JSON ("payment_token": "x") or in a Python repr ('payment_token': 'x').
_TOKEN_TEXT = re.compile(r"""(["']payment_token["']\s*:\s*)(["'])((?:\\.|(?!\2).)*)\2""")


def _redact_text(text: str) -> str:
    return _TOKEN_TEXT.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}{m.group(2)}", text)


def _redact(value: Any, found: list[str]) -> Any:
    """`value` with every payment_token key dropped (dicts) or its value masked (text); tokens seen go to `found`."""
    if isinstance(value, dict):
        if isinstance(value.get("payment_token"), str) and value["payment_token"]:
            found.append(value["payment_token"])
        return {k: _redact(v, found) for k, v in value.items() if k != "payment_token"}
    if isinstance(value, list):
        return [_redact(v, found) for v in value]
    if isinstance(value, str) and "payment_token" in value:
        return _redact_text(value)
    return value


def redact_payment_tokens(apps: Any, schema_editor: Any) -> None:
    OutboxMessage = apps.get_model("mice", "OutboxMessage")
    DeadLetter = apps.get_model("mice", "DeadLetter")
    Registration = apps.get_model("registrations", "Registration")
    PaymentToken = apps.get_model("registrations", "PaymentToken")

    def keep_for_charge(registration_id: Any, tokens: list[str]) -> None:
        if not tokens or not registration_id:
            return
        pending = Registration.objects.filter(pk=registration_id, status="pending").first()
        if pending is not None:
            PaymentToken.objects.get_or_create(registration=pending, defaults={"token": tokens[0]})

    rows = OutboxMessage.objects.filter(event_type="registration.created", envelope__data__has_key="payment_token")
    for row in rows.iterator(chunk_size=500):
        found: list[str] = []
        row.envelope = _redact(row.envelope, found)
        keep_for_charge((row.envelope.get("data") or {}).get("registration_id"), found)
        row.save(update_fields=["envelope"])

    for dead in DeadLetter.objects.filter(event_type="registration.created").iterator(chunk_size=500):
        found = []
        body, headers = _redact(dead.body, found), _redact(dead.headers, found)
        raw_body = _redact_text(dead.raw_body)
        if (body, headers, raw_body) == (dead.body, dead.headers, dead.raw_body):
            continue
        try:
            registration_id = body[0][0]["data"]["registration_id"]
        except (KeyError, IndexError, TypeError):
            registration_id = None
        keep_for_charge(registration_id, found)
        dead.body, dead.headers, dead.raw_body = body, headers, raw_body
        dead.save(update_fields=["body", "headers", "raw_body"])


class Migration(migrations.Migration):
    dependencies = [
        ("mice", "0002_outbox_notify_trigger"),
        ("registrations", "0002_payment_token"),
    ]

    operations = [migrations.RunPython(redact_payment_tokens, migrations.RunPython.noop, elidable=True)]
