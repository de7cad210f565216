"""Handlers: `@subscribe` turns a function into an idempotent Celery task with its own queue and retry policy.

The base task owns everything a handler should not think about: the inbox row that makes a
redelivery a no-op, retries delayed by RabbitMQ (not by worker memory), dead-lettering, the
record of each failed attempt, and one structured log line per run.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

from celery import Task, shared_task
from celery.exceptions import Reject, Retry
from django.db import DatabaseError, close_old_connections, connections, router, transaction
from django.utils import timezone

from mice.events import Envelope
from mice.metrics import HANDLER_DEAD_LETTERED, HANDLER_DURATION, HANDLER_RETRIES, HANDLER_RUNS
from mice.models import HandlerFailure, InboxEntry
from mice.outbox import caused_by, purge_in_chunks
from mice.publisher import BrokerUnavailable
from mice.retry_publisher import retry_publisher
from mice.subscriptions import DEFAULT_RETRY, RETIRED, SUBSCRIPTIONS, RetryPolicy, Subscription, retire
from mice.task_messages import retry_message
from mice.topology import retry_queue

__all__ = ["HandlerTask", "RetryPolicy", "retire", "subscribe"]

log = logging.getLogger("mice.handler")

# The attempt number, carried across Celery's retries (each a new message, unseen by x-death);
# absent on a first delivery.
ATTEMPT_HEADER = "mice_attempt"


def inbox_purge(*, retention: dt.timedelta, chunk: int = 5000) -> int:
    """Forget inbox entries older than the retention: a redelivery after that long is not expected."""
    return purge_in_chunks(InboxEntry.objects.filter(processed_at__lt=timezone.now() - retention), chunk=chunk)


def subscribe(
    event_type: str,
    *,
    retry: RetryPolicy = DEFAULT_RETRY,
    delivery_limit: int = 3,
    name: str | None = None,
    atomic: bool = True,
) -> Callable[[Callable[[Envelope], None]], Callable[[Envelope], None]]:
    """Subscribe a function to an event type; it runs once per event, in its own queue.

    The handler name (and queue) is `<app>.<function>` unless `name` is given. It is part of the
    topology: renaming it means a new queue.

    By default the handler runs in one transaction with its inbox row, so its database effects happen once.
    `atomic=False` is for a handler that calls outside the database (a payment gateway, an SMTP server): it
    opens its own transactions, recording its intent and committing it before the call, and is skipped once
    its inbox row exists (written when it returns).
    """

    def decorate(func: Callable[[Envelope], None]) -> Callable[[Envelope], None]:
        app_label = func.__module__.rsplit(".", 1)[0]
        handler = name or f"{app_label}.{func.__name__}"
        if handler in SUBSCRIPTIONS:
            raise ValueError(f"handler {handler!r} is subscribed twice")
        if handler in RETIRED:
            raise ValueError(f"handler {handler!r} was retired ({RETIRED[handler]}): a retired name is never reused")
        subscription = Subscription(
            handler=handler,
            event_type=event_type,
            func=func,
            retry=retry,
            delivery_limit=delivery_limit,
            atomic=atomic,
        )
        SUBSCRIPTIONS[handler] = subscription

        def run(self: HandlerTask, envelope_dict: dict[str, Any]) -> None:
            self.deliver(envelope_dict)

        run.__name__ = func.__name__
        run.__module__ = func.__module__
        shared_task(bind=True, base=HandlerTask, name=handler, queue=handler, subscription=subscription)(run)
        return func

    return decorate


class HandlerTask(Task):
    """Base class of every handler task."""

    subscription: Subscription
    ignore_result = True
    acks_late = True
    reject_on_worker_lost = True

    def deliver(self, envelope_dict: dict[str, Any]) -> None:
        sub = self.subscription
        # Database connections live across tasks (CELERY_DB_REUSE_MAX); drop one that broke or aged,
        # as Django does around each request.
        close_old_connections()
        attempt = int(self.request.get(ATTEMPT_HEADER) or 1)
        started = time.monotonic()
        context: dict[str, Any] = {"handler": sub.handler, "attempt": attempt, "task_id": self.request.id}
        try:
            envelope = Envelope.from_dict(envelope_dict)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self._record_failure(None, context, exc, "dead-lettered")
            log.error("unreadable envelope", extra={"mice": {**context, "outcome": "dead-lettered"}})
            self._count(started, "dead-lettered")
            raise Reject(f"unreadable envelope: {exc!r}", requeue=False) from exc
        context.update(event_id=envelope.id, correlation_id=envelope.correlationid, event_type=envelope.type)
        try:
            outcome = self._run_once(envelope)
        except Exception as exc:
            context["duration_ms"] = round((time.monotonic() - started) * 1000, 2)
            if sub.retry.is_transient(exc) and attempt < sub.retry.attempts:
                delay_ms = sub.retry.delay_ms(attempt)
                failure = self._record_failure(envelope, context, exc, "retrying")
                try:
                    self._publish_retry(envelope_dict, attempt + 1, delay_ms)
                except Exception as publish_error:  # noqa: BLE001 - re-raised as a requeue
                    # Not parked for later, so not to be acknowledged: the broker keeps the message and
                    # redelivers it. Each redelivery counts against the delivery limit, so give the cause (a
                    # queue being recreated, a broker alarm) a moment to pass first.
                    log.error(
                        "could not park the message for retry, giving it back",
                        extra={"mice": {**context, "outcome": "requeued", "error": repr(publish_error)}},
                    )
                    if failure is not None:
                        HandlerFailure.objects.filter(pk=failure.pk).update(outcome="requeued")
                    self._count(started, "requeued")
                    time.sleep(min(delay_ms / 1000, 5.0))
                    raise Reject(f"retry publish failed: {publish_error!r}", requeue=True) from exc
                log.warning(
                    "handler failed, retrying",
                    extra={"mice": {**context, "outcome": "retrying", "delay_ms": delay_ms, "error": repr(exc)}},
                )
                self._count(started, "retrying")
                raise Retry(exc=exc, when=delay_ms / 1000) from exc  # type: ignore[arg-type]
            self._record_failure(envelope, context, exc, "dead-lettered")
            log.error(
                "handler failed, dead-lettering",
                extra={"mice": {**context, "outcome": "dead-lettered", "error": repr(exc)}},
            )
            self._count(started, "dead-lettered")
            raise Reject(repr(exc), requeue=False) from exc
        context["duration_ms"] = round((time.monotonic() - started) * 1000, 2)
        log.info("handler ran", extra={"mice": {**context, "outcome": outcome}})
        self._count(started, outcome)

    def _count(self, started: float, outcome: str) -> None:
        """The run's metrics (mice/metrics.py): labelled by handler and outcome only."""
        handler = self.subscription.handler
        HANDLER_RUNS.labels(handler, outcome).inc()
        HANDLER_DURATION.labels(handler, outcome).observe(time.monotonic() - started)
        if outcome == "retrying":
            HANDLER_RETRIES.labels(handler).inc()
        elif outcome == "dead-lettered":
            HANDLER_DEAD_LETTERED.labels(handler).inc()

    def _run_once(self, envelope: Envelope) -> str:
        """Run the handler and write the inbox row in one transaction; a second delivery is skipped.

        A non-atomic handler runs outside any transaction of ours, and its inbox row is written after it.
        """
        using = router.db_for_write(InboxEntry)
        if not self.subscription.atomic:
            if InboxEntry.objects.using(using).filter(event_id=envelope.id, handler=self.subscription.handler).exists():
                return "duplicate"
            with caused_by(envelope):
                self.subscription.func(envelope)
            with transaction.atomic(using=using):
                self._inbox_insert(envelope, using)
            return "ok"
        with transaction.atomic(using=using):
            if not self._inbox_insert(envelope, using):
                return "duplicate"
            with caused_by(envelope):
                self.subscription.func(envelope)
        return "ok"

    def _inbox_insert(self, envelope: Envelope, using: str) -> bool:
        """Write the inbox row; False if it was there already (the event was handled)."""
        connection = connections[using]
        event_id = InboxEntry._meta.get_field("event_id").get_db_prep_value(
            uuid.UUID(envelope.id), connection, prepared=False
        )
        with connection.cursor() as cursor:
            # One statement instead of get_or_create's select + savepoint + insert: this is the hot path.
            cursor.execute(
                f"INSERT INTO {InboxEntry._meta.db_table} (event_id, handler, processed_at) "
                "VALUES (%s, %s, CURRENT_TIMESTAMP) ON CONFLICT (event_id, handler) DO NOTHING RETURNING id",
                [event_id, self.subscription.handler],
            )
            return cursor.fetchone() is not None

    def _publish_retry(self, envelope_dict: dict[str, Any], next_attempt: int, delay_ms: int) -> None:
        """Park the message in the TTL'd retry queue; RabbitMQ dead-letters it back when the delay is over.

        Published `mandatory` and confirmed, like the relay's messages: if the retry queue is gone or
        unbound (deleted by hand, or being recreated), the broker returns the message and this raises, so
        the original is given back to the broker instead of being acknowledged. Nothing declares the
        queue here: redeclaring it could rebind a queue an operator is draining.
        """
        queue = retry_queue(self.subscription, delay_ms)
        message = retry_message(
            task_id=str(self.request.id),
            handler=self.subscription.handler,
            envelope_json=json.dumps(envelope_dict),
            attempt_header=ATTEMPT_HEADER,
            attempt=next_attempt,
        )
        outcome = retry_publisher(self.app.conf.broker_url).publish([(queue.name, queue.routing_key, message)])
        if outcome.failed:
            raise BrokerUnavailable(f"the retry was not stored: {outcome.failed[queue.name]}")

    def _record_failure(
        self, envelope: Envelope | None, context: dict[str, Any], exc: BaseException, outcome: str
    ) -> HandlerFailure | None:
        """Keep the exception for the dead-letter recorder and the admin (x-death has none)."""
        try:
            return HandlerFailure.objects.create(
                event_id=envelope.id if envelope else "00000000-0000-0000-0000-000000000000",
                handler=self.subscription.handler,
                correlation_id=envelope.correlationid if envelope else "",
                task_id=self.request.id or "",
                attempt=context["attempt"],
                outcome=outcome,
                exception_type=f"{type(exc).__module__}.{type(exc).__qualname__}",
                exception_message=str(exc)[:10_000],
                traceback="".join(traceback.format_exception(exc))[:50_000],
            )
        except DatabaseError:
            # The database being down is exactly when this cannot be written; the message itself is
            # still retried or dead-lettered, which is what must not be lost.
            log.exception("could not record handler failure", extra={"mice": context})
            return None
