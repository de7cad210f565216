"""Admin for events and registrations, on PostgreSQL: staff changes never lose a seat or answer 500."""

import threading

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from registrations.models import Event, Registration
from registrations.services import RegistrationRefused, registration_create
from tests.factories import make_event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def superuser_client():
    User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.login(username="root", password="pw")
    return client


def _split(moment):
    local = timezone.localtime(moment)
    return local.strftime("%Y-%m-%d"), local.strftime("%H:%M:%S")


def change_form_data(event, **overrides):
    """What the admin's change form posts back for `event`: every field as the page showed it."""
    data = {
        "slug": event.slug,
        "name": event.name,
        "venue": event.venue,
        "capacity": str(event.capacity),
        "price": str(event.price),
        "currency": event.currency,
        "vat_rate": str(event.vat_rate),
        "payment_deadline_seconds": str(getattr(event, "payment_deadline_seconds", 1800)),
        "_save": "Save",
    }
    for field in ("starts_at", "ends_at", "registration_opens_at", "registration_closes_at"):
        data[f"{field}_0"], data[f"{field}_1"] = _split(getattr(event, field))
    data.update(overrides)
    return data


def test_resaving_an_event_in_admin_while_attendees_register_loses_no_seat(superuser_client):
    # given an event people are registering for
    event = make_event(capacity=200)
    url = reverse("admin:registrations_event_change", args=[event.pk])
    registering = 60
    done = threading.Event()
    start = threading.Barrier(registering + 1)

    def register(i):
        try:
            start.wait()
            registration_create(
                event_slug=event.slug,
                first_name="Attendee",
                last_name=str(i),
                email=f"attendee{i}@example.com",
                payment_token="tok_visa",
            )
        except RegistrationRefused:
            pass
        finally:
            connection.close()

    threads = [threading.Thread(target=register, args=(i,)) for i in range(registering)]
    for thread in threads:
        thread.start()

    # when staff keep re-saving the event (as they read it) in admin while the registrations commit
    answers: list[int] = []

    def resave():
        try:
            start.wait()
            while not done.is_set() or len(answers) < 4:
                stale = Event.objects.get(pk=event.pk)
                answers.append(superuser_client.post(url, change_form_data(stale, venue="Porto")).status_code)
        finally:
            connection.close()

    staff = threading.Thread(target=resave)
    staff.start()
    for thread in threads:
        thread.join()
    done.set()
    staff.join()

    # then every save succeeded and every active registration holds exactly one seat
    assert answers and set(answers) == {302}, answers
    saved = Event.objects.get(pk=event.pk)
    active = Registration.objects.filter(event=event).exclude(status="cancelled").count()
    assert active == registering
    assert saved.seats_taken == active
    assert saved.venue == "Porto"


def test_a_capacity_below_the_seats_taken_is_a_form_error(superuser_client):
    event = make_event(capacity=10)
    for i in range(3):
        registration_create(
            event_slug=event.slug, first_name="A", last_name=str(i), email=f"a{i}@example.com", payment_token="tok_visa"
        )
    url = reverse("admin:registrations_event_change", args=[event.pk])

    response = superuser_client.post(url, change_form_data(Event.objects.get(pk=event.pk), capacity="2"))

    assert response.status_code == 200
    assert "The capacity cannot be below the 3 seats already taken." in response.content.decode()
    assert Event.objects.get(pk=event.pk).capacity == 10


def test_an_event_created_in_admin_goes_through_the_service_rules(superuser_client):
    template = make_event(slug="template")
    data = change_form_data(template, slug="new-conf", name="New conference")
    # registration closing after the event ended: refused by the service's cross-field rules
    data["registration_closes_at_0"], data["registration_closes_at_1"] = _split(
        template.ends_at + timezone.timedelta(days=1)
    )

    refused = superuser_client.post(reverse("admin:registrations_event_add"), data)

    assert refused.status_code == 200
    assert "Registration cannot close after the event has ended." in refused.content.decode()
    assert not Event.objects.filter(slug="new-conf").exists()

    data["registration_closes_at_0"], data["registration_closes_at_1"] = _split(template.starts_at)
    created = superuser_client.post(reverse("admin:registrations_event_add"), data)

    assert created.status_code == 302
    saved = Event.objects.get(slug="new-conf")
    assert (saved.name, saved.seats_taken, saved.capacity) == ("New conference", 0, template.capacity)
