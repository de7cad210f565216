"""anymail's tracking webhook (Postmark's payloads, as Postmark posts them) moves the log to delivered or bounced."""

from __future__ import annotations

import base64
import json

import pytest
from django.conf import settings

from mice.events import Envelope
from notifications.handlers import send_registration_received
from notifications.models import EmailLog
from registrations.events import REGISTRATION_CREATED
from tests.notifications.conftest import created

pytestmark = pytest.mark.django_db

URL = "/anymail/postmark/tracking/"
POSTMARK_MESSAGE_ID = "883953f4-6105-42a2-a16a-77a8eac79483"


def credentials(secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(secret.encode()).decode()}


def sent_email() -> EmailLog:
    """An e-mail sent and recorded, with the id Postmark's API would have answered (anymail_status)."""
    data = created()
    send_registration_received(Envelope.new(REGISTRATION_CREATED, subject=data["registration_id"], data=data))
    EmailLog.objects.filter(registration_id=data["registration_id"]).update(esp_message_id=POSTMARK_MESSAGE_ID)
    return EmailLog.objects.get(registration_id=data["registration_id"])


def delivery(email: EmailLog) -> dict:
    return {
        "RecordType": "Delivery",
        "ServerID": 23,
        "MessageStream": "outbound",
        "MessageID": POSTMARK_MESSAGE_ID,
        "Recipient": email.recipient,
        "Tag": "received",
        "DeliveredAt": "2027-01-10T16:33:54.9070259Z",
        "Details": "Test delivery webhook details",
        "Metadata": {"registration_id": str(email.registration_id), "event_type": "registration.created"},
    }


def bounce(email: EmailLog) -> dict:
    return {
        "RecordType": "Bounce",
        "MessageStream": "outbound",
        "ID": 4323372036854775807,
        "Type": "HardBounce",
        "TypeCode": 1,
        "Name": "Hard bounce",
        "Tag": "received",
        "MessageID": POSTMARK_MESSAGE_ID,
        "Metadata": {"registration_id": str(email.registration_id)},
        "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": email.recipient,
        "From": "no-reply@localhost",
        "BouncedAt": "2027-01-10T16:40:54.9070259Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": email.subject,
    }


def post(client, payload: dict, **headers: str):
    return client.post(URL, data=json.dumps(payload), content_type="application/json", **headers)


def test_a_delivery_marks_the_email_delivered_and_keeps_the_event(client):
    email = sent_email()

    answer = post(client, delivery(email), **credentials(settings.ANYMAIL["WEBHOOK_SECRET"]))

    assert answer.status_code == 200
    email.refresh_from_db()
    assert email.status == "delivered"
    [event] = email.tracking_events.all()
    assert event.event_type == "delivered" and event.esp_event["MessageID"] == POSTMARK_MESSAGE_ID
    assert event.occurred_at is not None


def test_a_bounce_after_the_delivery_marks_it_bounced(client):
    email = sent_email()
    auth = credentials(settings.ANYMAIL["WEBHOOK_SECRET"])

    post(client, delivery(email), **auth)
    post(client, bounce(email), **auth)
    post(client, delivery(email), **auth)  # a late, repeated delivery does not undo the bounce

    email.refresh_from_db()
    assert email.status == "bounced"
    assert [e.event_type for e in email.tracking_events.all()] == ["delivered", "bounced", "delivered"]
    assert "550 5.1.1" in email.tracking_events.get(event_type="bounced").mta_response


def test_a_webhook_before_we_recorded_the_esp_id_finds_the_email_by_its_metadata(client):
    email = sent_email()
    EmailLog.objects.filter(pk=email.pk).update(esp_message_id="", status="queued")
    payload = delivery(email) | {"Metadata": {"registration_id": str(email.registration_id), "kind": "received"}}

    post(client, payload, **credentials(settings.ANYMAIL["WEBHOOK_SECRET"]))

    email.refresh_from_db()
    assert (email.status, email.esp_message_id) == ("delivered", POSTMARK_MESSAGE_ID)


@pytest.mark.parametrize("auth", [{}, credentials("tracking:wrong-secret"), credentials("someone:else")])
def test_without_the_secret_the_webhook_is_refused_and_changes_nothing(client, auth):
    email = sent_email()

    answer = post(client, bounce(email), **auth)

    assert answer.status_code == 400
    email.refresh_from_db()
    assert email.status == "sent" and not email.tracking_events.exists()


def test_an_event_for_an_unknown_message_is_acknowledged_and_ignored(client):
    email = sent_email()
    payload = delivery(email) | {"MessageID": "00000000-0000-0000-0000-000000000000", "Metadata": {}}

    answer = post(client, payload, **credentials(settings.ANYMAIL["WEBHOOK_SECRET"]))

    assert answer.status_code == 200  # Postmark would retry anything else, for nothing
    email.refresh_from_db()
    assert email.status == "sent"
