"""Django admin for the messaging core: dead letters (replay, discard, grouped by exception), outbox, failures."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from mice.deadletters import ReplayError, dead_letter_discard, dead_letter_replay
from mice.models import DeadLetter, DeadLetterAction, HandlerFailure, InboxEntry, OutboxMessage
from mice.selectors import outbox_state


class ReadOnlyAdmin(admin.ModelAdmin):
    """These rows are written by the machinery only; the admin looks, and acts through services."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DeadLetterActionInline(admin.TabularInline):
    model = DeadLetterAction
    extra = 0
    can_delete = False
    fields = ("created_at", "action", "user", "outbox_message_id")
    readonly_fields = fields
    verbose_name_plural = "audit trail"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "created_at",
        "handler",
        "event_type",
        "exception_type",
        "short_message",
        "reason",
        "attempts",
        "status",
    )
    list_filter = ("status", "queue", "event_type", "exception_type", "reason")
    search_fields = ("event_id", "correlation_id", "exception_message", "handler")
    actions = ("replay_selected", "discard_selected")
    inlines = (DeadLetterActionInline,)
    change_list_template = "admin/mice/deadletter/change_list.html"
    change_form_template = "admin/mice/deadletter/change_form.html"
    fields = (
        "status",
        "handler",
        "queue",
        "routing_key",
        "reason",
        "attempts",
        "event_type",
        "event_id",
        "correlation_id",
        "exception_type",
        "exception_message",
        "traceback_pre",
        "body_pre",
        "headers_pre",
        "x_death_pre",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_view_permission(request, obj)

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("mice.replay_deadletter"))

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        # The "grouped by handler and exception" links filter on the handler and the message as well.
        return lookup in ("exception_message", "handler") or super().lookup_allowed(lookup, value, request)

    @admin.display(description="message")
    def short_message(self, obj: DeadLetter) -> str:
        return (obj.exception_message[:120] + "…") if len(obj.exception_message) > 120 else obj.exception_message

    @staticmethod
    def _pre(value: Any) -> str:
        text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False, default=str)
        return format_html('<pre style="white-space:pre-wrap;max-height:30em;overflow:auto">{}</pre>', text)

    @admin.display(description="traceback")
    def traceback_pre(self, obj: DeadLetter) -> str:
        return self._pre(obj.traceback or "(none recorded)")

    @admin.display(description="body")
    def body_pre(self, obj: DeadLetter) -> str:
        return self._pre(obj.body if obj.body is not None else obj.raw_body)

    @admin.display(description="headers")
    def headers_pre(self, obj: DeadLetter) -> str:
        return self._pre(obj.headers)

    @admin.display(description="x-death")
    def x_death_pre(self, obj: DeadLetter) -> str:
        return self._pre(obj.x_death)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        groups = (
            DeadLetter.objects.filter(status=DeadLetter.Status.NEW)
            .values("handler", "exception_type", "exception_message")
            .annotate(count=Count("id"))
            .order_by("-count")[:20]
        )
        extra_context = {**(extra_context or {}), "exception_groups": list(groups)}
        return super().changelist_view(request, extra_context)

    def get_urls(self) -> list[URLPattern]:
        own = [
            path("<int:pk>/replay/", self.admin_site.admin_view(self.replay_view), name="mice_deadletter_replay"),
            path("<int:pk>/discard/", self.admin_site.admin_view(self.discard_view), name="mice_deadletter_discard"),
        ]
        return own + super().get_urls()

    def _act_on_one(self, request: HttpRequest, pk: int, service: Any, verb: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_replay_permission(request):
            messages.error(request, "You do not have permission to replay or discard dead letters.")
        else:
            dead_letter = get_object_or_404(DeadLetter, pk=pk)
            try:
                service(dead_letter=dead_letter, user=request.user)
                messages.success(request, f"Dead letter {pk} {verb}.")
            except ReplayError as exc:
                messages.error(request, str(exc))
        return HttpResponseRedirect(reverse("admin:mice_deadletter_change", args=[pk]))

    def replay_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return self._act_on_one(request, pk, dead_letter_replay, "replayed to its handler")

    def discard_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return self._act_on_one(request, pk, dead_letter_discard, "discarded")

    def _act_on_many(self, request: HttpRequest, queryset: QuerySet[DeadLetter], service: Any, verb: str) -> None:
        done, refused = 0, []
        for dead_letter in queryset.order_by("id"):
            try:
                service(dead_letter=dead_letter, user=request.user)
                done += 1
            except ReplayError as exc:
                refused.append(str(exc))
        if done:
            messages.success(request, f"{done} dead letter(s) {verb}.")
        for reason in refused[:10]:
            messages.warning(request, reason)

    @admin.action(description="Replay selected dead letters to the handler they failed in", permissions=["replay"])
    def replay_selected(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        self._act_on_many(request, queryset, dead_letter_replay, "replayed")

    @admin.action(description="Discard selected dead letters", permissions=["replay"])
    def discard_selected(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        self._act_on_many(request, queryset, dead_letter_discard, "discarded")


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdmin):
    list_display = ("id", "event_type", "event_id", "handler", "created_at", "sent_at", "attempts", "last_error")
    list_filter = ("event_type", ("sent_at", admin.EmptyFieldListFilter))
    search_fields = ("event_id", "correlation_id")

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """Above the rows: pending and due counts, the relay's lag and rate, and rows it could not send."""
        state = outbox_state()
        extra_context = {
            **(extra_context or {}),
            "outbox": state,
            "outbox_lagging": state.backlog.lag_seconds > settings.MICE_OUTBOX_LAG_WARNING,
            "outbox_lag_warning": settings.MICE_OUTBOX_LAG_WARNING,
        }
        return super().changelist_view(request, extra_context)


@admin.register(HandlerFailure)
class HandlerFailureAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "handler", "event_id", "attempt", "outcome", "exception_type")
    list_filter = ("outcome", "handler", "exception_type")
    search_fields = ("event_id", "correlation_id")


@admin.register(InboxEntry)
class InboxEntryAdmin(ReadOnlyAdmin):
    list_display = ("id", "event_id", "handler", "processed_at")
    list_filter = ("handler",)
    search_fields = ("event_id",)
