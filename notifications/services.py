"""Sending an e-mail at most once per registration and kind, and recording what the ESP says of it.

The protocol (docs/notifications.md), for a handler that is not atomic (@subscribe(atomic=False)):
1. claim: in its own committed transaction, find or insert the row (unique on registration and kind) as
   `queued` and count the attempt. A row already sent (or failed for good) ends it: nothing is sent twice.
2. send, outside any transaction, with the row's deterministic Message-ID.
3. record: in another transaction, `sent` with the ESP's message id (or `failed`, or the error of a
   transient failure before it is retried).
A crash between the server's acceptance (2) and the commit of (3) leaves the row `queued`: the redelivered
event sends again with the same Message-ID, which the receiving side can deduplicate. That window is the
only one left; docs/notifications.md says how wide it is.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from typing import Any

from anymail.message import AnymailMessage
from anymail.signals import AnymailTrackingEvent, EventType
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from notifications.emails import Draft, message_id, render
from notifications.failures import EmailUnavailable, is_permanent, is_transient
from notifications.models import EmailLog, EmailTrackingEvent

log = logging.getLogger("mice.notifications")

FINAL = {EmailLog.Status.SENT, EmailLog.Status.FAILED, EmailLog.Status.DELIVERED, EmailLog.Status.BOUNCED}


class SendInProgress(EmailUnavailable):
    """Another worker started this very send moments ago and has not recorded its outcome: try later.

    Two deliveries of one event can run at once (a duplicate published while the first still runs); the
    second waits for the first's outcome instead of sending a second copy. A crashed attempt's claim
    expires after MICE_EMAIL_SEND_LEASE seconds; then a redelivery sends again (same Message-ID).
    """


def email_send(*, draft: Draft) -> EmailLog:
    """Send the draft's e-mail unless this registration already got its e-mail of this kind."""
    email = _email_claim(draft=draft)
    if email.status in FINAL:
        log.info(
            "e-mail already handled, not sent again",
            extra={"mice": {"registration_id": draft.registration_id, "kind": draft.kind, "status": email.status}},
        )
        return email
    started = time.monotonic()
    try:
        message = render(draft)  # an address we cannot mail fails here, for good
        message.send()
    except Exception as exc:  # noqa: BLE001 - classified and recorded; only a permanent refusal stops here
        return _email_record_failure(email=email, exc=exc)
    # <- A crash here (after the server accepted the message, before the commit below) is the one window in
    #    which the attendee can get a second copy: the row is still `queued` and a redelivery sends again,
    #    with the same Message-ID. It lasts from the server's final reply to the commit of this update.
    return _email_record_sent(email=email, message=message, started=started, returned=time.monotonic())


def _email_claim(*, draft: Draft) -> EmailLog:
    """Find or insert the row, and count an attempt unless it is done or another attempt is under way."""
    lease = dt.timedelta(seconds=settings.MICE_EMAIL_SEND_LEASE)
    registration_id = uuid.UUID(draft.registration_id)
    with transaction.atomic():
        email = EmailLog.objects.select_for_update().filter(registration_id=registration_id, kind=draft.kind).first()
        if email is None:
            try:
                with transaction.atomic():
                    email = EmailLog.objects.create(
                        registration_id=registration_id,
                        kind=draft.kind,
                        event_type=draft.event_type,
                        recipient=draft.address,
                        subject=draft.subject,
                        message_id=message_id(kind=draft.kind, registration_id=draft.registration_id),
                    )
            except IntegrityError:  # a concurrent delivery inserted it first: wait for its lock
                email = EmailLog.objects.select_for_update().get(registration_id=registration_id, kind=draft.kind)
        if email.status in FINAL:
            return email
        now = timezone.now()
        if email.attempted_at is not None and now - email.attempted_at < lease:
            raise SendInProgress(f"a send of this e-mail started at {email.attempted_at.isoformat()} is under way")
        email.attempts += 1
        email.attempted_at = now
        email.save(update_fields=["attempts", "attempted_at", "updated_at"])
    return email


