"""`python manage.py mice_topology`: declare the RabbitMQ topology, report and repair argument changes."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from kombu import Connection

from mice.topology import all_queues, maybe_declare_all, queue_depth


class Command(BaseCommand):
    help = "Declare exchanges and queues (idempotent). Exits 1 if a queue exists with other arguments."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--list", action="store_true", help="print the declared queues and their arguments")
        parser.add_argument(
            "--recreate", metavar="QUEUE", help="delete an EMPTY queue and declare it with the current arguments"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=5) as connection:
            try:
                connection.ensure_connection(max_retries=1)
            except Exception as exc:
                raise CommandError(f"cannot reach the broker: {exc}") from exc
            if options["recreate"]:
                self._recreate(connection, options["recreate"])
            mismatches = maybe_declare_all(connection)
            if options["list"]:
                for queue in all_queues():
                    self.stdout.write(f"{queue.name}  {queue.queue_arguments}")
            for mismatch in mismatches:
                self.stderr.write(mismatch.advice())
            if mismatches:
                raise CommandError(f"{len(mismatches)} queue(s) differ from the code; see above")
            self.stdout.write(self.style.SUCCESS(f"topology declared: {len(all_queues())} queues"))

    def _recreate(self, connection: Connection, name: str) -> None:
        wanted = {q.name: q for q in all_queues()}
        if name not in wanted:
            raise CommandError(f"{name!r} is not a queue of this topology")
        depth = queue_depth(connection, name)
        if depth:
            raise CommandError(f"{name!r} still holds {depth} message(s); drain it first (nothing was changed)")
        channel: Any = connection.channel()
        try:
            if depth is not None:
                channel.queue_delete(queue=name, if_empty=True)
            wanted[name](channel).declare()
        finally:
            channel.close()
        self.stdout.write(f"recreated {name}")
