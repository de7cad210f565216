"""Registrations' services, the only code that writes its tables: registering (registration.py) and the events
people register for (event.py). Import them from here."""

from registrations.services.event import EDITABLE_FIELDS, EventChanges, event_create, event_update, event_validate
from registrations.services.registration import (
    RegistrationRefused,
    registration_cancel,
    registration_confirm,
    registration_create,
    registration_expire,
    registration_schedule_payment_deadline,
    registrations_expire_overdue,
    registrations_schedule_missing_deadlines,
)

__all__ = [
    "EDITABLE_FIELDS",
    "EventChanges",
    "RegistrationRefused",
    "event_create",
    "event_update",
    "event_validate",
    "registration_cancel",
    "registration_confirm",
    "registration_create",
    "registration_expire",
    "registration_schedule_payment_deadline",
    "registrations_expire_overdue",
    "registrations_schedule_missing_deadlines",
]
