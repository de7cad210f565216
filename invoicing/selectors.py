"""Read-only queries other apps may use."""

from __future__ import annotations

import dataclasses
import uuid

from django.conf import settings
from django.core import signing
from django.urls import reverse

from invoicing.models import Charge, CreditNote, Invoice

# Signed download links: the signature covers the document's id, so changing the id breaks it; each kind of
# document has its own salt, so an invoice's link never opens the credit note with the same id.
DOWNLOAD_SALT = "invoicing.invoice-download"
CREDIT_NOTE_DOWNLOAD_SALT = "invoicing.credit-note-download"


@dataclasses.dataclass(frozen=True)
class Document:
    filename: str  # safe for Content-Disposition: ASCII letters, digits, dash, dot
    content: bytes
    content_type: str = "application/pdf"


def charge_succeeded(*, registration_id: uuid.UUID | str) -> bool:
    """Whether the registration's charge has succeeded (committed), whatever happened to its events since."""
    return Charge.objects.filter(registration_id=registration_id, status=Charge.Status.SUCCEEDED).exists()


def invoice_pdf_get(*, invoice_id: int) -> Document | None:
    """The invoice's PDF, as stored (rendered from the invoice's frozen content, and stored, if not yet)."""
    invoice = Invoice.objects.filter(pk=invoice_id).first()
    if invoice is None:
        return None
    content = bytes(invoice.pdf)
    if not content:
        from invoicing.documents import invoice_pdf  # the renderer is heavy: loaded by those who render

        content = invoice_pdf(invoice)
    return Document(filename=f"invoice-{invoice.number}.pdf", content=content)


def invoice_download_url(*, invoice_id: int) -> str:
    """An absolute link to the invoice's PDF for its attendee, signed, valid for MICE_INVOICE_LINK_MAX_AGE."""
    token = signing.TimestampSigner(salt=DOWNLOAD_SALT).sign(str(invoice_id))
    return settings.MICE_SITE_URL.rstrip("/") + reverse("invoicing:invoice_download", kwargs={"token": token})


def credit_note_pdf_get(*, credit_note_id: int) -> Document | None:
    """The credit note's PDF, as stored (rendered and stored if not yet)."""
    credit_note = CreditNote.objects.select_related("invoice").filter(pk=credit_note_id).first()
    if credit_note is None:
        return None
    content = bytes(credit_note.pdf)
    if not content:
        from invoicing.documents import credit_note_pdf

        content = credit_note_pdf(credit_note)
    return Document(filename=f"credit-note-{credit_note.number}.pdf", content=content)


def credit_note_download_url(*, credit_note_id: int) -> str:
    """An absolute link to the credit note's PDF for its attendee, signed, valid for MICE_INVOICE_LINK_MAX_AGE."""
    token = signing.TimestampSigner(salt=CREDIT_NOTE_DOWNLOAD_SALT).sign(str(credit_note_id))
    return settings.MICE_SITE_URL.rstrip("/") + reverse("invoicing:credit_note_download", kwargs={"token": token})


def registration_document_links(*, registration_id: uuid.UUID | str) -> list[dict[str, str]]:
    """The attendee's documents for a registration, as links: the invoice, then its credit note if any."""
    invoice = Invoice.objects.filter(registration_id=registration_id).select_related("credit_note").first()
    if invoice is None:
        return []
    links = [
        {
            "kind": "invoice",
            "title": "invoice",
            "number": invoice.number,
            "url": invoice_download_url(invoice_id=invoice.pk),
        }
    ]
    credit_note = getattr(invoice, "credit_note", None)
    if credit_note is not None:
        links.append(
            {
                "kind": "credit_note",
                "title": "credit note",
                "number": credit_note.number,
                "url": credit_note_download_url(credit_note_id=credit_note.pk),
            }
        )
    return links


def registration_admin_links(*, registration_id: uuid.UUID | str) -> list[dict[str, str]]:
    """Admin links to the registration's charge (with its refund), invoice and credit note, those that exist."""
    links = []
    charge = Charge.objects.filter(registration_id=registration_id).first()
    if charge is not None:
        title = f"charge: {charge.status}" + (f", refund {charge.refund.status}" if hasattr(charge, "refund") else "")
        links.append({"title": title, "url": reverse("admin:invoicing_charge_change", args=[charge.pk])})
    invoice = Invoice.objects.filter(registration_id=registration_id).first()
    if invoice is not None:
        links.append(
            {
                "title": f"invoice {invoice.number}",
                "url": reverse("admin:invoicing_invoice_change", args=[invoice.pk]),
            }
        )
        credit_note = CreditNote.objects.filter(invoice=invoice).first()
        if credit_note is not None:
            links.append(
                {
                    "title": f"credit note {credit_note.number}",
                    "url": reverse("admin:invoicing_creditnote_change", args=[credit_note.pk]),
                }
            )
    return links
