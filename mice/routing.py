"""Routes: which handlers take which event type, as declared by every running process; read by the relay.

The relay does not route from its own code's registry, or a handler deployed after it started would never
get an event. Each process that declares the topology (workers, relays, `mice_topology`) records its
subscriptions here once their queues exist, and the relay reads this table in the statement that claims
the rows (mice/relay.py), in a snapshot taken after their events committed: a route committed before an
event was committed is always seen.
An event with no route at all is "routed to no one", which the relay treats as a failure, never as sent.
"""

from __future__ import annotations

from kombu import Connection

from mice.models import Route
from mice.subscriptions import RETIRED, SUBSCRIPTIONS
from mice.topology import Mismatch, maybe_declare_all


def routes_declare(connection: Connection) -> list[Mismatch]:
    """Declare the topology, then record this code's subscriptions as routes (queues first, routes after).

    A queue whose arguments changed still exists and is still bound, so its route is recorded too.
    """
    mismatches = maybe_declare_all(connection)
    route_record()
    return mismatches


def route_record() -> None:
    """Upsert a route for each subscription of this code (a handler moved to another type moves with it), and
    delete the routes of the handlers this code retired."""
    if RETIRED:
        Route.objects.filter(handler__in=list(RETIRED)).delete()
    if not SUBSCRIPTIONS:
        return
    Route.objects.bulk_create(
        [Route(handler=sub.handler, event_type=sub.event_type) for sub in SUBSCRIPTIONS.values()],
        update_conflicts=True,
        unique_fields=["handler"],
        update_fields=["event_type", "declared_at"],
    )


def route_table(*, using: str = "default") -> dict[str, list[str]]:
    """Event type -> the handlers subscribed to it, as every process declared them."""
    table: dict[str, list[str]] = {}
    for event_type, handler in Route.objects.using(using).order_by("handler").values_list("event_type", "handler"):
        table.setdefault(event_type, []).append(handler)
    return table


def route_forget(*, handler: str) -> bool:
    """Stop publishing to a handler that was removed from the code (its queue is left for an operator)."""
    deleted, _ = Route.objects.filter(handler=handler).delete()
    return bool(deleted)
