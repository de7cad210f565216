"""The saga's payment side, and the invoices and credit notes that follow it."""

from invoicing.gateways import GatewayUnavailable
from invoicing.issuing import credit_note_issue, credit_note_pdf_store, invoice_issue, invoice_pdf_store
from invoicing.services import ChargeInFlight, charge_create, refund_create
from mice.consumers import RetryPolicy, subscribe
from mice.events import Event


# Both call the gateway, so both commit their own steps (atomic=False): the attempt before the call, the
# outcome after it.
@subscribe(
    "registration.created",
    retry=RetryPolicy(transient=(GatewayUnavailable,), attempts=8, backoff=1.0, cap=60.0),
    atomic=False,
)
def charge_registration(event: Event) -> None:
    charge_create(registration=event.data)


@subscribe(
    "registration.cancelled",
    retry=RetryPolicy(transient=(GatewayUnavailable, ChargeInFlight), attempts=10, backoff=1.0, cap=300.0),
    atomic=False,
)
def refund_cancelled_registration(event: Event) -> None:
    """Learns of cancellations only through this event: refund a charge made, void one still to come."""
    refund_create(cancelled=event.data)


@subscribe("payment.succeeded")
def issue_invoice(event: Event) -> None:
    """Numbered in this transaction: a rollback (or a retry) gives the number back, so the series stays gapless."""
    invoice_issue(paid=event.data)


@subscribe("payment.refunded")
def issue_credit_note(event: Event) -> None:
    """Cancels the invoice of a refunded charge; if payment.succeeded is still to come, invoice_issue does it."""
    credit_note_issue(refunded=event.data)


@subscribe("invoice.issued")
def render_invoice_pdf(event: Event) -> None:
    """Renders and stores the PDF ahead of the first download or e-mail (which would otherwise render it)."""
    invoice_pdf_store(invoice_id=int(event.data["invoice_id"]))


@subscribe("credit_note.issued")
def render_credit_note_pdf(event: Event) -> None:
    credit_note_pdf_store(credit_note_id=int(event.data["credit_note_id"]))
