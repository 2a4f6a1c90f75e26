"""The benchmark's report: the results JSON, its markdown rendering, the chart, and the code measured.

* :func:`build_report` gathers one run into one JSON-able dict (command, config, code, machine, stream, floor,
  floor sweep, results, targets, profiles); everything else here reads only that dict, so a saved
  ``<name>.json`` renders the same as the run that wrote it.
* :func:`targets` states the issue's targets as figures with ``met`` beside each, never as assertions: a run that
  misses a target still reports.
* :func:`code_version` records the commit measured and the processor files that differed from it; read-only git
  queries, taken before the run (the code the processes load), empty when git is not there.
* :func:`write_png` draws the four panels (requests/event with the floor, CPU µs/event, events/s, stale ARNs)
  with :mod:`workshop.bench.chart`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from workshop.bench.stream import BenchConfig, Stream, floor_sweep
from workshop.local.paths import project_dir


def code_version() -> dict[str, Any]:
    """The commit measured and the processor files that differed from it (read-only git queries)."""
    root = project_dir()

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=False
            ).stdout.rstrip()  # not strip: porcelain lines start with a space
        except (OSError, subprocess.SubprocessError):
            return ""

    modified = [
        line[3:]
        for line in git("status", "--porcelain", "--", "processor").splitlines()
        if line[:2].strip() and not line.startswith("??")
    ]
    return {"commit": git("rev-parse", "--short", "HEAD") or None, "modified": modified}


def machine(emulator: str) -> dict[str, Any]:
    """The report's ``machine`` block: where the figures were measured."""
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "load_avg_1m_at_end": os.getloadavg()[0],
        "emulator": emulator,
    }


def stream_facts(stream: Stream) -> dict[str, Any]:
    """What the reports say of the stream every contender was fed (from its ground truth)."""
    totals = stream.truth["totals"]
    return {
        "events": len(stream.records),
        "task_events": totals["task_events"],
        "instance_events": totals["instance_events"],
        "duplicates": totals["duplicates"],
        "poison": totals["poison"],
        "ignored": totals["ignored"],
        "distinct_arns": totals["tasks"] + totals["instances"],
        "mean_bytes": round(totals["bytes"] / max(1, totals["records"])),
    }


def build_report(
    cfg: BenchConfig,
    stream: Stream,
    floor: dict[str, Any],
    results: dict[str, Any],
    profiles: dict[str, Any],
    code: dict[str, Any],
    command: str,
    logs: Path,
) -> dict[str, Any]:
    """One run as the results JSON (what ``<name>.json`` holds and :func:`render_markdown` reads)."""
    return {
        "command": command,
        "logs": str(logs),
        "config": cfg.flat(),
        "code": code,
        "machine": machine("moto server (DynamoDB), 127.0.0.1"),
        "stream": {
            **stream_facts(stream),
            "simulated_seconds": round(stream.duration_s, 1),
            "arrival_rate_per_s": round(len(stream.records) / stream.duration_s, 2) if stream.duration_s else None,
            "clock": f"{cfg.rate} events/s" if cfg.rate > 0 else "the simulated fleet's own clock",
            "generate_s": round(stream.generate_s, 2),
        },
        "floor": floor,
        "floor_sweep": floor_sweep(stream),
        "results": results,
        "targets": targets(results, floor),
        "profiles": profiles,
    }


def write_results(report: dict[str, Any], out_dir: Path, name: str, chart: bool = True) -> None:
    """``<name>.json`` (and ``<name>.png`` with ``chart``) in ``out_dir``."""
    (out_dir / f"{name}.json").write_text(json.dumps(report, indent=1, default=str) + "\n", encoding="utf-8")
    if chart:
        write_png(report, out_dir / f"{name}.png")


