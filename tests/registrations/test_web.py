"""The web pages through Django's test client: CSRF, 404s, validation, refusals and the submission token."""

import datetime as dt
import html as html_lib
import re
import uuid
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from registrations.models import Event, Registration
from registrations.services import registration_cancel, registration_create
from tests.factories import make_event

pytestmark = pytest.mark.django_db


def form_url(event):
    return f"/events/{event.slug}/register/"


def attendee(**overrides):
    data = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "company": "Analytical Engines Ltd",
        "payment_token": "tok_visa",
        "submission_token": str(uuid.uuid4()),
    }
    data.update(overrides)
    return data


def field_errors(html, field):
    match = re.search(rf'<ul class="field-errors" id="id_{field}_error">(.*?)</ul>', html, re.S)
    return re.sub(r"<[^>]+>", " ", match.group(1)).strip() if match else ""


def input_tag(html, field):
    return re.search(rf'<input[^>]*id="id_{field}"[^>]*>', html).group(0)


# --- the list ------------------------------------------------------------------------------------


def test_the_list_shows_upcoming_events_with_their_seats_and_prices(client):
    # given
    paid = make_event(name="Paid Summit", capacity=10, seats_taken=3, price=Decimal("250.00"))
    free = make_event(name="Free Meetup", price=Decimal("0"))
    full = make_event(name="Full Expo", capacity=2, seats_taken=2)
    past = make_event(
        name="Last Year",
        starts_at=timezone.now() - dt.timedelta(days=400),
        ends_at=timezone.now() - dt.timedelta(days=399),
        registration_opens_at=timezone.now() - dt.timedelta(days=500),
        registration_closes_at=timezone.now() - dt.timedelta(days=401),
    )

    # when
    response = client.get("/")

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert "Paid Summit" in html and "Free Meetup" in html and "Full Expo" in html
    assert past.name not in html
    assert "<strong>7</strong> seats left" in html
    assert "250.00 EUR" in html
    assert ">Free<" in html
    assert "<strong>Sold out</strong>" in html
    assert f'href="/events/{paid.slug}/register/"' in html and f'href="/events/{free.slug}/register/"' in html
    assert f'href="/events/{full.slug}/register/"' in html  # "Details": the page says it is sold out
    assert '<html lang="en">' in html


def test_the_list_says_when_there_is_nothing_upcoming(client):
    response = client.get("/")

    assert response.status_code == 200
    assert "There are no upcoming events" in response.content.decode()


# --- the form: rendering and states ---------------------------------------------------------------


def test_the_form_has_labelled_fields_a_submission_token_and_the_test_mode_payment_choice(client):
    event = make_event(name="Paid Summit")

    response = client.get(form_url(event))

    html = response.content.decode()
    assert response.status_code == 200
    for field in ("first_name", "last_name", "email", "company"):
        assert f'<label for="id_{field}">' in html
    assert re.search(r'name="submission_token" value="[0-9a-f-]{36}"', html)
    assert 'name="csrfmiddlewaretoken"' in html
    assert "TEST MODE" in html
    for token, label in [
        ("tok_visa", "Visa test card — succeeds"),
        ("tok_chargeDeclined", "Declined card"),
        ("tok_flaky", "Flaky gateway — fails twice, then succeeds"),
    ]:
        assert f'value="{token}"' in html and label in html
    assert 'maxlength="100"' in input_tag(html, "first_name")
    assert 'maxlength="254"' in input_tag(html, "email")
    assert 'maxlength="200"' in input_tag(html, "company")


def test_each_rendering_of_the_form_gets_its_own_submission_token(client):
    event = make_event()

    first, second = (client.get(form_url(event)).content.decode() for _ in range(2))

    token = re.compile(r'name="submission_token" value="([0-9a-f-]{36})"')
    assert token.search(first).group(1) != token.search(second).group(1)


def test_a_free_event_shows_no_payment_choice(client):
    event = make_event(price=Decimal("0"))

    html = client.get(form_url(event)).content.decode()

    assert "payment_token" not in html and "TEST MODE" not in html
    assert "This event is free" in html


