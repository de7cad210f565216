"""Web pages: upcoming events, the registration form, the attendee's live status page."""

from __future__ import annotations

import dataclasses
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ratelimits.clients import client_address
from ratelimits.rules import Scope
from ratelimits.services import Verdict, rate_limit_hit, rate_limit_release
from registrations.forms import RegistrationForm
from registrations.idempotency import IdempotencyKeyReused, fingerprint, idempotent_answer_stored, idempotent_call
from registrations.models import Event, Registration
from registrations.refusals import refusal_message
from registrations.selectors import event_get, event_list_upcoming, registration_get
from registrations.services import RegistrationRefused, registration_cancel, registration_create
from registrations.signals import registration_documents_get

FINAL_STATUSES = {Registration.Status.CONFIRMED, Registration.Status.CANCELLED}

# Cancellation reasons are stable codes ("payment_failed:<decline code>"); attendees read these instead.
_SEAT_RELEASED = "so the registration was cancelled and the seat released."
CANCELLATION_MESSAGES = {
    "payment_failed:card_declined": f"Your card was declined, {_SEAT_RELEASED}",
    "payment_failed:invalid_token": f"The payment method was not accepted, {_SEAT_RELEASED}",
    "payment_deadline_passed": f"The payment did not arrive in time, {_SEAT_RELEASED}",
    "cancelled_by_attendee": "You cancelled this registration and its seat was released. "
    "Any payment is refunded to your card.",
    "cancelled_by_staff": "The organiser cancelled this registration and its seat was released. "
    "Any payment is refunded to your card.",
}
PAYMENT_FAILED_MESSAGE = f"The payment did not go through, {_SEAT_RELEASED}"
CANCELLED_MESSAGE = "This registration was cancelled and its seat released."


class HttpResponseSeeOther(HttpResponseRedirect):
    """After a POST, the browser must GET the next page (and never resend the form)."""

    status_code = 303


@dataclasses.dataclass(frozen=True)
class Availability:
    """Whether an event takes registrations now, and the words for it."""

    state: str  # open | sold_out | not_open | closed
    event: Event

    @property
    def is_open(self) -> bool:
        return self.state == "open"


def availability_of(event: Event) -> Availability:
    now = timezone.now()
    if now < event.registration_opens_at:
        return Availability("not_open", event)
    if now >= event.registration_closes_at:
        return Availability("closed", event)
    if event.seats_left == 0:
        return Availability("sold_out", event)
    return Availability("open", event)


def cancellation_message(reason: str) -> str:
    if reason in CANCELLATION_MESSAGES:
        return CANCELLATION_MESSAGES[reason]
    if reason.startswith("payment_failed:"):
        return PAYMENT_FAILED_MESSAGE
    return CANCELLED_MESSAGE


@require_GET
def event_list(request: HttpRequest) -> HttpResponse:
    events = [availability_of(event) for event in event_list_upcoming()]
    return render(request, "registrations/event_list.html", {"events": events})


@require_http_methods(["GET", "POST"])
def registration_form(request: HttpRequest, slug: str) -> HttpResponse:
    event = event_get(slug=slug)
    if event is None:
        return _not_found(request, "There is no such event. It may have been renamed or removed.")
    if request.method == "GET":
        availability = availability_of(event)
        if not availability.is_open:
            return render(request, "registrations/registration_unavailable.html", {"availability": availability})
        return _render_form(request, RegistrationForm(event=event))

    form = RegistrationForm(request.POST, event=event)
    if not form.is_valid():
        if "submission_token" in form.errors:
            form.renew_submission_token()
        return _render_form(request, form, status=422)
    # Whatever happened to the event since the form was rendered, the service has the last word;
    # a replayed submission gets the first one's answer even if the event has sold out meanwhile.
    data = form.registration_data()
    key = f"form:{form.cleaned_data['submission_token']}"
    # Rate-limited per address like the API; a resubmitted form whose answer is stored creates nothing, so it
    # is neither counted nor refused.
    verdict = None
    if not idempotent_answer_stored(key=key):
        verdict = rate_limit_hit(scope=Scope.REGISTRATIONS, client=client_address(request))
        if not verdict.allowed:
            minutes = verdict.retry_after_minutes
            form.add_error(
                None,
                "Too many registrations were sent from your network address. "
                f"Please try again in {minutes} minute{'s' if minutes != 1 else ''}.",
            )
            response = _render_form(request, form, status=429)
            response["Retry-After"] = str(verdict.retry_after)
            return response

    def produce() -> tuple[int, dict[str, Any]]:
        registration = registration_create(**data)
        return 303, {"id": str(registration.id)}

    try:
        _, body, replayed = idempotent_call(key=key, request_fingerprint=fingerprint(data), produce=produce)
    except RegistrationRefused as refusal:
        form.add_error(None, refusal_message(refusal))
        return _render_form(request, form, status=409)
    except IdempotencyKeyReused:
        _take_back(verdict)
        form.add_error(None, "This form was already submitted, with different details.")
        return _render_form(request, form, status=409, already_submitted=True)
    except Exception:
        _take_back(verdict)  # nothing was registered (the server failed): trying again is not charged twice
        raise
    if replayed:  # the same form sent twice at once: the other request registered, this one created nothing
        _take_back(verdict)
    return HttpResponseSeeOther(reverse("pages:registration_detail", args=[body["id"]]))


@require_GET
def registration_detail(request: HttpRequest, registration_id: str) -> HttpResponse:
    registration = registration_get(registration_id=registration_id)
    if registration is None:
        return _not_found(request, "There is no such registration. Please check the link you followed.")
    documents = registration_documents_get(registration_id=registration.id)
    context = {
        "registration": registration,
        "event": registration.event,
        "is_final": registration.status in FINAL_STATUSES,
        "documents": documents,
        # A paid registration's documents (its invoice) follow its confirmation: the page keeps watching for them.
        "awaiting_documents": registration.status == Registration.Status.CONFIRMED
        and not registration.event.is_free
        and not documents,
        "cancellation_message": cancellation_message(registration.cancellation_reason),
        "event_is_open": availability_of(registration.event).is_open,
        # The REST API's view of the registration; the page polls it until the status is final.
        "poll_url": reverse("api-registration-detail", kwargs={"registration_id": registration.id}),
    }
    response = render(request, "registrations/registration_detail.html", context)
    response["Cache-Control"] = "no-store"  # the status changes by itself; never show a stale copy
    return response


@require_POST
def registration_cancel_by_attendee(request: HttpRequest, registration_id: str) -> HttpResponse:
    """The status page's "cancel my registration": whoever holds the page's unguessable link may.

    Cancelling twice changes nothing; a paid registration is refunded by invoicing, asynchronously.
    """
    registration = registration_get(registration_id=registration_id)
    if registration is None:
        return _not_found(request, "There is no such registration. Please check the link you followed.")
    registration_cancel(registration_id=registration.id, reason="cancelled_by_attendee")
    return HttpResponseSeeOther(reverse("pages:registration_detail", args=[registration.id]))


def _take_back(verdict: Verdict | None) -> None:
    """Only submissions that registered someone or were refused count against the registration limit."""
    if verdict is not None:
        rate_limit_release(verdict=verdict)


def _render_form(
    request: HttpRequest, form: RegistrationForm, *, status: int = 200, already_submitted: bool = False
) -> HttpResponse:
    context = {"form": form, "event": form.event, "already_submitted": already_submitted}
    return render(request, "registrations/registration_form.html", context, status=status)


def _not_found(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "registrations/not_found.html", {"message": message}, status=404)
