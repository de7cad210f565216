"""The e-mail log: one row per message we send (registration and kind), and what the ESP told us of it."""

from django.db import models


class EmailLog(models.Model):
    """One e-mail of one kind for one registration, at most: the row is the record of intent.

    Committed as `queued` before the message is handed to the mail server, so a redelivered event finds it
    and never sends a second message; `sent` once the server took it; `delivered` or `bounced` when the
    ESP's tracking webhook says so.
    """

    class Kind(models.TextChoices):
        RECEIVED = "received", "registration received"
        CONFIRMED = "confirmed", "registration confirmed"
        CANCELLED = "cancelled", "registration cancelled"

    class Status(models.TextChoices):
        QUEUED = "queued", "queued (recorded, not yet accepted by the mail server)"
        SENT = "sent", "sent (accepted by the mail server)"
        FAILED = "failed", "failed (rejected for good, not retried)"
        DELIVERED = "delivered", "delivered (ESP tracking)"
        BOUNCED = "bounced", "bounced (ESP tracking)"

    registration_id = models.UUIDField(db_index=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    event_type = models.CharField(max_length=100, help_text="The event that caused the e-mail.")
    recipient = models.CharField(max_length=320, help_text="The address only (no display name).")
    subject = models.CharField(max_length=300)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    message_id = models.CharField(
        max_length=300, unique=True, help_text="The Message-ID header we set: the same on every attempt."
    )
    esp_message_id = models.CharField(
        max_length=300, blank=True, default="", db_index=True, help_text="The ESP's id for the message, if any."
    )
    error = models.TextField(blank=True, default="", help_text="The last error of a send attempt.")
    attempts = models.PositiveIntegerField(default=0, help_text="Send attempts, each committed before it is made.")
    attempted_at = models.DateTimeField(
        null=True, blank=True, help_text="When the attempt in progress started; empty once it has ended."
    )
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "e-mail"
        constraints = [
            models.UniqueConstraint(fields=["registration_id", "kind"], name="notifications_one_email_per_kind")
        ]

    def __str__(self) -> str:
        return f"{self.kind} e-mail for {self.registration_id}: {self.status}"


class EmailTrackingEvent(models.Model):
    """What an ESP's tracking webhook reported for a message, kept as it came (anymail's normalised event)."""

    email = models.ForeignKey(EmailLog, on_delete=models.CASCADE, related_name="tracking_events")
    event_type = models.CharField(max_length=50, help_text="anymail's normalised type: delivered, bounced, ...")
    esp_event_id = models.CharField(max_length=300, blank=True, default="")
    occurred_at = models.DateTimeField(null=True, blank=True)
    description = models.TextField(blank=True, default="")
    mta_response = models.TextField(blank=True, default="")
    esp_event = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["received_at", "id"]

    def __str__(self) -> str:
        return f"{self.event_type} for {self.email_id}"
