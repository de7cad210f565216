"""Invoice and credit note downloads for attendees: a signed link that expires, and nothing else to guess."""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse

from invoicing.selectors import (
    CREDIT_NOTE_DOWNLOAD_SALT,
    DOWNLOAD_SALT,
    Document,
    credit_note_pdf_get,
    invoice_pdf_get,
)


def document_response(document: Document) -> HttpResponse:
    """The document as a download: a filename that needs no quoting, and never kept by a cache."""
    response = HttpResponse(document.content, content_type=document.content_type)
    response["Content-Disposition"] = f'attachment; filename="{document.filename}"'
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def invoice_download(request: HttpRequest, token: str) -> HttpResponse:
    """A tampered, expired or unknown link is a 404: it tells nobody whether an invoice exists."""
    try:
        signer = signing.TimestampSigner(salt=DOWNLOAD_SALT)
        invoice_id = signer.unsign(token, max_age=settings.MICE_INVOICE_LINK_MAX_AGE)
    except signing.BadSignature:  # SignatureExpired is one too
        raise Http404("No such invoice.") from None
    document = invoice_pdf_get(invoice_id=int(invoice_id))
    if document is None:
        raise Http404("No such invoice.")
    return document_response(document)


def credit_note_download(request: HttpRequest, token: str) -> HttpResponse:
    """As invoice_download, for a credit note (its own salt: an invoice's token does not open it)."""
    try:
        signer = signing.TimestampSigner(salt=CREDIT_NOTE_DOWNLOAD_SALT)
        credit_note_id = signer.unsign(token, max_age=settings.MICE_INVOICE_LINK_MAX_AGE)
    except signing.BadSignature:
        raise Http404("No such credit note.") from None
    document = credit_note_pdf_get(credit_note_id=int(credit_note_id))
    if document is None:
        raise Http404("No such credit note.")
    return document_response(document)
