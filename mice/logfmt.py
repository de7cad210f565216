"""Log formatters: logfmt by default, JSON lines when asked; both carry the structured fields of a handler run."""

from __future__ import annotations

import json
import logging
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

_FIRST = ("event_id", "correlation_id", "handler", "attempt", "outcome", "duration_ms")


class LogfmtFormatter(logging.Formatter):
    """`time level logger msg key=value ...`, grep-able by event or correlation id across processes."""

    def format(self, record: logging.LogRecord) -> str:
        fields = dict(getattr(record, "mice", None) or {})
        parts = [
            f"time={self.formatTime(record, '%Y-%m-%dT%H:%M:%S')}.{int(record.msecs):03d}",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"pid={record.process}",
            f"msg={_quote(record.getMessage())}",
        ]
        for key in sorted(fields, key=lambda k: (_FIRST.index(k) if k in _FIRST else len(_FIRST), k)):
            parts.append(f"{key}={_quote(fields[key])}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _quote(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    if text and not any(c in text for c in ' "=\n\t'):
        return text
    return json.dumps(text, ensure_ascii=False)


class JsonLinesFormatter(JsonFormatter):
    """One JSON object per line (LOG_FORMAT=json), for log shippers that index fields rather than grep text.

    The structured fields a call passes as `extra={"mice": {...}}` become top-level keys, so `event_id`,
    `correlation_id` and `handler` are queried the same way whichever process wrote the line. Other
    libraries' extras are left out, as logfmt leaves them out: Celery's task lines carry the task's
    arguments, the whole envelope with the attendee's name and e-mail address.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s")
        renamed = {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"}
        kwargs.setdefault("rename_fields", renamed)
        kwargs.setdefault("json_ensure_ascii", False)
        super().__init__(*args, **kwargs)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """The time as the logfmt lines write it, so the two formats sort and compare alike."""
        return f"{super().formatTime(record, '%Y-%m-%dT%H:%M:%S')}.{int(record.msecs):03d}"

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        for extra in set(record.__dict__) - set(RESERVED_ATTRS):
            log_data.pop(extra, None)
        fields = getattr(record, "mice", None) or {}
        for key, value in fields.items():
            # A field never hides the record's own time, level or message.
            log_data.setdefault(key, value)
        log_data["level"] = record.levelname.lower()
