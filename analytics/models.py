"""Per-event figures, kept up to date from the event stream."""

from decimal import Decimal

from django.db import models


class EventFigures(models.Model):
    event_slug = models.SlugField(max_length=100, unique=True)
    event_name = models.CharField(max_length=200, blank=True, default="")
    registrations = models.PositiveIntegerField(default=0)
    confirmed = models.IntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)
    revenue = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"))
    currency = models.CharField(max_length=3, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "event figures"

    def __str__(self) -> str:
        return f"{self.event_slug}: {self.registrations} registrations"
