"""E-mails to attendees, sent once each, and their log."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from notifications import receivers  # noqa: F401 - connects anymail's tracking signal
        from registrations.signals import registration_admin_links

        registration_admin_links.connect(registration_admin_links_offer, dispatch_uid="notifications.admin_links")


def registration_admin_links_offer(sender: Any, *, registration_id: str, **kwargs: Any) -> list[dict[str, str]]:
    """The registration's e-mails in admin, for its timeline page."""
    from notifications.selectors import email_log_url

    return [{"title": "e-mails", "url": email_log_url(registration_id=registration_id)}]
