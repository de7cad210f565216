"""Issuing invoices and credit notes on PostgreSQL, called as their handlers call them."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test import override_settings

from invoicing.issuing import amounts_split, credit_note_issue, invoice_issue
from invoicing.models import CreditNote, DocumentSeries, Invoice
from mice.models import OutboxMessage
from tests.factories import make_event
from tests.invoicing.paid import paid_charge, refunded

pytestmark = pytest.mark.django_db(transaction=True)


def issue(paid, **kwargs):
    with transaction.atomic():  # as the handler runs it: inside the transaction of its inbox row
        return invoice_issue(paid=paid, **kwargs)


def credit(data, **kwargs):
    with transaction.atomic():
        return credit_note_issue(refunded=data, **kwargs)


def emitted(event_type):
    return [row.envelope["data"] for row in OutboxMessage.objects.filter(event_type=event_type).order_by("id")]


@pytest.mark.parametrize(
    ("gross", "rate", "net", "vat"),
    [
        ("120.00", "20.00", "100.00", "20.00"),
        ("100.00", "20.00", "83.33", "16.67"),
        ("99.99", "19.00", "84.03", "15.96"),
        ("0.01", "20.00", "0.01", "0.00"),
        ("0.01", "19.00", "0.01", "0.00"),
        ("107.00", "7.00", "100.00", "7.00"),
        ("50.00", "0.00", "50.00", "0.00"),
        ("1.05", "5.00", "1.00", "0.05"),
        ("2.50", "25.00", "2.00", "0.50"),
    ],
)
def test_net_is_the_gross_without_vat_rounded_half_up_and_vat_the_rest(gross, rate, net, vat):
    assert amounts_split(gross=Decimal(gross), vat_rate=Decimal(rate)) == (Decimal(net), Decimal(vat))


def test_an_invoice_holds_what_a_tax_authority_expects_and_is_announced():
    # given a paid registration for a two-day event
    event = make_event(
        name="PyCon 2027",
        venue="Lisbon Congress Centre",
        starts_at=dt.datetime(2027, 3, 12, 9, tzinfo=dt.UTC),
        ends_at=dt.datetime(2027, 3, 14, 17, tzinfo=dt.UTC),
        price=Decimal("99.99"),
        vat_rate=Decimal("19.00"),
    )
    charge, paid = paid_charge(event=event, first_name="Zoë", last_name="Ødegård", company="Fjord AS")

    # when its invoice is issued
    with override_settings(
        MICE_SELLER_NAME="Acme Events GmbH", MICE_SELLER_ADDRESS="Hauptstr. 1\n10115 Berlin", MICE_SELLER_VAT_ID="DE1"
    ):
        invoice = issue(paid, issued_on=dt.date(2027, 1, 10))

    # then the frozen content says who sold what to whom, for how much, and how it was paid
    assert invoice.number == "2027-000001"
    c = invoice.content
    assert c["seller"] == {"name": "Acme Events GmbH", "address": ["Hauptstr. 1", "10115 Berlin"], "vat_id": "DE1"}
    assert c["buyer"] == {"name": "Zoë Ødegård", "company": "Fjord AS", "email": "ada@example.com"}
    assert (c["number"], c["issued_on"]) == ("2027-000001", "2027-01-10")
    assert c["line_item"] == {
        "slug": event.slug,
        "description": "PyCon 2027",
        "venue": "Lisbon Congress Centre",
        "starts_on": "2027-03-12",
        "ends_on": "2027-03-14",
    }
    assert (c["currency"], c["net"], c["vat_rate"], c["vat"], c["gross"]) == ("EUR", "84.03", "19.00", "15.96", "99.99")
    assert c["payment"]["reference"] == charge.gateway_reference
    assert (invoice.net, invoice.vat, invoice.gross) == (Decimal("84.03"), Decimal("15.96"), Decimal("99.99"))
    assert invoice.net + invoice.vat == invoice.gross
    (announced,) = emitted("invoice.issued")
    assert announced == {
        "registration_id": paid["registration_id"],
        "invoice_id": invoice.pk,
        "number": "2027-000001",
        "issued_on": "2027-01-10",
        "currency": "EUR",
        "net": "84.03",
        "vat_rate": "19.00",
        "vat": "15.96",
        "gross": "99.99",
        "event": {"slug": event.slug, "name": "PyCon 2027"},
        "attendee": {"first_name": "Zoë", "last_name": "Ødegård", "email": "ada@example.com", "company": "Fjord AS"},
    }


def test_the_same_payment_delivered_twice_issues_one_invoice():
    _, paid = paid_charge()

    first = issue(paid)
    second = issue(paid)

    assert first.pk == second.pk
    assert Invoice.objects.count() == 1
    assert len(emitted("invoice.issued")) == 1
    assert DocumentSeries.objects.get().last_number == 1


def test_the_prefix_comes_from_settings_and_a_series_is_per_year():
    with override_settings(MICE_INVOICE_PREFIX="INV-"):
        numbers = [issue(paid_charge()[1], issued_on=dt.date(year, 6, 1)).number for year in (2027, 2027, 2028)]
    assert numbers == ["INV-2027-000001", "INV-2027-000002", "INV-2028-000001"]


def test_a_rolled_back_issue_gives_its_number_back():
    _, paid = paid_charge()
    with pytest.raises(RuntimeError), transaction.atomic():
        invoice_issue(paid=paid, issued_on=dt.date(2027, 1, 1))
        raise RuntimeError("the handler failed after issuing")
    assert not Invoice.objects.exists()

    assert issue(paid_charge()[1], issued_on=dt.date(2027, 1, 1)).number == "2027-000001"


def test_concurrent_issuing_leaves_no_gap_and_no_duplicate_across_a_year_boundary():
    # given 80 paid registrations, and 8 workers issuing their invoices at once, half of them on New Year's Eve
    event = make_event()
    payments = [paid_charge(event=event)[1] for _ in range(80)]
    barrier = threading.Barrier(8)
    failures: list[BaseException] = []

    def worker(index):
        day = dt.date(2026, 12, 31) if index % 2 else dt.date(2027, 1, 1)
        try:
            barrier.wait()
            for paid in payments[index * 10 : (index + 1) * 10]:
                issue(paid, issued_on=day)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            failures.append(exc)
        finally:
            connection.close()

    # when
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then each year's series runs 1..40 without a gap or a duplicate
    assert failures == []
    numbers = sorted(Invoice.objects.values_list("number", flat=True))
    assert numbers == [f"2026-{n:06d}" for n in range(1, 41)] + [f"2027-{n:06d}" for n in range(1, 41)]
    assert {s.year: s.last_number for s in DocumentSeries.objects.all()} == {2026: 40, 2027: 40}
    assert len(emitted("invoice.issued")) == 80


def test_a_refund_after_the_invoice_issues_one_credit_note_referencing_it():
    # given an invoiced charge
    charge, paid = paid_charge()
    invoice = issue(paid, issued_on=dt.date(2027, 1, 10))

    # when it is refunded, and payment.refunded is delivered twice
    data = refunded(charge)
    first = credit(data, issued_on=dt.date(2027, 1, 12))
    second = credit(data, issued_on=dt.date(2027, 1, 12))

    # then one credit note, in its own series, cancels the invoice
    assert first.pk == second.pk and CreditNote.objects.count() == 1
    assert first.number == "CN-2027-000001"
    assert first.invoice == invoice
    assert (first.net, first.vat, first.gross) == (invoice.net, invoice.vat, invoice.gross)
    assert first.content["invoice"] == {"number": invoice.number, "issued_on": "2027-01-10"}
    assert first.content["buyer"] == invoice.content["buyer"]
    (announced,) = emitted("credit_note.issued")
    assert announced == {
        "registration_id": paid["registration_id"],
        "credit_note_id": first.pk,
        "number": "CN-2027-000001",
        "invoice_number": invoice.number,
        "issued_on": "2027-01-12",
        "currency": "EUR",
        "net": "100.00",
        "vat_rate": "20.00",
        "vat": "20.00",
        "gross": "120.00",
        "event": {"slug": paid["event"]["slug"], "name": paid["event"]["name"]},
    }


def test_a_refund_handled_before_the_invoice_gets_its_credit_note_with_the_invoice():
    # given a charge refunded before payment.succeeded was handled
    charge, paid = paid_charge()
    data = refunded(charge)
    assert credit(data) is None  # no invoice yet: nothing to cancel

    # when the invoice is issued (and payment.refunded is delivered again afterwards)
    invoice = issue(paid)
    again = credit(data)

    # then the invoice is issued, then cancelled by one credit note
    credit_note = CreditNote.objects.get()
    assert credit_note.invoice == invoice and again == credit_note
    assert [row.event_type for row in OutboxMessage.objects.order_by("id")] == [
        "invoice.issued",
        "credit_note.issued",
    ]


def test_a_credit_note_and_an_invoice_issued_at_once_make_one_credit_note():
    """The two orders racing: each handler locks the charge row first, so one sees what the other did."""
    for _ in range(5):
        charge, paid = paid_charge()
        data = refunded(charge)
        barrier = threading.Barrier(2)
        failures: list[BaseException] = []

        def run(step, data=data, paid=paid, barrier=barrier, failures=failures):
            try:
                barrier.wait()
                step(data, paid)
            except BaseException as exc:  # noqa: BLE001 (reported below)
                failures.append(exc)
            finally:
                connection.close()

        threads = [
            threading.Thread(target=run, args=(lambda d, p: issue(p),)),
            threading.Thread(target=run, args=(lambda d, p: credit(d),)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        assert CreditNote.objects.filter(invoice__charge=charge).count() == 1
    numbers = sorted(CreditNote.objects.values_list("number", flat=True))
    year = numbers[0][3:7]
    assert numbers == [f"CN-{year}-{n:06d}" for n in range(1, 6)]


def test_a_charge_that_did_not_succeed_is_not_invoiced():
    charge, paid = paid_charge()
    charge.status = "declined"
    charge.save(update_fields=["status"])

    assert issue(paid) is None
    assert not Invoice.objects.exists()
