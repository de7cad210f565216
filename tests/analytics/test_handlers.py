"""The figures stay exact whatever order a registration's events arrive in and however often each arrives."""

import datetime as dt
import itertools
import random
from decimal import Decimal

import pytest
from django.utils import timezone

from analytics.models import RefundRecord, RegistrationRecord, RevenueEntry
from analytics.selectors import SERIES_MINUTES, event_figures_list
from mice.events import Envelope
from mice.subscriptions import SUBSCRIPTIONS
from tests.analytics import stream
from tests.factories import make_event

pytestmark = pytest.mark.django_db


def handle(envelope: Envelope) -> None:
    """What analytics' workers do with one delivery (the inbox aside: these run even for a duplicate)."""
    for subscription in SUBSCRIPTIONS.values():
        if subscription.handler.startswith("analytics.") and subscription.event_type == envelope.type:
            subscription.func(envelope)


def figures_of(slug, now=None):
    (figures,) = [f for f in event_figures_list(now=now) if f.slug == slug]
    return figures


def summary(figures):
    return {
        "received": figures.received,
        "confirmed": figures.confirmed,
        "pending": figures.pending,
        "cancelled": figures.cancelled,
        "seats_left": figures.seats_left,
        "fill_rate": figures.fill_rate,
        "revenue": [(m.currency, m.net, m.gross) for m in figures.revenue],
        "refunded": [(m.currency, m.gross) for m in figures.refunds],
        "per_minute": {
            name: {
                m.strftime("%H:%M"): n
                for m, n in zip(figures.series.minutes, getattr(figures.series, name), strict=True)
                if n
            }
            for name in ("received", "confirmed", "cancelled")
        },
    }


def a_morning_of_registrations(event, t0):
    """Five registrations of one paid event, each as its saga ends, spread over three minutes."""
    minute = dt.timedelta(minutes=1)
    paid, declined, waiting, refunded, late = (stream.new_id() for _ in range(5))
    return [
        stream.created(event, paid, t0),
        stream.confirmed(event, paid, t0 + dt.timedelta(seconds=5)),
        stream.invoice_issued(event, paid, t0 + dt.timedelta(seconds=6), invoice_id=1, gross=Decimal("120.00")),
        stream.created(event, declined, t0 + dt.timedelta(seconds=10)),
        stream.cancelled(event, declined, t0 + dt.timedelta(seconds=12)),
        stream.created(event, waiting, t0 + minute),
        stream.created(event, refunded, t0 + minute + dt.timedelta(seconds=1)),
        stream.confirmed(event, refunded, t0 + minute + dt.timedelta(seconds=3)),
        stream.invoice_issued(
            event, refunded, t0 + minute + dt.timedelta(seconds=4), invoice_id=2, gross=Decimal("120.00")
        ),
        stream.cancelled(event, refunded, t0 + 2 * minute, was_confirmed=True),
        stream.payment_refunded(
            event, refunded, t0 + 2 * minute + dt.timedelta(seconds=1), refund_id=7, amount=Decimal("120.00")
        ),
        stream.credit_note_issued(
            event,
            refunded,
            t0 + 2 * minute + dt.timedelta(seconds=2),
            credit_note_id=1,
            invoice_id=2,
            gross=Decimal("120.00"),
        ),
        stream.created(event, late, t0 + 2 * minute + dt.timedelta(seconds=30)),
        stream.confirmed(event, late, t0 + 2 * minute + dt.timedelta(seconds=40)),
        stream.invoice_issued(
            event, late, t0 + 2 * minute + dt.timedelta(seconds=41), invoice_id=3, gross=Decimal("120.00")
        ),
    ]


EXPECTED = {
    "received": 5,
    "confirmed": 2,
    "pending": 1,
    "cancelled": 2,
    "seats_left": 7,
    "fill_rate": 0.3,
    "revenue": [("EUR", Decimal("200.00"), Decimal("240.00"))],
    "refunded": [("EUR", Decimal("120.00"))],
    "per_minute": {
        "received": {"10:00": 2, "10:01": 2, "10:02": 1},
        "confirmed": {"10:00": 1, "10:01": 1, "10:02": 1},
        "cancelled": {"10:00": 1, "10:02": 1},
    },
}
T0 = dt.datetime(2027, 3, 1, 10, 0, tzinfo=dt.UTC)
NOW = T0 + dt.timedelta(minutes=10)


