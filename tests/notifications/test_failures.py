"""Send errors against a real SMTP server: an outage is retried, a refused recipient is not."""

from __future__ import annotations

import logging

import pytest
from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused

from mice.events import Envelope
from notifications.failures import EmailUnavailable, is_permanent, is_transient
from notifications.handlers import OUTAGE, send_registration_received
from notifications.models import EmailLog
from registrations.events import REGISTRATION_CREATED
from tests.notifications.conftest import created
from tests.processes import free_port

pytestmark = pytest.mark.django_db


def receive(data):
    send_registration_received(Envelope.new(REGISTRATION_CREATED, subject=data["registration_id"], data=data))


def test_one_message_reaches_the_smtp_server_with_one_recipient_despite_a_cr_lf_name(smtp_server):
    data = created(first_name="Eve\r\nBcc: victim@example.com")

    receive(data)

    [message] = smtp_server.received()
    assert message["rcpt_tos"] == ["ada@example.com"]
    assert message["bcc"] == "" and "Bcc" not in message["header_names"]
    assert message["message_id"] == f"<received.{data['registration_id']}@localhost>"
    assert EmailLog.objects.get(registration_id=data["registration_id"]).status == "sent"


def test_a_recipient_refused_for_good_fails_the_row_without_retry_and_logs_no_address(smtp_server, caplog):
    data = created(email="refused-ada@example.com")

    with caplog.at_level(logging.INFO, logger="mice"):
        receive(data)  # returns: the handler is done, nothing is retried or dead-lettered

    row = EmailLog.objects.get(registration_id=data["registration_id"])
    assert row.status == "failed" and "550" in row.error and row.attempts == 1
    assert smtp_server.received() == []
    [warning] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning.getMessage() == "e-mail refused for good, not retried"
    assert not any("refused-ada" in (r.getMessage() + str(getattr(r, "mice", ""))) for r in caplog.records)


def test_a_temporary_refusal_is_retried(smtp_server):
    data = created(email="later-ada@example.com")

    with pytest.raises(EmailUnavailable):
        receive(data)

    row = EmailLog.objects.get(registration_id=data["registration_id"])
    assert row.status == "queued" and "451" in row.error and row.attempted_at is None
    assert OUTAGE.is_transient(EmailUnavailable())


def test_a_server_that_is_not_there_is_retried_and_the_email_goes_once_it_is(settings, tmp_path):
    from tests.notifications import smtp_sink

    port = free_port()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 2
    data = created()

    with pytest.raises(EmailUnavailable) as raised:
        receive(data)
    assert isinstance(raised.value.__cause__, ConnectionRefusedError)

    controller = smtp_sink.start(port, tmp_path / "smtp.jsonl")
    try:
        receive(data)  # the retry
    finally:
        controller.stop()
    assert len(smtp_sink.received(tmp_path / "smtp.jsonl")) == 1
    row = EmailLog.objects.get(registration_id=data["registration_id"])
    assert (row.status, row.attempts, row.error) == ("sent", 2, "")


def test_the_retry_policy_rides_out_a_ten_minute_outage():
    assert sum(OUTAGE.delay_ms(n) for n in range(1, OUTAGE.attempts)) > 10 * 60 * 1000


@pytest.mark.parametrize(
    ("error", "transient", "permanent"),
    [
        (AnymailAPIError("down", status_code=503), True, False),
        (AnymailAPIError("no response"), True, False),
        (AnymailAPIError("slow down", status_code=429), True, False),
        (AnymailAPIError("invalid request", status_code=422), False, True),
        (AnymailAPIError("bad token", status_code=401), False, False),  # ours to fix: dead-lettered, replayable
        (AnymailRecipientsRefused("inactive recipient"), False, True),
        (TimeoutError("timed out"), True, False),
        (ConnectionResetError("reset"), True, False),
        (ValueError("a bug"), False, False),
    ],
)
def test_esp_errors_are_classified(error, transient, permanent):
    assert (is_transient(error), is_permanent(error)) == (transient, permanent)
