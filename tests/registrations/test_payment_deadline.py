"""The saga's timeout: a registration unpaid by its event's payment deadline is cancelled and its seat released."""

import datetime as dt
import importlib
import sqlite3

import pytest
from django.apps import apps as django_apps
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from invoicing.gateways import SandboxGateway
from invoicing.models import Charge
from mice.models import InboxEntry, OutboxMessage
from mice.selectors import timeline
from mice.upkeep import upkeep_jobs, upkeep_run
from registrations.models import Event, Registration
from registrations.services import registration_confirm, registration_create
from tests.factories import make_event
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def register(event, token="tok_visa", email="ada@example.com"):
    return registration_create(
        event_slug=event.slug, first_name="Ada", last_name="Lovelace", email=email, payment_token=token
    )


def left_pending(registration, timeout=60):
    wait_until(
        lambda: Registration.objects.get(pk=registration.pk).status != "pending",
        timeout=timeout,
        what=f"registration {registration.pk} leaves pending",
    )
    return Registration.objects.get(pk=registration.pk)


def gateway_charges(key):
    SandboxGateway()  # makes its ledger if no charge was ever made
    with sqlite3.connect(settings.SANDBOX_GATEWAY_PATH) as ledger:
        return ledger.execute("SELECT succeeded FROM ledger_charges WHERE idempotency_key = ?", (key,)).fetchall()


def test_a_registration_gets_its_events_payment_deadline():
    registration = register(make_event(payment_deadline_seconds=90))

    assert abs(registration.payment_due_at - registration.created_at - dt.timedelta(seconds=90)) < dt.timedelta(
        seconds=1
    )
    timeout = OutboxMessage.objects.get(event_type="registration.payment_deadline_reached")
    assert timeout.available_at == registration.payment_due_at  # held in the outbox until then
    assert timeout.correlation_id == str(registration.pk)


def test_a_registration_whose_charge_never_runs_is_cancelled_at_its_deadline_and_never_charged(system):
    # given workers that do not charge (the charge handler's messages are stuck, e.g. dead-lettered)
    system.worker(exclude=("invoicing.charge_registration",))
    system.relay()
    event = make_event(capacity=1, payment_deadline_seconds=3)
    registration = register(event)

    # when its payment deadline passes
    cancelled = left_pending(registration)

    # then it is cancelled, not before its deadline, and the seat is someone else's to take
    assert (cancelled.status, cancelled.cancellation_reason) == ("cancelled", "payment_deadline_passed")
    assert cancelled.updated_at >= registration.payment_due_at
    assert Event.objects.get(pk=event.pk).seats_left == 1
    assert register(event, email="grace@example.com").status == "pending"
    # and when the charge handler finally runs, it charges nothing
    system.worker()
    wait_until(lambda: Charge.objects.filter(registration_id=registration.pk).exists(), timeout=60)
    assert Charge.objects.get(registration_id=registration.pk).status == "voided"
    assert gateway_charges(str(registration.pk)) == []
    assert not OutboxMessage.objects.filter(correlation_id=str(registration.pk), event_type="payment.succeeded")
    entries = [entry.what for entry in timeline(correlation_id=str(registration.pk))]
    assert "event registration.payment_deadline_reached" in entries and "event registration.cancelled" in entries


def test_a_registration_paid_in_time_is_not_cancelled_by_its_deadline(system):
    system.worker()
    system.relay()
    registration = register(make_event(payment_deadline_seconds=4))
    assert left_pending(registration).status == "confirmed"

    deadline = OutboxMessage.objects.get(
        correlation_id=str(registration.pk), event_type="registration.payment_deadline_reached"
    )
    wait_until(lambda: OutboxMessage.objects.get(pk=deadline.pk).sent_at is not None, timeout=60)
    wait_until(
        lambda: InboxEntry.objects.filter(
            event_id=deadline.event_id, handler="registrations.cancel_registration_past_payment_deadline"
        ).exists(),
        timeout=60,
        what="the deadline handled",
    )
    assert Registration.objects.get(pk=registration.pk).status == "confirmed"
    assert Charge.objects.get(registration_id=registration.pk).status == "succeeded"


@pytest.fixture
def staff_client():
    def make(*permissions):
        user = User.objects.create_user("staff", "staff@example.com", "pw", is_staff=True)
        user.user_permissions.add(*Permission.objects.filter(codename__in=["view_registration", *permissions]))
        client = Client()
        client.login(username="staff", password="pw")
        return client

    return make


def test_staff_cancel_a_pending_registration_from_admin_with_the_permission(staff_client):
    event = make_event(capacity=1)
    registration = register(event)
    client = staff_client("cancel_registration")

    response = client.post(
        reverse("admin:registrations_registration_changelist"),
        {"action": "cancel_registrations", "_selected_action": [str(registration.pk)]},
    )

    assert response.status_code == 302
    cancelled = Registration.objects.get(pk=registration.pk)
    assert (cancelled.status, cancelled.cancellation_reason) == ("cancelled", "cancelled_by_staff")
    assert Event.objects.get(pk=event.pk).seats_left == 1
    (event_row,) = OutboxMessage.objects.filter(event_type="registration.cancelled")
    assert event_row.correlation_id == str(registration.pk)  # on the registration's timeline


