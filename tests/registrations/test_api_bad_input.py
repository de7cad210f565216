"""Hostile and malformed input: always a 4xx with a JSON body, never a 500, and nothing created."""

import base64
import json
import random
import string

import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.test import APIClient

from mice.models import OutboxMessage
from registrations.models import Event, IdempotencyRecord, Registration
from tests.factories import make_event

pytestmark = pytest.mark.django_db

URL = "/api/registrations/"
VALID = {
    "event": "pycon-2027",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "email": "ada@example.com",
    "company": "Analytical Engines",
    "payment_token": "tok_visa",
}
LONG = "x" * 10_000


@pytest.fixture
def client():
    # raise_request_exception=False: a server error comes back as a 500 response to assert on.
    return APIClient(raise_request_exception=False)


@pytest.fixture
def event():
    return make_event(slug="pycon-2027", capacity=10)


def with_(**changes):
    return {**VALID, **changes}


def without(*fields):
    return {k: v for k, v in VALID.items() if k not in fields}


def post_raw(client, body, content_type="application/json", **headers):
    """Send exactly these bytes; text is JSON-encoded with ASCII escapes, so lone surrogates survive the trip."""
    if not isinstance(body, bytes):
        body = json.dumps(body, ensure_ascii=True).encode()
    return client.generic("POST", URL, body, content_type=content_type, **headers)


def assert_refused_without_trace(response):
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json")
    assert isinstance(json.loads(response.content), dict)
    assert not Registration.objects.exists()
    assert not OutboxMessage.objects.exists()
    assert not IdempotencyRecord.objects.exists()
    assert Event.objects.get().seats_taken == 0


BAD_BODIES = {
    # missing and empty
    "empty object": {},
    "no event": without("event"),
    "no first_name": without("first_name"),
    "no last_name": without("last_name"),
    "no email": without("email"),
    "blank first_name": with_(first_name=""),
    "whitespace last_name": with_(last_name="   \t "),
    "blank email": with_(email=""),
    # wrong types
    "number name": with_(first_name=42),
    "float name": with_(first_name=1e308),
    "bool name": with_(last_name=True),
    "number event": with_(event=7),
    "number email": with_(email=12345),
    "list name": with_(first_name=["Ada"]),
    "object name": with_(first_name={"text": "Ada"}),
    "object event": with_(event={"slug": "pycon-2027"}),
    "list token": with_(payment_token=["tok_visa"]),
    "number token": with_(payment_token=4242424242424242),
    # nulls
    "null event": with_(event=None),
    "null first_name": with_(first_name=None),
    "null email": with_(email=None),
    "null company": with_(company=None),
    "null token": with_(payment_token=None),
    # not an object
    "list body": [VALID],
    "string body": "ada@example.com",
    "number body": 42,
    "null body": None,
    "true body": True,
    "nested body": {"registration": VALID},
    # too long
    "long first_name": with_(first_name=LONG),
    "long last_name": with_(last_name="y" * 101),
    "long company": with_(company="c" * 201),
    "long email": with_(email="a" * 245 + "@example.com"),
    "long token": with_(payment_token="t" * 101),
    "long event": with_(event=LONG),
    "long unknown key": {**VALID, LONG: 1},
    # odd Unicode: PostgreSQL cannot store NUL; lone surrogates cannot be encoded
    "NUL in name": with_(first_name="Ada\u0000"),
    "NUL only": with_(last_name="\u0000"),
    "NUL in email": with_(email="ada\u0000@example.com"),
    "NUL in company": with_(company="\u0000"),
    "NUL in token": with_(payment_token="tok_\u0000visa"),
    "NUL in event": with_(event="pycon\u00002027"),
    "lone surrogate name": with_(first_name="\ud800"),
    "lone low surrogate": with_(last_name="a\udfffb"),
    "surrogate email": with_(email="\ud800@example.com"),
    "surrogate company": with_(company="\udc00"),
    "surrogate key": {**VALID, "\ud800": "x"},
    "NUL key": {**VALID, "\u0000": "x"},
    # control characters and line breaks in one-line texts
    "CRLF in name": with_(first_name="a\r\nb"),
    "LF in name": with_(last_name="Love\nlace"),
    "header injection in company": with_(company="ACME\r\nBcc: victim@example.com"),
    "tab in name": with_(first_name="A\tda"),
    "bell in name": with_(first_name="A\u0007da"),
    "escape in name": with_(last_name="\u001b[31mred"),
    "DEL in name": with_(first_name="Ada\u007f"),
    "C1 control in name": with_(first_name="A\u0085da"),
    "line separator in name": with_(first_name="Ada\u2028Lovelace"),
    "paragraph separator in company": with_(company="A\u2029B"),
    "CRLF in email": with_(email="ada@example.com\r\nBcc: x@example.com"),
    # e-mail addresses
    "not an email": with_(email="ada"),
    "two at signs": with_(email="a@b@example.com"),
    "email with spaces": with_(email="ada lovelace@example.com"),
    # fields a client may not set
    "status": with_(status="confirmed"),
    "seats_left": with_(seats_left=0),
    "price": with_(price="0.00"),
    "id": with_(id="6f2b0a5e-1111-4a4a-9b9b-222233334444"),
    # the event
    "unknown event": with_(event="no-such-event"),
    "event not a slug": with_(event="pycon 2027"),
    "event with path": with_(event="../admin"),
    "paid without token": without("payment_token"),
    "paid with blank token": with_(payment_token=""),
}


