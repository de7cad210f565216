"""Read-only queries other apps may use."""

from __future__ import annotations

import dataclasses
import uuid

from django.conf import settings
from django.core import signing
from django.urls import reverse

from invoicing.models import Charge, Invoice

# Signed download links: the signature covers the invoice id, so changing the id breaks it.
DOWNLOAD_SALT = "invoicing.invoice-download"


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


def invoice_for_registration(*, registration_id: uuid.UUID | str) -> Invoice | None:
    """The registration's invoice, if one was issued."""
    return Invoice.objects.filter(registration_id=registration_id).first()
