"""The ``ours`` contender: one ``ecs-state-processor`` process per shard, driven through the MultiLang protocol.

* Shards run concurrently (one thread per shard driving its process, :mod:`workshop.testing.multilang_driver`),
  each on the same fresh tables.
* Real time does not pass in a driven run, so the flush window is simulated: each of the shard's flush windows
  (:func:`workshop.bench.stream.flush_windows`) is one ``processRecords`` call, and the processor runs with
  ``flushIntervalMillis = 0``, so every call is exactly one flush. Records carry their simulated arrival time as
  the approximate arrival timestamp.
* DynamoDB requests are what the processors say they sent: ``requests`` summed over the flush log lines of every
  process (:mod:`processor.shard.flush_report`). A log line of a problem (failed flush, processor bug, config
  error) or a non-zero exit fails the run (:class:`~processor.errors.BenchError`): no figure from a broken run.
* CPU is user+sys of each process between its ``initialize`` and ``shutdownRequested`` replies (from /proc),
  summed, so interpreter start-up and exit are left out; the gross ``RUSAGE_CHILDREN`` figure is kept beside it
  and used alone where /proc cannot be read.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from processor.config import Settings
from processor.logs import parse_line
from processor.shard.flush_report import flush_reports, total
from workshop.bench.cpu import children_cpu, proc_cpu
from workshop.bench.emulator import child_env
from workshop.bench.stream import BenchConfig, Stream
from workshop.errors import BenchError

PROBLEM_EVENTS = ("flush_failed", "processor_bug", "config_error")
SUMMED = (
    "records",
    "distinct_arns",
    "writes",
    "stale",
    "dead_letters",
    "requests",
    "retries",
    "throttled",
    "duplicates",
    "superseded",
    "ignored",
)


def parse_processor_log(path: Path) -> tuple[dict[str, int], list[str]]:
    """One processor's log: its flush figures summed (``flushes`` and every key of :data:`SUMMED`), and the
    lines (cut to 300 characters) of events that mean the run is broken (:data:`PROBLEM_EVENTS`)."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    reports = flush_reports(lines)
    sums = {"flushes": len(reports), **{key: total(reports, key) for key in SUMMED}}
    problems = [line[:300] for line in lines if (parse_line(line) or {}).get("event") in PROBLEM_EVENTS]
    return sums, problems


def run_ours(stream: Stream, cfg: BenchConfig, settings: Settings, endpoint: str, work: Path) -> dict[str, Any]:
    """One processor per shard, concurrently, each flush window one processRecords call (flush interval 0)."""
    from workshop.testing.multilang_driver import KinesisRecord, ProcessorProcess

    env = child_env(
        endpoint,
        {
            "ECS_STATE_TASK_TABLE": settings.task_table,
            "ECS_STATE_INSTANCE_TABLE": settings.instance_table,
            "ECS_STATE_DEAD_LETTER_TABLE": settings.dead_letter_table,
            "ECS_STATE_FLUSH_INTERVAL_MILLIS": "0",
            "ECS_STATE_LOG_LEVEL": "INFO",
            "ECS_STATE_METRICS": "none",
        },
    )
    start_ms = cfg.options().start_ms
    per_shard = [
        [
            KinesisRecord(
                stream.records[i].data,
                stream.records[i].partition_key,
                f"{k + 1:056d}",
                0,
                start_ms + int(stream.arrivals[i] * 1000),
            )
            for k, i in enumerate(indices)
        ]
        for indices in stream.shard_indices
    ]

    checkpoints = [0] * cfg.shards
    startup: list[float | None] = [None] * cfg.shards  # CPU of each process when `initialize` was answered
    finish: list[float | None] = [None] * cfg.shards  # ... and when `shutdownRequested` (final flush) was
    logs = [work / f"ours-shard{s}.log" for s in range(cfg.shards)]
    for path in logs:  # the driver appends; a previous run's lines must not be counted
        path.unlink(missing_ok=True)

    def one(s: int) -> int:
        process = ProcessorProcess(env=env, stderr_path=logs[s]).start()
        try:
            process.initialize(f"shardId-{s:012d}")
            assert process.proc is not None
            # start-up (interpreter, imports, settings, boto3 client): done once per process, not per event
            startup[s] = proc_cpu(process.proc.pid)
            for a, b in stream.windows[s]:
                process.process_records(per_shard[s][a:b])
            process.shutdown_requested()
            finish[s] = proc_cpu(process.proc.pid)
            checkpoints[s] = len(process.checkpoints)
            return process.close()
        except BaseException:
            process.kill()
            raise

    before = children_cpu()
    wall_start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=cfg.shards) as pool:
        codes = list(pool.map(one, range(cfg.shards)))
    wall = time.perf_counter() - wall_start
    cpu = children_cpu() - before
    sums: dict[str, int] = {}
    problems: list[str] = []
    for path in logs:
        got, bad = parse_processor_log(path)
        problems += [f"{path.name}: {p}" for p in bad]
        for key, value in got.items():
            sums[key] = sums.get(key, 0) + value
    if any(codes) or problems:
        raise BenchError(f"processors exited with {codes}; problems: {problems[:3]}; logs in {work}")
    n = len(stream.records)
    windowed = all(x is not None for x in startup + finish)
    # the work: from `initialize` answered to `shutdownRequested` answered, summed over the processes (start-up
    # and interpreter exit are once per process, not per event); without /proc, the gross figure
    began = [b for b in startup if b is not None]
    ended = [f for f in finish if f is not None]
    net_cpu = sum(f - b for b, f in zip(began, ended)) if windowed else cpu
    startup_cpu = sum(began) if windowed else 0.0
    return {
        "events": n,
        "requests": sums.get("requests", 0),
        "requests_per_event": sums.get("requests", 0) / n,
        "cpu_s": round(net_cpu, 3),
        "cpu_us_per_event": net_cpu / n * 1e6,
        "cpu_gross_s": round(cpu, 3),
        "cpu_gross_us_per_event": cpu / n * 1e6,
        "startup_cpu_s": round(startup_cpu, 3),
        "cpu_windowed": windowed,
        "wall_s": round(wall, 3),
        "events_per_s": n / wall,
        "flush_log": sums,
        "checkpoints": sum(checkpoints),
        "processes": cfg.shards,
    }
