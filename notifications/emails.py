"""What each e-mail says and to whom: drafts built from event payloads, rendered to HTML and plain text.

Everything that reaches a header (the display name, the subject) comes from attendee input or staff input,
so it is reduced to one line of printable text first: a name such as "Eve\\r\\nBcc: x@example.com" can
neither add a recipient nor a header.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from email.utils import formataddr
from typing import Any

from anymail.message import AnymailMessage
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.dateparse import parse_datetime

from notifications.models import EmailLog

Kind = EmailLog.Kind

SUBJECTS = {
    Kind.RECEIVED: "Registration received: {event}",
    Kind.CONFIRMED: "Registration confirmed: {event}",
    Kind.CANCELLED: "Registration cancelled: {event}",
}

MAX_NAME = 100
MAX_SUBJECT = 200


class InvalidRecipient(ValueError):
    """The attendee's address cannot be mailed at all: a permanent failure, never retried."""


@dataclasses.dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    content_type: str


@dataclasses.dataclass(frozen=True)
class Draft:
    """One e-mail, ready to render: who, which kind, for what, and the templates' context."""

    registration_id: str
    kind: str
    event_type: str
    address: str
    display_name: str
    subject: str
    context: dict[str, Any]
    attachments: tuple[Attachment, ...] = ()


def one_line(text: object, *, limit: int) -> str:
    """Printable text on one line: control characters (CR, LF, tab, NUL...), line and paragraph separators
    and format characters become spaces, runs of spaces collapse. Safe in a header's display name or subject."""
    cleaned = "".join(
        " " if unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"} else ch for ch in str(text or "")
    )
    return " ".join(cleaned.split())[:limit].strip()


def checked_address(address: object) -> str:
    """The attendee's address if it is one we can mail (one address, no control characters), else raise."""
    text = str(address or "").strip()
    if not text or one_line(text, limit=320) != text or " " in text:
        raise InvalidRecipient("the recipient address is not a single e-mail address")
    try:
        validate_email(text)
    except ValidationError:
        raise InvalidRecipient("the recipient address is not a valid e-mail address") from None
    return text


def message_id(*, kind: str, registration_id: str) -> str:
    """The Message-ID of this registration's e-mail of this kind: the same on every attempt, so a receiver
    that gets a second copy (a crash after the server accepted the first) can tell it is the same message."""
    return f"<{kind}.{registration_id}@{settings.MICE_EMAIL_MESSAGE_ID_DOMAIN}>"


def _common(data: dict[str, Any], *, kind: str, event_type: str) -> tuple[str, str, str, dict[str, Any]]:
    attendee = data.get("attendee") or {}
    event = data.get("event") or {}
    name = one_line(f"{attendee.get('first_name', '')} {attendee.get('last_name', '')}", limit=MAX_NAME)
    event_name = one_line(event.get("name") or event.get("slug") or "your event", limit=MAX_SUBJECT)
    subject = one_line(SUBJECTS[Kind(kind)].format(event=event_name), limit=MAX_SUBJECT)
    registration_id = str(data["registration_id"])
    starts_at = parse_datetime(event["starts_at"]) if event.get("starts_at") else None
    context: dict[str, Any] = {
        "first_name": one_line(attendee.get("first_name", ""), limit=MAX_NAME) or name or "there",
        "event_name": event_name,
        "venue": one_line(event.get("venue", ""), limit=MAX_SUBJECT),
        "starts_at": starts_at,
        "registration_id": registration_id,
        "status_url": settings.MICE_SITE_URL.rstrip("/")
        + reverse("pages:registration_detail", kwargs={"registration_id": registration_id}),
        "organiser": settings.MICE_SELLER_NAME,
        "contact": settings.MICE_EMAIL_CONTACT,
    }
    return name, subject, registration_id, context


