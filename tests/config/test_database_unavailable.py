"""A database that cannot be reached: a 503 with Retry-After that a client can act on, never a 500."""

import json
import urllib.error
import urllib.request

import pytest

from tests.processes import free_port

pytestmark = pytest.mark.django_db(transaction=True)


def call(url: str, *, data: dict | None = None, accept: str = "application/json") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        url,
        data=json.dumps(data).encode() if data is not None else None,
        headers={"Content-Type": "application/json", "Accept": accept},
        method="POST" if data is not None else "GET",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


@pytest.fixture
def web_without_a_database(system) -> str:
    """gunicorn whose DATABASE_URL names a port where nothing listens: PostgreSQL itself is left alone."""
    return system.web(DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/mice")


def test_the_api_answers_503_with_retry_after_and_a_json_body(web_without_a_database):
    status, headers, body = call(
        f"{web_without_a_database}/api/registrations/",
        data={"event": "any", "first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"},
    )

    assert status == 503, body[:300]
    assert int(headers["retry-after"]) > 0
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["code"] == "database_unavailable"
    assert json.loads(call(f"{web_without_a_database}/api/events/")[2])["code"] == "database_unavailable"


def test_a_page_answers_503_with_retry_after_and_says_to_try_again(web_without_a_database):
    status, headers, body = call(f"{web_without_a_database}/", accept="text/html")

    assert status == 503, body[:300]
    assert int(headers["retry-after"]) > 0
    assert headers["content-type"].startswith("text/html")
    assert "try again" in body.decode().lower()
