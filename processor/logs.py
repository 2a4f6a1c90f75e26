"""JSON-lines logging on stderr, and the one parser of those lines. stdout belongs to the MultiLang protocol and
is never written here.

A line is ``{"ts": <epoch s>, "level": "INFO", "event": "<name>", **fields}``. The KCL daemon re-logs a child's
stderr line wrapped (``... Received error line from subprocess [{...}] for shard ...``): ``parse_line`` finds
the object in either form, so every reader (demo, benchmark, tests) parses logs one way.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, TextIO

if TYPE_CHECKING:
    from processor.core.dead_letters import DeadLetter

_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}
_threshold = 20
_stream: TextIO | None = None
_DECODER = json.JSONDecoder()
_START = '{"ts"'


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


def log_safely(event: str, level: str = "INFO", **fields: Any) -> bool:
    """``log`` that never raises (a closed or full stderr must not stop a flush); False when the line was lost."""
    try:
        log(event, level, **fields)
        return True
    except Exception:
        return False


def log_dead_letter(dead: DeadLetter, table: str) -> bool:
    """The one ``dead_letter`` line: where the record was, why it is a dead letter, and the table that keeps it."""
    return log_safely(
        "dead_letter",
        level="WARNING",
        shard=dead.position.shard_id,
        sequenceNumber=dead.position.sequence_number,
        subSequenceNumber=dead.position.sub_sequence_number,
        partitionKey=dead.partition_key,
        reasonCode=dead.code,
        reason=dead.reason,
        table=table,
    )


def parse_line(line: str) -> dict[str, Any] | None:
    """The log object in ``line`` (raw, or wrapped by the daemon), or None when the line holds none."""
    start = line.find(_START)
    if start < 0:
        return None
    try:
        record, _ = _DECODER.raw_decode(line, start)
    except ValueError:
        return None
    return record if isinstance(record, dict) and "event" in record else None


def read_lines(path: str | Path) -> Iterator[dict[str, Any]]:
    """Every log object in a file (a missing file has none)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    for line in text.splitlines():
        record = parse_line(line)
        if record is not None:
            yield record
