"""`manage.py demo_load`: the demo scripts/run loads, made once however often it runs, and only when asked."""

import os
import re
import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model

from registrations.models import Event, Registration
from tests.processes import ROOT

pytestmark = pytest.mark.django_db(transaction=True)


def demo_load(database_url, password_file, **env):
    return subprocess.run(
        [sys.executable, "manage.py", "demo_load", "--password-file", str(password_file)],
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": database_url,
            **env,
        },
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_run_twice_it_makes_two_upcoming_conferences_and_one_staff_user_whose_printed_password_logs_in(
    database_url, tmp_path, client
):
    first = demo_load(database_url, tmp_path / "password", MICE_DEMO="1")
    second = demo_load(database_url, tmp_path / "password", MICE_DEMO="1")

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    events = Event.objects.order_by("price")
    assert [(e.is_free, e.capacity, e.seats_left > 0, e.starts_at > e.created_at) for e in events] == [
        (True, 5, True, True),
        (False, 5, True, True),
    ]
    assert Registration.objects.count() == 1
    staff = get_user_model().objects.filter(is_staff=True)
    assert staff.count() == 1 and staff.get().is_superuser
    username, password = re.search(r"username (\S+) password (\S+)", second.stdout).groups()
    assert re.search(r"username (\S+) password (\S+)", first.stdout).groups() == (username, password)

    response = client.post("/admin/login/?next=/admin/", {"username": username, "password": password}, follow=True)

    assert response.status_code == 200 and response.wsgi_request.user.is_staff
    assert b"Site administration" in response.content


def test_outside_the_local_demo_mode_it_refuses_and_creates_nothing(database_url, tmp_path):
    refused = demo_load(database_url, tmp_path / "password", MICE_DEMO="")

    assert refused.returncode != 0
    assert "MICE_DEMO=1" in refused.stderr
    assert not Event.objects.exists() and not get_user_model().objects.exists()
    assert not (tmp_path / "password").exists()
