"""Test data: events with sensible defaults."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from typing import Any

from django.utils import timezone

from registrations.models import Event

_numbers = itertools.count(1)


def make_event(**overrides: Any) -> Event:
    n = next(_numbers)
    now = timezone.now()
    fields: dict[str, Any] = {
        "slug": f"conf-{n}",
        "name": f"Conference {n}",
        "venue": "Lisbon Congress Centre",
        "starts_at": now + dt.timedelta(days=30),
        "ends_at": now + dt.timedelta(days=32),
        "capacity": 100,
        "price": Decimal("120.00"),
        "currency": "EUR",
        "vat_rate": Decimal("20.00"),
        "registration_opens_at": now - dt.timedelta(days=1),
        "registration_closes_at": now + dt.timedelta(days=29),
    }
    fields.update(overrides)
    return Event.objects.create(**fields)
