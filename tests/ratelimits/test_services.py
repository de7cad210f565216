"""Counting hits: windows, their end, taking a hit back, and the table cleaning itself."""

import time

import pytest

from ratelimits.models import Counter
from ratelimits.rules import Scope
from ratelimits.services import rate_limit_hit, rate_limit_release

pytestmark = pytest.mark.django_db


@pytest.fixture
def three_per_hour(settings):
    settings.MICE_RATE_LIMIT_REGISTRATIONS = "3/1h"


def hit(client="192.0.2.1"):
    return rate_limit_hit(scope=Scope.REGISTRATIONS, client=client)


def test_hits_up_to_the_limit_are_allowed_then_refused_until_the_window_ends(three_per_hour):
    verdicts = [hit() for _ in range(5)]

    assert [v.allowed for v in verdicts] == [True, True, True, False, False]
    assert 3595 <= verdicts[-1].retry_after <= 3600
    assert verdicts[-1].retry_after_minutes == 60
    assert hit("192.0.2.2").allowed  # another client has its own count


def test_once_the_window_has_ended_the_next_hit_opens_a_new_one(three_per_hour):
    for _ in range(4):
        hit()
    Counter.objects.update(window_start=time.time() - 3601)

    verdict = hit()

    assert verdict.allowed
    assert Counter.objects.get().hits == 1
    assert verdict.retry_after >= 3599


def test_a_new_window_drops_the_counters_whose_windows_have_ended(three_per_hour):
    hit("192.0.2.1")
    hit("192.0.2.2")
    Counter.objects.filter(client="192.0.2.1").update(window_start=time.time() - 3601)

    hit("192.0.2.3")

    assert sorted(Counter.objects.values_list("client", flat=True)) == ["192.0.2.2", "192.0.2.3"]


def test_a_released_hit_is_taken_back(three_per_hour):
    for _ in range(3):
        rate_limit_release(verdict=hit())

    assert all(hit().allowed for _ in range(3))
    assert not hit().allowed


def test_a_limit_set_to_off_counts_nothing(settings):
    settings.MICE_RATE_LIMIT_REGISTRATIONS = "off"

    assert all(hit().allowed for _ in range(10))
    assert not Counter.objects.exists()
