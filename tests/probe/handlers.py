"""Probe handlers: each records an Effect when it commits."""

import os
import signal
import time

from mice.events import Envelope
from mice.handlers import RetryPolicy, subscribe
from mice.models import HandlerFailure
from mice.outbox import emit
from tests.probe.models import Effect, Switch


class FlakyError(Exception):
    """A stand-in for a provider timing out."""


def _record(envelope: Envelope, handler: str) -> None:
    Effect.objects.create(event_id=envelope.id, handler=handler)


@subscribe("probe.pinged")
def record_a(envelope: Envelope) -> None:
    _record(envelope, "probe.record_a")


@subscribe("probe.pinged")
def record_b(envelope: Envelope) -> None:
    _record(envelope, "probe.record_b")


@subscribe("probe.flaked", retry=RetryPolicy(transient=(FlakyError,), attempts=4, backoff=0.5, cap=2.0))
def flaky(envelope: Envelope) -> None:
    # Failed attempts are recorded by the machinery outside the rolled-back handler transaction.
    failed_before = HandlerFailure.objects.filter(event_id=envelope.id, handler="tests.probe.flaky").count()
    if failed_before < int(envelope.data.get("failures", 2)):
        raise FlakyError(f"transient failure {failed_before + 1}")
    _record(envelope, "probe.flaky")


@subscribe("probe.stepped", retry=RetryPolicy(transient=(FlakyError,), attempts=4, backoff=0.2, cap=1.0), atomic=False)
def stepped(envelope: Envelope) -> None:
    """Like a call outside the database: the step it records before failing stays committed."""
    Effect.objects.create(event_id=envelope.id, handler="probe.stepped.before")
    if Effect.objects.filter(event_id=envelope.id, handler="probe.stepped.before").count() <= int(
        envelope.data.get("failures", 1)
    ):
        raise FlakyError("failed after the committed step")
    Effect.objects.create(event_id=envelope.id, handler="probe.stepped")


@subscribe("probe.broke", retry=RetryPolicy(transient=(FlakyError,), attempts=3, backoff=0.2, cap=1.0))
def always_fails(envelope: Envelope) -> None:
    """Fails until the 'fixed' switch is on: transiently (so through every attempt), or as a bug."""
    if not Switch.objects.filter(name="fixed", on=True).exists():
        if envelope.data.get("kind") == "bug":
            raise ValueError("always_fails has a bug: not transient, no retry")
        raise FlakyError("always_fails is down until the 'fixed' switch is on")
    _record(envelope, "probe.always_fails")


@subscribe("probe.crashed", delivery_limit=2)
def crash(envelope: Envelope) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@subscribe("probe.slept")
def slow(envelope: Envelope) -> None:
    time.sleep(float(envelope.data.get("seconds", 0.1)))
    _record(envelope, "probe.slow")


@subscribe("probe.chained")
def chain(envelope: Envelope) -> None:
    emit("probe.pinged", subject=envelope.subject, data={"n": 0})


# A handler of the real saga whose outside system is down: only processes started with MICE_PROBE_FAULT_FILE
# have it, and it fails transiently (so through every retry, then to the dead-letter queue) while that file
# exists. A test clears the fault by deleting the file while the worker keeps running.
FAULT_FILE = os.environ.get("MICE_PROBE_FAULT_FILE", "")
if FAULT_FILE:

    @subscribe("registration.confirmed", retry=RetryPolicy(transient=(FlakyError,), attempts=3, backoff=0.2, cap=1.0))
    def export_attendee(envelope: Envelope) -> None:
        if os.path.exists(FAULT_FILE):
            raise FlakyError("the attendee export is down (the fault file exists)")
        _record(envelope, "probe.export_attendee")


if os.environ.get("MICE_PROBE_NEW_CODE"):  # a deploy adding handlers (see tests/probe/events.py)

    @subscribe("probe.pinged")
    def record_late(envelope: Envelope) -> None:
        _record(envelope, "probe.record_late")

    @subscribe("probe.introduced")
    def record_introduced(envelope: Envelope) -> None:
        _record(envelope, "probe.record_introduced")
