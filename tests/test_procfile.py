"""The Procfile as a Procfile runner uses it, and scripts/run, which runs it with the demo for a newcomer."""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.processes import ROOT, free_port, procfile_command, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_honcho_starts_every_process_of_a_deployed_copy_that_has_no_venv_beside_it(system, tmp_path):
    # given: the app deployed elsewhere, as a buildpack does: no .venv in it, the virtualenv on PATH
    app = tmp_path / "app"
    shutil.copytree(
        ROOT,
        app,
        ignore=shutil.ignore_patterns(".venv", ".git", "staticfiles", "var", "__pycache__", ".*_cache", "bench"),
    )
    system.collect_static()
    port = free_port()

    # when
    honcho = system.start("honcho", ["honcho", "start", "-f", "Procfile"], app, PORT=str(port))

    # then: every process runs
    def started(text: str) -> bool:
        assert honcho.alive(), f"honcho stopped:\n{honcho.log()}"
        return text in honcho.log()

    wait_until(lambda: answers(f"http://127.0.0.1:{port}/healthz") or started("\0"), timeout=60, what="web")
    for text in ("relay connected", "ready.", "dead-letter recorder started", "upkeep started"):
        wait_until(lambda text=text: started(text), timeout=60, what=f"{text!r} in the honcho log")
    assert not (app / ".venv").exists()


def running_processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, start time, state) of every process, read from /proc (no ps needed)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        found[int(entry.name)] = (int(fields[1]), fields[19], fields[0])
    return found


def descendants(pid: int) -> dict[int, str]:
    """The processes started under `pid`, by pid, with their start time (so a reused pid is not mistaken)."""
    processes = running_processes()
    family, found = {pid}, {}
    grew = True
    while grew:
        grew = False
        for child, (parent, started, _state) in processes.items():
            if parent in family and child not in family:
                family.add(child)
                found[child] = started
                grew = True
    return found


def still_running(family: dict[int, str]) -> list[int]:
    """Those of `family` still alive: same pid and start time, and not a zombie waiting to be reaped."""
    processes = running_processes()
    return [
        pid
        for pid, started in family.items()
        if pid in processes and processes[pid][1] == started and processes[pid][2] != "Z"
    ]


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def test_scripts_run_loads_the_demo_runs_every_process_and_ctrl_c_stops_them_all(system, database_url, tmp_path):
    # given: a database that does not exist yet, a free port
    database = f"mice_run_{uuid.uuid4().hex[:10]}"
    server = database_url.rsplit("/", 1)[0]
    port = free_port()
    family: dict[int, str] = {}
    try:
        # when: scripts/run as a newcomer runs it (production settings, its own secret key and static files)
        run = system.start(
            "run",
            [str(ROOT / "scripts" / "run")],
            ROOT,
            DJANGO_SETTINGS_MODULE="config.settings",
            DATABASE_URL=f"{server}/{database}",
            PORT=str(port),
            SECRET_KEY="scripts-run-test-" + uuid.uuid4().hex,
            STATIC_ROOT=str(tmp_path / "static"),
            EMAIL_BACKEND="",  # unset: scripts/run's own choice, not the test settings'
            EMAIL_FILE_PATH=str(tmp_path / "mail"),
        )

        # then: it prints the URLs to open, the demo's among them
        def printed(text: str) -> bool:
            assert run.alive() or text in run.log(), f"scripts/run stopped:\n{run.log()}"
            return text in run.log()

        wait_until(lambda: printed("Ctrl-C stops them all"), timeout=300, what="the URLs printed")
        log = run.log()
        site = f"http://127.0.0.1:{port}"
        for path in ("/", "/dashboard/", "/admin/", "/api/docs/"):
            assert f"{site}{path}\n" in log
        status_url = re.search(r"status page of a registration: (\S+)", log).group(1)
        assert re.search(r"username \S+ password \S+", log)

        # every process of the Procfile runs, its lines labelled with its name
        for text in ("relay connected", "ready.", "dead-letter recorder started"):
            wait_until(lambda text=text: printed(text), timeout=120, what=f"{text!r} in the scripts/run log")
        wait_until(lambda: answers(f"{site}/healthz"), timeout=60, what="the web process")
        names = [line.partition(":")[0] for line in (ROOT / "Procfile").read_text().splitlines() if ":" in line]
        assert all(procfile_command(name) for name in names)
        for name in names:
            assert re.search(rf"^\S+ {name}\.1 +\| ", run.log(), re.MULTILINE), f"no line labelled {name}"

        # the site lists the demo's conferences; the demo registration's status page answers
        home = fetch(f"{site}/")
        assert "Demo Summit (paid)" in home and "Demo Meetup (free)" in home
        assert "Demo Meetup (free)" in fetch(status_url)
        # the worker handled the demo registration: its e-mails are files, not lines of the log
        wait_until(lambda: len(list((tmp_path / "mail").glob("*"))) >= 2, timeout=60, what="the demo's e-mails")
        assert "demo.attendee@example.com" not in run.log()

        # when: Ctrl-C, which the terminal sends to the whole foreground process group
        family = descendants(run.pid)
        assert len(family) >= len(names)
        os.killpg(run.pid, signal.SIGINT)

        # then: scripts/run ends, and no process it started is left behind
        run.popen.wait(30)
        wait_until(lambda: not still_running(family), timeout=20, what=f"every child to exit: {still_running(family)}")
        assert "SIGINT received" in run.log()
    finally:
        for pid in still_running(family):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        subprocess.run(
            ["psql", f"{server}/postgres", "-qc", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'],
            check=False,
            timeout=60,
        )
