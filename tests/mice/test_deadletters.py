"""Dead letters as an operator sees them: recorded once, listed, grouped, shown, replayed or discarded with an audit."""

import json
import uuid

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from mice.deadletters import ReplayError, dead_letter_discard, dead_letter_record, dead_letter_replay
from mice.events import Envelope, get_event_type
from mice.models import DeadLetter, DeadLetterAction, HandlerFailure, InboxEntry, OutboxMessage
from mice.selectors import saga

pytestmark = pytest.mark.django_db


def dead_message(handler="tests.probe.always_fails", exception="ValueError", reason="rejected"):
    envelope = Envelope.new(get_event_type("probe.broke"), subject="reg-1", data={})
    HandlerFailure.objects.create(
        event_id=envelope.id,
        handler=handler,
        attempt=3,
        outcome="dead-lettered",
        exception_type=f"builtins.{exception}",
        exception_message=f"{exception} in the handler",
        traceback=f'Traceback (most recent call last):\n  File "handlers.py"\n{exception}: boom',
    )
    body = json.dumps([[envelope.to_dict()], {}, {"callbacks": None}]).encode()
    # As production sends them: the relay's headers (task_messages.task_message), the attempt a retry carries,
    # and RabbitMQ's x-death.
    headers = {
        "lang": "py",
        "task": handler,
        "id": f"{envelope.id}.{uuid.uuid4().int % 10**6}",
        "mice_attempt": "3",
        "x-death": [
            {"queue": handler, "reason": reason, "count": 1, "routing-keys": [handler], "exchange": "mice.events"}
        ],
    }
    return envelope, body, headers


def record(**kwargs):
    _, body, headers = dead_message(**kwargs)
    return dead_letter_record(body=body, headers=headers, routing_key="x")


def test_recording_the_same_message_twice_keeps_one_row_with_its_exception():
    envelope, body, headers = dead_message()

    first = dead_letter_record(body=body, headers=headers, routing_key="tests.probe.always_fails")
    second = dead_letter_record(body=body, headers=headers, routing_key="tests.probe.always_fails")

    assert first.pk == second.pk and DeadLetter.objects.count() == 1
    assert (first.handler, first.queue, first.reason, first.attempts) == (
        "tests.probe.always_fails",
        "tests.probe.always_fails",
        "rejected",
        3,
    )
    assert first.exception_type == "builtins.ValueError" and "boom" in first.traceback
    assert str(first.event_id) == envelope.id


@pytest.mark.parametrize("body", [b"[5]", b"[{}]", b"{}", b"[[null], {}, {}]", b"\xff not json"])
def test_a_message_that_is_not_a_task_is_recorded_all_the_same(body):
    dead = dead_letter_record(body=body, headers={"mice_attempt": "many", "x-death": "garbage"}, routing_key="q")

    assert dead.pk and dead.attempts == 1 and dead.event_id is None


def test_an_unreadable_body_is_still_recorded_and_cannot_be_replayed():
    dead = dead_letter_record(
        body=b"\xff not json", headers={"x-death": [{"queue": "q", "reason": "rejected"}]}, routing_key="q"
    )

    assert dead.body is None and dead.raw_body
    with pytest.raises(ReplayError, match="no readable event"):
        dead_letter_replay(dead_letter=dead, user=None)


def test_a_replay_goes_through_the_outbox_to_the_one_failed_handler_and_only_once():
    envelope, body, headers = dead_message()
    dead = dead_letter_record(body=body, headers=headers, routing_key="x")

    dead_letter_replay(dead_letter=dead, user=None)

    row = OutboxMessage.objects.get()
    assert (str(row.event_id), row.handler, row.sent_at) == (envelope.id, "tests.probe.always_fails", None)
    with pytest.raises(ReplayError, match="already replayed"):
        dead_letter_replay(dead_letter=dead, user=None)
    with pytest.raises(ReplayError, match="already replayed"):
        dead_letter_discard(dead_letter=dead, user=None)
    assert OutboxMessage.objects.count() == 1