@pytest.mark.parametrize("body", list(BAD_BODIES.values()), ids=list(BAD_BODIES))
def test_bad_bodies_are_refused_with_json_and_leave_no_trace(client, event, body):
    response = post_raw(client, body, HTTP_IDEMPOTENCY_KEY="bad-input")

    assert response.status_code == 400, response.content[:500]
    assert_refused_without_trace(response)


BAD_BYTES = {
    "empty body": b"",
    "truncated": b'{"event": "pycon-2027", "first_name": "Ada"',
    "trailing comma": b'{"event": "pycon-2027",}',
    "single quotes": b"{'event': 'pycon-2027'}",
    "bare word": b"hello",
    "NaN": b'{"first_name": NaN}',
    "Infinity": b'{"first_name": Infinity}',
    "invalid UTF-8": b'{"first_name": "\xff\xfe"}',
    "overlong UTF-8": b'{"first_name": "\xc0\xaf"}',
    "raw NUL byte": b'{"first_name": "A\x00da"}',
    "raw newline in string": b'{"first_name": "A\nda"}',
    "UTF-8 BOM": b"\xef\xbb\xbf" + json.dumps(VALID).encode(),
    "UTF-16": json.dumps(VALID).encode("utf-16"),
    "deeply nested arrays": b"[" * 100_000 + b"]" * 100_000,
    "deeply nested objects": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "huge integer": b'{"first_name": ' + b"9" * 5000 + b"}",
    "two documents": json.dumps(VALID).encode() * 2,
}


@pytest.mark.parametrize("raw", list(BAD_BYTES.values()), ids=list(BAD_BYTES))
def test_malformed_json_is_a_400(client, event, raw):
    response = post_raw(client, raw, HTTP_IDEMPOTENCY_KEY="bad-input")

    assert response.status_code == 400, response.content[:500]
    assert_refused_without_trace(response)


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/xml",
        "application/octet-stream",
        "",
    ],
)
def test_a_body_that_is_not_declared_json_is_a_415(client, event, content_type):
    response = post_raw(client, json.dumps(VALID).encode(), content_type=content_type)

    assert response.status_code == 415
    assert_refused_without_trace(response)


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", "latin-1", "utf-16", "rot13", "base64", "no-such-charset"])
def test_json_is_read_as_utf_8_whatever_charset_is_claimed(client, event, charset):
    body = json.dumps(with_(first_name="Zoë"), ensure_ascii=False).encode()

    response = post_raw(client, body, content_type=f"application/json; charset={charset}")

    assert response.status_code == 202, response.content[:500]
    assert Registration.objects.get().first_name == "Zoë"


