"""Read-only queries other apps may use."""

from __future__ import annotations

import uuid

from django.urls import reverse


def email_log_url(*, registration_id: uuid.UUID | str) -> str:
    """The admin list of a registration's e-mails (for a link from the registration's admin page)."""
    return f"{reverse('admin:notifications_emaillog_changelist')}?registration_id={registration_id}"
