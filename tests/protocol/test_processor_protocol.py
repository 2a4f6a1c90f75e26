"""The processor process driven through the MultiLang protocol, as the daemon drives it, against moto over HTTP."""

from __future__ import annotations

import dataclasses
import hashlib
import random
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from processor import aws
from processor.config import Settings
from processor.errors import EXIT_CONFIG
from processor.logs import parse_line
from processor.ops.setup_tables import ensure_tables
from processor.shard.flush_report import FlushReport, flush_reports
from workshop.testing.factories import as_json, task_arn, task_event
from workshop.testing.multilang_driver import KinesisRecord, ProcessExited, ProcessorProcess, records_from, run_shard
from workshop.testing.protocol_helpers import DurabilityCheck, env_for, expected_state, make_stream, stored_state


@pytest.fixture()
def tables(moto_server: Any, request: pytest.FixtureRequest) -> Iterator[Settings]:
    suffix = f"{request.node.name[:30]}-{random.randrange(10**6)}"
    s = Settings(task_table=f"t-{suffix}", instance_table=f"i-{suffix}", dead_letter_table=f"d-{suffix}")
    ensure_tables(s)
    yield s


def test_stream_ends_exact_and_every_checkpoint_follows_durable_data(tables: Settings, tmp_path: Path) -> None:
    records = records_from(make_stream(seed=1))
    check = DurabilityCheck(tables, records)
    proc = ProcessorProcess(env=env_for(tables), on_checkpoint=check, stderr_path=tmp_path / "stderr").start()
    assert run_shard(proc, "shardId-000000000000", records, batch_size=97) == 0
    best, poison = expected_state(records)
    state, dead = stored_state(tables)
    assert state == best
    assert set(dead) == poison
    assert {d["reasonCode"]["S"] for d in dead.values()} >= {
        "bad-json",
        "bad-utf8",
        "not-object",
        "wrong-source",
        "bad-version",
    }
    for seq, item in dead.items():
        raw = next(r.data for r in records if r.sequence_number == seq)
        assert item["dataSha256"]["S"] == hashlib.sha256(raw).hexdigest()
    assert check.checked >= len(records) // 97 and proc.checkpoints[-1].sequence_number == records[-1].sequence_number
    lines = (tmp_path / "stderr").read_text().splitlines()
    flushes = flush_reports(lines)
    assert sum(f.records for f in flushes) == len(records)
    assert sum(f.ignored for f in flushes) == 1
    raw = next(parse_line(line) for line in lines if (parse_line(line) or {}).get("event") == "flush")
    assert set(
        FlushReport(shard="s", reason="r", first_sequence_number=None, last_sequence_number=None).fields()
    ) <= set(raw or {})


def test_replay_after_a_restart_is_idempotent(tables: Settings, tmp_path: Path) -> None:
    records = records_from(make_stream(seed=2))
    for attempt in range(2):
        proc = ProcessorProcess(env=env_for(tables), stderr_path=tmp_path / f"stderr{attempt}").start()
        assert run_shard(proc, "shardId-000000000001", records, batch_size=200) == 0
    state, _ = stored_state(tables)
    assert state == expected_state(records)[0]
    second = flush_reports((tmp_path / "stderr1").read_text().splitlines())
    assert sum(f.writes for f in second) == 0 and sum(f.stale for f in second) > 0


