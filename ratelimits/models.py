"""One counter per (limit, client address): the hits of the client's current window."""

from __future__ import annotations

from django.db import models


class Counter(models.Model):
    """Hits of one client address against one limit, in the window that opened at its first hit.

    Written only by `ratelimits.services` with one atomic upsert, so concurrent requests in any
    number of processes never lose a hit. A window opens at a client's first hit after the last one
    ended (not on a clock boundary): at most `limit` hits per `period` from its start.
    """

    scope = models.CharField(max_length=40, help_text="Which limit, e.g. registrations or login_failures")
    client = models.CharField(max_length=64, help_text="An IP address, or an IPv6 /64 prefix")
    window_start = models.FloatField(help_text="Unix time the current window opened")
    hits = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "client"], name="ratelimits_one_counter_per_client")]
        indexes = [models.Index(fields=["scope", "window_start"], name="ratelimits_counter_expiry")]

    def __str__(self) -> str:
        return f"{self.scope} {self.client}: {self.hits}"
