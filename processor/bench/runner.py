"""Benchmark: the ecs-state processor against the documented per-event Lambda, on one stream and one DynamoDB.

One realistic stream (:func:`processor.loadgen.fleet.generate`: duplicates, bounded reordering, a little poison and
ignored types) is split into Kinesis shards by the MD5 of the partition key, as Kinesis does. Contenders, each on
fresh tables of the same moto server (started here on 127.0.0.1):

* ``ours``: one ``ecs-state-processor`` process per shard, driven through the MultiLang protocol
  (:mod:`processor.testing.multilang_driver`), shards concurrently. Real time does not pass in a driven run, so the flush window is
  simulated: every record gets an arrival time (the simulated fleet's own clock, or ``--rate``), each shard's
  records are cut into ``--flush-ms`` windows of that clock, each window is one ``processRecords`` call, and the
  processor runs with ``flushIntervalMillis = 0`` so that each call is exactly one flush.
* ``lambda`` / ``lambda-8``: the documented Lambda logic per event: ``get_item`` on the ARN, then an unconditional
  ``put_item`` of ``detail`` + ``cw_version`` when there is no item or the stored version is lower; boto3's
  resource API (as the documented Lambda), sequentially or on N threads pulling from the same stream in order.
  It decodes with the processor's own decoder (same events accepted, same JSON decoding cost), and by default its
  ``get_item`` fetches only ``version`` (cheaper for the Lambda than the documented whole-item read, and much
  faster on moto; ``--lambda-full-get`` for the literal one). It runs in a child process that regenerates the
  same stream and measures its own CPU.

Per contender: DynamoDB requests per event (ours: ``requests`` summed from the processors' flush log lines; the
Lambda: every HTTP request botocore sends, retries included); CPU µs per event (ours: user+sys of the processor
processes between their ``initialize`` and ``shutdownRequested`` replies, from /proc, so interpreter start-up and
exit are left out, and the gross ``RUSAGE_CHILDREN`` figure beside it; the Lambda: ``RUSAGE_SELF`` of its process
around the work, after its clients were built); events/s (wall); ARNs left stale (missing or at a lower version
than the ground truth, :mod:`processor.loadgen.ground_truth`). The floor is the sum over flush windows of the distinct ARNs in
the window, divided by the events: the fewest state writes any flush-per-window design can do.

Linux only (/proc, ``resource``). The chart is drawn by :mod:`processor.bench.chart` (pure Python, no matplotlib).
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import itertools
import json
import os
import pstats
import re
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Sequence

from processor.config import Settings
from processor.errors import BenchError
from processor.loadgen.fleet import Options, Record, generate
from processor.loadgen.ground_truth import GroundTruth
from processor.local.paths import project_dir
from processor.logs import parse_line
from processor.shard.flush_report import flush_reports, total

REPO_ROOT = project_dir()
CONTENDERS = ("ours", "lambda", "lambda-8")
LABELS = {"ours": "ecs-state (MultiLang, {shards} shards)", "lambda": "Lambda get+put, sequential",
          "lambda-8": "Lambda get+put, {workers} workers"}
STATE_KINDS = ("task", "instance")
# Settings that would send a child elsewhere than the emulator (ProcessorProcess adds os.environ back under the
# env it is given, so the ones that matter are also overridden in child_env).
_TIME = re.compile(rb'"time":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"')



@dataclass(frozen=True)
class BenchConfig:
    events: int = 50_000
    shards: int = 4
    flush_ms: int = 5000
    rate: float = 0.0            # events/s on the whole stream; 0 = the simulated fleet's own clock
    workers: int = 8             # threads of the concurrent Lambda contender
    clusters: int = 2            # fleet: the producer's defaults
    instances: int = 4
    tasks: int = 20
    duplicate_rate: float = 0.05
    reorder_window: int = 20
    poison_rate: float = 0.002
    ignored_rate: float = 0.01
    seed: int = 1
    contenders: tuple[str, ...] = CONTENDERS
    lambda_full_get: bool = False   # fetch the whole item (as the documented Lambda) instead of only `version`

    def options(self) -> Options:
        return Options(clusters=self.clusters, instances=self.instances, tasks=self.tasks,
                       duplicate_rate=self.duplicate_rate, reorder_window=self.reorder_window,
                       poison_rate=self.poison_rate, ignored_rate=self.ignored_rate, seed=self.seed)

    def label(self, contender: str) -> str:
        return LABELS[contender].format(shards=self.shards, workers=self.workers)


# ------------------------------------------------------------------------------------------- the stream (pure)


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


def distinct_per_window(records: Sequence[Record], shard_indices: Sequence[Sequence[int]],
                        windows: Sequence[Sequence[tuple[int, int]]]) -> int:
    """Sum over every shard's flush windows of the distinct (kind, ARN) state events in the window."""
    total = 0
    for indices, cuts in zip(shard_indices, windows):
        for a, b in cuts:
            total += len({(records[i].kind, records[i].arn) for i in indices[a:b] if records[i].kind in STATE_KINDS})
    return total


