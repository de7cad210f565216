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

_INVOICE_AMOUNTS = {"currency": "EUR", "net": "100.00", "vat_rate": "20.00", "vat": "20.00", "gross": "120.00"}

INVOICE_ISSUED = event_type(
    "invoice.issued",
    version=1,
    producer="invoicing",
    doc=(
        "An invoice was issued for a paid registration (its number is final). The PDF is fetched through "
        "invoicing.selectors.invoice_pdf_get, a link to it for the attendee through invoice_download_url."
    ),
    example={
        "registration_id": "6f2b0a5e-1111-4a4a-9b9b-222233334444",
        "invoice_id": 1,
        "number": "2027-000042",
        "issued_on": "2027-01-10",
        **_INVOICE_AMOUNTS,
        "event": {"slug": "pycon-2027", "name": "PyCon 2027"},
        "attendee": {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", "company": ""},
    },
)
CREDIT_NOTE_ISSUED = event_type(
    "credit_note.issued",
    version=1,
    producer="invoicing",
    doc="A credit note cancelled an invoice whose charge was refunded.",
    example={
        "registration_id": "6f2b0a5e-1111-4a4a-9b9b-222233334444",
        "credit_note_id": 1,
        "number": "CN-2027-000007",
        "invoice_number": "2027-000042",
        "issued_on": "2027-01-12",
        **_INVOICE_AMOUNTS,
        "event": {"slug": "pycon-2027", "name": "PyCon 2027"},
    },
)
