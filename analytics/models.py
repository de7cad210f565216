"""Analytics' own record of each registration's lifecycle and of each revenue document, fed by events.

The figures are derived from these rows, never kept as counters that a handler adds to: each handler has its
own queue, so `registration.confirmed` may arrive before `registration.created`, and a row per registration
(whose fields only ever move to the same final values, whatever the order) makes every count exact.
"""

from __future__ import annotations

from django.db import models


class RegistrationRecord(models.Model):
    """One registration as analytics learnt of it from registration.* events (not registrations' own model)."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        CONFIRMED = "confirmed", "confirmed"
        CANCELLED = "cancelled", "cancelled"

    registration_id = models.UUIDField(primary_key=True)
    event_slug = models.SlugField(max_length=100)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    # When it was registered: registration.created's time; until that event arrives, the earliest time of
    # the registration's other events (every event about a registration proves it was received).
    received_at = models.DateTimeField()
    received_at_known = models.BooleanField(default=False, help_text="registration.created has been handled")
    confirmed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["event_slug", "status"], name="analytics_reg_event_status"),
            models.Index(fields=["received_at"], name="analytics_reg_received"),
            models.Index(fields=["confirmed_at"], name="analytics_reg_confirmed"),
            models.Index(fields=["cancelled_at"], name="analytics_reg_cancelled"),
        ]

    def __str__(self) -> str:
        return f"{self.registration_id} for {self.event_slug} ({self.status})"


class RevenueEntry(models.Model):
    """An issued invoice (amounts counted) or credit note (amounts subtracted: stored negative)."""

    class Kind(models.TextChoices):
        INVOICE = "invoice", "invoice"
        CREDIT_NOTE = "credit_note", "credit note"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    document_id = models.CharField(max_length=64, help_text="invoicing's id of the invoice or credit note")
    number = models.CharField(max_length=64, blank=True, default="")
    registration_id = models.UUIDField()
    event_slug = models.SlugField(max_length=100)
    currency = models.CharField(max_length=3)
    net = models.DecimalField(max_digits=12, decimal_places=2)
    gross = models.DecimalField(max_digits=12, decimal_places=2)
    issued_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "revenue entries"
        constraints = [models.UniqueConstraint(fields=["kind", "document_id"], name="analytics_revenue_once")]
        indexes = [models.Index(fields=["event_slug", "currency"], name="analytics_revenue_event")]

    def __str__(self) -> str:
        return f"{self.kind} {self.number or self.document_id}: {self.gross} {self.currency}"


class RefundRecord(models.Model):
    """A charge refunded at the gateway. Shown beside revenue, never subtracted from it: revenue follows
    invoices and credit notes, and a refunded charge either never had an invoice or has a credit note."""

    refund_id = models.CharField(max_length=64, unique=True, help_text="invoicing's id of the refund")
    registration_id = models.UUIDField()
    event_slug = models.SlugField(max_length=100, db_index=True)
    currency = models.CharField(max_length=3)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    refunded_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"refund {self.refund_id}: {self.amount} {self.currency}"
