"""The broker URL list (CELERY_BROKER_URL, `;`-separated for a cluster) and connecting to a node of it that answers.

kombu's own failover (`Connection("amqp://a;amqp://b")`) tries only two URLs in `connect()` and always
starts again from the first one, however often it was found dead; the processes that manage their own
connection (the relay, the handlers' retry publisher, `mice_topology`, /readyz) use this instead: every
node once, from the one that answered last.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kombu import Connection


def broker_urls(url: str) -> list[str]:
    """The URLs of a `;`-separated list (one URL is a list of one)."""
    urls = [part.strip() for part in url.split(";") if part.strip()]
    if not urls:
        raise ValueError("no broker URL given")
    return urls


def broker_host(url: str) -> str:
    """host:port of a broker URL, without credentials: for logs."""
    connection = Connection(url)
    return f"{connection.hostname}:{connection.port or 5672}"


def broker_connect(urls: Sequence[str], *, first: int = 0, **options: Any) -> tuple[Connection, int]:
    """Connect to the first node that answers, trying each URL once from `urls[first]` on.

    Returns the connected kombu Connection and the index of its URL. Raises the last node's error if none
    answers. `options` are kombu Connection arguments (connect_timeout, heartbeat, transport_options...).
    """
    last_error: BaseException | None = None
    for step in range(len(urls)):
        index = (first + step) % len(urls)
        connection = Connection(urls[index], **options)
        try:
            # One attempt per node: kombu's connect() tries a lone URL twice, two seconds apart.
            connection.ensure_connection(max_retries=0, reraise_as_library_errors=False)
        except connection.connection_errors as exc:
            connection.collect()
            last_error = exc
            continue
        return connection, index
    assert last_error is not None
    raise last_error
