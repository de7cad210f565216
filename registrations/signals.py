"""The one extension point of registrations: other parts of the system offer an attendee documents to download.

Registrations knows nothing of what the documents are (an invoice, a credit note, a ticket) nor who makes
them: a receiver connected to `registration_documents` answers a list of links, each a dict with at least
`kind` (e.g. "invoice"), `title` (what a person calls it, e.g. "invoice"), `number` and `url` (absolute, for
the attendee). The status page and the API show them.
"""

from __future__ import annotations

import logging
import uuid

from django.dispatch import Signal

log = logging.getLogger("registrations")

# Sent with `registration_id` (a str); each receiver returns a list of {"kind", "title", "number", "url"} dicts.
registration_documents = Signal()
# For staff: sent with `registration_id`; each receiver returns a list of {"title", "url"} dicts, links to admin
# pages of what other parts of the system hold for the registration (its charge, invoice, e-mails).
registration_admin_links = Signal()


def registration_documents_get(*, registration_id: uuid.UUID | str) -> list[dict[str, str]]:
    """The links every receiver offers, in the order they answer. A failing receiver is logged and skipped:
    the status page must still show the registration's status."""
    links: list[dict[str, str]] = []
    for receiver, answer in registration_documents.send_robust(sender=None, registration_id=str(registration_id)):
        if isinstance(answer, Exception):
            log.error(
                "a registration_documents receiver failed",
                exc_info=answer,
                extra={"mice": {"registration_id": str(registration_id), "receiver": repr(receiver)}},
            )
            continue
        links.extend(link for link in answer or [] if link.get("url"))
    return links


def registration_admin_links_get(*, registration_id: uuid.UUID | str) -> list[dict[str, str]]:
    """The admin links every receiver offers; a failing receiver is logged and skipped."""
    links: list[dict[str, str]] = []
    for receiver, answer in registration_admin_links.send_robust(sender=None, registration_id=str(registration_id)):
        if isinstance(answer, Exception):
            log.error(
                "a registration_admin_links receiver failed",
                exc_info=answer,
                extra={"mice": {"registration_id": str(registration_id), "receiver": repr(receiver)}},
            )
            continue
        links.extend(link for link in answer or [] if link.get("url"))
    return links
