"""Event payloads: pure functions of a registration, returning JSON-ready dicts of ids and values."""

from __future__ import annotations

from typing import Any

from registrations.models import Event, Registration


def event_summary(event: Event) -> dict[str, Any]:
    return {"slug": event.slug, "name": event.name, "venue": event.venue, "starts_at": event.starts_at.isoformat()}


def attendee(registration: Registration) -> dict[str, Any]:
    return {
        "first_name": registration.first_name,
        "last_name": registration.last_name,
        "email": registration.email,
        "company": registration.company,
    }


def registration_created(registration: Registration) -> dict[str, Any]:
    """No payment token: every handler gets this; the charge handler reads the token through a selector."""
    event = registration.event
    return {
        "registration_id": str(registration.id),
        "status": registration.status,
        "event": event_summary(event),
        "attendee": attendee(registration),
        "amount": f"{event.price:.2f}",
        "currency": event.currency,
        "vat_rate": f"{event.vat_rate:.2f}",
    }


def registration_confirmed(registration: Registration) -> dict[str, Any]:
    return {
        "registration_id": str(registration.id),
        "event": event_summary(registration.event),
        "attendee": attendee(registration),
    }


def registration_cancelled(registration: Registration, *, was_confirmed: bool) -> dict[str, Any]:
    return {
        "registration_id": str(registration.id),
        "event": event_summary(registration.event),
        "attendee": attendee(registration),
        "reason": registration.cancellation_reason,
        "was_confirmed": was_confirmed,
    }


def registration_payment_deadline_reached(registration: Registration) -> dict[str, Any]:
    due = registration.payment_due_at
    return {"registration_id": str(registration.id), "payment_due_at": due.isoformat() if due else None}
