"""Issuing invoices for paid registrations and credit notes for refunded ones, numbered without gaps."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from invoicing.events import CREDIT_NOTE_ISSUED, INVOICE_ISSUED
from invoicing.models import Charge, CreditNote, DocumentSeries, Invoice, Refund
from registrations.selectors import event_get

log = logging.getLogger("invoicing")

CENT = Decimal("0.01")


def amounts_split(*, gross: Decimal, vat_rate: Decimal) -> tuple[Decimal, Decimal]:
    """(net, vat) of a gross amount that includes VAT at `vat_rate` percent.

    The price charged is what the attendee saw, VAT included: net is derived from it and rounded half up
    to the cent, and the VAT is the rest, so net + vat is always exactly the gross charged.
    """
    net = (gross / (1 + vat_rate / 100)).quantize(CENT, rounding=ROUND_HALF_UP)
    return net, gross - net


def document_number_take(*, kind: str, year: int) -> int:
    """The next number of a series, taken inside the caller's transaction.

    The series row is inserted if missing (ON CONFLICT DO NOTHING, so concurrent first issuers of a year do
    not fail) and then locked: concurrent issuers queue on it, and a rolled-back issue gives its number back
    with its rollback, so numbers stay consecutive, gapless and unique.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("document_number_take must run inside transaction.atomic()")
    DocumentSeries.objects.bulk_create([DocumentSeries(kind=kind, year=year)], ignore_conflicts=True)
    series = DocumentSeries.objects.select_for_update().get(kind=kind, year=year)
    series.last_number += 1
    series.save(update_fields=["last_number"])
    return series.last_number


def invoice_number_format(*, year: int, number: int) -> str:
    return f"{settings.MICE_INVOICE_PREFIX}{year}-{number:06d}"


def credit_note_number_format(*, year: int, number: int) -> str:
    return f"{settings.MICE_CREDIT_NOTE_PREFIX}{year}-{number:06d}"


def _seller() -> dict[str, Any]:
    return {
        "name": settings.MICE_SELLER_NAME,
        "address": settings.MICE_SELLER_ADDRESS.splitlines(),
        "vat_id": settings.MICE_SELLER_VAT_ID,
    }


def _buyer(attendee: dict[str, Any]) -> dict[str, Any]:
    first, last = str(attendee.get("first_name", "")), str(attendee.get("last_name", ""))
    return {
        "name": f"{first} {last}".strip(),
        "company": str(attendee.get("company", "")),
        "email": str(attendee.get("email", "")),
    }


def _line_item(event: dict[str, Any]) -> dict[str, Any]:
    """The event as the invoice's line item. The payment's payload carries name, venue and start; the end comes
    from registrations' selector (the event row may have been edited since, but its dates are what was sold)."""
    slug = str(event.get("slug", ""))
    found = event_get(slug=slug) if slug else None
    starts_at = event.get("starts_at") or (found.starts_at.isoformat() if found else "")
    ends_at = found.ends_at.isoformat() if found else starts_at
    return {
        "slug": slug,
        "description": str(event.get("name") or (found.name if found else slug)),
        "venue": str(event.get("venue") or (found.venue if found else "")),
        "starts_on": _date_of(starts_at),
        "ends_on": _date_of(ends_at),
    }


def _date_of(iso: str) -> str:
    """The local calendar date of an ISO datetime (what an attendee reads), or "" if there is none."""
    if not iso:
        return ""
    moment = dt.datetime.fromisoformat(iso)
    if timezone.is_aware(moment):
        moment = timezone.localtime(moment)
    return moment.date().isoformat()


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def invoice_issue(*, paid: dict[str, Any], issued_on: dt.date | None = None) -> Invoice | None:
    """Issue the invoice of a paid registration once (`paid` is payment.succeeded's data), and emit
    invoice.issued. A refund that was made before this ran (the events crossed) gets its credit note at once.

    Locks the charge row first, then the series: the payment.refunded handler locks in the same order, so
    the two never both decide that the other will issue the credit note.
    """
    registration_id = str(paid["registration_id"])
    with transaction.atomic():
        charge = Charge.objects.select_for_update().filter(registration_id=registration_id).first()
        if charge is None or charge.status != Charge.Status.SUCCEEDED:
            log.warning("no succeeded charge to invoice", extra={"mice": {"registration_id": registration_id}})
            return None
        invoice = Invoice.objects.filter(charge=charge).first()
        if invoice is None:
            invoice = _invoice_create(charge=charge, paid=paid, issued_on=issued_on or timezone.localdate())
        refund = Refund.objects.filter(charge=charge, status=Refund.Status.SUCCEEDED).first()
        if refund is not None and not CreditNote.objects.filter(invoice=invoice).exists():
            _credit_note_create(invoice=invoice, refund=refund, charge=charge, issued_on=issued_on)
    return invoice


