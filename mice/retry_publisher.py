"""Each worker process's publisher of retries: one confirming connection per process, one publish at a time."""

from __future__ import annotations

import os
import threading
from typing import Any

from amqp import Message

from mice.publisher import BrokerUnavailable, ConfirmingPublisher, PublishOutcome
from mice.topology import RETRY

_publishers: dict[int, ConfirmingPublisher] = {}
_publishers_lock = threading.Lock()


def retry_publisher(broker_url: str) -> _LockedPublisher:
    """This process's publisher for retries: made in the process itself (never inherited across a fork)."""
    with _publishers_lock:
        publisher = _publishers.get(os.getpid())
        if publisher is None:
            _publishers.clear()
            # No heartbeat: a worker child does not read its publishing connection while idle, so the broker
            # would close it; a dead connection still fails within the confirm timeout.
            publisher = _publishers[os.getpid()] = ConfirmingPublisher(broker_url, exchange=RETRY.name, heartbeat=0)
    return _LockedPublisher(publisher)


class _LockedPublisher:
    """One publish at a time per process (a threads pool shares the publisher), reconnecting once if needed."""

    def __init__(self, publisher: ConfirmingPublisher) -> None:
        self.publisher = publisher

    def publish(self, messages: list[tuple[Any, str, Message]]) -> PublishOutcome:
        with _publishers_lock:
            for last_try in (False, True):
                try:
                    if not self.publisher.connected:
                        self.publisher.connect()
                    else:
                        self.publisher.keepalive()
                    return self.publisher.publish(messages)
                except BrokerUnavailable:
                    if last_try:  # a connection that died while idle gets one fresh try
                        raise
            raise AssertionError("unreachable")
