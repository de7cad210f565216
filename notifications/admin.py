"""The e-mail log in admin, read-only: what was sent to whom, and what the ESP said of it.

A registration's e-mails: /admin/notifications/emaillog/?registration_id=<id> (selectors.email_log_url).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from notifications.models import EmailLog, EmailTrackingEvent


class ReadOnly:
    """The log is written by the send protocol and the webhooks only."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class EmailTrackingEventInline(ReadOnly, admin.TabularInline):
    model = EmailTrackingEvent
    extra = 0
    fields = ("event_type", "occurred_at", "description", "mta_response", "esp_event_id", "received_at")
    readonly_fields = fields


@admin.register(EmailLog)
class EmailLogAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("created_at", "kind", "status", "recipient", "subject", "registration_id", "attempts", "sent_at")
    list_filter = ("kind", "status")
    search_fields = ("recipient",)
    search_help_text = "An e-mail address (or part of one), or a registration id."
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    inlines = [EmailTrackingEventInline]
    fields = (
        "registration_id",
        "kind",
        "event_type",
        "recipient",
        "subject",
        "status",
        "error",
        "attempts",
        "attempted_at",
        "sent_at",
        "message_id",
        "esp_message_id",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[EmailLog], search_term: str
    ) -> tuple[QuerySet[EmailLog], bool]:
        """A registration id is matched exactly; anything else searches the recipient."""
        try:
            registration_id = uuid.UUID(search_term.strip())
        except ValueError:
            return super().get_search_results(request, queryset, search_term)
        return queryset.filter(registration_id=registration_id), False
