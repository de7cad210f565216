"""Read-only queries other code (and other apps) may use."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet
from django.utils import timezone

from registrations.models import Event, Registration


def event_list_upcoming() -> QuerySet[Event]:
    return Event.objects.filter(ends_at__gte=timezone.now()).order_by("starts_at")


def event_get(*, slug: str) -> Event | None:
    return Event.objects.filter(slug=slug).first()


def registration_get(*, registration_id: uuid.UUID | str) -> Registration | None:
    try:
        parsed = uuid.UUID(str(registration_id))
    except ValueError:
        return None
    return Registration.objects.select_related("event").filter(id=parsed).first()
