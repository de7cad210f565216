"""A logfmt formatter: one line per record, with the structured fields a handler run carries."""

from __future__ import annotations

import json
import logging

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
