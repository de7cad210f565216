"""Template tags for admin pages: the outbox warning on the admin index."""

from __future__ import annotations

from django import template
from django.conf import settings

from mice.selectors import outbox_backlog

register = template.Library()


@register.simple_tag(takes_context=True)
def outbox_lag_warning(context: template.Context) -> float | None:
    """The outbox's lag in seconds when it is over MICE_OUTBOX_LAG_WARNING, for staff who may see the outbox."""
    request = context.get("request")
    if request is None or not request.user.has_perm("mice.view_outboxmessage"):
        return None
    lag = outbox_backlog(statement_timeout_ms=2000).lag_seconds
    return lag if lag > settings.MICE_OUTBOX_LAG_WARNING else None
