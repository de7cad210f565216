"""The payment token: only the charge handler sees it, no stored row keeps it once the charge is decided."""

import json

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.urls import reverse

from invoicing.models import Charge
from mice.models import DeadLetter, HandlerFailure, OutboxMessage
from registrations.models import Registration
from registrations.services import registration_create
from tests.factories import make_event
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "tok_visa"


def register(event, token=TOKEN, email="ada@example.com"):
    return registration_create(
        event_slug=event.slug, first_name="Ada", last_name="Lovelace", email=email, payment_token=token
    )


def rows_holding(text):
    """Every stored row of this database whose text holds `text`, as 'table: row' strings."""
    found = []
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        for table in tables:
            cursor.execute(f'SELECT t::text FROM "{table}" t WHERE t::text LIKE %s', [f"%{text}%"])
            found += [f"{table}: {row[0][:300]}" for row in cursor.fetchall()]
    return found


def test_no_event_carries_the_payment_token():
    registration = register(make_event())

    created = OutboxMessage.objects.get(correlation_id=str(registration.pk), event_type="registration.created")

    assert "payment_token" not in created.envelope["data"]
    assert TOKEN not in json.dumps(created.envelope)


def test_once_the_charge_is_decided_no_stored_row_holds_the_token_and_admin_never_showed_it(system):
    system.worker()
    system.relay()
    token = "tok_flaky"  # retried twice: the token must not linger in failures or retries either
    registration = register(make_event(), token=token)

    wait_until(lambda: Registration.objects.get(pk=registration.pk).status == "confirmed", timeout=60)

    assert Charge.objects.get(registration_id=registration.pk).status == "succeeded"
    assert HandlerFailure.objects.filter(correlation_id=str(registration.pk)).count() == 2
    wait_until(lambda: not rows_holding(token), timeout=10, what="no row holding the token")
    User.objects.create_superuser("root", "root@example.com", "pw")
    staff = Client()
    staff.login(username="root", password="pw")
    for row in OutboxMessage.objects.filter(correlation_id=str(registration.pk)):
        page = staff.get(reverse("admin:mice_outboxmessage_change", args=[row.pk]))
        assert page.status_code == 200 and token not in page.content.decode()
    assert "paymenttoken" not in staff.get(reverse("admin:index")).content.decode().lower()


def test_a_cancelled_registration_forgets_its_token():
    from registrations.services import registration_cancel

    registration = register(make_event(), token="tok_chargeDeclined")

    registration_cancel(registration_id=registration.pk, reason="test")

    assert not rows_holding("tok_chargeDeclined")


def test_a_registration_created_event_from_before_the_change_still_charges_with_its_own_token(system):
    """During a deploy an old web process may still emit registration.created with the token inside."""
    from django.db import transaction

    from mice.outbox import emit
    from registrations import payloads
    from registrations.events import REGISTRATION_CREATED

    system.worker()
    system.relay()
    registration = register(make_event(), token="tok_chargeDeclined")
    old_format = {**payloads.registration_created(registration), "payment_token": "tok_visa"}
    # the old format's registration, as an old web process would have written it: no token of its own
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM registrations_paymenttoken")
    OutboxMessage.objects.filter(correlation_id=str(registration.pk)).delete()
    with transaction.atomic():
        emit(REGISTRATION_CREATED, subject=str(registration.pk), data=old_format, correlation_id=str(registration.pk))

    wait_until(lambda: Registration.objects.get(pk=registration.pk).status == "confirmed", timeout=60)
    assert Charge.objects.get(registration_id=registration.pk).status == "succeeded"
    assert not DeadLetter.objects.exists()


def test_the_migration_redacts_tokens_stored_before_it_and_keeps_the_pending_ones_chargeable(monkeypatch):
    import dataclasses
    import importlib

    from django.apps import apps
    from django.db import transaction

    from mice.deadletters import dead_letter_record
    from mice.events import Envelope, get_event_type
    from mice.outbox import outbox_store
    from registrations import payloads
    from registrations.models import PaymentToken
    from registrations.selectors import payment_token_get

    migration = importlib.import_module("registrations.migrations.0003_redact_payment_tokens")
    # given version-1 events, with the token inside, in the outbox and in a dead letter
    waiting, dead = register(make_event()), register(make_event(), email="grace@example.com")
    PaymentToken.objects.all().delete()
    envelopes = {}
    for registration, token in ((waiting, "tok_old_waiting"), (dead, "tok_old_dead")):
        envelope = Envelope.new(
            get_event_type("registration.created"),
            subject=str(registration.pk),
            data={**payloads.registration_created(registration), "payment_token": token},
            correlation_id=str(registration.pk),
        )
        envelopes[token] = envelope.to_dict()
    with transaction.atomic():
        outbox_store(envelope=Envelope.from_dict(envelopes["tok_old_waiting"]))
    # recorded as the recorder did before this release, which dropped no secret field
    from mice.events import EVENT_TYPES

    created = EVENT_TYPES["registration.created"]
    monkeypatch.setitem(EVENT_TYPES, "registration.created", dataclasses.replace(created, secret_fields=()))
    dead_letter_record(
        body=json.dumps([[envelopes["tok_old_dead"]], {}, {}]),
        headers={
            "task": "invoicing.charge_registration",
            "id": "t-1",
            "argsrepr": repr((envelopes["tok_old_dead"],)),
            "x-death": [{"queue": "invoicing.charge_registration", "reason": "rejected", "count": 1}],
        },
        routing_key="invoicing.charge_registration",
    )
    assert rows_holding("tok_old_waiting") and len(rows_holding("tok_old_dead")) == 1
    monkeypatch.setitem(EVENT_TYPES, "registration.created", created)

    # when the migration runs
    migration.redact_payment_tokens(apps, None)

    # then no event row holds a token, and both pending registrations can still be charged
    assert [row.split(":")[0] for row in rows_holding("tok_old_")] == ["registrations_paymenttoken"] * 2
    assert payment_token_get(registration_id=waiting.pk) == "tok_old_waiting"
    assert payment_token_get(registration_id=dead.pk) == "tok_old_dead"
    stored = DeadLetter.objects.get()
    assert "payment_token" not in stored.body[0][0]["data"]
    assert Envelope.from_dict(stored.body[0][0]).data["registration_id"] == str(dead.pk)
