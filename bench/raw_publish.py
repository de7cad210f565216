"""Raw RabbitMQ publishing, timed: persistent messages to a durable quorum queue with publisher confirms,
pipelined or one at a time, by aiormq, py-amqp, kombu and the relay's own publisher.

Each function publishes n messages and returns (seconds, messages the broker did not confirm).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import aiormq
import amqp
from kombu import Connection
from pamqp import commands as spec

from bench.probe_events import task_messages

RAW_EXCHANGE = "bench.raw"
RAW_QUEUE = "bench.raw"
RELAYPUB_QUEUE = "bench.relaypub"  # bound to mice.events: the relay's own publisher, without the database
QUORUM = {"x-queue-type": "quorum"}


def amqp_params(broker_url: str) -> dict[str, Any]:
    parts = urlsplit(broker_url)
    return {
        "host": f"{parts.hostname}:{parts.port or 5672}",
        "userid": parts.username or "guest",
        "password": parts.password or "guest",
        "virtual_host": parts.path[1:] or "/",
    }


def fresh_raw_queue(broker_url: str, queue: str = RAW_QUEUE, exchange: str = RAW_EXCHANGE) -> None:
    """Delete and declare a durable quorum queue bound to a durable direct exchange: every run starts empty."""
    conn = amqp.Connection(**amqp_params(broker_url), heartbeat=0)
    conn.connect()
    try:
        ch = conn.channel()
        ch.exchange_declare(exchange, "direct", durable=True, auto_delete=False)
        ch.queue_delete(queue)
        ch.queue_declare(queue, durable=True, auto_delete=False, arguments=QUORUM)
        ch.queue_bind(queue, exchange, routing_key=queue)
        ch.close()
    finally:
        conn.close()


def drop_queue(broker_url: str, queue: str) -> None:
    conn = amqp.Connection(**amqp_params(broker_url), heartbeat=0)
    conn.connect()
    try:
        ch = conn.channel()
        ch.queue_delete(queue)
        ch.close()
    finally:
        conn.close()


async def _aiormq_publish(broker_url: str, body: bytes, n: int, window: int) -> tuple[float, int]:
    """`window` coroutines publishing in a loop, each awaiting its own confirm: at most `window` unconfirmed.

    (Long-lived coroutines measured faster here than a task per message behind a semaphore.)
    Returns (seconds, messages not acked).
    """
    connection = await aiormq.connect(broker_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        props = spec.Basic.Properties(delivery_mode=2, content_type="application/octet-stream")
        failed = 0
        remaining = n

        async def publisher() -> None:
            nonlocal failed, remaining
            while remaining > 0:
                remaining -= 1
                try:
                    confirmation = await channel.basic_publish(
                        body, exchange=RAW_EXCHANGE, routing_key=RAW_QUEUE, properties=props, mandatory=True, wait=False
                    )
                    if not isinstance(confirmation, spec.Basic.Ack):
                        failed += 1
                except Exception:  # noqa: BLE001 - a returned or nacked message, or a dead channel: not confirmed
                    failed += 1

        started = time.perf_counter()
        await asyncio.gather(*(publisher() for _ in range(min(window, n))))
        elapsed = time.perf_counter() - started
    finally:
        await connection.close()
    return elapsed, failed


async def _aiormq_one_by_one(broker_url: str, body: bytes, n: int) -> tuple[float, int]:
    connection = await aiormq.connect(broker_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        props = spec.Basic.Properties(delivery_mode=2, content_type="application/octet-stream")
        failed = 0
        started = time.perf_counter()
        for _ in range(n):
            confirmation = await channel.basic_publish(
                body, exchange=RAW_EXCHANGE, routing_key=RAW_QUEUE, properties=props, mandatory=True
            )
            if not isinstance(confirmation, spec.Basic.Ack):
                failed += 1
        elapsed = time.perf_counter() - started
    finally:
        await connection.close()
    return elapsed, failed


def aiormq_pipelined(broker_url: str, body: bytes, n: int, window: int) -> tuple[float, int]:
    return asyncio.run(_aiormq_publish(broker_url, body, n, window))


def aiormq_one_by_one(broker_url: str, body: bytes, n: int) -> tuple[float, int]:
    return asyncio.run(_aiormq_one_by_one(broker_url, body, n))


def pyamqp_pipelined(broker_url: str, body: bytes, n: int, window: int) -> tuple[float, int]:
    """py-amqp alone, the way mice.publisher.ConfirmingPublisher works, with O(1) settling of acks."""
    conn = amqp.Connection(**amqp_params(broker_url), heartbeat=0)
    conn.connect()
    try:
        ch = conn.channel()
        ch.confirm_select()
        pending: dict[int, None] = {}  # insertion order == tag order
        failed = 0

        def settle(tag: int, multiple: bool, ok: bool) -> None:
            nonlocal failed
            if multiple:
                while pending:
                    first = next(iter(pending))
                    if first > tag:
                        break
                    del pending[first]
                    failed += not ok
            elif pending.pop(tag, 0) is None:
                failed += not ok

        ch.events["basic_ack"].add(lambda tag, multiple: settle(tag, multiple, True))
        ch.events["basic_nack"].add(lambda tag, multiple: settle(tag, multiple, False))
        returned = 0

        def on_return(*_: Any) -> None:
            nonlocal returned
            returned += 1

        ch.events["basic_return"].add(on_return)
        started = time.perf_counter()
        for tag in range(1, n + 1):
            pending[tag] = None
            message = amqp.Message(
                body, delivery_mode=2, content_type="application/octet-stream", message_id=uuid.uuid4().hex
            )
            ch.basic_publish(message, exchange=RAW_EXCHANGE, routing_key=RAW_QUEUE, mandatory=True)
            while len(pending) >= window:
                conn.drain_events(timeout=10)
        while pending:
            conn.drain_events(timeout=10)
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    return elapsed, failed + returned


def kombu_one_by_one(broker_url: str, body: bytes, n: int) -> tuple[float, int]:
    """kombu with confirm_publish=True: every publish waits for its own confirm (the Celery default here)."""
    with Connection(broker_url, transport_options={"confirm_publish": True}, heartbeat=0) as connection:
        producer = connection.Producer()
        started = time.perf_counter()
        for _ in range(n):
            producer.publish(
                body,
                exchange=RAW_EXCHANGE,
                routing_key=RAW_QUEUE,
                delivery_mode=2,
                content_type="application/octet-stream",
                content_encoding="binary",
                mandatory=True,
                retry=False,
            )
        elapsed = time.perf_counter() - started
    return elapsed, 0


def relay_publisher_only(broker_url: str, n: int, batch: int) -> tuple[float, int, int]:
    """mice.publisher.ConfirmingPublisher with prebuilt task messages, in relay-sized batches: no database.

    Returns (seconds, failed, message bytes). Shows how much of the relay's drain is the publisher.
    """
    from mice.publisher import ConfirmingPublisher
    from mice.topology import EVENTS, maybe_declare_all

    messages = task_messages(n, RELAYPUB_QUEUE)
    size = len(messages[0][2].body)
    publisher = ConfirmingPublisher(broker_url, exchange=EVENTS.name, declare=maybe_declare_all)
    publisher.connect()
    fresh_raw_queue(broker_url, RELAYPUB_QUEUE, exchange=EVENTS.name)
    failed = 0
    try:
        started = time.perf_counter()
        for i in range(0, n, batch):
            outcome = publisher.publish(messages[i : i + batch])
            failed += len(outcome.failed)
        elapsed = time.perf_counter() - started
    finally:
        publisher.close()
        drop_queue(broker_url, RELAYPUB_QUEUE)
    return elapsed, failed, size


def check_confirmed(what: str, failed: int) -> None:
    """A run where the broker did not ack everything (e.g. it was restarted by another test run) is void."""
    if failed:
        raise RuntimeError(f"{what}: {failed} messages were not confirmed; the broker had trouble, run again")
