"""Peak memory of one shard process per stream shape (a script: it prints and saves figures, no assertions).

``python -m workshop.bench.memory [--shapes a,b] [--records N] [--trace] [--name NAME]``

* Each shape is a stream from the synthetic fleet (:func:`processor.loadgen.fleet.generate`), optionally widened
  (every task event given more containers, up to a record size) and cut into ``processRecords`` calls either of
  a number of records or of at most so many bytes of data, as GetRecords returns them (10 MiB).
* The shard starts at TRIM_HORIZON and every call but the last is an hour behind the tip (a backlog: the
  processor catches up, reading stored versions before its flushes).
* One real ``ecs-state-processor`` process per shape, driven through the MultiLang protocol
  (:class:`workshop.testing.multilang_driver.ProcessorProcess`) against moto with keep-alive, at the default
  settings unless a shape sets some; the figure is the process's ``VmHWM`` (peak RSS) at the end, with its RSS
  after each call.
* ``--trace`` runs each processor under ``tracemalloc`` (much slower) and reports the peak of what Python
  objects held and the lines that held most at the highest sample: where the memory goes.
* ``docs/sizing.md`` states the budget these figures are compared with; saved as ``bench/NAME.json`` and
  ``bench/NAME.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import orjson

from processor.loadgen.fleet import Options, Record, generate
from workshop.bench.report import code_version, machine
from workshop.bench.volume import rss_mb
from workshop.local.paths import project_dir

#: The wrapper a traced processor runs in: tracemalloc on, a sampler thread keeping the top lines at the highest
#: traced size, written to the file named by the first argument (at every new high, so no exit hook is needed).
_TRACED = """
import json, runpy, sys, threading, time, tracemalloc
out = sys.argv.pop(1)
tracemalloc.start(1)
def sample():
    high = 0
    while True:
        time.sleep(0.2)
        current, peak = tracemalloc.get_traced_memory()
        if current > high * 1.05:
            high = current
            top = tracemalloc.take_snapshot().statistics("lineno")[:15]
            lines = [[str(s.traceback[0]), round(s.size / 2**20, 1), s.count] for s in top]
            with open(out, "w") as f:
                json.dump({"traced_mb": round(current / 2**20, 1), "top": lines}, f)
        with open(out + ".peak", "w") as f:
            f.write(str(round(peak / 2**20, 1)))
