"""Which client address a request counts against."""

import pytest
from django.test import RequestFactory

from ratelimits.clients import client_address


@pytest.fixture
def rf():
    return RequestFactory()


def test_the_connection_address_by_default_whatever_the_headers_say(rf, settings):
    settings.MICE_TRUSTED_PROXIES = 0
    request = rf.get("/", REMOTE_ADDR="192.0.2.10", HTTP_X_FORWARDED_FOR="203.0.113.1")

    assert client_address(request) == "192.0.2.10"


@pytest.mark.parametrize(
    ("proxies", "forwarded_for", "expected"),
    [
        (1, "198.51.100.1", "198.51.100.1"),
        (1, "203.0.113.9, 198.51.100.1", "198.51.100.1"),  # the client's own entry is not believed
        (2, "203.0.113.9, 198.51.100.1, 10.0.0.1", "198.51.100.1"),
        (2, "198.51.100.1", "198.51.100.1"),  # fewer hops than proxies: the farthest one known
        (1, "", "10.0.0.5"),  # no header: the proxy's own address
        (1, "not-an-address", "10.0.0.5"),
    ],
)
def test_behind_trusted_proxies_the_entry_the_outermost_one_appended(rf, settings, proxies, forwarded_for, expected):
    settings.MICE_TRUSTED_PROXIES = proxies
    request = rf.get("/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR=forwarded_for)

    assert client_address(request) == expected


def test_ipv6_clients_count_per_64_prefix_since_one_host_gets_a_whole_prefix(rf, settings):
    settings.MICE_TRUSTED_PROXIES = 0

    one = client_address(rf.get("/", REMOTE_ADDR="2001:db8:1:2:aaaa::1"))
    same_prefix = client_address(rf.get("/", REMOTE_ADDR="2001:db8:1:2:ffff::9"))
    other_prefix = client_address(rf.get("/", REMOTE_ADDR="2001:db8:1:3::1"))

    assert one == same_prefix == "2001:db8:1:2::/64"
    assert other_prefix != one
