"""The dashboard and its JSON: staff only, the same figures in both."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from tests.analytics import stream
from tests.analytics.test_handlers import handle
from tests.factories import make_event

pytestmark = pytest.mark.django_db

DASHBOARD = "/dashboard/"
FIGURES = "/dashboard/figures.json"


def signed_in(**flags):
    user = User.objects.create_user("someone", "someone@example.com", "pw", **flags)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def staff():
    return signed_in(is_staff=True)


def test_anonymous_visitors_are_sent_to_the_admin_sign_in():
    response = Client().get(DASHBOARD)

    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/dashboard/"


def test_a_signed_in_user_who_is_not_staff_is_refused():
    response = signed_in().get(DASHBOARD)

    assert response.status_code == 403
    assert "Staff only" in response.content.decode()


@pytest.mark.parametrize(("client", "status"), [(Client, 401), (signed_in, 403)])
def test_the_json_is_refused_to_anonymous_and_non_staff_users(client, status):
    response = client().get(FIGURES)

    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert "events" not in response.json() and response.json()["detail"]


def test_staff_read_the_figures_as_json_never_cached(staff):
    event = make_event(name="Cloud Summit", capacity=4)
    rid = stream.new_id()
    now = timezone.now()
    handle(stream.created(event, rid, now - dt.timedelta(seconds=30)))
    handle(stream.confirmed(event, rid, now))
    handle(stream.invoice_issued(event, rid, now, invoice_id=9, gross=Decimal("120.00")))
    handle(stream.created(event, stream.new_id(), now))

    response = staff.get(FIGURES)

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"] or "no-cache" in response["Cache-Control"]
    (figures,) = response.json()["events"]
    assert {k: figures[k] for k in ("name", "capacity", "received", "confirmed", "pending", "cancelled")} == {
        "name": "Cloud Summit",
        "capacity": 4,
        "received": 2,
        "confirmed": 1,
        "pending": 1,
        "cancelled": 0,
    }
    assert (figures["seats_left"], figures["fill_rate"]) == (2, 0.5)
    assert figures["revenue"] == [{"currency": "EUR", "net": "100.00", "gross": "120.00"}]
    series = figures["series"]
    assert len(series["minutes"]) == len(series["received"]) == 30
    assert sum(series["received"]) == 2 and sum(series["confirmed"]) == 1 and sum(series["cancelled"]) == 0


def test_the_dashboard_shows_each_upcoming_event_with_its_figures(staff):
    event = make_event(name="Cloud Summit", capacity=10)
    make_event(name="Community Meetup", price=Decimal("0"))
    handle(stream.created(event, stream.new_id(), timezone.now()))

    page = staff.get(DASHBOARD).content.decode()

    assert "Cloud Summit" in page and "Community Meetup" in page
    assert 'data-field="received">1<' in page
    assert "/dashboard/figures.json" in page and "analytics/dashboard.js" in page
