"""Rate limits through the real gunicorn: the counters are shared by every worker process of every server.

Two gunicorn servers with two worker processes each run against the test database, and concurrent
requests are spread over both: a limit kept in process memory would let each process grant it again.
"""

import base64
import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission, User

from registrations.models import Event, Registration
from tests.factories import make_event

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-test-password"


def call(url, *, method="GET", body=None, headers=None):
    """(status, headers, JSON body) of one request on a connection of its own."""
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


def concurrently(count, attempt):
    """Run attempt(i) for i in range(count) on `count` threads released together."""
    barrier = threading.Barrier(count)

    def run(i):
        barrier.wait()
        return attempt(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def assert_rate_limited(answer, *, period):
    status, headers, body = answer
    assert status == 429
    assert headers["Content-Type"] == "application/json"
    assert 1 <= int(headers["Retry-After"]) <= period
    assert body["code"] == "rate_limited"
    assert f"{headers['Retry-After']} seconds" in body["detail"]  # people are told when, too


def test_the_registration_limit_holds_across_worker_processes_and_servers(system):
    # given: a free event with plenty of seats, and 5 registrations an hour per address
    event = make_event(capacity=100, price=Decimal("0"))
    servers = [system.web(workers=2, MICE_RATE_LIMIT_REGISTRATIONS="5/1h") for _ in range(2)]

    # when: one address sends 12 registrations at once, over both servers, each forging a new X-Forwarded-For
    def register(i):
        body = {"event": event.slug, "first_name": "Bot", "last_name": str(i), "email": f"bot{i}@example.com"}
        headers = {"X-Forwarded-For": f"203.0.113.{i}"}
        return call(f"{servers[i % 2]}/api/registrations/", method="POST", body=body, headers=headers)

    answers = concurrently(12, register)

    # then: 5 seats taken, 7 told to come back later
    assert sorted(status for status, _, _ in answers) == [202] * 5 + [429] * 7, [a[2] for a in answers]
    for answer in answers:
        if answer[0] == 429:
            assert_rate_limited(answer, period=3600)
    assert Registration.objects.count() == 5
    assert Event.objects.get(pk=event.pk).seats_taken == 5


def test_password_guessing_over_basic_auth_is_limited_across_worker_processes_and_servers(system):
    # given: an organizer, and 4 failed sign-ins per 15 minutes per address
    organizer = User.objects.create_user("organizer", password=PASSWORD, is_staff=True)
    organizer.user_permissions.set(Permission.objects.filter(codename="add_event"))
    servers = [system.web(workers=2, MICE_RATE_LIMIT_LOGIN_FAILURES="4/15m") for _ in range(2)]

    def basic(password):
        return {"Authorization": "Basic " + base64.b64encode(f"organizer:{password}".encode()).decode()}

    # when: 10 guesses at once over both servers
    answers = concurrently(
        10, lambda i: call(f"{servers[i % 2]}/api/events/", method="POST", body={}, headers=basic(f"guess-{i}"))
    )

    # then: exactly 4 were checked (401), the rest refused unchecked (429)
    assert sorted(status for status, _, _ in answers) == [401] * 4 + [429] * 6, [a[2] for a in answers]
    for answer in answers:
        if answer[0] == 429:
            assert_rate_limited(answer, period=900)
    # and even the right password is refused from this address until the window ends
    right = call(f"{servers[0]}/api/events/", method="POST", body={}, headers=basic(PASSWORD))
    assert_rate_limited(right, period=900)
