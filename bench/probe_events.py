"""The probe.slept events the relay benchmarks send, the queue they land in, and emptying both between runs.

The only module of bench/ that names mice's event and wire-format API (mice.events, mice.task_messages, mice.outbox):
the scripts get their events, outbox rows and task messages from here.
"""

from __future__ import annotations

import json
from typing import Any

from kombu import Connection

PROBE_TYPE = "probe.slept"
PROBE_QUEUE = "tests.probe.slow"  # the one subscriber of probe.slept (tests/probe/handlers.py)


def declare_topology(broker_url: str) -> None:
    from mice.topology import maybe_declare_all

    with Connection(broker_url, connect_timeout=5) as connection:
        connection.connect()
        mismatches = maybe_declare_all(connection)
    if mismatches:
        raise RuntimeError(f"topology mismatch in a fresh vhost: {mismatches}")


def empty(broker_url: str) -> None:
    """Empty the outbox, inbox and probe tables and the probe queue: every run starts from nothing."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE mice_outboxmessage, mice_inboxentry, probe_effect")
    with Connection(broker_url, connect_timeout=5) as broker:
        channel: Any = broker.channel()
        channel.queue_purge(PROBE_QUEUE)
        channel.close()


def outbox_rows(start: int, stop: int) -> list[Any]:
    """Unsaved OutboxMessage rows for probe.slept {"seconds": 0}, built as mice.outbox.outbox_store builds them."""
    from mice.events import Envelope, get_event_type
    from mice.models import OutboxMessage

    etype = get_event_type(PROBE_TYPE)
    rows = []
    for i in range(start, stop):
        event = Envelope.new(etype, subject=f"bench-{i}", data={"seconds": 0})
        rows.append(
            OutboxMessage(
                event_id=event.id,
                event_type=event.type,
                correlation_id=event.correlationid,
                envelope=event.to_dict(),
                handler="",
            )
        )
    return rows


def task_messages(n: int, handler: str) -> list[Any]:
    """n task messages for probe.slept as the relay publishes them, each as ((outbox id, handler), routing key,
    message): what mice.publisher.ConfirmingPublisher.publish takes."""
    from mice.events import Envelope, get_event_type
    from mice.task_messages import task_message

    etype = get_event_type(PROBE_TYPE)
    messages = []
    for i in range(n):
        event = Envelope.new(etype, subject=f"bench-{i}", data={"seconds": 0})
        message = task_message(
            outbox_id=i + 1, handler=handler, envelope_json=json.dumps(event.to_dict()), event_id=event.id
        )
        messages.append(((i + 1, handler), handler, message))
    return messages


def emit_probe(subject: str) -> str:
    """Emit one probe.slept event in its own transaction; returns its id once COMMIT has returned."""
    from django.db import transaction

    from mice.outbox import emit

    with transaction.atomic():
        event = emit(PROBE_TYPE, subject=subject, data={"seconds": 0})
    return str(event.id)
