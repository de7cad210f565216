"""The events API: public reading with seats left, staff-only creating and changing, validation."""

import base64
import datetime as dt
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.utils import timezone
from rest_framework.test import APIClient

from registrations.models import Event
from registrations.services import event_create, event_update
from tests.factories import make_event

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-test-password"


@pytest.fixture
def client():
    return APIClient()


def staff_user(username, *permissions):
    """A staff account holding the given model permissions of the registrations app (codenames)."""
    user = User.objects.create_user(username, password=PASSWORD, is_staff=True)
    granted = Permission.objects.filter(content_type__app_label="registrations", codename__in=permissions)
    user.user_permissions.set(granted)
    return user


@pytest.fixture
def staff():
    """An organizer: staff, allowed to add and change events (as admin requires for the same)."""
    return staff_user("organizer", "add_event", "change_event")


@pytest.fixture
def attendee_user():
    return User.objects.create_user("attendee", password=PASSWORD)


@pytest.fixture
def staff_client(staff):
    """Staff by HTTP Basic, the way a script would call the API."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=basic_auth("organizer", PASSWORD))
    return client


def basic_auth(username, password):
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def new_event_body(**overrides):
    starts = timezone.now() + dt.timedelta(days=60)
    body = {
        "slug": "djangocon-2027",
        "name": "DjangoCon Europe 2027",
        "venue": "Porto",
        "starts_at": starts.isoformat(),
        "ends_at": (starts + dt.timedelta(days=3)).isoformat(),
        "capacity": 300,
        "price": "250.00",
        "currency": "EUR",
    }
    body.update(overrides)
    return body


# --- reading ---------------------------------------------------------------------------------------


def test_the_list_shows_upcoming_events_soonest_first_with_seats_left(client):
    later = make_event(
        capacity=10, starts_at=timezone.now() + dt.timedelta(days=40), ends_at=timezone.now() + dt.timedelta(days=41)
    )
    sooner = make_event(capacity=5)
    Event.objects.filter(pk=later.pk).update(seats_taken=3)
    make_event(  # already over: not listed
        starts_at=timezone.now() - dt.timedelta(days=3),
        ends_at=timezone.now() - dt.timedelta(days=2),
        registration_closes_at=timezone.now() - dt.timedelta(days=3),
    )

    response = client.get("/api/events/")

    assert response.status_code == 200
    assert [(e["slug"], e["seats_left"]) for e in response.json()] == [(sooner.slug, 5), (later.slug, 7)]


def test_an_event_shows_every_public_field(client):
    event = make_event(capacity=10, price=Decimal("99.50"), vat_rate=Decimal("7.00"))
    Event.objects.filter(pk=event.pk).update(seats_taken=10)

    response = client.get(f"/api/events/{event.slug}/")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "slug",
        "name",
        "venue",
        "starts_at",
        "ends_at",
        "capacity",
        "seats_left",
        "price",
        "currency",
        "vat_rate",
        "registration_opens_at",
        "registration_closes_at",
        "payment_deadline_seconds",
    }
    assert (body["seats_left"], body["price"], body["vat_rate"], body["currency"]) == (0, "99.50", "7.00", "EUR")
    assert dt.datetime.fromisoformat(body["starts_at"]) == event.starts_at


@pytest.mark.parametrize("slug", ["no-such-event", "%00", "%F0%9F%8E%89", "x" * 300])
def test_an_unknown_event_is_a_json_404(client, slug):
    response = client.get(f"/api/events/{slug}/")

    assert response.status_code == 404
    assert response.json() == {"detail": "No such event."}


# --- who may write -----------------------------------------------------------------------------------


def test_an_anonymous_client_cannot_create_an_event(client):
    response = client.post("/api/events/", new_event_body(), format="json")

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic")
    assert "detail" in response.json()
    assert not Event.objects.exists()


def test_a_user_who_is_not_staff_cannot_create_an_event(client, attendee_user):
    client.credentials(HTTP_AUTHORIZATION=basic_auth("attendee", PASSWORD))

    response = client.post("/api/events/", new_event_body(), format="json")

    assert response.status_code == 403
    assert "detail" in response.json()
    assert not Event.objects.exists()


def test_staff_without_the_event_permissions_can_neither_create_nor_change_events(client):
    # given: a staff account (it may sign in to admin) that holds no permission on events
    staff_user("helpdesk", "view_event", "view_registration")
    event = make_event(name="Unchanged")
    client.credentials(HTTP_AUTHORIZATION=basic_auth("helpdesk", PASSWORD))

    # when
    created = client.post("/api/events/", new_event_body(), format="json")
    changed = client.patch(f"/api/events/{event.slug}/", {"name": "Hacked"}, format="json")

    # then
    assert (created.status_code, changed.status_code) == (403, 403)
    assert created.json() == changed.json() == {"detail": "You do not have permission to perform this action."}
    assert list(Event.objects.values_list("slug", "name")) == [(event.slug, "Unchanged")]


def test_staff_with_their_session_need_the_permissions_too(client):
    client.force_login(staff_user("helpdesk"))

    created = client.post("/api/events/", new_event_body(), format="json")

    assert created.status_code == 403
    assert not Event.objects.exists()


def test_adding_and_changing_are_separate_permissions(client):
    staff_user("creator", "add_event")
    staff_user("editor", "change_event")
    creator, editor = APIClient(), APIClient()
    creator.credentials(HTTP_AUTHORIZATION=basic_auth("creator", PASSWORD))
    editor.credentials(HTTP_AUTHORIZATION=basic_auth("editor", PASSWORD))

    created_by_creator = creator.post("/api/events/", new_event_body(), format="json")
    changed_by_creator = creator.patch("/api/events/djangocon-2027/", {"name": "By creator"}, format="json")
    created_by_editor = editor.post("/api/events/", new_event_body(slug="other"), format="json")
    changed_by_editor = editor.patch("/api/events/djangocon-2027/", {"name": "By editor"}, format="json")

    assert (created_by_creator.status_code, changed_by_creator.status_code) == (201, 403)
    assert (created_by_editor.status_code, changed_by_editor.status_code) == (403, 200)
    assert list(Event.objects.values_list("slug", "name")) == [("djangocon-2027", "By editor")]


def test_the_permissions_come_from_a_group_as_well(client):
    organizers = Group.objects.create(name="organizers")
    organizers.permissions.set(Permission.objects.filter(codename__in=["add_event", "change_event"]))
    staff_user("member").groups.add(organizers)
    client.credentials(HTTP_AUTHORIZATION=basic_auth("member", PASSWORD))

    assert client.post("/api/events/", new_event_body(), format="json").status_code == 201


def test_a_superuser_needs_no_explicit_permission(client):
    User.objects.create_superuser("root", password=PASSWORD)
    client.credentials(HTTP_AUTHORIZATION=basic_auth("root", PASSWORD))

    created = client.post("/api/events/", new_event_body(), format="json")
    changed = client.patch("/api/events/djangocon-2027/", {"capacity": 301}, format="json")

    assert (created.status_code, changed.status_code) == (201, 200)
    assert Event.objects.get().capacity == 301


def test_wrong_basic_credentials_are_refused(client, staff):
    client.credentials(HTTP_AUTHORIZATION=basic_auth("organizer", "wrong"))

    response = client.post("/api/events/", new_event_body(), format="json")

    assert response.status_code == 401
    assert not Event.objects.exists()


def test_failed_basic_sign_ins_are_limited_per_address_then_429_even_with_the_right_password(client, staff, settings):
    settings.MICE_RATE_LIMIT_LOGIN_FAILURES = "3/15m"
    client.credentials(HTTP_AUTHORIZATION=basic_auth("organizer", "guess"))

    guesses = [client.post("/api/events/", new_event_body(), format="json").status_code for _ in range(3)]
    client.credentials(HTTP_AUTHORIZATION=basic_auth("organizer", PASSWORD))
    limited = client.post("/api/events/", new_event_body(), format="json")
    elsewhere = client.post("/api/events/", new_event_body(), format="json", REMOTE_ADDR="198.51.100.7")

    assert guesses == [401, 401, 401]
    assert limited.status_code == 429
    retry_after = int(limited["Retry-After"])
    assert 800 < retry_after <= 900
    assert limited.json() == {
        "code": "rate_limited",
        "detail": f"Too many failed sign-in attempts from your network address. Try again in {retry_after} seconds.",
    }
    assert elsewhere.status_code == 201
    assert Event.objects.count() == 1


def test_successful_basic_sign_ins_do_not_count_as_failures(staff_client, settings):
    settings.MICE_RATE_LIMIT_LOGIN_FAILURES = "2/15m"

    answers = [staff_client.post("/api/events/", new_event_body(slug=f"e-{i}"), format="json") for i in range(5)]

    assert [a.status_code for a in answers] == [201] * 5


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/", "/api/events/", "/healthz"])
def test_no_other_endpoint_checks_basic_passwords_outside_the_limit(client, staff, settings, path):
    # An endpoint that answered 403 to a wrong password and 200 to the right one would be an unlimited oracle.
    settings.MICE_RATE_LIMIT_LOGIN_FAILURES = "1/15m"
    client.credentials(HTTP_AUTHORIZATION=basic_auth("organizer", "guess"))

    answers = [client.get(path).status_code for _ in range(3)]

    assert answers == [200, 200, 200]  # the header is not even looked at


def test_public_endpoints_ignore_the_sign_in_limit(client, staff, settings):
    settings.MICE_RATE_LIMIT_LOGIN_FAILURES = "1/15m"
    client.credentials(HTTP_AUTHORIZATION=basic_auth("organizer", "guess"))
    client.post("/api/events/", new_event_body(), format="json")

    assert client.get("/api/events/").status_code == 200


def test_staff_create_an_event_with_basic_auth(staff_client):
    response = staff_client.post("/api/events/", new_event_body(), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert response["Location"] == "http://testserver/api/events/djangocon-2027/"
    assert (body["slug"], body["capacity"], body["seats_left"], body["price"]) == ("djangocon-2027", 300, 300, "250.00")
    assert Event.objects.get().name == "DjangoCon Europe 2027"


def test_staff_create_an_event_with_their_session(client, staff):
    client.force_login(staff)

    response = client.post("/api/events/", new_event_body(), format="json")

    assert response.status_code == 201, response.json()
    assert Event.objects.filter(slug="djangocon-2027").exists()


def test_a_new_event_gets_the_default_vat_rate_and_a_registration_window_ending_when_it_starts(staff_client):
    before = timezone.now()

    body = staff_client.post("/api/events/", new_event_body(), format="json").json()

    assert body["vat_rate"] == f"{Decimal(settings.DEFAULT_VAT_RATE):.2f}"
    assert body["registration_closes_at"] == body["starts_at"]
    assert body["payment_deadline_seconds"] == 1800
    opens = dt.datetime.fromisoformat(body["registration_opens_at"])
    assert before <= opens <= timezone.now()


def test_a_free_event_and_an_explicit_window_and_vat_rate(staff_client):
    opens = timezone.now() + dt.timedelta(days=1)
    closes = timezone.now() + dt.timedelta(days=20)
    body = new_event_body(
        price="0.00", vat_rate="0", registration_opens_at=opens.isoformat(), registration_closes_at=closes.isoformat()
    )

    response = staff_client.post("/api/events/", body, format="json")

    assert response.status_code == 201, response.json()
    event = Event.objects.get()
    assert event.is_free and event.vat_rate == 0
    assert (event.registration_opens_at, event.registration_closes_at) == (opens, closes)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"ends_at": (timezone.now() + dt.timedelta(days=59)).isoformat()}, "ends_at"),
        ({"registration_closes_at": (timezone.now() + dt.timedelta(days=90)).isoformat()}, "registration_closes_at"),
        ({"registration_opens_at": (timezone.now() + dt.timedelta(days=61)).isoformat()}, "registration_closes_at"),
        ({"capacity": -1}, "capacity"),
        ({"capacity": 2**31}, "capacity"),
        ({"capacity": "many"}, "capacity"),
        ({"capacity": 1.5}, "capacity"),
        ({"price": "-0.01"}, "price"),
        ({"price": "12.345"}, "price"),
        ({"price": "NaN"}, "price"),
        ({"price": "free"}, "price"),
        ({"price": "123456789.00"}, "price"),
        ({"currency": "eur"}, "currency"),
        ({"currency": "EURO"}, "currency"),
        ({"currency": "€"}, "currency"),
        ({"vat_rate": "-1"}, "vat_rate"),
        ({"vat_rate": "101"}, "vat_rate"),
        ({"slug": "not a slug"}, "slug"),
        ({"slug": ""}, "slug"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "Line\r\nbreak"}, "name"),
        ({"name": 42}, "name"),
        ({"venue": None}, "venue"),
        ({"starts_at": "next tuesday"}, "starts_at"),
        ({"starts_at": "0001-01-01T00:00:00+01:00"}, "starts_at"),
        ({"seats_left": 1000}, "seats_left"),
        ({"seats_taken": 5}, "seats_taken"),
    ],
)
def test_invalid_events_are_400_field_errors(staff_client, overrides, field):
    response = staff_client.post("/api/events/", new_event_body(**overrides), format="json")

    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert not Event.objects.exists()


@pytest.mark.parametrize("missing", ["slug", "name", "venue", "starts_at", "ends_at", "capacity", "price", "currency"])
def test_required_event_fields(staff_client, missing):
    body = new_event_body()
    del body[missing]

    response = staff_client.post("/api/events/", body, format="json")

    assert response.status_code == 400
    assert missing in response.json()


def test_a_taken_slug_is_a_field_error_not_a_server_error(staff_client):
    make_event(slug="djangocon-2027")

    response = staff_client.post("/api/events/", new_event_body(), format="json")

    assert response.status_code == 400
    assert "slug" in response.json()
    assert Event.objects.count() == 1


# --- changing ----------------------------------------------------------------------------------------


def test_staff_change_some_fields_and_the_rest_stays(staff_client):
    event = make_event(name="Old name", capacity=50)

    response = staff_client.patch(f"/api/events/{event.slug}/", {"name": "New name", "capacity": 60}, format="json")

    assert response.status_code == 200, response.json()
    assert (response.json()["name"], response.json()["seats_left"]) == ("New name", 60)
    event.refresh_from_db()
    assert (event.name, event.capacity, event.venue) == ("New name", 60, "Lisbon Congress Centre")


def test_staff_change_an_event_with_their_session(client, staff):
    event = make_event()
    client.force_login(staff)

    response = client.patch(f"/api/events/{event.slug}/", {"venue": "Madeira"}, format="json")

    assert response.status_code == 200
    event.refresh_from_db()
    assert event.venue == "Madeira"


def test_an_empty_change_changes_nothing(staff_client):
    event = make_event()

    response = staff_client.patch(f"/api/events/{event.slug}/", {}, format="json")

    assert response.status_code == 200
    assert response.json()["name"] == event.name


def test_the_capacity_cannot_drop_below_the_seats_taken(staff_client):
    event = make_event(capacity=10)
    Event.objects.filter(pk=event.pk).update(seats_taken=8)

    response = staff_client.patch(f"/api/events/{event.slug}/", {"capacity": 7}, format="json")

    assert response.status_code == 400
    assert "capacity" in response.json()
    event.refresh_from_db()
    assert event.capacity == 10
    assert staff_client.patch(f"/api/events/{event.slug}/", {"capacity": 8}, format="json").status_code == 200


def test_a_change_is_checked_against_the_fields_it_leaves_alone(staff_client):
    event = make_event()

    response = staff_client.patch(
        f"/api/events/{event.slug}/", {"ends_at": (event.starts_at - dt.timedelta(hours=1)).isoformat()}, format="json"
    )

    assert response.status_code == 400
    assert "ends_at" in response.json()


def test_changing_to_a_taken_slug_is_a_field_error(staff_client):
    make_event(slug="taken")
    event = make_event()

    response = staff_client.patch(f"/api/events/{event.slug}/", {"slug": "taken"}, format="json")

    assert response.status_code == 400
    assert "slug" in response.json()


def test_seats_left_and_seats_taken_cannot_be_set(staff_client):
    event = make_event(capacity=10)

    response = staff_client.patch(f"/api/events/{event.slug}/", {"seats_left": 0, "seats_taken": 10}, format="json")

    assert response.status_code == 400
    assert {"seats_left", "seats_taken"} <= set(response.json())
    event.refresh_from_db()
    assert event.seats_taken == 0


def test_anonymous_and_non_staff_cannot_change_an_event(client, attendee_user):
    event = make_event(name="Unchanged")

    anonymous = client.patch(f"/api/events/{event.slug}/", {"name": "Hacked"}, format="json")
    client.force_login(attendee_user)
    not_staff = client.patch(f"/api/events/{event.slug}/", {"name": "Hacked"}, format="json")

    assert (anonymous.status_code, not_staff.status_code) == (401, 403)
    event.refresh_from_db()
    assert event.name == "Unchanged"


def test_changing_an_unknown_event_is_a_404(staff_client):
    response = staff_client.patch("/api/events/nope/", {"name": "x"}, format="json")

    assert response.status_code == 404
    assert response.json() == {"detail": "No such event."}


def test_other_methods_are_405_json(staff_client):
    event = make_event()

    assert staff_client.delete(f"/api/events/{event.slug}/").status_code == 405
    assert staff_client.put("/api/events/", {}, format="json").json()["detail"]


# --- the services the API calls ------------------------------------------------------------------------


def test_event_create_and_update_are_usable_without_the_api():
    starts = timezone.now() + dt.timedelta(days=10)
    event = event_create(
        slug="svc",
        name="Service",
        venue="Faro",
        starts_at=starts,
        ends_at=starts + dt.timedelta(days=1),
        capacity=3,
        price=Decimal("10.00"),
        currency="EUR",
    )

    changed = event_update(event=event, capacity=4)

    assert (changed.capacity, changed.registration_closes_at, changed.vat_rate) == (
        4,
        starts,
        Decimal(settings.DEFAULT_VAT_RATE),
    )


def test_event_update_refuses_fields_that_are_not_editable():
    event = make_event()

    with pytest.raises(TypeError, match="seats_taken"):
        event_update(event=event, **{"seats_taken": 3})


def test_staff_set_and_change_an_events_payment_deadline(staff_client):
    created = staff_client.post("/api/events/", new_event_body(payment_deadline_seconds=600), format="json")
    changed = staff_client.patch("/api/events/djangocon-2027/", {"payment_deadline_seconds": 120}, format="json")
    refused = staff_client.patch("/api/events/djangocon-2027/", {"payment_deadline_seconds": 0}, format="json")

    assert (created.status_code, created.json()["payment_deadline_seconds"]) == (201, 600)
    assert (changed.status_code, changed.json()["payment_deadline_seconds"]) == (200, 120)
    assert refused.status_code == 400 and "payment_deadline_seconds" in refused.json()
    assert Event.objects.get().payment_deadline_seconds == 120
