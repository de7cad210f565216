"""Emitting: an outbox row in the caller's transaction, or a clear error."""

import pytest
from django.db import transaction

from mice.events import Event
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
        event = emit("probe.pinged", subject="reg-1", data={"n": 1})

    row = OutboxMessage.objects.get()
    assert row.sent_at is None
    assert str(row.event_id) == event.id
    assert Event.from_dict(row.envelope) == event
    assert row.envelope["correlationid"] == event.id  # a new saga starts with its own id


def test_an_event_emitted_while_handling_another_carries_its_correlation_and_causation():
    cause = Event.from_dict({**_envelope(), "correlationid": "saga-7"})
    with transaction.atomic(), caused_by(cause):
        emitted = emit("probe.pinged", subject="reg-1", data={})

    assert emitted.correlationid == "saga-7"
    assert emitted.causationid == cause.id


def _envelope():
    with transaction.atomic():
        event = emit("probe.pinged", subject="x", data={})
    return event.to_dict()
