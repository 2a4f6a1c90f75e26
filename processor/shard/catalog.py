"""The cluster catalogue, written from the flush at a bounded rate: one item per cluster (``core/catalog.py``)
with its account, region, name, ARN and the newest event time this shard has seen from it.

Rules:
- ``note`` is called by the writer for every state item it stored or found stale (thread-safe, a dict update):
  the item's ``clusterArn`` (a plain string attribute) and ``event_time``; items without them are ignored.
- ``jobs`` is called once per flush, after the state writes: one conditional PutItem per cluster whose newest
  event time grew since this shard last wrote it, and which this shard last wrote at least ``interval_s`` ago
  (60 s). So the catalogue costs at most shards x clusters / 60 writes per second, whatever the event rate (one
  write unit each: the item is well under 1 KB), and a cluster's ``newestEvent`` lags by at most a minute plus a
  flush. What is still pending when a shard ends is written by the next flush of whoever holds the lease (the
  catalogue is a view, not data: nothing is lost but freshness).
- The memory is one entry per cluster seen by this shard (about 300 bytes each).
- Failures follow the writer's classes, through the writer's own request loop (``Writer._call``): transient ->
  retried holding the lease (with a finite ``writeRetryBudgetMillis``, the flush fails and is not checkpointed,
  like a state write); a failed condition (a newer time already stored) is the normal answer; a refusal is about
  the catalogue item, never a record: one WARNING line, no dead letter, and the cluster is not tried again until
  a newer event comes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Mapping

from processor.core.catalog import ClusterRef, catalog_put, event_ms, parse_cluster_arn
from processor.logs import log_safely
from processor.shard.failures import RECORD, Verdict

INTERVAL_S = 60.0

#: ``Writer._call`` bound to one flush: (request, what) -> (verdict or None, reply)
Call = Callable[[dict[str, Any], str], tuple[Verdict | None, Any]]


@dataclass
class _Seen:
    cluster: ClusterRef
    newest_ms: int = -1  # newest event time noted
    newest_text: str = ""
    written_ms: int = -1  # newest event time this shard wrote
    written_at: float | None = None  # clock() of that write


class Catalog:
    """One shard's memory of the clusters it has seen and of what it wrote to the catalogue (module docstring)."""

    def __init__(self, table: str, interval_s: float = INTERVAL_S, shard_id: str = "?") -> None:
        self.table = table
        self.interval_s = interval_s
        self.shard_id = shard_id
        self._seen: dict[str, _Seen] = {}
        self._lock = threading.Lock()

    #: The attributes of an item that ``note`` reads.
    NOTED = ("clusterArn", "event_time")

    def note(self, attributes: Mapping[str, Any]) -> None:
        """Remember the cluster and event time of one stored item (its DynamoDB attribute values: ``NOTED``)."""
        cluster, when = attributes.get("clusterArn"), attributes.get("event_time")
        if not (isinstance(cluster, dict) and isinstance(when, dict)):
            return
        arn, text = cluster.get("S"), when.get("S")
        if not isinstance(arn, str) or not isinstance(text, str):
            return
        with self._lock:
            seen = self._seen.get(arn)
        if seen is None:
            ref = parse_cluster_arn(arn)
            if ref is None:
                return
            with self._lock:
                seen = self._seen.setdefault(arn, _Seen(ref))
        ms = event_ms(text)
        if ms is None:
            return
        with self._lock:
            if ms > seen.newest_ms:
                seen.newest_ms, seen.newest_text = ms, text

    def jobs(self, now: float, call: Call) -> list[Callable[[], None]]:
        """The catalogue writes due at ``now`` (the writer's clock), each a job for the writer's pool."""
        due: list[tuple[dict[str, Any], str, _Seen]] = []
        with self._lock:
            for seen in self._seen.values():
                if seen.newest_ms <= seen.written_ms:
                    continue
                if seen.written_at is not None and now - seen.written_at < self.interval_s:
                    continue
                seen.written_ms, seen.written_at = seen.newest_ms, now
                request = catalog_put(self.table, seen.cluster, seen.newest_text, seen.newest_ms)
                due.append((request, f"cluster {seen.cluster.arn} in catalogue {self.table}", seen))
        return [partial(self._write, call, request, what) for request, what, _ in due]

    def _write(self, call: Call, request: dict[str, Any], what: str) -> None:
        verdict, _ = call(request, what)
        if verdict is not None and verdict.kind == RECORD:
            log_safely(
                "catalog_refused",
                level="WARNING",
                shard=self.shard_id,
                request=what,
                cause=verdict.text,
                note="the state items are stored; only the cluster catalogue misses this cluster's newest time",
            )

    def clusters(self) -> int:
        with self._lock:
            return len(self._seen)
