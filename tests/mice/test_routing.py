"""Routing across deploys: every subscription any process declared gets every event committed after it."""

from collections.abc import Iterator

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from mice.events import EVENT_TYPES, EventType, event_type
from mice.handlers import retire, subscribe
from mice.models import OutboxMessage, Route
from mice.outbox import emit
from mice.routing import route_record
from mice.subscriptions import RETIRED
from tests.probe.models import Effect
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

NEW_CODE = {"MICE_PROBE_NEW_CODE": "1"}  # tests/probe: a deploy that adds a handler and an event type


@pytest.fixture
def introduced() -> Iterator[EventType]:
    """probe.introduced, declared in this process as the new web code would (the relay runs the old code)."""
    declared = event_type("probe.introduced", version=1, producer="probe", doc="new in this deploy", example={})
    yield declared
    del EVENT_TYPES["probe.introduced"]


def effects(handler: str) -> int:
    return Effect.objects.filter(handler=handler).count()


def test_a_handler_deployed_beside_a_running_relay_receives_every_later_event(system):
    # given a relay running the old code, which knows nothing of the new handler
    relay = system.relay()
    relay.wait_for_log("relay connected")
    # when workers with the new handler come up, and events are committed after that
    system.worker(**NEW_CODE)
    with transaction.atomic():
        for i in range(3):
            emit("probe.pinged", subject=f"s{i}", data={"n": i})
    # then the new handler gets every one of them, and the old ones still do too
    wait_until(lambda: effects("probe.record_late") == 3, timeout=30, what="the new handler ran for all 3 events")
    wait_until(lambda: effects("probe.record_a") == 3 and effects("probe.record_b") == 3, what="the old handlers ran")
    assert OutboxMessage.objects.filter(sent_at__isnull=True).count() == 0


def test_an_event_nobody_subscribes_to_yet_is_kept_pending_not_marked_sent(system, introduced):
    # given a relay on the old code, and new web code emitting an event type no process has subscribed to
    relay = system.relay()
    relay.wait_for_log("relay connected")
    with transaction.atomic():
        envelope = emit(introduced, subject="new", data={})
    # then the row is not marked sent: routed to no one is a failure
    relay.wait_for_log("kept pending")
    row = OutboxMessage.objects.get(event_id=envelope.id)
    assert row.sent_at is None
    assert "no subscription" in row.last_error
    # when the workers that subscribe to it are deployed, the event reaches them, once
    system.worker(**NEW_CODE)
    wait_until(lambda: effects("probe.record_introduced") == 1, timeout=60, what="the held-back event delivered")
    wait_until(lambda: OutboxMessage.objects.get(event_id=envelope.id).sent_at is not None, what="the row marked sent")


def test_a_handler_removed_from_the_code_is_forgotten_only_on_purpose():
    # given a route declared by code that has since been deployed without that handler
    Route.objects.create(handler="retired.handler", event_type="probe.pinged")

    with pytest.raises(CommandError, match="handler of this code"):
        call_command("mice_topology", forget="tests.probe.record_a")
    call_command("mice_topology", forget="retired.handler")

    assert not Route.objects.filter(handler="retired.handler").exists()


def test_a_handler_the_code_retires_stops_receiving_events_once_routes_are_recorded(monkeypatch):
    # given a route declared by older code, to a handler the new code declares retired
    Route.objects.create(handler="probe.retired_one", event_type="probe.pinged")
    monkeypatch.setitem(RETIRED, "probe.retired_one", "replaced by probe.record_a")
    # when a process of the new code records its routes (as every worker does when it starts)
    route_record()
    # then no event is published to the retired handler's queue any more; the others keep theirs
    assert not Route.objects.filter(handler="probe.retired_one").exists()
    assert Route.objects.filter(handler="tests.probe.record_a", event_type="probe.pinged").exists()


def test_a_retired_handler_name_cannot_be_subscribed_again(monkeypatch):
    monkeypatch.setitem(RETIRED, "probe.retired_two", "gone")
    with pytest.raises(ValueError, match="never reused"):
        subscribe("probe.pinged", name="probe.retired_two")(lambda envelope: None)
    with pytest.raises(ValueError, match="is subscribed"):
        retire("tests.probe.record_a", reason="still subscribed")
