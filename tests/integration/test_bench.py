"""The benchmark (workshop/bench/, scripts/bench) at a tiny size against moto: the report's structure, the floor,
and that our contender leaves no ARN stale (the pure parts: tests/unit/test_bench_stream.py). No timing
assertions."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from workshop.bench.report import render_markdown
from workshop.bench.runner import run_bench
from workshop.bench.stream import CONTENDERS, FLEET, BenchConfig


def test_a_tiny_run_reports_every_contender_and_ours_leaves_nothing_stale(moto_server: Any, tmp_path: Path) -> None:
    cfg = BenchConfig(events=600, shards=2, workers=4, fleet=replace(FLEET, poison_rate=0.01, seed=5))
    report = run_bench(cfg, tmp_path, "tiny", endpoint=moto_server.endpoint, command="test")
    saved = json.loads((tmp_path / "tiny.json").read_text())
    assert saved["results"].keys() == report["results"].keys() == set(CONTENDERS)
    png_signature = b"\x89PNG\r\n\x1a\n"  # the chart's drawing is checked in tests/unit/test_bench_stream.py
    assert (tmp_path / "tiny.png").read_bytes()[:8] == png_signature
    floor = saved["floor"]
    assert 0 < floor["requests_per_event"] < 1 and floor["windows"] >= 2
    for name, result in saved["results"].items():
        for key in (
            "requests",
            "requests_per_event",
            "cpu_us_per_event",
            "events_per_s",
            "wall_s",
            "tables",
            "label",
            "x_floor",
        ):
            assert key in result, (name, key)
        assert result["events"] == 600 and result["requests"] > 0
        assert result["tables"]["expected_arns"] == saved["stream"]["distinct_arns"]
    ours = saved["results"]["ours"]
    assert ours["tables"]["stale"] == 0 and ours["tables"]["unexpected"] == 0
    assert ours["tables"]["matched"] == saved["stream"]["distinct_arns"]
    assert ours["tables"]["dead_letters"]["ok"] and saved["stream"]["poison"] > 0
    # every state write the floor counts was made, plus one dead letter per poison record
    assert ours["requests"] >= floor["distinct_arns_per_window_sum"]
    assert ours["flush_log"]["dead_letters"] == saved["stream"]["poison"]
    # the Lambda does one get_item per state event and a put_item for most of them
    lam = saved["results"]["lambda"]
    state_events = saved["stream"]["task_events"] + saved["stream"]["instance_events"]
    failed = lam["outcomes"].get("failed", 0)
    assert failed <= saved["stream"]["poison"], lam["errors"]  # only a poison record that decodes (a lone surrogate)
    decoded = lam["outcomes"]["put"] + lam["outcomes"]["older"] + failed
    assert state_events <= decoded <= state_events + saved["stream"]["poison"]
    assert lam["requests"] >= state_events + lam["outcomes"]["put"]
    assert set(saved["targets"]) >= {"ours_requests_vs_floor", "ours_cpu_vs_lambda", "ours_stale_arns"}
    text = render_markdown(saved)
    assert "| contender |" in text and "Command: `test`" in text and text.count("\n| ") >= 4


def test_the_lambda_contender_stores_a_container_instance_event_whose_resources_hold_floats(moto_server: Any) -> None:
    """boto3 refuses floats: the documented handler as written fails on every container-instance event (their
    resources carry "doubleValue": 0.0). The contender must do what a working Lambda does and store it."""
    import boto3

    from workshop.bench.lambda_way import lambda_handler
    from workshop.testing.factories import as_json, instance_arn, instance_event
    from workshop.testing.protocol_helpers import unique_settings

    settings = unique_settings("lambda-floats")
    ddb = boto3.resource("dynamodb")
    tables = {"task": ddb.Table(settings.task_table), "instance": ddb.Table(settings.instance_table)}
    arn = instance_arn(7)
    resources = [
        {"name": "CPU", "type": "INTEGER", "doubleValue": 0.0, "integerValue": 2048},
        {"name": "WEIGHT", "type": "DOUBLE", "doubleValue": 0.25},
    ]
    data = orjson.dumps(instance_event(arn, 3, remainingResources=resources))  # compact: decoded as floats
    assert lambda_handler(data, tables, full_get=False) == "put"
    stored = tables["instance"].get_item(Key={"containerInstanceArn": arn})["Item"]
    assert stored["version"] == 3 and stored["remainingResources"][1]["doubleValue"] == Decimal("0.25")
    assert lambda_handler(data, tables, full_get=False) == "older"
    spaced = as_json(instance_event(arn, 4, remainingResources=resources))  # decoded as Decimal
    assert lambda_handler(spaced, tables, full_get=False) == "put"


def test_a_tiny_volume_run_measures_every_pass_and_the_replay_changes_nothing(tmp_path: Path) -> None:
    """--profile-volume at a tiny size against its own keep-alive moto: every figure is there, the first and
    steady passes leave nothing stale, the replay changes no stored version and its cost is priced; the benchmark
    log's section (docs/benchmarks.md) is regenerated from the JSON, its chart linked from where the log is."""
    from workshop.bench.volume import VolumeConfig, run_volume
    from workshop.bench.volume_report import END, START, build_volume_report, write_volume_results

    vcfg = VolumeConfig(
        bench=BenchConfig(
            events=800,
            shards=2,
            fleet=replace(FLEET, clusters=2, instances=6, tasks=60, poison_rate=0.01, seed=4),
            contenders=("ours", "lambda"),
        ),
        batch=300,
        poll_ms=10,
        lambda_events=150,
        flush_interval_ms=500,
        steady_rate=60,
        steady_s=2,
    )
    stream, results = run_volume(vcfg, tmp_path, lambda text: None)
    first, replay, lam = results["first"], results["replay"], results["lambda"]
    assert first["tables"]["stale"] == 0 and first["tables"]["dead_letters"]["ok"]
    assert first["calls"] >= 4 and first["cpu_us_per_event"] > 0 and first["peak_rss_mb"] > 10
    assert first["freshness_ms"]["records"] == 800 and first["freshness_ms"]["not_checkpointed"] == 0
    assert first["freshness_ms"]["p50"] <= first["freshness_ms"]["p99"]
    # the processors' own count of requests is the server's count of PutItem
    assert first["capacity"]["operations"]["PutItem"]["requests"] == first["requests"] >= first["floor_requests"]
    assert first["capacity"]["write_units"] >= first["requests"]  # at least one unit per put
    assert replay["versions_changed"] == 0 and replay["flush_log"]["writes"] == 0
    assert replay["flush_log"]["stale"] == first["flush_log"]["writes"] or replay["flush_log"]["stale"] > 0
    assert replay["cost_ratio"] > 0  # today's processor: every replayed put is a billed, failed conditional write
    assert lam["events"] == 150 and lam["capacity"]["read_units"] > 0
    steady = results["steady"]
    assert steady["events"] == 240 and steady["tables"]["stale"] == 0 and steady["tables"]["dead_letters"]["ok"]
    assert steady["calls"] >= 20 and steady["freshness_ms"]["not_checkpointed"] == 0  # paced: many small calls
    assert steady["freshness_ms"]["records"] == 240
    assert set(results["cpu_split"]) == {"protocol", "decode", "reduce", "sample"}
    doc = tmp_path / "docs" / "benchmarks.md"
    doc.parent.mkdir()
    doc.write_text(f"intro\n{START}\nold\n{END}\n", encoding="utf-8")
    report = build_volume_report(vcfg, stream, results, {"commit": "test"}, "test", tmp_path)
    text = write_volume_results(
        json.loads(json.dumps(report, default=str)), tmp_path / "bench", "volume", chart=True, doc=doc
    )
    assert "| ecs-state, first pass (backlog) |" in text and "replay" in text and "| ecs-state, steady 60 " in text
    assert "steady pass" in report["targets"]["freshness_p99_ms"]["target"]
    section = doc.read_text(encoding="utf-8")
    assert "intro" in section and "\nold\n" not in section and (tmp_path / "bench" / "volume.json").is_file()
    assert text.split("\n\n![")[0] in section and "![volume benchmark](../bench/volume.png)" in section
    assert (tmp_path / "bench" / "volume.png").stat().st_size > 10_000  # the chart was drawn
    assert {"cpu_us_per_event", "peak_rss_mb", "replay_cost_ratio", "replay_versions_changed"} <= set(report["targets"])
