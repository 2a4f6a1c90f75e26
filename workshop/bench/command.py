"""``python -m workshop bench``: the benchmark's command (``./scripts/bench``); the work is in ``workshop.bench.runner``
(orchestration) and the modules beside it; the report is rendered by ``workshop.bench.report``."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from processor.errors import ConfigError
from workshop.bench.report import render_markdown
from workshop.bench.runner import (
    add_arguments,
    config_from_args,
    run_bench,
    run_volume_profile,
    volume_config_from_args,
)
from workshop.bench.volume_report import write_volume_results
from workshop.local.paths import project_dir


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="ecs-state vs the per-event Lambda on one stream; figures + chart",
        description="Benchmark: ecs-state's processor vs the per-event Lambda on one "
        "stream and one moto DynamoDB. Prints a markdown table and writes "
        "bench/NAME.json, .md and .png.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.profile_volume:
        return run_volume_command(args)
    try:
        cfg = config_from_args(args)
        cfg.options()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    command = shlex.join(["./scripts/bench", *sys.argv[2:]])
    start = time.perf_counter()
    report = run_bench(
        cfg,
        Path(args.out),
        args.name,
        profile=args.profile,
        command=command,
        chart=not args.no_chart,
        progress=lambda text: print(text, file=sys.stderr, flush=True),
    )
    text = render_markdown(report)
    (Path(args.out) / f"{args.name}.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    print(
        f"\nWrote {Path(args.out) / (args.name + '.md')}, {Path(args.out) / (args.name + '.json')}"
        + ("" if args.no_chart else f" and {Path(args.out) / (args.name + '.png')}")
        + f" in {time.perf_counter() - start:.0f} s."
    )
    return 0


def run_volume_command(args: argparse.Namespace) -> int:
    """``--profile-volume``: the high-volume profile; bench/NAME.json, .md, .png and docs/benchmarks.md's section."""
    name = "volume" if args.name == "results" else args.name
    out = Path(args.out)
    # the benchmark log's section shows the project's own figures: only a run saved in bench/ regenerates it
    doc = project_dir() / "docs" / "benchmarks.md" if out.resolve() == (project_dir() / "bench").resolve() else None
    if args.render_only:
        report = json.loads((out / f"{name}.json").read_text(encoding="utf-8"))
        print(write_volume_results(report, out, name, not args.no_chart, doc))
        return 0
    try:
        vcfg = volume_config_from_args(args)
        vcfg.bench.options()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    command = shlex.join(["./scripts/bench", *sys.argv[2:]])
    start = time.perf_counter()
    text = run_volume_profile(
        vcfg, out, name, command, not args.no_chart, doc, lambda line: print(line, file=sys.stderr, flush=True)
    )
    print(text)
    print(
        f"\nWrote {out / (name + '.json')}, .md"
        + ("" if args.no_chart else ", .png")
        + (" and the volume section of docs/benchmarks.md" if doc else "")
        + f" in {time.perf_counter() - start:.0f} s."
    )
    return 0
