"""The decoupling benchmark's synchronous view is served only under bench.settings, never by the project."""

import importlib
from collections.abc import Iterator
from typing import Any

import pytest
from django.urls import Resolver404, URLResolver, get_resolver, resolve

from bench.baseline.views import registration_create_synchronously

BASELINE_PATH = "/bench/baseline/registrations/"


def views_routed(urlconf: str) -> Iterator[Any]:
    def walk(patterns: list[Any]) -> Iterator[Any]:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns)
            else:
                yield pattern.callback

    yield from walk(get_resolver(urlconf).url_patterns)


def test_the_benchmark_settings_route_the_baseline_view():
    urlconf = importlib.import_module("bench.settings").ROOT_URLCONF

    assert resolve(BASELINE_PATH, urlconf=urlconf).func is registration_create_synchronously


@pytest.mark.parametrize("settings_module", ["config.settings", "tests.settings"])
def test_production_and_test_settings_route_no_benchmark_view(settings_module):
    urlconf = importlib.import_module(settings_module).ROOT_URLCONF

    with pytest.raises(Resolver404):
        resolve(BASELINE_PATH, urlconf=urlconf)
    routed_from_bench = [view for view in views_routed(urlconf) if view.__module__.startswith("bench.")]
    assert routed_from_bench == []
