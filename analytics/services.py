"""Updating per-event figures (each call runs once per event, guarded by the handler inbox)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import F

from analytics.models import EventFigures


def figures_add(*, event: dict[str, Any], currency: str = "", **deltas: int | Decimal) -> None:
    figures, _ = EventFigures.objects.get_or_create(
        event_slug=event["slug"], defaults={"event_name": event.get("name", "")}
    )
    changes: dict[str, Any] = {field: F(field) + delta for field, delta in deltas.items()}
    if currency and not figures.currency:
        changes["currency"] = currency
    EventFigures.objects.filter(pk=figures.pk).update(**changes)
