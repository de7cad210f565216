"""The configured limits: how many hits per period, per client address, each limit allows."""

from __future__ import annotations

import dataclasses
import enum
import re

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class Scope(enum.StrEnum):
    """What is counted. The value is stored in the counters; each scope has its own setting."""

    REGISTRATIONS = "registrations"  # registration attempts (API and web form together)
    LOGIN_FAILURES = "login_failures"  # failed sign-ins (HTTP Basic on the API and the admin login together)


SETTINGS = {
    Scope.REGISTRATIONS: "MICE_RATE_LIMIT_REGISTRATIONS",
    Scope.LOGIN_FAILURES: "MICE_RATE_LIMIT_LOGIN_FAILURES",
}

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RULE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*([smhd]?)\s*$")


@dataclasses.dataclass(frozen=True)
class Rule:
    scope: Scope
    limit: int  # hits allowed per window
    period: int  # the window's length, seconds


def parse_rule(scope: Scope, text: str) -> Rule | None:
    """`"20/10m"`: 20 hits per 10 minutes (units s, m, h, d; none means seconds). `"off"` disables the limit."""
    if text.strip().lower() == "off":
        return None
    match = _RULE.match(text)
    period = int(match.group(2)) * _UNITS[match.group(3) or "s"] if match else 0
    if match is None or period == 0:
        raise ImproperlyConfigured(
            f'{SETTINGS[scope]}={text!r}: expected "<count>/<period>" such as "20/10m" (units s, m, h, d), or "off"'
        )
    return Rule(scope=scope, limit=int(match.group(1)), period=period)


def configured_rule(scope: Scope) -> Rule | None:
    """The rule in force now; read on each call so that a test may change it."""
    return parse_rule(scope, str(getattr(settings, SETTINGS[scope])))


def configured_rules() -> dict[Scope, Rule | None]:
    trusted = getattr(settings, "MICE_TRUSTED_PROXIES", 0)
    if not isinstance(trusted, int) or trusted < 0:
        raise ImproperlyConfigured(f"MICE_TRUSTED_PROXIES={trusted!r}: expected the number of proxies, 0 or more")
    return {scope: configured_rule(scope) for scope in Scope}
