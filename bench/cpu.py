"""CPU seconds used by sets of processes (a server, its workers, PostgreSQL backends) while a benchmark runs."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")

# (pid, /proc/<pid>/stat as [comm, state, ppid, pgrp, ...]: index i is field i + 2 of proc(5)) -> in the set?
ProcMatch = Callable[[int, list[str]], bool]


def proc_stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return [text[text.index("(") + 1 : text.rindex(")")], *text[text.rindex(")") + 2 :].split()]


def all_stats() -> dict[int, list[str]]:
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := proc_stat(int(entry.name))) is not None:
            stats[int(entry.name)] = fields
    return stats


def children_of(pid: int) -> list[int]:
    return [child for child, fields in all_stats().items() if fields[2] == str(pid)]


def in_group(pgid: int) -> ProcMatch:
    return lambda pid, fields: fields[3] == str(pgid)


def named(comm: str) -> ProcMatch:
    return lambda pid, fields: fields[0] == comm


def this_process() -> ProcMatch:
    me = os.getpid()
    return lambda pid, fields: pid == me


def process_and_children(parent: int) -> ProcMatch:
    return lambda pid, fields: parent in (pid, int(fields[2]))


def backends_of(database: str) -> ProcMatch:
    """PostgreSQL backends connected to `database` (their title: "postgres: 15/main: user dbname host(port) ...")."""
    marker = f" {database} ".encode()

    def match(pid: int, fields: list[str]) -> bool:
        if fields[0] != "postgres":
            return False
        try:
            return marker in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False

    return match


def machine_busy() -> float:
    """CPU seconds spent by the whole machine (all cores, neither idle nor iowait) since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / CLK_TCK  # guest time (fields 9-10) is already counted in user


class CpuProbe:
    """CPU seconds used between begin() and end() by each named set of processes, and by the whole machine.

    The processes are sampled twice a second, so a process that exits in the window (a PostgreSQL backend
    replaced after DATABASE_CONN_MAX_AGE, a prefork child) still counts up to its last sample, and one that
    starts in it counts from its start.
    """

    def __init__(self, sets: dict[str, ProcMatch]) -> None:
        self.sets = sets
        self.start: dict[str, dict[int, float]] = {}
        self.last: dict[str, dict[int, float]] = {}
        self.start_machine = 0.0
        self.stop = threading.Event()
        self.sampler: threading.Thread | None = None

    def _scan(self) -> dict[str, dict[int, float]]:
        stats = all_stats()
        return {
            name: {pid: (int(f[12]) + int(f[13])) / CLK_TCK for pid, f in stats.items() if match(pid, f)}
            for name, match in self.sets.items()
        }

    def _sample(self) -> None:
        for name, now in self._scan().items():
            self.last.setdefault(name, {}).update(now)

    def _loop(self) -> None:
        while not self.stop.wait(0.5):
            self._sample()

    def begin(self) -> None:
        self.start = self._scan()
        self.last = {name: dict(pids) for name, pids in self.start.items()}
        self.start_machine = machine_busy()
        self.sampler = threading.Thread(target=self._loop, name="cpu-sampler", daemon=True)
        self.sampler.start()

    def end(self) -> dict[str, float]:
        """Seconds of CPU per set, and under "machine" the whole machine's (anything else running counts there)."""
        machine = machine_busy() - self.start_machine
        self.stop.set()
        if self.sampler is not None:
            self.sampler.join()
        self._sample()
        used = {
            name: sum(max(0.0, cpu - self.start.get(name, {}).get(pid, 0.0)) for pid, cpu in last.items())
            for name, last in self.last.items()
        }
        used["machine"] = machine
        return used
