"""Publishing to RabbitMQ with pipelined publisher confirms: a reusable piece that knows nothing of the outbox.

kombu's `confirm_publish` waits one round trip per message (about 1,500 msg/s here); this keeps a window
of unconfirmed messages in flight and settles acks, nacks and returns as they arrive (docs/broker-behaviour.md).

Nothing here waits without a bound: each wait for confirms has one deadline, a stop request ends it, AMQP
heartbeats find a connection that died without closing, and a connection the broker blocks (a memory or
disk alarm) is reported, so that a caller holding locks can give them back instead of waiting forever.
"""

from __future__ import annotations

import dataclasses
import logging
import struct
import time
from collections.abc import Callable, Iterable
from typing import Any

from amqp import Message
from amqp.serialization import dumps
from kombu import Connection

from mice.brokers import broker_host, broker_urls
from mice.readiness import readable

log = logging.getLogger("mice.publisher")


# Frames are gathered and written in one send of about this many bytes: py-amqp's basic_publish makes one
# send per message and, before it, a non-blocking read (two settimeout calls and a recv): four system calls
# per message, the relay's largest cost once the properties were encoded ahead (bench/relay_throughput.py).
FLUSH_BYTES = 64 * 1024


_FRAME_HEAD = struct.Struct(">BHI")  # frame type, channel, payload size
_CONTENT_HEADER = struct.Struct(">BHIHHQ")  # a content header frame's head: + class id, weight, body size
_FRAME_END = b"\xce"


def publish_frames(channel_id: int, publish_args: bytes, message: Message, frame_max: int) -> list[bytes]:
    """The frames of one basic.publish, byte for byte those py-amqp's basic_publish sends: the method frame,
    the content header (the message's properties) and the body in frames of at most `frame_max` bytes."""
    body = message.body
    if isinstance(body, str):  # as py-amqp does
        body = body.encode(message.properties.setdefault("content_encoding", "utf-8"))
    properties = message._serialize_properties()  # type: ignore[attr-defined]  # py-amqp's, typed by no stub
    method = b"\x00\x3c\x00\x28" + publish_args  # basic (60) publish (40)
    frames = [
        _FRAME_HEAD.pack(1, channel_id, len(method)),
        method,
        _FRAME_END,
        _CONTENT_HEADER.pack(2, channel_id, 12 + len(properties), 60, 0, len(body)),
        properties,
        _FRAME_END,
    ]
    chunk = frame_max - 8
    for start in range(0, len(body), chunk):
        part = body[start : start + chunk]
        frames += (_FRAME_HEAD.pack(3, channel_id, len(part)), part, _FRAME_END)
    return frames


class BrokerUnavailable(RuntimeError):
    """The broker could not be reached or stopped answering; the batch is left pending."""


class PublishingBlocked(BrokerUnavailable):
    """The broker blocks this connection's publishing (a resource alarm): no confirm comes until it lifts.

    The connection is kept, so that its `connection.unblocked` is heard; see `wait_unblocked`.
    """


@dataclasses.dataclass
class PublishOutcome:
    confirmed: set[Any]
    failed: dict[Any, str]


