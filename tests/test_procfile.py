"""The Procfile as a Procfile runner uses it: plain commands, found on the PATH of an activated virtualenv."""

import shutil
import urllib.request

import pytest

from tests.processes import ROOT, free_port, wait_until

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
