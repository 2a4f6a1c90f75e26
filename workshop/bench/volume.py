"""``--profile-volume``: the benchmark's high-volume profile: the processor as it is, on big calls of a large fleet.

What a run does (:func:`run_volume`), against moto under waitress (:mod:`workshop.bench.moto_keepalive`: kept-alive
connections, every request priced in capacity units):
* One stream from a large fleet (default 5,000 concurrent tasks, 300 container instances, 10 clusters), split into
  shards by partition key as Kinesis does (:mod:`workshop.bench.stream`).
* First pass: one ``ecs-state-processor`` per shard, concurrently, driven through the MultiLang protocol in real
  time the way KCL polls a busy stream: ``batch`` records per ``processRecords`` call (10,000: KCL's ``maxRecords``
  ceiling), one ``poll_ms`` pause between calls, then empty calls (``callProcessRecordsEvenForEmptyRecordList``)
  until the last record is checkpointed. The processor runs with its default settings (flush interval, pending
  limits, concurrency). Each record's approximate arrival timestamp is the instant its batch is handed over (the
  reader is at the tip), so freshness = the checkpoint that covers it minus that instant (an upper bound of
  arrival-to-durable: the checkpoint follows durability).
* Replay: new processes from TRIM_HORIZON into the same tables (what a new KCL application does), the records
  carrying their first-pass arrival timestamps and ``millisBehindLatest`` = how old the batch is. Its cost is
  compared with the first pass in write-unit equivalents (read units / 5), and the tables are compared before
  and after it: no stored version may change.
* Steady pass: ``steady_rate`` records/s per shard for ``steady_s`` seconds (a fresh stream of that size, fresh
  tables), each record's arrival timestamp the instant it is due, every call handing over what arrived since the
  last one: the freshness a stream at a rate the table keeps up with gets (the issue's freshness target). The
  first pass is a backlog (10,000 records every ``poll_ms``, far above what moto absorbs), so its freshness
  measures the queue, not the processor.
* The per-event Lambda (:mod:`workshop.bench.lambda_way`, sequential) on the first ``lambda_events`` records of
  the same stream, on fresh tables of the same server.
* Figures per pass: CPU µs/event of the processor processes (``initialize`` answered to the end, /proc), split
  into protocol / decode / reduce estimated in this process on the same records (:func:`cpu_split`) and the rest
  (write: the DynamoDB client, threads, flush bookkeeping); the peak RSS of each process (``VmHWM``); flush duration and
  freshness p50/p99; requests (the processors' flush lines and the meter) against the distinct-ARN floor (the sum
  of ``distinct_arns`` + dead letters over the flushes that happened); capacity units per event.
Figures, never assertions; a broken run (a problem log line, a non-zero exit, a stale ARN) raises BenchError.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from processor.config import Settings
from processor.shard.flush_report import flush_reports
from processor.shard.freshness import percentile
from workshop.bench.cpu import proc_cpu
from workshop.bench.emulator import child_env
from workshop.bench.ours import parse_processor_log
from workshop.bench.stream import FLEET, BenchConfig, Stream
from workshop.errors import BenchError


@dataclass(frozen=True)
class VolumeConfig:
    """The volume profile: the stream (``bench``) and how it is delivered."""

    bench: BenchConfig = field(
        default_factory=lambda: BenchConfig(
            events=100_000,
            shards=2,
            fleet=dataclasses.replace(FLEET, clusters=10, instances=300, tasks=5000),
            contenders=("ours", "lambda"),
        )
    )
    batch: int = 10_000
    poll_ms: int = 250
    lambda_events: int = 20_000
    replay: bool = True
    steady_rate: int = 20  # records/s per shard of the steady pass (0: none)
    steady_s: int = 60
    flush_interval_ms: int = Settings().flush_interval_millis


def peak_rss_mb(pid: int) -> float | None:
    """The peak resident set size of a live process (``VmHWM``, Linux), MB."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError):
        return None
    return None


