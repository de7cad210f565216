"""Read-only queries other code (and other apps) may use."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet
from django.utils import timezone

from registrations.models import Event, PaymentToken, Registration


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


def payment_token_get(*, registration_id: uuid.UUID | str) -> str | None:
    """The token to charge a pending registration with; None once the charge is decided or it was cancelled.

    For the charge handler only: no event carries the token, so that no other handler ever sees it.
    """
    return PaymentToken.objects.filter(registration_id=registration_id).values_list("token", flat=True).first()


def registration_status_get(*, registration_id: uuid.UUID | str) -> str | None:
    """The registration's status ("pending", "confirmed", "cancelled"), committed; None if there is none.

    The charge handler asks before charging: a registration already cancelled is not charged.
    """
    return Registration.objects.filter(id=registration_id).values_list("status", flat=True).first()
