"""Charges made for registrations (the gateway's reference kept; card data never enters the system)."""

from django.db import models


class Charge(models.Model):
    """One per registration: the charge made, or the record that none ever will be.

    The row is inserted (and locked) before the gateway is called, so a cancellation handled at the same
    moment waits for the outcome and refunds a success. `pending` exists only inside that transaction.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "pending (at the gateway)"
        SUCCEEDED = "succeeded", "succeeded"
        DECLINED = "declined", "declined"
        VOIDED = "voided", "voided (the registration was cancelled before any charge)"

    registration_id = models.UUIDField(unique=True, help_text="Also the idempotency key sent to the gateway.")
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=20, choices=Status.choices)
    gateway = models.CharField(max_length=50)
    gateway_reference = models.CharField(max_length=100, blank=True, default="")
    decline_code = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} for {self.registration_id}: {self.status}"


class Refund(models.Model):
    """A succeeded charge given back, at most once (its registration was cancelled)."""

    class Status(models.TextChoices):
        REQUESTED = "requested", "requested"
        SUCCEEDED = "succeeded", "succeeded"

    charge = models.OneToOneField(Charge, on_delete=models.PROTECT, related_name="refund")
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    reason = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.REQUESTED)
    idempotency_key = models.CharField(max_length=100, unique=True, help_text="Sent to the gateway.")
    gateway_reference = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"refund of {self.amount} for {self.charge.registration_id}: {self.status}"
