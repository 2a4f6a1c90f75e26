"""CloudWatch Embedded Metric Format (EMF) lines, one per flush. Off by default (``ecsState.metrics = none``);
``stderr`` writes them among the logs (CloudWatch Logs agents extract them), ``file:PATH`` appends to a file."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

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

    def emit(self, shard_id: str, stats: dict[str, Any]) -> None:
        if self.target == "none":
            return
        line = json.dumps(emf_record(shard_id, stats), separators=(",", ":")) + "\n"
        if self.target == "stderr":
            sys.stderr.write(line)
            sys.stderr.flush()
        else:
            with open(self.target.removeprefix("file:"), "a", encoding="utf-8") as out:
                out.write(line)
