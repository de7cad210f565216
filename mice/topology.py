"""The whole RabbitMQ topology, in kombu's vocabulary, on one screen.

    publisher --(routing key = handler)--> mice.events (direct) --> <handler>            (quorum)
    <handler>  --failure, retry--------> mice.retry (direct)  --> <handler>.retry.<ms>  (TTL, no consumer)
    <handler>.retry.<ms> --TTL expires--> mice.events --> <handler>
    <handler>  --rejected / delivery limit--> mice.dlx (fanout) --> mice.dead_letters (quorum)

Every queue is a quorum queue: replicated in a cluster, a delivery limit for poison that kills
its worker, and at-least-once dead-lettering (with reject-publish overflow) so that moving a
message to the dead-letter or back from a retry queue cannot lose it.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from amqp.exceptions import NotFound, PreconditionFailed
from kombu import Connection, Exchange, Queue

from mice.subscriptions import SUBSCRIPTIONS, Subscription

log = logging.getLogger("mice.topology")

EVENTS = Exchange("mice.events", type="direct", durable=True)
RETRY = Exchange("mice.retry", type="direct", durable=True)
DLX = Exchange("mice.dlx", type="fanout", durable=True)

SAFE_DEAD_LETTERING = {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}

DEAD_LETTERS = Queue("mice.dead_letters", DLX, routing_key="", durable=True, queue_arguments={"x-queue-type": "quorum"})


def retry_queue_name(queue: str, delay_ms: int) -> str:
    return f"{queue}.retry.{delay_ms}ms"


def work_queue(sub: Subscription) -> Queue:
    return Queue(
        sub.queue,
        EVENTS,
        routing_key=sub.queue,
        durable=True,
        queue_arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": sub.delivery_limit,
            "x-dead-letter-exchange": DLX.name,
            **SAFE_DEAD_LETTERING,
        },
    )


def retry_queue(sub: Subscription, delay_ms: int) -> Queue:
    name = retry_queue_name(sub.queue, delay_ms)
    return Queue(
        name,
        RETRY,
        routing_key=name,
        durable=True,
        queue_arguments={
            "x-queue-type": "quorum",
            "x-message-ttl": delay_ms,
            "x-dead-letter-exchange": EVENTS.name,
            "x-dead-letter-routing-key": sub.queue,
            **SAFE_DEAD_LETTERING,
        },
    )


def retry_queues(sub: Subscription) -> list[Queue]:
    return [retry_queue(sub, delay_ms) for delay_ms in sub.retry.delays_ms()]


def work_queues() -> list[Queue]:
    return [work_queue(sub) for sub in SUBSCRIPTIONS.values()]


def all_queues() -> list[Queue]:
    queues = [DEAD_LETTERS]
    for sub in SUBSCRIPTIONS.values():
        queues.append(work_queue(sub))
        queues.extend(retry_queues(sub))
    return queues


@dataclasses.dataclass(frozen=True)
class Mismatch:
    queue: str
    broker_says: str

    def advice(self) -> str:
        return (
            f"queue {self.queue!r} exists on the broker with other arguments than this code declares "
            f"({self.broker_says}). Nothing was changed and this process will not consume it. To apply the new "
            f"arguments: let the old workers drain it and stop them, then run "
            f"`python manage.py mice_topology --recreate {self.queue}` (it refuses while messages or consumers "
            f"remain; meanwhile the relay keeps messages for it pending in the outbox)."
        )


def maybe_declare_all(connection: Connection) -> list[Mismatch]:
    """Declare every exchange and queue (idempotent); report queues whose arguments changed.

    A queue redeclared with other arguments makes RabbitMQ close the channel with
    PRECONDITION_FAILED; each queue is declared on its own channel so one mismatch neither stops
    the others from being declared nor crashes the process.
    """
    exchange_channel: Any = connection.channel()
    try:
        for exchange in (EVENTS, RETRY, DLX):
            exchange(exchange_channel).declare()
    finally:
        exchange_channel.close()
    mismatches: list[Mismatch] = []
    for queue in all_queues():
        channel: Any = connection.channel()
        try:
            queue(channel).declare()
        except PreconditionFailed as exc:
            mismatches.append(Mismatch(queue=queue.name, broker_says=str(exc.reply_text)))
            log.error("topology mismatch", extra={"mice": {"queue": queue.name, "advice": mismatches[-1].advice()}})
        finally:
            try:
                channel.close()
            except Exception:  # noqa: BLE001 - a channel the broker already closed cannot be closed twice
                pass
    return mismatches


def queue_state(connection: Connection, name: str) -> tuple[int, int] | None:
    """(ready messages, consumers) of a queue, or None if it does not exist: a passive declare, never creates."""
    channel: Any = connection.channel()
    try:
        ok = channel.queue_declare(queue=name, passive=True)
        return int(ok.message_count), int(ok.consumer_count)
    except NotFound:
        return None
    finally:
        try:
            channel.close()
        except Exception:  # noqa: BLE001 - NOT_FOUND already closed it
            pass
