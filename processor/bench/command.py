"""``ecs-state bench``: the benchmark's command (``./scripts/bench``); the work is in ``processor.bench.runner``
(orchestration) and the modules beside it; the report is rendered by ``processor.bench.report``."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from processor.bench.report import render_markdown
from processor.bench.runner import add_arguments, config_from_args, run_bench
from processor.errors import ConfigError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("bench", help="ecs-state vs the per-event Lambda on one stream; figures + chart",
                                   description="Benchmark: ecs-state's processor vs the per-event Lambda on one "
                                               "stream and one moto DynamoDB. Prints a markdown table and writes "
                                               "bench/NAME.json, .md and .png.")
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args)
        cfg.options()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    command = shlex.join(["./scripts/bench", *sys.argv[2:]])
    start = time.perf_counter()
    report = run_bench(cfg, Path(args.out), args.name, profile=args.profile, command=command,
                       chart=not args.no_chart, progress=lambda text: print(text, file=sys.stderr, flush=True))
    text = render_markdown(report)
    (Path(args.out) / f"{args.name}.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    print(f"\nWrote {Path(args.out) / (args.name + '.md')}, {Path(args.out) / (args.name + '.json')}"
          + ("" if args.no_chart else f" and {Path(args.out) / (args.name + '.png')}")
          + f" in {time.perf_counter() - start:.0f} s.")
    return 0
