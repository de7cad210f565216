"""Each registration's side effects, exactly once, through the real relay, RabbitMQ, workers and PostgreSQL.

The three services (invoicing, notifications, analytics) run as they do in production; e-mails go to
Django's file backend (one file per connection), which the tests read back as the attendee would.
"""

import email
import email.policy
import io
import re
from pathlib import Path

import pypdf
import pytest

from invoicing.gateways import SandboxGateway
from invoicing.models import CreditNote, Invoice, Refund
from mice.models import InboxEntry, OutboxMessage
from registrations.models import Registration
from registrations.services import registration_cancel, registration_create
from tests.factories import make_event
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

SEPARATOR = re.compile(rb"\n-{79}\n")


@pytest.fixture
def mailbox(system, tmp_path):
    """Where the workers' e-mails land; `messages()` parses every one sent so far."""
    folder = tmp_path / "mail"
    folder.mkdir()
    system.env["EMAIL_BACKEND"] = "django.core.mail.backends.filebased.EmailBackend"
    system.env["EMAIL_FILE_PATH"] = str(folder)
    return Mailbox(folder)


class Mailbox:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def messages(self, to: str | None = None) -> list[email.message.EmailMessage]:
        found = []
        for path in sorted(self.folder.glob("*.log")):
            for raw in SEPARATOR.split(path.read_bytes()):
                if raw.strip():
                    message = email.message_from_bytes(raw.strip(b"\n") + b"\n", policy=email.policy.default)
                    if to is None or to in str(message["To"]):
                        found.append(message)
        return found

    def subjects(self, to: str) -> list[str]:
        return sorted(kind_of(message) for message in self.messages(to))


def kind_of(message) -> str:
    subject = str(message["Subject"]).lower()
    for kind in ("received", "confirmed", "cancelled"):
        if f"registration {kind}" in subject:
            return kind
    return subject


@pytest.fixture
def running(system, mailbox):
    system.worker(concurrency=2)
    system.relay()
    return system


def register(event, token, email_address):
    return registration_create(
        event_slug=event.slug, first_name="Zoë", last_name="Ødegård", email=email_address, payment_token=token
    )


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(content)).pages)


def settled(mailbox, to, kinds, timeout=90):
    wait_until(lambda: mailbox.subjects(to) == sorted(kinds), timeout=timeout, what=f"e-mails {kinds} to {to}")
    return mailbox.messages(to)


def test_a_paid_registration_gets_one_invoice_and_a_received_and_a_confirmed_email_with_the_pdf(running, mailbox):
    registration = register(make_event(price="120.00", vat_rate="20.00"), "tok_visa", "zoe@example.com")

    messages = settled(mailbox, "zoe@example.com", ["received", "confirmed"])

    invoice = Invoice.objects.get(registration_id=registration.pk)
    (confirmed,) = [m for m in messages if kind_of(m) == "confirmed"]
    (attachment,) = [part for part in confirmed.iter_attachments() if part.get_content_type() == "application/pdf"]
    text = pdf_text(attachment.get_content())
    assert "Zoë Ødegård" in text
    assert invoice.number in text
    assert "120.00" in text and str(invoice.gross) == "120.00"
    assert Registration.objects.get(pk=registration.pk).status == "confirmed"
    assert Invoice.objects.count() == 1


def test_a_declined_registration_gets_no_invoice_and_one_cancelled_email(running, mailbox):
    registration = register(make_event(), "tok_chargeDeclined", "dee@example.com")

    messages = settled(mailbox, "dee@example.com", ["received", "cancelled"])

    (cancelled,) = [m for m in messages if kind_of(m) == "cancelled"]
    assert "declined" in cancelled.get_body(("plain",)).get_content().lower()
    assert not Invoice.objects.filter(registration_id=registration.pk).exists()
    assert Registration.objects.get(pk=registration.pk).status == "cancelled"


def test_a_flaky_charge_still_gives_one_invoice_and_one_confirmed_email_with_the_pdf(running, mailbox):
    registration = register(make_event(), "tok_flaky", "flo@example.com")

    messages = settled(mailbox, "flo@example.com", ["received", "confirmed"])

    assert Invoice.objects.filter(registration_id=registration.pk).count() == 1
    (confirmed,) = [m for m in messages if kind_of(m) == "confirmed"]
    assert [part.get_content_type() for part in confirmed.iter_attachments()] == ["application/pdf"]
    assert len(SandboxGateway().charges_made(idempotency_key=str(registration.pk))) == 1


def test_a_cancellation_delivered_twice_refunds_once_and_issues_one_credit_note(running, mailbox):
    registration = register(make_event(), "tok_visa", "cal@example.com")
    settled(mailbox, "cal@example.com", ["received", "confirmed"])
    invoice = Invoice.objects.get(registration_id=registration.pk)

    # when the attendee cancels, and the cancellation is delivered a second time
    registration_cancel(registration_id=registration.pk, reason="cancelled_by_attendee")
    wait_until(lambda: CreditNote.objects.filter(invoice=invoice).exists(), timeout=60, what="the credit note")
    cancelled = OutboxMessage.objects.get(correlation_id=str(registration.pk), event_type="registration.cancelled")
    OutboxMessage.objects.filter(pk=cancelled.pk).update(sent_at=None)
    wait_until(lambda: OutboxMessage.objects.get(pk=cancelled.pk).sent_at is not None, what="the second delivery")
    skipped = re.compile(
        rf"event_id={cancelled.event_id} .*handler=invoicing.refund_cancelled_registration .*outcome=duplicate"
    )
    wait_until(lambda: skipped.search(running.dump_logs()), what="the refund handler skipping the duplicate")
    settled(mailbox, "cal@example.com", ["received", "confirmed", "cancelled"])

    # then one refund at the gateway, one credit note referencing the invoice, one e-mail of each kind
    refund = Refund.objects.get(charge__registration_id=registration.pk)
    assert refund.status == "succeeded"
    with SandboxGateway()._connect() as ledger:
        assert ledger.execute(
            "SELECT count(*) FROM ledger_refunds WHERE idempotency_key = ?", (refund.idempotency_key,)
        ).fetchone() == (1,)
    (credit_note,) = CreditNote.objects.filter(invoice__registration_id=registration.pk)
    assert invoice.number in str(credit_note.content)
    assert (
        InboxEntry.objects.filter(
            event_id=cancelled.event_id, handler="invoicing.refund_cancelled_registration"
        ).count()
        == 1
    )