def _draft(data: dict[str, Any], *, kind: str, event_type: str, **extra: Any) -> Draft:
    attachments = extra.pop("attachments", ())
    name, subject, registration_id, context = _common(data, kind=kind, event_type=event_type)
    return Draft(
        registration_id=registration_id,
        kind=kind,
        event_type=event_type,
        # Checked when the message is rendered, so that an address we cannot mail leaves a failed row.
        address=str((data.get("attendee") or {}).get("email") or "").strip()[:320],
        display_name=name,
        subject=subject,
        context={**context, **extra},
        attachments=tuple(attachments),
    )


def received_draft(data: dict[str, Any], *, event_type: str) -> Draft:
    """registration.created: we have the registration; a paid one waits for its payment."""
    free = str(data.get("amount", "0")) in {"0", "0.00", ""} or data.get("status") == "confirmed"
    return _draft(
        data,
        kind=Kind.RECEIVED,
        event_type=event_type,
        free=free,
        amount=data.get("amount", ""),
        currency=data.get("currency", ""),
    )


def confirmed_draft(
    data: dict[str, Any], *, event_type: str, invoice: dict[str, Any] | None = None, pdf: Attachment | None = None
) -> Draft:
    """registration.confirmed (free events) or invoice.issued (paid events, the PDF attached)."""
    return _draft(
        data,
        kind=Kind.CONFIRMED,
        event_type=event_type,
        invoice=invoice,
        attachments=(pdf,) if pdf else (),
    )


# A cancellation's reason, in plain words, and what the attendee can do next.
_DECLINE_WORDS = {
    "card_declined": "your card was declined",
    "insufficient_funds": "your card has insufficient funds",
    "expired_card": "your card has expired",
    "incorrect_cvc": "the card's security code was incorrect",
    "invalid_token": "the payment details could not be used",
}


def cancellation_reason(reason: str) -> tuple[str, str]:
    """(what happened, what to do next) for a registration.cancelled `reason` code."""
    if reason.startswith("payment_failed:"):
        code = reason.partition(":")[2]
        words = _DECLINE_WORDS.get(code, "the payment did not go through")
        return (
            f"The payment for your registration failed: {words}.",
            "You can register again with another card; your seat was released, so register soon.",
        )
    if reason == "payment_deadline_passed":
        return (
            "The payment for your registration was not completed before the payment deadline.",
            "You can register again if seats are still available.",
        )
    if reason == "cancelled_by_attendee":
        return (
            "You cancelled your registration, as you asked.",
            "You can register again while seats are available.",
        )
    if reason == "cancelled_by_staff":
        return (
            "Your registration was cancelled by the organiser.",
            "Please contact the organiser if this is a surprise.",
        )
    return ("Your registration was cancelled.", "Please contact the organiser if you have questions.")


def cancelled_draft(data: dict[str, Any], *, event_type: str, refunded: bool = False) -> Draft:
    happened, next_step = cancellation_reason(str(data.get("reason") or ""))
    return _draft(
        data,
        kind=Kind.CANCELLED,
        event_type=event_type,
        reason=happened,
        next_step=next_step,
        refunded=refunded,
    )


def render(draft: Draft) -> AnymailMessage:
    """The message as anymail sends it through the configured backend: text body, HTML alternative, tags
    (the kind) and metadata (registration id, event type, kind: what tracking webhooks bring back), and
    the deterministic Message-ID."""
    address = checked_address(draft.address)
    template = f"notifications/{draft.kind}"
    context = {**draft.context, "subject": draft.subject}
    message = AnymailMessage(
        subject=draft.subject,
        body=render_to_string(f"{template}.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        # formataddr quotes or encodes the (already one-line) name; the address was checked above.
        to=[formataddr((draft.display_name, address))],
        headers={"Message-ID": message_id(kind=draft.kind, registration_id=draft.registration_id)},
        tags=[draft.kind],
        metadata={"registration_id": draft.registration_id, "event_type": draft.event_type, "kind": draft.kind},
    )
    message.attach_alternative(render_to_string(f"{template}.html", context), "text/html")
    for attachment in draft.attachments:
        message.attach(attachment.filename, attachment.content, attachment.content_type)
    return message
