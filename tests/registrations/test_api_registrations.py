"""The registrations API: the 202 answer, idempotent retries, refusals, the status resource, the schema."""

import datetime as dt
import threading
import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from mice.models import OutboxMessage
from registrations.models import Event, IdempotencyRecord, Registration
from registrations.selectors import payment_token_get
from registrations.services import registration_cancel
from tests.factories import make_event

pytestmark = pytest.mark.django_db

URL = "/api/registrations/"


@pytest.fixture
def client():
    return APIClient()


@pytest.fixture
def event():
    return make_event(slug="pycon-2027", name="PyCon 2027", capacity=10)


def attendee(event_slug="pycon-2027", **overrides):
    body = {
        "event": event_slug,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "company": "Analytical Engines",
        "payment_token": "tok_visa",
    }
    body.update(overrides)
    return body


def register(client, body, key=None, **extra):
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return client.post(URL, body, format="json", **headers, **extra)


# --- the 202 ---------------------------------------------------------------------------------------


def test_registering_answers_202_with_the_id_status_and_a_status_url(client, event):
    response = register(client, attendee())

    assert response.status_code == 202, response.json()
    body = response.json()
    registration = Registration.objects.get()
    assert body == {
        "id": str(registration.id),
        "status": "pending",
        "status_url": f"http://testserver/api/registrations/{registration.id}/",
    }
    assert response["Location"] == body["status_url"]
    assert "Idempotent-Replayed" not in response
    assert (registration.first_name, registration.company, registration.event) == ("Ada", "Analytical Engines", event)
    event.refresh_from_db()
    assert event.seats_left == 9


def test_the_registration_created_event_is_in_the_outbox_after_the_202(client, event):
    response = register(client, attendee())

    (message,) = OutboxMessage.objects.filter(event_type="registration.created")
    assert message.envelope["subject"] == response.json()["id"]
    assert "payment_token" not in message.envelope["data"]  # only the charge handler reads it, not from events
    assert payment_token_get(registration_id=response.json()["id"]) == "tok_visa"
    assert message.sent_at is None


def test_a_free_event_is_confirmed_at_once_without_a_payment_token(client):
    make_event(slug="meetup", price=Decimal("0.00"))

    response = register(client, attendee("meetup", payment_token=""))

    assert response.status_code == 202
    assert response.json()["status"] == "confirmed"
    assert Registration.objects.get().status == "confirmed"


def test_company_and_payment_token_are_optional_for_a_free_event(client):
    make_event(slug="meetup", price=Decimal("0.00"))
    body = attendee("meetup")
    del body["company"], body["payment_token"]

    response = register(client, body)

    assert response.status_code == 202
    assert Registration.objects.get().company == ""


def test_a_paid_event_without_a_payment_token_is_a_400_on_payment_token(client, event):
    body = attendee()
    del body["payment_token"]

    response = register(client, body)

    assert response.status_code == 400
    assert list(response.json()) == ["payment_token"]
    assert not Registration.objects.exists()


def test_an_unknown_event_is_a_400_on_event(client):
    response = register(client, attendee("no-such-event"))

    assert response.status_code == 400
    assert list(response.json()) == ["event"]
    assert not OutboxMessage.objects.exists()


def test_status_and_other_read_only_fields_cannot_be_set(client, event):
    response = register(client, attendee(status="confirmed", id=str(uuid.uuid4()), price="0.00"))

    assert response.status_code == 400
    assert {"status", "id", "price"} <= set(response.json())
    assert not Registration.objects.exists()


# --- refusals ----------------------------------------------------------------------------------------


def test_a_sold_out_event_is_a_409(client):
    event = make_event(slug="tiny", capacity=1)
    assert register(client, attendee("tiny")).status_code == 202

    response = register(client, attendee("tiny", email="grace@example.com"))

    assert response.status_code == 409
    assert response.json()["code"] == "sold_out"
    assert response.json()["detail"]
    event.refresh_from_db()
    assert event.seats_taken == 1


@pytest.mark.parametrize(
    "window",
    [
        {"registration_closes_at": timezone.now() - dt.timedelta(hours=1)},
        {"registration_opens_at": timezone.now() + dt.timedelta(days=1)},
    ],
    ids=["closed", "not-open-yet"],
)
def test_registering_outside_the_window_is_a_409_closed(client, window):
    make_event(slug="window", **window)

    response = register(client, attendee("window"))

    assert response.status_code == 409
    assert response.json()["code"] == "closed"
    assert not Registration.objects.exists()


