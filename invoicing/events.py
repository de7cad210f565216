"""Event types produced by invoicing."""

from mice.events import event_type

PAYMENT_SUCCEEDED = event_type(
    "payment.succeeded",
    version=1,
    producer="invoicing",
    doc="The registration was charged. Carries the amounts and the attendee, for the invoice.",
    example={
        "registration_id": "6f2b0a5e-1111-4a4a-9b9b-222233334444",
        "charge_id": 1,
        "amount": "120.00",
        "currency": "EUR",
        "vat_rate": "20.00",
        "gateway": "sandbox",
        "gateway_reference": "ch_sandbox_0001",
        "event": {"slug": "pycon-2027", "name": "PyCon 2027"},
        "attendee": {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", "company": ""},
    },
)
PAYMENT_FAILED = event_type(
    "payment.failed",
    version=1,
    producer="invoicing",
    doc="The charge was declined (a business outcome, not retried). `reason` is the gateway's decline code.",
    example={
        "registration_id": "6f2b0a5e-1111-4a4a-9b9b-222233334444",
        "reason": "card_declined",
        "message": "Your card was declined.",
    },
)
PAYMENT_REFUNDED = event_type(
    "payment.refunded",
    version=1,
    producer="invoicing",
    doc=(
        "A successful charge was refunded because its registration was cancelled (before or after the "
        "charge succeeded: e.g. a charge that succeeded after the payment deadline cancelled it)."
    ),
    example={
        "registration_id": "6f2b0a5e-1111-4a4a-9b9b-222233334444",
        "charge_id": 1,
        "refund_id": 1,
        "amount": "120.00",
        "currency": "EUR",
        "gateway": "sandbox",
        "gateway_reference": "re_sandbox_0001",
        "reason": "payment_deadline_passed",
        "event": {"slug": "pycon-2027", "name": "PyCon 2027"},
    },
)
