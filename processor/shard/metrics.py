"""CloudWatch Embedded Metric Format (EMF) lines, one per flush. Off by default (``ecsState.metrics = none``);
``stderr`` writes them among the logs (CloudWatch Logs agents extract them), ``file:PATH`` appends to a file.

Metrics and logs are side effects: they never stop a flush. ``check()`` finds a target that cannot be opened at
start (a configuration error); after that a failed write is counted (``Metrics.failures``) and
logged when logging still works, never raised into the write path."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from processor.logs import log_safely

NAMESPACE = "ECSState"
#: stats key -> (metric name, unit)
METRICS = {
    "records": ("Records", "Count"),
    "distinct_arns": ("DistinctArns", "Count"),
    "writes": ("Writes", "Count"),
    "stale": ("Stale", "Count"),
    "ignored": ("Ignored", "Count"),
    "dead_letters": ("DeadLetters", "Count"),
    "retries": ("WriteRetries", "Count"),
    "flush_ms": ("FlushLatency", "Milliseconds"),
    "millis_behind_latest": ("MillisBehindLatest", "Milliseconds"),
}


def emf_record(shard_id: str, stats: dict[str, Any], timestamp_ms: int | None = None) -> dict[str, Any]:
    """The EMF document for one flush (pure)."""
    present = {key: value for key, value in stats.items() if key in METRICS and value is not None}
    doc: dict[str, Any] = {
        "_aws": {
            "Timestamp": timestamp_ms if timestamp_ms is not None else int(time.time() * 1000),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["ShardId"]],
                "Metrics": [{"Name": METRICS[key][0], "Unit": METRICS[key][1]} for key in present],
            }],
        },
        "ShardId": shard_id,
    }
    doc.update({METRICS[key][0]: value for key, value in present.items()})
    return doc


class Metrics:
    def __init__(self, target: str = "none") -> None:
        self.target = target
        self.failures = 0

    def check(self) -> str | None:
        """A problem line when the target cannot be opened (checked at start), else None."""
        if not self.target.startswith("file:"):
            return None
        path = self.target.removeprefix("file:")
        try:
            with open(path, "a", encoding="utf-8"):
                return None
        except OSError as exc:
            return (f"ecsState.metrics = {self.target}: cannot open {path} for appending ({exc.strerror}); fix the "
                    f"path or its permissions, or use stderr / none")

    def emit(self, shard_id: str, stats: dict[str, Any]) -> None:
        """Write one EMF line; a failure is counted and logged, never raised."""
        if self.target == "none":
            return
        try:
            line = json.dumps(emf_record(shard_id, stats), separators=(",", ":")) + "\n"
            if self.target == "stderr":
                sys.stderr.write(line)
                sys.stderr.flush()
            else:
                with open(self.target.removeprefix("file:"), "a", encoding="utf-8") as out:
                    out.write(line)
        except Exception as exc:
            self.failures += 1
            log_safely("metrics_failed", level="WARNING", shard=shard_id, target=self.target,
                       error=f"{type(exc).__name__}: {exc}", failures=self.failures,
                       note="the flush went on; metrics of this flush are lost")