threading.Thread(target=sample, daemon=True).start()
sys.argv[0] = "processor.shard.main"
runpy.run_module("processor.shard.main", run_name="__main__")
"""


@dataclass(frozen=True)
class Shape:
    name: str
    what: str
    fleet: Options
    records: int = 20_000
    call_records: int = 10_000  # at most this many records per call
    call_bytes: int = 0  # and at most this many bytes of data per call (0: no byte limit)
    containers: int = 0  # every task event widened to this many containers (0: as generated)


#: The most data a record carries here: Kinesis' 1 MiB per record, less room for its partition key.
RECORD_LIMIT = 2**20 - 256
#: How far behind the tip every call but the last says the shard is: a backlog read from TRIM_HORIZON.
BACKLOG_MS = 3_600_000
BIG_FLEET = Options(clusters=20, instances=800, tasks=25_000, duplicate_rate=0.02, reorder_window=20, seed=3)
SHAPES = {
    s.name: s
    for s in (
        Shape("distinct-10k", "25,800-resource fleet, 10,000-record calls (most ARNs distinct)", BIG_FLEET),
        Shape("distinct-10mib", "25,800-resource fleet, 10 MiB calls", BIG_FLEET, call_bytes=10 * 2**20),
        Shape(
            "containers-50",
            "tasks with 50 containers (~22 KB records), 10 MiB calls",
            dataclasses.replace(BIG_FLEET, tasks=5_000, instances=100),
            records=3_000,
            call_bytes=10 * 2**20,
            containers=50,
        ),
        Shape(
            "records-1mib",
            "task records at Kinesis' 1 MiB limit (~1,600 containers, compressed items), 10 MiB calls",
            dataclasses.replace(BIG_FLEET, tasks=500, instances=20),
            records=300,
            call_bytes=10 * 2**20,
            containers=2_000,
        ),
    )
}


def widen(data: bytes, containers: int) -> bytes:
    """A task event with ``containers`` containers (copies of its first, each named apart); others unchanged."""
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        return data
    detail = event.get("detail") if isinstance(event, dict) else None
    if not isinstance(detail, dict) or not isinstance(detail.get("containers"), list) or not detail["containers"]:
        return data
    first = detail["containers"][0]
    detail["containers"] = [
        {**first, "name": f"{first.get('name', 'c')}-{k}", "containerArn": f"{first.get('containerArn', '')}-{k}"}
        for k in range(containers)
    ]
    widened = orjson.dumps(event)
    while len(widened) > RECORD_LIMIT:  # Kinesis' limit for a record's data (and its partition key)
        del detail["containers"][len(detail["containers"]) * RECORD_LIMIT // len(widened) :]
        widened = orjson.dumps(event)
    return widened


def stream(shape: Shape) -> list[Record]:
    out = []
    for record in generate(shape.fleet):
        if shape.containers and record.kind == "task":
            record = dataclasses.replace(record, data=widen(record.data, shape.containers))
        out.append(record)
        if len(out) >= shape.records:
            return out
    return out


def calls(records: list[Record], shape: Shape) -> Iterator[list[Record]]:
    call: list[Record] = []
    size = 0
    for record in records:
        if call and (
            len(call) >= shape.call_records or (shape.call_bytes and size + len(record.data) > shape.call_bytes)
        ):
            yield call
            call, size = [], 0
        call.append(record)
        size += len(record.data)
    if call:
        yield call


def run_shape(
    shape: Shape, endpoint: str, client: Any, work: Path, trace: bool, run_id: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """One shape through one processor process (``env``: further variables for it, settings or the allocator's)."""
    from workshop.bench.emulator import child_env, fresh_tables
    from workshop.testing.multilang_driver import KinesisRecord, ProcessorProcess

    records = stream(shape)
    settings = fresh_tables(client, f"mem-{shape.name}", run_id)
    child = child_env(
        endpoint,
        {
            **(env or {}),
            "ECS_STATE_TASK_TABLE": settings.task_table,
            "ECS_STATE_INSTANCE_TABLE": settings.instance_table,
            "ECS_STATE_DEAD_LETTER_TABLE": settings.dead_letter_table,
            "ECS_STATE_LOG_LEVEL": "INFO",
            "ECS_STATE_METRICS": "none",
        },
    )
    process = ProcessorProcess(env=child, stderr_path=work / f"{shape.name}.log")
    traced = work / f"{shape.name}-traced.json"
    if trace:
        process.argv = [sys.executable, "-c", _TRACED, str(traced)]
    process.start()
    per_call: list[tuple[int, float, float]] = []
    seq = 0
    started = time.perf_counter()
    try:
        process.initialize("shardId-000000000000")
        assert process.proc is not None
        cut = list(calls(records, shape))
        for n, call in enumerate(cut):
            batch = []
            for r in call:
                seq += 1
                batch.append(KinesisRecord(r.data, r.partition_key, f"{seq:056d}", 0, 0))
            behind = 0 if n == len(cut) - 1 else BACKLOG_MS  # a backlog: the shard catches up, then is at the tip
            process.process_records(batch, millis_behind_latest=behind)
            sample = rss_mb(process.proc.pid)
            if sample:
                per_call.append((n + 1, *sample))
        peak = rss_mb(process.proc.pid)
        process.shutdown_requested()
        code = process.close()
    except BaseException:
        process.kill()
        raise
    sizes = [len(r.data) for r in records]
    result: dict[str, Any] = {
        "shape": shape.name,
        "what": shape.what,
        "records": len(records),
        "calls": len(per_call),
        "mean_record_bytes": round(sum(sizes) / len(sizes)),
        "max_record_bytes": max(sizes),
        "distinct_arns": len({r.arn for r in records if r.arn}),
        "peak_rss_mb": peak[1] if peak else None,
        "rss_after_call_mb": per_call,
        "exit": code,
        "wall_s": round(time.perf_counter() - started, 1),
        "flushes": _flush_reasons(work / f"{shape.name}.log"),
    }
    if trace and traced.exists():
        result["traced"] = json.loads(traced.read_text(encoding="utf-8"))
        peak_file = Path(str(traced) + ".peak")
        result["traced_peak_mb"] = float(peak_file.read_text()) if peak_file.exists() else None
    return result


def _flush_reasons(log: Path) -> dict[str, int]:
    from processor.shard.flush_report import flush_reports

    reports = flush_reports(log.read_text(encoding="utf-8", errors="replace").splitlines())
    return {r: sum(1 for x in reports if x.reason == r) for r in sorted({x.reason for x in reports})}


def render(report: dict[str, Any]) -> str:
    lines = [
        "### Peak memory of one shard process, per stream shape (default settings)",
        "",
        "| shape | records | mean / max record bytes | distinct ARNs | calls | flushes | peak RSS MB |"
        + (" traced peak MB |" if report["trace"] else ""),
        "|---|---:|---:|---:|---:|---|---:|" + ("---:|" if report["trace"] else ""),
    ]
    for r in report["shapes"]:
        lines.append(
            f"| {r['shape']}: {r['what']} | {r['records']:,} | {r['mean_record_bytes']:,} / {r['max_record_bytes']:,} "
            f"| {r['distinct_arns']:,} | {r['calls']} | {r['flushes']} | {r['peak_rss_mb']} |"
            + (f" {r.get('traced_peak_mb')} |" if report["trace"] else "")
        )
    m, code = report["machine"], report["code"]
    modified = f" (modified: {', '.join(code['modified'])})" if code.get("modified") else ""
    lines += [
        "",
        f"Code: commit {code.get('commit')}{modified}; {m['cpus']} CPUs, Python {m['python']}. "
        f"Command: `{report['command']}`",
    ]
    if report["trace"]:
        for r in report["shapes"]:
            top = r.get("traced", {}).get("top", [])[:6]
            lines.append(
                f"\n{r['shape']}, held at the highest traced sample ({r.get('traced', {}).get('traced_mb')} MB):"
            )
            lines += [f"- {where}: {mb} MB in {count:,} blocks" for where, mb, count in top]
    return "\n".join(lines)


def save(out: Path, name: str, report: dict[str, Any]) -> None:
    (out / f"{name}.json").write_text(json.dumps(report, indent=1), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    from workshop.bench import moto_keepalive
    from workshop.local.stack import aws_client

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default=",".join(SHAPES), help=f"comma list of {', '.join(SHAPES)}")
    parser.add_argument("--records", type=int, default=0, help="records per shape (0: the shape's own)")
    parser.add_argument("--trace", action="store_true", help="tracemalloc in the processor: where the memory goes")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the processors (a setting...)")
    parser.add_argument("--name", default="memory")
    parser.add_argument("--out", default=str(project_dir() / "bench"))
    args = parser.parse_args(argv)
    chosen = [SHAPES[s.strip()] for s in args.shapes.split(",") if s.strip()]
    if args.records:
        chosen = [dataclasses.replace(s, records=args.records) for s in chosen]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ecs-state-memory-"))
    print(f"logs in {work}", flush=True)
    server = moto_keepalive.start(work / "moto.log")
    results = []
    try:
        client = aws_client("dynamodb", server.endpoint)
        run_id = f"{int(time.time()) % 100000}"
        for shape in chosen:
            env = dict(pair.split("=", 1) for pair in args.env)
            got = run_shape(shape, server.endpoint, client, work, args.trace, run_id, env)
            print(
                f"  {shape.name}: peak RSS {got['peak_rss_mb']} MB, {got['calls']} calls, flushes {got['flushes']}"
                + (f", traced peak {got.get('traced_peak_mb')} MB" if args.trace else ""),
                flush=True,
            )
            results.append(got)
            save(out, args.name, {"shapes": results, "partial": True})  # a long run keeps what it measured
    finally:
        server.stop()
    report = {
        "shapes": results,
        "trace": args.trace,
        "code": code_version(),
        "machine": machine("moto (keep-alive)"),
        "command": "python -m workshop.bench.memory " + " ".join(argv if argv is not None else sys.argv[1:]),
        "logs": str(work),
    }
    save(out, args.name, report)
    text = render(report)
    (out / f"{args.name}.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
