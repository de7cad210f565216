"""`python manage.py mice_topology`: declare the RabbitMQ topology, report and repair argument changes."""

from __future__ import annotations

from typing import Any

from amqp.exceptions import NotFound
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from kombu import Connection

from mice.brokers import broker_connect, broker_urls
from mice.routing import route_forget, route_table, routes_declare
from mice.subscriptions import SUBSCRIPTIONS
from mice.topology import all_queues, queue_state


class Command(BaseCommand):
    help = "Declare exchanges and queues (idempotent). Exits 1 if a queue exists with other arguments."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--list", action="store_true", help="print the declared queues and their arguments")
        parser.add_argument(
            "--recreate", metavar="QUEUE", help="delete an EMPTY queue and declare it with the current arguments"
        )
        parser.add_argument(
            "--forget",
            metavar="HANDLER",
            help="stop routing events to a handler that no running code has any more (its queue is left alone)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["forget"]:
            self._forget(options["forget"])
            return
        try:
            # Any node of a cluster will do: exchanges, queues and bindings are the cluster's.
            connection, _ = broker_connect(broker_urls(settings.CELERY_BROKER_URL), connect_timeout=5)
        except Exception as exc:
            raise CommandError(f"cannot reach the broker: {exc}") from exc
        with connection:
            if options["recreate"]:
                self._recreate(connection, options["recreate"])
            mismatches = routes_declare(connection)
            if options["list"]:
                for queue in all_queues():
                    self.stdout.write(f"{queue.name}  {queue.queue_arguments}")
                for event_type, handlers in sorted(route_table().items()):
                    for handler in handlers:
                        gone = (
                            ""
                            if handler in SUBSCRIPTIONS
                            else "  (not in this code: --forget it once no process runs it)"
                        )
                        self.stdout.write(f"route {event_type} -> {handler}{gone}")
            for mismatch in mismatches:
                self.stderr.write(mismatch.advice())
            if mismatches:
                raise CommandError(f"{len(mismatches)} queue(s) differ from the code; see above")
            self.stdout.write(self.style.SUCCESS(f"topology declared: {len(all_queues())} queues"))

    def _forget(self, handler: str) -> None:
        if handler in SUBSCRIPTIONS:
            raise CommandError(f"{handler!r} is a handler of this code: remove it from the code and deploy first")
        if not route_forget(handler=handler):
            raise CommandError(f"no route to {handler!r}")
        self.stdout.write(f"forgot {handler}: no more events are published to it; delete its queues once drained")

    def _recreate(self, connection: Connection, name: str) -> None:
        """Delete and redeclare a queue once it is drained, losing nothing published meanwhile.

        The queue is first unbound, so that nothing new can reach it: the relay's messages for it come back
        unroutable and stay pending in the outbox, a retry queue's expired messages stay in it (at-least-once
        dead-lettering), and a handler's retry is given back to its work queue. Only then is it checked
        (it, and the retry queues feeding it, hold no messages and have no consumers; quorum queues have no
        delete-if-empty) and deleted; declaring it binds it again. If it is not drained, the binding is
        restored and nothing else changes.
        """
        wanted = {q.name: q for q in all_queues()}
        if name not in wanted:
            raise CommandError(f"{name!r} is not a queue of this topology")
        queue = wanted[name]
        feeding = [q for q in wanted if q.startswith(f"{name}.retry.")]
        channel: Any = connection.channel()
        try:
            try:
                channel.queue_unbind(queue=name, exchange=queue.exchange.name, routing_key=queue.routing_key)
                exists = True
            except NotFound:  # no such queue (the broker closed the channel): nothing to drain or delete
                channel, exists = connection.channel(), False
            for queue_name in [name, *feeding]:
                state = queue_state(connection, queue_name)
                if state is None:
                    continue
                messages, consumers = state
                if messages or consumers:
                    if exists:  # bound again, as it was (a plain bind: its arguments may be the old ones)
                        channel.queue_bind(queue=name, exchange=queue.exchange.name, routing_key=queue.routing_key)
                    raise CommandError(
                        f"{queue_name!r} still holds {messages} message(s) and has {consumers} consumer(s); "
                        "stop its workers once it is drained, then try again (nothing was changed)"
                    )
            if exists:
                channel.queue_delete(queue=name)
            queue(channel).declare()
        finally:
            channel.close()
        self.stdout.write(f"recreated {name}")
