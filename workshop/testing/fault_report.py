"""Run the fault scenarios once, at bigger volumes than the tests, and print + save a table.

Each scenario drives the real processor process through the MultiLang protocol (the driver plays the KCL daemon,
restarting the processor from the last acknowledged checkpoint when it dies), with DynamoDB (an embedded moto
server) behind the fault proxy, checks durability at every checkpoint, watches stored versions at every
checkpoint, and compares the final tables with the ground truth computed from the records.

    python -m workshop fault-scenarios                       # everything; writes bench/faults.json
    python -m workshop fault-scenarios --only a --scale 0.5  # one scenario, smaller
    python -m workshop fault-scenarios --poison-table /tmp/poison-table.md

Exit status 1 when any scenario lost an event or let a stored version go down. A benchmark, not a test:
the times are measurements on this machine, not assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from processor.errors import ConfigError
from workshop.local.env import LOCAL_ENV


def scenarios(scale: float, seed: int) -> dict[str, Callable[[Any, str, Path], Any]]:
    """Scenario key -> runner(settings, moto endpoint, workdir) -> Result."""
    import workshop.testing.fault_scenarios as fs

    def n(value: int) -> int:
        return max(4, int(value * scale))

    return {
        "a": lambda s, up, wd: fs.throttled_stream(s, up, wd, arns=n(400), versions=15, seed=seed, batch_size=n(500)),
        "b-unavailable": lambda s, up, wd: fs.outage(
            s,
            up,
            wd,
            kind="unavailable",
            arns=n(200),
            versions=10,
            seed=seed,
            batch_size=n(250),
            fault_s=5.0,
            budget_ms=2000,
        ),
        "b-reset": lambda s, up, wd: fs.outage(
            s, up, wd, kind="reset", arns=n(200), versions=10, seed=seed, batch_size=n(250), fault_s=5.0, budget_ms=2000
        ),
        "b-slow": lambda s, up, wd: fs.outage(
            s, up, wd, kind="slow", arns=n(200), versions=10, seed=seed, batch_size=n(250), fault_s=5.0, budget_ms=2000
        ),
        "c-between": lambda s, up, wd: fs.killed(
            s, wd, arns=n(200), versions=10, seed=seed, kill_at=4, batch_size=n(250)
        ),
        "c-mid-flush": lambda s, up, wd: fs.killed(
            s, wd, arns=n(200), versions=10, seed=seed, kill_at=4, batch_size=n(250), upstream=up, mid_flush=True
        ),
        "f": lambda s, up, wd: fs.poison(
            s, wd, batch_size=50, repeat=max(1, int(3 * scale)), watch_every_checkpoint=False
        ),
    }


COLUMNS = [
    ("fault", "fault"),
    ("events", "events sent"),
    ("delivered", "delivered (with replays)"),
    ("lost", "events lost"),
    ("regressed", "versions regressed"),
    ("dead_letters", "dead letters"),
    ("starts", "processor starts"),
    ("exit_codes", "exit codes"),
    ("retries", "write retries"),
    ("stale", "stale (rejected) writes"),
    ("recover_s", "time to recover (s)"),
    ("run_s", "run time (s)"),
    ("command", "reproduce"),
]


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "|".join("---" if key in ("fault", "command") else "---:" for key, _ in COLUMNS) + "|",
    ]
    for row in rows:
        cells = []
        for key, _ in COLUMNS:
            value = row.get(key)
            if key == "command":
                value = f"`{value}`"
            elif key == "exit_codes":
                value = ",".join(str(v) for v in value or [])
            elif value is None:
                value = "n/a"
            cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "fault-scenarios",
        help="run the fault scenarios at volume; print and save a table",
        description="Run the fault scenarios once at bigger volumes; print and save "
        "a table (see the module docstring).",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="scenario key or prefix (a, b, b-reset, c, c-between, f, ...); repeatable",
    )
    parser.add_argument("--scale", type=float, default=1.0, help="volume multiplier (default 1.0)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default="bench/faults.json", help="JSON results file")
    parser.add_argument("--poison-table", help="also write the poison corpus outcomes as a markdown table here")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    os.environ.update(LOCAL_ENV)
    os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
    from workshop.local.stack import start_moto
    from workshop.testing.poison_cases import poison_corpus, poison_table_markdown
    from workshop.testing.protocol_helpers import unique_settings

    runners = scenarios(args.scale, args.seed)
    chosen = [
        k
        for k in runners
        if not args.only or any(k == o or k.startswith(o + "-") or k == o.rstrip("-") for o in args.only)
    ]
    if not chosen:
        raise ConfigError(f"--only {args.only}: no such scenario; choose from {', '.join(runners)}")
    workroot = Path(tempfile.mkdtemp(prefix="ecs-state-faults-"))
    moto = start_moto(log_path=workroot / "moto.log")
    os.environ["AWS_ENDPOINT_URL"] = moto.endpoint
    rows: list[dict[str, Any]] = []
    failed = False
    try:
        for key in chosen:
            workdir = workroot / key
            workdir.mkdir()
            settings = unique_settings(key)
            print(f"running {key} ...", file=sys.stderr, flush=True)
            started = time.monotonic()
            try:
                result = runners[key](settings, moto.endpoint, workdir)
            except AssertionError as exc:  # an invariant broke mid-run (durability check, restart loop)
                failed = True
                rows.append(
                    {
                        "fault": key,
                        "error": str(exc)[:500],
                        "run_s": round(time.monotonic() - started, 2),
                        "command": _command(key, args),
                    }
                )
                print(f"  {key}: FAILED: {str(exc)[:300]}", file=sys.stderr)
                continue
            result.command = _command(key, args)
            row = result.row()
            rows_extra = row.pop("extra", {})
            if key == "f":
                poison_rows = rows_extra.pop("rows")
                if args.poison_table:
                    Path(args.poison_table).write_text(
                        _poison_header(args) + poison_table_markdown(poison_rows[: len(poison_corpus())])
                    )
            row["details"] = {k: v for k, v in rows_extra.items() if k not in ("fault_start", "fault_end")}
            row["key"] = key
            rows.append(row)
            failed |= bool(row["lost"] or row["regressed"])
            print(f"  {key}: lost {row['lost']}, regressed {row['regressed']}, {row['run_s']} s", file=sys.stderr)
    finally:
        moto.stop()
    table = markdown([r for r in rows if "error" not in r])
    print(table)
    for r in rows:
        if "error" in r:
            print(f"FAILED {r['fault']}: {r['error']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
                "scale": args.scale,
                "seed": args.seed,
                "workdir": str(workroot),
                "results": rows,
                "markdown": table,
            },
            indent=1,
            default=str,
        )
        + "\n"
    )
    print(f"saved {out}; processor logs under {workroot}", file=sys.stderr)
    return 1 if failed else 0


def _command(key: str, args: argparse.Namespace) -> str:
    return f"python -m workshop fault-scenarios --only {key} --scale {args.scale:g} --seed {args.seed}"


def _poison_header(args: argparse.Namespace) -> str:
    return (
        "Bad input, as the processor handles it (observed by `./scripts/faults --only f`: each input was fed "
        "through the processor process, followed by a valid event that was applied in every case).\n\n"
    )
