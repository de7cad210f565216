"""POST /bench/baseline/registrations/: the naive design, with the saga's outside calls inside the request.

The event-driven path answers 202 once the registration and its outbox row are committed; a worker then
charges, issues the invoice and sends the e-mails. Here the same view registers, and then, before answering,
makes each outside call in turn and waits for it: the gateway, the PDF, the SMTP server, RabbitMQ. What
the comparison shows is what waiting on them costs registering when one of them is slow or down.

It favours the baseline where it can: no invoice number is taken (no lock on the series), nothing is
stored, and one e-mail is sent where the saga sends two or three.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from config.celery import app  # the Celery app of the worker, configured from the project's settings
from invoicing.documents import render, unicode_fonts
from invoicing.gateways import get_gateway
from registrations.apis.registrations import RegistrationCreateApi
from registrations.selectors import event_get

_register = RegistrationCreateApi.as_view()
# Once per process, when the urlconf is loaded, rather than in the first measured requests: the fonts take
# seconds to parse (the worker parses them once too), and the Celery app is what a naive design imports.
_FONTS = unicode_fonts()


@csrf_exempt
def registration_create_synchronously(request: HttpRequest) -> HttpResponse:
    """Register exactly as POST /api/registrations/ does (the same view: validation, rate limit, the commit),
    then charge, render the invoice, send it and publish an event, each a blocking call; any failure is the
    request's (a 500), as in the design this stands for."""
    form = json.loads(request.body)  # read first: the API view reads the stream, after which body is gone
    response = _register(request)
    if response.status_code != 202:
        return response
    registration_id = str(getattr(response, "data", {})["id"])  # a DRF Response, not yet rendered
    event = event_get(slug=form["event"])
    if event is None:
        raise LookupError(f"event {form['event']!r} vanished after its registration")
    charge = get_gateway().charge(
        token=form["payment_token"], amount=event.price, currency=event.currency, idempotency_key=registration_id
    )
    if not charge.succeeded:
        raise RuntimeError(f"charge declined: {charge.decline_code}")
    pdf = render(_invoice(registration_id, form, event, charge.reference), fonts=_FONTS)
    message = EmailMessage(
        subject=f"Your registration for {event.name}",
        body=f"Dear {form['first_name']},\n\nyou are registered for {event.name}. Your invoice is attached.\n",
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[form["email"]],
    )
    message.attach(f"invoice-{registration_id}.pdf", pdf, "application/pdf")
    message.send()  # the configured backend: SMTP in the benchmark, a new connection per message as Django does
    _publish({"type": "registration.confirmed", "registration_id": registration_id})
    return response


def _invoice(registration_id: str, form: dict[str, Any], event: Any, reference: str) -> dict[str, Any]:
    """The content invoicing.issuing would freeze for this registration (amounts with VAT included)."""
    gross = event.price
    net = (gross / (1 + event.vat_rate / 100)).quantize(Decimal("0.01"))
    return {
        "title": "Invoice",
        "number": f"BASELINE-{registration_id[:8]}",
        "issued_on": timezone.localdate().isoformat(),
        "seller": {
            "name": settings.MICE_SELLER_NAME,
            "address": settings.MICE_SELLER_ADDRESS.splitlines(),
            "vat_id": settings.MICE_SELLER_VAT_ID,
        },
        "buyer": {
            "name": f"{form['first_name']} {form['last_name']}",
            "company": form.get("company", ""),
            "email": form["email"],
        },
        "line_item": {
            "slug": event.slug,
            "description": event.name,
            "venue": event.venue,
            "starts_on": timezone.localdate(event.starts_at).isoformat(),
            "ends_on": timezone.localdate(event.ends_at).isoformat(),
        },
        "currency": event.currency,
        "net": f"{net:.2f}",
        "vat_rate": f"{event.vat_rate:.2f}",
        "vat": f"{gross - net:.2f}",
        "gross": f"{gross:.2f}",
        "payment": {"gateway": "sandbox", "reference": reference, "registration_id": registration_id},
    }


def _publish(body: dict[str, Any]) -> None:
    """Publish as Celery's `delay()` does: a pooled producer, its retry policy, confirms (the project's
    CELERY_BROKER_TRANSPORT_OPTIONS). To the default exchange under a key no queue is bound to: the broker
    confirms and drops it, so no consumer's work weighs on the measurement, only the round trip does."""
    with app.producer_pool.acquire(block=True) as producer:
        producer.publish(
            body,
            exchange="",
            routing_key="bench.baseline.nowhere",
            serializer="json",
            retry=True,
            retry_policy=app.conf.task_publish_retry_policy,
        )
