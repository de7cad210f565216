"""The Celery app (`celery -A config worker`). Its queues come from the topology in mice/topology.py."""

from __future__ import annotations

import os
import sys
from typing import Any

import django
from celery import Celery
from celery.signals import celeryd_after_setup
from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
try:
    django.setup()  # handlers are discovered here; the queue list depends on them
except ImproperlyConfigured as error:  # e.g. no SECRET_KEY in production: one line saying what to set
    sys.exit(f"error: {error}")

from mice.routing import routes_declare
from mice.topology import work_queues

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = work_queues()


@celeryd_after_setup.connect
def on_worker_setup(sender: str, instance: Any, **kwargs: Any) -> None:
    """Declare the topology and this code's routes before consuming (so a relay started earlier publishes to
    these handlers too); a queue whose arguments changed is skipped with advice, not fatal."""
    with app.connection_for_write() as connection:
        for mismatch in routes_declare(connection):
            instance.app.amqp.queues.deselect(mismatch.queue)