def test_registering_twice_is_a_409_whatever_the_case_of_the_email(client, event):
    assert register(client, attendee(email="Ada@Example.com")).status_code == 202

    response = register(client, attendee(email="ada@EXAMPLE.COM"))

    assert response.status_code == 409
    assert response.json()["code"] == "already_registered"
    assert Registration.objects.count() == 1


def test_the_already_registered_refusal_tells_nothing_of_the_address_or_its_registration(client, event):
    first = register(client, attendee(email="ada@example.com", first_name="Augusta")).json()

    body = register(client, attendee(email="ada@example.com")).json()

    assert set(body) == {"code", "detail"}
    assert body["code"] == "already_registered"
    for secret in ("ada@example.com", "ada", "Augusta", "Lovelace", first["id"], "pending", event.name):
        assert secret.lower() not in body["detail"].lower()
    # and it still tells a genuine attendee what to do
    assert "inbox" in body["detail"] and "organiser" in body["detail"]


# --- rate limits (the same limits across processes: test_api_rate_limits.py) ---------------------------


def test_an_address_gets_a_limited_number_of_registrations_then_a_429(client, event, settings):
    settings.MICE_RATE_LIMIT_REGISTRATIONS = "3/1h"

    accepted = [register(client, attendee(email=f"a{i}@example.com")).status_code for i in range(3)]
    refused = register(client, attendee(email="a4@example.com"))
    elsewhere = register(client, attendee(email="b@example.com"), REMOTE_ADDR="198.51.100.7")

    assert accepted == [202, 202, 202]
    assert refused.status_code == 429
    retry_after = int(refused["Retry-After"])
    assert 3500 < retry_after <= 3600
    assert refused.json() == {
        "code": "rate_limited",
        "detail": f"Too many registrations from your network address. Try again in {retry_after} seconds.",
    }
    assert elsewhere.status_code == 202
    assert set(Registration.objects.values_list("email", flat=True)) == {
        "a0@example.com",
        "a1@example.com",
        "a2@example.com",
        "b@example.com",
    }


def test_refusals_count_too_so_addresses_cannot_be_probed_without_limit(client, event, settings):
    settings.MICE_RATE_LIMIT_REGISTRATIONS = "2/1h"
    register(client, attendee(email="ada@example.com"))

    probe = register(client, attendee(email="ada@example.com"))
    limited = register(client, attendee(email="ada@example.com"))

    assert (probe.status_code, limited.status_code) == (409, 429)
    assert limited.json()["code"] == "rate_limited"


def test_invalid_input_is_not_counted(client, event, settings):
    settings.MICE_RATE_LIMIT_REGISTRATIONS = "1/1h"

    invalid = [register(client, attendee(email="not-an-address")).status_code for _ in range(3)]

    assert invalid == [400, 400, 400]
    assert register(client, attendee()).status_code == 202


def test_requests_the_service_refuses_as_bad_input_are_not_counted(client, event, settings):
    settings.MICE_RATE_LIMIT_REGISTRATIONS = "1/1h"

    unknown = [register(client, attendee("no-such-event")).status_code for _ in range(3)]
    no_token = register(client, attendee(payment_token="")).status_code

    assert (unknown, no_token) == ([400, 400, 400], 400)
    assert register(client, attendee()).status_code == 202


def test_the_same_key_sent_again_with_another_body_is_not_counted(client, event, settings):
    settings.MICE_RATE_LIMIT_REGISTRATIONS = "2/1h"
    register(client, attendee(), key="k")

    reused = [register(client, attendee(first_name="Other"), key="k").status_code for _ in range(3)]

    assert reused == [422, 422, 422]
    assert register(client, attendee(email="grace@example.com")).status_code == 202


def test_replays_with_the_same_idempotency_key_are_not_counted_nor_refused(client, event, settings):
    settings.MICE_RATE_LIMIT_REGISTRATIONS = "2/1h"
    key = str(uuid.uuid4())
    first = register(client, attendee(), key=key)

    replays = [register(client, attendee(), key=key) for _ in range(5)]
    second = register(client, attendee(email="grace@example.com"))
    limited = register(client, attendee(email="hopper@example.com"), key="fresh-key")
    replay_while_limited = register(client, attendee(), key=key)

    assert first.status_code == second.status_code == 202
    assert {(r.status_code, r["Idempotent-Replayed"]) for r in replays} == {(202, "true")}
    assert limited.status_code == 429
    assert (replay_while_limited.status_code, replay_while_limited.json()) == (202, first.json())
    # The 429 did not use its key up: once the window is over, the same key registers.
    assert not IdempotencyRecord.objects.filter(key="api:fresh-key").exists()
    assert Registration.objects.count() == 2


