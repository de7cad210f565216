"""A gunicorn server of the project (config.wsgi) on a free loopback port, started and stopped for a benchmark."""

from __future__ import annotations

import contextlib
import http.client
import os
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.cpu import children_of
from bench.runtime import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def procfile_web() -> tuple[int, int, tuple[str, ...]]:
    """The Procfile's `web:` line as (workers, threads, its other options), its --bind left out (we pick a port)."""
    from tests.processes import procfile_command

    words = shlex.split(procfile_command("web"))
    workers, threads, options = 1, 1, []
    words = words[words.index("config.wsgi") + 1 :]
    while words:
        word = words.pop(0)
        if word in ("--workers", "-w"):
            workers = int(words.pop(0))
        elif word == "--threads":
            threads = int(words.pop(0))
        elif word in ("--bind", "-b"):
            words.pop(0)
        else:
            options.append(word)
    return workers, threads, tuple(options)


@dataclass
class Gunicorn:
    workers: int
    threads: int
    env: dict[str, str]
    log_dir: Path
    options: tuple[str, ...] = ()  # further command-line options, e.g. the Procfile's --preload
    name: str = ""  # in the log file's name, when several servers of one shape run
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def label(self) -> str:
        kind = "gthread" if self.threads > 1 else "sync"
        return f"gunicorn {self.workers}x{self.threads} {kind}"

    def start(self) -> None:
        self.port = free_port()
        prefix = f"gunicorn-{self.name}-" if self.name else "gunicorn-"
        self.log_path = self.log_dir / f"{prefix}{self.workers}x{self.threads}.log"
        cmd = [
            str(ROOT / ".venv" / "bin" / "gunicorn"),
            "config.wsgi",
            "--workers",
            str(self.workers),
            "--threads",
            str(self.threads),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--no-control-socket",  # the default socket path is shared by every gunicorn on the machine
            "--error-logfile",
            str(self.log_path),
            "--log-level",
            "warning",
            *self.options,
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                cmd, cwd=ROOT, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        while not self.healthy():
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.label} exited with {self.process.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.label} did not answer within 60 s:\n{self.log_tail()}")
            time.sleep(0.1)
        # Every worker is up before the load starts, so imports are not measured.
        deadline = time.monotonic() + 30
        while len(self.pids()) < self.workers + 1 and time.monotonic() < deadline:
            time.sleep(0.1)

    def healthy(self) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                conn.request("GET", "/healthz")
                return conn.getresponse().status == 200
            finally:
                conn.close()
        except OSError:
            return False

    def pids(self) -> list[int]:
        if self.process is None:
            return []
        return [self.process.pid, *children_of(self.process.pid)]

    def log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        pids = self.pids()
        self.process.send_signal(signal.SIGQUIT)  # quick shutdown (SIGTERM would wait for keep-alive clients)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        for pid in pids[1:]:  # workers are gone with their master; make sure
            with contextlib.suppress(OSError):
                os.kill(pid, 0)
                os.kill(pid, signal.SIGKILL)
