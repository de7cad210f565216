"""Test helpers for the real RabbitMQ: a throwaway vhost per test session, queue inspection, stop/start."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator

from kombu import Connection


def rabbitmqctl(*args: str, timeout: float = 60) -> str:
    result = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


@contextlib.contextmanager
def throwaway_vhost(host: str = "127.0.0.1", port: int = 5672) -> Iterator[str]:
    """A fresh vhost, so queues left or declared otherwise by an earlier run never matter; removed after."""
    vhost = f"mice_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{host}:{port}/{vhost}"
    finally:
        with contextlib.suppress(Exception):
            rabbitmqctl("delete_vhost", vhost)


def queue_depth(broker_url: str, queue: str) -> int | None:
    """Ready messages in a queue (None if it does not exist), read passively."""
    from mice.topology import queue_state

    with Connection(broker_url, connect_timeout=5) as connection:
        state = queue_state(connection, queue)
    return None if state is None else state[0]


def broker_answers(host: str = "127.0.0.1", port: int = 5672) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def broker_stopped() -> Iterator[None]:
    """Stop RabbitMQ's application (the port closes) and start it again, whatever happens."""
    rabbitmqctl("stop_app")
    try:
        yield
    finally:
        rabbitmqctl("start_app", timeout=120)
        deadline = time.monotonic() + 60
        while not broker_answers() and time.monotonic() < deadline:
            time.sleep(0.2)
