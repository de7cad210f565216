"""Whether a socket or pipe has something to read, for any file descriptor number.

select.select() cannot watch a descriptor numbered 1024 or more (FD_SETSIZE): a process with many files
open (a relay or worker beside many connections) would fail every loop. poll() has no such limit.
"""

from __future__ import annotations

import select
from collections.abc import Sequence
from typing import Protocol


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


def readable(sources: Sequence[int | _HasFileno], timeout: float) -> list[int]:
    """The file descriptors among `sources` ready to read within `timeout` seconds (0: a look, no wait)."""
    poller = select.poll()
    for source in sources:
        poller.register(source, select.POLLIN | select.POLLPRI)
    # A hang-up or error counts as readable: the read that follows reports it.
    return [fd for fd, _ in poller.poll(max(0.0, timeout) * 1000)]
