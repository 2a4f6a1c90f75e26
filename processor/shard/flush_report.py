"""The flush log line: the one contract between the processor and everything that reads its logs.

Every flush writes exactly one JSON line on stderr, ``{"ts":..., "level":"INFO", "event":"flush", ...}``, whose
fields are those of ``FlushReport``. The processor builds the line with ``FlushReport.fields()``; the demo, the
benchmark, the fault scenarios and the tests read it back with ``FlushReport.from_fields`` / ``flush_reports``,
never with a key list of their own. Keys are stable: renaming one is a breaking change (docs/operations.md, "Logs").
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Iterable

from processor.logs import parse_line

EVENT = "flush"
#: log key -> attribute, where they differ (the positions use the MultiLang protocol's camel case)
_KEYS = {"firstSequenceNumber": "first_sequence_number", "lastSequenceNumber": "last_sequence_number"}
_ATTRS = {attr: key for key, attr in _KEYS.items()}


@dataclass(frozen=True)
class FlushReport:
    shard: str
    reason: str  # why the flush happened: full, interval, room, shutdown, shard_end (shard/machine.py, Reason)
    first_sequence_number: str | None
    last_sequence_number: str | None
    records: int = 0  # records the flush covers (every record between first and last)
    distinct_arns: int = 0  # state items the flush had to make durable
    writes: int = 0  # conditional puts DynamoDB accepted
    stale: int = 0  # resources an equal or newer stored version kept out (a failed condition, or ``skipped``)
    ignored: int = 0
    dead_letters: int = 0
    duplicates: int = 0
    superseded: int = 0
    requests: int = 0  # DynamoDB requests, retries included
    retries: int = 0
    throttled: int = 0
    flush_ms: float = 0.0
    millis_behind_latest: int | None = None
    freshness_p50_ms: float | None = None  # approximateArrivalTimestamp -> durable, over the flush's records
    freshness_p99_ms: float | None = None  # (processor.shard.freshness); None when not measured
    skipped: int = 0  # of ``stale``: known stale from the stored-version memory, no request sent
    catalogued: int = 0  # cluster catalogue puts answered (shard/catalog.py: at most one per cluster a minute)

    def fields(self) -> dict[str, Any]:
        """The log line's fields (without ts/level/event)."""
        return {_ATTRS.get(f.name, f.name): getattr(self, f.name) for f in fields(self)}

    def stats(self) -> dict[str, Any]:
        """The counters and timings only (what the metrics sink takes)."""
        return {
            k: v
            for k, v in self.fields().items()
            if k not in ("shard", "reason", "firstSequenceNumber", "lastSequenceNumber")
        }

    @classmethod
    def from_fields(cls, record: dict[str, Any]) -> FlushReport:
        """A parsed ``flush`` log line -> FlushReport (unknown keys ignored, missing counters 0)."""
        known = {f.name for f in fields(cls)}
        values = {_KEYS.get(k, k): v for k, v in record.items() if _KEYS.get(k, k) in known}
        values.setdefault("shard", "?")
        values.setdefault("reason", "?")
        values.setdefault("first_sequence_number", None)
        values.setdefault("last_sequence_number", None)
        return cls(**values)


def flush_reports(lines: Iterable[str]) -> list[FlushReport]:
    """Every flush line among ``lines`` (raw processor stderr or the daemon's wrapped copies), in order."""
    out = []
    for line in lines:
        record = parse_line(line)
        if record is not None and record.get("event") == EVENT:
            out.append(FlushReport.from_fields(record))
    return out


def total(reports: Iterable[FlushReport], name: str) -> int:
    """The sum of one counter over ``reports``."""
    return sum(int(getattr(r, name) or 0) for r in reports)
