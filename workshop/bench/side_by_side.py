"""CPU per event of several versions of the processor and of the batched Lambda, side by side in one run (a script:
it prints and saves figures, no assertions).

``python -m workshop.bench.side_by_side --code DIR [--code DIR ...] [--events N] [--rounds R] [--name NAME]``

* One stream (the volume profile's fleet, :class:`~workshop.bench.volume.VolumeConfig`), one moto with
  keep-alive, ``batch``-record ``processRecords`` calls at the processor's default settings, for every code
  directory: the processors run with ``PYTHONPATH`` set to that directory, so each pass runs that version's
  ``processor`` package (a git worktree of an older commit, say) while the harness is this one.
* Passes alternate between the versions ``rounds`` times, each into fresh tables, and the tables are checked
  against the ground truth after each; a version's figure is its median over the rounds (CPU by rusage of the
  processor processes, between ``initialize`` and the end of the pass).
* The batched Lambda (:func:`workshop.bench.lambda_way.batched_handler`: ``batch`` records per invocation,
  conditional puts on 16 threads) runs once on the same stream; every version's CPU is given as a ratio to it.
* Saved as ``bench/NAME.json`` and ``bench/NAME.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from processor.config import Settings
from workshop.bench.emulator import child_env
from workshop.bench.report import code_version, machine, stream_facts
from workshop.bench.volume import VolumeConfig, run_pass
from workshop.errors import BenchError
from workshop.local.paths import project_dir


def commit_of(code: Path) -> str:
    """The short commit of a code directory (and ``+changes`` when its processor package differs from it)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(code), *args], capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or str(code)
    return head + ("+changes" if git("status", "--porcelain", "--untracked-files=no", "--", "processor") else "")


def tables_of(code: Path, name: str, endpoint: str) -> Settings:
    """Fresh tables made by that version's own ``ensure_tables`` (each version checks for its own indexes)."""
    settings = Settings(
        task_table=f"{name}-tasks", instance_table=f"{name}-instances", dead_letter_table=f"{name}-dead-letters"
    )
    script = (
        "import sys; from processor.config import Settings; from processor.ops.setup_tables import ensure_tables; "
        "ensure_tables(Settings(task_table=sys.argv[1], instance_table=sys.argv[2], dead_letter_table=sys.argv[3]))"
    )
    subprocess.run(
        [sys.executable, "-P", "-c", script, settings.task_table, settings.instance_table, settings.dead_letter_table],
        env={**child_env(endpoint), "PYTHONPATH": str(code)},
        check=True,
        timeout=300,
    )
    return settings


