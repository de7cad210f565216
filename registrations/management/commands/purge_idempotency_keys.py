"""`python manage.py purge_idempotency_keys`: delete idempotency records past their 24-hour TTL."""

from typing import Any

from django.core.management.base import BaseCommand

from registrations.idempotency import idempotency_purge


class Command(BaseCommand):
    help = "Delete Idempotency-Key and form-token records older than IDEMPOTENCY_KEY_TTL_HOURS (mice_upkeep does too)."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"purged {idempotency_purge()} idempotency record(s)")
