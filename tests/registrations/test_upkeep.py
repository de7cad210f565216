"""Registrations' upkeep: expired idempotency records go, and a lost payment deadline is met all the same."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from mice.models import OutboxMessage
from registrations.models import IdempotencyRecord, Registration
from registrations.services import registration_create
from registrations.upkeep import idempotency_keys_expired, payment_deadlines_missing, payment_deadlines_overdue
from tests.factories import make_event

pytestmark = pytest.mark.django_db(transaction=True)


def record(key, age):
    return IdempotencyRecord.objects.create(
        key=key, request_fingerprint="f", response_status=202, response_body={}, created_at=timezone.now() - age
    )


def test_idempotency_records_past_their_ttl_are_purged_and_the_rest_kept(settings):
    settings.IDEMPOTENCY_KEY_TTL_HOURS = 24
    record("api:old", dt.timedelta(hours=25))
    record("form:old", dt.timedelta(days=3))
    record("api:fresh", dt.timedelta(hours=23))

    assert idempotency_keys_expired() == 2

    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["api:fresh"]


def register(event, email, due_ago):
    registration = registration_create(
        event_slug=event.slug, first_name="Ada", last_name="Lovelace", email=email, payment_token="tok_visa"
    )
    Registration.objects.filter(pk=registration.pk).update(payment_due_at=timezone.now() - due_ago)
    return registration


def test_a_registration_pending_long_past_its_deadline_is_cancelled_and_its_seat_released(settings):
    # given: deadline messages that never arrived (no relay, no worker), and a grace of an hour
    settings.MICE_UPKEEP_DEADLINE_GRACE = 3600
    event = make_event(capacity=3)
    lost = register(event, "lost@example.com", due_ago=dt.timedelta(hours=2))
    recent = register(event, "recent@example.com", due_ago=dt.timedelta(minutes=10))
    confirmed = register(event, "paid@example.com", due_ago=dt.timedelta(hours=2))
    Registration.objects.filter(pk=confirmed.pk).update(status=Registration.Status.CONFIRMED)

    # when
    assert payment_deadlines_overdue() == 1

    # then
    statuses = dict(Registration.objects.values_list("email", "status"))
    assert statuses == {
        "lost@example.com": "cancelled",
        "recent@example.com": "pending",
        "paid@example.com": "confirmed",
    }
    assert Registration.objects.get(pk=lost.pk).cancellation_reason == "payment_deadline_passed"
    assert Registration.objects.get(pk=recent.pk).payment_due_at is not None
    event.refresh_from_db()
    assert event.seats_taken == 2

    # and a second round changes nothing
    assert payment_deadlines_overdue() == 0


def test_a_pending_registration_made_without_a_deadline_is_given_one_once():
    # given a pending and a confirmed registration as code older than payment deadlines left them
    event = make_event(price="50.00", payment_deadline_seconds=600)
    pending = registration_create(
        event_slug=event.slug, first_name="A", last_name="B", email="old@example.com", payment_token="tok_visa"
    )
    confirmed = registration_create(
        event_slug=event.slug, first_name="C", last_name="D", email="paid@example.com", payment_token="tok_visa"
    )
    Registration.objects.filter(pk__in=[pending.pk, confirmed.pk]).update(payment_due_at=None)
    Registration.objects.filter(pk=confirmed.pk).update(status=Registration.Status.CONFIRMED)
    OutboxMessage.objects.filter(event_type="registration.payment_deadline_reached").delete()

    # when upkeep runs, twice
    assert payment_deadlines_missing() == 1
    assert payment_deadlines_missing() == 0

    # then the pending one has its deadline and one deadline event held until then; the confirmed one neither
    pending.refresh_from_db()
    (deadline,) = OutboxMessage.objects.filter(event_type="registration.payment_deadline_reached")
    assert pending.payment_due_at is not None and deadline.available_at == pending.payment_due_at
    assert deadline.correlation_id == str(pending.pk)
    assert Registration.objects.get(pk=confirmed.pk).payment_due_at is None


def test_upkeep_reads_pending_registrations_through_their_index_not_the_whole_table():
    # given the statements upkeep runs to find registrations past their deadline, or with none
    with CaptureQueriesContext(connection) as statements:
        payment_deadlines_missing()
        payment_deadlines_overdue()
    finds = [
        q["sql"] for q in statements.captured_queries if q["sql"].startswith("SELECT") and "registration" in q["sql"]
    ]
    assert len(finds) == 2, finds

    # when PostgreSQL plans them as it would on a large table (a few rows make any plan a full read)
    plans = []
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        try:
            for sql in finds:
                cursor.execute(f"EXPLAIN {sql}")
                plans.append("\n".join(row[0] for row in cursor.fetchall()))
        finally:
            cursor.execute("RESET enable_seqscan")

    # then each reads the partial index of pending registrations
    for plan in plans:
        assert "registration_pending_due" in plan, plan
