"""The relay, the workers and the recorder each serve their Prometheus metrics, scraped as Prometheus would."""

import re
import sys
import urllib.request

import pytest
from django.db import transaction

from mice.models import DeadLetter, InboxEntry
from mice.outbox import emit
from tests.processes import free_port, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def value(text: str, sample: str) -> float:
    """The value of one sample line (`name{labels}`), 0 if absent."""
    found = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_handler_runs_retries_and_dead_letters_are_counted_by_the_processes_that_saw_them(system):
    # given: a worker (prefork, two pool processes), a relay and a recorder, each with a metrics port
    worker_port, relay_port, recorder_port = free_port(), free_port(), free_port()
    system.worker(MICE_WORKER_METRICS_PORT=str(worker_port))
    system.relay(MICE_RELAY_METRICS_PORT=str(relay_port))
    system.start(
        "recorder", [sys.executable, "manage.py", "dead_letter_recorder"], MICE_RECORDER_METRICS_PORT=str(recorder_port)
    )

    # when: events that two handlers take, and one that fails through its three attempts
    with transaction.atomic():
        pings = [emit("probe.pinged", subject="s", data={}) for _ in range(3)]
        broke = emit("probe.broke", subject="s", data={})
    wait_until(lambda: InboxEntry.objects.filter(event_id__in=[p.id for p in pings]).count() == 6, timeout=30)
    wait_until(lambda: DeadLetter.objects.filter(event_id=broke.id).exists(), timeout=30, what="a dead letter")

    # then: the worker counted every run by handler and outcome, with its duration, across its pool processes
    worker = scrape(worker_port)
    assert value(worker, 'mice_handler_runs_total{handler="tests.probe.record_a",outcome="ok"}') == 3
    assert value(worker, 'mice_handler_runs_total{handler="tests.probe.record_b",outcome="ok"}') == 3
    assert value(worker, 'mice_handler_duration_seconds_count{handler="tests.probe.record_a",outcome="ok"}') == 3
    assert (
        value(worker, 'mice_handler_duration_seconds_bucket{handler="tests.probe.record_a",le="+Inf",outcome="ok"}')
        == 3
    )
    assert value(worker, 'mice_handler_runs_total{handler="tests.probe.always_fails",outcome="retrying"}') == 2
    assert value(worker, 'mice_handler_retries_total{handler="tests.probe.always_fails"}') == 2
    assert value(worker, 'mice_handler_dead_lettered_total{handler="tests.probe.always_fails"}') == 1

    # the relay counted what it published, the recorder what it stored
    relay = scrape(relay_port)
    assert value(relay, 'mice_events_relayed_total{event_type="probe.pinged"}') == 3
    assert value(relay, 'mice_events_relayed_total{event_type="probe.broke"}') == 1
    wait_until(
        lambda: (
            value(
                scrape(recorder_port),
                'mice_dead_letters_recorded_total{handler="tests.probe.always_fails",reason="rejected"}',
            )
            == 1
        ),
        timeout=10,
        what="the recorder's count",
    )
    # and no label holds anything but handler names, outcomes, reasons and event types
    ours = "\n".join(line for line in (worker + relay).splitlines() if line.startswith("mice_"))
    labels = set(re.findall(r'(\w+)="', ours))
    assert labels <= {"handler", "outcome", "event_type", "le"}, labels
