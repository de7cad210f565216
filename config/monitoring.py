"""What load balancers, orchestrators and Prometheus ask the web process: /healthz, /readyz, /metrics."""

from __future__ import annotations

import hmac
import ipaddress
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.urls import Resolver404, resolve
from django.views import defaults
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from mice.brokers import broker_connect, broker_urls
from mice.metrics import known_label, process_registry
from mice.selectors import dead_letters_waiting, outbox_backlog
from mice.subscriptions import SUBSCRIPTIONS
from ratelimits.clients import client_address

# Each readiness check must answer within this, or it counts as failed: a probe must never hang.
CHECK_TIMEOUT = 2.0


def health(request: HttpRequest) -> JsonResponse:
    """The process answers (liveness): nothing else is checked, so a database outage never restarts it."""
    return JsonResponse({"status": "ok"})


def ready(request: HttpRequest) -> JsonResponse:
    """Whether this deployment can do its work: 200 when every check passed, else 503 naming what failed."""
    checks = {
        "database": _bounded(_check_database),
        "broker": _bounded(_check_broker),
        "outbox": _bounded(_check_outbox),
    }
    healthy = all(check["ok"] for check in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks}, status=200 if healthy else 503
    )


def _bounded(check: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run a check in a thread of its own and give up after CHECK_TIMEOUT (a hung connect must not hang the
    probe). The thread has its own database connection, closed when it ends."""
    answers: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=1)

    def run() -> None:
        try:
            answers.put({"ok": True, **check()})
        except Exception as exc:  # noqa: BLE001 - the failure is the check's answer
            answers.put({"ok": False, "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"})
        finally:
            connections.close_all()

    started = time.monotonic()
    threading.Thread(target=run, name=f"readyz-{check.__name__}", daemon=True).start()
    try:
        answer = answers.get(timeout=CHECK_TIMEOUT)
    except queue.Empty:
        answer = {"ok": False, "error": f"no answer within {CHECK_TIMEOUT:g} s"}
    return {**answer, "duration_ms": round((time.monotonic() - started) * 1000, 1)}


def _check_database() -> dict[str, Any]:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
    return {}


def _check_broker() -> dict[str, Any]:
    """One node of the broker's URL list answering is enough: with a cluster, the processes fail over too."""
    connection, _ = broker_connect(broker_urls(settings.CELERY_BROKER_URL), connect_timeout=CHECK_TIMEOUT, heartbeat=0)
    connection.release()
    return {}


def _check_outbox() -> dict[str, Any]:
    backlog = outbox_backlog(statement_timeout_ms=int(CHECK_TIMEOUT * 1000))
    limit = settings.MICE_READY_MAX_OUTBOX_LAG
    if limit > 0 and backlog.lag_seconds > limit:
        raise LagError(f"the oldest due event has waited {backlog.lag_seconds:.0f} s (limit {limit:g} s)")
    return {"pending": backlog.pending, "lag_seconds": round(backlog.lag_seconds, 1)}


class LagError(RuntimeError):
    """The relay is not keeping up: events wait longer than MICE_READY_MAX_OUTBOX_LAG to be published."""


class OutboxCollector:
    """Gauges read from the database at scrape time: the same figures whatever process answers."""

    def collect(self) -> Iterator[Metric]:
        backlog = outbox_backlog(statement_timeout_ms=int(CHECK_TIMEOUT * 1000))
        yield GaugeMetricFamily("mice_outbox_pending_rows", "Unsent outbox rows that are due now.", backlog.pending)
        yield GaugeMetricFamily(
            "mice_outbox_lag_seconds", "How long the oldest due unsent outbox row has waited.", backlog.lag_seconds
        )
        yield GaugeMetricFamily(
            "mice_outbox_scheduled_rows", "Unsent outbox rows held until later (deadlines, backoff).", backlog.scheduled
        )
        yield GaugeMetricFamily(
            "mice_outbox_held_back_rows",
            "Unsent outbox rows the relay failed to deliver at least once.",
            backlog.held_back,
        )
        waiting = GaugeMetricFamily(
            "mice_dead_letters_waiting", "Dead letters not yet replayed or discarded.", labels=["handler"]
        )
        per_handler: dict[str, int] = {}
        for handler, count in dead_letters_waiting().items():
            label = known_label(handler, SUBSCRIPTIONS)
            per_handler[label] = per_handler.get(label, 0) + count
        for handler, count in sorted(per_handler.items()):
            waiting.add_metric([handler], count)
        yield waiting


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics of this web server (every gunicorn worker's) and the outbox's gauges."""
    if not _may_read_metrics(request):
        response = JsonResponse({"detail": "Authentication credentials were not provided or are wrong."}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry()
    registry.register(process_registry())
    registry.register(OutboxCollector())
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(registry), content_type=content_type)


def _may_read_metrics(request: HttpRequest) -> bool:
    """A staff session, the bearer token MICE_METRICS_TOKEN, or, with no token set, a client on the loopback.

    The client address is the one rate limits count (MICE_TRUSTED_PROXIES): behind our proxy the loopback
    address of the connection is the proxy's, not the client's.
    """
    user = getattr(request, "user", None)
    if user is not None and user.is_active and user.is_staff:
        return True
    token = settings.MICE_METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
    try:
        return ipaddress.ip_network(client_address(request), strict=False).is_loopback
    except ValueError:
        return False


def api_not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    """The last route under /api/: a JSON 404 in every mode (Django's DEBUG page would otherwise answer HTML).

    Being a route, it would also stop CommonMiddleware from adding a missing slash (it adds one only to a
    path that resolves nowhere), so a known path without its slash is redirected here, as it was before.
    """
    if settings.APPEND_SLASH and not request.path_info.endswith("/"):
        try:
            match = resolve(f"{request.path_info}/")
        except Resolver404:
            match = None
        if match is not None and match.func is not api_not_found:
            redirect = HttpResponsePermanentRedirect(request.get_full_path(force_append_slash=True))
            if request.method not in ("GET", "HEAD"):
                redirect.status_code = 308  # keeps the method and the body, where a 301 would turn a POST into a GET
            return redirect
    return JsonResponse({"detail": "Not found."}, status=404)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """404: JSON under /api/, as the API's own answers are; the usual page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)
