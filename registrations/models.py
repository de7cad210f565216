"""MICE events (the conferences), their seats, and the registrations for them."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.utils import timezone

# How long a pending registration has to be paid before it is cancelled and its seat released.
DEFAULT_PAYMENT_DEADLINE_SECONDS = 30 * 60


class Event(models.Model):
    """A conference, exhibition or meeting people register for. `seats_taken` is only changed by services."""

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    venue = models.CharField(max_length=200)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    capacity = models.PositiveIntegerField()
    seats_taken = models.PositiveIntegerField(default=0, editable=False)
    price = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0"))],
        help_text="VAT included; 0 is free",
    )
    currency = models.CharField(max_length=3, validators=[RegexValidator(r"^[A-Z]{3}$", "an ISO 4217 code, e.g. EUR")])
    vat_rate = models.DecimalField(
        max_digits=5, decimal_places=2, default=settings.DEFAULT_VAT_RATE, validators=[MinValueValidator(Decimal("0"))]
    )
    registration_opens_at = models.DateTimeField(default=timezone.now)
    registration_closes_at = models.DateTimeField()
    payment_deadline_seconds = models.PositiveIntegerField(
        default=DEFAULT_PAYMENT_DEADLINE_SECONDS,
        db_default=DEFAULT_PAYMENT_DEADLINE_SECONDS,  # old code inserting events during the deploy omits it
        validators=[MinValueValidator(1)],
        help_text="Seconds a registration has to be paid; unpaid by then, it is cancelled and its seat released.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["starts_at"]
        constraints = [
            models.CheckConstraint(condition=Q(seats_taken__lte=F("capacity")), name="event_never_oversold"),
            models.CheckConstraint(condition=Q(ends_at__gte=F("starts_at")), name="event_ends_after_start"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def seats_left(self) -> int:
        return max(0, self.capacity - self.seats_taken)

    @property
    def is_free(self) -> bool:
        return self.price == 0

    def is_open(self, now: object = None) -> bool:
        moment = now or timezone.now()
        return self.registration_opens_at <= moment < self.registration_closes_at  # type: ignore[operator]


class Registration(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        CONFIRMED = "confirmed", "confirmed"
        CANCELLED = "cancelled", "cancelled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event = models.ForeignKey(Event, on_delete=models.PROTECT, related_name="registrations")
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    email = models.EmailField(max_length=254)
    company = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    cancellation_reason = models.CharField(max_length=200, blank=True, default="")
    payment_due_at = models.DateTimeField(
        null=True, blank=True, help_text="When a pending registration is cancelled if its charge has not succeeded."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("cancel_registration", "Can cancel a registration (its seat is released, a payment refunded)")]
        constraints = [
            models.UniqueConstraint(
                F("event"), Lower("email"), condition=~Q(status="cancelled"), name="one_active_registration_per_email"
            )
        ]
        indexes = [
            # Upkeep looks for pending registrations past their deadline, or with none: only those rows.
            models.Index(fields=["payment_due_at"], condition=Q(status="pending"), name="registration_pending_due"),
        ]

    def __str__(self) -> str:
        # The event's name when it is loaded already (admin selects it); never a query per registration listed.
        event = self.event.name if Registration.event.is_cached(self) else f"event {self.event_id}"
        return f"{self.first_name} {self.last_name} for {event} ({self.status})"


class PaymentToken(models.Model):
    """The gateway token a pending registration will be charged with, until the charge is decided.

    Kept apart from the registration and from every event: only the charge handler reads it (through
    registrations.selectors), it is deleted once the charge succeeds or fails or the registration is
    cancelled, and it is deliberately not registered in admin.
    """

    registration = models.OneToOneField(Registration, on_delete=models.CASCADE, primary_key=True)
    token = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"payment token of {self.registration_id}"


class IdempotencyRecord(models.Model):
    """The first answer given for an Idempotency-Key (API) or a form's submission token, kept 24 hours."""

    key = models.CharField(max_length=300, unique=True)
    request_fingerprint = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return self.key