def test_a_body_over_the_upload_limit_is_a_413(client, event, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = post_raw(client, with_(company="c" * 2000))

    assert response.status_code == 413
    assert_refused_without_trace(response)


@pytest.mark.parametrize(
    "first_name",
    [
        "Zoë",
        "Siobhán",
        "José María",
        "O'Brien-Smith",
        "李",
        "محمد",  # Arabic, right to left
        "\u200fשרה\u200f",  # Hebrew between right-to-left marks
        "Ada 🎉",
        "👩🏽\u200d💻",  # emoji with a skin tone and a zero-width joiner
        "\uff2e\uff41\uff4d\uff45",  # full-width Latin
        "x" * 100,
    ],
)
def test_names_in_any_script_with_emoji_are_accepted(client, event, first_name):
    response = post_raw(client, with_(first_name=first_name, last_name=first_name, company=first_name + " GmbH"))

    assert response.status_code == 202, response.content[:500]
    registration = Registration.objects.get()
    assert (registration.first_name, registration.last_name) == (first_name.strip(), first_name.strip())
    assert client.get(response["Location"]).status_code == 200


def test_surrounding_whitespace_is_trimmed_not_refused(client, event):
    response = post_raw(client, with_(first_name="  Ada\r\n", email=" ada@example.com "))

    assert response.status_code == 202
    registration = Registration.objects.get()
    assert (registration.first_name, registration.email) == ("Ada", "ada@example.com")


@pytest.mark.parametrize(
    "path",
    ["/api/registrations/%00/", "/api/registrations/%ED%A0%80/", "/api/events/%00/", "/api/events/%FF/"],
)
def test_odd_bytes_in_paths_are_json_404s(client, path):
    response = client.get(path)

    assert response.status_code == 404
    assert "detail" in response.json()


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x\u0000"},
        {"name": "\ud800"},
        {"venue": "a\r\nb"},
        {"capacity": None},
        {"capacity": [1]},
        {"capacity": True},
        {"price": {"amount": 1}},
        {"price": 1e400},
        {"price": "1" * 2000},
        {"starts_at": 17},
        {"starts_at": None},
        {"starts_at": "9999-12-31T23:59:59-05:00"},
        {"slug": "\u0000"},
        {"currency": "E\u0000R"},
        ["not", "an", "object"],
        "string",
    ],
)
def test_bad_event_changes_are_400s(client, event, body):
    organizer = User.objects.create_user("organizer", password="pw-organizer", is_staff=True)
    organizer.user_permissions.set(Permission.objects.filter(codename="change_event"))
    client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"organizer:pw-organizer").decode())
    before = Event.objects.values().get()

    response = client.generic(
        "PATCH", f"/api/events/{event.slug}/", json.dumps(body).encode(), content_type="application/json"
    )

    assert response.status_code == 400, response.content[:500]
    assert isinstance(response.json(), dict)
    assert Event.objects.values().get() == before


def test_random_payloads_never_cause_a_server_error(client, event):
    """A quick, seeded fuzz (hypothesis is not a dependency): random shapes and values for every field."""
    rng = random.Random(20261126)
    alphabet = string.printable + "\u0000\ud800\udfff\u2028\u200f\ufeff€李🎉\U0010ffff"

    def text():
        return "".join(rng.choice(alphabet) for _ in range(rng.choice([0, 1, 5, 50, 101, 300])))

    def value(depth=0):
        kind = rng.randrange(9 if depth < 2 else 6)
        if kind == 0:
            return None
        if kind == 1:
            return rng.choice([True, False])
        if kind == 2:
            return rng.choice([0, -1, 2**63, 1.5, -1e308])
        if kind in (3, 4, 5):
            return text()
        if kind == 6:
            return [value(depth + 1) for _ in range(rng.randrange(3))]
        return {text(): value(depth + 1) for _ in range(rng.randrange(3))}

    statuses = set()
    for _ in range(300):
        body = {k: v for k, v in VALID.items() if rng.random() < 0.7}
        for field in rng.sample([*VALID, "status", text()], k=rng.randrange(1, 4)):
            body[field] = value()
        response = post_raw(client, body if rng.random() < 0.95 else value())
        statuses.add(response.status_code)
        assert response.status_code in {202, 400, 409}, (response.status_code, body)
        assert isinstance(json.loads(response.content), dict)
    assert 400 in statuses
