"""The event-type registry and the CloudEvents envelope."""

import json

import pytest

from mice.apps import check_subscriptions
from mice.events import EVENT_TYPES, Envelope, UnknownEventType, event_type, get_event_type
from mice.subscriptions import SUBSCRIPTIONS


@pytest.mark.parametrize("name", sorted(EVENT_TYPES))
def test_every_registered_type_round_trips_through_json(name):
    declared = EVENT_TYPES[name]
    envelope = Envelope.new(declared, subject="subject-1", data=declared.example, causation_id="cause-1")

    wire = json.loads(json.dumps(envelope.to_dict()))

    assert Envelope.from_dict(wire) == envelope
    assert wire["specversion"] == "1.0"
    assert wire["datacontenttype"] == "application/json"
    assert {"id", "type", "source", "time", "subject", "data", "correlationid", "causationid"} <= wire.keys()
    assert wire["dataschemaversion"] == declared.version


def test_a_consumer_tolerates_unknown_envelope_attributes():
    envelope = Envelope.new(get_event_type("probe.pinged"), subject="s", data={"n": 1, "later_field": "x"})
    wire = {**envelope.to_dict(), "someextension": "value"}

    assert Envelope.from_dict(wire).data["later_field"] == "x"


def test_the_registry_refuses_a_second_declaration_and_bad_names():
    with pytest.raises(ValueError, match="declared twice"):
        event_type("probe.pinged", version=1, producer="x", doc="", example={})
    with pytest.raises(ValueError, match="dotted"):
        event_type("RegistrationCreated", version=1, producer="x", doc="", example={})
    with pytest.raises(UnknownEventType):
        get_event_type("probe.never_declared")


def test_every_type_has_a_route_and_every_handler_a_declared_type():
    assert check_subscriptions() == []
    assert {s.event_type for s in SUBSCRIPTIONS.values()} <= set(EVENT_TYPES)


def test_a_handler_subscribed_to_an_unknown_type_fails_the_check(monkeypatch):
    ghost = next(iter(SUBSCRIPTIONS.values()))
    monkeypatch.setitem(
        SUBSCRIPTIONS,
        "probe.ghost",
        type(ghost)(**{**ghost.__dict__, "handler": "probe.ghost", "event_type": "probe.unknown"}),
    )

    assert [e.id for e in check_subscriptions()] == ["mice.E001"]