def run(codes: list[Path], vcfg: VolumeConfig, rounds: int, lambda_workers: int, say: Any) -> dict[str, Any]:
    from workshop.bench import moto_keepalive
    from workshop.bench.emulator import check_tables, fresh_tables
    from workshop.bench.lambda_way import run_lambda
    from workshop.bench.stream import build_stream
    from workshop.local.stack import aws_client

    work = Path(tempfile.mkdtemp(prefix="ecs-state-side-by-side-"))
    say(f"logs in {work}")
    server = moto_keepalive.start(work / "moto.log")
    try:
        endpoint = server.endpoint
        client = aws_client("dynamodb", endpoint)
        stream = build_stream(vcfg.bench)
        run_id = f"{int(time.time()) % 100000}"
        passes: dict[str, list[dict[str, Any]]] = {str(c): [] for c in codes}
        for r in range(rounds):
            for n, code in enumerate(codes if r % 2 == 0 else codes[::-1]):
                settings = tables_of(code, f"bench-{run_id}-sbs{r}-{codes.index(code)}", endpoint)
                got = run_pass(stream, vcfg, settings, endpoint, work, f"r{r}-{n}", code=code)
                got.pop("arrival_ms")
                tables = check_tables(client, settings, stream.truth, dead_letters=True)
                if tables["stale"] or tables["unexpected"]:
                    raise BenchError(f"{code} left the tables wrong: {tables}; logs in {work}")
                passes[str(code)].append(got)
                say(
                    f"  round {r + 1} {code}: {got['cpu_us_per_event']:.0f} µs/event, "
                    f"{got['requests_per_event']:.3f} requests/event, peak RSS {got['peak_rss_mb']} MB"
                )
        lam_settings = fresh_tables(client, "sbs-lambda", run_id)
        say(f"batched Lambda ({vcfg.batch:,} records per invocation, {lambda_workers} threads) ...")
        lam = run_lambda(vcfg.bench, lambda_workers, lam_settings, endpoint, work, batch=vcfg.batch)
        say(f"  {lam['cpu_us_per_event']:.0f} µs/event, {lam['requests_per_event']:.3f} requests/event")
    finally:
        server.stop()
    versions = []
    for code in codes:
        runs = passes[str(code)]
        cpu = statistics.median(p["cpu_us_per_event"] for p in runs)
        versions.append(
            {
                "code": str(code),
                "commit": commit_of(code),
                "cpu_us_per_event": round(cpu, 1),
                "cpu_us_per_event_runs": [round(p["cpu_us_per_event"], 1) for p in runs],
                "requests_per_event": round(statistics.median(p["requests_per_event"] for p in runs), 4),
                "peak_rss_mb": max(p["peak_rss_mb"] or 0 for p in runs),
                "flushes": [p["flush_reasons"] for p in runs],
                "cpu_vs_lambda": round(cpu / lam["cpu_us_per_event"], 4),
            }
        )
    return {
        "stream": {
            "events": vcfg.bench.events,
            "shards": vcfg.bench.shards,
            "batch": vcfg.batch,
            "fleet": dataclasses.asdict(vcfg.bench.options()),
            **stream_facts(stream),
        },
        "rounds": rounds,
        "versions": versions,
        "lambda": lam,
        "machine": machine("moto (keep-alive)"),
        "harness": code_version(),
        "logs": str(work),
    }


def render(report: dict[str, Any]) -> str:
    s, lam = report["stream"], report["lambda"]
    base = report["versions"][0]["cpu_us_per_event"]
    lines = [
        f"### Side by side: {s['events']:,} events in {s['batch']:,}-record calls, {s['shards']} shards, one moto",
        "",
        f"Median of {report['rounds']} alternating passes per version (CPU by rusage of the processor processes); "
        f"the batched Lambda: {lam['batch']:,} records per invocation, conditional puts on {lam['workers']} threads.",
        "",
        "| code | CPU µs/event | runs | of the first | requests/event | CPU vs batched Lambda | peak RSS MB |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for v in report["versions"]:
        runs = ", ".join(f"{x:.0f}" for x in v["cpu_us_per_event_runs"])
        lines.append(
            f"| {v['commit']} | {v['cpu_us_per_event']:.0f} | {runs} "
            f"| {v['cpu_us_per_event'] / base:.2f} | {v['requests_per_event']:.3f} | {v['cpu_vs_lambda']:.3f} "
            f"| {v['peak_rss_mb']} |"
        )
    lines.append(f"| batched Lambda | {lam['cpu_us_per_event']:.0f} | | | {lam['requests_per_event']:.3f} | 1 | |")
    m, h = report["machine"], report["harness"]
    lines += [
        "",
        f"Lambda outcomes: {lam['outcomes']}. Harness: commit {h.get('commit', h)}; {m['cpus']} CPUs, Python "
        f"{m['python']}, load average {m['load_avg_1m_at_end']:.1f} at the end.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", action="append", required=True, help="a directory holding a processor package")
    parser.add_argument("--events", type=int, default=24_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--lambda-workers", type=int, default=16)
    parser.add_argument("--name", default="side-by-side-10k")
    parser.add_argument("--out", default=str(project_dir() / "bench"))
    args = parser.parse_args(argv)
    d = VolumeConfig()
    vcfg = dataclasses.replace(d, bench=dataclasses.replace(d.bench, events=args.events), batch=args.batch)
    codes = [Path(c).resolve() for c in args.code]
    report = run(codes, vcfg, args.rounds, args.lambda_workers, lambda line: print(line, flush=True))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    text = render(report)
    (out / f"{args.name}.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
