"""What probe handlers did: one row per handler run that committed (no uniqueness, so doubles show)."""

from django.db import models


class Effect(models.Model):
    event_id = models.UUIDField()
    handler = models.CharField(max_length=200)
    attempt = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.handler} {self.event_id}"


class Switch(models.Model):
    """A flag a test flips to 'fix the bug' of a handler that always fails."""

    name = models.CharField(max_length=100, unique=True)
    on = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.name}={self.on}"