@pytest.mark.parametrize(
    ("overrides", "state", "message"),
    [
        ({"capacity": 5, "seats_taken": 5}, "sold_out", "Sold out"),
        (
            {"registration_opens_at": timezone.now() + dt.timedelta(days=3)},
            "not_open",
            "Registration is not open yet",
        ),
        (
            {"registration_closes_at": timezone.now() - dt.timedelta(hours=1)},
            "closed",
            "Registration is closed",
        ),
    ],
)
def test_an_event_not_taking_registrations_shows_its_state_instead_of_the_form(client, overrides, state, message):
    event = make_event(**overrides)

    response = client.get(form_url(event))

    html = response.content.decode()
    assert response.status_code == 200
    assert f'data-state="{state}"' in html
    assert message in html
    assert "<form" not in html


def test_unknown_event_is_a_404_page(client):
    for response in (client.get("/events/no-such-event/register/"), client.post("/events/no-such-event/register/")):
        assert response.status_code == 404
        html = response.content.decode()
        assert "There is no such event" in html and "<h1>Page not found</h1>" in html


@pytest.mark.parametrize("registration_id", [str(uuid.uuid4()), "not-a-uuid", "1234"])
def test_unknown_or_malformed_registration_is_a_404_page(client, registration_id):
    response = client.get(f"/registrations/{registration_id}/")

    assert response.status_code == 404
    assert "There is no such registration" in response.content.decode()


def test_other_methods_are_not_allowed(client):
    event = make_event()

    assert client.put(form_url(event)).status_code == 405
    assert client.post("/").status_code == 405


# --- CSRF ------------------------------------------------------------------------------------------


def test_a_post_without_the_csrf_token_is_refused_and_registers_nobody():
    event = make_event()
    browser = Client(enforce_csrf_checks=True)

    response = browser.post(form_url(event), attendee())

    assert response.status_code == 403
    assert Registration.objects.count() == 0


def test_a_post_with_the_csrf_token_from_the_form_registers():
    event = make_event()
    browser = Client(enforce_csrf_checks=True)
    html = browser.get(form_url(event)).content.decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    token = re.search(r'name="submission_token" value="([^"]+)"', html).group(1)

    response = browser.post(form_url(event), attendee(csrfmiddlewaretoken=csrf, submission_token=token))

    assert response.status_code == 303
    assert Registration.objects.count() == 1


# --- submitting --------------------------------------------------------------------------------------


def test_a_valid_submission_registers_and_redirects_with_303_to_the_status_page(client):
    event = make_event()

    response = client.post(form_url(event), attendee())

    registration = Registration.objects.get()
    assert response.status_code == 303
    assert response["Location"] == f"/registrations/{registration.id}/"
    assert (registration.first_name, registration.last_name, registration.email, registration.company) == (
        "Ada",
        "Lovelace",
        "ada@example.com",
        "Analytical Engines Ltd",
    )
    assert registration.status == "pending"
    assert Event.objects.get(pk=event.pk).seats_taken == 1


def test_the_same_submission_twice_registers_once_and_redirects_both_times_to_it(client):
    event = make_event()
    data = attendee()

    first = client.post(form_url(event), data)
    second = client.post(form_url(event), data)

    assert first.status_code == second.status_code == 303
    assert first["Location"] == second["Location"]
    assert Registration.objects.count() == 1
    assert Event.objects.get(pk=event.pk).seats_taken == 1


def test_the_same_submission_token_with_other_details_is_refused_with_a_link_to_a_fresh_form(client):
    event = make_event()
    data = attendee()
    client.post(form_url(event), data)

    response = client.post(form_url(event), {**data, "email": "someone.else@example.com"})

    html = response.content.decode()
    assert response.status_code == 409
    assert "This form was already submitted" in html
    assert f'<a href="{form_url(event)}">start a fresh form</a>' in html
    assert Registration.objects.count() == 1


