"""Each e-mail's subject, bodies, recipient and log row, sent through Django's locmem backend."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from email import message_from_bytes
from email.policy import default as default_policy
from email.utils import getaddresses

import pytest
from django.db import transaction
from django.utils import timezone

from invoicing.models import Charge, Invoice
from mice.events import Envelope
from mice.outbox import emit
from notifications.failures import EmailUnavailable
from notifications.handlers import (
    send_free_registration_confirmed,
    send_paid_registration_confirmed,
    send_registration_cancelled,
    send_registration_received,
)
from notifications.models import EmailLog
from notifications.services import SendInProgress
from registrations.events import REGISTRATION_CANCELLED, REGISTRATION_CONFIRMED, REGISTRATION_CREATED
from tests.notifications.conftest import EVENT, attendee, created

pytestmark = pytest.mark.django_db


def deliver(handler, etype, data):
    handler(Envelope.new(etype, subject=data["registration_id"], data=data))


def html_of(message):
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return html


def test_registration_received_for_a_paid_event_says_the_payment_follows(mailoutbox):
    data = created()

    deliver(send_registration_received, REGISTRATION_CREATED, data)

    [message] = mailoutbox
    assert message.subject == "Registration received: PyCon 2027"
    assert message.to == ["Ada Lovelace <ada@example.com>"]
    assert "Hello Ada," in message.body
    assert "120.00 EUR" in message.body and "invoice" in message.body
    assert "Lisbon" in message.body
    assert f"/registrations/{data['registration_id']}/" in message.body
    html = html_of(message)
    assert "<strong>120.00 EUR</strong>" in html and "PyCon 2027" in html
    assert message.extra_headers["Message-ID"] == f"<received.{data['registration_id']}@localhost>"
    assert message.tags == ["received"]
    assert message.metadata == {
        "registration_id": data["registration_id"],
        "event_type": "registration.created",
        "kind": "received",
    }
    row = EmailLog.objects.get(registration_id=data["registration_id"])
    assert (row.kind, row.status, row.recipient, row.subject, row.attempts) == (
        "received",
        "sent",
        "ada@example.com",
        "Registration received: PyCon 2027",
        1,
    )
    assert row.message_id == f"<received.{data['registration_id']}@localhost>"
    assert row.sent_at is not None and row.attempted_at is None


def test_registration_received_for_a_free_event_says_it_is_confirmed(mailoutbox):
    deliver(send_registration_received, REGISTRATION_CREATED, created(amount="0.00"))

    [message] = mailoutbox
    assert "This event is free: your place is confirmed" in message.body
    assert "payment" not in message.body


def test_a_free_registration_confirmed_gets_the_confirmation_without_invoice(mailoutbox):
    data = {"registration_id": created()["registration_id"], "event": EVENT, "attendee": attendee()}

    deliver(send_free_registration_confirmed, REGISTRATION_CONFIRMED, data)

    [message] = mailoutbox
    assert message.subject == "Registration confirmed: PyCon 2027"
    assert "your place is confirmed" in message.body and "Invoice" not in message.body
    assert "Your registration is confirmed" in html_of(message)
    assert message.attachments == []
    assert EmailLog.objects.get(registration_id=data["registration_id"]).kind == "confirmed"


def paid_invoice(registration_id: str) -> Invoice:
    charge = Charge.objects.create(
        registration_id=registration_id,
        amount=Decimal("120.00"),
        currency="EUR",
        status=Charge.Status.SUCCEEDED,
        gateway="sandbox",
        gateway_reference="ch_sandbox_test",
    )
    return Invoice.objects.create(
        registration_id=registration_id,
        charge=charge,
        number=f"2027-{Invoice.objects.count() + 1:06d}",
        issued_on=dt.date(2027, 1, 10),
        content={},
        currency="EUR",
        net=Decimal("100.00"),
        vat_rate=Decimal("20.00"),
        vat=Decimal("20.00"),
        gross=Decimal("120.00"),
        pdf=b"%PDF-1.4 the invoice",
    )


def invoice_issued(invoice: Invoice) -> dict:
    return {
        "registration_id": str(invoice.registration_id),
        "invoice_id": invoice.pk,
        "number": invoice.number,
        "issued_on": "2027-01-10",
        "currency": "EUR",
        "net": "100.00",
        "vat_rate": "20.00",
        "vat": "20.00",
        "gross": "120.00",
        "event": {"slug": EVENT["slug"], "name": EVENT["name"]},
        "attendee": attendee(),
    }


def test_a_paid_registration_is_confirmed_on_invoice_issued_with_the_pdf_and_a_signed_link(mailoutbox):
    invoice = paid_invoice(created()["registration_id"])
    data = invoice_issued(invoice)

    with transaction.atomic():  # emit's rule: inside a transaction; then handled as a worker would
        envelope = emit("invoice.issued", subject=data["registration_id"], data=data)
    send_paid_registration_confirmed(envelope)

    [message] = mailoutbox
    assert message.subject == "Registration confirmed: PyCon 2027"
    assert message.to == ["Ada Lovelace <ada@example.com>"]
    assert message.attachments == [(f"invoice-{invoice.number}.pdf", b"%PDF-1.4 the invoice", "application/pdf")]
    assert f"Invoice {invoice.number} of 2027-01-10, 120.00 EUR" in message.body
    assert "http://127.0.0.1:8000/invoices/" in message.body
    assert 'href="http://127.0.0.1:8000/invoices/' in html_of(message)
    assert message.metadata["event_type"] == "invoice.issued"


def test_registration_confirmed_of_a_paid_registration_sends_nothing_the_invoice_brings_it(mailoutbox):
    invoice = paid_invoice(created()["registration_id"])
    data = {"registration_id": str(invoice.registration_id), "event": EVENT, "attendee": attendee()}

    deliver(send_free_registration_confirmed, REGISTRATION_CONFIRMED, data)

    assert mailoutbox == []
    assert not EmailLog.objects.exists()


@pytest.mark.parametrize(
    ("reason", "why", "next_step"),
    [
        ("payment_failed:card_declined", "your card was declined", "register again with another card"),
        ("payment_failed:do_not_honor", "the payment did not go through", "register again with another card"),
        ("payment_deadline_passed", "not completed before the payment deadline", "register again"),
        ("cancelled_by_staff", "cancelled by the organiser", "contact the organiser"),
    ],
)
def test_registration_cancelled_says_why_and_what_to_do(mailoutbox, reason, why, next_step):
    data = {
        "registration_id": created()["registration_id"],
        "event": EVENT,
        "attendee": attendee(),
        "reason": reason,
        "was_confirmed": False,
    }

    deliver(send_registration_cancelled, REGISTRATION_CANCELLED, data)

    [message] = mailoutbox
    assert message.subject == "Registration cancelled: PyCon 2027"
    assert why in message.body and next_step in message.body
    assert why in html_of(message)
    assert "refunded" not in message.body


def test_a_cancellation_after_payment_says_it_is_refunded(mailoutbox):
    invoice = paid_invoice(created()["registration_id"])
    data = {
        "registration_id": str(invoice.registration_id),
        "event": EVENT,
        "attendee": attendee(),
        "reason": "cancelled_by_staff",
        "was_confirmed": True,
    }

    deliver(send_registration_cancelled, REGISTRATION_CANCELLED, data)

    [message] = mailoutbox
    assert "the payment is refunded" in message.body


def test_the_same_event_handled_twice_sends_one_email(mailoutbox):
    data = created()
    envelope = Envelope.new(REGISTRATION_CREATED, subject=data["registration_id"], data=data)

    send_registration_received(envelope)
    send_registration_received(envelope)
    deliver(send_registration_received, REGISTRATION_CREATED, data)  # a second event of the same kind, too

    assert len(mailoutbox) == 1
    assert EmailLog.objects.get(registration_id=data["registration_id"]).attempts == 1


def test_a_name_with_cr_lf_adds_no_recipient_and_no_header(mailoutbox):
    data = created(first_name="Eve\r\nBcc: victim@example.com", last_name="X\nCc: other@example.com")

    deliver(send_registration_received, REGISTRATION_CREATED, data)

    [message] = mailoutbox
    raw = message_from_bytes(message.message().as_bytes(), policy=default_policy)
    assert [address for _, address in getaddresses(raw.get_all("To"))] == ["ada@example.com"]
    assert raw["Bcc"] is None and raw["Cc"] is None and not message.bcc and not message.cc
    assert raw.get_all("To") == ['"Eve Bcc: victim@example.com X Cc: other@example.com" <ada@example.com>']
    assert "\n" not in message.subject


def test_an_event_name_with_cr_lf_gives_a_one_line_subject(mailoutbox):
    data = created()
    data["event"] = {**EVENT, "name": "Evil\r\nBcc: victim@example.com"}

    deliver(send_registration_received, REGISTRATION_CREATED, data)

    [message] = mailoutbox
    assert message.subject == "Registration received: Evil Bcc: victim@example.com"
    raw = message_from_bytes(message.message().as_bytes(), policy=default_policy)
    assert raw["Bcc"] is None and [a for _, a in getaddresses(raw.get_all("To"))] == ["ada@example.com"]


def test_non_latin_names_are_encoded_not_mangled(mailoutbox):
    deliver(send_registration_received, REGISTRATION_CREATED, created(first_name="Zoë", last_name="Ødegård"))

    [message] = mailoutbox
    raw = message_from_bytes(message.message().as_bytes(), policy=default_policy)
    assert str(raw["To"]) == "Zoë Ødegård <ada@example.com>"
    assert "Hello Zoë," in message.body


def test_an_address_with_a_line_break_fails_for_good_and_sends_nothing(mailoutbox):
    data = created(email="ada@example.com\r\nBcc: victim@example.com")

    deliver(send_registration_received, REGISTRATION_CREATED, data)  # returns: not retried

    assert mailoutbox == []
    row = EmailLog.objects.get(registration_id=data["registration_id"])
    assert row.status == "failed" and "InvalidRecipient" in row.error


def test_a_send_under_way_elsewhere_is_not_doubled_and_a_crashed_one_is_sent_again_with_the_same_message_id(
    mailoutbox, settings
):
    data = created()
    deliver(send_registration_received, REGISTRATION_CREATED, data)
    row = EmailLog.objects.get(registration_id=data["registration_id"])
    # as a worker killed after the server accepted the message and before it recorded that: queued, attempt begun
    EmailLog.objects.filter(pk=row.pk).update(status="queued", sent_at=None, attempted_at=timezone.now())

    with pytest.raises(SendInProgress):  # a redelivery within the lease waits (retried later)
        deliver(send_registration_received, REGISTRATION_CREATED, data)
    assert isinstance(SendInProgress("x"), EmailUnavailable)  # the handler's retry policy retries it
    assert len(mailoutbox) == 1

    EmailLog.objects.filter(pk=row.pk).update(
        attempted_at=timezone.now() - dt.timedelta(seconds=settings.MICE_EMAIL_SEND_LEASE + 1)
    )
    deliver(send_registration_received, REGISTRATION_CREATED, data)

    first, second = mailoutbox
    assert first.extra_headers["Message-ID"] == second.extra_headers["Message-ID"]
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("sent", 2)
