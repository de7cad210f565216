"""The admin site: Django's, with failed sign-ins limited per client address (as on the API's HTTP Basic)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse

from ratelimits.clients import client_address
from ratelimits.rules import Scope
from ratelimits.services import Verdict, rate_limit_hit, rate_limit_release


class RateLimitedAuthenticationForm(AdminAuthenticationForm):
    """Counts each sign-in attempt before the password is checked, and takes it back if it succeeds.

    Counting first means that concurrent guesses cannot get past the limit together; once over it, even
    the right password is refused until the window ends (or guessing would simply go on).
    """

    rate_limited: Verdict | None = None

    def clean(self) -> dict[str, Any]:
        if self.request is None or self.cleaned_data.get("username") is None or not self.cleaned_data.get("password"):
            return super().clean()  # no password to check: nothing to count
        verdict = rate_limit_hit(scope=Scope.LOGIN_FAILURES, client=client_address(self.request))
        if not verdict.allowed:
            self.rate_limited = verdict
            minutes = verdict.retry_after_minutes
            raise ValidationError(
                "Too many failed sign-in attempts from your network address. "
                f"Please try again in {minutes} minute{'s' if minutes != 1 else ''}.",
                code="rate_limited",
            )
        cleaned = super().clean()  # a wrong password raises here: the hit stays counted
        rate_limit_release(verdict=verdict)
        return cleaned


class AdminSite(admin.AdminSite):
    login_form = RateLimitedAuthenticationForm
    # Django's index, with the outbox's warning above it when the relay falls behind (mice/templates).
    index_template = "admin/mice_index.html"

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        response = super().login(request, extra_context)
        form = (getattr(response, "context_data", None) or {}).get("form")
        verdict = getattr(form, "rate_limited", None)
        if verdict is not None:
            response.status_code = 429
            response["Retry-After"] = str(verdict.retry_after)
        return response
