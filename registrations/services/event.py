"""Event operations for organizers: creating and changing the MICE events people register for."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, TypedDict, Unpack

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from registrations.models import DEFAULT_PAYMENT_DEADLINE_SECONDS, Event


class EventChanges(TypedDict, total=False):
    """What an organizer may change on an event; `seats_taken` is not in it (only registrations move it)."""

    slug: str
    name: str
    venue: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    capacity: int
    price: Decimal
    currency: str
    vat_rate: Decimal
    registration_opens_at: dt.datetime
    registration_closes_at: dt.datetime
    payment_deadline_seconds: int


EDITABLE_FIELDS = frozenset(EventChanges.__annotations__)


def event_create(
    *,
    slug: str,
    name: str,
    venue: str,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    capacity: int,
    price: Decimal,
    currency: str,
    vat_rate: Decimal | None = None,
    registration_opens_at: dt.datetime | None = None,
    registration_closes_at: dt.datetime | None = None,
    payment_deadline_seconds: int = DEFAULT_PAYMENT_DEADLINE_SECONDS,
) -> Event:
    """Create an event; registration opens now and closes when the event starts unless told otherwise.

    Raises django.core.exceptions.ValidationError, keyed by field, for anything the database would refuse
    or that makes no sense (an event ending before it starts, registration closing after it ends).
    """
    event = _event_build(
        slug=slug,
        name=name,
        venue=venue,
        starts_at=starts_at,
        ends_at=ends_at,
        capacity=capacity,
        price=price,
        currency=currency,
        vat_rate=vat_rate,
        registration_opens_at=registration_opens_at,
        registration_closes_at=registration_closes_at,
        payment_deadline_seconds=payment_deadline_seconds,
    )
    with transaction.atomic():
        _event_validate(event)
        _event_save(event, create=True)
    return event


def event_update(*, event: Event, **fields: Unpack[EventChanges]) -> Event:
    """Change some of an event's fields; the capacity never drops below the seats already taken.

    The event row is locked (the same lock registration takes), so a registration cannot slip in between
    the capacity check and the save. Only the fields given are written: `seats_taken` never is, so a
    caller holding a stale copy of the event cannot write its stale count back.
    """
    _check_editable(fields)
    with transaction.atomic():
        locked = Event.objects.select_for_update().get(pk=event.pk)
        for name, value in fields.items():
            setattr(locked, name, value)
        _event_validate(locked)
        _event_save(locked, update_fields=[*fields, "updated_at"])
    return locked


def event_validate(*, event: Event | None, **fields: Unpack[EventChanges]) -> None:
    """Raise the ValidationError (keyed by field) that event_create (`event` None) or event_update would raise.

    For a form, which must report errors before it saves. Checking a change locks the event row: called
    inside the transaction that then calls event_update (admin's change view runs in one), no
    registration can take a seat between the check and the save, so the save cannot be refused.
    """
    _check_editable(fields)
    if event is None:
        _event_validate(_event_build(**fields))
        return
    with transaction.atomic():
        locked = Event.objects.select_for_update().get(pk=event.pk)
        for name, value in fields.items():
            setattr(locked, name, value)
        _event_validate(locked)


def _check_editable(fields: EventChanges) -> None:
    unknown = set(fields) - EDITABLE_FIELDS
    if unknown:
        raise TypeError(f"cannot change {', '.join(sorted(unknown))} of an event")


def _event_build(
    *,
    vat_rate: Decimal | None = None,
    registration_opens_at: dt.datetime | None = None,
    registration_closes_at: dt.datetime | None = None,
    **fields: Any,
) -> Event:
    """An unsaved event with event_create's defaults filled in."""
    return Event(
        **fields,
        vat_rate=Decimal(settings.DEFAULT_VAT_RATE) if vat_rate is None else vat_rate,
        registration_opens_at=timezone.now() if registration_opens_at is None else registration_opens_at,
        registration_closes_at=fields["starts_at"] if registration_closes_at is None else registration_closes_at,
    )


def _event_validate(event: Event) -> None:
    """Field rules (via full_clean) and the cross-field rules, all reported at once, keyed by field."""
    errors: dict[str, list[Any]] = {}
    try:
        # The table's check constraints are checked below with field-keyed messages instead.
        event.full_clean(validate_constraints=False)
    except ValidationError as exc:
        errors = {field: list(messages) for field, messages in exc.message_dict.items()}

    def refuse(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if _both(event.starts_at, event.ends_at) and event.ends_at < event.starts_at:
        refuse("ends_at", "The event cannot end before it starts.")
    if _both(event.registration_closes_at, event.ends_at) and event.registration_closes_at > event.ends_at:
        refuse("registration_closes_at", "Registration cannot close after the event has ended.")
    if (
        _both(event.registration_opens_at, event.registration_closes_at)
        and event.registration_opens_at > event.registration_closes_at
    ):
        refuse("registration_closes_at", "Registration cannot close before it opens.")
    if isinstance(event.capacity, int) and event.capacity < event.seats_taken:
        refuse("capacity", f"The capacity cannot be below the {event.seats_taken} seats already taken.")
    if errors:
        raise ValidationError(errors)


def _both(a: object, b: object) -> bool:
    return a is not None and b is not None


def _event_save(event: Event, *, create: bool = False, update_fields: list[str] | None = None) -> None:
    """Save, turning a slug taken by a concurrent request (after full_clean's check) into a field error."""
    try:
        with transaction.atomic():
            if create:
                event.save(force_insert=True)
            else:
                event.save(update_fields=update_fields)
    except IntegrityError:
        if Event.objects.filter(slug=event.slug).exclude(pk=event.pk).exists():
            raise ValidationError({"slug": ["Event with this Slug already exists."]}) from None
        raise
