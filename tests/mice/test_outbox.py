"""Emitting: an outbox row in the caller's transaction, or a clear error."""

import datetime as dt
import uuid

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from mice.events import Envelope, get_event_type
from mice.models import OutboxMessage
from mice.outbox import OutboxError, caused_by, emit

pytestmark = pytest.mark.django_db(transaction=True)


def test_emit_outside_a_transaction_is_a_clear_error():
    with pytest.raises(OutboxError, match=r"outside transaction.atomic\(\)"):
        emit("probe.pinged", subject="s", data={})
    assert OutboxMessage.objects.count() == 0


def test_a_rolled_back_transaction_leaves_no_event():
    with pytest.raises(RuntimeError), transaction.atomic():
        emit("probe.pinged", subject="s", data={"n": 1})
        raise RuntimeError("the business change failed")

    assert OutboxMessage.objects.count() == 0


def test_a_committed_event_is_a_pending_outbox_row_with_its_envelope():
    with transaction.atomic():
        envelope = emit("probe.pinged", subject="reg-1", data={"n": 1})

    row = OutboxMessage.objects.get()
    assert row.sent_at is None
    assert str(row.event_id) == envelope.id
    assert Envelope.from_dict(row.envelope) == envelope
    assert row.envelope["correlationid"] == envelope.id  # a new saga starts with its own id


def test_an_event_emitted_while_handling_another_carries_its_correlation_and_causation():
    cause = Envelope.from_dict({**_envelope(), "correlationid": "saga-7"})
    with transaction.atomic(), caused_by(cause):
        emitted = emit("probe.pinged", subject="reg-1", data={})

    assert emitted.correlationid == "saga-7"
    assert emitted.causationid == cause.id


def test_an_event_joining_a_saga_outside_a_handler_names_the_sagas_latest_event_that_happened():
    # given a saga with a first event, a later one, and a timeout held back for the future
    with transaction.atomic():
        first = emit("probe.pinged", subject="reg-9", data={}, correlation_id="saga-9")
    with transaction.atomic():
        later = emit("probe.pinged", subject="reg-9", data={}, correlation_id="saga-9")
        emit(
            "probe.pinged",
            subject="reg-9",
            data={},
            correlation_id="saga-9",
            deliver_at=timezone.now() + dt.timedelta(hours=1),
        )

    # when someone acts on the saga outside any handler (staff in admin, the attendee, upkeep)
    with transaction.atomic():
        acted = emit("probe.pinged", subject="reg-9", data={}, correlation_id="saga-9")

    # then only the saga's first event names no cause, and the rest form one chain
    assert first.causationid is None
    assert later.causationid == first.id
    assert acted.causationid == later.id


def _envelope():
    with transaction.atomic():
        envelope = emit("probe.pinged", subject="x", data={})
    return envelope.to_dict()


@pytest.mark.django_db
def test_admin_shows_the_outbox_state_and_warns_when_the_relay_falls_behind(settings):
    # given a due row waiting for two minutes, one the relay could not send, and one held for later
    User.objects.create_superuser("root", "root@example.com", "pw")
    staff = Client()
    staff.login(username="root", password="pw")
    now = timezone.now()
    with transaction.atomic():
        late = emit("probe.pinged", subject="s", data={"n": 1})
        stuck = emit("probe.pinged", subject="s", data={"n": 2})
        emit("probe.pinged", subject="s", data={"n": 3}, deliver_at=now + dt.timedelta(hours=1))
    OutboxMessage.objects.filter(event_id=late.id).update(available_at=now - dt.timedelta(minutes=2))
    OutboxMessage.objects.filter(event_id=stuck.id).update(attempts=3, last_error="routed to no one: probe.record_a")
    settings.MICE_OUTBOX_LAG_WARNING = 60

    index = staff.get(reverse("admin:index")).content.decode()
    page = staff.get(reverse("admin:mice_outboxmessage_changelist")).content.decode()

    assert "The outbox is behind" in index
    assert "has waited 120 s" in page or "has waited 12" in page
    assert 'id="outbox-due">2<' in page  # the row held for later is pending but not due
    assert "routed to no one: probe.record_a" in page
    # when the relay has caught up, the warning is gone
    OutboxMessage.objects.update(sent_at=now)
    assert "The outbox is behind" not in staff.get(reverse("admin:index")).content.decode()


@pytest.mark.django_db(transaction=True)
def test_an_event_type_is_a_domain_signal_the_outbox_records_only_inside_a_transaction():
    pinged = get_event_type("probe.pinged")
    heard = []

    def listener(sender, **kwargs):
        heard.append((sender.name, kwargs["subject"]))

    pinged.signal.connect(listener, weak=False)
    try:
        with pytest.raises(OutboxError, match=r"outside transaction\.atomic"):
            pinged.send(subject="outside", data={"n": 1})
        assert not OutboxMessage.objects.exists()

        with transaction.atomic():
            envelope = pinged.send(subject="inside", data={"n": 2})
    finally:
        pinged.signal.disconnect(listener)

    row = OutboxMessage.objects.get()
    assert (row.event_id, row.event_type, row.envelope["subject"]) == (uuid.UUID(envelope.id), "probe.pinged", "inside")
    # any other receiver hears it too; a refused one (outside a transaction) stops before reaching them
    assert heard == [("probe.pinged", "inside")]
