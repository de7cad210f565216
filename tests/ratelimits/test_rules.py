"""Reading the limits from the settings (environment variables)."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from ratelimits.rules import Rule, Scope, configured_rules, parse_rule


@pytest.mark.parametrize(
    ("text", "limit", "period"),
    [("20/10m", 20, 600), ("10/15m", 10, 900), ("5/30", 5, 30), ("1/1d", 1, 86400), (" 3 / 2h ", 3, 7200)],
)
def test_count_per_period(text, limit, period):
    assert parse_rule(Scope.REGISTRATIONS, text) == Rule(Scope.REGISTRATIONS, limit, period)


def test_off_disables_a_limit():
    assert parse_rule(Scope.LOGIN_FAILURES, "OFF") is None


@pytest.mark.parametrize("text", ["", "20", "20/", "20/0", "twenty/1h", "20/1w", "-1/1h", "20 per hour"])
def test_a_mistyped_limit_names_its_variable(text):
    with pytest.raises(ImproperlyConfigured, match="MICE_RATE_LIMIT_REGISTRATIONS"):
        parse_rule(Scope.REGISTRATIONS, text)


def test_a_negative_number_of_proxies_is_refused(settings):
    settings.MICE_TRUSTED_PROXIES = -1

    with pytest.raises(ImproperlyConfigured, match="MICE_TRUSTED_PROXIES"):
        configured_rules()