def targets(results: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets as figures (not assertions)."""
    out: dict[str, Any] = {}
    ours = results.get("ours")
    if not ours:
        return out
    if floor["requests_per_event"]:
        out["ours_requests_vs_floor"] = {
            "value": round(ours["requests_per_event"] / floor["requests_per_event"], 3),
            "target": "<= 1.2",
        }
    for name in ("lambda", "lambda-8"):
        other = results.get(name)
        if other and other["requests_per_event"]:
            out[f"ours_requests_vs_{name}"] = {
                "value": round(ours["requests_per_event"] / other["requests_per_event"], 4),
                "target": "<= 1/6 (0.1667)",
            }
        if other and other["cpu_us_per_event"]:
            out[f"ours_cpu_vs_{name}"] = {
                "value": round(ours["cpu_us_per_event"] / other["cpu_us_per_event"], 4),
                "target": "<= 1/4 (0.25)",
            }
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
        f"{stream['instance_events']:,} instance events ({stream['duplicates']:,} duplicates), "
        f"{stream['poison']} poison, {stream['ignored']} ignored; reorder window {cfg['reorder_window']}; "
        f"{stream['distinct_arns']:,} distinct ARNs; "
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
        lines.append(
            f"| {r['label']} | {r['requests']:,} | {r['requests_per_event']:.3f} | "
            f"{r['x_floor'] or 0:.2f} | {r['cpu_us_per_event']:,.0f} | {r['events_per_s']:,.1f} | "
            f"{t['stale']}{extra} |"
        )
    lines.append("")
    ours = results.get("ours")
    if ours:
        fl = ours["flush_log"]
        lines.append(
            f"ecs-state: {fl.get('flushes', 0):,} flushes, {fl.get('writes', 0):,} writes, "
            f"{fl.get('stale', 0):,} conditional-check rejections, {fl.get('dead_letters', 0)} dead letters "
            f"(floor incl. one dead-letter put per poison record: {floor['with_dead_letters_per_event']:.3f}/event), "
            f"{fl.get('retries', 0)} retries; CPU {ours['cpu_s']} s between `initialize` and `shutdownRequested` "
            f"summed over the {ours['processes']} processes (start-up {ours['startup_cpu_s']} s; with "
            f"start-up and exit {ours['cpu_gross_us_per_event']:.0f} µs/event); "
            f"dead letters exact: {ours['tables'].get('dead_letters', {}).get('ok')}."
        )
    for name in ("lambda", "lambda-8"):
        r = results.get(name)
        if r:
            lines.append(
                f"{r['label']}: outcomes {r['outcomes']}; get_item "
                f"{'whole item' if r['full_get'] else 'projected to version'}"
                + (
                    f"; {r['outcomes'].get('failed', 0)} failed, e.g. `{_brief_text(r['errors'][0])}` (moto "
                    f"cannot store a string with a lone surrogate: the lone-surrogate poison records, which "
                    f"the processor dead-letters)"
                    if r["errors"]
                    else ""
                )
                + "."
            )
    if report["targets"]:
        lines += ["", "Targets (figures, not assertions):"]
        for key, t in report["targets"].items():
            lines.append(
                f"- {key.replace('_', ' ')}: {t['value']} (target {t['target']}) {'met' if t['met'] else 'NOT met'}"
            )
    lines += [
        "",
        "Floor for other flush intervals (same stream and clock): "
        + ", ".join(
            f"{s['flush_ms'] / 1000:g} s -> {s['floor_requests_per_event']:.3f} (K~{s['mean_records_per_call']})"
            for s in report["floor_sweep"]
        ),
    ]
    if report["profiles"]:
        core, put = report["profiles"].get("core"), report["profiles"].get("put")
        if core:
            lines += [
                "",
                f"Core per-record path (decode + item + reduce, in-process): {core['core_us_per_event']} µs/event. "
                "Hot spots (tottime):",
            ]
            lines += [f"- {h['function']}: {h['tottime_s']} s, {h['calls']:,} calls" for h in core["hot_spots"][:8]]
        if put:
            lines += [
                "",
                f"Client side of one conditional PutItem (botocore, validation off): "
                f"{put['client_cpu_us_per_put']} µs CPU, {put['wall_ms_per_put']} ms wall against moto "
                f"(sequential, one thread). "
                "Hot spots (tottime):",
            ]
            lines += [f"- {h['function']}: {h['tottime_s']} s, {h['calls']:,} calls" for h in put["hot_spots"][:8]]
    code = report.get("code") or {}
    lines += [
        "",
        f"Code: commit {code.get('commit')}"
        + (f" with local changes in {', '.join(code['modified'])}" if code.get("modified") else "")
        + ".",
        f"Machine: {report['machine']['cpus']} CPUs, Python {report['machine']['python']}, load average "
        f"{report['machine']['load_avg_1m_at_end']:.1f} at the end (other work shares the cores: wall figures "
        f"are moto-bound and load-dependent).",
        f"Command: `{report['command']}`",
    ]
    return "\n".join(lines)


def _brief_text(text: str) -> str:
    return text.split("\n", 1)[0].split(": <", 1)[0][:160]


def write_png(report: dict[str, Any], path: Path) -> Path:
    from workshop.bench.chart import Panel, write_chart

    results = report["results"]
    names = list(results)
    labels = [
        {
            "ours": "ecs-state",
            "lambda": "Lambda\nsequential",
            "lambda-8": f"Lambda\n{report['config']['workers']} workers",
        }[n]
        for n in names
    ]
    floor = report["floor"]["requests_per_event"]
    panels = [
        Panel(
            "DynamoDB requests / event", [results[n]["requests_per_event"] for n in names], "{:.3f}", [("floor", floor)]
        ),
        Panel("CPU µs / event", [results[n]["cpu_us_per_event"] for n in names], "{:,.0f}"),
        Panel("events / s (wall, moto-bound)", [results[n]["events_per_s"] for n in names], "{:,.0f}"),
        Panel("ARNs left stale", [float(results[n]["tables"]["stale"]) for n in names], "{:.0f}"),
    ]
    s, c = report["stream"], report["config"]
    footer = [
        f"{s['events']:,} events, {s['distinct_arns']:,} ARNs, {s['duplicates']:,} duplicates, "
        f"{s['poison']} poison, reorder window {c['reorder_window']}",
        f"{c['shards']} shards, flush window {c['flush_ms']} ms at {s['arrival_rate_per_s']} events/s: "
        f"K = {report['floor']['records_per_call']['mean']} records per call",
        f"command: {report['command']}"[:140],
    ]
    return write_chart(path, f"ecs-state vs the per-event Lambda, {s['events']:,} events", labels, panels, footer)
