"""The memory soak: the peak RSS of one shard process on a long stream of a large fleet, with the pending window
filling (a script that prints and saves figures, never a test): ``python -m workshop.bench.soak``.

What a run does: one stream (default 149,170 events of a fleet of 12,400 concurrent tasks and 750 container
instances: 22,018 distinct ARNs, mean record ~3.3 KB, seed 1), all on one shard, handed to one
``ecs-state-processor`` through the MultiLang protocol (:func:`workshop.bench.volume.run_pass`) in
``--batch``-record calls (10,000: KCL's ``maxRecords``
ceiling; real Kinesis caps a GetRecords at 10 MiB, so 10,000 records of 3.3 KB is more than a real call carries),
a ``--poll-ms`` pause between calls, against moto under waitress (:mod:`workshop.bench.moto_keepalive`). The
processor runs with its default settings but one: the flush interval is ``--flush-interval-ms`` (60 s), longer
than the stream takes to hand over, so that the pending limits flush (unless flushes take longer than the
interval): the window fills to its limits, the worst case any timing can give (at the 5 s default a machine
fast enough to hand over four calls within the interval gets the same; a slow one flushes on the interval first
and peaks lower). ``--run "LABEL KEY=VALUE ..."``
(repeatable) runs the same stream again with ``ECS_STATE_<KEY>`` variables set, on fresh tables.

Figures: the process's peak RSS (``VmHWM`` from ``/proc/PID/status`` of the child, read before it is told to shut
down), its RSS after each call, the flushes (reason, records, distinct ARNs), the writes (what the pending limits
cost: every flush writes each ARN it holds once), and that the tables end exact (any stale ARN raises). Each run
is saved under its label in ``bench/soak.json`` as it ends and ``bench/soak.md`` shows every run side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from processor.core.reducer import MAX_PENDING_ARNS, MAX_PENDING_BYTES
from workshop.bench.stream import FLEET, BenchConfig
from workshop.bench.volume import VolumeConfig
from workshop.errors import BenchError

ROOT = Path(__file__).resolve().parents[2]
#: 149,170 events (the case that first showed the peak) of a fleet with 22,018 distinct ARNs (seed 1).
SOAK = BenchConfig(
    events=149_170, shards=1, fleet=replace(FLEET, clusters=10, instances=750, tasks=12_400), contenders=("ours",)
)


def run_soak(
    bench: BenchConfig,
    batch: int,
    poll_ms: int,
    interval_ms: int,
    runs: dict[str, dict[str, str]],
    work: Path,
    say: Any,
    done: Any = None,
) -> dict[str, dict[str, Any]]:
    """Every run of ``runs`` on one stream and one moto server; ``done(label, result)`` after each (to save it)."""
    from workshop.bench import moto_keepalive
    from workshop.bench.emulator import check_tables, fresh_tables
    from workshop.bench.stream import build_stream
    from workshop.bench.volume import run_pass
    from workshop.local.stack import aws_client

    server = moto_keepalive.start(work / "moto.log")
    try:
        client = aws_client("dynamodb", server.endpoint)
        say(
            f"generating {bench.events:,} records (fleet {bench.fleet.tasks} tasks, "
            f"{bench.fleet.instances} instances) ..."
        )
        stream = build_stream(bench)
        arns = {(r.kind, r.arn) for r in stream.records if r.kind in ("task", "instance")}
        vcfg = VolumeConfig(
            bench=bench,
            batch=batch,
            poll_ms=poll_ms,
            replay=False,
            steady_rate=0,
            lambda_events=0,
            flush_interval_ms=interval_ms,
        )
        results: dict[str, dict[str, Any]] = {}
        for label, env in runs.items():
            settings = fresh_tables(client, f"soak{len(results)}", f"{int(time.time()) % 100000}")
            say(f"{label}: one processor, {batch:,}-record calls, settings {env or 'default'} ...")
            moto_keepalive.meter(server.endpoint, reset=True)
            result = run_pass(stream, vcfg, settings, server.endpoint, work, label, extra_env=env, trace_rss=True)
            result["capacity"] = moto_keepalive.meter(server.endpoint, reset=True)
            result["tables"] = check_tables(client, settings, stream.truth, dead_letters=True)
            if result["tables"]["stale"] or result["tables"]["unexpected"]:
                raise BenchError(f"{label} left the tables wrong: {result['tables']}; logs in {work}")
            result.pop("arrival_ms")
            result["distinct_arns"] = len(arns)
            result["mean_record_bytes"] = round(sum(len(r.data) for r in stream.records) / len(stream.records))
            result["flush_lines"] = _flush_lines(work / f"{label}-shard0.log")
            result["settings"] = {k.removeprefix("ECS_STATE_").lower(): v for k, v in env.items()}
            result["flush_interval_ms"] = interval_ms
            result["batch"] = batch
            results[label] = result
            if done:
                done(label, result)
            say(
                f"  peak RSS {result['peak_rss_mb']} MB; flushes {result['flush_reasons']}; "
                f"writes {result['flush_log'].get('writes')}"
            )
        return results
    finally:
        server.stop()


def _flush_lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if '"event": "flush"' in line or '"event":"flush"' in line:
            fields = json.loads(line)
            out.append({k: fields.get(k) for k in ("reason", "records", "distinct_arns", "writes", "flush_ms")})
    return out


def render(runs: dict[str, Any]) -> str:
    lines = ["### Memory soak: one shard process, a long stream of a large fleet", ""]
    first = next(iter(runs.values()))
    lines.append(
        f"{first['events']:,} events, {first['distinct_arns']:,} distinct ARNs, mean record "
        f"{first['mean_record_bytes']:,} bytes, one shard, flush interval {first['flush_interval_ms']:,} ms "
        f"(only the pending limits flush); peak RSS = `VmHWM` of the processor process. "
        f"Writes = the flushes' conditional PutItems (each flush writes every ARN it holds once, so fewer, "
        f"larger windows write less); the ratio is against the first row. "
        f"Command: `python -m workshop.bench.soak`."
    )
    lines += [
        "",
        (
            "| run | settings | calls of | peak RSS MB | flushes (reasons) | largest flush: records / ARNs | "
            "writes | writes vs first row | WU eq. | CPU µs/event | wall s |"
        ),
        "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    floor = first["flush_log"].get("writes", 0)
    for label, r in runs.items():
        big = max(r["flush_lines"], key=lambda f: f["records"] or 0) if r["flush_lines"] else {}
        writes = r["flush_log"].get("writes", 0)
        reasons = ", ".join(f"{k} {v}" for k, v in r["flush_reasons"].items())
        lines.append(
            f"| {label} | {', '.join(f'{k}={v}' for k, v in r['settings'].items()) or 'default'} | {r['batch']:,} | "
            f"**{r['peak_rss_mb']}** | {r['flushes']} ({reasons}) | "
            f"{big.get('records', 0):,} / {big.get('distinct_arns', 0):,} | {writes:,} | "
            f"{writes / floor if floor else 0:.3f} | {r['capacity'].get('write_unit_equivalents', 0):,.0f} | "
            f"{r['cpu_us_per_event'] or 0:.0f} | {r['wall_s']:.0f} |"
        )
    lines += ["", f"Code: commit {first.get('commit', '?')}; {os.cpu_count()} CPUs, {platform.python_version()}."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=SOAK.events)
    parser.add_argument("--tasks", type=int, default=SOAK.fleet.tasks)
    parser.add_argument("--instances", type=int, default=SOAK.fleet.instances)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--poll-ms", type=int, default=250)
    parser.add_argument("--flush-interval-ms", type=int, default=60_000)
    parser.add_argument(
        "--run",
        action="append",
        default=[],
        help='"LABEL KEY=VALUE ..." (ECS_STATE_KEY for the processor); default: one run "default"',
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench")
    args = parser.parse_args()
    runs: dict[str, dict[str, str]] = {}
    for spec in args.run or ["default"]:
        label, *pairs = spec.split()
        runs[label] = {f"ECS_STATE_{k.upper()}": v for k, v in (pair.split("=", 1) for pair in pairs)}
    bench = replace(SOAK, events=args.events, fleet=replace(SOAK.fleet, tasks=args.tasks, instances=args.instances))
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    saved = args.out / "soak.json"

    def save(label: str, result: dict[str, Any]) -> None:
        everything = json.loads(saved.read_text()) if saved.exists() else {}
        everything[label] = {
            **result,
            "commit": commit,
            "defaults": {"max_pending_arns": MAX_PENDING_ARNS, "max_pending_bytes": MAX_PENDING_BYTES},
        }
        saved.write_text(json.dumps(everything, indent=1) + "\n")
        (args.out / "soak.md").write_text(render(everything))

    run_soak(bench, args.batch, args.poll_ms, args.flush_interval_ms, runs, work, lambda s: print(s, flush=True), save)
    everything = json.loads(saved.read_text())
    print(f"logs in {work}")
    print(render(everything))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
