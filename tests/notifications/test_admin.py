"""Staff find a registration's e-mails in admin; nobody edits the log there."""

from __future__ import annotations

import pytest

from mice.events import Envelope
from notifications.handlers import send_registration_received
from notifications.models import EmailLog
from notifications.selectors import email_log_url
from registrations.events import REGISTRATION_CREATED
from tests.notifications.conftest import created

pytestmark = pytest.mark.django_db


def receive(**attendee_fields):
    data = created(**attendee_fields)
    send_registration_received(Envelope.new(REGISTRATION_CREATED, subject=data["registration_id"], data=data))
    return EmailLog.objects.get(registration_id=data["registration_id"])


def test_a_registrations_emails_are_listed_by_its_id(admin_client):
    ada = receive(email="ada@example.com")
    receive(email="grace@example.com")

    by_link = admin_client.get(email_log_url(registration_id=ada.registration_id))
    by_search = admin_client.get("/admin/notifications/emaillog/", {"q": str(ada.registration_id)})
    by_address = admin_client.get("/admin/notifications/emaillog/", {"q": "grace@"})
    by_filters = admin_client.get("/admin/notifications/emaillog/", {"kind": "received", "status": "sent"})

    for answer in (by_link, by_search):
        assert answer.status_code == 200
        assert list(answer.context["cl"].result_list) == [ada]
    assert [e.recipient for e in by_address.context["cl"].result_list] == ["grace@example.com"]
    assert by_filters.context["cl"].result_count == 2


def test_the_log_is_read_only(admin_client):
    email = receive()

    page = admin_client.get(f"/admin/notifications/emaillog/{email.pk}/change/")

    assert page.status_code == 200
    assert b"Registration received: PyCon 2027" in page.content
    assert admin_client.get("/admin/notifications/emaillog/add/").status_code == 403
    assert admin_client.post(f"/admin/notifications/emaillog/{email.pk}/delete/", {"post": "yes"}).status_code == 403
    assert EmailLog.objects.filter(pk=email.pk).exists()
