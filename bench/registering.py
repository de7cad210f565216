"""What the registration benchmarks share: production settings on the loopback, fresh events, one attendee."""

from __future__ import annotations

import itertools
import os
import secrets
from decimal import Decimal
from typing import Any

CAPACITY = 1_000_000  # room for everyone: no registration is refused for want of a seat
PRICE = Decimal("120.00")
BENCH_SECRET_KEY = secrets.token_urlsafe(50)

_event_batches = itertools.count(1)


def django_env(database_url: str) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url,
        "DATABASE_CONN_MAX_AGE": "60",
        "DEBUG": "0",  # DEBUG would also keep every query in memory
        # Production settings over plain http:// on the loopback.
        "SECRET_KEY": os.environ.get("SECRET_KEY") or BENCH_SECRET_KEY,
        "SECURE_SSL_REDIRECT": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        # Every request comes from 127.0.0.1: a limit it never reaches, so each registration still pays for
        # its rate-limit counter (one upsert, here always on the same row: the worst case) but is never refused.
        "MICE_RATE_LIMIT_REGISTRATIONS": "1000000000/1h",
    }


def attendee(event_slug: str, email: str) -> dict[str, Any]:
    """The form of one registration, as the API takes it and as registration_create takes it (as keywords)."""
    return {
        "event": event_slug,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": email,
        "company": "Analytical Engines Ltd",
        "payment_token": "tok_visa",
    }


def register(event_slug: str, email: str) -> None:
    """One registration_create call in this process, with the attendee's form."""
    from registrations.services import registration_create

    form = attendee(event_slug, email)
    registration_create(event_slug=form.pop("event"), **form)


def fresh_events(n: int) -> list[str]:
    """n new events with room for everyone, the registration and outbox tables emptied first; their slugs."""
    from django.db import connection

    from mice.models import OutboxMessage
    from registrations.models import Registration
    from tests.factories import make_event

    with connection.cursor() as cursor:
        cursor.execute(f'TRUNCATE "{Registration._meta.db_table}", "{OutboxMessage._meta.db_table}" CASCADE')
    batch = next(_event_batches)
    return [
        make_event(slug=f"bench-{batch}-{i}", capacity=CAPACITY, price=PRICE, currency="EUR").slug for i in range(n)
    ]


def registrations_committed(slugs: list[str]) -> int:
    from registrations.models import Event

    return sum(Event.objects.filter(slug__in=slugs).values_list("seats_taken", flat=True))


def bench_db_name() -> str:
    from django.conf import settings

    return str(settings.DATABASES["default"]["NAME"])
