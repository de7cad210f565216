"""Fixtures: a private database and RabbitMQ vhost per test run, and the system's processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from tests.broker import throwaway_vhost
from tests.cluster import Cluster, rabbitmq_cluster
from tests.processes import ProcfileProcesses


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """A database of this run's own, so two runs on one machine never share one."""
    from pytest_django.fixtures import _set_suffix_to_test_databases

    _set_suffix_to_test_databases(suffix=str(os.getpid()))


@pytest.fixture(scope="session")
def broker_url() -> Iterator[str]:
    with throwaway_vhost() as url:
        yield url


@pytest.fixture(scope="session")
def database_url(django_db_setup: None) -> str:
    s = connection.settings_dict
    return f"postgres://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture(scope="session")
def static_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """STATIC_ROOT of the gunicorn processes of this test run: never shared with another run."""
    return tmp_path_factory.mktemp("static")


@pytest.fixture
def system(
    database_url: str, broker_url: str, static_root: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[ProcfileProcesses]:
    """Start relays, workers and recorders in a test; all are stopped after it, logs shown on failure."""
    running = ProcfileProcesses(
        database_url=database_url, broker_url=broker_url, log_dir=tmp_path, static_root=static_root
    )
    yield running
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(running.dump_logs())
    running.stop_all()
    running.purge_queues()


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """The local three-node RabbitMQ cluster (scripts/rabbitmq-cluster) with a vhost of this test's own."""
    with rabbitmq_cluster() as running:
        yield running


@pytest.fixture
def cluster_system(
    cluster: Cluster, database_url: str, static_root: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[ProcfileProcesses]:
    """As `system`, with every process given the cluster's broker URL list."""
    running = ProcfileProcesses(
        database_url=database_url, broker_url=cluster.broker_url, log_dir=tmp_path, static_root=static_root
    )
    yield running
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(running.dump_logs())
    running.stop_all()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The long form of the fault-injection suite (marker `long`) runs only when MICE_FAULTS_LONG=1; otherwise
    it is deselected, never skipped, so a run without it does not count it as passed."""
    if os.environ.get("MICE_FAULTS_LONG") == "1":
        return
    long_form = [item for item in items if item.get_closest_marker("long")]
    if long_form:
        config.hook.pytest_deselected(items=long_form)
        items[:] = [item for item in items if not item.get_closest_marker("long")]


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome: Any = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
