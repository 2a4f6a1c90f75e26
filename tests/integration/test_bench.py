"""The benchmark (workshop/bench/, scripts/bench) at a tiny size: the report's structure, the floor, the
stream split, the PNG, and that our contender leaves no ARN stale. No timing assertions."""

from __future__ import annotations

import argparse
import json
import struct
from collections import Counter
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from processor.loadgen.records import Record
from workshop.bench.chart import Panel, write_chart
from workshop.bench.report import render_markdown
from workshop.bench.runner import add_arguments, config_from_args, run_bench, volume_config_from_args
from workshop.bench.stream import (
    CONTENDERS,
    FLEET,
    BenchConfig,
    arrival_seconds,
    build_stream,
    distinct_per_window,
    flush_windows,
    shard_of,
)
from workshop.bench.volume import VolumeConfig


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser


def test_shard_of_splits_the_md5_hash_range_evenly_as_kinesis_does() -> None:
    # MD5("a") = 0cc175b9...: in the first of 4 shards, and in shard 0 of 16 (0x0c < 0x10)
    assert shard_of("a", 4) == 0 and shard_of("a", 16) == 0
    assert shard_of("b", 4) == 2  # MD5("b") = 92eb5ffe... -> 0x92 * 4 // 256 = 2
    spread = Counter(shard_of(f"arn:aws:ecs:us-east-1:1:task/c/{i}", 4) for i in range(4000))
    assert set(spread) == {0, 1, 2, 3} and min(spread.values()) > 900
    assert all(shard_of(f"k{i}", 1) == 0 for i in range(100))


def test_flush_windows_cut_a_shard_by_arrival_time_and_the_floor_counts_distinct_arns_per_window() -> None:
    def rec(arn: str) -> Record:
        return Record(arn, b"{}", "task", arn=arn, version=1)

    records = [rec("a"), rec("a"), rec("b"), Record("p", b"x", "poison", "truncated"), rec("a"), rec("c")]
    arrivals = [0.0, 1.0, 4.9, 5.0, 6.0, 12.0]
    indices = list(range(len(records)))
    windows = flush_windows(indices, arrivals, 5.0)
    assert windows == [(0, 3), (3, 5), (5, 6)]
    # window 1: a, b; window 2: a (the poison record needs no state write); window 3: c
    assert distinct_per_window(records, [indices], [windows]) == 4
    # two shards: each ARN lives in one shard, windows are per shard
    left, right = [0, 1, 4], [2, 3, 5]
    assert (
        distinct_per_window(
            records, [left, right], [flush_windows(left, arrivals, 5.0), flush_windows(right, arrivals, 5.0)]
        )
        == 4
    )


def test_arrival_clock_follows_the_simulated_fleet_and_never_goes_back() -> None:
    stream = build_stream(BenchConfig(events=400, fleet=replace(FLEET, reorder_window=20, poison_rate=0.05, seed=3)))
    arrivals = stream.arrivals
    assert arrivals[0] == 0.0 and arrivals[-1] > 5
    assert all(b >= a for a, b in zip(arrivals, arrivals[1:]))
    assert arrival_seconds(stream.records, rate=100.0)[-1] == pytest.approx(3.99)
    assert sorted(i for ix in stream.shard_indices for i in ix) == list(range(400))


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="--contenders"):
        config_from_args(_parser().parse_args(["--contenders", "ours,nope"]))
    cfg = config_from_args(_parser().parse_args(["--events", "10", "--contenders", "ours"]))
    assert cfg.contenders == ("ours",) and cfg.events == 10
    with pytest.raises(ValueError, match="--poison-rate"):  # the producer's own check of its options
        config_from_args(_parser().parse_args(["--poison-rate", "1.5"]))


def test_the_fleet_options_given_reach_the_producers_options_the_rest_stay_the_profiles() -> None:
    cfg = config_from_args(_parser().parse_args(["--tasks", "70", "--seed", "9", "--reorder-window", "3"]))
    assert cfg.options() == replace(FLEET, tasks=70, seed=9, reorder_window=3)
    volume = volume_config_from_args(_parser().parse_args(["--profile-volume", "--poison-rate", "0.02"]))
    assert volume.bench.options() == replace(VolumeConfig().bench.fleet, poison_rate=0.02)
    assert volume.bench.options().tasks == 5000 and cfg.flat()["tasks"] == 70


def _png_size(data: bytes) -> tuple[int, int]:
    """The width and height of a PNG, after checking its signature and that it holds a real image (an IHDR
    first, image data, an IEND last, and more than a few bytes of it: matplotlib drew something)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    assert b"IDAT" in data and data[-8:-4] == b"IEND"
    assert len(data) > 10_000
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_chart_is_a_png_drawn_by_matplotlib(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = write_chart(
        tmp_path / "chart.png",
        "T",
        ["A", "B\nsecond line"],
        [Panel("X", [1.0, None], "{:.1f}", [("floor", 0.5)]), Panel("Y", [0.0, 2.0]), Panel("Z", [0.0, 0.0], "{:.0f}")],
        ["footer one", "footer two"],
    )
    assert path == tmp_path / "chart.png"
    width, height = _png_size(path.read_bytes())
    assert width == 1240 and height > 2 * 400  # two columns of 6.2 in at 100 dpi; two rows of panels


def test_a_tiny_run_reports_every_contender_and_ours_leaves_nothing_stale(moto_server: Any, tmp_path: Path) -> None:
    cfg = BenchConfig(events=600, shards=2, workers=4, fleet=replace(FLEET, poison_rate=0.01, seed=5))
    report = run_bench(cfg, tmp_path, "tiny", endpoint=moto_server.endpoint, command="test")
    saved = json.loads((tmp_path / "tiny.json").read_text())
    assert saved["results"].keys() == report["results"].keys() == set(CONTENDERS)
    assert _png_size((tmp_path / "tiny.png").read_bytes())[0] > 0
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