@dataclass
class Stream:
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
    return {"distinct_arns_per_window_sum": distinct, "requests_per_event": distinct / n if n else 0.0,
            "poison_records": poison, "with_dead_letters_per_event": (distinct + poison) / n if n else 0.0,
            "windows": len(sizes), "records_per_call": {
                "mean": round(statistics.mean(sizes), 1) if sizes else 0, "median": statistics.median(sizes) if sizes
                else 0, "max": max(sizes, default=0)}}


def floor_sweep(stream: Stream, flush_ms_values: Iterable[int] = (1000, 2000, 5000, 10_000, 30_000, 60_000)
                ) -> list[dict[str, Any]]:
    """The floor for other flush intervals (same stream and arrival clock); pure, cheap."""
    n = len(stream.records)
    out = []
    for ms in flush_ms_values:
        windows = [flush_windows(ix, stream.arrivals, ms / 1000) for ix in stream.shard_indices]
        distinct = distinct_per_window(stream.records, stream.shard_indices, windows)
        out.append({"flush_ms": ms, "floor_requests_per_event": round(distinct / n, 4) if n else 0.0,
                    "mean_records_per_call": round(n / max(1, sum(len(w) for w in windows)), 1)})
    return out


# ----------------------------------------------------------------------------------------------- environment