def _pct(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    if not ordered:
        return {"p50": None, "p99": None, "max": None}
    return {
        "p50": round(percentile(ordered, 0.5), 1),
        "p99": round(percentile(ordered, 0.99), 1),
        "max": round(ordered[-1], 1),
    }


def rss_mb(pid: int) -> tuple[float, float] | None:
    """(``VmRSS``, ``VmHWM``) of a live process (Linux), MB."""
    found: dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    found[line[:5]] = round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError):
        return None
    return (found["VmRSS"], found["VmHWM"]) if len(found) == 2 else None


def run_pass(
    stream: Stream,
    vcfg: VolumeConfig,
    settings: Settings,
    endpoint: str,
    work: Path,
    name: str,
    arrivals_ms: list[int] | None = None,
    rate: float = 0,
    extra_env: dict[str, str] | None = None,
    trace_rss: bool = False,
    code: Path | None = None,
) -> dict[str, Any]:
    """One pass of every shard's records through one processor per shard; returns the pass's figures and, in
    ``arrival_ms``, each record's arrival timestamp (for a replay to reuse). ``rate`` > 0: each shard's records
    arrive at that many per second (record k at start + k / rate, its arrival timestamp), and every call hands
    over what has arrived since the last one (at most ``batch``); 0: ``batch`` records per call, arriving as
    they are handed over. ``extra_env``: further variables for the processors (settings); ``trace_rss``: the
    result's ``rss_after_call_mb`` lists (call, VmRSS, VmHWM) of each processor after each non-empty call;
    ``code``: the directory whose ``processor`` package the processors run (another version's worktree), instead
    of this one's."""
    from workshop.testing.multilang_driver import Checkpoint, KinesisRecord, ProcessorProcess

    env = child_env(
        endpoint,
        {
            "ECS_STATE_TASK_TABLE": settings.task_table,
            "ECS_STATE_INSTANCE_TABLE": settings.instance_table,
            "ECS_STATE_DEAD_LETTER_TABLE": settings.dead_letter_table,
            "ECS_STATE_FLUSH_INTERVAL_MILLIS": str(vcfg.flush_interval_ms),
            "ECS_STATE_LOG_LEVEL": "INFO",
            "ECS_STATE_METRICS": "none",
            **(extra_env or {}),
        },
    )
    n = len(stream.records)
    arrival = list(arrivals_ms) if arrivals_ms else [0] * n
    shards = len(stream.shard_indices)
    logs = [work / f"{name}-shard{s}.log" for s in range(shards)]
    cpu: list[tuple[float | None, float | None]] = [(None, None)] * shards
    rss: list[float | None] = [None] * shards
    durable: list[list[tuple[float, int]]] = [[] for _ in range(shards)]  # (wall ms, sequence) per checkpoint
    calls = [0] * shards
    traces: list[list[tuple[int, float, float]]] = [[] for _ in range(shards)]

    def one(s: int) -> int:
        indices = stream.shard_indices[s]

        def hook(cp: Checkpoint) -> None:
            if cp.sequence_number is not None:
                durable[s].append((time.time() * 1000, int(cp.sequence_number)))
            return None

        logs[s].unlink(missing_ok=True)
        process = ProcessorProcess(env=env, stderr_path=logs[s], on_checkpoint=hook)
        if code is not None:  # -P: the working directory must not come before PYTHONPATH
            process.env = {**env, "PYTHONPATH": str(code)}
            process.argv = [sys.executable, "-P", "-m", "processor.shard.main"]
        process.start()
        try:
            process.initialize(f"shardId-{s:012d}")
            assert process.proc is not None
            start_cpu = proc_cpu(process.proc.pid)
            t0, a = time.time() * 1000, 0
            while a < len(indices):
                now = int(time.time() * 1000)
                arrived = int((now - t0) * rate / 1000) + 1 if rate else len(indices)
                b = min(len(indices), a + vcfg.batch, arrived)
                chunk = indices[a:b]
                for k, i in enumerate(chunk):
                    arrival[i] = arrival[i] or (int(t0 + (a + k) * 1000 / rate) if rate else now)
                records = [
                    KinesisRecord(
                        stream.records[i].data, stream.records[i].partition_key, f"{a + k + 1:056d}", 0, arrival[i]
                    )
                    for k, i in enumerate(chunk)
                ]
                process.process_records(records, millis_behind_latest=max(0, now - arrival[chunk[-1]]) if chunk else 0)
                calls[s] += 1
                a = b
                sample = rss_mb(process.proc.pid) if trace_rss else None
                if sample:
                    traces[s].append((calls[s], *sample))
                time.sleep(vcfg.poll_ms / 1000)
            deadline = time.monotonic() + vcfg.flush_interval_ms / 1000 + 120
            while indices and (not durable[s] or durable[s][-1][1] < len(indices)) and time.monotonic() < deadline:
                process.process_records([], millis_behind_latest=0)  # idle polls: the interval flush comes
                calls[s] += 1
                time.sleep(vcfg.poll_ms / 1000)
            cpu[s] = (start_cpu, proc_cpu(process.proc.pid))
            rss[s] = peak_rss_mb(process.proc.pid)
            process.shutdown_requested()
            return process.close()
        except BaseException:
            process.kill()
            raise

    wall0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=shards) as pool:
        codes = list(pool.map(one, range(shards)))
    wall = time.perf_counter() - wall0
    sums: dict[str, int] = {}
    problems: list[str] = []
    reports = []
    for path in logs:
        got, bad = parse_processor_log(path)
        problems += [f"{path.name}: {p}" for p in bad]
        reports += flush_reports(path.read_text(encoding="utf-8", errors="replace").splitlines())
        for key, value in got.items():
            sums[key] = sums.get(key, 0) + value
    if any(codes) or problems:
        raise BenchError(f"{name}: processors exited with {codes}; problems: {problems[:3]}; logs in {work}")
    ages: list[float] = []
    uncovered = 0
    for s, indices in enumerate(stream.shard_indices):
        marks = durable[s]
        m = 0
        for k, i in enumerate(indices):
            while m < len(marks) and marks[m][1] < k + 1:
                m += 1
            if m == len(marks):
                uncovered += 1
            else:
                ages.append(max(0.0, marks[m][0] - arrival[i]))
    windowed = all(a is not None and b is not None for a, b in cpu)
    net = sum(b - a for a, b in cpu) if windowed else None  # type: ignore[operator, misc]
    floor = sums.get("distinct_arns", 0) + sums.get("dead_letters", 0)
    p50 = p99 = None
    if ages:
        ordered = sorted(ages)
        p50, p99 = round(percentile(ordered, 0.5), 1), round(percentile(ordered, 0.99), 1)
    return {
        "events": n,
        "processes": shards,
        "calls": sum(calls),
        "wall_s": round(wall, 2),
        "cpu_s": round(net, 3) if net is not None else None,
        "cpu_us_per_event": net / n * 1e6 if net is not None else None,
        "peak_rss_mb": max((r for r in rss if r is not None), default=None),
        "peak_rss_mb_per_process": rss,
        "flush_log": sums,
        "flushes": len(reports),
        "flush_ms": _pct([r.flush_ms for r in reports]),
        "flush_reasons": {r: sum(1 for x in reports if x.reason == r) for r in {x.reason for x in reports}},
        "records_per_flush": _pct([float(r.records) for r in reports]),
        "freshness_ms": {"p50": p50, "p99": p99, "records": len(ages), "not_checkpointed": uncovered},
        "freshness_in_flush_lines": any(r.freshness_p99_ms is not None for r in reports),
        "requests": sums.get("requests", 0),
        "requests_per_event": sums.get("requests", 0) / n,
        "floor_requests": floor,
        "x_floor": sums.get("requests", 0) / floor if floor else None,
        "arrival_ms": arrival,
        **({"rss_after_call_mb": traces} if trace_rss else {}),
    }


