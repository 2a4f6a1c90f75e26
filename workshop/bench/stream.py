"""The benchmark's stream and its floor, pure: what every contender is fed, and the fewest writes possible.

* One realistic stream (:func:`processor.loadgen.fleet.generate`: duplicates, bounded reordering, a little poison
  and ignored types), the first ``events`` records of it, the same for every contender (the Lambda's child
  process regenerates it from the same :class:`~processor.loadgen.fleet.Options`).
* Records go to Kinesis shards by the MD5 of the partition key, the hash key space split evenly, as Kinesis does
  (:func:`shard_of`).
* Every record gets an arrival time (:func:`arrival_seconds`): the simulated fleet's own clock (the envelope
  ``time``, never going back), or evenly ``rate`` records/s. Each shard's records are cut into ``flush_ms``
  windows of that clock (:func:`flush_windows`); a window with no record is no window.
* The floor is the sum over every shard's flush windows of the distinct (kind, ARN) state events in the window,
  divided by the events: the fewest state writes any flush-per-window design can do. Poison and ignored records
  need no state write (the floor with one dead-letter put per poison record is given beside it).

Nothing here does I/O or measures time other than the generation itself.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import statistics
import time
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any, Iterable, Sequence

from processor.loadgen.fleet import Options, Record, generate
from processor.loadgen.ground_truth import GroundTruth

CONTENDERS = ("ours", "lambda", "lambda-8")
LABELS = {
    "ours": "ecs-state (MultiLang, {shards} shards)",
    "lambda": "Lambda get+put, sequential",
    "lambda-8": "Lambda get+put, {workers} workers",
}
STATE_KINDS = ("task", "instance")
_TIME = re.compile(rb'"time":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"')


#: The benchmark's fleet: the producer's fleet and sizes, with some duplicates, reordering, poison and ignored types.
FLEET = Options(duplicate_rate=0.05, reorder_window=20, poison_rate=0.002, ignored_rate=0.01, seed=1)


@dataclass(frozen=True)
class BenchConfig:
    events: int = 50_000
    shards: int = 4
    flush_ms: int = 5000
    rate: float = 0.0  # events/s on the whole stream; 0 = the simulated fleet's own clock
    workers: int = 8  # threads of the concurrent Lambda contender
    fleet: Options = FLEET  # what the producer generates (validated by Options itself)
    contenders: tuple[str, ...] = CONTENDERS
    lambda_full_get: bool = False  # fetch the whole item (as the documented Lambda) instead of only `version`

    def options(self) -> Options:
        return self.fleet

    def flat(self) -> dict[str, Any]:
        """The run's settings and the fleet's options in one flat mapping (what the reports save and read)."""
        own = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "fleet"}
        return {**own, **asdict(self.fleet), "contenders": list(self.contenders)}

    def label(self, contender: str) -> str:
        return LABELS[contender].format(shards=self.shards, workers=self.workers)


def shard_of(partition_key: str, shards: int) -> int:
    """The shard Kinesis puts a record in when ``shards`` shards split the hash key space evenly."""
    return int.from_bytes(hashlib.md5(partition_key.encode("utf-8")).digest(), "big") * shards >> 128


def _epoch(stamp: bytes, cache: dict[bytes, float]) -> float:
    value = cache.get(stamp)
    if value is None:
        value = cache[stamp] = datetime.fromisoformat(stamp.decode().replace("Z", "+00:00")).timestamp()
    return value


def arrival_seconds(records: Sequence[Record], rate: float = 0.0) -> list[float]:
    """Arrival time of each record, seconds from the first. With ``rate`` > 0: evenly ``rate`` records/s.
    Otherwise the simulated fleet's clock: the envelope ``time`` of each record that has one, never going back
    (reordered records arrive after later ones), and the previous arrival for records without one (poison)."""
    if rate > 0:
        return [i / rate for i in range(len(records))]
    cache: dict[bytes, float] = {}
    out: list[float] = []
    now: float | None = None
    for rec in records:
        match = _TIME.search(rec.data, 0, 400)
        if match:
            t = _epoch(match.group(1), cache)
            now = t if now is None else max(now, t)
        out.append(now if now is not None else 0.0)
    first = next((t for t in out if t), 0.0)
    return [max(0.0, t - first) if t else 0.0 for t in out]


def flush_windows(indices: Sequence[int], arrivals: Sequence[float], flush_s: float) -> list[tuple[int, int]]:
    """Cut one shard's records (``indices`` into the stream, in order) into flush windows of ``flush_s`` seconds of
    arrival time; returns (start, end) slices of ``indices``. Windows without records are left out."""
    out: list[tuple[int, int]] = []
    start = 0
    for pos in range(1, len(indices) + 1):
        if pos == len(indices) or int(arrivals[indices[pos]] // flush_s) != int(arrivals[indices[start]] // flush_s):
            out.append((start, pos))
            start = pos
    return out


def distinct_per_window(
    records: Sequence[Record], shard_indices: Sequence[Sequence[int]], windows: Sequence[Sequence[tuple[int, int]]]
) -> int:
    """Sum over every shard's flush windows of the distinct (kind, ARN) state events in the window."""
    total = 0
    for indices, cuts in zip(shard_indices, windows):
        for a, b in cuts:
            total += len({(records[i].kind, records[i].arn) for i in indices[a:b] if records[i].kind in STATE_KINDS})
    return total


