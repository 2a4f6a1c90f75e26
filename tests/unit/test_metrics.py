from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from processor.shard.metrics import METRICS, Metrics, emf_record, worker_heartbeat

STATS = {
    "records": 10,
    "distinct_arns": 4,
    "writes": 3,
    "stale": 1,
    "ignored": 2,
    "dead_letters": 1,
    "retries": 0,
    "flush_ms": 12.5,
    "millis_behind_latest": None,
    "duplicates": 5,
}


def test_emf_document_declares_each_metric_it_carries() -> None:
    doc = emf_record("shardId-000000000001", STATS, timestamp_ms=1000)
    directive = doc["_aws"]["CloudWatchMetrics"][0]
    names = [m["Name"] for m in directive["Metrics"]]
    assert doc["_aws"]["Timestamp"] == 1000 and directive["Namespace"] == "ECSState"
    assert directive["Dimensions"] == [["Application"], ["Application", "ShardId"]]
    assert doc["ShardId"] == "shardId-000000000001" and doc["Application"] == "ecs-state"
    assert names == [
        "Records",
        "DistinctArns",
        "Writes",
        "Stale",
        "Ignored",
        "DeadLetters",
        "WriteRetries",
        "FlushLatency",
    ]  # None values and non-metric stats are left out
    assert all(name in doc for name in names) and doc["FlushLatency"] == 12.5
    assert {m["Unit"] for m in directive["Metrics"] if m["Name"] == "FlushLatency"} == {"Milliseconds"}


def test_targets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Metrics("none").emit("s", STATS)
    assert capsys.readouterr().err == ""
    Metrics("stderr").emit("s", STATS)
    assert json.loads(capsys.readouterr().err)["Records"] == 10
    out = tmp_path / "emf.log"
    Metrics(f"file:{out}").emit("s", STATS)
    Metrics(f"file:{out}").emit("s", STATS)
    assert [json.loads(line)["Writes"] for line in out.read_text().splitlines()] == [3, 3]


def test_a_metrics_target_that_cannot_be_written_is_counted_and_logged_never_raised(tmp_path: Path) -> None:
    target = Metrics(f"file:{tmp_path}/gone/emf.log")
    assert "cannot open" in (target.check() or "")  # found at start
    target.emit("s", STATS)  # and if it goes away later, the flush goes on
    target.emit("s", STATS)
    assert target.failures == 2


def test_a_log_line_that_cannot_be_written_is_counted_never_raised() -> None:
    from processor import logs
    from processor.logs import log_safely

    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError("stderr closed")

    logs.configure("INFO", stream=Broken())
    try:
        assert log_safely("flush", shard="s") is False
    finally:
        logs.configure("INFO")
    assert log_safely("flush", shard="s") is True


def _assert_valid_emf(doc: dict) -> None:
    """What CloudWatch needs to extract a metric: every dimension key and every declared metric is a top-level
    member, metrics are numbers, dimension values strings, and the timestamp is epoch milliseconds."""
    directive = doc["_aws"]["CloudWatchMetrics"][0]
    assert isinstance(doc["_aws"]["Timestamp"], int) and doc["_aws"]["Timestamp"] > 1_600_000_000_000
    for dimension_set in directive["Dimensions"]:
        assert all(isinstance(doc[key], str) for key in dimension_set)
    for metric in directive["Metrics"]:
        assert isinstance(doc[metric["Name"]], (int, float)) and not isinstance(doc[metric["Name"]], bool)
        assert metric["Unit"] in ("Count", "Milliseconds")


def test_every_document_carries_the_application_so_a_replay_does_not_mix_with_production() -> None:
    production = emf_record("shardId-0", STATS, application="ecs-state")
    replay = emf_record("shardId-0", STATS, application="ecs-state-replay")
    assert production["Application"] == "ecs-state" and replay["Application"] == "ecs-state-replay"
    for doc in (production, replay, worker_heartbeat("ecs-state")):
        assert all("Application" in dims for dims in doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"])
        _assert_valid_emf(doc)


def test_every_metric_the_shard_can_emit_is_a_valid_emf_document() -> None:
    every = {key: 7 for key in METRICS}
    doc = emf_record("shardId-0", every, application="app")
    assert [m["Name"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]] == [v[0] for v in METRICS.values()]
    _assert_valid_emf(doc)


def test_the_worker_heartbeat_is_one_count_per_document_without_a_shard() -> None:
    doc = worker_heartbeat("app", timestamp_ms=1_800_000_000_000)
    directive = doc["_aws"]["CloudWatchMetrics"][0]
    assert directive["Dimensions"] == [["Application"]] and "ShardId" not in doc
    assert directive["Metrics"] == [{"Name": "WorkerHeartbeat", "Unit": "Count"}] and doc["WorkerHeartbeat"] == 1


def test_the_application_comes_from_metrics_and_each_line_is_exactly_one_json_object(
    capsys: pytest.CaptureFixture[str],
) -> None:
    metrics = Metrics("stderr", application="ecs-state-replay")
    metrics.emit("shardId-0", STATS)
    metrics.heartbeat()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and all(line.startswith('{"_aws":') and line.endswith("}") for line in lines)
    assert {json.loads(line)["Application"] for line in lines} == {"ecs-state-replay"}