def cpu_split(stream: Stream, sample: int = 20_000, batch: int = 10_000) -> dict[str, float]:
    """µs/event of the processor's pure steps, measured in this process on the stream's first ``sample`` records:
    ``protocol`` (a processRecords line parsed by amazon_kclpy, each record's data decoded by the adapter's
    ``record_data``), ``decode`` (admit: decode, validate, the builder's walk; items are built at flush time, in
    the write share) and ``reduce`` (the reducer's offer)."""
    from amazon_kclpy import dispatch

    from processor.core.position import Position
    from processor.core.reducer import Reducer
    from processor.core.route import Candidate, admit
    from processor.shard.record_processor import record_data

    records = stream.records[:sample]
    lines = [
        json.dumps(
            {
                "action": "processRecords",
                "millisBehindLatest": 0,
                "records": [
                    {
                        "action": "record",
                        "data": base64.b64encode(r.data).decode(),
                        "partitionKey": r.partition_key,
                        "sequenceNumber": str(k),
                        "subSequenceNumber": 0,
                        "approximateArrivalTimestamp": 0,
                    }
                    for k, r in enumerate(records[a : a + batch])
                ],
            }
        )
        for a in range(0, len(records), batch)
    ]
    t0 = time.process_time()
    for line in lines:
        for message in json.loads(line, object_hook=dispatch.message_decode).records:
            record_data(message)
    t1 = time.process_time()
    entries = [
        (admit(r.data, Position("shardId-0", f"{k + 1:056d}"), r.partition_key, None, 0), k)
        for k, r in enumerate(records)
    ]
    t2 = time.process_time()
    reducer = Reducer()
    for entry, k in entries:
        if isinstance(entry, Candidate):
            if reducer.full:
                reducer.drain()
            reducer.offer(entry, entry.position)
    t3 = time.process_time()
    per = 1e6 / max(1, len(records))
    return {
        "protocol": round((t1 - t0) * per, 1),
        "decode": round((t2 - t1) * per, 1),
        "reduce": round((t3 - t2) * per, 1),
        "sample": len(records),
    }


