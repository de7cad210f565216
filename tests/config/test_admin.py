"""The admin login: failed sign-ins are limited per client address, like HTTP Basic on the API."""

import re

import pytest
from django.contrib.auth.models import User

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"
PASSWORD = "a-long-test-password"


@pytest.fixture
def staff():
    return User.objects.create_user("organizer", password=PASSWORD, is_staff=True)


def errors(response):
    notes = re.findall(r'<p class="errornote">(.*?)</p>', response.content.decode(), re.S)
    return [re.sub(r"\s+", " ", note).strip() for note in notes]


def sign_in(client, password, **extra):
    return client.post(LOGIN, {"username": "organizer", "password": password}, **extra)


def test_failed_admin_sign_ins_are_limited_per_address_then_429_even_with_the_right_password(client, staff, settings):
    settings.MICE_RATE_LIMIT_LOGIN_FAILURES = "3/15m"

    guesses = [sign_in(client, f"guess-{i}") for i in range(3)]
    limited = sign_in(client, PASSWORD)
    signed_in_while_limited = "_auth_user_id" in client.session
    elsewhere = sign_in(client, PASSWORD, REMOTE_ADDR="198.51.100.7")

    assert [g.status_code for g in guesses] == [200, 200, 200]
    assert limited.status_code == 429
    assert 800 < int(limited["Retry-After"]) <= 900
    assert errors(limited) == [
        "Too many failed sign-in attempts from your network address. Please try again in 15 minutes."
    ]
    assert not signed_in_while_limited
    assert (elsewhere.status_code, elsewhere["Location"]) == (302, "/admin/")


def test_successful_admin_sign_ins_do_not_count(client, staff, settings):
    settings.MICE_RATE_LIMIT_LOGIN_FAILURES = "1/15m"

    answers = []
    for _ in range(3):
        answers.append(sign_in(client, PASSWORD).status_code)
        client.logout()

    assert answers == [302, 302, 302]


def test_the_login_page_itself_is_not_limited(client, staff, settings):
    settings.MICE_RATE_LIMIT_LOGIN_FAILURES = "1/15m"
    sign_in(client, "guess")
    sign_in(client, "guess")

    assert client.get(LOGIN).status_code == 200
