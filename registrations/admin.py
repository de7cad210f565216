"""Admin for events and registrations; a registration shows its saga's timeline across every process."""

from __future__ import annotations

import logging
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from mice.selectors import saga
from registrations.models import Event, Registration
from registrations.services import EDITABLE_FIELDS, event_create, event_update, event_validate, registration_cancel
from registrations.signals import registration_admin_links_get

log = logging.getLogger("registrations")


class EventAdminForm(forms.ModelForm):
    """Validates through the event service, so that what the form accepts the service saves.

    In admin's change view (one transaction) the check locks the event row until the save: a
    registration cannot take the seat that would make the new capacity too small in between.
    """

    class Meta:
        model = Event
        fields = (
            "name",
            "slug",
            "venue",
            "starts_at",
            "ends_at",
            "capacity",
            "price",
            "currency",
            "vat_rate",
            "registration_opens_at",
            "registration_closes_at",
            "payment_deadline_seconds",
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:  # a field is missing or malformed: its own error says so
            return cleaned
        values = event_admin_values(self)
        try:
            event_validate(event=None if self.instance.pk is None else self.instance, **values)
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                self.add_error(field if field in self.fields else NON_FIELD_ERRORS, messages)
        return cleaned


def event_admin_values(form: forms.ModelForm) -> dict[str, Any]:
    """What the form would write: every editable field for a new event, only the changed ones otherwise.

    Writing only what staff changed means a stale page never writes back a value someone else changed
    meanwhile, and `seats_taken` (not editable) is never written at all.
    """
    changed = set(form.changed_data) if form.instance.pk is not None else set(form.cleaned_data)
    return {name: form.cleaned_data[name] for name in EDITABLE_FIELDS & changed if name in form.cleaned_data}


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    form = EventAdminForm
    list_display = ("name", "slug", "venue", "starts_at", "capacity", "seats_taken", "price", "currency")
    search_fields = ("name", "slug", "venue")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("seats_taken", "created_at", "updated_at")

    def save_model(self, request: HttpRequest, obj: Event, form: forms.ModelForm, change: bool) -> None:
        """Through the services: they lock the event and write only the editable fields."""
        values = event_admin_values(form)
        saved = event_update(event=obj, **values) if change else event_create(**values)
        obj.pk = saved.pk
        obj.refresh_from_db()


@admin.register(Registration)
class RegistrationAdmin(admin.ModelAdmin):
    list_display = ("id", "event", "first_name", "last_name", "email", "status", "created_at")
    list_select_related = ("event",)
    list_filter = ("status", "event")
    search_fields = ("id", "email", "last_name")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Registration]:
        return super().get_queryset(request).select_related("event")  # its name in the page's title

    fields = (
        "id",
        "event",
        "first_name",
        "last_name",
        "email",
        "company",
        "status",
        "cancellation_reason",
        "payment_due_at",
        "created_at",
        "updated_at",
        "related",
        "event_timeline",
    )
    readonly_fields = fields
    actions = ["cancel_registrations", "cancel_and_refund_registrations"]

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("registrations.cancel_registration")

    @admin.action(permissions=["cancel"], description="Cancel the selected pending registrations (release seats)")
    def cancel_registrations(self, request: HttpRequest, queryset: QuerySet[Registration]) -> None:
        """For a charge stuck at the gateway or an attendee who asked, before the payment deadline does it.

        Pending ones only: cancelling a paid registration refunds it, which an action without a
        confirmation page should not do by a slip. A charge that succeeds afterwards is refunded.
        """
        pending = list(queryset.filter(status=Registration.Status.PENDING).values_list("id", flat=True))
        for registration_id in pending:
            registration_cancel(registration_id=registration_id, reason="cancelled_by_staff", only_pending=True)
            log.info(
                "registration cancelled from admin",
                extra={"mice": {"registration_id": str(registration_id), "user": request.user.get_username()}},
            )
        message = f"Cancelled {len(pending)} pending registration(s)."
        skipped = queryset.count() - len(pending)
        if skipped:
            message += f" {skipped} not pending, left as they were."
        self.message_user(request, message, messages.SUCCESS)

    @admin.action(permissions=["cancel"], description="Cancel the selected confirmed registrations and refund them…")
    def cancel_and_refund_registrations(
        self, request: HttpRequest, queryset: QuerySet[Registration]
    ) -> TemplateResponse | None:
        """An attendee who cannot come: cancel, release the seat; invoicing refunds and issues a credit note.

        Asks first, on a page listing what will be cancelled: a refund cannot be taken back.
        """
        confirmed = queryset.filter(status=Registration.Status.CONFIRMED).select_related("event")
        if request.POST.get("confirmed") != "yes":
            return TemplateResponse(
                request,
                "admin/registrations/registration/cancel_and_refund.html",
                {
                    **self.admin_site.each_context(request),
                    "title": "Cancel and refund registrations?",
                    "registrations": confirmed,
                    "skipped": queryset.count() - confirmed.count(),
                    "opts": self.model._meta,
                    "action": "cancel_and_refund_registrations",
                    "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                },
            )
        cancelled = 0
        for registration_id in confirmed.values_list("id", flat=True):
            registration_cancel(registration_id=registration_id, reason="cancelled_by_staff")
            cancelled += 1
            log.info(
                "registration cancelled and refunded from admin",
                extra={"mice": {"registration_id": str(registration_id), "user": request.user.get_username()}},
            )
        self.message_user(
            request,
            f"Cancelled {cancelled} confirmed registration(s); their payments are being refunded.",
            messages.SUCCESS,
        )
        return None

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False  # registrations are made through the form or the API, which take a seat and emit the event

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    @admin.display(description="related")
    def related(self, obj: Registration) -> str:
        """What other parts of the system hold for it (its charge, invoice, e-mails), offered through a hook."""
        links = registration_admin_links_get(registration_id=obj.id)
        return format_html_join(
            mark_safe(" &middot; "), "<a href='{}'>{}</a>", ((link["url"], link["title"]) for link in links)
        )

    @admin.display(description="event timeline")
    def event_timeline(self, obj: Registration) -> str:
        """The saga as a chain: each event, what caused it, and what every handler made of it, with the
        failures' errors and links to dead letters (replayable there)."""
        steps = saga(correlation_id=str(obj.id))
        rows = []
        for step in steps:
            cause = (
                f"caused by {step.cause_type}" if step.cause_type else ("first event" if not step.causation_id else "")
            )
            if step.published_at:
                published = f"published {step.published_at:%H:%M:%S.%f}"[:-3]
            elif step.due_at > timezone.now():
                published = f"held until {timezone.localtime(step.due_at):%Y-%m-%d %H:%M:%S}"
            else:
                published = "not yet published"
            handlers = format_html_join(
                "",
                "<li class='outcome-{}'><strong>{}</strong> {}{}{}</li>",
                (
                    (
                        outcome.outcome.replace(" ", "-"),
                        outcome.outcome,
                        outcome.handler,
                        format_html_join(
                            "", "<br><small>attempt {} {}: {}</small>", ((a, o, e) for a, o, e in outcome.failures)
                        ),
                        format_html(
                            " &rarr; <a href='{}'>dead letter #{} ({})</a>",
                            reverse("admin:mice_deadletter_change", args=[outcome.dead_letter_id]),
                            outcome.dead_letter_id,
                            outcome.dead_letter_status,
                        )
                        if outcome.dead_letter_id
                        else "",
                    )
                    for outcome in step.handlers
                ),
            )
            rows.append(
                format_html(
                    "<tr><td>{}</td><td><strong>{}</strong>{}<br><small>{} &middot; {} &middot; id {}</small>{}</td>"
                    "<td><ul class='handler-outcomes'>{}</ul></td></tr>",
                    f"{step.at:%Y-%m-%d %H:%M:%S.%f}"[:-3],
                    step.event_type,
                    format_html(" (replay to {})", step.replay_to) if step.replay_to else "",
                    cause,
                    published,
                    step.event_id,
                    format_html("<br><small>{}</small>", step.last_error) if step.last_error else "",
                    handlers,
                )
            )
        return format_html(
            "<table class='saga'><tr><th>when</th><th>event</th><th>handlers</th></tr>{}</table>",
            format_html_join("", "{}", ((row,) for row in rows)),
        )