def test_an_empty_submission_shows_errors_tied_to_their_fields_and_registers_nobody(client):
    event = make_event()

    response = client.post(form_url(event), {"submission_token": str(uuid.uuid4())})

    html = response.content.decode()
    assert response.status_code == 422
    for field in ("first_name", "last_name", "email"):
        tag = input_tag(html, field)
        assert 'aria-invalid="true"' in tag
        assert f'aria-describedby="id_{field}_error"' in tag
        assert field_errors(html, field) == "This field is required."
    assert 'aria-invalid="true"' not in input_tag(html, "company")
    assert "Choose a payment method." in field_errors(html, "payment_token")
    assert 'aria-describedby="id_payment_token_helptext id_payment_token_error"' in html
    assert 'href="#id_first_name"' in html  # the error summary links to the fields
    assert 'href="#id_payment_token_0"' in html
    assert Registration.objects.count() == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("first_name", "Ada\r\nBcc: victim@example.com"),
        ("first_name", "Ada\nLovelace"),
        ("last_name", "Love\x00lace"),
        ("last_name", "Lovelace\r\n"),
        ("company", "Engines\u2028Ltd"),
        ("company", "Engines\x1b[31mLtd"),
        ("email", "ada\x00@example.com"),
    ],
)
def test_line_breaks_and_control_characters_in_names_are_field_errors(client, field, value):
    event = make_event()

    response = client.post(form_url(event), attendee(**{field: value}))

    html = response.content.decode()
    assert response.status_code == 422
    assert field_errors(html, field)
    if field != "email":
        assert "line breaks and control characters are not allowed" in field_errors(html, field)
    assert 'aria-invalid="true"' in input_tag(html, field)
    assert Registration.objects.count() == 0


@pytest.mark.parametrize(
    ("first_name", "last_name"),
    [
        ("Zoë", "Ångström-Núñez"),
        ("美咲", "山田"),
        ("سارة", "العلي"),
        ("Ada 👩🏽‍💻", "Lovelace 🚀"),
        ("\uff2a\uff4f\uff48\uff4e", "O'Brien"),  # fullwidth "John"
    ],
)
def test_names_in_any_script_are_accepted_as_written(client, first_name, last_name):
    event = make_event()

    response = client.post(form_url(event), attendee(first_name=first_name, last_name=last_name))

    assert response.status_code == 303
    registration = Registration.objects.get()
    assert (registration.first_name, registration.last_name) == (first_name, last_name)
    page = client.get(response["Location"]).content.decode()
    assert html_lib.escape(f"{first_name} {last_name}") in page


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [
        ("first_name", "A" * 100, True),
        ("first_name", "A" * 101, False),
        ("last_name", "L" * 101, False),
        ("company", "C" * 200, True),
        ("company", "C" * 201, False),
        ("email", "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com", True),
        ("email", "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 58 + ".com", False),
        ("email", "not an e-mail", False),
    ],
)
def test_maximum_lengths_and_email_format(client, field, value, ok):
    event = make_event()

    response = client.post(form_url(event), attendee(**{field: value}))

    if ok:
        assert response.status_code == 303
        assert getattr(Registration.objects.get(), field) == value
    else:
        assert response.status_code == 422
        assert field_errors(response.content.decode(), field)
        assert Registration.objects.count() == 0


def test_an_unknown_payment_token_is_a_field_error(client):
    event = make_event()

    response = client.post(form_url(event), attendee(payment_token="tok_stolen"))

    assert response.status_code == 422
    assert "Select a valid choice" in field_errors(response.content.decode(), "payment_token")


def test_a_missing_or_malformed_submission_token_asks_to_resubmit_with_a_fresh_one(client):
    event = make_event()

    for token in ("", "nonsense"):
        response = client.post(form_url(event), attendee(submission_token=token))

        html = response.content.decode()
        assert response.status_code == 422
        assert "This form has expired" in html
        assert re.search(r'name="submission_token" value="[0-9a-f-]{36}"', html)
        assert 'value="Ada"' in html  # what was typed is kept
    assert Registration.objects.count() == 0


