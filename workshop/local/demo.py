"""``./scripts/demo``: the whole product on one machine, end to end, then an exact check.

Starts the embedded local stack (moto + kinesis-mock on 127.0.0.1), creates the stream and tables, starts
``--workers`` KCL daemons (``ecs-state run``, one application name) with our processor, runs the synthetic
producer with a progress bar, waits until the tables match the producer's ground truth, prints a summary ending
in ``verified``, stops everything it started and exits 0. Otherwise it lists the mismatches and exits 1.

``--keep``: after ``verified``, the workers stop but the local stack stays up until Ctrl-C, and the demo prints the
environment to export and read commands to try on its data (``try_commands``: a stopped task found in the table,
its cluster, service, EC2 instance and times). The fleet's simulated clock is spread over hours (``--step-ms``),
so start and stop times, the stopped tasks by day and ``tasks --at`` have something to find.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from processor.config import load_settings
from processor.loadgen.compare import Report
from processor.loadgen.verify import verify
from processor.ops.catalog import read_catalog
from processor.ops.setup_tables import ensure_tables
from processor.shard.flush_report import flush_reports, total
from workshop.local.stack import LocalStack

STREAM = "ecs-events"
APPLICATION = "ecs-state-demo"
#: mean simulated time between events: 2000 events span about 5.5 hours of the fleet's life
STEP_MS = 10_000


@dataclass
class Totals:
    flushes: int = 0
    records: int = 0
    writes: int = 0
    stale: int = 0
    ignored: int = 0
    dead_letters: int = 0
    requests: int = 0
    retries: int = 0


def flush_totals(lines: Iterable[str]) -> Totals:
    """Sum the processors' ``flush`` log lines (JSON on their stderr, passed through by the daemon)."""
    reports = flush_reports(lines)
    totals = Totals(flushes=len(reports))
    for name in ("records", "writes", "stale", "ignored", "dead_letters", "requests", "retries"):
        setattr(totals, name, total(reports, name))
    return totals


def try_commands(env: dict[str, str], task: dict[str, Any], ec2_instance_id: str | None) -> list[str]:
    """The lines ``--keep`` prints (pure): the environment to export, then read commands about one stopped task
    (``task``: its stored item, plain values) and its cluster, service, instance and times."""
    from datetime import timedelta

    from processor.ops.questions import ecs_time, parse_time

    lines = ["# the local stack stays up until Ctrl-C; in another shell:"]
    lines += [
        f"export {name}={shlex.quote(env[name])}"
        for name in (
            "AWS_ENDPOINT_URL_DYNAMODB",
            "AWS_ENDPOINT_URL_STS",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "ECS_STATE_PROPERTIES",
        )
        if name in env
    ]
    lines.append(f"export PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH")
    cluster = str(task["clusterArn"])
    name = cluster.rsplit("/", 1)[-1]
    task_id = str(task["taskArn"]).rsplit("/", 1)[-1]
    stopped = parse_time(str(task["stoppedAt"]))
    lines += [
        "# try:",
        f"ecs-state why {task_id} --cluster {name}",
        (
            f"ecs-state stopped --cluster {name} --since {ecs_time(stopped - timedelta(hours=1))} "
            f"--until {ecs_time(stopped + timedelta(minutes=10))}"
        ),
    ]
    group = str(task.get("group", ""))
    if group.startswith("service:"):
        service = group.split(":", 1)[1]
        lines.append(f"ecs-state tasks --cluster {name} --service {service} --status RUNNING")
        lines.append(
            f"ecs-state stopped --cluster {name} --service {service} --since 7d --until "
            f"{ecs_time(stopped + timedelta(hours=12))} --output json"
        )
    if ec2_instance_id:
        lines.append(f"ecs-state tasks --cluster {name} --instance {ec2_instance_id}")
    moment = task.get("startedAt") or task["stoppedAt"]
    lines.append(f"ecs-state tasks --cluster {name} --at {moment}")
    lines.append(f"ecs-state get {task['taskArn']}")
    return lines


def _stopped_example(client: Any, settings: Any, truth: dict[str, Any]) -> tuple[dict[str, Any], str | None] | None:
    """A stopped task of the truth that ran on a container instance (or any stopped task), read from the table,
    and its EC2 instance id."""
    from processor.ops.render import decode_item

    stopped = [arn for arn, t in sorted(truth.get("tasks", {}).items()) if t.get("lastStatus") == "STOPPED"]
    fallback: tuple[dict[str, Any], str | None] | None = None
    for arn in stopped[:200]:
        low = client.get_item(TableName=settings.task_table, Key={"taskArn": {"S": arn}}).get("Item")
        if not low:
            continue
        item = decode_item(low)
        if not item.get("stoppedAt"):
            continue
        place = item.get("containerInstanceArn")
        if place and str(item.get("group", "")).startswith("service:"):
            inst = client.get_item(TableName=settings.instance_table, Key={"containerInstanceArn": {"S": place}}).get(
                "Item"
            )
            return item, (inst or {}).get("ec2InstanceId", {}).get("S")
        fallback = fallback or (item, None)
    return fallback


