"""Celery task messages (protocol 2) built without Celery's producer, for the relay's pipelined publishing."""

from __future__ import annotations

import functools
import struct

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
    extra = headers or {}
    message = _TaskMessage(
        f"[[{envelope_json}],{{}},{_EMBED}]".encode(),
        content_type="application/json",
        content_encoding="utf-8",
        delivery_mode=2,
        message_id=message_id,
        application_headers={"lang": "py", "task": handler, "id": task_id, **extra},
    )
    # The same bytes py-amqp's generic encoder makes of these properties (tests/mice/test_task_messages.py
    # compares them), most of them made once per handler: that encoder was the relay's largest cost per message.
    table = b"".join(
        (_handler_headers(handler), b"\x02idS", _long_string(task_id), *(_header(k, v) for k, v in extra.items()))
    )
    message.frame_properties = b"".join(
        (_PROPERTIES_HEAD, _pack_length(len(table)), table, b"\x02", _short_string(message_id))
    )
    return message


class _TaskMessage(Message):
    """A Message whose encoded properties were made when it was built (by `_message`), not at each publish."""

    __slots__ = ("frame_properties",)
    frame_properties: bytes

    def _serialize_properties(self) -> bytes:
        return self.frame_properties


# Property flags (AMQP 0-9-1 basic properties, in py-amqp's Message.PROPERTIES order): content_type,
# content_encoding, headers, delivery_mode and message_id present; then the first two values, which never change.
_PROPERTIES_HEAD = b"\xf0\x80\x10application/json\x05utf-8"
_pack_length = struct.Struct(">I").pack


def _short_string(value: str) -> bytes:
    encoded = value.encode("utf-8", "surrogatepass")
    if len(encoded) > 255:
        raise ValueError(f"an AMQP short string is at most 255 bytes: {value[:80]!r}...")
    return bytes((len(encoded),)) + encoded


def _long_string(value: str) -> bytes:
    encoded = value.encode("utf-8", "surrogatepass")
    return _pack_length(len(encoded)) + encoded


def _header(key: str, value: str) -> bytes:
    return _short_string(key) + b"S" + _long_string(value)


@functools.lru_cache(maxsize=1024)
def _handler_headers(handler: str) -> bytes:
    return _header("lang", "py") + _header("task", handler)