def stored_versions(client: Any, settings: Settings) -> dict[tuple[str, str], int]:
    """Every stored (table, key) -> version of the two state tables (a scan)."""
    out: dict[tuple[str, str], int] = {}
    for table, key in ((settings.task_table, "taskArn"), (settings.instance_table, "containerInstanceArn")):
        for page in client.get_paginator("scan").paginate(
            TableName=table, ProjectionExpression="#k, #v", ExpressionAttributeNames={"#k": key, "#v": "version"}
        ):
            for item in page["Items"]:
                out[(table, item[key]["S"])] = int(item["version"]["N"])
    return out


def run_volume(vcfg: VolumeConfig, work: Path, say: Any) -> tuple[Stream, dict[str, Any]]:
    """The whole profile (see the module docstring): returns the stream and the results."""
    from workshop.bench import moto_keepalive
    from workshop.bench.emulator import check_tables, fresh_tables
    from workshop.bench.lambda_way import run_lambda
    from workshop.bench.stream import build_stream
    from workshop.local.stack import aws_client

    server = moto_keepalive.start(work / "moto.log")
    try:
        endpoint = server.endpoint
        client = aws_client("dynamodb", endpoint)
        say(
            f"generating {vcfg.bench.events:,} records (fleet {vcfg.bench.fleet.tasks} tasks, "
            f"{vcfg.bench.fleet.instances} "
            f"instances) ..."
        )
        stream = build_stream(vcfg.bench)
        run_id = f"{int(time.time()) % 100000}"
        settings = fresh_tables(client, "volume", run_id)
        results: dict[str, Any] = {}
        say(f"first pass: {vcfg.bench.shards} processors, {vcfg.batch:,}-record batches ...")
        moto_keepalive.meter(endpoint, reset=True)
        first = run_pass(stream, vcfg, settings, endpoint, work, "first")
        first["capacity"] = moto_keepalive.meter(endpoint, reset=True)
        first["tables"] = check_tables(client, settings, stream.truth, dead_letters=True)
        if first["tables"]["stale"] or first["tables"]["unexpected"]:
            raise BenchError(f"first pass left the tables wrong: {first['tables']}; logs in {work}")
        arrivals = first.pop("arrival_ms")
        results["first"] = first
        say(
            f"  {first['cpu_us_per_event']:.0f} µs/event, {first['requests_per_event']:.3f} requests/event, "
            f"peak RSS {first['peak_rss_mb']} MB, freshness p99 {first['freshness_ms']['p99']} ms"
        )
        if vcfg.replay:
            say("replay: new processors from TRIM_HORIZON into the same tables ...")
            before = stored_versions(client, settings)
            moto_keepalive.meter(endpoint, reset=True)
            replay = run_pass(stream, vcfg, settings, endpoint, work, "replay", arrivals)
            replay["capacity"] = moto_keepalive.meter(endpoint, reset=True)
            replay.pop("arrival_ms")
            after = stored_versions(client, settings)
            replay["versions_changed"] = sum(1 for k, v in after.items() if before.get(k) != v)
            replay["cost_ratio"] = replay["capacity"]["write_unit_equivalents"] / max(
                1e-9, first["capacity"]["write_unit_equivalents"]
            )
            results["replay"] = replay
            say(f"  cost ratio {replay['cost_ratio']:.3f}, {replay['versions_changed']} versions changed")
        if vcfg.steady_rate and vcfg.steady_s:
            steady_cfg = dataclasses.replace(vcfg.bench, events=vcfg.steady_rate * vcfg.steady_s * vcfg.bench.shards)
            say(f"steady pass: {steady_cfg.events:,} records at {vcfg.steady_rate}/s per shard into fresh tables ...")
            steady_stream = build_stream(steady_cfg)
            steady_settings = fresh_tables(client, "volume-steady", run_id)
            moto_keepalive.meter(endpoint, reset=True)
            steady = run_pass(steady_stream, vcfg, steady_settings, endpoint, work, "steady", rate=vcfg.steady_rate)
            steady["capacity"] = moto_keepalive.meter(endpoint, reset=True)
            steady["tables"] = check_tables(client, steady_settings, steady_stream.truth, dead_letters=True)
            if steady["tables"]["stale"] or steady["tables"]["unexpected"]:
                raise BenchError(f"steady pass left the tables wrong: {steady['tables']}; logs in {work}")
            steady.pop("arrival_ms")
            steady["rate_per_shard"] = vcfg.steady_rate
            results["steady"] = steady
            say(
                f"  freshness p50/p99 {steady['freshness_ms']['p50']} / {steady['freshness_ms']['p99']} ms, "
                f"{steady['cpu_us_per_event']:.0f} µs/event"
            )
        if vcfg.lambda_events:
            lam_cfg = dataclasses.replace(vcfg.bench, events=min(vcfg.lambda_events, vcfg.bench.events))
            say(f"per-event Lambda on the first {lam_cfg.events:,} records ...")
            lam_settings = fresh_tables(client, "volume-lambda", run_id)
            moto_keepalive.meter(endpoint, reset=True)
            lam = run_lambda(lam_cfg, 1, lam_settings, endpoint, work)
            lam["capacity"] = moto_keepalive.meter(endpoint, reset=True)
            results["lambda"] = lam
            say(f"  {lam['cpu_us_per_event']:.0f} µs/event, {lam['requests_per_event']:.3f} requests/event")
        say("measuring the processor's pure steps in-process ...")
        results["cpu_split"] = cpu_split(stream, batch=vcfg.batch)
    finally:
        server.stop()
    return stream, results
