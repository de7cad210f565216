"""Fill analytics' rows from the events the outbox still holds (after a first deploy, or a fix to the figures)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from analytics.services import records_replay
from mice.models import OutboxMessage


class Command(BaseCommand):
    help = (
        "Apply every event the outbox still holds (MICE_OUTBOX_RETENTION_HOURS) to analytics' rows. Safe while "
        "workers run and safe to repeat: an event counted by both is counted once."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        envelopes = OutboxMessage.objects.order_by("id").values_list("envelope", flat=True).iterator(chunk_size=1000)
        applied = records_replay(envelopes=envelopes)
        self.stdout.write(f"applied {applied} events to analytics")
