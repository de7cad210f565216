"""Invoices and credit notes end to end: the real relay, RabbitMQ, Celery workers, PostgreSQL and the sandbox."""

import io
import sqlite3

import pytest
from django.conf import settings
from pypdf import PdfReader

from invoicing.gateways import SandboxGateway
from invoicing.models import CreditNote, Invoice
from mice.models import InboxEntry, OutboxMessage
from registrations.models import Registration
from registrations.services import registration_cancel, registration_create
from tests.factories import make_event
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def running(system):
    system.worker(concurrency=2)
    system.relay()
    return system


def register(event, *, first_name="Zoë", last_name="Ødegård 李小龙", token="tok_visa"):
    return registration_create(
        event_slug=event.slug, first_name=first_name, last_name=last_name, email="zoe@example.com", payment_token=token
    )


def stored_pdf(model, **lookup):
    wait_until(lambda: bytes(model.objects.get(**lookup).pdf) != b"", timeout=60, what=f"{model.__name__} PDF stored")
    return bytes(model.objects.get(**lookup).pdf)


def test_a_paid_registration_ends_with_exactly_one_invoice_whose_pdf_names_the_attendee(running):
    # given a paid event
    event = make_event(name="PyCon 2027")

    # when someone registers with a card that works
    registration = register(event)

    # then one invoice is issued and announced, and its PDF (stored by its handler) holds name, number and gross
    wait_until(lambda: Invoice.objects.filter(registration_id=registration.pk).exists(), timeout=60, what="invoice")
    invoice = Invoice.objects.get(registration_id=registration.pk)
    pdf = stored_pdf(Invoice, pk=invoice.pk)
    text = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert "Zoë Ødegård 李小龙" in text
    assert invoice.number in text and "120.00 EUR" in text and "PyCon 2027" in text
    assert (invoice.net, invoice.vat, invoice.gross) == (100, 20, 120)
    wait_until(lambda: Registration.objects.get(pk=registration.pk).status == "confirmed", timeout=60)
    assert Invoice.objects.count() == 1
    (issued,) = OutboxMessage.objects.filter(correlation_id=str(registration.pk), event_type="invoice.issued")
    assert issued.envelope["data"]["number"] == invoice.number
    paid = OutboxMessage.objects.get(correlation_id=str(registration.pk), event_type="payment.succeeded")
    assert issued.envelope["causationid"] == str(paid.event_id)
    # and the PDF was rendered once, by the confirmation e-mail that attaches it, not also by a handler of its own
    wait_until(
        lambda: InboxEntry.objects.filter(event_id=issued.event_id).count() == 2, timeout=60, what="invoice.issued"
    )
    assert set(InboxEntry.objects.filter(event_id=issued.event_id).values_list("handler", flat=True)) == {
        "notifications.send_paid_registration_confirmed",
        "analytics.count_invoice",
    }


def test_a_declined_registration_gets_no_invoice(running):
    registration = register(make_event(), token="tok_chargeDeclined")

    wait_until(lambda: Registration.objects.get(pk=registration.pk).status == "cancelled", timeout=60)
    wait_until(
        lambda: InboxEntry.objects.filter(handler="invoicing.refund_cancelled_registration").exists(), timeout=60
    )
    assert not Invoice.objects.exists()


def test_a_refund_after_a_cancellation_makes_one_credit_note_even_when_the_cancellation_is_delivered_twice(running):
    # given a confirmed, invoiced registration
    registration = register(make_event(), first_name="Ada", last_name="Lovelace")
    wait_until(lambda: Registration.objects.get(pk=registration.pk).status == "confirmed", timeout=60)
    wait_until(lambda: Invoice.objects.filter(registration_id=registration.pk).exists(), timeout=60)
    invoice = Invoice.objects.get(registration_id=registration.pk)

    # when staff cancel it, and registration.cancelled is delivered a second time
    registration_cancel(registration_id=registration.pk, reason="cancelled_by_staff")
    correlation = str(registration.pk)
    wait_until(lambda: CreditNote.objects.filter(invoice=invoice).exists(), timeout=90, what="credit note")
    cancelled = OutboxMessage.objects.get(correlation_id=correlation, event_type="registration.cancelled")
    OutboxMessage.objects.filter(pk=cancelled.pk).update(sent_at=None)
    wait_until(
        lambda: (
            InboxEntry.objects.filter(event_id=cancelled.event_id).exists()
            and OutboxMessage.objects.get(pk=cancelled.pk).sent_at is not None
        ),
        timeout=60,
    )
    refunded = OutboxMessage.objects.get(correlation_id=correlation, event_type="payment.refunded")
    wait_until(
        lambda: InboxEntry.objects.filter(handler="invoicing.issue_credit_note", event_id=refunded.event_id).exists(),
        timeout=60,
    )

    # then one refund at the gateway and one credit note cancelling the invoice, its PDF stored
    credit_note = CreditNote.objects.get()
    assert credit_note.invoice == invoice and credit_note.gross == invoice.gross
    SandboxGateway()
    with sqlite3.connect(settings.SANDBOX_GATEWAY_PATH) as ledger:
        refunds = ledger.execute("SELECT * FROM ledger_refunds WHERE idempotency_key = ?", (f"refund-{correlation}",))
        assert len(refunds.fetchall()) == 1
    assert OutboxMessage.objects.filter(correlation_id=correlation, event_type="credit_note.issued").count() == 1
    text = PdfReader(io.BytesIO(stored_pdf(CreditNote, pk=credit_note.pk))).pages[0].extract_text()
    assert credit_note.number in text and invoice.number in text and "Ada Lovelace" in text


def test_a_flaky_charge_still_ends_with_exactly_one_invoice(running):
    registration = register(make_event(), token="tok_flaky")

    wait_until(lambda: Invoice.objects.filter(registration_id=registration.pk).exists(), timeout=90, what="invoice")
    wait_until(lambda: Registration.objects.get(pk=registration.pk).status == "confirmed", timeout=60)
    invoice = Invoice.objects.get(registration_id=registration.pk)
    pdf = stored_pdf(Invoice, pk=invoice.pk)
    assert invoice.number in PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert Invoice.objects.count() == 1
    assert OutboxMessage.objects.filter(correlation_id=str(registration.pk), event_type="invoice.issued").count() == 1