def test_a_forwarded_for_header_is_ignored_when_no_proxy_is_trusted(client, event, settings):
    settings.MICE_RATE_LIMIT_REGISTRATIONS = "1/1h"

    first = register(client, attendee(email="a@example.com"), HTTP_X_FORWARDED_FOR="203.0.113.1")
    forged = register(client, attendee(email="b@example.com"), HTTP_X_FORWARDED_FOR="203.0.113.2")

    assert (first.status_code, forged.status_code) == (202, 429)


def test_behind_trusted_proxies_the_address_they_forwarded_is_the_client(client, event, settings):
    settings.MICE_RATE_LIMIT_REGISTRATIONS = "1/1h"
    settings.MICE_TRUSTED_PROXIES = 1
    proxy = {"REMOTE_ADDR": "10.0.0.5"}

    first = register(client, attendee(email="a@example.com"), HTTP_X_FORWARDED_FOR="198.51.100.1", **proxy)
    # The client can put anything in the header; only the entry our proxy appended is believed.
    forged = register(
        client, attendee(email="b@example.com"), HTTP_X_FORWARDED_FOR="203.0.113.9, 198.51.100.1", **proxy
    )
    other_client = register(client, attendee(email="c@example.com"), HTTP_X_FORWARDED_FOR="198.51.100.2", **proxy)

    assert (first.status_code, forged.status_code, other_client.status_code) == (202, 429, 202)


def test_after_a_cancellation_the_same_email_may_register_again(client, event):
    first = register(client, attendee()).json()
    registration_cancel(registration_id=first["id"], reason="changed_mind")

    assert register(client, attendee()).status_code == 202


# --- idempotency -------------------------------------------------------------------------------------


def test_the_same_key_and_body_replay_the_first_answer_and_create_nothing(client, event):
    key = str(uuid.uuid4())
    first = register(client, attendee(), key=key)

    again = register(client, attendee(), key=key)

    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == first.json()
    assert again["Location"] == first["Location"]
    assert again["Idempotent-Replayed"] == "true"
    assert Registration.objects.count() == 1
    assert OutboxMessage.objects.filter(event_type="registration.created").count() == 1
    event.refresh_from_db()
    assert event.seats_taken == 1


def test_the_same_body_in_another_order_or_with_defaults_spelled_out_is_the_same_request(client):
    make_event(slug="meetup", price=Decimal("0.00"))
    body = attendee("meetup")
    del body["payment_token"]
    first = register(client, body, key="k-1")

    reordered = dict(reversed(list({**body, "payment_token": ""}.items())))
    again = register(client, reordered, key="k-1")

    assert again.status_code == 202 and again.json() == first.json()
    assert Registration.objects.count() == 1


def test_the_same_key_with_another_body_is_a_422(client, event):
    register(client, attendee(), key="key-1")

    response = register(client, attendee(email="grace@example.com"), key="key-1")

    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert Registration.objects.count() == 1


def test_a_refusal_is_replayed_too(client):
    make_event(slug="tiny", capacity=1)
    register(client, attendee("tiny", email="first@example.com"))
    refused = register(client, attendee("tiny"), key="late")

    again = register(client, attendee("tiny"), key="late")

    assert (refused.status_code, again.status_code) == (409, 409)
    assert again.json() == refused.json()
    assert refused.json()["code"] == "sold_out"
    assert again["Idempotent-Replayed"] == "true"


def test_a_400_does_not_use_the_key_up(client, event):
    body = attendee()
    del body["payment_token"]
    assert register(client, body, key="retry-me").status_code == 400

    response = register(client, attendee(), key="retry-me")

    assert response.status_code == 202
    assert "Idempotent-Replayed" not in response


def test_keys_are_kept_24_hours(client, event):
    first = register(client, attendee(), key="old-key").json()
    IdempotencyRecord.objects.update(created_at=timezone.now() - dt.timedelta(hours=25))
    registration_cancel(registration_id=first["id"], reason="test")

    response = register(client, attendee(), key="old-key")

    assert response.status_code == 202
    assert response.json()["id"] != first["id"]


def test_keys_are_namespaced_for_the_api(client, event):
    register(client, attendee(), key="k")

    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["api:k"]


@pytest.mark.parametrize("key", ["", "x" * 256, "with space", "tab\there", "caf\u00e9"])
def test_an_invalid_idempotency_key_is_a_400(client, event, key):
    response = client.post(URL, attendee(), format="json", HTTP_IDEMPOTENCY_KEY=key)

    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()
    assert not Registration.objects.exists()