def child_env(endpoint: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment pointed at the emulator only (dummy credentials, no profile or token)."""
    from processor.local.env import local_env

    return {**local_env(dynamodb=endpoint, drop_settings=True), "ECS_STATE_PROPERTIES": "", **(extra or {})}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _proc_cpu(pid: int) -> float | None:
    """user+sys CPU seconds a live process has used so far (Linux /proc; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def fresh_tables(client: Any, contender: str, run_id: str) -> Settings:
    from processor.ops.setup_tables import ensure_tables

    name = f"bench-{run_id}-{contender}"
    settings = Settings(task_table=f"{name}-tasks", instance_table=f"{name}-instances",
                        dead_letter_table=f"{name}-dead-letters")
    ensure_tables(settings, client)
    return settings


def check_tables(client: Any, settings: Settings, truth: dict[str, Any], dead_letters: bool) -> dict[str, Any]:
    """Compare a contender's tables with the truth: stale = ARNs missing or stored at a lower version."""
    from processor.loadgen.verify import compare, read_tables

    tasks, instances, dead = read_tables(settings, client)
    report = compare(truth, tasks, instances, dead)
    out: dict[str, Any] = {"matched": 0, "stale": 0, "missing": 0, "regressed": 0, "unexpected": 0,
                           "status_mismatch": 0, "stale_examples": []}
    for diff in (report.tasks, report.instances):
        out["matched"] += diff.matched
        out["missing"] += len(diff.missing)
        out["regressed"] += len(diff.regressed)
        out["unexpected"] += len(diff.unexpected)
        out["status_mismatch"] += len(diff.status_mismatch)
        out["stale_examples"] += (diff.regressed + diff.missing)[:3]
    out["stale"] = out["missing"] + out["regressed"]
    out["expected_arns"] = report.tasks.expected + report.instances.expected
    if dead_letters:
        dl = report.dead_letters
        out["dead_letters"] = {"ok": dl.ok, "expected": dl.expected, "stored": dl.stored, "missing": len(dl.missing),
                               "unexpected": len(dl.unexpected)}
    return out


# ------------------------------------------------------------------------------------------------ contenders


PROBLEM_EVENTS = ("flush_failed", "processor_bug", "config_error")
SUMMED = ("records", "distinct_arns", "writes", "stale", "dead_letters", "requests", "retries", "throttled",
          "duplicates", "superseded", "ignored")


def _parse_processor_log(path: Path) -> tuple[dict[str, int], list[str]]:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    reports = flush_reports(lines)
    sums = {"flushes": len(reports), **{key: total(reports, key) for key in SUMMED}}
    problems = [line[:300] for line in lines if (parse_line(line) or {}).get("event") in PROBLEM_EVENTS]
    return sums, problems


def run_ours(stream: Stream, cfg: BenchConfig, settings: Settings, endpoint: str, work: Path) -> dict[str, Any]:
    """One processor per shard, concurrently, each flush window one processRecords call (flush interval 0)."""
    from processor.testing.multilang_driver import KinesisRecord, ProcessorProcess

    env = child_env(endpoint, {
        "ECS_STATE_TASK_TABLE": settings.task_table, "ECS_STATE_INSTANCE_TABLE": settings.instance_table,
        "ECS_STATE_DEAD_LETTER_TABLE": settings.dead_letter_table, "ECS_STATE_FLUSH_INTERVAL_MILLIS": "0",
        "ECS_STATE_LOG_LEVEL": "INFO", "ECS_STATE_METRICS": "none"})
    start_ms = cfg.options().start_ms
    per_shard = [[KinesisRecord(stream.records[i].data, stream.records[i].partition_key, f"{k + 1:056d}", 0,
                                start_ms + int(stream.arrivals[i] * 1000)) for k, i in enumerate(indices)]
                 for indices in stream.shard_indices]

    checkpoints = [0] * cfg.shards
    startup: list[float | None] = [None] * cfg.shards   # CPU of each process when `initialize` was answered
    finish: list[float | None] = [None] * cfg.shards    # ... and when `shutdownRequested` (final flush) was
    logs = [work / f"ours-shard{s}.log" for s in range(cfg.shards)]
    for path in logs:   # the driver appends; a previous run's lines must not be counted
        path.unlink(missing_ok=True)

    def one(s: int) -> int:
        process = ProcessorProcess(env=env, stderr_path=logs[s]).start()
        try:
            process.initialize(f"shardId-{s:012d}")
            assert process.proc is not None
            # start-up (interpreter, imports, settings, boto3 client): done once per process, not per event
            startup[s] = _proc_cpu(process.proc.pid)
            for a, b in stream.windows[s]:
                process.process_records(per_shard[s][a:b])
            process.shutdown_requested()
            finish[s] = _proc_cpu(process.proc.pid)
            checkpoints[s] = len(process.checkpoints)
            return process.close()
        except BaseException:
            process.kill()
            raise

    before = _children_cpu()
    wall_start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=cfg.shards) as pool:
        codes = list(pool.map(one, range(cfg.shards)))
    wall = time.perf_counter() - wall_start
    cpu = _children_cpu() - before
    sums: dict[str, int] = {}
    problems: list[str] = []
    for path in logs:
        got, bad = _parse_processor_log(path)
        problems += [f"{path.name}: {p}" for p in bad]
        for key, value in got.items():
            sums[key] = sums.get(key, 0) + value
    if any(codes) or problems:
        raise BenchError(f"processors exited with {codes}; problems: {problems[:3]}; logs in {work}")
    n = len(stream.records)
    windowed = all(x is not None for x in startup + finish)
    # the work: from `initialize` answered to `shutdownRequested` answered, summed over the processes (start-up
    # and interpreter exit are once per process, not per event); without /proc, the gross figure
    net_cpu = sum(f - b for b, f in zip(startup, finish)) if windowed else cpu  # type: ignore[operator]
    startup_cpu = sum(startup) if windowed else 0.0  # type: ignore[arg-type]
    return {"events": n, "requests": sums.get("requests", 0), "requests_per_event": sums.get("requests", 0) / n,
            "cpu_s": round(net_cpu, 3), "cpu_us_per_event": net_cpu / n * 1e6,
            "cpu_gross_s": round(cpu, 3), "cpu_gross_us_per_event": cpu / n * 1e6,
            "startup_cpu_s": round(startup_cpu, 3), "cpu_windowed": windowed,
            "wall_s": round(wall, 3), "events_per_s": n / wall,
            "flush_log": sums, "checkpoints": sum(checkpoints), "processes": cfg.shards}


def run_lambda(cfg: BenchConfig, workers: int, settings: Settings, endpoint: str, work: Path) -> dict[str, Any]:
    """The per-event Lambda logic in a child process (it regenerates the same stream from the same options)."""
    spec = {"options": asdict(cfg.options()), "events": cfg.events, "workers": workers,
            "tables": {"task": settings.task_table, "instance": settings.instance_table},
            "full_get": cfg.lambda_full_get, "out": str(work / f"lambda-{workers}.json")}
    spec_path = work / f"lambda-{workers}-spec.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    log_path = work / f"lambda-{workers}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.run([sys.executable, "-m", "processor.bench.lambda_child", str(spec_path)],
                              env=child_env(endpoint), stdout=log, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        raise BenchError(f"the Lambda contender ({workers} workers) exited with {proc.returncode}; see {log_path}")
    return json.loads(Path(spec["out"]).read_text(encoding="utf-8"))


def lambda_handler(data: bytes, tables: dict[str, Any], full_get: bool) -> str:
    """The documented per-event logic for one record: get the stored item, put the event's state when there is
    none or the stored version is lower. Returns ``put``, ``older`` or ``skipped`` (not a state event)."""
    from processor.core.events import Event, decode

    event = decode(data)
    if not isinstance(event, Event):
        return "skipped"
    table = tables[event.kind]
    request: dict[str, Any] = {"Key": {event.key: event.arn}}
    if not full_get:
        request.update(ProjectionExpression="#v", ExpressionAttributeNames={"#v": "version"})
    stored = table.get_item(**request).get("Item")
    if stored is not None and stored["version"] >= event.version:
        return "older"
    table.put_item(Item={"cw_version": event.envelope_version, **event.detail})
    return "put"


def lambda_child(spec_path: str) -> int:
    """Entry point of the Lambda contender's process: writes its figures as JSON to ``spec["out"]``."""
    import boto3
    from botocore.config import Config

    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    records = list(itertools.islice(generate(Options(**spec["options"])), spec["events"]))
    workers = int(spec["workers"])
    http = [0] * workers
    outcomes: list[dict[str, int]] = [{} for _ in range(workers)]
    errors: list[str] = []
    tables = []
    for w in range(workers):   # one client per worker, as every concurrent Lambda environment has its own
        ddb = boto3.session.Session().resource("dynamodb", config=Config(
            retries={"mode": "standard", "total_max_attempts": 3}, max_pool_connections=2))

        def count(w: int = w, **_: Any) -> None:
            http[w] += 1
        ddb.meta.client.meta.events.register("before-send.dynamodb", count)
        tables.append({"task": ddb.Table(spec["tables"]["task"]), "instance": ddb.Table(spec["tables"]["instance"])})
    feed = iter(records)
    lock = threading.Lock()

    def worker(w: int) -> None:
        while True:
            with lock:
                rec = next(feed, None)
            if rec is None:
                return
            try:
                outcome = lambda_handler(rec.data, tables[w], spec["full_get"])
            except Exception as exc:   # a real Lambda would fail the invocation (and EventBridge retry it)
                outcome = "failed"
                if len(errors) < 5:
                    errors.append(_brief_error(exc))
            outcomes[w][outcome] = outcomes[w].get(outcome, 0) + 1

    cpu0, wall0 = _self_cpu(), time.perf_counter()
    if workers == 1:
        worker(0)
    else:
        threads = [threading.Thread(target=worker, args=(w,)) for w in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    wall, cpu = time.perf_counter() - wall0, _self_cpu() - cpu0
    totals: dict[str, int] = {}
    for o in outcomes:
        for key, value in o.items():
            totals[key] = totals.get(key, 0) + value
    n = len(records)
    result = {"events": n, "requests": sum(http), "requests_per_event": sum(http) / n, "cpu_s": round(cpu, 3),
              "cpu_us_per_event": cpu / n * 1e6, "wall_s": round(wall, 3), "events_per_s": n / wall,
              "workers": workers, "outcomes": totals, "get_item": sum(v for k, v in totals.items() if k != "skipped"),
              "errors": errors, "full_get": spec["full_get"]}
    Path(spec["out"]).write_text(json.dumps(result), encoding="utf-8")
    return 0


# ------------------------------------------------------------------------------------------------- profiling


def _brief_error(exc: BaseException) -> str:
    """One line: moto's 500 replies carry an HTML page after the message."""
    text = str(exc).split("\n", 1)[0].split(": <", 1)[0]
    return f"{type(exc).__name__}: {text[:200]}"


def profile_core(stream: Stream, top: int = 18) -> dict[str, Any]:
    """The processor's pure per-record path (decode, item, reduce) in this process: µs/event without a
    profiler, then the cProfile hot spots. The DynamoDB client side is profiled by :func:`profile_put`."""
    from processor.core.items import Item
    from processor.core.position import Position
    from processor.core.reducer import Reducer
    from processor.core.route import route

    def run() -> None:
        reducer = Reducer(10**9, 2**62)
        for k, rec in enumerate(stream.records):
            position = Position("shardId-000000000000", f"{k + 1:056d}")
            entry = route(rec.data, position, rec.partition_key, None)
            if isinstance(entry, Item):
                reducer.offer(entry, position)

    cpu0 = time.process_time()
    run()
    us = (time.process_time() - cpu0) / len(stream.records) * 1e6
    profiler = cProfile.Profile()
    profiler.runcall(run)
    return {"core_us_per_event": round(us, 1),
            "hot_spots": [h for h in _top(profiler, top + 1) if not h["function"].startswith("processor/bench.py")]}


def profile_put(endpoint: str, stream: Stream, settings: Settings, count: int = 300, top: int = 18
                ) -> dict[str, Any]:
    """The client side of the processor's conditional PutItem (the request the writer builds, on a client
    configured as the processor's: no parameter validation), in this process."""

    from processor.core.items import Item
    from processor.core.position import Position
    from processor.core.route import route
    from processor.local.env import local_client
    from processor.shard.writer import CONDITION

    client = local_client("dynamodb", endpoint, parameter_validation=False, tcp_keepalive=True,
                          retries={"mode": "standard", "total_max_attempts": 1})

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
                client.put_item(TableName=tables[item.kind], Item=item.attributes, ConditionExpression=CONDITION,
                                ExpressionAttributeNames={"#k": item.key, "#v": "version"},
                                ExpressionAttributeValues={":v": {"N": str(item.version)}})
            except client.exceptions.ConditionalCheckFailedException:
                pass

    cpu0, wall0 = time.process_time(), time.perf_counter()
    run()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    profiler = cProfile.Profile()
    profiler.runcall(run)
    return {"puts": len(items), "client_cpu_us_per_put": round(cpu / max(1, len(items)) * 1e6, 1),
            "wall_ms_per_put": round(wall / max(1, len(items)) * 1000, 2), "hot_spots": _top(profiler, top)}


def _top(profiler: cProfile.Profile, top: int) -> list[dict[str, Any]]:
    stats = pstats.Stats(profiler, stream=io.StringIO())
    rows = []
    total = sum(v[2] for v in stats.stats.values()) or 1.0   # type: ignore[attr-defined]
    for (filename, line, name), (cc, nc, tt, ct, _callers) in stats.stats.items():   # type: ignore[attr-defined]
        rows.append({"function": f"{_short(filename)}:{line}({name})", "calls": nc, "tottime_s": round(tt, 4),
                     "cumtime_s": round(ct, 4), "tottime_share": round(tt / total, 4)})
    rows.sort(key=lambda r: r["tottime_s"], reverse=True)
    return rows[:top]


def _short(filename: str) -> str:
    for marker in ("site-packages/", str(REPO_ROOT) + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


# ------------------------------------------------------------------------------------------------------ report


def run_bench(cfg: BenchConfig, out_dir: Path, name: str = "results", endpoint: str | None = None,
              profile: bool = False, command: str = "", chart: bool = True,
              progress: Any = None) -> dict[str, Any]:
    """Run the contenders of ``cfg`` on one stream; writes ``<name>.json`` (and ``<name>.png``) in ``out_dir``."""
    from processor.local.stack import aws_client, start_moto

    say = progress or (lambda text: None)
    code = code_version()   # before running: the code the processes load
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"ecs-state-bench-{name}-"))   # logs of moto, processors, Lambda
    say(f"logs in {work}")
    server = None
    if endpoint is None:
        server = start_moto(log_path=work / "moto.log")
        endpoint = server.endpoint
    try:
        client = aws_client("dynamodb", endpoint)
        say(f"generating {cfg.events} records ...")
        stream = build_stream(cfg)
        floor = floor_figures(stream)
        run_id = secrets.token_hex(3)
        results: dict[str, Any] = {}
        for contender in cfg.contenders:
            settings = fresh_tables(client, contender, run_id)
            say(f"running {cfg.label(contender)} ...")
            if contender == "ours":
                result = run_ours(stream, cfg, settings, endpoint, work)
            elif contender in ("lambda", "lambda-8"):
                result = run_lambda(cfg, 1 if contender == "lambda" else cfg.workers, settings, endpoint, work)
            else:
                raise ValueError(f"unknown contender {contender!r}; choose from {', '.join(CONTENDERS)}")
            result["tables"] = check_tables(client, settings, stream.truth, dead_letters=contender == "ours")
            result["label"] = cfg.label(contender)
            result["x_floor"] = (result["requests_per_event"] / floor["requests_per_event"]
                                 if floor["requests_per_event"] else None)
            results[contender] = result
            say(f"  {result['requests_per_event']:.3f} requests/event, {result['cpu_us_per_event']:.0f} µs CPU/event, "
                f"{result['events_per_s']:.0f} events/s, {result['tables']['stale']} stale ARNs")
        profiles = {}
        if profile:
            say("profiling the processor's per-record path and the client side of a conditional put ...")
            profiles["core"] = profile_core(stream)
            profiles["put"] = profile_put(endpoint, stream, fresh_tables(client, "profile", run_id))
    finally:
        if server is not None:
            server.stop()
    totals = stream.truth["totals"]
    report: dict[str, Any] = {
        "command": command,
        "logs": str(work),
        "config": {**asdict(cfg), "contenders": list(cfg.contenders)},
        "code": code,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "load_avg_1m_at_end": os.getloadavg()[0],
                    "emulator": "moto server (DynamoDB), 127.0.0.1"},
        "stream": {"events": len(stream.records), "task_events": totals["task_events"],
                   "instance_events": totals["instance_events"], "duplicates": totals["duplicates"],
                   "poison": totals["poison"], "ignored": totals["ignored"], "distinct_arns": totals["tasks"] +
                   totals["instances"], "mean_bytes": round(totals["bytes"] / max(1, totals["records"])),
                   "simulated_seconds": round(stream.duration_s, 1),
                   "arrival_rate_per_s": round(len(stream.records) / stream.duration_s, 2) if stream.duration_s else None,
                   "clock": f"{cfg.rate} events/s" if cfg.rate > 0 else "the simulated fleet's own clock",
                   "generate_s": round(stream.generate_s, 2)},
        "floor": floor,
        "floor_sweep": floor_sweep(stream),
        "results": results,
        "targets": targets(results, floor),
        "profiles": profiles,
    }
    (out_dir / f"{name}.json").write_text(json.dumps(report, indent=1, default=str) + "\n", encoding="utf-8")
    if chart:
        write_png(report, out_dir / f"{name}.png")
    return report


def code_version() -> dict[str, Any]:
    """The commit measured and the processor files that differed from it (read-only git queries)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10,
                                  check=False).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    modified = [line[3:] for line in git("status", "--porcelain", "--", "processor").splitlines()
                if line[:2].strip() and not line.startswith("??")]
    return {"commit": git("rev-parse", "--short", "HEAD") or None, "modified": modified}


def targets(results: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets as figures (not assertions)."""
    out: dict[str, Any] = {}
    ours = results.get("ours")
    if not ours:
        return out
    if floor["requests_per_event"]:
        out["ours_requests_vs_floor"] = {"value": round(ours["requests_per_event"] / floor["requests_per_event"], 3),
                                         "target": "<= 1.2"}
    for name in ("lambda", "lambda-8"):
        other = results.get(name)
        if other and other["requests_per_event"]:
            out[f"ours_requests_vs_{name}"] = {
                "value": round(ours["requests_per_event"] / other["requests_per_event"], 4), "target": "<= 1/6 (0.1667)"}
        if other and other["cpu_us_per_event"]:
            out[f"ours_cpu_vs_{name}"] = {"value": round(ours["cpu_us_per_event"] / other["cpu_us_per_event"], 4),
                                          "target": "<= 1/4 (0.25)"}
    out["ours_stale_arns"] = {"value": ours["tables"]["stale"], "target": "0"}
    for item in out.values():
        item["met"] = _met(item["value"], item["target"])
    return out


def _met(value: float, target: str) -> bool:
    parts = target.split()
    limit = parts[1] if parts[0] == "<=" else parts[0]
    bound = float(limit.split("/")[0]) / float(limit.split("/")[1]) if "/" in limit else float(limit)
    return value <= bound + 1e-12 if target.startswith("<=") else value == bound


def render_markdown(report: dict[str, Any]) -> str:
    cfg, stream, floor, results = report["config"], report["stream"], report["floor"], report["results"]
    n = stream["events"]
    window = floor["records_per_call"]
    rate = stream["arrival_rate_per_s"] or 0
    lines = [
        f"### ecs-state vs the per-event Lambda: {n:,} events, one moto DynamoDB",
        "",
        f"Stream: `ecs_sim.generate` seed {cfg['seed']}, fleet {cfg['clusters']} clusters / {cfg['instances']} "
        f"container instances / {cfg['tasks']} concurrent tasks; {stream['task_events']:,} task + "
        f"{stream['instance_events']:,} instance events ({stream['duplicates']:,} duplicates), {stream['poison']} poison, "
        f"{stream['ignored']} ignored; reorder window {cfg['reorder_window']}; {stream['distinct_arns']:,} distinct ARNs; "
        f"mean record {stream['mean_bytes']:,} bytes.",
        f"Flush window: {cfg['flush_ms']} ms of {stream['clock']} ({rate:.1f} events/s, "
        f"{rate / cfg['shards']:.1f} per shard over {cfg['shards']} shards): each `processRecords` call is one window, "
        f"processor run with `ECS_STATE_FLUSH_INTERVAL_MILLIS=0`; K = {window['mean']} records per call on average "
        f"(median {window['median']}, max {window['max']}; = events/s per shard x {cfg['flush_ms'] / 1000:g} s).",
        "",
        "| contender | DynamoDB requests | requests/event | x floor | CPU µs/event | events/s (wall) | stale ARNs |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| floor: distinct ARNs per flush window | {floor['distinct_arns_per_window_sum']:,} | "
        f"{floor['requests_per_event']:.3f} | 1.00 | | | |",
    ]
    for name, r in results.items():
        extra = ""
        t = r["tables"]
        if t["unexpected"] or t["status_mismatch"]:
            extra = f" (+{t['unexpected']} unexpected, {t['status_mismatch']} status mismatch)"
        lines.append(f"| {r['label']} | {r['requests']:,} | {r['requests_per_event']:.3f} | "
                     f"{r['x_floor'] or 0:.2f} | {r['cpu_us_per_event']:,.0f} | {r['events_per_s']:,.1f} | "
                     f"{t['stale']}{extra} |")
    lines.append("")
    ours = results.get("ours")
    if ours:
        fl = ours["flush_log"]
        lines.append(f"ecs-state: {fl.get('flushes', 0):,} flushes, {fl.get('writes', 0):,} writes, "
                     f"{fl.get('stale', 0):,} conditional-check rejections, {fl.get('dead_letters', 0)} dead letters "
                     f"(floor incl. one dead-letter put per poison record: {floor['with_dead_letters_per_event']:.3f}/event), "
                     f"{fl.get('retries', 0)} retries; CPU {ours['cpu_s']} s between `initialize` and `shutdownRequested` "
                     f"summed over the {ours['processes']} processes (start-up {ours['startup_cpu_s']} s; with "
                     f"start-up and exit {ours['cpu_gross_us_per_event']:.0f} µs/event); "
                     f"dead letters exact: {ours['tables'].get('dead_letters', {}).get('ok')}.")
    for name in ("lambda", "lambda-8"):
        r = results.get(name)
        if r:
            lines.append(f"{r['label']}: outcomes {r['outcomes']}; get_item "
                         f"{'whole item' if r['full_get'] else 'projected to version'}"
                         + (f"; {r['outcomes'].get('failed', 0)} failed, e.g. `{_brief_text(r['errors'][0])}` (moto "
                            f"cannot store a string with a lone surrogate: the lone-surrogate poison records, which "
                            f"the processor dead-letters)" if r["errors"] else "") + ".")
    if report["targets"]:
        lines += ["", "Targets (figures, not assertions):"]
        for key, t in report["targets"].items():
            lines.append(f"- {key.replace('_', ' ')}: {t['value']} (target {t['target']}) "
                         f"{'met' if t['met'] else 'NOT met'}")
    lines += ["", "Floor for other flush intervals (same stream and clock): " + ", ".join(
        f"{s['flush_ms'] / 1000:g} s -> {s['floor_requests_per_event']:.3f} (K~{s['mean_records_per_call']})"
        for s in report["floor_sweep"])]
    if report["profiles"]:
        core, put = report["profiles"].get("core"), report["profiles"].get("put")
        if core:
            lines += ["", f"Core per-record path (decode + item + reduce, in-process): {core['core_us_per_event']} µs/event. "
                          "Hot spots (tottime):"]
            lines += [f"- {h['function']}: {h['tottime_s']} s, {h['calls']:,} calls" for h in core["hot_spots"][:8]]
        if put:
            lines += ["", f"Client side of one conditional PutItem (botocore, validation off): "
                          f"{put['client_cpu_us_per_put']} µs CPU, {put['wall_ms_per_put']} ms wall against moto "
                          f"(sequential, one thread). "
                          "Hot spots (tottime):"]
            lines += [f"- {h['function']}: {h['tottime_s']} s, {h['calls']:,} calls" for h in put["hot_spots"][:8]]
    code = report.get("code") or {}
    lines += ["", f"Code: commit {code.get('commit')}"
              + (f" with local changes in {', '.join(code['modified'])}" if code.get("modified") else "") + ".",
              f"Machine: {report['machine']['cpus']} CPUs, Python {report['machine']['python']}, load average "
                  f"{report['machine']['load_avg_1m_at_end']:.1f} at the end (other work shares the cores: wall figures "
                  f"are moto-bound and load-dependent).",
              f"Command: `{report['command']}`"]
    return "\n".join(lines)


def _brief_text(text: str) -> str:
    return text.split("\n", 1)[0].split(": <", 1)[0][:160]


def write_png(report: dict[str, Any], path: Path) -> Path:
    from processor.bench.chart import Panel, write_chart

    results = report["results"]
    names = list(results)
    labels = [{"ours": "ECS-STATE", "lambda": "LAMBDA\nSEQUENTIAL",
               "lambda-8": f"LAMBDA\n{report['config']['workers']} WORKERS"}[n] for n in names]
    floor = report["floor"]["requests_per_event"]
    panels = [
        Panel("DYNAMODB REQUESTS / EVENT", [results[n]["requests_per_event"] for n in names], "{:.3f}",
              [("floor", floor)]),
        Panel("CPU µs / EVENT", [results[n]["cpu_us_per_event"] for n in names], "{:,.0f}"),
        Panel("EVENTS / S (WALL, MOTO-BOUND)", [results[n]["events_per_s"] for n in names], "{:,.0f}"),
        Panel("ARNS LEFT STALE", [float(results[n]["tables"]["stale"]) for n in names], "{:.0f}"),
    ]
    s, c = report["stream"], report["config"]
    footer = [f"{s['events']:,} events, {s['distinct_arns']:,} ARNs, {s['duplicates']:,} duplicates, "
              f"{s['poison']} poison, reorder window {c['reorder_window']}",
              f"{c['shards']} shards, flush window {c['flush_ms']} ms at {s['arrival_rate_per_s']} events/s: "
              f"K = {report['floor']['records_per_call']['mean']} records per call",
              f"command: {report['command']}"[:100]]
    return write_chart(path, f"ECS-STATE VS PER-EVENT LAMBDA, {s['events']:,} EVENTS", labels, panels, footer)


# ------------------------------------------------------------------------------------------------------- cli


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = BenchConfig()
    p.add_argument("--events", type=int, default=d.events, help=f"records in the stream (default {d.events})")
    p.add_argument("--shards", type=int, default=d.shards)
    p.add_argument("--flush-ms", type=int, default=d.flush_ms, help="flush window in ms of the arrival clock")
    p.add_argument("--rate", type=float, default=d.rate,
                   help="arrival rate in events/s (default 0: the simulated fleet's own clock)")
    p.add_argument("--workers", type=int, default=d.workers, help="threads of the concurrent Lambda contender")
    p.add_argument("--clusters", type=int, default=d.clusters)
    p.add_argument("--instances", type=int, default=d.instances)
    p.add_argument("--tasks", type=int, default=d.tasks)
    p.add_argument("--duplicate-rate", type=float, default=d.duplicate_rate)
    p.add_argument("--reorder-window", type=int, default=d.reorder_window)
    p.add_argument("--poison-rate", type=float, default=d.poison_rate)
    p.add_argument("--ignored-rate", type=float, default=d.ignored_rate)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--contenders", default=",".join(d.contenders), help=f"comma list of {', '.join(CONTENDERS)}")
    p.add_argument("--lambda-full-get", action="store_true",
                   help="the Lambda fetches the whole item (default: only `version`, cheaper for the Lambda)")
    p.add_argument("--out", default=str(REPO_ROOT / "bench"), help="output directory (default: bench/)")
    p.add_argument("--name", default="results", help="file name stem of the JSON and PNG (default: results)")
    p.add_argument("--profile", action="store_true", help="also profile the core per-record path and a put")
    p.add_argument("--no-chart", action="store_true")


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    contenders = tuple(c.strip() for c in args.contenders.split(",") if c.strip())
    unknown = [c for c in contenders if c not in CONTENDERS]
    if unknown or not contenders:
        raise ValueError(f"--contenders: unknown {unknown}; choose from {', '.join(CONTENDERS)}")
    if args.events < 1 or args.shards < 1 or args.flush_ms < 1 or args.workers < 1:
        raise ValueError("--events, --shards, --flush-ms and --workers must be >= 1")
    return BenchConfig(events=args.events, shards=args.shards, flush_ms=args.flush_ms, rate=args.rate,
                       workers=args.workers, clusters=args.clusters, instances=args.instances, tasks=args.tasks,
                       duplicate_rate=args.duplicate_rate, reorder_window=args.reorder_window,
                       poison_rate=args.poison_rate, ignored_rate=args.ignored_rate, seed=args.seed,
                       contenders=contenders, lambda_full_get=args.lambda_full_get)
