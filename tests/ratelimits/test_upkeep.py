"""Rate limits' upkeep: counters of clients that never came back are dropped once their window ended."""

import time

import pytest

from ratelimits.models import Counter
from ratelimits.rules import Scope
from ratelimits.upkeep import rate_limit_counters_expired

pytestmark = pytest.mark.django_db


def counter(scope, client, age):
    Counter.objects.create(scope=scope, client=client, window_start=time.time() - age, hits=3)


def test_counters_whose_window_ended_are_purged_and_current_ones_kept(settings):
    settings.MICE_RATE_LIMIT_REGISTRATIONS = "20/10m"
    settings.MICE_RATE_LIMIT_LOGIN_FAILURES = "10/1h"
    counter(Scope.REGISTRATIONS, "192.0.2.1", age=11 * 60)
    counter(Scope.REGISTRATIONS, "192.0.2.2", age=9 * 60)
    counter(Scope.LOGIN_FAILURES, "192.0.2.1", age=50 * 60)  # an hour's window: still counting
    counter(Scope.LOGIN_FAILURES, "192.0.2.3", age=2 * 3600)

    assert rate_limit_counters_expired() == 2

    assert set(Counter.objects.values_list("scope", "client")) == {
        ("registrations", "192.0.2.2"),
        ("login_failures", "192.0.2.1"),
    }


def test_every_counter_of_a_limit_turned_off_is_purged(settings):
    settings.MICE_RATE_LIMIT_REGISTRATIONS = "off"
    counter(Scope.REGISTRATIONS, "192.0.2.1", age=1)

    assert rate_limit_counters_expired() == 1
    assert not Counter.objects.exists()
