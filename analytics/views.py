"""The staff dashboard and its JSON: readable by staff only, never cached."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from analytics.selectors import SERIES_MINUTES, EventFigures, event_figures_list

POLL_MILLISECONDS = 2000


def _figures_json(now: dt.datetime, figures: list[EventFigures]) -> dict[str, object]:
    return {
        "generated_at": now.isoformat(),
        "window_minutes": SERIES_MINUTES,
        "events": [event.as_json() for event in figures],
    }


@require_GET
@never_cache
def dashboard(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), reverse("admin:login"))
    if not request.user.is_staff:
        return render(request, "analytics/forbidden.html", status=403)
    now = timezone.now()
    figures = event_figures_list(now=now)
    return render(
        request,
        "analytics/dashboard.html",
        {
            "figures": figures,
            "initial": _figures_json(now, figures),
            "poll_url": reverse("analytics:figures"),
            "poll_ms": POLL_MILLISECONDS,
        },
    )


@require_GET
@never_cache
def figures(request: HttpRequest) -> JsonResponse:
    """The dashboard's figures as JSON (what the page polls). 401 signed out, 403 signed in without staff."""
    if not request.user.is_authenticated:
        response = JsonResponse({"detail": "Sign in as staff to read the figures."}, status=401)
        response["WWW-Authenticate"] = 'Session realm="staff"'  # a session cookie from the admin sign-in
        return response
    if not request.user.is_staff:
        return JsonResponse({"detail": "Only staff may read the figures."}, status=403)
    now = timezone.now()
    return JsonResponse(_figures_json(now, event_figures_list(now=now)))
