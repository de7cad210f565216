"""`python manage.py mice_upkeep`: the Procfile's scheduler, running every app's upkeep jobs on a timer."""

from __future__ import annotations

import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from mice.upkeep import Scheduler, upkeep_jobs, upkeep_run


class Command(BaseCommand):
    help = (
        "Run the upkeep jobs (expired idempotency keys and rate-limit counters, overdue payment deadlines) every "
        "MICE_UPKEEP_INTERVAL seconds until SIGTERM; with --once, run each job once and exit."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="run each job once and exit (e.g. from cron)")

    def handle(self, *args: Any, **options: Any) -> None:
        jobs = upkeep_jobs()
        if options["once"]:
            failed = [outcome.job for outcome in upkeep_run(jobs=jobs) if outcome.outcome == "failed"]
            if failed:
                raise SystemExit(f"upkeep jobs failed: {', '.join(failed)}")
            return
        scheduler = Scheduler(jobs=jobs, interval=settings.MICE_UPKEEP_INTERVAL)
        signal.signal(signal.SIGTERM, scheduler.stop)
        signal.signal(signal.SIGINT, scheduler.stop)
        scheduler.run()
