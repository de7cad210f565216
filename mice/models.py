"""The messaging core's tables: outbox, inbox, handler failures, dead letters and their audit trail."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class OutboxMessage(models.Model):
    """An event committed with the business change that caused it, waiting for the relay.

    `handler` is empty for a normal event (fanned out to every handler of its type) and names one handler
    for a dead-letter replay, which must reach only the handler that failed.
    """

    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(db_index=True)
    event_type = models.CharField(max_length=200)
    correlation_id = models.CharField(max_length=64, db_index=True)
    envelope = models.JSONField()
    handler = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    available_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        indexes = [
            # The relay claims by (available_at, id): rows held back for later (a saga's deadline, a retry
            # backoff) are never scanned before their time, however many wait.
            models.Index(fields=["available_at", "id"], condition=Q(sent_at__isnull=True), name="mice_outbox_due"),
            models.Index(fields=["sent_at"], condition=Q(sent_at__isnull=False), name="mice_outbox_sent"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}" + (f" -> {self.handler}" if self.handler else "")


class Route(models.Model):
    """A subscription some running code declared: the relay sends each event to every route of its type.

    Kept in the database, not in each process's memory, so that a relay publishes to a handler that was
    deployed after it started (mice/routing.py). Written after the handler's queue was declared.
    """

    handler = models.CharField(max_length=200, primary_key=True, help_text="Also the name of its queue.")
    event_type = models.CharField(max_length=200, db_index=True)
    declared_at = models.DateTimeField(default=timezone.now, help_text="When a process last declared it.")

    def __str__(self) -> str:
        return f"{self.event_type} -> {self.handler}"


class InboxEntry(models.Model):
    """Proof that a handler's effects for one event are committed; its presence makes a redelivery a no-op."""

    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField()
    handler = models.CharField(max_length=200)
    processed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["event_id", "handler"], name="mice_inbox_once")]
        verbose_name_plural = "inbox entries"

    def __str__(self) -> str:
        return f"{self.handler} handled {self.event_id}"


class HandlerFailure(models.Model):
    """One failed handler attempt, committed apart from the rolled-back handler transaction.

    RabbitMQ's x-death carries no exception, so the dead-letter recorder takes it from here.
    """

    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(db_index=True)
    handler = models.CharField(max_length=200)
    correlation_id = models.CharField(max_length=64, blank=True, default="")
    task_id = models.CharField(max_length=64, blank=True, default="")
    attempt = models.PositiveIntegerField()
    outcome = models.CharField(max_length=20)  # "retrying", "requeued" (retry not stored) or "dead-lettered"
    exception_type = models.CharField(max_length=300)
    exception_message = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["event_id", "handler"], name="mice_failure_lookup")]

    def __str__(self) -> str:
        return f"{self.handler} attempt {self.attempt} on {self.event_id}: {self.exception_type}"


class DeadLetter(models.Model):
    """A message RabbitMQ dead-lettered, kept until someone replays or discards it."""

    class Status(models.TextChoices):
        NEW = "new", "new"
        REPLAYED = "replayed", "replayed"
        DISCARDED = "discarded", "discarded"

    id = models.BigAutoField(primary_key=True)
    key = models.CharField(max_length=200, unique=True, help_text="What makes recording twice harmless.")
    event_id = models.UUIDField(null=True, blank=True, db_index=True)
    event_type = models.CharField(max_length=200, blank=True, default="")
    correlation_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    handler = models.CharField(max_length=200, blank=True, default="")
    queue = models.CharField(max_length=200, blank=True, default="", help_text="The queue it died in.")
    routing_key = models.CharField(max_length=200, blank=True, default="")
    reason = models.CharField(max_length=40, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    exception_type = models.CharField(max_length=300, blank=True, default="")
    exception_message = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    body = models.JSONField(null=True, blank=True)
    raw_body = models.TextField(blank=True, default="")
    headers = models.JSONField(default=dict, blank=True)
    x_death = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        permissions = [("replay_deadletter", "Can replay or discard dead letters")]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.event_type or 'message'} in {self.handler or self.queue}: {self.exception_type or self.reason}"


class DeadLetterAction(models.Model):
    """The audit trail: who replayed or discarded which dead letter, and when."""

    class Action(models.TextChoices):
        REPLAYED = "replayed", "replayed"
        DISCARDED = "discarded", "discarded"

    id = models.BigAutoField(primary_key=True)
    dead_letter = models.ForeignKey(DeadLetter, on_delete=models.CASCADE, related_name="actions")
    action = models.CharField(max_length=20, choices=Action.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    outbox_message_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.action} by {self.user} at {self.created_at:%Y-%m-%d %H:%M:%S}"
