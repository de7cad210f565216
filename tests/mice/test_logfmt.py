"""Logs as JSON lines (LOG_FORMAT=json): what a log shipper indexes, and what it must never receive."""

import json
import logging

import pytest

from mice.logfmt import JsonLinesFormatter, LogfmtFormatter
from registrations.models import Registration
from registrations.services import registration_create
from tests.factories import make_event
from tests.processes import wait_until

AT_LEAST_INFO = {"info", "warning", "error", "critical"}


def a_record(message: str, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("mice.handler", logging.INFO, __file__, 1, message, None, None)
    made.__dict__.update(extra)
    return made


def test_a_json_line_has_the_mice_fields_at_the_top_and_no_other_library_extras():
    line = a_record(
        "handler ran",
        mice={"event_id": "e1", "correlation_id": "c1", "handler": "notifications.send", "outcome": "ok"},
        data={"args": "[{'attendee': {'email': 'ada@example.com'}}]"},  # what Celery's task lines add
    )

    parsed = json.loads(JsonLinesFormatter().format(line))

    assert parsed["message"] == "handler ran" and parsed["level"] == "info" and parsed["logger"] == "mice.handler"
    assert (parsed["event_id"], parsed["correlation_id"], parsed["handler"]) == ("e1", "c1", "notifications.send")
    assert "data" not in parsed and "mice" not in parsed
    assert "ada@example.com" not in json.dumps(parsed)


def test_logfmt_stays_the_default_format():
    from django.conf import settings

    assert settings.LOG_FORMAT == "logfmt"
    line = LogfmtFormatter().format(a_record("handler ran", mice={"event_id": "e1", "handler": "h"}))
    assert 'msg="handler ran" event_id=e1 handler=h' in line


def settled(registration):
    wait_until(
        lambda: Registration.objects.get(pk=registration.pk).status != "pending",
        timeout=60,
        what=f"registration {registration.pk} leaves pending",
    )
    return Registration.objects.get(pk=registration.pk)


@pytest.mark.django_db(transaction=True)
def test_json_logs_carry_the_handler_fields_and_never_the_attendee(system):
    # given: the relay and a worker logging JSON lines; e-mails kept in the worker's memory, not printed
    env = {"LOG_FORMAT": "json", "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend"}
    worker = system.worker(concurrency=2, **env)
    relay = system.relay(**env)
    event = make_event(capacity=3)

    # when: one attendee pays, another's card is declined
    paid = registration_create(
        event_slug=event.slug,
        first_name="Grace",
        last_name="Hopperstein",
        email="grace.hopperstein@example.com",
        payment_token="tok_visa",
    )
    declined = registration_create(
        event_slug=event.slug,
        first_name="Alan",
        last_name="Turingford",
        email="alan.turingford@example.com",
        payment_token="tok_chargeDeclined",
    )
    assert settled(paid).status == "confirmed"
    assert settled(declined).status == "cancelled"
    for registration in (paid, declined):
        wait_until(lambda r=registration: f'"correlation_id": "{r.pk}"' in worker.log(), what="handler lines")

    # then: every line is one JSON object
    records = []
    for process in (worker, relay):
        for line in process.log().splitlines():
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                pytest.fail(f"the {process.name} wrote a line that is not JSON: {line!r}")
    assert all({"time", "level", "logger", "message"} <= record.keys() for record in records)

    # the handler runs carry the event, the saga and the handler, as top-level fields
    runs = [record for record in records if record["message"] == "handler ran"]
    assert {str(paid.pk), str(declined.pk)} <= {record["correlation_id"] for record in runs}
    for record in runs:
        assert record["event_id"] and record["correlation_id"] and record["handler"], record
        assert record["outcome"] == "ok", record

    # no attendee's e-mail address or name at INFO or above
    for record in records:
        if record["level"] in AT_LEAST_INFO:
            text = json.dumps(record, ensure_ascii=False).lower()
            for secret in ("grace.hopperstein@example.com", "hopperstein", "alan.turingford@example.com", "turingford"):
                assert secret not in text, record
