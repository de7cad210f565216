"""Attendees' personal data stays where it belongs: never in the logs (INFO and above) of the web, relay and
worker processes, never in a metric; and each event payload carries only what its consumers need.

tests/mice/test_logfmt.py follows the saga's relay and worker logs; this follows the web process as well,
through the answers that echo input back (a refused duplicate, an invalid e-mail address).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client import REGISTRY

from mice.events import EVENT_TYPES
from mice.models import OutboxMessage
from mice.subscriptions import SUBSCRIPTIONS
from registrations.models import Registration
from tests.factories import make_event
from tests.processes import wait_until

ATTENDEE = {
    "first_name": "Hedwig",
    "last_name": "Kieslerova",
    "email": "hedwig.kieslerova@example.com",
    "company": "Frequency Hopping Ltd",
}
AT_LEAST_INFO = {"info", "warning", "error", "critical"}
# What a label of ours may be named: code's own vocabulary, never a value an attendee typed.
LABEL_NAMES = {"event_type", "handler", "outcome", "reason"}
# Keys that would mean card data or a payment credential travelled in an event.
CARD_KEYS = {"payment_token", "token", "card", "card_number", "pan", "cvc", "cvv", "exp_month", "exp_year", "expiry"}
# The apps that need the attendee's name and address: notifications writes to them, invoicing bills them.
NEED_THE_ATTENDEE = {"notifications", "invoicing"}


def http(url: str, *, body: dict[str, Any] | None = None) -> int:
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def leaked(text: str) -> list[str]:
    lowered = text.lower()
    return [value for value in (*ATTENDEE.values(), "kieslerova") if value.lower() in lowered]


def test_every_metric_of_ours_is_labelled_by_code_names_only():
    ours = [metric for metric in REGISTRY.collect() if metric.name.startswith("mice_")]

    assert ours
    for metric in ours:
        for sample in metric.samples:
            assert set(sample.labels) <= LABEL_NAMES | {"le"}, (metric.name, sample.labels)


@pytest.mark.django_db(transaction=True)
def test_web_relay_and_worker_log_and_count_no_personal_data(system):
    # given: every process logging JSON lines, as a log shipper would receive them
    env = {"LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}
    base_url = system.procfile_web(**env)  # gunicorn as deployed, its access log included
    relay = system.relay(**env)
    worker = system.worker(**env)
    event = make_event()
    body = {"event": event.slug, **ATTENDEE, "payment_token": "tok_visa"}

    # when: the attendee registers, registers again (409), and mistypes an address (400, the input echoed back)
    assert http(f"{base_url}/api/registrations/", body=body) == 202
    assert http(f"{base_url}/api/registrations/", body=body) == 409
    typo = {**body, "email": "hedwig.kieslerova(at)example.com", "first_name": "Hedwig\nKieslerova"}
    assert http(f"{base_url}/api/registrations/", body=typo) == 400
    registration = Registration.objects.get()
    assert http(f"{base_url}/registrations/{registration.pk}/") == 200
    wait_until(lambda: Registration.objects.get(pk=registration.pk).status == "confirmed", timeout=60, what="confirmed")
    wait_until(lambda: str(registration.pk) in worker.log(), what="the worker's handler lines")
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=30) as response:
        metrics = response.read().decode()

    # then
    for process in (system_web_process(system), relay, worker):
        for line in process.log().splitlines():
            try:
                level = json.loads(line).get("level")
            except ValueError:
                level = None  # gunicorn's own lines and its access log: checked whatever they say
            if level is None or level in AT_LEAST_INFO:
                assert leaked(line) == [], (process.name, line)
    assert "mice_events_emitted" in metrics and leaked(metrics) == []
    # and no event of the whole saga carried the payment token or anything like card data
    envelopes = [row.envelope for row in OutboxMessage.objects.all()]
    assert {envelope["type"] for envelope in envelopes} >= {"registration.created", "payment.succeeded"}
    for envelope in envelopes:
        assert "tok_visa" not in json.dumps(envelope), envelope["type"]
        assert keys_in(envelope["data"]) & CARD_KEYS == set(), envelope["type"]


def keys_in(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {key for item in value.values() for key in keys_in(item)}
    if isinstance(value, list):
        return {key for item in value for key in keys_in(item)}
    return set()


def test_event_payloads_carry_the_attendee_only_to_those_who_need_it_and_never_card_data():
    for declared in EVENT_TYPES.values():
        if declared.retired or declared.producer == "probe":  # the test suite's own types
            continue
        keys = keys_in(dict(declared.example))
        assert keys & CARD_KEYS == set(), declared.name
        if "attendee" in declared.example:
            assert set(declared.example["attendee"]) <= {"first_name", "last_name", "email", "company"}
            consumers = {s.handler.split(".")[0] for s in SUBSCRIPTIONS.values() if s.event_type == declared.name}
            assert consumers & NEED_THE_ATTENDEE, f"{declared.name} carries the attendee to {consumers} only"


def system_web_process(system: Any) -> Any:
    [web] = [process for process in system.processes if process.name == "web"]
    return web
