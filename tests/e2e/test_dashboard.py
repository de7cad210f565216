"""The staff dashboard in a real browser, served by gunicorn, following registrations made through the API live."""

import json
import re
import urllib.request
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from tests.e2e.test_pages import mark_document
from tests.factories import make_event
from tests.processes import ROOT

pytestmark = pytest.mark.django_db(transaction=True)

ARTIFACTS = ROOT / "var" / "test-artifacts"
SAGA_TIMEOUT = 60_000  # ms


def register_through_the_api(base_url: str, event_slug: str, email: str, token: str = "tok_visa") -> None:
    body = {"event": event_slug, "first_name": "Ada", "last_name": "Lovelace", "email": email, "payment_token": token}
    request = urllib.request.Request(
        f"{base_url}/api/registrations/",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 202


def card(page: Page, name: str):
    return page.locator("article.event-card", has=page.get_by_role("heading", name=name))


def figure(page: Page, name: str, field: str):
    return card(page, name).locator(f'[data-field="{field}"]')


def test_registrations_made_through_the_api_appear_on_the_open_dashboard(page: Page, system):
    # given the system as production runs it, two events, and a member of staff signed in on the dashboard
    base_url = system.web()
    system.worker(concurrency=2)
    system.relay()
    make_event(name="Cloud Summit 2027", slug="cloud-summit", capacity=8, price=Decimal("350.00"))
    make_event(name="Community Meetup", slug="community-meetup", capacity=30, price=Decimal("0"))
    User.objects.create_user("organiser", "organiser@example.com", "a-long-password", is_staff=True)
    page.goto(f"{base_url}/dashboard/")
    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/dashboard/$"))
    page.get_by_label("Username").fill("organiser")
    page.get_by_label("Password").fill("a-long-password")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base_url}/dashboard/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Registrations by event")
    expect(figure(page, "Cloud Summit 2027", "received")).to_have_text("0")
    expect(page.locator("#live-text")).to_contain_text("Live")
    navigations = mark_document(page)

    # when attendees register through the API
    for n in range(3):
        register_through_the_api(base_url, "cloud-summit", f"paid{n}@example.com")
    register_through_the_api(base_url, "cloud-summit", "declined@example.com", token="tok_chargeDeclined")
    for n in range(2):
        register_through_the_api(base_url, "community-meetup", f"free{n}@example.com", token="")

    # then the open page shows them, without a reload, as their sagas end
    expect(figure(page, "Cloud Summit 2027", "received")).to_have_text("4", timeout=SAGA_TIMEOUT)
    expect(figure(page, "Cloud Summit 2027", "confirmed")).to_have_text("3", timeout=SAGA_TIMEOUT)
    expect(figure(page, "Cloud Summit 2027", "cancelled")).to_have_text("1", timeout=SAGA_TIMEOUT)
    expect(figure(page, "Cloud Summit 2027", "pending")).to_have_text("0")
    expect(figure(page, "Cloud Summit 2027", "seats_left")).to_have_text("5")
    expect(figure(page, "Cloud Summit 2027", "fill_rate")).to_have_text("38% full")
    expect(figure(page, "Community Meetup", "confirmed")).to_have_text("2", timeout=SAGA_TIMEOUT)
    expect(figure(page, "Community Meetup", "revenue_gross")).to_have_text("€0.00")
    # and the chart has a point for the minute they came in
    expect(card(page, "Cloud Summit 2027").locator("svg rect.bar.received")).not_to_have_count(0)
    assert page.evaluate("window.__sameDocument") == "yes" and navigations == []

    # the screenshot, once the new numbers' highlight has faded
    page.wait_for_function("!document.getAnimations().some((a) => a.animationName === 'flash')")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
