"""Runs the system's real processes (relay, worker, recorder) as subprocesses for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def procfile_command(name: str) -> str:
    """The command line of one process of the Procfile, as a Procfile runner reads it."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        process, colon, command = line.partition(":")
        if colon and process.strip() == name:
            return command.strip()
    raise AssertionError(f"the Procfile has no {name!r} process")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.1, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")


def _raise(message: str) -> bool:
    raise AssertionError(message)


class Process:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path, cwd: Path = ROOT) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
        self._log = self.log_path.open("wb")
        # Own session: a kill takes the whole process group (a worker and its pool children).
        self.popen = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        wait_until(lambda: text in self.log(), timeout, what=f"{text!r} in the {self.name} log")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group: a crash, not a shutdown."""
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)

    def terminate(self, timeout: float = 20.0) -> int:
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()
        return self.popen.returncode


class ProcfileProcesses:
    """The Procfile's processes (web, relay, worker, recorder), started against the test database and the test
    vhost; stops whatever is left. Tests get one through the `system` fixture."""

    def __init__(self, *, database_url: str, broker_url: str, log_dir: Path, static_root: Path | None = None) -> None:
        static_root = static_root or log_dir / "static"
        self.env = {
            **os.environ,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker_url,
            "MICE_RELAY_POLL_INTERVAL": "0.5",
            "PYTHONUNBUFFERED": "1",
            # The production static files storage (hashed, compressed names), collected once per test run
            # into a folder of this run's own (collect_static); in-process tests keep the plain storage.
            "STATIC_ROOT": str(static_root),
            "TEST_STATIC_COLLECTED": "1",
        }
        self.broker_url = broker_url
        self.log_dir = log_dir
        self.static_root = static_root
        self.processes: list[Process] = []

    def start(self, name: str, argv: list[str], cwd: Path = ROOT, /, **env: str) -> Process:
        process = Process(name, argv, {**self.env, **env}, self.log_dir, cwd)
        self.processes.append(process)
        return process

    def relay(self, **env: str) -> Process:
        return self.start("relay", [sys.executable, "manage.py", "outbox_relay"], **env)

    def recorder(self) -> Process:
        return self.start("recorder", [sys.executable, "manage.py", "dead_letter_recorder"])

    def collect_static(self) -> None:
        """collectstatic once per test run: the web process can only name files the manifest lists."""
        if (self.static_root / "staticfiles.json").exists():
            return
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
            env=self.env,
            cwd=ROOT,
            check=True,
            timeout=300,
        )

    def web(self, *, workers: int = 2, threads: int = 8, **env: str) -> str:
        """gunicorn serving the project, as in production; returns its base URL once it answers."""
        self.collect_static()
        port = free_port()
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
        ]
        return self._answering(self.start("web", argv, **{"DJANGO_SETTINGS_MODULE": "tests.settings", **env}), port)

    def procfile_web(self, **env: str) -> str:
        """The Procfile's own `web:` line, run as a Procfile runner does (a shell, the virtualenv on PATH)."""
        self.collect_static()
        port = free_port()
        argv = ["/bin/sh", "-c", procfile_command("web")]
        return self._answering(self.start("web", argv, PORT=str(port), **env), port)

    def _answering(self, process: Process, port: int) -> str:
        url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                    return bool(response.status == 200)
            except OSError:
                return process.alive() is False and _raise(f"gunicorn exited:\n{process.log()}")

        wait_until(answers, timeout=60, what="gunicorn answering")
        return url

    def worker(
        self, *, concurrency: int = 2, exclude: tuple[str, ...] = (), pool: str = "prefork", **env: str
    ) -> Process:
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-P",
            pool,
            "-c",
            str(concurrency),
            "-n",
            f"test-{uuid.uuid4().hex[:8]}@%h",
            "--without-mingle",
            "--without-gossip",
            "-l",
            "info",
        ]
        if exclude:
            argv += ["-X", ",".join(exclude)]
        process = self.start("worker", argv, **env)
        process.wait_for_log("ready.", timeout=60)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
        self.processes.clear()

    def purge_queues(self) -> None:
        """Empty every queue of the topology, so one test's leftovers never reach the next test's workers."""
        from kombu import Connection

        from mice.topology import all_queues

        with Connection(self.broker_url, connect_timeout=5) as connection:
            for queue in all_queues():
                channel: Any = connection.channel()
                try:
                    channel.queue_purge(queue.name)
                except Exception:  # noqa: BLE001 - a queue a test deleted is simply absent
                    pass
                finally:
                    try:
                        channel.close()
                    except Exception:  # noqa: BLE001
                        pass

    def dump_logs(self) -> str:
        return "\n".join(f"----- {p.name} ({p.log_path}) -----\n{p.log()[-6000:]}" for p in self.processes)
