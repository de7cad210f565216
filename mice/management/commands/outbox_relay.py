"""`python manage.py outbox_relay`: the long-running process that publishes committed events."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from mice.metrics import metrics_serve
from mice.relay import RelayConfig, run_relays


class Command(BaseCommand):
    help = "Publish committed outbox rows to RabbitMQ (pipelined publisher confirms). Stops cleanly on SIGTERM."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=None, help="rows claimed per batch")
        parser.add_argument("--poll-interval", type=float, default=None, help="seconds between polls when idle")
        parser.add_argument(
            "--concurrency", type=int, default=None, help="relay loops in this process (default MICE_RELAY_CONCURRENCY)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        config = RelayConfig.from_settings()
        if options["batch_size"]:
            config.batch_size = options["batch_size"]
        if options["poll_interval"]:
            config.poll_interval = options["poll_interval"]
        concurrency = options["concurrency"] or settings.MICE_RELAY_CONCURRENCY
        if concurrency < 1:
            raise CommandError("--concurrency must be at least 1")
        metrics_serve(variable="MICE_RELAY_METRICS_PORT")
        run_relays(broker_url=settings.CELERY_BROKER_URL, config=config, concurrency=concurrency)