class ConfirmingPublisher:
    """A py-amqp channel in confirm mode, publishing without waiting for each confirm.

    Confirms (acks, nacks, returns) are collected as they arrive while a window of outstanding
    messages is kept; kombu's confirm_publish would wait one round trip per message. Every message is
    `mandatory`: one the broker routes to no queue comes back and counts as failed.
    """

    def __init__(
        self,
        url: str,
        *,
        exchange: str,
        declare: Callable[[Connection], list[Any]] | None = None,
        confirm_timeout: float = 10.0,
        window: int = 1000,
        heartbeat: float = 30.0,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.url = url
        self.urls = broker_urls(url)
        self.node = 0  # the index in `urls` of the node connected to last
        self.exchange = exchange
        self.declare = declare
        self.confirm_timeout = confirm_timeout
        self.window = window
        self.heartbeat = heartbeat
        self.should_stop = should_stop
        self.connection: Connection | None = None
        self.blocked: str | None = None  # the broker's reason while it blocks our publishing
        self._channel: Any = None
        self._tag = 0
        self._pending: dict[int, Any] = {}
        self._frames: list[bytes] = []  # publish frames not sent yet
        self._frames_size = 0
        self._publish_args: dict[str, bytes] = {}  # basic.publish's encoded arguments, by routing key
        self._oldest = 1  # no tag below this one is outstanding
        self._by_message_id: dict[str, Any] = {}
        self._outcome = PublishOutcome(set(), {})

    def connect(self) -> list[Any]:
        """Connect, run `declare` (the topology), open a confirm-mode channel. Returns what `declare` returned.

        With a list of URLs (a cluster), each node is tried once, from the one that answered last: a node
        that died sends this to the next, and a process does not keep knocking at a dead node first.
        """
        self.close()
        failures: list[str] = []
        for step in range(len(self.urls)):
            node = (self.node + step) % len(self.urls)
            try:
                declared = self._connect_to(self.urls[node])
            except BrokerUnavailable as exc:
                failures.append(f"{broker_host(self.urls[node])}: {exc}")
                continue
            self.node = node
            return declared
        raise BrokerUnavailable("; ".join(failures))

    def _connect_to(self, url: str) -> list[Any]:
        connection = Connection(
            url,
            connect_timeout=5,
            heartbeat=self.heartbeat,
            transport_options={
                "read_timeout": 5,
                "write_timeout": 5,
                "on_blocked": self._on_blocked,
                "on_unblocked": self._on_unblocked,
            },
        )
        broker_errors = connection.connection_errors + connection.channel_errors
        try:
            connection.ensure_connection(max_retries=0, reraise_as_library_errors=False)
            declared = self.declare(connection) if self.declare else []
            channel: Any = connection.channel()
            channel.confirm_select()
        except broker_errors as exc:
            connection.collect()
            raise BrokerUnavailable(f"cannot connect to the broker: {exc!r}") from exc
        except BaseException:  # e.g. the database, written by `declare`: not the broker's fault
            connection.collect()
            raise
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        channel.events["basic_return"].add(self._on_return)
        self.connection, self._channel, self._tag, self._oldest, self.blocked = connection, channel, 0, 1, None
        self._frames, self._frames_size = [], 0
        return declared

    @property
    def host(self) -> str:
        """host:port of the node this publisher talks to (or last talked to)."""
        return broker_host(self.urls[self.node])

    @property
    def connected(self) -> bool:
        return self.connection is not None

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.close()
            except Exception:  # noqa: BLE001 - a dead connection cannot be closed cleanly; drop it
                self.connection.collect()
        self.connection, self._channel = None, None

    def keepalive(self) -> None:
        """Read what the broker sent (heartbeats, blocked/unblocked) and send a heartbeat when one is due.

        Call it at least every `heartbeat / 4` seconds while idle: a connection that died without closing
        (a half-open TCP connection) then raises BrokerUnavailable within two heartbeat intervals.
        """
        if self.connection is None:
            raise BrokerUnavailable("not connected")
        try:
            sock = self.connection.connection.sock
            if readable([sock], 0):  # a cheap look first: this runs before every batch
                self._read(0.01)  # not 0: py-amqp takes a non-blocking socket's EAGAIN for a broken connection
            self.connection.heartbeat_check()
        except BrokerUnavailable:
            raise
        except Exception as exc:
            self.close()
            raise BrokerUnavailable(f"the broker stopped answering: {exc!r}") from exc

    def wait_unblocked(self, seconds: float) -> bool:
        """While the broker blocks publishing, wait up to `seconds` (or a stop request); True once unblocked."""
        deadline = time.monotonic() + seconds
        while self.blocked and not self.should_stop() and time.monotonic() < deadline:
            self.keepalive()
            self._read(min(1.0, max(0.0, deadline - time.monotonic())))
        return not self.blocked

    def publish(self, messages: Iterable[tuple[Any, str, Message]]) -> PublishOutcome:
        """Publish (key, routing key, message) triples to the exchange; report which keys the broker confirmed.

        Raises BrokerUnavailable if confirms do not arrive within `confirm_timeout` of any one wait (for
        room in the window, or for the last confirms), or if a stop is requested meanwhile.
        """
        if self._channel is None:
            raise BrokerUnavailable("not connected")
        self._pending, self._by_message_id, self._oldest = {}, {}, self._tag + 1
        self._outcome = PublishOutcome(set(), {})
        try:
            channel_id, frame_max = self._channel.channel_id, self.connection.connection.frame_max  # type: ignore[union-attr]
            for key, routing_key, message in messages:
                self._tag += 1
                self._pending[self._tag] = key
                self._by_message_id[message.properties["message_id"]] = key
                args = self._publish_args.get(routing_key)
                if args is None:
                    # mandatory: an unroutable message comes back (basic.return) and counts as failed
                    args = self._publish_args[routing_key] = dumps(
                        "Bssbb", (0, self.exchange, routing_key, True, False)
                    )
                frames = publish_frames(channel_id, args, message, frame_max)
                self._frames += frames
                self._frames_size += len(message.body) + 64
                if self._frames_size >= FLUSH_BYTES:
                    self._flush()
                if len(self._pending) >= self.window:
                    self._wait_for_confirms(until=self.window - 1)
            self._wait_for_confirms(until=0)
        except PublishingBlocked:
            raise
        except BrokerUnavailable:
            self.close()
            raise
        except Exception as exc:
            # A channel or connection error: py-amqp may reopen the channel without confirm mode,
            # after which nothing is ever confirmed. Start over on a new connection.
            self.close()
            raise BrokerUnavailable(f"publishing failed: {exc!r}") from exc
        return self._outcome

    def _wait_for_confirms(self, *, until: int) -> None:
        """Wait until at most `until` confirms are outstanding: one deadline for the whole wait."""
        self._flush()
        deadline = time.monotonic() + self.confirm_timeout
        while len(self._pending) > until:
            if self.should_stop():
                raise BrokerUnavailable(f"stopping with {len(self._pending)} publisher confirms outstanding")
            if self.blocked:
                raise PublishingBlocked(f"the broker blocks publishing ({self.blocked}); the batch is given back")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerUnavailable(
                    f"{len(self._pending)} publisher confirms did not arrive within {self.confirm_timeout}s"
                )
            self._read(min(remaining, 1.0))
            self.connection.heartbeat_check()  # type: ignore[union-attr]

    def _flush(self) -> None:
        """Send the gathered frames, then read what the broker has already sent (confirms, connection.blocked)
        without waiting: as py-amqp's basic_publish does before each message, once per send here."""
        if not self._frames:
            return
        assert self.connection is not None
        connection = self.connection.connection
        data = b"".join(self._frames)
        self._frames.clear()
        self._frames_size = 0
        connection.transport.write(data)
        connection.bytes_sent += 1  # what py-amqp's frame writer counts: no heartbeat is due while we send
        while readable([connection.sock], 0):
            self._read(0.01)  # not 0: py-amqp takes a non-blocking socket's EAGAIN for a broken connection

    def _read(self, timeout: float) -> None:
        assert self.connection is not None
        try:
            self.connection.drain_events(timeout=timeout)
        except TimeoutError:
            return

    def _on_blocked(self, reason: str) -> None:
        self.blocked = reason or "blocked"
        log.warning("broker blocks publishing", extra={"mice": {"reason": self.blocked}})

    def _on_unblocked(self) -> None:
        log.warning("broker unblocked publishing", extra={"mice": {"was": self.blocked}})
        self.blocked = None

    def _settle(self, delivery_tag: int, multiple: bool, failure: str | None) -> None:
        # Tags are consecutive from the first still outstanding (`_oldest`): a multiple ack settles that range,
        # and costs what it settles, not a scan of the whole window per ack.
        if multiple:
            tags: Iterable[int] = range(self._oldest, delivery_tag + 1)
            self._oldest = max(self._oldest, delivery_tag + 1)
        else:
            tags = (delivery_tag,)
        for tag in tags:
            key = self._pending.pop(tag, None)
            if key is None:
                continue
            if failure is None and key not in self._outcome.failed:
                self._outcome.confirmed.add(key)
            else:
                self._outcome.failed.setdefault(key, failure or "failed")

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, None)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, "nacked by the broker")

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Message) -> None:
        # A returned message is acked afterwards all the same; it has no delivery tag, so it is
        # matched by message id and counted as not delivered.
        key = self._by_message_id.get(message.properties.get("message_id", ""))
        if key is not None:
            self._outcome.failed[key] = f"unroutable: {exc} (exchange {exchange!r}, routing key {routing_key!r})"
            self._outcome.confirmed.discard(key)
