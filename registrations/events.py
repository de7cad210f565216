"""Event types produced by registrations."""

from mice.events import event_type

_ATTENDEE = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", "company": "Analytical Engines"}
_EVENT = {"slug": "pycon-2027", "name": "PyCon 2027", "venue": "Lisbon", "starts_at": "2027-05-01T09:00:00+00:00"}

REGISTRATION_CREATED = event_type(
    "registration.created",
    version=2,
    producer="registrations",
    secret_fields=("payment_token",),  # version 1 carried it: never kept in a dead letter
    doc=(
        "An attendee registered and holds a seat; status pending, or confirmed at once for a free event. "
        "Carries what payment needs: amount (VAT included), currency and VAT rate. Version 2 dropped the "
        "payment token (version 1 carried it to every handler): the charge handler reads it through "
        "registrations.selectors.payment_token_get, and it is deleted once the charge is decided."
    ),
    example={
        "registration_id": "6f2b0a5e-1111-4a4a-9b9b-222233334444",
        "status": "pending",
        "event": _EVENT,
        "attendee": _ATTENDEE,
        "amount": "120.00",
        "currency": "EUR",
        "vat_rate": "20.00",
    },
)
REGISTRATION_CONFIRMED = event_type(
    "registration.confirmed",
    version=1,
    producer="registrations",
    doc="The registration is confirmed: paid, or free.",
    example={"registration_id": "6f2b0a5e-1111-4a4a-9b9b-222233334444", "event": _EVENT, "attendee": _ATTENDEE},
)
REGISTRATION_CANCELLED = event_type(
    "registration.cancelled",
    version=1,
    producer="registrations",
    doc="The registration is cancelled and its seat given back; `reason` says why (e.g. payment_failed:card_declined).",
    example={
        "registration_id": "6f2b0a5e-1111-4a4a-9b9b-222233334444",
        "event": _EVENT,
        "attendee": _ATTENDEE,
        "reason": "payment_failed:card_declined",
        "was_confirmed": False,
    },
)
REGISTRATION_PAYMENT_DEADLINE_REACHED = event_type(
    "registration.payment_deadline_reached",
    version=1,
    producer="registrations",
    doc=(
        "The saga's timeout: emitted with the registration, held in the outbox until `payment_due_at` "
        "(the event's payment deadline after registering), then delivered to registrations, which cancels "
        "the registration (reason payment_deadline_passed) if it is still pending and its charge has not "
        "succeeded. Its `time` is when it was emitted, not when it was delivered."
    ),
    example={"registration_id": "6f2b0a5e-1111-4a4a-9b9b-222233334444", "payment_due_at": "2027-01-10T10:30:00+00:00"},
)
