"""The Celery app (`celery -A config worker`). Its queues come from the topology in mice/topology.py."""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import sys
import tempfile
import time
from typing import Any

import django
import django.db
from celery import Celery
from celery.signals import celeryd_after_setup, celeryd_init, worker_ready, worker_shutdown
from celery.worker.consumer import Consumer as CeleryConsumer
from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
if os.environ.get("MICE_WORKER_METRICS_PORT"):
    # The pool's processes count handler runs in files of a folder private to this worker, which its main
    # process serves (on_worker_ready). Set before anything imports prometheus_client.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mice-metrics-worker-")
    os.environ["MICE_WORKER_METRICS_DIR_OWNER"] = str(os.getpid())
try:
    django.setup()  # handlers are discovered here; the queue list depends on them
except ImproperlyConfigured as error:  # e.g. no SECRET_KEY in production: one line saying what to set
    sys.exit(f"error: {error}")

from mice.metrics import metrics_serve
from mice.routing import routes_declare
from mice.topology import work_queues

log = logging.getLogger("mice.worker")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = work_queues()
app.conf.worker_consumer = "config.celery:Consumer"


_CeleryBlueprint: Any = CeleryConsumer.Blueprint  # a class; the type stubs declare it as an attribute


class Consumer(CeleryConsumer):
    """Celery's consumer without its native delayed delivery.

    Celery turns that on by itself when it sees quorum queues: it declares 28 `celery_delayed_*` queues and
    exchanges, and warns once per queue that the direct exchange `mice.events` cannot take part. This project
    never publishes a Celery ETA or countdown: a retry waits in its handler's own TTL'd queue
    (mice/topology.py) and the saga's timeout in the outbox (`deliver_at`), so there is nothing for it to do.
    """

    class Blueprint(_CeleryBlueprint):
        default_steps = [step for step in _CeleryBlueprint.default_steps if not step.endswith(":DelayedDelivery")]


@celeryd_init.connect
def on_worker_init(sender: str, instance: Any, **kwargs: Any) -> None:
    """With LOG_FORMAT=json every line the worker writes is a JSON object: no start-up banner (as `--quiet`)."""
    from django.conf import settings

    if settings.LOG_FORMAT == "json":
        instance.quiet = True


@celeryd_after_setup.connect
def on_worker_setup(sender: str, instance: Any, **kwargs: Any) -> None:
    """Declare the topology and this code's routes before consuming (so a relay started earlier publishes to
    these handlers too); a queue whose arguments changed is skipped with advice, not fatal.

    Celery logs and ignores an exception raised here, and the worker would then consume without its routes
    recorded: a new handler would miss events. So this retries until the broker and the database answer.
    """
    for attempt in itertools.count(1):
        try:
            with app.connection_for_write() as connection:
                mismatches = routes_declare(connection)
            break
        except Exception as exc:  # noqa: BLE001 - logged and retried: the worker must not start without its routes
            delay = min(30.0, 0.5 * 2 ** min(attempt, 6))
            log.warning("cannot declare routes yet", extra={"mice": {"error": repr(exc), "retry_in_s": delay}})
            django.db.connections.close_all()
            time.sleep(delay)
    for mismatch in mismatches:
        instance.app.amqp.queues.deselect(mismatch.queue)


@worker_ready.connect
def on_worker_ready(**kwargs: Any) -> None:
    """Serve the worker's metrics (every pool process's) on MICE_WORKER_METRICS_PORT, if set."""
    metrics_serve(variable="MICE_WORKER_METRICS_PORT")


@worker_shutdown.connect
def on_worker_shutdown(**kwargs: Any) -> None:
    """Remove the metrics folder this worker made (never one a pool process merely inherited)."""
    if os.environ.get("MICE_WORKER_METRICS_DIR_OWNER") == str(os.getpid()):
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
