"""Charges made for registrations (the gateway's reference kept; card data never enters the system)."""

from django.db import models


class Charge(models.Model):
    class Status(models.TextChoices):
        SUCCEEDED = "succeeded", "succeeded"
        DECLINED = "declined", "declined"

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