def test_the_admin_action_leaves_confirmed_registrations_as_they_are(staff_client):
    event = make_event(capacity=1)
    registration = register(event)
    registration_confirm(registration_id=registration.pk)

    staff_client("cancel_registration").post(
        reverse("admin:registrations_registration_changelist"),
        {"action": "cancel_registrations", "_selected_action": [str(registration.pk)]},
    )

    assert Registration.objects.get(pk=registration.pk).status == "confirmed"
    assert Event.objects.get(pk=event.pk).seats_left == 0


def test_staff_without_the_permission_cannot_cancel(staff_client):
    registration = register(make_event())
    client = staff_client()

    page = client.get(reverse("admin:registrations_registration_changelist"))
    response = client.post(
        reverse("admin:registrations_registration_changelist"),
        {"action": "cancel_registrations", "_selected_action": [str(registration.pk)]},
    )

    assert "cancel_registrations" not in page.content.decode()
    assert response.status_code in (200, 302)
    assert Registration.objects.get(pk=registration.pk).status == "pending"


def made_by_older_code(registration):
    """A pending registration as code from before payment deadlines left it: no due time, no deadline event."""
    Registration.objects.filter(pk=registration.pk).update(payment_due_at=None)
    OutboxMessage.objects.filter(event_type="registration.payment_deadline_reached").delete()


def deadline_rows(registration):
    return OutboxMessage.objects.filter(
        event_type="registration.payment_deadline_reached", correlation_id=str(registration.id)
    )


def test_a_registration_made_by_older_code_gets_its_deadline_from_upkeep_and_the_deadline_cancels_it(system):
    event = make_event(price="50.00", payment_deadline_seconds=3)
    registration = register(event)
    made_by_older_code(registration)
    system.worker(exclude=("invoicing.charge_registration",))
    system.relay()
    # upkeep's round gives it the deadline the older code did not (every handler of registration.created ran
    # without doing so), once however often it runs, and the deadline then cancels it
    wait_until(
        lambda: InboxEntry.objects.filter(handler="analytics.count_registration").exists(), what="created handled"
    )
    assert not deadline_rows(registration).exists()
    for _ in range(2):
        assert {o.outcome for o in upkeep_run(jobs=upkeep_jobs())} == {"done"}
    assert deadline_rows(registration).count() == 1
    left_pending(registration)
    registration.refresh_from_db()
    assert registration.status == "cancelled" and registration.cancellation_reason == "payment_deadline_passed"
    assert deadline_rows(registration).count() == 1


def test_the_deploy_gives_registrations_pending_before_it_a_deadline_once():
    event = make_event(price="50.00", payment_deadline_seconds=600)
    pending, confirmed = register(event), register(event, email="grace@example.com")
    registration_confirm(registration_id=confirmed.id)
    made_by_older_code(pending)
    Registration.objects.filter(pk=confirmed.pk).update(payment_due_at=None)
    backfill = importlib.import_module("registrations.migrations.0005_backfill_payment_deadlines")

    backfill.forwards(django_apps, None)
    backfill.forwards(django_apps, None)  # run again (e.g. a re-applied migration): still one deadline

    pending.refresh_from_db()
    row = deadline_rows(pending).get()
    assert row.available_at == pending.payment_due_at > timezone.now() + dt.timedelta(seconds=590)
    assert row.envelope["data"] == {
        "registration_id": str(pending.id),
        "payment_due_at": pending.payment_due_at.isoformat(),
    }
    assert not deadline_rows(confirmed).exists()


def test_staff_cancel_a_confirmed_registration_after_confirming_and_it_is_to_be_refunded(staff_client):
    event = make_event(capacity=1)
    registration = register(event)
    registration_confirm(registration_id=registration.pk)
    client = staff_client("cancel_registration")
    action = {"action": "cancel_and_refund_registrations", "_selected_action": [str(registration.pk)]}

    # the action first asks, naming who will be cancelled and refunded
    asked = client.post(reverse("admin:registrations_registration_changelist"), action)
    assert asked.status_code == 200
    assert "Yes, cancel and refund" in asked.content.decode() and "Ada Lovelace" in asked.content.decode()
    assert Registration.objects.get(pk=registration.pk).status == "confirmed"

    done = client.post(reverse("admin:registrations_registration_changelist"), {**action, "confirmed": "yes"})

    assert done.status_code == 302
    cancelled = Registration.objects.get(pk=registration.pk)
    assert (cancelled.status, cancelled.cancellation_reason) == ("cancelled", "cancelled_by_staff")
    assert Event.objects.get(pk=event.pk).seats_left == 1
    (row,) = OutboxMessage.objects.filter(event_type="registration.cancelled")
    assert row.envelope["data"]["was_confirmed"] is True  # invoicing refunds it
    # the saga's timeline stays one chain: staff acted on the confirmed registration
    confirmed = OutboxMessage.objects.get(event_type="registration.confirmed")
    assert row.envelope["causationid"] == str(confirmed.event_id)


def test_staff_without_the_permission_cannot_cancel_and_refund(staff_client):
    registration = register(make_event())
    registration_confirm(registration_id=registration.pk)
    client = staff_client()

    client.post(
        reverse("admin:registrations_registration_changelist"),
        {"action": "cancel_and_refund_registrations", "_selected_action": [str(registration.pk)], "confirmed": "yes"},
    )

    assert Registration.objects.get(pk=registration.pk).status == "confirmed"
