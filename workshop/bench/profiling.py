"""``--profile``: where the CPU goes, in this process, on the benchmark's own stream (figures, not assertions).

* :func:`profile_core`: the processor's pure per-record path (route = decode + item, then the reducer), timed once
  without a profiler (µs/event of process CPU) and then once under cProfile for the hot spots.
* :func:`profile_put`: the client side of the processor's conditional PutItem: the request the writer builds, on
  a client configured as the processor's (no parameter validation), sequentially on one thread against the
  emulator; timed without and then with cProfile, as above.
* Hot spots are sorted by own time (tottime); file names are cut to the part after ``site-packages/`` or the
  project directory. The benchmark's own frames (``workshop/bench/``) are left out of the core's list.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from typing import Any

from processor.config import Settings
from workshop.bench.stream import Stream
from workshop.local.paths import project_dir

BENCH_FRAMES = "workshop/bench/"


def profile_core(stream: Stream, top: int = 18) -> dict[str, Any]:
    """The processor's pure per-record path (decode and check, reduce, then build each resource's newest version as
    the flush does) in this process: µs/event without a profiler, then the cProfile hot spots. The DynamoDB client
    side is profiled by :func:`profile_put`."""
    from processor.core.position import Position
    from processor.core.reducer import Reducer
    from processor.core.route import Candidate, admit, build

    def run() -> None:
        reducer = Reducer(10**9, 2**62)
        for k, rec in enumerate(stream.records):
            position = Position("shardId-000000000000", f"{k + 1:056d}")
            entry = admit(rec.data, position, rec.partition_key, None)
            if isinstance(entry, Candidate):
                reducer.offer(entry, position)
        for versions in reducer.drain().resources:
            build(versions[0], 0)

    cpu0 = time.process_time()
    run()
    us = (time.process_time() - cpu0) / len(stream.records) * 1e6
    profiler = cProfile.Profile()
    profiler.runcall(run)
    hot = [h for h in _top(profiler, top + 4) if not h["function"].startswith(BENCH_FRAMES)]
    return {"core_us_per_event": round(us, 1), "hot_spots": hot[:top]}


def profile_put(endpoint: str, stream: Stream, settings: Settings, count: int = 300, top: int = 18) -> dict[str, Any]:
    """The client side of the processor's conditional PutItem (the request the writer builds, on a client
    configured as the processor's: no parameter validation), in this process."""
    from processor.core.items import Item
    from processor.core.position import Position
    from processor.shard.writer import CONDITION
    from workshop.local.env import local_client
    from workshop.testing.factories import route

    client = local_client(
        "dynamodb",
        endpoint,
        parameter_validation=False,
        tcp_keepalive=True,
        retries={"mode": "standard", "total_max_attempts": 1},
    )

    items = []
    for k, rec in enumerate(stream.records):
        entry = route(rec.data, Position("shardId-profile", f"{k + 1:056d}"), rec.partition_key, None)
        if isinstance(entry, Item):
            items.append(entry)
        if len(items) >= count:
            break
    tables = {"task": settings.task_table, "instance": settings.instance_table}

    def run() -> None:
        for item in items:
            try:
                client.put_item(
                    TableName=tables[item.kind],
                    Item=item.attributes,
                    ConditionExpression=CONDITION,
                    ExpressionAttributeNames={"#k": item.key_name, "#v": "version"},
                    ExpressionAttributeValues={":v": {"N": str(item.version)}},
                )
            except client.exceptions.ConditionalCheckFailedException:
                pass

    cpu0, wall0 = time.process_time(), time.perf_counter()
    run()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    profiler = cProfile.Profile()
    profiler.runcall(run)
    return {
        "puts": len(items),
        "client_cpu_us_per_put": round(cpu / max(1, len(items)) * 1e6, 1),
        "wall_ms_per_put": round(wall / max(1, len(items)) * 1000, 2),
        "hot_spots": _top(profiler, top),
    }


def _top(profiler: cProfile.Profile, top: int) -> list[dict[str, Any]]:
    stats = pstats.Stats(profiler, stream=io.StringIO())
    rows = []
    root = str(project_dir()) + "/"
    total = sum(v[2] for v in stats.stats.values()) or 1.0  # type: ignore[attr-defined]
    for (filename, line, name), (cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{_short(filename, root)}:{line}({name})",
                "calls": nc,
                "tottime_s": round(tt, 4),
                "cumtime_s": round(ct, 4),
                "tottime_share": round(tt / total, 4),
            }
        )
    rows.sort(key=lambda r: r["tottime_s"], reverse=True)
    return rows[:top]


def _short(filename: str, root: str) -> str:
    for marker in ("site-packages/", root):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename
