"""Test helpers for the real RabbitMQ: a throwaway vhost per test session, queue inspection, stop/start."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
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


class BlackHoleProxy:
    """A TCP proxy to RabbitMQ that can stop forwarding while keeping every connection open.

    What a half-open connection, a hung broker or a dropped network path looks like to a client: writes
    still succeed (the proxy keeps reading and drops the bytes), and nothing ever comes back.
    """

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 5672)) -> None:
        self.target = target
        self.swallowing = False
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._sockets: list[socket.socket] = [self._server]
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, broker_url: str) -> str:
        """`broker_url` (amqp://user:pass@host:port/vhost) through this proxy."""
        scheme, rest = broker_url.split("://", 1)
        credentials, location = rest.rsplit("@", 1)
        vhost = location.split("/", 1)[1] if "/" in location else ""
        return f"{scheme}://{credentials}@127.0.0.1:{self.port}/{vhost}"

    def swallow(self) -> None:
        """From now on, forward nothing in either direction."""
        self.swallowing = True

    def close(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if not self.swallowing:
                    sink.sendall(data)
        except OSError:
            pass


@contextlib.contextmanager
def black_hole_proxy() -> Iterator[BlackHoleProxy]:
    proxy = BlackHoleProxy()
    try:
        yield proxy
    finally:
        proxy.close()


@contextlib.contextmanager
def memory_alarm() -> Iterator[None]:
    """RabbitMQ's memory alarm raised (every publisher blocked), and the watermark restored whatever happens."""
    before = rabbitmqctl("eval", "vm_memory_monitor:get_vm_memory_high_watermark().").strip()
    rabbitmqctl("set_vm_memory_high_watermark", "0")
    try:
        yield
    finally:
        if before.startswith("{absolute"):
            rabbitmqctl("set_vm_memory_high_watermark", "absolute", before.strip("{}").split(",")[1].strip())
        else:
            rabbitmqctl("set_vm_memory_high_watermark", before or "0.4")