def test_the_timeline_shows_a_replay_with_its_one_handler_not_the_events_other_handlers():
    # given an event another handler processed, and its failed handler's dead letter replayed
    envelope, body, headers = dead_message()
    InboxEntry.objects.create(event_id=envelope.id, handler="tests.probe.record")
    dead_letter_replay(dead_letter=dead_letter_record(body=body, headers=headers, routing_key="x"), user=None)

    # when staff read the saga
    (replay,) = saga(correlation_id=envelope.correlationid)

    # then the replay's row lists the handler it was sent to, and nothing else
    assert replay.replay_to == "tests.probe.always_fails"
    assert [outcome.handler for outcome in replay.handlers] == ["tests.probe.always_fails"]


@pytest.fixture
def operator():
    user = User.objects.create_user("ops", password="pw", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="view_deadletter"), Permission.objects.get(codename="replay_deadletter")
    )
    client = Client()
    client.force_login(user)
    return user, client


@pytest.fixture
def viewer():
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_deadletter"))
    client = Client()
    client.force_login(user)
    return user, client


def test_the_admin_lists_dead_letters_grouped_by_handler_and_exception_and_filters_a_group(operator):
    _, client = operator
    for exception in ("ValueError", "ValueError", "KeyError"):
        record(exception=exception)
    handler = DeadLetter.objects.first().handler

    page = client.get(reverse("admin:mice_deadletter_changelist")).content.decode()
    assert "grouped by handler and exception" in page
    assert "builtins.ValueError" in page and "builtins.KeyError" in page and f"<td>{handler}</td>" in page

    filtered = client.get(
        reverse("admin:mice_deadletter_changelist"),
        {
            "status": "new",
            "handler": handler,
            "exception_type": "builtins.KeyError",
            "exception_message": "KeyError in the handler",
        },
    )
    assert filtered.status_code == 200
    assert "1 dead letter" in filtered.content.decode()


def test_one_dead_letter_is_shown_in_full_and_replayed_or_discarded_from_its_page_with_an_audit(operator):
    user, client = operator
    dead = record()
    other = record()

    page = client.get(reverse("admin:mice_deadletter_change", args=[dead.pk])).content.decode()
    assert "boom" in page and "x-death" in page and "Replay to tests.probe.always_fails" in page

    assert client.post(reverse("admin:mice_deadletter_replay", args=[dead.pk])).status_code == 302
    assert client.post(reverse("admin:mice_deadletter_discard", args=[other.pk])).status_code == 302

    dead.refresh_from_db()
    other.refresh_from_db()
    assert (dead.status, other.status) == ("replayed", "discarded")
    assert [(a.dead_letter_id, a.action, a.user) for a in DeadLetterAction.objects.order_by("id")] == [
        (dead.pk, "replayed", user),
        (other.pk, "discarded", user),
    ]
    assert client.get(reverse("admin:mice_deadletter_replay", args=[dead.pk])).status_code == 405


def test_bulk_discard_and_replay_need_the_permission(viewer, operator):
    _, viewer_client = viewer
    _, operator_client = operator
    ids = [record().pk for _ in range(3)]
    changelist = reverse("admin:mice_deadletter_changelist")

    assert "replay_selected" not in viewer_client.get(changelist).content.decode()
    viewer_client.post(changelist, {"action": "discard_selected", "_selected_action": ids})
    viewer_client.post(reverse("admin:mice_deadletter_replay", args=[ids[0]]))
    assert DeadLetter.objects.filter(status="new").count() == 3

    operator_client.post(changelist, {"action": "discard_selected", "_selected_action": ids})
    assert DeadLetter.objects.filter(status="discarded").count() == 3
    assert DeadLetterAction.objects.filter(action="discarded").count() == 3


def test_a_secret_field_an_older_version_carried_is_never_kept_in_a_dead_letter():
    # given a version-1 registration.created, which carried the payment token, dead-lettered after the deploy
    envelope = Envelope.new(
        get_event_type("registration.created"),
        subject="reg-1",
        data={"registration_id": "reg-1", "amount": "10.00", "payment_token": "tok_secret_4242"},
    )
    body = json.dumps([[envelope.to_dict()], {}, {"callbacks": None}]).encode()
    headers = {"task": "analytics.count_registration", "id": f"{envelope.id}.1", "argsrepr": "tok_secret_4242"}

    dead_letter = dead_letter_record(body=body, headers=headers, routing_key="x")

    stored = DeadLetter.objects.get(pk=dead_letter.pk)
    assert "tok_secret_4242" not in json.dumps([stored.body, stored.raw_body, stored.headers])
    assert stored.body[0][0]["data"] == {"registration_id": "reg-1", "amount": "10.00"}
