"""gunicorn's settings file, read by the Procfile's `gunicorn config.wsgi ...` from the working directory.

Prometheus metrics are counted in each worker process and shared through files in a folder private to this
gunicorn (PROMETHEUS_MULTIPROC_DIR): set here, before `--preload` imports the application (and with it
prometheus_client), and removed when gunicorn stops. The command line's options still apply over this file.
"""

import os
import shutil
import tempfile
from typing import Any

# A fresh folder per gunicorn master: counts of an earlier run, or of another server, must never be summed in.
if os.environ.get("MICE_METRICS_DIR_OWNER") != str(os.getpid()):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mice-metrics-web-")
    os.environ["MICE_METRICS_DIR_OWNER"] = str(os.getpid())


def child_exit(server: Any, worker: Any) -> None:
    """A worker ended: its counters stay (they never go back), its live gauges are dropped."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    if os.environ.get("MICE_METRICS_DIR_OWNER") == str(os.getpid()):
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