def test_a_free_event_registers_without_payment_and_is_confirmed_at_once(client):
    event = make_event(price=Decimal("0"))
    data = attendee()
    del data["payment_token"]

    response = client.post(form_url(event), data)

    assert response.status_code == 303
    page = client.get(response["Location"]).content.decode()
    assert '<span class="status-badge" id="registration-status">confirmed</span>' in page
    assert "status.js" not in page  # final: nothing to poll


def test_sold_out_between_render_and_submit_re_renders_the_form_with_the_refusal(client):
    event = make_event(capacity=1)
    registration_create(event_slug=event.slug, first_name="B", last_name="C", email="b@example.com", payment_token="x")

    response = client.post(form_url(event), attendee())

    html = response.content.decode()
    assert response.status_code == 409
    assert f"{event.name} is sold out." in html
    assert 'id="form-errors"' in html and "<form" in html
    assert Registration.objects.count() == 1


def test_closed_between_render_and_submit_re_renders_the_form_with_the_refusal(client):
    event = make_event()
    Event.objects.filter(pk=event.pk).update(registration_closes_at=timezone.now() - dt.timedelta(seconds=1))

    response = client.post(form_url(event), attendee())

    assert response.status_code == 409
    assert f"Registration for {event.name} is closed." in response.content.decode()


def form_errors(html):
    match = re.search(r'<ul class="errorlist nonfield" id="form-errors">(.*?)</ul>', html, re.S)
    return html_lib.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).strip() if match else ""


def test_an_address_already_registered_is_refused_and_can_then_be_corrected(client):
    event = make_event()
    client.post(form_url(event), attendee(email="ada@example.com"))
    data = attendee(email="ADA@example.com")

    refused = client.post(form_url(event), data)
    corrected = client.post(form_url(event), {**data, "email": "ada.lovelace@example.com"})

    assert refused.status_code == 409
    # The refusal does not repeat the address (nor anything of the registration it already has), and tells a
    # genuine attendee where to look.
    message = form_errors(refused.content.decode())
    assert message == (
        "This e-mail address cannot be registered again for this event. If you registered earlier, "
        "check your inbox (and spam folder) for the confirmation, or contact the organiser. "
        "To register someone else, use their own e-mail address."
    )
    # The refusal stored nothing under the token, so the same form can be fixed and sent again.
    assert corrected.status_code == 303
    assert Registration.objects.count() == 2


# --- rate limits ---------------------------------------------------------------------------------------


def test_the_form_takes_a_limited_number_of_registrations_per_address_then_says_when_to_come_back(client, settings):
    settings.MICE_RATE_LIMIT_REGISTRATIONS = "2/1h"
    event = make_event()
    first = attendee(email="a@example.com")

    accepted = [client.post(form_url(event), data) for data in (first, attendee(email="b@example.com"))]
    limited = client.post(form_url(event), attendee(email="c@example.com", first_name="Grace"))
    resubmitted = client.post(form_url(event), first)  # back-and-resubmit of the first form: its answer again

    assert [a.status_code for a in accepted] == [303, 303]
    assert limited.status_code == 429
    assert 3500 < int(limited["Retry-After"]) <= 3600
    page = limited.content.decode()
    assert form_errors(page) == (
        "Too many registrations were sent from your network address. Please try again in 60 minutes."
    )
    assert 'value="Grace"' in input_tag(page, "first_name")  # nothing typed is lost
    assert (resubmitted.status_code, resubmitted["Location"]) == (303, accepted[0]["Location"])
    assert Registration.objects.count() == 2


def test_the_form_and_the_api_share_one_limit_per_address(client, settings):
    settings.MICE_RATE_LIMIT_REGISTRATIONS = "1/1h"
    event = make_event()
    api = client.post(
        "/api/registrations/",
        {"event": event.slug, "first_name": "A", "last_name": "B", "email": "a@ex.com", "payment_token": "tok_visa"},
        content_type="application/json",
    )

    form = client.post(form_url(event), attendee(email="b@example.com"))

    assert (api.status_code, form.status_code) == (202, 429)


