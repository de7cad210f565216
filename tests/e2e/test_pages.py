"""The registration pages in a real browser, against the live server, with the real saga where it matters."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from registrations.models import Event, Registration
from tests.e2e.conftest import PHONE
from tests.factories import make_event

pytestmark = pytest.mark.django_db(transaction=True)

STATUS_PAGE = re.compile(r"/registrations/[0-9a-f-]{36}/$")
SAGA_TIMEOUT = 60_000  # ms: a worker's start and the charge


def open_form(page: Page, live_server, event):
    page.goto(f"{live_server.url}/events/{event.slug}/register/")


def fill_form(page: Page, *, first="Ada", last="Lovelace", email="ada@example.com", company="", payment=None):
    page.get_by_label("First name").fill(first)
    page.get_by_label("Last name").fill(last)
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Company").fill(company)
    if payment:
        page.get_by_label(payment).check()


def submit(page: Page):
    page.get_by_role("button", name=re.compile("^Register")).click()


def status_badge(page: Page):
    return page.locator("#registration-status")


def mark_document(page: Page):
    """Tag the current document and count main-frame navigations, to prove later updates came without a reload."""
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    page.evaluate("window.__sameDocument = 'yes'")
    return navigations


def test_the_list_shows_each_events_seats_left(page, live_server):
    make_event(name="Cloud Summit", capacity=50, seats_taken=8, price=Decimal("350.00"))
    make_event(name="Community Meetup", capacity=30, price=Decimal("0"))
    make_event(name="Packed Expo", capacity=2, seats_taken=2)

    page.goto(live_server.url + "/")

    expect(page).to_have_title(re.compile("Upcoming events"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Upcoming events")
    summit = page.locator("li.event", has=page.get_by_role("heading", name="Cloud Summit"))
    expect(summit).to_contain_text("42 seats left")
    expect(summit).to_contain_text("350.00 EUR")
    expect(summit.get_by_role("link", name="Register")).to_be_visible()
    meetup = page.locator("li.event", has=page.get_by_role("heading", name="Community Meetup"))
    expect(meetup).to_contain_text("30 seats left")
    expect(meetup).to_contain_text("Free")
    packed = page.locator("li.event", has=page.get_by_role("heading", name="Packed Expo"))
    expect(packed).to_contain_text("Sold out")
    expect(packed.get_by_role("link", name="Register")).to_have_count(0)


def test_a_visa_registration_goes_from_pending_to_confirmed_without_a_reload(page, live_server, system):
    # given: the form of a paid event, and no worker running yet, so "pending" is sure to be seen
    event = make_event(name="Cloud Summit", capacity=10)
    open_form(page, live_server, event)
    expect(page.get_by_text("TEST MODE", exact=True)).to_be_visible()

    # when
    fill_form(page, company="Analytical Engines", payment="Visa test card — succeeds")
    submit(page)

    # then: the status page says pending...
    expect(page).to_have_url(STATUS_PAGE)
    expect(status_badge(page)).to_have_text("pending")
    expect(page.locator("#status-region")).to_have_attribute("aria-live", "polite")
    navigations = mark_document(page)

    # ...and turns confirmed by itself once the saga runs
    system.worker()
    system.relay()
    expect(status_badge(page)).to_have_text("confirmed", timeout=SAGA_TIMEOUT)
    expect(page.locator("#status-message")).to_contain_text("Your registration is confirmed")
    assert page.evaluate("window.__sameDocument") == "yes"
    assert navigations == []
    registration = Registration.objects.get()
    assert registration.status == "confirmed"
    assert page.url.endswith(f"/registrations/{registration.id}/")


def test_a_declined_card_is_cancelled_with_the_reason_and_the_seat_given_back(page, live_server, system):
    event = make_event(name="Cloud Summit", capacity=10)
    open_form(page, live_server, event)
    fill_form(page, payment="Declined card")
    submit(page)
    expect(status_badge(page)).to_have_text("pending")
    assert Event.objects.get(pk=event.pk).seats_taken == 1
    navigations = mark_document(page)

    system.worker()
    system.relay()

    expect(status_badge(page)).to_have_text("cancelled", timeout=SAGA_TIMEOUT)
    expect(page.locator("#status-message")).to_have_text(
        "Your card was declined, so the registration was cancelled and the seat released."
    )
    expect(page.get_by_role("link", name="Register again")).to_be_visible()
    assert page.evaluate("window.__sameDocument") == "yes" and navigations == []
    page.goto(live_server.url + "/")
    summit = page.locator("li.event", has=page.get_by_role("heading", name="Cloud Summit"))
    expect(summit).to_contain_text("10 seats left")


def test_a_free_event_has_no_payment_choice_and_is_confirmed_at_once(page, live_server):
    event = make_event(name="Community Meetup", price=Decimal("0"))
    open_form(page, live_server, event)
    expect(page.get_by_text("TEST MODE")).to_have_count(0)
    expect(page.get_by_role("radio")).to_have_count(0)

    fill_form(page, first="Zoë", last="Ångström 山田")
    submit(page)

    expect(page).to_have_url(STATUS_PAGE)
    expect(status_badge(page)).to_have_text("confirmed")
    expect(page.get_by_role("heading", name="Zoë Ångström 山田")).to_be_visible()


def test_an_empty_submission_shows_errors_tied_to_their_fields_and_registers_nobody(page, live_server):
    event = make_event()
    open_form(page, live_server, event)

    submit(page)

    expect(page).to_have_title(re.compile("^Error: "))
    expect(page.get_by_role("alert")).to_contain_text("There is a problem")
    expect(page.locator("#error-summary")).to_be_focused()
    for label in ("First name", "Last name", "E-mail"):
        field = page.get_by_label(label, exact=True)
        expect(field).to_have_attribute("aria-invalid", "true")
        described_by = field.get_attribute("aria-describedby")
        assert described_by
        expect(page.locator(f"#{described_by}")).to_have_text("This field is required.")
        expect(field).to_have_accessible_description("This field is required.")
    expect(page.get_by_label("Company")).not_to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("group", name=re.compile("Payment method"))).to_contain_text("Choose a payment method.")
    expect(page.get_by_label("Visa test card — succeeds")).to_have_attribute("aria-invalid", "true")
    assert Registration.objects.count() == 0

    # the summary's links lead to the fields
    page.get_by_role("link", name="First name: This field is required.").click()
    expect(page.get_by_label("First name")).to_be_focused()


def test_a_line_break_in_a_name_is_a_field_error(page, live_server):
    event = make_event()
    open_form(page, live_server, event)
    fill_form(page, payment="Visa test card — succeeds")
    # A text input cannot hold a line break, but a crafted request can: post one from a textarea.
    page.evaluate(
        """() => {
            const input = document.getElementById("id_last_name");
            const area = document.createElement("textarea");
            area.name = input.name;
            area.value = "Lovelace\\r\\nBcc: victim@example.com";
            input.replaceWith(area);
        }"""
    )

    submit(page)

    field = page.get_by_label("Last name")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_accessible_description(re.compile("line breaks and control characters are not allowed"))
    expect(page.get_by_label("First name")).to_have_value("Ada")  # the rest is kept
    assert Registration.objects.count() == 0


def test_a_double_click_on_submit_registers_once(page, live_server):
    event = make_event(capacity=10)
    open_form(page, live_server, event)
    fill_form(page, payment="Visa test card — succeeds")

    page.get_by_role("button", name=re.compile("^Register")).dblclick()

    expect(page).to_have_url(STATUS_PAGE)
    expect(status_badge(page)).to_have_text("pending")
    assert Registration.objects.count() == 1
    assert Event.objects.get(pk=event.pk).seats_taken == 1


def test_the_same_form_sent_twice_at_once_registers_once(page, live_server):
    # What a double click does when nothing stops the second click (the script not loaded yet, or off):
    # two POSTs of the same form, racing. The server's submission token is the guard.
    event = make_event(capacity=10)
    open_form(page, live_server, event)
    fill_form(page, payment="Visa test card — succeeds")

    answers = page.evaluate(
        """() => {
            const form = document.querySelector("form[data-single-submit]");
            const send = () => fetch(form.action, {method: "POST", body: new FormData(form)})
                .then((response) => [response.status, response.url]);
            return Promise.all([send(), send()]);
        }"""
    )

    (first_status, first_url), (second_status, second_url) = answers
    assert first_status == second_status == 200  # both followed the 303 to the status page
    assert STATUS_PAGE.search(first_url) and first_url == second_url
    assert Registration.objects.count() == 1
    assert Event.objects.get(pk=event.pk).seats_taken == 1


def test_back_and_resubmit_leads_to_the_same_registration(page, live_server):
    event = make_event(capacity=10)
    open_form(page, live_server, event)
    fill_form(page, payment="Visa test card — succeeds")
    submit(page)
    expect(page).to_have_url(STATUS_PAGE)
    first_status_page = page.url

    page.go_back()
    expect(page.get_by_label("First name")).to_have_value("Ada")
    submit(page)

    expect(page).to_have_url(first_status_page)
    assert Registration.objects.count() == 1
    assert Event.objects.get(pk=event.pk).seats_taken == 1


def test_back_and_resubmit_with_other_details_asks_for_a_fresh_form(page, live_server):
    event = make_event(capacity=10)
    open_form(page, live_server, event)
    fill_form(page, payment="Visa test card — succeeds")
    submit(page)
    expect(page).to_have_url(STATUS_PAGE)

    page.go_back()
    page.get_by_label("E-mail").fill("charles@example.com")
    submit(page)

    expect(page.get_by_role("alert")).to_contain_text("This form was already submitted")
    page.get_by_role("link", name="start a fresh form").click()
    fill_form(page, first="Charles", last="Babbage", email="charles@example.com", payment="Declined card")
    submit(page)
    expect(page).to_have_url(STATUS_PAGE)
    assert sorted(Registration.objects.values_list("email", flat=True)) == ["ada@example.com", "charles@example.com"]


@pytest.mark.parametrize(
    ("overrides", "heading", "text"),
    [
        ({"capacity": 3, "seats_taken": 3}, "Sold out", "All 3 seats for"),
        (
            {"registration_closes_at": timezone.now() - dt.timedelta(days=1)},
            "Registration is closed",
            "closed on",
        ),
        (
            {"registration_opens_at": timezone.now() + dt.timedelta(days=7)},
            "Registration is not open yet",
            "Registration opens on",
        ),
    ],
)
def test_an_event_not_taking_registrations_shows_its_state_instead_of_the_form(
    page, live_server, overrides, heading, text
):
    event = make_event(**overrides)

    open_form(page, live_server, event)

    expect(page.get_by_role("heading", level=2, name=heading)).to_be_visible()
    expect(page.locator("main")).to_contain_text(text)
    expect(page.locator("form")).to_have_count(0)
    expect(page.get_by_label("First name")).to_have_count(0)


def test_an_unknown_event_is_a_404_page(page, live_server):
    response = page.goto(f"{live_server.url}/events/no-such-event/register/")

    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")


def test_on_a_phone_the_pages_fit_the_screen_without_horizontal_scrolling(new_context, live_server):
    page = new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2).new_page()
    event = make_event(name="International Conference on Very Long Names of Conferences 2026", capacity=40)

    def scroll_width():
        return page.evaluate("document.scrollingElement.scrollWidth")

    open_form(page, live_server, event)
    assert scroll_width() <= PHONE["width"]
    first_name = page.get_by_label("First name").bounding_box()
    assert first_name is not None and first_name["width"] > PHONE["width"] - 100  # full width, less the padding

    submit(page)  # the form with every error shown
    expect(page.get_by_role("alert")).to_be_visible()
    assert scroll_width() <= PHONE["width"]

    page.goto(live_server.url + "/")
    assert scroll_width() <= PHONE["width"]


def test_back_and_resubmit_with_javascript_off_still_registers_once(new_context, live_server):
    # The script that carries the sent token back is off: the page comes back with a new token, and the
    # service's one-registration-per-address rule answers instead.
    page = new_context(java_script_enabled=False).new_page()
    event = make_event(capacity=10)
    open_form(page, live_server, event)
    fill_form(page, payment="Visa test card — succeeds")
    submit(page)
    expect(page).to_have_url(STATUS_PAGE)

    page.go_back()
    expect(page.get_by_label("E-mail")).to_have_value("ada@example.com")
    submit(page)

    expect(page.get_by_role("alert")).to_contain_text("This e-mail address cannot be registered again")
    assert Registration.objects.count() == 1
    assert Event.objects.get(pk=event.pk).seats_taken == 1
