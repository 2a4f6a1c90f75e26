"""The flush log line is one contract: built by FlushReport, read back by the same class everywhere."""

from __future__ import annotations

import io
import json

from processor import logs
from processor.errors import (
    EXIT_BUG,
    EXIT_CONFIG,
    EXIT_INTERRUPTED,
    EXIT_WRITE_FAILED,
    ConfigError,
    LaunchError,
    ReadError,
    WriteFailed,
    exit_code_for,
)
from processor.shard.flush_report import EVENT, FlushReport, flush_reports, total

REPORT = FlushReport(
    shard="shardId-000000000001",
    reason="interval",
    first_sequence_number="1",
    last_sequence_number="9",
    records=9,
    distinct_arns=4,
    writes=3,
    stale=1,
    ignored=2,
    dead_letters=1,
    duplicates=1,
    superseded=1,
    requests=6,
    retries=1,
    throttled=1,
    flush_ms=12.5,
    millis_behind_latest=0,
)


def logged(report: FlushReport) -> str:
    out = io.StringIO()
    logs.configure("INFO", out)
    try:
        logs.log(EVENT, **report.fields())
    finally:
        logs.configure("INFO", None)
    return out.getvalue().strip()


def test_a_logged_report_reads_back_equal() -> None:
    assert flush_reports([logged(REPORT)]) == [REPORT]


def test_the_line_keeps_the_documented_keys() -> None:
    line = json.loads(logged(REPORT))
    assert line["event"] == "flush" and line["firstSequenceNumber"] == "1" and line["lastSequenceNumber"] == "9"
    assert {
        "records",
        "distinct_arns",
        "writes",
        "stale",
        "ignored",
        "dead_letters",
        "requests",
        "retries",
        "throttled",
        "flush_ms",
        "millis_behind_latest",
        "shard",
        "reason",
    } <= set(line)


def test_the_daemons_wrapped_copy_is_read_and_other_lines_are_not() -> None:
    wrapped = (
        f"12:00:00.000 ERROR [t] DrainChildSTDERRTask - Received error line from subprocess [{logged(REPORT)}]"
        " for shard shardId-000000000001"
    )
    other = '{"ts":1.0,"level":"INFO","event":"initialize","shard":"s"}'
    reports = flush_reports([wrapped, other, "not json {", ""])
    assert reports == [REPORT] and total(reports * 3, "writes") == 9


def test_unknown_keys_are_ignored_and_missing_counters_are_zero() -> None:
    report = FlushReport.from_fields({"event": "flush", "shard": "s", "reason": "full", "writes": 2, "future": 1})
    assert report.writes == 2 and report.records == 0 and report.last_sequence_number is None


def test_stats_hold_only_counters_and_timings() -> None:
    assert "shard" not in REPORT.stats() and REPORT.stats()["writes"] == 3


def test_every_error_class_has_one_exit_code() -> None:
    assert exit_code_for(ConfigError("x")) == exit_code_for(LaunchError("x")) == EXIT_CONFIG
    assert exit_code_for(ReadError("x")) == EXIT_CONFIG
    assert exit_code_for(WriteFailed("x")) == EXIT_WRITE_FAILED
    assert exit_code_for(KeyboardInterrupt()) == EXIT_INTERRUPTED
    assert exit_code_for(ZeroDivisionError()) == EXIT_BUG


def test_the_flush_line_carries_freshness_and_reads_it_back() -> None:
    report = FlushReport(
        shard="shardId-1",
        reason="interval",
        first_sequence_number="1",
        last_sequence_number="9",
        records=9,
        freshness_p50_ms=812.5,
        freshness_p99_ms=5120.0,
    )
    line = logged(report)
    assert '"freshness_p50_ms":812.5' in line and '"freshness_p99_ms":5120.0' in line
    assert flush_reports([line]) == [report]