def test_in_the_order_they_happened_the_figures_add_up():
    event = make_event(capacity=10)

    for each in a_morning_of_registrations(event, T0):
        handle(each)

    assert summary(figures_of(event.slug, now=NOW)) == EXPECTED


@pytest.mark.parametrize("seed", range(12))
def test_in_any_order_and_with_every_event_delivered_twice_the_figures_are_the_same(seed):
    event = make_event(capacity=10)
    deliveries = a_morning_of_registrations(event, T0) * 2
    random.Random(seed).shuffle(deliveries)

    for each in deliveries:
        handle(each)

    assert summary(figures_of(event.slug, now=NOW)) == EXPECTED
    assert RegistrationRecord.objects.count() == 5
    assert RevenueEntry.objects.count() == 4 and RefundRecord.objects.count() == 1


@pytest.mark.parametrize("order", list(itertools.permutations(["created", "confirmed", "cancelled"])))
def test_one_registration_confirmed_then_cancelled_ends_cancelled_in_every_order(order):
    event = make_event(capacity=3)
    rid = stream.new_id()
    made = {
        "created": stream.created(event, rid, T0),
        "confirmed": stream.confirmed(event, rid, T0 + dt.timedelta(minutes=1)),
        "cancelled": stream.cancelled(event, rid, T0 + dt.timedelta(minutes=2), was_confirmed=True),
    }
    seen = []

    for name in order:
        handle(made[name])
        seen.append(name)
        figures = figures_of(event.slug, now=NOW)
        # then after each step the registration is counted once, in one state
        assert figures.received == 1
        assert (figures.pending, figures.confirmed, figures.cancelled) == (
            (0, 0, 1) if "cancelled" in seen else (0, 1, 0) if "confirmed" in seen else (1, 0, 0)
        )

    record = RegistrationRecord.objects.get()
    assert (record.received_at, record.confirmed_at, record.cancelled_at) == (
        T0,
        T0 + dt.timedelta(minutes=1),
        T0 + dt.timedelta(minutes=2),
    )
    assert figures_of(event.slug, now=NOW).seats_left == 3


def test_a_free_registration_is_counted_once_though_two_events_confirm_it():
    event = make_event(capacity=5, price=Decimal("0"))
    rid = stream.new_id()

    handle(stream.confirmed(event, rid, T0 + dt.timedelta(seconds=1)))
    handle(stream.created(event, rid, T0, free=True))

    figures = figures_of(event.slug, now=NOW)
    assert (figures.received, figures.confirmed, figures.pending, figures.seats_left) == (1, 1, 0, 4)
    assert [(m.currency, m.net, m.gross) for m in figures.revenue] == [("EUR", Decimal("0.00"), Decimal("0.00"))]
    assert sum(figures.series.confirmed) == 1


def test_the_chart_covers_the_last_half_hour_minute_by_minute():
    event = make_event()
    now = timezone.now()
    handle(stream.created(event, stream.new_id(), now - dt.timedelta(minutes=90)))  # before the window
    handle(stream.created(event, stream.new_id(), now))

    figures = figures_of(event.slug)

    assert len(figures.series.minutes) == SERIES_MINUTES == 30
    assert figures.series.minutes[-1] == now.replace(second=0, microsecond=0)
    assert figures.series.received[-1] == 1 and sum(figures.series.received) == 1
    assert figures.received == 2  # the totals count everything


def test_an_event_that_has_ended_shows_only_while_its_registrations_move():
    ended = make_event(
        starts_at=timezone.now() - dt.timedelta(days=3),
        ends_at=timezone.now() - dt.timedelta(days=2),
        registration_opens_at=timezone.now() - dt.timedelta(days=9),
        registration_closes_at=timezone.now() - dt.timedelta(days=4),
    )
    rid = stream.new_id()
    handle(stream.created(ended, rid, timezone.now() - dt.timedelta(days=5)))
    assert ended.slug not in [f.slug for f in event_figures_list()]

    handle(stream.cancelled(ended, rid, timezone.now()))  # staff cancel it today

    (figures,) = [f for f in event_figures_list() if f.slug == ended.slug]
    assert (figures.received, figures.cancelled) == (1, 1)
