"""Admin for events and registrations; a registration shows its saga's timeline across every process."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from mice.selectors import timeline
from registrations.models import Event, Registration


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "venue", "starts_at", "capacity", "seats_taken", "price", "currency")
    search_fields = ("name", "slug", "venue")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("seats_taken", "created_at", "updated_at")


@admin.register(Registration)
class RegistrationAdmin(admin.ModelAdmin):
    list_display = ("id", "event", "first_name", "last_name", "email", "status", "created_at")
    list_filter = ("status", "event")
    search_fields = ("id", "email", "last_name")
    fields = (
        "id",
        "event",
        "first_name",
        "last_name",
        "email",
        "company",
        "status",
        "cancellation_reason",
        "created_at",
        "updated_at",
        "event_timeline",
    )
    readonly_fields = fields

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False  # registrations are made through the form or the API, which take a seat and emit the event

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    @admin.display(description="event timeline")
    def event_timeline(self, obj: Registration) -> str:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((f"{e.at:%Y-%m-%d %H:%M:%S.%f}"[:-3], e.what, e.detail) for e in timeline(correlation_id=str(obj.id))),
        )
        return format_html("<table><tr><th>when</th><th>what</th><th>detail</th></tr>{}</table>", rows)
