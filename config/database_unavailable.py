"""The answer while the database cannot be reached (a failover, a restart, a dropped connection): 503, retry."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

log = logging.getLogger(__name__)

# Long enough for a restart or a failover to finish, short enough that a client's retry lands soon after.
RETRY_AFTER_SECONDS = 5

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Temporarily unavailable · MICE registrations</title></head>
<body>
<main>
<h1>Temporarily unavailable</h1>
<p>We cannot reach our database for a moment. Please try again in a few seconds.</p>
</main>
</body>
</html>
"""


class DatabaseUnavailableMiddleware:
    """Turns a view's OperationalError or InterfaceError into a 503 with Retry-After.

    These are the errors of a database that went away or cannot be reached (and of the few transient
    conditions, such as a deadlock, that the same retry also resolves). The request's transaction was
    rolled back, so retrying it, with the same Idempotency-Key for a registration, is safe. The
    connection itself is dropped and reopened by Django's health check on the thread's next request.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        log.warning(
            "database unavailable",
            extra={"mice": {"path": request.path, "error": str(exception).strip().splitlines()[0][:200]}},
        )
        response: HttpResponse
        if request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", ""):
            response = JsonResponse(
                {
                    "code": "database_unavailable",
                    "detail": "The service cannot reach its database for a moment. Retry after the Retry-After "
                    "delay; a registration retried with the same Idempotency-Key is never taken twice.",
                },
                status=503,
            )
        else:
            response = HttpResponse(PAGE, status=503, content_type="text/html; charset=utf-8")
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
