"""Celery task messages (protocol 2) built without Celery's producer, for the relay's pipelined publishing."""

from __future__ import annotations

from amqp import Message

_EMBED = '{"callbacks":null,"errbacks":null,"chain":null,"chord":null}'


def task_id_for(*, event_id: str, outbox_id: int) -> str:
    """`<event id>.<outbox row id>`: the same row published twice gives the same id, so the dead-letter
    recorder (which keys on task id and queue) tells a re-published copy from a new publication (a
    replay is a new row); and the event id shows in every worker log line about the task."""
    return f"{event_id}.{outbox_id}"


def task_message(*, outbox_id: int, handler: str, envelope_json: str, event_id: str) -> Message:
    """One persistent Celery task message that runs `handler` with the envelope (JSON text) as its argument.

    Only what a worker needs is sent (`task` and `id` are the required headers; the rest of protocol 2's
    are optional and default to empty): py-amqp encodes properties in pure Python, and with all twenty
    headers that encoding was the relay's largest cost. The envelope arrives from the database as JSON
    text and goes into the body without being parsed and serialised again.
    """
    return _message(
        task_id=task_id_for(event_id=event_id, outbox_id=outbox_id),
        handler=handler,
        envelope_json=envelope_json,
        message_id=f"{outbox_id}:{handler}",  # how a basic.return is matched to its (row, handler)
    )


def retry_message(*, task_id: str, handler: str, envelope_json: str, attempt_header: str, attempt: int) -> Message:
    """The same task, parked for a later attempt: same task id, the attempt number in a header of ours."""
    return _message(
        task_id=task_id,
        handler=handler,
        envelope_json=envelope_json,
        message_id=f"retry:{task_id}:{attempt}",
        headers={attempt_header: str(attempt)},
    )


def _message(
    *, task_id: str, handler: str, envelope_json: str, message_id: str, headers: dict[str, str] | None = None
) -> Message:
    # py-amqp drops `headers=`: headers must go in as application_headers, or the worker discards
    # the message as unknown (docs/broker-behaviour.md).
    return Message(
        f"[[{envelope_json}],{{}},{_EMBED}]",
        content_type="application/json",
        content_encoding="utf-8",
        delivery_mode=2,
        message_id=message_id,
        application_headers={"lang": "py", "task": handler, "id": task_id, **(headers or {})},
    )
