"""Receivers of anymail's signals: the ESP's tracking webhooks update the e-mail log."""

from typing import Any

from anymail.signals import AnymailTrackingEvent, tracking
from django.dispatch import receiver

from notifications.services import email_tracking_record


@receiver(tracking, dispatch_uid="notifications.tracking")
def on_tracking_event(sender: Any, event: AnymailTrackingEvent, esp_name: str, **kwargs: Any) -> None:
    email_tracking_record(event=event, esp_name=esp_name)
