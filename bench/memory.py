"""Resident memory (RSS, and PSS where /proc/<pid>/smaps_rollup is readable) of process trees, sampled in a thread.

A role (web, relay, a worker) is a root process and all its descendants: the gunicorn master and its workers,
the Celery main process and its pool children. A `/bin/sh -c` wrapper (how a Procfile line is run) is not the
application and is left out. RSS counts shared pages (the code a preloaded gunicorn master shares with its
workers, copy-on-write) once per process that maps them, so a role's summed RSS over-states what it costs the
machine; its summed PSS (each shared page divided among the processes sharing it) does not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.cpu import all_stats

WRAPPERS = frozenset({"sh", "dash", "bash"})


def descendants(root: int, stats: dict[int, list[str]]) -> list[int]:
    """root and every process below it, from one /proc scan (stats[pid][2] is the parent pid)."""
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        children.setdefault(int(fields[2]), []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _kib(path: Path, key: str) -> int | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_kib(pid: int) -> int | None:
    return _kib(Path(f"/proc/{pid}/status"), "VmRSS:")


def pss_kib(pid: int) -> int | None:
    """None where the kernel has no smaps_rollup (before 4.14) or does not let us read it."""
    return _kib(Path(f"/proc/{pid}/smaps_rollup"), "Pss:")


@dataclass(frozen=True)
class ProcessMemory:
    pid: int
    name: str
    rss_kib: int
    pss_kib: int | None


@dataclass(frozen=True)
class Sample:
    at: float  # time.time()
    role: str
    processes: tuple[ProcessMemory, ...]

    @property
    def rss_total(self) -> int:
        return sum(p.rss_kib for p in self.processes)

    @property
    def pss_total(self) -> int | None:
        values = [p.pss_kib for p in self.processes]
        return None if not values or any(v is None for v in values) else sum(v for v in values if v is not None)


@dataclass(frozen=True)
class Peak:
    """A role's highest figures over some samples, in MiB: the largest single process and the role's sums."""

    role: str
    samples: int
    processes: int  # the most processes seen at once
    process_rss: float
    process_rss_name: str
    process_pss: float | None
    total_rss: float
    total_pss: float | None

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


class MemoryProbe:
    """Samples each role's tree every `interval` seconds until stop(); peaks over any time window."""

    def __init__(self, roles: dict[str, Callable[[], int | None]], interval: float = 1.0) -> None:
        self.roles = roles  # role -> its root pid now (None: not running)
        self.interval = interval
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pss_available = Path("/proc/self/smaps_rollup").exists()

    def sample(self) -> None:
        stats = all_stats()
        now = time.time()
        for role, root_of in self.roles.items():
            root = root_of()
            if root is None:
                continue
            processes = []
            for pid in descendants(root, stats):
                name = stats[pid][0]
                rss = rss_kib(pid)
                if name in WRAPPERS or rss is None:
                    continue
                processes.append(ProcessMemory(pid, name, rss, pss_kib(pid) if self.pss_available else None))
            if processes:
                self.samples.append(Sample(now, role, tuple(processes)))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> None:
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="memory-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def peaks(self, since: float = 0.0, until: float = float("inf")) -> list[Peak]:
        found = []
        for role in self.roles:
            mine = [s for s in self.samples if s.role == role and since <= s.at <= until]
            if not mine:
                continue
            biggest = max((p for s in mine for p in s.processes), key=lambda p: p.rss_kib)
            pss = [p.pss_kib for s in mine for p in s.processes if p.pss_kib is not None]
            totals_pss = [t for s in mine if (t := s.pss_total) is not None]
            found.append(
                Peak(
                    role=role,
                    samples=len(mine),
                    processes=max(len(s.processes) for s in mine),
                    process_rss=biggest.rss_kib / 1024,
                    process_rss_name=f"{biggest.name} (pid {biggest.pid})",
                    process_pss=max(pss) / 1024 if pss else None,
                    total_rss=max(s.rss_total for s in mine) / 1024,
                    total_pss=max(totals_pss) / 1024 if totals_pss else None,
                )
            )
        return found
