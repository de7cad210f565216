"""Admin for events and registrations, on PostgreSQL: staff changes never lose a seat or answer 500."""

import threading

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from invoicing.models import Charge, Invoice
from mice.models import DeadLetter, InboxEntry
from mice.outbox import emit
from mice.selectors import saga
from registrations.models import Event, Registration
from registrations.services import RegistrationRefused, registration_create
from tests.factories import make_event
from tests.processes import wait_until

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


@pytest.mark.django_db(transaction=True)
def test_the_timeline_shows_each_event_its_cause_and_every_handlers_outcome_with_the_dead_letter(
    system, superuser_client
):
    # given a paid registration through the real broker, and a handler of its saga that fails for good
    system.worker()
    system.relay()
    system.recorder()
    registration = registration_create(
        event_slug=make_event().slug,
        first_name="Ada",
        last_name="Lovelace",
        email="ada@example.com",
        payment_token="tok_visa",
    )
    with transaction.atomic():
        emit("probe.broke", subject=str(registration.pk), data={"kind": "bug"}, correlation_id=str(registration.pk))
    wait_until(lambda: DeadLetter.objects.filter(correlation_id=str(registration.pk)).exists(), timeout=60)
    wait_until(lambda: Registration.objects.get(pk=registration.pk).status == "confirmed", timeout=60)
    wait_until(lambda: InboxEntry.objects.filter(handler="invoicing.issue_invoice").exists(), timeout=60)

    # when staff open it in admin
    page = superuser_client.get(reverse("admin:registrations_registration_change", args=[registration.pk]))
    html = page.content.decode()

    # then every event shows with its cause, and every handler with its outcome
    steps = saga(correlation_id=str(registration.pk))
    by_type = {step.event_type: step for step in steps}
    assert by_type["registration.created"].cause_type is None
    assert by_type["payment.succeeded"].cause_type == "registration.created"
    assert by_type["registration.confirmed"].cause_type == "payment.succeeded"
    charge = {o.handler: o for o in by_type["registration.created"].handlers}["invoicing.charge_registration"]
    assert charge.outcome == "processed"
    (broken,) = by_type["probe.broke"].handlers
    letter = DeadLetter.objects.get(correlation_id=str(registration.pk))
    assert (broken.outcome, broken.dead_letter_id) == ("dead-lettered", letter.pk)
    assert "caused by payment.succeeded" in html and "invoicing.charge_registration" in html
    assert "ValueError: always_fails has a bug" in html
    assert reverse("admin:mice_deadletter_change", args=[letter.pk]) in html
    # and links to what the other services hold for it: the charge, the invoice, the e-mails
    assert (
        reverse("admin:invoicing_charge_change", args=[Charge.objects.get(registration_id=registration.pk).pk]) in html
    )
    invoice = Invoice.objects.get(registration_id=registration.pk)
    assert f"invoice {invoice.number}" in html
    assert f"?registration_id={registration.pk}" in html
    assert "&amp;middot;" not in html  # the links' separator is shown as a dot, not as escaped markup
    # the deadline still held back says until when; the page names the conference, not its id
    due = timezone.localtime(Registration.objects.get(pk=registration.pk).payment_due_at)
    assert f"held until {due:%Y-%m-%d %H:%M}" in html
    assert f"Ada Lovelace for {registration.event.name} (confirmed)" in html
