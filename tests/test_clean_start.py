"""A clean start prints no warnings: every background process of the Procfile, started as the Procfile says."""

import os
import re

import pytest

from tests.broker import queue_depth
from tests.processes import procfile_command, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

STARTED = {
    "relay": "relay connected to the broker",
    "worker": "ready.",
    "recorder": "dead-letter recorder started",
    "scheduler": "upkeep job done",
}

# A logged warning or error (mice/logfmt.py), a Python warning (`file:line: SomeWarning: text`) or a system check.
WARNING = re.compile(r"level=(warning|error|critical)\b|\w+Warning: |WARNINGS:|System check identified")


def warnings_in(log: str) -> list[str]:
    lines = [line for line in log.splitlines() if WARNING.search(line)]
    if os.geteuid() == 0:  # Celery's advice not to run a worker as root: this machine's account, not the code
        lines = [line for line in lines if not ("SecurityWarning" in line and "superuser privileges" in line)]
    return lines


@pytest.mark.parametrize("name", sorted(STARTED))
def test_a_procfile_process_starts_without_warnings(system, broker_url, name):
    # when
    process = system.start(name, ["/bin/sh", "-c", procfile_command(name)], MICE_UPKEEP_INTERVAL="0.5")

    # then
    wait_until(lambda: STARTED[name] in process.log() or not process.alive(), timeout=60, what=f"{name} started")
    assert process.alive(), process.log()
    assert warnings_in(process.log()) == []


def test_the_worker_declares_no_queues_for_celery_delayed_delivery(system, broker_url):
    # Retries wait in each handler's own TTL'd queues (mice/topology.py), so Celery's 28 delay queues are not used.
    system.worker()

    assert queue_depth(broker_url, "celery_delayed_0") is None
    assert queue_depth(broker_url, "celery_delayed_27") is None
