"""Benchmark: the ecs-state processor against the documented per-event Lambda, on one stream and one DynamoDB.

:func:`run_bench` is the orchestration, and the rules of a run:

* One stream (:mod:`workshop.bench.stream`) is built once and fed to every contender, in the order of
  ``cfg.contenders``, each on fresh tables of the same moto server (started here on 127.0.0.1 unless an
  ``endpoint`` is given), so no contender sees another's writes.
* Contenders: ``ours`` (:mod:`workshop.bench.ours`: one processor process per shard through the MultiLang
  protocol, each flush window one call) and ``lambda`` / ``lambda-8`` (:mod:`workshop.bench.lambda_way`: the
  documented get+put per event, sequentially or on ``workers`` threads, in a child process).
* After each contender its tables are checked against the ground truth (:func:`workshop.bench.emulator.check_tables`);
  a contender that fails raises (:class:`~processor.errors.BenchError`) and the run writes nothing.
* The code version is read before the run (the code the processes load); logs of moto, the processors and the
  Lambda go to a fresh temporary folder, named in the report.
* The results go to ``<name>.json`` (and ``<name>.png``) in ``out_dir`` (:mod:`workshop.bench.report`); CPU
  readings are Linux only (:mod:`workshop.bench.cpu`); ``--profile`` adds :mod:`workshop.bench.profiling`.

:func:`add_arguments` and :func:`config_from_args` are the command line of ``python -m workshop bench``
(:mod:`workshop.bench.command`): options map one to one onto :class:`~workshop.bench.stream.BenchConfig`, and
bad values raise ``ValueError``.
"""

from __future__ import annotations

import argparse
import dataclasses
import secrets
import tempfile
from pathlib import Path
from typing import Any, Callable

from processor.loadgen.fleet import Options
from workshop.bench.emulator import check_tables, fresh_tables
from workshop.bench.lambda_way import run_lambda
from workshop.bench.ours import run_ours
from workshop.bench.report import build_report, code_version, write_results
from workshop.bench.stream import CONTENDERS, BenchConfig, build_stream, floor_figures
from workshop.bench.volume import VolumeConfig
from workshop.local.paths import project_dir


def run_bench(
    cfg: BenchConfig,
    out_dir: Path,
    name: str = "results",
    endpoint: str | None = None,
    profile: bool = False,
    command: str = "",
    chart: bool = True,
    progress: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """Run the contenders of ``cfg`` on one stream; writes ``<name>.json`` (and ``<name>.png``) in ``out_dir``."""
    from workshop.local.stack import aws_client, start_moto

    say: Callable[[str], Any] = progress or (lambda text: None)
    code = code_version()  # before running: the code the processes load
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"ecs-state-bench-{name}-"))  # logs of moto, processors, Lambda
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
            result["x_floor"] = (
                result["requests_per_event"] / floor["requests_per_event"] if floor["requests_per_event"] else None
            )
            results[contender] = result
            say(
                f"  {result['requests_per_event']:.3f} requests/event, {result['cpu_us_per_event']:.0f} µs CPU/event, "
                f"{result['events_per_s']:.0f} events/s, {result['tables']['stale']} stale ARNs"
            )
        profiles: dict[str, Any] = {}
        if profile:
            from workshop.bench.profiling import profile_core, profile_put

            say("profiling the processor's per-record path and the client side of a conditional put ...")
            profiles["core"] = profile_core(stream)
            profiles["put"] = profile_put(endpoint, stream, fresh_tables(client, "profile", run_id))
    finally:
        if server is not None:
            server.stop()
    report = build_report(cfg, stream, floor, results, profiles, code, command, work)
    write_results(report, out_dir, name, chart)
    return report


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = BenchConfig()
    v = VolumeConfig()
    p.add_argument(
        "--events",
        type=int,
        default=None,
        help=f"records in the stream (default {d.events}; --profile-volume: {v.bench.events})",
    )
    p.add_argument("--shards", type=int, default=None, help=f"default {d.shards} (--profile-volume: {v.bench.shards})")
    p.add_argument("--flush-ms", type=int, default=d.flush_ms, help="flush window in ms of the arrival clock")
    p.add_argument(
        "--rate",
        type=float,
        default=d.rate,
        help="arrival rate in events/s (default 0: the simulated fleet's own clock)",
    )
    p.add_argument("--workers", type=int, default=d.workers, help="threads of the concurrent Lambda contender")
    p.add_argument(
        "--clusters",
        type=int,
        default=None,
        help=f"default {d.fleet.clusters} (--profile-volume: {v.bench.fleet.clusters})",
    )
    p.add_argument(
        "--instances",
        type=int,
        default=None,
        help=f"default {d.fleet.instances} (--profile-volume: {v.bench.fleet.instances})",
    )
    p.add_argument(
        "--tasks", type=int, default=None, help=f"default {d.fleet.tasks} (--profile-volume: {v.bench.fleet.tasks})"
    )
    p.add_argument("--duplicate-rate", type=float, default=d.fleet.duplicate_rate)
    p.add_argument("--reorder-window", type=int, default=d.fleet.reorder_window)
    p.add_argument("--poison-rate", type=float, default=d.fleet.poison_rate)
    p.add_argument("--ignored-rate", type=float, default=d.fleet.ignored_rate)
    p.add_argument("--seed", type=int, default=d.fleet.seed)
    p.add_argument("--contenders", default=",".join(d.contenders), help=f"comma list of {', '.join(CONTENDERS)}")
    p.add_argument(
        "--lambda-full-get",
        action="store_true",
        help="the Lambda fetches the whole item (default: only `version`, cheaper for the Lambda)",
    )
    p.add_argument("--out", default=str(project_dir() / "bench"), help="output directory (default: bench/)")
    p.add_argument("--name", default="results", help="file name stem of the JSON and PNG (default: results)")
    p.add_argument("--profile", action="store_true", help="also profile the core per-record path and a put")
    p.add_argument("--no-chart", action="store_true")
    g = p.add_argument_group("high-volume profile")
    g.add_argument(
        "--profile-volume",
        action="store_true",
        help="the high-volume profile: large fleet, 10,000-record batches in real time, default processor "
        "settings, moto with keep-alive, a replay pass, the Lambda on a prefix (bench/volume.*, docs/benchmarks.md)",
    )
    g.add_argument("--batch", type=int, default=v.batch, help=f"records per processRecords call (default {v.batch})")
    g.add_argument("--poll-ms", type=int, default=v.poll_ms, help=f"pause between calls (default {v.poll_ms})")
    g.add_argument(
        "--lambda-events",
        type=int,
        default=v.lambda_events,
        help=f"records the per-event Lambda is measured on (default {v.lambda_events}; 0: none)",
    )
    g.add_argument("--no-replay", action="store_true", help="skip the replay pass")
    g.add_argument(
        "--steady-rate",
        type=int,
        default=v.steady_rate,
        help=f"records/s per shard of the steady (freshness) pass (default {v.steady_rate}; 0: none)",
    )
    g.add_argument(
        "--steady-seconds",
        type=int,
        default=v.steady_s,
        help=f"how long the steady pass delivers (default {v.steady_s})",
    )
    g.add_argument(
        "--render-only",
        action="store_true",
        help="re-render bench/NAME.md, .png and the docs/benchmarks.md section from the saved bench/NAME.json",
    )


