"""Celery task messages (protocol 2) built without Celery's producer, for the relay's pipelined publishing."""

from __future__ import annotations

import json
import uuid
from typing import Any

from amqp import Message

from mice.consumers import ATTEMPT_HEADER

# Deterministic task ids: publishing the same outbox row twice gives the same id, so the
# dead-letter recorder can tell a re-published copy from a new publication (a replay).
_TASK_ID_NAMESPACE = uuid.UUID("6f1c0a52-3b1e-4c1d-9a51-5a8f0f1f2a10")


def task_id_for(outbox_id: int, handler: str) -> str:
    return str(uuid.uuid5(_TASK_ID_NAMESPACE, f"{outbox_id}:{handler}"))


def task_message(*, outbox_id: int, handler: str, envelope: dict[str, Any], origin: str) -> Message:
    """One persistent Celery task message that runs `handler` with the envelope as its argument."""
    task_id = task_id_for(outbox_id, handler)
    headers = {
        "lang": "py",
        "task": handler,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": f"({envelope.get('type')} {envelope.get('id')})",
        "kwargsrepr": "{}",
        "origin": origin,
        "ignore_result": True,
        ATTEMPT_HEADER: 1,
        "mice_outbox_id": outbox_id,
        "mice_event_id": envelope.get("id"),
        "mice_event_type": envelope.get("type"),
        "mice_correlation_id": envelope.get("correlationid"),
    }
    body = json.dumps([[envelope], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
    # py-amqp drops `headers=`: headers must go in as application_headers, or the worker discards
    # the message as unknown (see FIELD-NOTES).
    return Message(
        body,
        content_type="application/json",
        content_encoding="utf-8",
        delivery_mode=2,
        correlation_id=task_id,
        message_id=task_id,
        application_headers=headers,
    )
