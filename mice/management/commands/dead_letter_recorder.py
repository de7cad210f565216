"""`python manage.py dead_letter_recorder`: stores every dead-lettered message before acknowledging it."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import InterfaceError, OperationalError, connections
from kombu import Connection, Consumer, Message
from kombu.mixins import ConsumerMixin

from mice.deadletters import dead_letter_record, dead_letter_record_raw
from mice.metrics import metrics_serve
from mice.topology import DEAD_LETTERS, maybe_declare_all

log = logging.getLogger("mice.deadletters")


class DeadLetterRecorder(ConsumerMixin):
    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._db_failures = 0

    def get_consumers(self, consumer_cls: Callable[..., Consumer], channel: Any) -> list[Consumer]:
        return [consumer_cls(queues=[DEAD_LETTERS], on_message=self.on_message, prefetch_count=20)]

    def on_consume_ready(
        self, connection: Connection, channel: Any, consumers: Sequence[Consumer], **kwargs: Any
    ) -> None:
        """Declare the topology on the connection just made. ConsumerMixin consumes on a clone of
        `self.connection` (which fails over along a `;`-separated URL list); `self.connection` itself stays
        on the first node it reached, so declaring through it after that node died failed once more."""
        maybe_declare_all(connection)

    def on_message(self, message: Message) -> None:
        try:
            dead_letter_record(
                body=message.body or b"",
                headers=message.headers,
                routing_key=message.delivery_info.get("routing_key", ""),
            )
        except (OperationalError, InterfaceError) as exc:
            # The database is away: not recorded, so not acknowledged. Give it back and wait.
            self._db_failures += 1
            delay = min(30.0, 0.5 * 2 ** min(self._db_failures, 6))
            log.warning(
                "database unavailable, dead letter requeued", extra={"mice": {"error": repr(exc), "retry_in_s": delay}}
            )
            for conn in connections.all():
                conn.close()
            message.requeue()
            time.sleep(delay)
            return
        except Exception as exc:  # noqa: BLE001 - anything else about this one message: store it raw, go on
            dead_letter_record_raw(body=message.body or b"", error=repr(exc))
        self._db_failures = 0
        message.ack()


class Command(BaseCommand):
    help = "Consume mice.dead_letters and store each message as a DeadLetter row (shown in Django admin)."

    def handle(self, *args: Any, **options: Any) -> None:
        metrics_serve(variable="MICE_RECORDER_METRICS_PORT")
        with Connection(settings.CELERY_BROKER_URL, heartbeat=30) as connection:
            recorder = DeadLetterRecorder(connection)

            def stop(*_: Any) -> None:
                recorder.should_stop = True

            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
            log.info("dead-letter recorder started")
            recorder.run()
            log.info("dead-letter recorder stopped")