@dataclass
class Stream:
    """The records, their arrival times, each shard's record indices and flush windows, and the ground truth."""

    records: list[Record]
    arrivals: list[float]
    shard_indices: list[list[int]]
    windows: list[list[tuple[int, int]]]
    truth: dict[str, Any]
    generate_s: float = 0.0

    @property
    def duration_s(self) -> float:
        return self.arrivals[-1] if self.arrivals else 0.0


def build_stream(cfg: BenchConfig) -> Stream:
    start = time.perf_counter()
    records = list(itertools.islice(generate(cfg.options()), cfg.events))
    generate_s = time.perf_counter() - start
    arrivals = arrival_seconds(records, cfg.rate)
    shard_indices: list[list[int]] = [[] for _ in range(cfg.shards)]
    for i, rec in enumerate(records):
        shard_indices[shard_of(rec.partition_key, cfg.shards)].append(i)
    windows = [flush_windows(ix, arrivals, cfg.flush_ms / 1000) for ix in shard_indices]
    truth = GroundTruth()
    for rec in records:
        truth.add(rec)
    return Stream(records, arrivals, shard_indices, windows, truth.to_dict(), generate_s)


def floor_figures(stream: Stream) -> dict[str, Any]:
    n = len(stream.records)
    distinct = distinct_per_window(stream.records, stream.shard_indices, stream.windows)
    poison = sum(r.kind == "poison" for r in stream.records)
    sizes = [b - a for cuts in stream.windows for a, b in cuts]
    return {
        "distinct_arns_per_window_sum": distinct,
        "requests_per_event": distinct / n if n else 0.0,
        "poison_records": poison,
        "with_dead_letters_per_event": (distinct + poison) / n if n else 0.0,
        "windows": len(sizes),
        "records_per_call": {
            "mean": round(statistics.mean(sizes), 1) if sizes else 0,
            "median": statistics.median(sizes) if sizes else 0,
            "max": max(sizes, default=0),
        },
    }


def floor_sweep(
    stream: Stream, flush_ms_values: Iterable[int] = (1000, 2000, 5000, 10_000, 30_000, 60_000)
) -> list[dict[str, Any]]:
    """The floor for other flush intervals (same stream and arrival clock); pure, cheap."""
    n = len(stream.records)
    out = []
    for ms in flush_ms_values:
        windows = [flush_windows(ix, stream.arrivals, ms / 1000) for ix in stream.shard_indices]
        distinct = distinct_per_window(stream.records, stream.shard_indices, windows)
        out.append(
            {
                "flush_ms": ms,
                "floor_requests_per_event": round(distinct / n, 4) if n else 0.0,
                "mean_records_per_call": round(n / max(1, sum(len(w) for w in windows)), 1),
            }
        )
    return out
