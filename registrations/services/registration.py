"""Registration operations: the only code that changes registrations or seats."""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from invoicing.selectors import charge_succeeded
from mice.outbox import caused_by
from registrations import payloads
from registrations.events import (
    REGISTRATION_CANCELLED,
    REGISTRATION_CONFIRMED,
    REGISTRATION_CREATED,
    REGISTRATION_PAYMENT_DEADLINE_REACHED,
)
from registrations.models import Event, PaymentToken, Registration

log = logging.getLogger("registrations")


class RegistrationRefused(Exception):
    """A business refusal the attendee must be told about; `code` is stable for API clients."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def registration_create(
    *,
    event_slug: str,
    first_name: str,
    last_name: str,
    email: str,
    company: str = "",
    payment_token: str = "",
) -> Registration:
    """Take a seat and create the registration, in one transaction with its registration.created event.

    The seat is taken last, by one conditional UPDATE of the event row (`seats_taken < capacity`): the
    row lock that serialises registrations for one event is held only from that statement to the
    commit, and seats are never oversold whatever the concurrency. One e-mail address registers once:
    the partial unique index on (event, lower(email)) decides between concurrent attempts. A free
    event is confirmed at once. A paid one gets its payment deadline: an event held in the outbox until
    then, which cancels the registration if its charge has not succeeded by that time.
    """
    with transaction.atomic():
        event = Event.objects.filter(slug=event_slug).first()
        if event is None:
            raise RegistrationRefused("unknown_event", f"There is no event {event_slug!r}.")
        if not event.is_open():
            raise RegistrationRefused("closed", f"Registration for {event.name} is closed.")
        if event.seats_taken >= event.capacity:
            raise RegistrationRefused("sold_out", f"{event.name} is sold out.")
        if not event.is_free and not payment_token:
            raise RegistrationRefused("payment_required", f"{event.name} is a paid event: a payment token is required.")
        status = Registration.Status.CONFIRMED if event.is_free else Registration.Status.PENDING
        due = None if event.is_free else timezone.now() + dt.timedelta(seconds=event.payment_deadline_seconds)
        try:
            with transaction.atomic():
                registration = Registration.objects.create(
                    event=event,
                    first_name=first_name,
                    last_name=last_name,
                    email=email,
                    company=company,
                    status=status,
                    payment_due_at=due,
                )
        except IntegrityError:  # the partial unique index: this e-mail already holds a registration
            message = f"{email} is already registered for {event.name}."
            raise RegistrationRefused("already_registered", message) from None
        if not event.is_free:
            PaymentToken.objects.create(registration=registration, token=payment_token)
        correlation = str(registration.id)
        created = REGISTRATION_CREATED.send(
            subject=correlation,
            data=payloads.registration_created(registration),
            correlation_id=correlation,
        )
        # Emitted beside registration.created, and caused by it: the saga's timeline is one chain.
        with caused_by(created):
            if event.is_free:
                REGISTRATION_CONFIRMED.send(
                    subject=correlation,
                    data=payloads.registration_confirmed(registration),
                    correlation_id=correlation,
                )
            else:
                REGISTRATION_PAYMENT_DEADLINE_REACHED.send(
                    subject=correlation,
                    data=payloads.registration_payment_deadline_reached(registration),
                    correlation_id=correlation,
                    deliver_at=due,
                )
        seat_taken = Event.objects.filter(pk=event.pk, seats_taken__lt=F("capacity")).update(
            seats_taken=F("seats_taken") + 1
        )
        if not seat_taken:  # the last seat went to a concurrent registration: undo everything above
            raise RegistrationRefused("sold_out", f"{event.name} is sold out.")
    log.info(
        "registration created",
        extra={"mice": {"registration_id": str(registration.id), "correlation_id": correlation, "event": event.slug}},
    )
    return registration


def registration_confirm(*, registration_id: uuid.UUID | str) -> Registration:
    """Confirm a pending registration. A late or duplicate confirmation never revives a cancelled one."""
    with transaction.atomic():
        # of=("self",): lock the registration only, not the event row joined for the payload.
        registration = (
            Registration.objects.select_for_update(of=("self",)).select_related("event").get(id=registration_id)
        )
        PaymentToken.objects.filter(registration_id=registration.id).delete()  # the charge is decided
        if registration.status != Registration.Status.PENDING:
            # A charge that succeeded for a cancelled registration is refunded by invoicing, which learns of
            # the cancellation from registration.cancelled whichever of the two committed first.
            log.info(
                "confirmation ignored",
                extra={"mice": {"registration_id": str(registration.id), "status": registration.status}},
            )
            return registration
        registration.status = Registration.Status.CONFIRMED
        registration.save(update_fields=["status", "updated_at"])
        REGISTRATION_CONFIRMED.send(
            subject=str(registration.id),
            data=payloads.registration_confirmed(registration),
            correlation_id=str(registration.id),
        )
    return registration


def registration_cancel(*, registration_id: uuid.UUID | str, reason: str, only_pending: bool = False) -> Registration:
    """Cancel a registration and give its seat back; cancelling a cancelled registration changes nothing.

    `only_pending` leaves a confirmed registration as it is (the payment deadline: the charge succeeded).
    Invoicing refunds a charge that succeeded, whether before or after this cancellation.
    """
    event_id, status = Registration.objects.values_list("event_id", "status").get(id=registration_id)
    if status == Registration.Status.CANCELLED or (only_pending and status != Registration.Status.PENDING):
        # Final for this purpose (no registration returns to pending): no need to take the busy event's lock.
        return Registration.objects.select_related("event").get(id=registration_id)
    with transaction.atomic():
        # Lock order everywhere: the event, then the registration. NO KEY: new registrations referencing
        # the event (a FOR KEY SHARE lock each) need not wait for this.
        Event.objects.select_for_update(no_key=True).get(pk=event_id)
        registration = (
            Registration.objects.select_for_update(of=("self",)).select_related("event").get(id=registration_id)
        )
        PaymentToken.objects.filter(registration_id=registration.id).delete()  # nothing is to be charged any more
        if registration.status == Registration.Status.CANCELLED:
            return registration
        if only_pending and registration.status != Registration.Status.PENDING:
            return registration
        was_confirmed = registration.status == Registration.Status.CONFIRMED
        registration.status = Registration.Status.CANCELLED
        registration.cancellation_reason = reason[:200]
        registration.save(update_fields=["status", "cancellation_reason", "updated_at"])
        Event.objects.filter(pk=event_id, seats_taken__gt=0).update(seats_taken=F("seats_taken") - 1)
        REGISTRATION_CANCELLED.send(
            subject=str(registration.id),
            data=payloads.registration_cancelled(registration, was_confirmed=was_confirmed),
            # The saga's id, also when staff cancel from admin (outside any handler).
            correlation_id=str(registration.id),
        )
    log.info(
        "registration cancelled",
        extra={"mice": {"registration_id": str(registration.id), "reason": registration.cancellation_reason}},
    )
    return registration


def registration_schedule_payment_deadline(*, registration_id: uuid.UUID | str) -> Registration:
    """Give a pending registration that has none its payment deadline (the saga's timeout), once.

    `registration_create` sets the deadline itself; this catches registrations made by older code that did
    not (a web process still running during the deploy that introduced deadlines), from upkeep.
    """
    with transaction.atomic():
        registration = (
            Registration.objects.select_for_update(of=("self",)).select_related("event").get(id=registration_id)
        )
        if registration.status != Registration.Status.PENDING or registration.payment_due_at is not None:
            return registration
        registration.payment_due_at = timezone.now() + dt.timedelta(seconds=registration.event.payment_deadline_seconds)
        registration.save(update_fields=["payment_due_at", "updated_at"])
        REGISTRATION_PAYMENT_DEADLINE_REACHED.send(
            subject=str(registration.id),
            data=payloads.registration_payment_deadline_reached(registration),
            correlation_id=str(registration.id),
            deliver_at=registration.payment_due_at,
        )
    log.info(
        "payment deadline scheduled",
        extra={"mice": {"registration_id": str(registration.id), "payment_due_at": str(registration.payment_due_at)}},
    )
    return registration


def registrations_schedule_missing_deadlines(*, limit: int = 500) -> int:
    """Upkeep: give every pending registration that has no payment deadline its deadline (and deadline event).

    Code before payment deadlines made such registrations, a web process still running it during the deploy
    that introduced them; without a deadline a registration whose charge never settles holds its seat for
    good. Returns how many were given one.
    """
    missing = Registration.objects.filter(status=Registration.Status.PENDING, payment_due_at__isnull=True)
    scheduled = 0
    for registration_id in missing.order_by("created_at").values_list("id", flat=True)[:limit]:
        if registration_schedule_payment_deadline(registration_id=registration_id).payment_due_at is not None:
            scheduled += 1
    return scheduled


def registration_expire(*, registration_id: uuid.UUID | str) -> Registration:
    """At the payment deadline: cancel the registration if it is still pending and its charge has not succeeded.

    A charge that succeeded but whose payment.succeeded has not been handled yet confirms the registration
    here instead, so that nothing depends on that message arriving. A charge succeeding after this check
    is refunded (invoicing handles the registration.cancelled emitted here).
    """
    if charge_succeeded(registration_id=registration_id):
        return registration_confirm(registration_id=registration_id)
    return registration_cancel(registration_id=registration_id, reason="payment_deadline_passed", only_pending=True)


def registrations_expire_overdue(*, grace: dt.timedelta, limit: int = 500) -> int:
    """The saga timeout's safety net (upkeep): expire registrations still pending `grace` past their deadline.

    The deadline is normally met by its own message, held in the outbox until `payment_due_at`; this catches
    one whose message was lost or dead-lettered, so no seat stays held for good. It decides exactly as that
    message's handler does (`registration_expire`), so running both, or twice, changes nothing. Returns how
    many registrations it looked at that are no longer pending.
    """
    overdue = Registration.objects.filter(
        status=Registration.Status.PENDING, payment_due_at__lt=timezone.now() - grace
    ).order_by("payment_due_at")
    expired = 0
    for registration_id in overdue.values_list("id", flat=True)[:limit]:
        try:
            registration = registration_expire(registration_id=registration_id)
        except Exception:
            log.exception("overdue registration not expired", extra={"mice": {"registration_id": str(registration_id)}})
            continue
        if registration.status != Registration.Status.PENDING:
            expired += 1
            log.info(
                "overdue registration expired by upkeep",
                extra={"mice": {"registration_id": str(registration_id), "status": registration.status}},
            )
    return expired
