"""E-mails to attendees, one per registration and kind, sent as the saga's events arrive."""

from invoicing.selectors import charge_succeeded, invoice_download_url, invoice_pdf_get
from mice.events import Envelope
from mice.handlers import RetryPolicy, subscribe
from notifications.emails import Attachment, cancelled_draft, confirmed_draft, received_draft
from notifications.failures import EmailUnavailable
from notifications.services import email_send

# Rides out a mail server or ESP outage of more than 10 minutes: delays 2, 4, 8 ... 64 s, then 120 s five
# times (726 s in all), held by RabbitMQ; then the message is dead-lettered, to be replayed from admin.
OUTAGE = RetryPolicy(transient=(EmailUnavailable,), attempts=12, backoff=2.0, cap=120.0)

# atomic=False: an SMTP call cannot roll back, so email_send commits its own steps (the row before the
# call, the outcome after); the row, not the inbox, is what keeps a second delivery from mailing twice.


@subscribe("registration.created", retry=OUTAGE, atomic=False)
def send_registration_received(envelope: Envelope) -> None:
    email_send(draft=received_draft(envelope.data, event_type=envelope.type))


@subscribe("registration.confirmed", retry=OUTAGE, atomic=False)
def send_free_registration_confirmed(envelope: Envelope) -> None:
    """Free events only: a paid registration's confirmation waits for its invoice (invoice.issued).

    Paid means "its charge succeeded" (committed before registration.confirmed was emitted), rather
    than the event's price today, which staff may have changed since the attendee registered.
    """
    if charge_succeeded(registration_id=envelope.data["registration_id"]):
        return
    email_send(draft=confirmed_draft(envelope.data, event_type=envelope.type))


@subscribe("invoice.issued", retry=OUTAGE, atomic=False)
def send_paid_registration_confirmed(envelope: Envelope) -> None:
    """The confirmation of a paid registration, with its invoice attached and a signed link to it."""
    data = envelope.data
    document = invoice_pdf_get(invoice_id=int(data["invoice_id"]))
    if document is None:
        raise LookupError(f"invoice {data['invoice_id']} announced by invoice.issued does not exist")
    invoice = {
        "number": data.get("number", ""),
        "issued_on": data.get("issued_on", ""),
        "gross": data.get("gross", ""),
        "currency": data.get("currency", ""),
        "url": invoice_download_url(invoice_id=int(data["invoice_id"])),
    }
    pdf = Attachment(filename=document.filename, content=document.content, content_type=document.content_type)
    email_send(draft=confirmed_draft(data, event_type=envelope.type, invoice=invoice, pdf=pdf))


@subscribe("registration.cancelled", retry=OUTAGE, atomic=False)
def send_registration_cancelled(envelope: Envelope) -> None:
    # Refund words only for what was paid (a free registration can be confirmed too): a succeeded charge of a
    # cancelled registration is refunded by invoicing, whether it succeeded before or after the cancellation.
    refunded = charge_succeeded(registration_id=envelope.data["registration_id"])
    email_send(draft=cancelled_draft(envelope.data, event_type=envelope.type, refunded=refunded))
