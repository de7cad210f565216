"""The saga's payment side, and the invoices and credit notes that follow it."""

from invoicing.gateways import GatewayUnavailable
from invoicing.issuing import credit_note_issue, credit_note_pdf_store, invoice_issue
from invoicing.services import ChargeInFlight, charge_create, refund_create
from mice.events import Envelope
from mice.handlers import RetryPolicy, retire, subscribe


# Both call the gateway, so both commit their own steps (atomic=False): the attempt before the call, the
# outcome after it.
@subscribe(
    "registration.created",
    retry=RetryPolicy(transient=(GatewayUnavailable,), attempts=8, backoff=1.0, cap=60.0),
    atomic=False,
)
def charge_registration(envelope: Envelope) -> None:
    charge_create(registration=envelope.data)


@subscribe(
    "registration.cancelled",
    retry=RetryPolicy(transient=(GatewayUnavailable, ChargeInFlight), attempts=10, backoff=1.0, cap=300.0),
    atomic=False,
)
def refund_cancelled_registration(envelope: Envelope) -> None:
    """Learns of cancellations only through this event: refund a charge made, void one still to come."""
    refund_create(cancelled=envelope.data)


@subscribe("payment.succeeded")
def issue_invoice(envelope: Envelope) -> None:
    """Numbered in this transaction: a rollback (or a retry) gives the number back, so the series stays gapless."""
    invoice_issue(paid=envelope.data)


@subscribe("payment.refunded")
def issue_credit_note(envelope: Envelope) -> None:
    """Cancels the invoice of a refunded charge; if payment.succeeded is still to come, invoice_issue does it."""
    credit_note_issue(refunded=envelope.data)


# The invoice's PDF is rendered once, by the confirmation e-mail that attaches it (invoice_pdf_get stores what
# it renders, ahead of the first download). A handler of its own rendered it a second time whenever the
# two ran at the same moment, which was most of the time, for about a sixth of the workers' CPU.
retire(
    "invoicing.render_invoice_pdf",
    reason="the confirmation e-mail (notifications.send_paid_registration_confirmed) renders and stores the PDF",
)


@subscribe("credit_note.issued")
def render_credit_note_pdf(envelope: Envelope) -> None:
    credit_note_pdf_store(credit_note_id=int(envelope.data["credit_note_id"]))