FLEET_SIZES = ("clusters", "instances", "tasks")


def _fleet(args: argparse.Namespace, defaults: BenchConfig) -> Options:
    """The producer's options from the command line: sizes as given, else the profile's; the rest as given."""
    given = [getattr(args, n) for n in FLEET_SIZES]
    clusters, instances, tasks = [getattr(defaults.fleet, n) if v is None else v for n, v in zip(FLEET_SIZES, given)]
    return dataclasses.replace(
        defaults.fleet,
        clusters=clusters,
        instances=instances,
        tasks=tasks,
        seed=args.seed,
        duplicate_rate=args.duplicate_rate,
        reorder_window=args.reorder_window,
        poison_rate=args.poison_rate,
        ignored_rate=args.ignored_rate,
    )


def _given(args: argparse.Namespace, defaults: BenchConfig) -> tuple[int, int]:
    """The stream's size options (events, shards): as given, else the profile's defaults."""
    return (
        defaults.events if args.events is None else args.events,
        defaults.shards if args.shards is None else args.shards,
    )


def volume_config_from_args(args: argparse.Namespace) -> VolumeConfig:
    d = VolumeConfig()
    if args.batch < 1 or min(args.poll_ms, args.lambda_events, args.steady_rate, args.steady_seconds) < 0:
        raise ValueError("--batch must be >= 1, --poll-ms, --lambda-events, --steady-rate and --steady-seconds >= 0")
    events, shards = _given(args, d.bench)
    bench = dataclasses.replace(d.bench, events=events, shards=shards, fleet=_fleet(args, d.bench))
    if bench.events < 1 or bench.shards < 1:
        raise ValueError("--events and --shards must be >= 1")
    return VolumeConfig(
        bench=bench,
        batch=args.batch,
        poll_ms=args.poll_ms,
        lambda_events=args.lambda_events,
        replay=not args.no_replay,
        steady_rate=args.steady_rate,
        steady_s=args.steady_seconds,
    )


def run_volume_profile(
    vcfg: VolumeConfig,
    out_dir: Path,
    name: str,
    command: str,
    chart: bool,
    doc: Path | None,
    progress: Callable[[str], Any],
) -> str:
    """The high-volume profile (:mod:`workshop.bench.volume`): runs it, writes ``<name>.json/.md/.png`` in
    ``out_dir`` and the generated section of ``doc`` (docs/benchmarks.md); returns the markdown."""
    from workshop.bench.volume import run_volume
    from workshop.bench.volume_report import build_volume_report, write_volume_results

    code = code_version()
    work = Path(tempfile.mkdtemp(prefix=f"ecs-state-bench-{name}-"))
    progress(f"logs in {work}")
    stream, results = run_volume(vcfg, work, progress)
    report = build_volume_report(vcfg, stream, results, code, command, work)
    return write_volume_results(report, out_dir, name, chart, doc)


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    events, shards = _given(args, BenchConfig())
    contenders = tuple(c.strip() for c in args.contenders.split(",") if c.strip())
    unknown = [c for c in contenders if c not in CONTENDERS]
    if unknown or not contenders:
        raise ValueError(f"--contenders: unknown {unknown}; choose from {', '.join(CONTENDERS)}")
    if events < 1 or shards < 1 or args.flush_ms < 1 or args.workers < 1:
        raise ValueError("--events, --shards, --flush-ms and --workers must be >= 1")
    return BenchConfig(
        events=events,
        shards=shards,
        flush_ms=args.flush_ms,
        rate=args.rate,
        workers=args.workers,
        fleet=_fleet(args, BenchConfig()),
        contenders=contenders,
        lambda_full_get=args.lambda_full_get,
    )
