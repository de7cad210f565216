"""The send protocol under concurrency: two deliveries of one event at the same moment send one e-mail."""

from __future__ import annotations

import threading

import pytest
from django.core import mail
from django.db import connection

from notifications.emails import received_draft
from notifications.models import EmailLog
from notifications.services import SendInProgress, email_send
from tests.notifications.conftest import created

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_deliveries_of_one_event_send_one_email(mailoutbox):
    data = created()
    draft = received_draft(data, event_type="registration.created")
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def deliver() -> None:
        barrier.wait()
        try:
            email_send(draft=draft)
            outcomes.append("returned")
        except SendInProgress:
            outcomes.append("retry later")
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(mail.outbox) == 1
    assert len(outcomes) == 8  # the others found it sent, or under way (and would retry later)
    row = EmailLog.objects.get(registration_id=data["registration_id"])
    assert (row.status, row.attempts) == ("sent", 1)