def test_a_255_character_key_is_fine(client, event):
    assert register(client, attendee(), key="k" * 255).status_code == 202


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_with_one_key_create_one_registration():
    make_event(slug="pycon-2027", capacity=10)
    barrier = threading.Barrier(4)
    answers = []

    def retry():
        try:
            barrier.wait()
            response = register(APIClient(), attendee(), key="same-click")
            answers.append((response.status_code, response.json()["id"]))
        finally:
            connection.close()

    threads = [threading.Thread(target=retry) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(answers) == 4
    assert {status for status, _ in answers} == {202}
    assert len({registration_id for _, registration_id in answers}) == 1
    assert Registration.objects.count() == 1
    assert Event.objects.get().seats_taken == 1


# --- the status resource -----------------------------------------------------------------------------


def test_a_registration_shows_its_status(client, event):
    created = register(client, attendee()).json()

    response = client.get(created["status_url"])

    assert response.status_code == 200
    body = response.json()
    registration = Registration.objects.get()
    assert body == {
        "id": str(registration.id),
        "event": "pycon-2027",
        "event_name": "PyCon 2027",
        "status": "pending",
        "cancellation_reason": "",
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
        "invoice": None,
    }
    assert dt.datetime.fromisoformat(body["created_at"]) == registration.created_at


def test_a_cancelled_registration_says_why(client, event):
    created = register(client, attendee()).json()
    registration_cancel(registration_id=created["id"], reason="payment_failed:card_declined")

    body = client.get(created["status_url"]).json()

    assert (body["status"], body["cancellation_reason"]) == ("cancelled", "payment_failed:card_declined")


@pytest.mark.parametrize("registration_id", [str(uuid.uuid4()), "not-a-uuid", "%00", "1" * 1000, "%F0%9F%98%80"])
def test_an_unknown_or_malformed_registration_id_is_a_json_404(client, registration_id):
    response = client.get(f"{URL}{registration_id}/")

    assert response.status_code == 404
    assert response.json() == {"detail": "No such registration."}


# --- schema and docs ---------------------------------------------------------------------------------


def test_the_openapi_schema_documents_the_registration_endpoints(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    create = schema["paths"]["/api/registrations/"]["post"]
    assert {"202", "400", "409", "422", "429"} <= set(create["responses"])
    assert "Retry-After" in create["responses"]["429"]["headers"]
    assert "already_registered" in create["responses"]["409"]["description"]
    assert "Idempotency-Key" in [p["name"] for p in create["parameters"] if p["in"] == "header"]
    assert "Location" in create["responses"]["202"]["headers"]
    assert "get" in schema["paths"]["/api/registrations/{registration_id}/"]
    assert {"get", "post"} <= set(schema["paths"]["/api/events/"])
    assert {"get", "patch"} <= set(schema["paths"]["/api/events/{slug}/"])
    assert "seats_left" in schema["components"]["schemas"]["Event"]["properties"]


def test_the_docs_page_serves_swagger_ui_from_our_own_static_files(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
    assert "/api/schema/" in page
    for cdn in ("cdn.jsdelivr.net", "unpkg.com", "cdnjs", "https://", "http://"):
        assert cdn not in page


def test_the_attendee_cancels_through_the_api_and_the_seat_is_released(client):
    event = make_event(capacity=1)
    created = register(client, attendee(event.slug)).json()

    answer = client.post(f"/api/registrations/{created['id']}/cancel/")
    again = client.post(f"/api/registrations/{created['id']}/cancel/")

    assert answer.status_code == 200
    assert (answer.json()["status"], answer.json()["cancellation_reason"]) == ("cancelled", "cancelled_by_attendee")
    assert again.status_code == 200 and again.json() == answer.json()
    assert Event.objects.get(pk=event.pk).seats_left == 1
    (cancelled,) = OutboxMessage.objects.filter(event_type="registration.cancelled")
    # caused by the saga's latest event so far (its payment deadline is still held back, so not that)
    created_row = OutboxMessage.objects.get(event_type="registration.created")
    assert cancelled.envelope["causationid"] == str(created_row.event_id)


def test_cancelling_an_unknown_or_malformed_id_is_a_json_404(client):
    for registration_id in (uuid.uuid4(), "not-a-uuid"):
        answer = client.post(f"/api/registrations/{registration_id}/cancel/")
        assert answer.status_code == 404
        assert answer.json()["detail"]