def test_an_invalid_form_is_not_counted(client, settings):
    settings.MICE_RATE_LIMIT_REGISTRATIONS = "1/1h"
    event = make_event()

    invalid = [client.post(form_url(event), attendee(email="nope")).status_code for _ in range(3)]

    assert invalid == [422, 422, 422]
    assert client.post(form_url(event), attendee()).status_code == 303


# --- the status page ------------------------------------------------------------------------------------


def test_the_status_page_of_a_pending_registration_polls_the_api_in_a_live_region(client):
    event = make_event(name="Paid Summit")
    registration = registration_create(
        event_slug=event.slug, first_name="Ada", last_name="Lovelace", email="a@example.com", payment_token="tok_visa"
    )

    response = client.get(f"/registrations/{registration.id}/")

    html = response.content.decode()
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert "Paid Summit" in html and "Ada Lovelace" in html
    assert '<span class="status-badge" id="registration-status">pending</span>' in html
    assert 'aria-live="polite"' in html
    assert f'data-poll-url="/api/registrations/{registration.id}/"' in html
    assert "registrations/status.js" in html


def test_a_card_declined_cancellation_is_explained_in_words(client):
    event = make_event()
    registration = registration_create(
        event_slug=event.slug, first_name="Ada", last_name="L", email="a@example.com", payment_token="tok_visa"
    )
    registration_cancel(registration_id=registration.id, reason="payment_failed:card_declined")

    html = client.get(f"/registrations/{registration.id}/").content.decode()

    assert '<span class="status-badge" id="registration-status">cancelled</span>' in html
    assert "Your card was declined, so the registration was cancelled and the seat released." in html
    assert f'href="{form_url(event)}">Register again</a>' in html
    assert "status.js" not in html


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("payment_failed:invalid_token", "The payment method was not accepted"),
        ("payment_failed:expired_card", "The payment did not go through"),
        ("organizer_cancelled", "This registration was cancelled and its seat released."),
    ],
)
def test_other_cancellation_reasons_are_explained_too(client, reason, message):
    event = make_event()
    registration = registration_create(
        event_slug=event.slug, first_name="Ada", last_name="L", email="a@example.com", payment_token="tok_visa"
    )
    registration_cancel(registration_id=registration.id, reason=reason)

    assert message in client.get(f"/registrations/{registration.id}/").content.decode()


def test_pages_escape_what_attendees_typed(client):
    event = make_event()
    response = client.post(form_url(event), attendee(first_name="<script>alert(1)</script>"))

    html = client.get(response["Location"]).content.decode()

    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_attendee_cancels_from_the_status_page_and_sees_it_cancelled(client):
    event = make_event(capacity=1)
    registration = registration_create(
        event_slug=event.slug, first_name="Ada", last_name="Lovelace", email="ada@example.com", payment_token="tok_visa"
    )
    page = client.get(reverse("pages:registration_detail", args=[registration.pk]))
    assert "Cancel this registration" in page.content.decode()

    answer = client.post(reverse("pages:registration_cancel", args=[registration.pk]))

    assert answer.status_code == 303
    assert answer["Location"] == reverse("pages:registration_detail", args=[registration.pk])
    cancelled = Registration.objects.get(pk=registration.pk)
    assert (cancelled.status, cancelled.cancellation_reason) == ("cancelled", "cancelled_by_attendee")
    assert Event.objects.get(pk=event.pk).seats_left == 1
    shown = client.get(answer["Location"]).content.decode()
    assert "You cancelled this registration" in shown and "Cancel this registration" not in shown


def test_cancelling_from_the_page_needs_a_post_and_a_real_registration(client):
    registration = registration_create(
        event_slug=make_event().slug,
        first_name="Ada",
        last_name="Lovelace",
        email="ada@example.com",
        payment_token="tok_visa",
    )
    assert client.get(reverse("pages:registration_cancel", args=[registration.pk])).status_code == 405
    assert client.post(reverse("pages:registration_cancel", args=["not-a-registration"])).status_code == 404
    assert Registration.objects.get(pk=registration.pk).status == "pending"