def test_a_replay_far_behind_the_tip_reads_stored_versions_in_bulk_and_sends_no_write(
    tables: Settings, tmp_path: Path
) -> None:
    """Records delivered while catching up (millisBehindLatest past prefetchBehindMillis): their flush reads the
    stored versions with BatchGetItem (100 keys a request), even when it runs after a poll at the tip, and every
    stale write is skipped; the flush lines say how old the records were."""
    ten_minutes_ago = int(time.time() * 1000) - 600_000
    records = [
        dataclasses.replace(r, arrival_ms=ten_minutes_ago)
        for r in records_from(make_stream(seed=12, arns=250, versions=2, poison_every=10**6))
    ]
    proc = ProcessorProcess(env=env_for(tables), stderr_path=tmp_path / "first").start()
    assert run_shard(proc, "shardId-000000000012", records, batch_size=1000) == 0
    proc = ProcessorProcess(
        env=env_for(tables, ECS_STATE_FLUSH_INTERVAL_MILLIS="3600000"), stderr_path=tmp_path / "replay"
    ).start()
    proc.initialize("shardId-000000000012")
    proc.process_records(records, millis_behind_latest=3_600_000)
    proc.process_records([], millis_behind_latest=0)  # at the tip now: the records were still delivered behind
    proc.shutdown_requested()
    assert proc.close() == 0
    assert stored_state(tables)[0] == expected_state(records)[0]
    replay = flush_reports((tmp_path / "replay").read_text().splitlines())
    arns = sum(f.distinct_arns for f in replay)
    assert sum(f.writes for f in replay) == 0 and sum(f.stale for f in replay) == arns > 0
    assert sum(f.skipped for f in replay) == arns  # every one known from the reads: no conditional put sent
    assert sum(f.requests for f in replay) <= -(-arns // 100) * len(replay)  # reads only, no PutItem
    assert all(f.freshness_p50_ms is not None and f.freshness_p50_ms >= 600_000 for f in replay)
    assert all(f.freshness_p99_ms is not None and f.freshness_p99_ms >= f.freshness_p50_ms for f in replay)


def test_interval_not_reached_means_no_checkpoint_until_shutdown(tables: Settings, tmp_path: Path) -> None:
    records = records_from(make_stream(seed=3, arns=5, versions=3))
    proc = ProcessorProcess(
        env=env_for(tables, ECS_STATE_FLUSH_INTERVAL_MILLIS="3600000"),
        on_checkpoint=DurabilityCheck(tables, records),
        stderr_path=tmp_path / "err",
    ).start()
    proc.initialize("shardId-000000000002")
    proc.process_records(records)
    assert proc.checkpoints == []
    assert stored_state(tables)[0] == {}  # nothing written yet: it is all pending in memory
    proc.shutdown_requested()
    assert [c.sequence_number for c in proc.checkpoints] == [records[-1].sequence_number]
    assert proc.close() == 0
    assert stored_state(tables)[0] == expected_state(records)[0]


def test_pending_limit_flushes_mid_batch(tables: Settings, tmp_path: Path) -> None:
    records = records_from(make_stream(seed=4, arns=30, versions=2, poison_every=10**6))
    proc = ProcessorProcess(
        env=env_for(tables, ECS_STATE_FLUSH_INTERVAL_MILLIS="3600000", ECS_STATE_MAX_PENDING_ARNS="10"),
        on_checkpoint=DurabilityCheck(tables, records),
        stderr_path=tmp_path / "err",
    ).start()
    proc.initialize("shardId-000000000003")
    proc.process_records(records)
    assert len(proc.checkpoints) >= 3  # several flushes inside one processRecords call
    proc.shutdown_requested()
    assert proc.close() == 0


def test_a_call_that_would_not_fit_beside_the_pending_window_flushes_it_at_the_end_of_the_call(
    tables: Settings, tmp_path: Path
) -> None:
    """maxPendingBytes 1 MiB, no interval flush: a call of 10 records of ~8 KB leaves ~86 KB pending and room for
    another like it (twice its text); after a call of 40 (~350 KB pending, twice its ~440 KB of text beside it
    would pass 1 MiB) the window is flushed at the end of that call (reason ``room``), before the next call's
    line is read. Neither call fills the window itself."""
    payloads = [(task_arn(n), as_json(task_event(task_arn(n), 1, group="x" * 8000))) for n in range(50)]
    records = records_from(payloads)
    proc = ProcessorProcess(
        env=env_for(tables, ECS_STATE_FLUSH_INTERVAL_MILLIS="3600000", ECS_STATE_MAX_PENDING_BYTES=str(1024 * 1024)),
        on_checkpoint=DurabilityCheck(tables, records),
        stderr_path=tmp_path / "err",
    ).start()
    proc.initialize("shardId-000000000013")
    proc.process_records(records[:10])
    assert proc.checkpoints == []
    proc.process_records(records[10:])
    assert [c.sequence_number for c in proc.checkpoints] == [records[-1].sequence_number]
    proc.shutdown_requested()
    assert proc.close() == 0
    reports = flush_reports((tmp_path / "err").read_text().splitlines())
    assert [(r.reason, r.records) for r in reports] == [("room", 50)]


def test_lease_lost_drops_pending_and_never_checkpoints(tables: Settings, tmp_path: Path) -> None:
    records = records_from(make_stream(seed=5, arns=5, versions=2))
    proc = ProcessorProcess(
        env=env_for(tables, ECS_STATE_FLUSH_INTERVAL_MILLIS="3600000"), stderr_path=tmp_path / "err"
    ).start()
    assert run_shard(proc, "shardId-000000000004", records, end="lease_lost") == 0
    assert proc.checkpoints == [] and stored_state(tables)[0] == {}


def test_shard_end_flushes_then_checkpoints_with_no_argument(tables: Settings, tmp_path: Path) -> None:
    records = records_from(make_stream(seed=6, arns=5, versions=2))
    proc = ProcessorProcess(
        env=env_for(tables, ECS_STATE_FLUSH_INTERVAL_MILLIS="3600000"),
        on_checkpoint=DurabilityCheck(tables, records),
        stderr_path=tmp_path / "err",
    ).start()
    assert run_shard(proc, "shardId-000000000005", records, end="shard_end") == 0
    assert [(c.sequence_number, c.sub_sequence_number) for c in proc.checkpoints] == [(None, None)]


def test_checkpoint_throttling_is_retried(tables: Settings, tmp_path: Path) -> None:
    records = records_from(make_stream(seed=7, arns=3, versions=2))
    replies = iter(["ThrottlingException", "ThrottlingException"])
    proc = ProcessorProcess(
        env=env_for(tables), on_checkpoint=lambda cp: next(replies, None), stderr_path=tmp_path / "err"
    ).start()
    proc.initialize("shardId-000000000006")
    proc.process_records(records)
    assert [c.error for c in proc.checkpoints] == ["ThrottlingException", "ThrottlingException", None]
    assert len({c.sequence_number for c in proc.checkpoints}) == 1
    proc.shutdown_requested()
    assert proc.close() == 0


def test_shutdown_exception_stops_checkpointing(tables: Settings, tmp_path: Path) -> None:
    records = records_from(make_stream(seed=8, arns=3, versions=4))
    proc = ProcessorProcess(
        env=env_for(tables), on_checkpoint=lambda cp: "ShutdownException", stderr_path=tmp_path / "err"
    ).start()
    proc.initialize("shardId-000000000007")
    proc.process_records(records[:10])
    proc.process_records(records[10:])
    assert len(proc.checkpoints) == 1  # no retry, and no further checkpoints after it
    assert stored_state(tables)[0] == expected_state(records)[0]  # writes go on: they are idempotent
    proc.shutdown_requested()
    proc.close()


def test_a_missing_table_is_a_configuration_error_at_initialize(tables: Settings, tmp_path: Path) -> None:
    proc = ProcessorProcess(
        env=env_for(tables, ECS_STATE_TASK_TABLE="missing-table"), stderr_path=tmp_path / "err"
    ).start()
    with pytest.raises(ProcessExited) as info:
        proc.initialize("shardId-000000000008")
    assert info.value.code == EXIT_CONFIG and proc.checkpoints == []
    [line] = [
        r for r in map(parse_line, (tmp_path / "err").read_text().splitlines()) if r and r["event"] == "config_error"
    ]
    assert "table missing-table does not exist" in line["error"] and "ecs-state setup" in line["error"]


def test_a_table_with_another_key_schema_is_a_configuration_error_not_a_dead_letter_per_event(
    tables: Settings, tmp_path: Path
) -> None:
    other = f"other-{random.randrange(10**6)}"
    aws.client("dynamodb").create_table(
        TableName=other,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
    )
    proc = ProcessorProcess(env=env_for(tables, ECS_STATE_INSTANCE_TABLE=other), stderr_path=tmp_path / "err").start()
    with pytest.raises(ProcessExited) as info:
        proc.initialize("shardId-000000000008")
    assert info.value.code == EXIT_CONFIG
    text = (tmp_path / "err").read_text()
    assert f"table {other} has key schema [id HASH S], the processor writes [containerInstanceArn HASH S]" in text
    assert "ecsState.instanceTable" in text


def test_a_misspelled_setting_stops_the_processor_before_any_protocol_message(tables: Settings, tmp_path: Path) -> None:
    proc = ProcessorProcess(env=env_for(tables, ECS_STATE_TASK_TABEL="x"), stderr_path=tmp_path / "err").start()
    with pytest.raises(ProcessExited) as info:
        proc.initialize("shardId-000000000008")
    assert info.value.code == EXIT_CONFIG and "did you mean ECS_STATE_TASK_TABLE" in (tmp_path / "err").read_text()


def test_a_metrics_file_that_cannot_be_opened_is_found_at_initialize(tables: Settings, tmp_path: Path) -> None:
    proc = ProcessorProcess(
        env=env_for(tables, ECS_STATE_METRICS=f"file:{tmp_path}/no/such/dir/emf.log"), stderr_path=tmp_path / "err"
    ).start()
    with pytest.raises(ProcessExited) as info:
        proc.initialize("shardId-000000000008")
    assert info.value.code == EXIT_CONFIG and "ecsState.metrics" in (tmp_path / "err").read_text()


def test_a_table_lost_mid_run_is_retried_holding_the_lease_until_it_is_back(tables: Settings, tmp_path: Path) -> None:
    """No retry budget (the default): the processor stays inside processRecords, logs why, never checkpoints past
    the data, and resumes by itself when the table is back."""
    records = records_from(make_stream(seed=9, arns=3, versions=2, poison_every=10**6))
    env = {k: v for k, v in env_for(tables).items() if k != "ECS_STATE_WRITE_RETRY_BUDGET_MILLIS"}
    proc = ProcessorProcess(
        env=env, on_checkpoint=DurabilityCheck(tables, records), stderr_path=tmp_path / "err"
    ).start()
    try:
        proc.initialize("shardId-000000000011")
        ddb = aws.client("dynamodb")
        ddb.delete_table(TableName=tables.task_table)
        err = tmp_path / "err"

        def bring_back() -> None:
            deadline = time.monotonic() + 60
            while '"event":"write_retrying"' not in err.read_text():
                assert time.monotonic() < deadline, "no write_retrying line within 60 s"
                time.sleep(0.05)
            ensure_tables(tables)

        helper = threading.Thread(target=bring_back)
        helper.start()
        proc.process_records(records)  # returns only once every write is durable
        helper.join()
        assert proc.checkpoints and proc.checkpoints[-1].sequence_number == records[-1].sequence_number
        retrying = [r for r in map(parse_line, err.read_text().splitlines()) if r and r["event"] == "write_retrying"]
        assert "ResourceNotFoundException" in retrying[0]["cause"]
        proc.shutdown_requested()
        assert proc.close() == 0
    finally:
        proc.kill()
    assert stored_state(tables)[0] == expected_state(records)[0]


def test_stdout_is_guarded_against_stray_prints(tables: Settings, tmp_path: Path) -> None:
    """A library printing to stdout (simulated with a sitecustomize-style preload) must not reach the daemon."""
    preload = tmp_path / "noisy"
    preload.mkdir()
    (preload / "sitecustomize.py").write_text("import atexit\natexit.register(lambda: print('noise from atexit'))\n")
    (preload / "noise.py").write_text("")
    records = records_from(make_stream(seed=10, arns=3, versions=2))
    code = (
        "import os, processor.shard.record_processor as k, processor.shard.main as m, sys\n"
        "orig = k.ShardProcessor.process_records\n"
        "def noisy(self, i):\n"
        "    print('print noise'); os.write(1, b'raw fd noise\\n'); os.system('echo child noise')\n"
        "    return orig(self, i)\n"
        "k.ShardProcessor.process_records = noisy\n"
        "sys.exit(m.main())\n"
    )
    import sys

    proc = ProcessorProcess(
        argv=[sys.executable, "-c", code],
        env={**env_for(tables), "PYTHONPATH": f"{preload}:{Path(__file__).resolve().parents[2]}"},
        stderr_path=tmp_path / "err",
    ).start()
    assert run_shard(proc, "shardId-000000000009", records) == 0  # ProtocolError if any noise reached stdout
    err = (tmp_path / "err").read_text()
    assert "print noise" in err and "raw fd noise" in err and "child noise" in err and "noise from atexit" in err


def test_aggregated_records_checkpoint_with_sub_sequence_numbers(tables: Settings, tmp_path: Path) -> None:
    """KPL-aggregated user records share a sequence number and differ in sub-sequence number."""
    events = [as_json(task_event(task_arn(1), v)) for v in (1, 3, 2)]
    records = [KinesisRecord(e, task_arn(1), "5" * 56, sub) for sub, e in enumerate(events)]
    proc = ProcessorProcess(env=env_for(tables), stderr_path=tmp_path / "err").start()
    proc.initialize("shardId-000000000010")
    proc.process_records(records)
    assert [(c.sequence_number, c.sub_sequence_number) for c in proc.checkpoints] == [("5" * 56, 2)]
    proc.shutdown_requested()
    assert proc.close() == 0
    assert stored_state(tables)[0] == {task_arn(1): 3}
