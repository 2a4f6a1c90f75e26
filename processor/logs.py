"""JSON-lines logging on stderr. stdout belongs to the MultiLang protocol and is never written here."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}
_threshold = 20
_stream: TextIO | None = None


def configure(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Set the minimum level and (for tests) the stream; defaults to the current ``sys.stderr``."""
    global _threshold, _stream
    _threshold = _LEVELS.get(level.upper(), 20)
    _stream = stream


def _default(value: Any) -> Any:
    return str(value)


def log(event: str, level: str = "INFO", **fields: Any) -> None:
    """Write one JSON object per line: ``{"ts":..., "level":..., "event":..., **fields}``."""
    if _LEVELS.get(level, 20) < _threshold:
        return
    record = {"ts": round(time.time(), 3), "level": level, "event": event, **fields}
    stream = _stream or sys.stderr
    stream.write(json.dumps(record, default=_default, separators=(",", ":")) + "\n")
    stream.flush()
