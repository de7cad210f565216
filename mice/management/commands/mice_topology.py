"""`python manage.py mice_topology`: declare the RabbitMQ topology, report and repair argument changes."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from kombu import Connection

from mice.topology import all_queues, maybe_declare_all, queue_state


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
        """Delete and redeclare a queue, refusing while it (or a retry queue feeding it) holds messages or
        has consumers: quorum queues do not support delete-if-empty, so this checks just before deleting.
        Meanwhile the relay keeps messages for it pending (they are unroutable), so nothing is lost."""
        wanted = {q.name: q for q in all_queues()}
        if name not in wanted:
            raise CommandError(f"{name!r} is not a queue of this topology")
        feeding = [q for q in wanted if q.startswith(f"{name}.retry.")]
        for queue_name in [name, *feeding]:
            state = queue_state(connection, queue_name)
            if state is None:
                continue
            messages, consumers = state
            if messages or consumers:
                raise CommandError(
                    f"{queue_name!r} still holds {messages} message(s) and has {consumers} consumer(s); "
                    "stop its workers once it is drained, then try again (nothing was changed)"
                )
        channel: Any = connection.channel()
        try:
            if queue_state(connection, name) is not None:
                channel.queue_delete(queue=name)
            wanted[name](channel).declare()
        finally:
            channel.close()
        self.stdout.write(f"recreated {name}")
