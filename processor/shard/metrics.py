"""CloudWatch Embedded Metric Format (EMF) lines: per flush, per idle minute, while retrying, and the worker's
heartbeat, so alarms need no log parsing. Off by default (``ecsState.metrics = none``); ``stderr`` writes
them among the logs, ``file:PATH`` appends to a file.

What is emitted (docs/monitoring.md lists names, units and the alarms on them): one document per flush with the
flush's counters (``METRICS``); from a shard processor with nothing to flush, at most one document a minute with
``MillisBehindLatest`` alone, so an idle shard still reports its age; while a write is retried, at most one a
minute with ``WriteRetryingFor`` (how long the oldest retried request has been failing); and from ``ecs-state run``
one ``WorkerHeartbeat`` a wall-clock minute while its daemon runs (``worker_heartbeat``), whose SampleCount over a
minute is the number of live workers. Every document has the dimension sets ``[Application]`` (KCL's
applicationName: a replay's figures never mix with production's) and, for a shard, ``[Application, ShardId]``.

Each document is one line holding exactly the JSON object: on a container's stderr with the awslogs driver every
line is one CloudWatch Logs event, and CloudWatch extracts metrics from an event that is an EMF object. A shard
processor's stderr reaches the container through the KCL daemon, which re-logs it wrapped; ``ecs-state run``
unwraps it (``worker/daemon_log.py``), so the line arrives as written here.

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
    "freshness_p50_ms": ("FreshnessP50", "Milliseconds"),
    "freshness_p99_ms": ("FreshnessP99", "Milliseconds"),
    "retrying_for_ms": ("WriteRetryingFor", "Milliseconds"),
}
WORKER_HEARTBEAT = ("WorkerHeartbeat", "Count")


def _document(
    application: str, values: dict[str, tuple[str, Any]], shard_id: str | None, timestamp_ms: int | None
) -> dict[str, Any]:
    """One EMF document: ``values`` maps metric name -> (unit, value) (pure)."""
    dimensions = [["Application"], ["Application", "ShardId"]] if shard_id is not None else [["Application"]]
    doc: dict[str, Any] = {
        "_aws": {
            "Timestamp": timestamp_ms if timestamp_ms is not None else int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": dimensions,
                    "Metrics": [{"Name": name, "Unit": unit} for name, (unit, _) in values.items()],
                }
            ],
        },
        "Application": application,
    }
    if shard_id is not None:
        doc["ShardId"] = shard_id
    doc.update({name: value for name, (_, value) in values.items()})
    return doc


def emf_record(
    shard_id: str, stats: dict[str, Any], timestamp_ms: int | None = None, application: str = "ecs-state"
) -> dict[str, Any]:
    """The EMF document of one shard's ``stats`` (keys of ``METRICS``; others and None values left out) (pure)."""
    present = {
        METRICS[key][0]: (METRICS[key][1], value)
        for key, value in stats.items()
        if key in METRICS and value is not None
    }
    return _document(application, present, shard_id, timestamp_ms)


def worker_heartbeat(application: str, timestamp_ms: int | None = None) -> dict[str, Any]:
    """The EMF document a worker (``ecs-state run``) emits once a minute while its daemon runs (pure)."""
    name, unit = WORKER_HEARTBEAT
    return _document(application, {name: (unit, 1)}, None, timestamp_ms)


class Metrics:
    def __init__(self, target: str = "none", application: str = "ecs-state") -> None:
        self.target = target
        self.application = application
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
            return (
                f"ecsState.metrics = {self.target}: cannot open {path} for appending ({exc.strerror}); fix the "
                f"path or its permissions, or use stderr / none"
            )

    def emit(self, shard_id: str, stats: dict[str, Any]) -> None:
        """Write one shard's EMF line; a failure is counted and logged, never raised."""
        if self.target != "none":
            self._write(lambda: emf_record(shard_id, stats, application=self.application), shard_id)

    def heartbeat(self, timestamp_ms: int | None = None) -> None:
        """Write the worker's heartbeat line; a failure is counted and logged, never raised."""
        if self.target != "none":
            self._write(lambda: worker_heartbeat(self.application, timestamp_ms), None)

    def _write(self, document: Any, shard_id: str | None) -> None:
        try:
            line = json.dumps(document(), separators=(",", ":")) + "\n"
            if self.target == "stderr":
                sys.stderr.write(line)
                sys.stderr.flush()
            else:
                with open(self.target.removeprefix("file:"), "a", encoding="utf-8") as out:
                    out.write(line)
        except Exception as exc:
            self.failures += 1
            log_safely(
                "metrics_failed",
                level="WARNING",
                shard=shard_id,
                target=self.target,
                error=f"{type(exc).__name__}: {exc}",
                failures=self.failures,
                note="processing went on; these metrics are lost",
            )