def _invoice_create(*, charge: Charge, paid: dict[str, Any], issued_on: dt.date) -> Invoice:
    gross = charge.amount  # what the gateway charged, VAT included
    vat_rate = Decimal(str(paid.get("vat_rate") or "0")).quantize(CENT)
    net, vat = amounts_split(gross=gross, vat_rate=vat_rate)
    number = invoice_number_format(
        year=issued_on.year, number=document_number_take(kind=DocumentSeries.Kind.INVOICE, year=issued_on.year)
    )
    attendee = dict(paid.get("attendee") or {})
    event = dict(paid.get("event") or {})
    content = {
        "title": "Invoice",
        "number": number,
        "issued_on": issued_on.isoformat(),
        "seller": _seller(),
        "buyer": _buyer(attendee),
        "line_item": _line_item(event),
        "currency": charge.currency,
        "net": _money(net),
        "vat_rate": _money(vat_rate),
        "vat": _money(vat),
        "gross": _money(gross),
        "payment": {
            "gateway": charge.gateway,
            "reference": charge.gateway_reference,
            "registration_id": str(charge.registration_id),
        },
    }
    invoice = Invoice.objects.create(
        registration_id=charge.registration_id,
        charge=charge,
        number=number,
        issued_on=issued_on,
        content=content,
        currency=charge.currency,
        net=net,
        vat_rate=vat_rate,
        vat=vat,
        gross=gross,
    )
    INVOICE_ISSUED.send(
        subject=str(charge.registration_id),
        data={
            "registration_id": str(charge.registration_id),
            "invoice_id": invoice.pk,
            "number": number,
            "issued_on": issued_on.isoformat(),
            "currency": charge.currency,
            "net": _money(net),
            "vat_rate": _money(vat_rate),
            "vat": _money(vat),
            "gross": _money(gross),
            "event": {"slug": event.get("slug", ""), "name": event.get("name", "")},
            "attendee": {key: attendee.get(key, "") for key in ("first_name", "last_name", "email", "company")},
        },
        correlation_id=str(charge.registration_id),
    )
    log.info("invoice issued", extra={"mice": {"registration_id": str(charge.registration_id), "number": number}})
    return invoice


def credit_note_issue(*, refunded: dict[str, Any], issued_on: dt.date | None = None) -> CreditNote | None:
    """Issue the credit note of a refunded charge's invoice once (`refunded` is payment.refunded's data).

    No invoice yet (payment.succeeded not handled so far): nothing here; issuing the invoice issues the credit
    note right after it. The charge row is locked first, as invoice_issue does, so exactly one of the two
    issues it.
    """
    registration_id = str(refunded["registration_id"])
    with transaction.atomic():
        charge = Charge.objects.select_for_update().filter(registration_id=registration_id).first()
        if charge is None:
            return None
        existing = CreditNote.objects.filter(invoice__charge=charge).first()
        if existing is not None:
            return existing
        invoice = Invoice.objects.filter(charge=charge).first()
        refund = Refund.objects.filter(charge=charge, status=Refund.Status.SUCCEEDED).first()
        if invoice is None or refund is None:
            return None
        return _credit_note_create(invoice=invoice, refund=refund, charge=charge, issued_on=issued_on)


def _credit_note_create(*, invoice: Invoice, refund: Refund, charge: Charge, issued_on: dt.date | None) -> CreditNote:
    if refund.amount == invoice.gross:  # a full refund cancels the invoice exactly, cent for cent
        net, vat, gross = invoice.net, invoice.vat, invoice.gross
    else:
        gross = refund.amount
        net, vat = amounts_split(gross=gross, vat_rate=invoice.vat_rate)
    issued_on = max(issued_on or timezone.localdate(), invoice.issued_on)  # never dated before its invoice
    number = credit_note_number_format(
        year=issued_on.year, number=document_number_take(kind=DocumentSeries.Kind.CREDIT_NOTE, year=issued_on.year)
    )
    content = {
        **{key: invoice.content[key] for key in ("seller", "buyer", "line_item")},
        "title": "Credit note",
        "number": number,
        "issued_on": issued_on.isoformat(),
        "invoice": {"number": invoice.number, "issued_on": invoice.issued_on.isoformat()},
        "reason": refund.reason,
        "currency": invoice.currency,
        "net": _money(net),
        "vat_rate": _money(invoice.vat_rate),
        "vat": _money(vat),
        "gross": _money(gross),
        "payment": {
            "gateway": charge.gateway,
            "reference": refund.gateway_reference,
            "charge_reference": charge.gateway_reference,
            "registration_id": str(charge.registration_id),
        },
    }
    credit_note = CreditNote.objects.create(
        invoice=invoice,
        refund=refund,
        number=number,
        issued_on=issued_on,
        content=content,
        currency=invoice.currency,
        net=net,
        vat=vat,
        gross=gross,
    )
    line_item = invoice.content.get("line_item", {})
    CREDIT_NOTE_ISSUED.send(
        subject=str(charge.registration_id),
        data={
            "registration_id": str(charge.registration_id),
            "credit_note_id": credit_note.pk,
            "number": number,
            "invoice_number": invoice.number,
            "issued_on": issued_on.isoformat(),
            "currency": invoice.currency,
            "net": _money(net),
            "vat_rate": _money(invoice.vat_rate),
            "vat": _money(vat),
            "gross": _money(gross),
            "event": {"slug": line_item.get("slug", ""), "name": line_item.get("description", "")},
        },
        correlation_id=str(charge.registration_id),
    )
    log.info(
        "credit note issued",
        extra={"mice": {"registration_id": str(charge.registration_id), "number": number, "invoice": invoice.number}},
    )
    return credit_note


def credit_note_pdf_store(*, credit_note_id: int) -> None:
    from invoicing.documents import credit_note_pdf

    credit_note = CreditNote.objects.select_related("invoice").filter(pk=credit_note_id, pdf=b"").first()
    if credit_note is not None:
        credit_note_pdf(credit_note)