def _raise_interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def _keep_up(lines: list[str]) -> None:
    """Print ``lines``, then wait for Ctrl-C or SIGTERM (both handled here: a shell starting the demo in the
    background may have set SIGINT to be ignored)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    print("\n".join(lines), flush=True)
    try:
        while True:
            signal.pause()  # until Ctrl-C (SIGINT raises KeyboardInterrupt)
    except KeyboardInterrupt:
        print("demo: stopping the local stack", file=sys.stderr)


def _read_logs(paths: list[Path]) -> list[str]:
    lines: list[str] = []
    for path in paths:
        if path.exists():
            lines += path.read_text(encoding="utf-8", errors="replace").splitlines()
    return lines


def _stop(procs: list[subprocess.Popen[bytes]], timeout: float = 60) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def producer_args(events: int, fmt: str, seed: int, truth: Path, accounts: int = 1, regions: str = "") -> list[str]:
    """The demo's ``ecs-state produce`` arguments: a realistic mix (duplicates, reordering, a little poison and
    ignored types) over 3 clusters per account and region, ``accounts`` accounts in ``regions``."""
    homes = accounts * max(1, len([r for r in regions.split(",") if r.strip()]))
    return [
        "produce",
        "--stream",
        STREAM,
        "--events",
        str(events),
        "--duplicate-rate",
        "0.05",
        "--reorder-window",
        "20",
        "--poison-rate",
        "0.002",
        "--ignored-rate",
        "0.01",
        "--format",
        fmt,
        "--seed",
        str(seed),
        "--truth",
        str(truth),
        "--clusters",
        "3",
        "--instances",
        str(12 * homes),
        "--tasks",
        str(150 * homes),
        "--step-ms",
        str(STEP_MS),
        "--accounts",
        str(accounts),
        *(["--regions", regions] if regions else []),
    ]


def homes_line(report: Report) -> str | None:
    """One line saying the match holds in each account and region, when there are several."""
    homes = report.homes()
    if len(homes) < 2 or not report.ok:
        return None
    each = ", ".join(
        f"{home} {sum(c['matched'] for k, c in entry.items() if k != 'ok')}" for home, entry in homes.items()
    )
    return f"verified per account/region ({len(homes)}): {each} ARNs, each exact"


def expected_clusters(truth_doc: dict[str, Any]) -> set[str]:
    """``ACCOUNT/REGION/NAME`` of every cluster the ground truth's tasks name (a task ARN carries its cluster)."""
    found = set()
    for arn in truth_doc.get("tasks", {}):
        head, _, rest = arn.partition(":task/")
        if "/" in rest:  # arn:aws:ecs:REGION:ACCOUNT:task/CLUSTER/ID
            region, account = head.split(":")[3:5]
            found.add(f"{account}/{region}/{rest.split('/')[0]}")
    return found


def catalogue_clusters(ddb: Any, table: str, truth_doc: dict[str, Any], deadline_s: float) -> tuple[set[str], set[str]]:
    """What the catalogue lists (``ecs-state clusters`` reads the same), polled until it holds every cluster the
    tasks name or the deadline passes: the workers write it after the state items of the same flush."""
    expected = expected_clusters(truth_doc)
    deadline = time.monotonic() + deadline_s
    while True:
        listed = {entry.cluster.path for entry in read_catalog(ddb, table)}
        if listed >= expected or time.monotonic() > deadline:
            return listed, expected
        time.sleep(1.0)


