"""The dashboard's figures, derived from analytics' rows and the events' capacity (registrations' selectors)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.db.models import Count, Sum
from django.db.models.functions import TruncMinute
from django.utils import timezone

from analytics.models import RefundRecord, RegistrationRecord, RevenueEntry
from registrations.selectors import event_get, event_list_upcoming

SERIES_MINUTES = 30  # the chart's window: the last half hour, a bar per minute
CENTS = Decimal("0.01")


@dataclasses.dataclass(frozen=True)
class Money:
    currency: str
    net: Decimal
    gross: Decimal


@dataclasses.dataclass(frozen=True)
class Series:
    """Registrations received, confirmed and cancelled in each minute of the window (oldest first)."""

    minutes: list[dt.datetime]
    received: list[int]
    confirmed: list[int]
    cancelled: list[int]


@dataclasses.dataclass(frozen=True)
class EventFigures:
    slug: str
    name: str
    starts_at: dt.datetime | None
    capacity: int | None  # None: the event is unknown to registrations (deleted)
    received: int
    pending: int
    confirmed: int
    cancelled: int
    revenue: list[Money]
    refunds: list[Money]  # gross amounts refunded at the gateway, net unknown: net == gross here
    series: Series

    @property
    def seats_taken(self) -> int:
        """Pending registrations hold their seat, as in registrations."""
        return self.pending + self.confirmed

    @property
    def seats_left(self) -> int | None:
        return None if self.capacity is None else max(0, self.capacity - self.seats_taken)

    @property
    def fill_rate(self) -> float | None:
        """Seats taken over capacity, 0..1."""
        if not self.capacity:
            return None
        return min(1.0, self.seats_taken / self.capacity)

    def as_json(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "name": self.name,
            "starts_at": self.starts_at.isoformat() if self.starts_at else None,
            "capacity": self.capacity,
            "received": self.received,
            "pending": self.pending,
            "confirmed": self.confirmed,
            "cancelled": self.cancelled,
            "seats_taken": self.seats_taken,
            "seats_left": self.seats_left,
            "fill_rate": None if self.fill_rate is None else round(self.fill_rate, 4),
            "revenue": [{"currency": m.currency, "net": str(m.net), "gross": str(m.gross)} for m in self.revenue],
            "refunded": [{"currency": m.currency, "gross": str(m.gross)} for m in self.refunds],
            "series": {
                "minutes": [minute.isoformat() for minute in self.series.minutes],
                "received": self.series.received,
                "confirmed": self.series.confirmed,
                "cancelled": self.series.cancelled,
            },
        }


def _per_minute(field: str, since: dt.datetime) -> dict[tuple[str, dt.datetime], int]:
    rows = (
        RegistrationRecord.objects.filter(**{f"{field}__gte": since})
        .annotate(minute=TruncMinute(field))
        .values("event_slug", "minute")
        .annotate(n=Count("pk"))
    )
    return {(row["event_slug"], row["minute"]): row["n"] for row in rows}


def event_figures_list(*, now: dt.datetime | None = None, minutes: int = SERIES_MINUTES) -> list[EventFigures]:
    """Figures of every upcoming event, then of any other event with registrations in the window.

    A handful of grouped queries whatever the number of registrations, so that polling every few seconds
    stays cheap.
    """
    now = now or timezone.now()
    last = now.replace(second=0, microsecond=0)
    window = [last - dt.timedelta(minutes=minutes - 1 - i) for i in range(minutes)]

    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for row in RegistrationRecord.objects.values("event_slug", "status").annotate(n=Count("pk")):
        counts[row["event_slug"]][row["status"]] = row["n"]
    revenue: dict[str, list[Money]] = defaultdict(list)
    revenue_rows = (
        RevenueEntry.objects.values("event_slug", "currency")
        .annotate(net=Sum("net"), gross=Sum("gross"))
        .order_by("event_slug", "currency")
    )
    for row in revenue_rows:
        revenue[row["event_slug"]].append(
            Money(row["currency"], row["net"].quantize(CENTS), row["gross"].quantize(CENTS))
        )
    refunds: dict[str, list[Money]] = defaultdict(list)
    refund_rows = (
        RefundRecord.objects.values("event_slug", "currency").annotate(amount=Sum("amount")).order_by("event_slug")
    )
    for row in refund_rows:
        amount = row["amount"].quantize(CENTS)
        refunds[row["event_slug"]].append(Money(row["currency"], amount, amount))
    series = {field: _per_minute(field, window[0]) for field in ("received_at", "confirmed_at", "cancelled_at")}

    upcoming = list(event_list_upcoming())
    slugs = [event.slug for event in upcoming]
    # An event that has ended stays off the dashboard unless something happened to it within the window
    # (a late cancellation): its figures would otherwise crowd out the events being sold.
    active = {slug for by_minute in series.values() for slug, _ in by_minute}
    slugs += sorted(active - set(slugs))
    known = {event.slug: event for event in upcoming}

    figures = []
    for slug in slugs:
        event = known.get(slug) or event_get(slug=slug)
        by_status = counts.get(slug, {})
        money = revenue.get(slug) or (
            [Money(event.currency, Decimal("0.00"), Decimal("0.00"))] if event is not None else []
        )
        figures.append(
            EventFigures(
                slug=slug,
                name=event.name if event is not None else slug,
                starts_at=event.starts_at if event is not None else None,
                capacity=event.capacity if event is not None else None,
                received=sum(by_status.values()),
                pending=by_status.get(RegistrationRecord.Status.PENDING, 0),
                confirmed=by_status.get(RegistrationRecord.Status.CONFIRMED, 0),
                cancelled=by_status.get(RegistrationRecord.Status.CANCELLED, 0),
                revenue=money,
                refunds=refunds.get(slug, []),
                series=Series(
                    minutes=window,
                    received=[series["received_at"].get((slug, m), 0) for m in window],
                    confirmed=[series["confirmed_at"].get((slug, m), 0) for m in window],
                    cancelled=[series["cancelled_at"].get((slug, m), 0) for m in window],
                ),
            )
        )
    return figures
