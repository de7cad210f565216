"""The relay's task messages encode their properties once, when built: byte for byte what py-amqp would send."""

from __future__ import annotations

import json
from typing import Any

import pytest
from amqp import Message

from mice.task_messages import retry_message, task_message


def generic_encoding(message: Any) -> bytes:
    """py-amqp's own encoder, on a plain Message with the same properties."""
    plain: Any = Message(message.body, **message.properties)
    return bytes(plain._serialize_properties())


@pytest.mark.parametrize(
    "handler",
    ["notifications.send_confirmation", "h" * 200, "inscrições.enviar", "tests.probe.slow"],
)
def test_a_task_message_encodes_its_properties_as_py_amqp_does(handler: str) -> None:
    envelope = json.dumps({"id": "0b5f3c1e-8f0e-4a57-9a0d-2f6f1c3f4b7e", "data": {"name": "Zoë"}})
    message: Any = task_message(
        outbox_id=123456789, handler=handler, envelope_json=envelope, event_id="0b5f3c1e-8f0e-4a57-9a0d-2f6f1c3f4b7e"
    )

    assert message._serialize_properties() == generic_encoding(message)
    assert message.headers == {"lang": "py", "task": handler, "id": "0b5f3c1e-8f0e-4a57-9a0d-2f6f1c3f4b7e.123456789"}
    assert message.properties["message_id"] == f"123456789:{handler}"
    assert json.loads(message.body) == [
        [json.loads(envelope)],
        {},
        {"callbacks": None, "errbacks": None, "chain": None, "chord": None},
    ]


def test_a_retry_message_encodes_its_extra_header_as_py_amqp_does() -> None:
    message: Any = retry_message(
        task_id="abc.1", handler="tests.probe.flaky", envelope_json="{}", attempt_header="x-mice-attempt", attempt=3
    )

    assert message._serialize_properties() == generic_encoding(message)
    assert message.headers["x-mice-attempt"] == "3"


def test_a_message_id_too_long_for_amqp_is_refused() -> None:
    with pytest.raises(ValueError, match="255 bytes"):
        task_message(outbox_id=1, handler="h" * 300, envelope_json="{}", event_id="e")


class _Collect:
    """A transport for py-amqp's frame writer that keeps what it is given."""

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: Any) -> None:
        self.data += bytes(data)


class _Connection:
    frame_max = 4096
    bytes_sent = 0


@pytest.mark.parametrize("body", ["[[{}],{},{}]", "é" * 10_000, "", b"\x00\xff" * 5000])
def test_the_publisher_frames_a_message_as_py_amqp_does(body: Any) -> None:
    from amqp import spec
    from amqp.method_framing import frame_writer
    from amqp.serialization import dumps

    from mice.publisher import publish_frames

    message: Any = task_message(outbox_id=7, handler="tests.probe.slow", envelope_json="{}", event_id="e")
    message.body = body
    args = dumps("Bssbb", (0, "mice.events", "tests.probe.slow", True, False))
    collected = _Collect()
    frame_writer(_Connection(), collected)(1, 5, spec.Basic.Publish, args, message)

    assert b"".join(publish_frames(5, args, message, _Connection.frame_max)) == collected.data
