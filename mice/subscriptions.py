"""Who takes which event type, with what retry policy: the handler registry, as data.

Filled by `@subscribe` (mice/handlers.py) as each app's handlers module is imported. The topology is
built from it; the relay does not read it (it reads the routes every process declared, mice/routing.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from django.db import InterfaceError, OperationalError

from mice.events import Envelope

# Infrastructure trouble is transient for every handler: the database going away must not
# dead-letter a perfectly good message.
ALWAYS_TRANSIENT: tuple[type[BaseException], ...] = (OperationalError, InterfaceError)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Which exceptions are transient, how many attempts in all, and the backoff (seconds)."""

    transient: tuple[type[BaseException], ...] = ()
    attempts: int = 5
    backoff: float = 1.0
    cap: float = 300.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff <= 0 or self.cap < self.backoff:
            raise ValueError("RetryPolicy needs attempts >= 1 and 0 < backoff <= cap")

    def is_transient(self, exc: BaseException) -> bool:
        return isinstance(exc, self.transient + ALWAYS_TRANSIENT)

    def delay_ms(self, failed_attempt: int) -> int:
        """The delay before the attempt after `failed_attempt` (1-based): base * 2^(n-1), capped."""
        return int(min(self.cap, self.backoff * 2 ** (failed_attempt - 1)) * 1000)

    def delays_ms(self) -> list[int]:
        """Every distinct delay this policy can ask for: one retry queue (one TTL) each."""
        return sorted({self.delay_ms(n) for n in range(1, self.attempts)})


DEFAULT_RETRY = RetryPolicy()


@dataclasses.dataclass(frozen=True)
class Subscription:
    handler: str
    event_type: str
    func: Callable[[Envelope], None]
    retry: RetryPolicy
    delivery_limit: int
    # False for a handler that calls something outside our database (a gateway, an SMTP server): it commits
    # its own steps (the intent before the call, the outcome after), which one transaction around it would
    # roll back together. Its inbox row is written after it returns; a redelivery before that runs it again,
    # so its own records must make the outside call once.
    atomic: bool = True

    @property
    def queue(self) -> str:
        return self.handler


SUBSCRIPTIONS: dict[str, Subscription] = {}

# Handlers taken out of the code, each with the reason. Every process that records routes deletes theirs
# (mice/routing.py), so no event goes on being published to a queue that no process consumes once the old
# code is gone; a worker still running the old code consumes what its queue holds. A retired name is never
# subscribed again.
RETIRED: dict[str, str] = {}


def retire(handler: str, *, reason: str) -> None:
    """Declare a handler removed from the code (in the app's handlers module, where it was subscribed)."""
    if handler in SUBSCRIPTIONS:
        raise ValueError(f"handler {handler!r} is subscribed: remove its @subscribe before retiring it")
    RETIRED[handler] = reason