def _email_record_sent(*, email: EmailLog, message: AnymailMessage, started: float, returned: float) -> EmailLog:
    esp_id = str(message.anymail_status.message_id or "")[:300]
    now = timezone.now()
    # One statement, committed at once (autocommit): this is the window's end. Only from queued: a tracking
    # webhook may have said delivered already (it can arrive before this), and that is kept.
    recorded = EmailLog.objects.filter(pk=email.pk, status=EmailLog.Status.QUEUED).update(
        status=EmailLog.Status.SENT, sent_at=now, attempted_at=None, error="", esp_message_id=esp_id, updated_at=now
    )
    if not recorded:
        EmailLog.objects.filter(pk=email.pk).update(sent_at=now, attempted_at=None, esp_message_id=esp_id)
    committed = time.monotonic()
    email.refresh_from_db()
    log.info(
        "e-mail sent",
        extra={
            "mice": {
                "registration_id": str(email.registration_id),
                "kind": email.kind,
                "attempt": email.attempts,
                "send_ms": round((returned - started) * 1000, 1),
                # From the backend's return (after the server's acceptance and QUIT) to our commit: part of
                # the window in which a crash sends a second copy (docs/notifications.md).
                "record_ms": round((committed - returned) * 1000, 2),
            }
        },
    )
    return email


def _email_record_failure(*, email: EmailLog, exc: Exception) -> EmailLog:
    """Permanent: the row fails and the handler returns. Transient: the error is kept, EmailUnavailable is
    raised for the retry. Anything else is kept and re-raised (dead-lettered, replayable)."""
    error = f"{type(exc).__name__}: {exc}"[:10_000]
    permanent = is_permanent(exc)
    with transaction.atomic():
        # The attempt is over (it did not send): the next one need not wait for the lease.
        fields: dict[str, Any] = {"error": error, "attempted_at": None, "updated_at": timezone.now()}
        if permanent:
            fields["status"] = EmailLog.Status.FAILED
        EmailLog.objects.filter(pk=email.pk, status=EmailLog.Status.QUEUED).update(**fields)
    context = {"registration_id": str(email.registration_id), "kind": email.kind, "error_type": type(exc).__name__}
    if permanent:
        # The error text can name the address: it is in the row, not in the log.
        log.warning("e-mail refused for good, not retried", extra={"mice": context})
        email.refresh_from_db()
        return email
    if is_transient(exc):
        raise EmailUnavailable(f"the mail server could not take the message: {type(exc).__name__}") from exc
    raise exc


def email_tracking_record(*, event: AnymailTrackingEvent, esp_name: str) -> EmailLog | None:
    """An ESP's tracking event (through anymail's webhook): keep it, and move the row to delivered or bounced.

    The row is found by the ESP's message id; if the webhook came before we recorded that id (it can),
    by the registration id and kind we put in the message's metadata.
    """
    metadata = event.metadata or {}
    candidates = EmailLog.objects.none()
    if event.message_id:
        esp_id = str(event.message_id)
        candidates = EmailLog.objects.filter(Q(esp_message_id=esp_id) | Q(message_id=f"<{esp_id.strip('<>')}>"))
    with transaction.atomic():
        email = candidates.select_for_update().first()
        if email is None and metadata.get("registration_id") and metadata.get("kind"):
            try:
                registration_id = uuid.UUID(str(metadata["registration_id"]))
            except ValueError:
                registration_id = None
            if registration_id is not None:
                email = (
                    EmailLog.objects.select_for_update()
                    .filter(registration_id=registration_id, kind=str(metadata["kind"]))
                    .first()
                )
        if email is None:
            log.info(
                "tracking event for an unknown e-mail", extra={"mice": {"esp": esp_name, "type": event.event_type}}
            )
            return None
        EmailTrackingEvent.objects.create(
            email=email,
            event_type=str(event.event_type or ""),
            esp_event_id=str(event.event_id or "")[:300],
            occurred_at=event.timestamp,
            description=str(event.description or ""),
            mta_response=str(event.mta_response or ""),
            esp_event=_json_ready(event.esp_event),
        )
        status = _status_after(email.status, str(event.event_type))
        if status != email.status:
            email.status = status
            if not email.esp_message_id and event.message_id:
                email.esp_message_id = str(event.message_id)[:300]
            email.save(update_fields=["status", "esp_message_id", "updated_at"])
    return email


def _status_after(current: str, event_type: str) -> str:
    """delivered and bounced come from tracking; a bounce wins over a delivery (a late bounce happens),
    a delivery never undoes a bounce, and an e-mail that failed for good stays failed."""
    if current == EmailLog.Status.FAILED:
        return current
    if event_type in {EventType.BOUNCED, EventType.REJECTED, EventType.FAILED}:
        return EmailLog.Status.BOUNCED
    if event_type == EventType.DELIVERED and current != EmailLog.Status.BOUNCED:
        return EmailLog.Status.DELIVERED
    return current


def _json_ready(value: Any) -> Any:
    """The ESP's raw event as JSON (some ESPs give objects, e.g. a parsed form)."""
    if isinstance(value, dict | list | str | int | float | bool) or value is None:
        return value
    try:
        return dict(value)
    except (TypeError, ValueError):
        return {"raw": str(value)}