def run_demo(
    events: int,
    shards: int,
    workers: int,
    work_dir: Path,
    seed: int,
    deadline_s: float,
    fmt: str,
    worker_command: str = "",
    keep: bool = False,
    accounts: int = 1,
    regions: str = "",
) -> int:
    bin_dir = Path(sys.executable).parent
    ecs_state = str(bin_dir / "ecs-state")
    worker = shlex.split(worker_command) or [ecs_state]
    print(f"demo: starting the local stack in {work_dir}", file=sys.stderr)
    with LocalStack(work_dir) as stack:
        env = stack.child_env()
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
        stack.create_stream(STREAM, shards)
        properties = stack.render_properties(streamName=STREAM, applicationName=APPLICATION)
        settings = load_settings(properties, env={})
        ensure_tables(settings, stack.client("dynamodb"))
        logs = [work_dir / f"worker-{i}.log" for i in range(workers)]
        daemons = [
            subprocess.Popen(
                [*worker, "run", "--properties", str(properties), "--log-level", "WARN", "--daemon-log", str(log)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for log in logs
        ]
        try:
            truth = work_dir / "truth.json"
            print(f"demo: {workers} KCL worker(s) on {shards} shard(s); producing {events} events", file=sys.stderr)
            started = time.monotonic()
            produced = subprocess.run([ecs_state, *producer_args(events, fmt, seed, truth, accounts, regions)], env=env)
            if produced.returncode != 0:
                print(f"demo: the producer failed (exit {produced.returncode})", file=sys.stderr)
                return 1
            produced_at = time.monotonic()
            print(
                "demo: waiting for the workers to catch up (KCL takes 15-60 s to take its first leases)",
                file=sys.stderr,
            )
            client = stack.client("dynamodb")
            report = verify(settings, str(truth), client=client, wait_s=deadline_s, interval_s=2.0)
            caught_up = time.monotonic()
            dead = [d for d in daemons if d.poll() is not None]
            if dead:
                print(f"demo: {len(dead)} worker(s) exited early: {[d.returncode for d in dead]}", file=sys.stderr)
        finally:
            _stop(daemons)
        totals = flush_totals(_read_logs(logs))
        truth_doc = json.loads(truth.read_text())
        arns = len(truth_doc.get("tasks", {})) + len(truth_doc.get("containerInstances", {}))
        if not report.ok:
            print(report.render(examples=10))
            print(f"demo: NOT verified after waiting {deadline_s:.0f} s; logs in {work_dir}")
            return 1
        elapsed = caught_up - started
        print(
            f"events {events}, distinct ARNs {arns}, writes {totals.writes}, stale {totals.stale}, "
            f"dead letters {report.dead_letters.stored}, ignored {totals.ignored}, "
            f"DynamoDB requests/event {totals.requests / max(1, events):.3f}, "
            f"events/s {events / max(elapsed, 1e-9):.0f} end to end, "
            f"catch-up {caught_up - produced_at:.1f} s after the last event was sent"
        )
        print(f"verified: {arns} ARNs at their newest version, {report.dead_letters.stored} dead letters as sent")
        per_home = homes_line(report)
        if per_home:
            print(per_home)
        listed, expected = catalogue_clusters(stack.client("dynamodb"), settings.catalog_table, truth_doc, deadline_s)
        if listed != expected:
            print(f"demo: the cluster catalogue lists {sorted(listed)}, the stream's tasks name {sorted(expected)}")
            return 1
        print(f"catalogue: {len(listed)} clusters listed by ecs-state clusters, as the tasks name them")
        if keep:
            example = _stopped_example(stack.client("dynamodb"), settings, truth_doc)
            shell_env = {
                **env,
                "AWS_ENDPOINT_URL_STS": env["AWS_ENDPOINT_URL_DYNAMODB"],
                "ECS_STATE_PROPERTIES": str(properties),
            }
            lines = try_commands(shell_env, *example) if example else ["# (no stopped task to show)"]
            _keep_up(lines)
        return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the whole pipeline on 127.0.0.1, verified exactly (./scripts/demo)",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="KCL daemons sharing one application name")
    parser.add_argument("--format", choices=("json", "msgpack"), default="json")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--deadline", type=float, default=300, help="seconds to wait for the tables to match")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep logs here (default: a temp folder)")
    parser.add_argument(
        "--worker-command",
        default="",
        help="what starts a worker in place of this venv's ecs-state (shell words; the demo "
        "appends 'run --properties ...'), e.g. 'scripts/image worker --volume DIR --'",
    )
    parser.add_argument(
        "--accounts", type=int, default=1, metavar="N", help="the synthetic fleet spans N accounts (names repeat)"
    )
    parser.add_argument(
        "--regions", default="", metavar="R1,R2", help="the regions of every account (default: the stack's region)"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="after verified, keep the local stack up until Ctrl-C and print the environment and read commands to try",
    )
    parser.set_defaults(func=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    if min(args.events, args.shards, args.workers, args.accounts) < 1:
        args.parser.error("--events, --shards, --workers and --accounts must be at least 1")
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="ecs-state-demo-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    return run_demo(
        args.events,
        args.shards,
        args.workers,
        work_dir,
        args.seed,
        args.deadline,
        args.format,
        args.worker_command,
        args.keep,
        args.accounts,
        args.regions,
    )
