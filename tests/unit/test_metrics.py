from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from processor.shard.metrics import Metrics, emf_record

STATS = {"records": 10, "distinct_arns": 4, "writes": 3, "stale": 1, "ignored": 2, "dead_letters": 1,
         "retries": 0, "flush_ms": 12.5, "millis_behind_latest": None, "duplicates": 5}


def test_emf_document_declares_each_metric_it_carries() -> None:
    doc = emf_record("shardId-000000000001", STATS, timestamp_ms=1000)
    directive = doc["_aws"]["CloudWatchMetrics"][0]
    names = [m["Name"] for m in directive["Metrics"]]
    assert doc["_aws"]["Timestamp"] == 1000 and directive["Namespace"] == "ECSState"
    assert directive["Dimensions"] == [["ShardId"]] and doc["ShardId"] == "shardId-000000000001"
    assert names == ["Records", "DistinctArns", "Writes", "Stale", "Ignored", "DeadLetters", "WriteRetries",
                     "FlushLatency"]  # None values and non-metric stats are left out
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
