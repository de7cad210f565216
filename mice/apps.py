"""The messaging core's app config: finds every app's events and handlers modules at start."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core import checks
from django.utils.module_loading import autodiscover_modules


class MiceConfig(AppConfig):
    name = "mice"
    verbose_name = "Messaging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from mice import outbox  # noqa: F401 - connects the outbox to every event type's domain signal

        # Event types first, so handlers can be checked against them.
        autodiscover_modules("events")
        autodiscover_modules("handlers")
        checks.register(check_subscriptions, "mice")


def check_subscriptions(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every handler subscribes to a declared, live event type; every live event type has a route."""
    from mice.events import EVENT_TYPES
    from mice.subscriptions import SUBSCRIPTIONS

    errors: list[checks.CheckMessage] = []
    for sub in SUBSCRIPTIONS.values():
        declared = EVENT_TYPES.get(sub.event_type)
        if declared is None:
            errors.append(
                checks.Error(
                    f"handler {sub.handler} subscribes to undeclared event type {sub.event_type!r}", id="mice.E001"
                )
            )
        elif declared.retired:
            errors.append(
                checks.Error(
                    f"handler {sub.handler} subscribes to retired event type {sub.event_type!r}", id="mice.E002"
                )
            )
    routed = {sub.event_type for sub in SUBSCRIPTIONS.values()}
    for name, declared in EVENT_TYPES.items():
        if not declared.retired and name not in routed:
            errors.append(
                checks.Warning(f"event type {name!r} has no handler: nothing would receive it", id="mice.W001")
            )
    return errors
