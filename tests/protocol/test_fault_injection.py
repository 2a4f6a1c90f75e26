"""Faults around the real processor process, driven through the MultiLang protocol by a driver that plays the KCL
daemon (workshop/testing/shard_daemon.py; the scenarios are workshop/testing/fault_scenarios.py): DynamoDB
throttling, errors and outages injected by the fault proxy, SIGKILLs, checkpoint throttling, and a poison corpus.
Each run is checked against the ground truth at the end and for durability at every checkpoint (nothing
checkpointed before it is in DynamoDB; no stored version ever goes down).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from processor.config import Settings
from workshop.testing.fault_scenarios import killed, outage, poison, throttled_stream
from workshop.testing.multilang_driver import ProcessorProcess, records_from
from workshop.testing.poison_cases import IGNORED, STORED, corpus_records, poison_corpus
from workshop.testing.protocol_helpers import env_for, expected_state, make_stream, stored_state, unique_settings
from workshop.testing.shard_daemon import ShardDaemon


@pytest.fixture()
def tables(moto_server: Any) -> Settings:
    return unique_settings("fi")


def _merge(backoff: dict[int, dict[str, float]], streaks: range) -> float:
    rows = [backoff[k] for k in streaks if k in backoff]
    n = sum(r["n"] for r in rows)
    assert n >= 5, f"too few retries after {list(streaks)} faults in a row to judge the backoff: {backoff}"
    return sum(r["n"] * r["mean_ms"] for r in rows) / n


# --- a ---------------------------------------------------------------------------------------------------------------


def test_throttling_and_5xx_through_a_whole_stream(tables: Settings, moto_server: Any, tmp_path: Path) -> None:
    r = throttled_stream(tables, moto_server.endpoint, tmp_path, arns=140, versions=12, batch_size=500)
    assert r.events >= 2000
    assert (r.lost, r.regressed) == (0, 0)
    assert r.exit_codes == [0]  # every fault was absorbed by retries: no restart
    assert r.checkpoints_checked >= 4
    injected = r.injected
    assert all(injected.get(k, 0) > 0 for k in ("throttle", "throttling", "internal", "unavailable")), injected
    # The processor's flush logs account for every injected fault: each one was seen and retried.
    assert r.retries == sum(injected.values())
    assert r.throttled == injected["throttle"] + injected["throttling"]
    assert r.proxy is not None
    puts = r.proxy.counts_by_operation()["PutItem"]
    assert 0.28 <= sum(injected.values()) / sum(puts.values()) <= 0.42  # ~35% of all PutItems
    # each item landed exactly once (a stale one skipped from the stored-version memory sent no request; the
    # cluster catalogue's puts are counted apart)
    assert puts["forwarded"] == r.writes + r.stale - r.skipped + r.dead_letters + r.catalogued
    # Backoff: the wait before retrying the same request grows with the number of faults in a row. The first
    # retry also waits for the writer's round (a first attempt's reply is read with the others of its round), so
    # the growth is judged from the second fault on.
    backoff = r.extra["backoff"]
    twice, more = _merge(backoff, range(2, 3)), _merge(backoff, range(3, 99))
    assert twice < more, backoff


# --- b ---------------------------------------------------------------------------------------------------------------


# slow: a 1 s client timeout (a request held 1.5 s), so two timeouts in a row run past a 1.5 s budget.
@pytest.mark.parametrize(
    ("kind", "fault_s", "budget_ms"), [("unavailable", 1.5, 500), ("reset", 1.5, 500), ("slow", 3.0, 1500)]
)
def test_outage_longer_than_the_retry_budget(
    tables: Settings, moto_server: Any, tmp_path: Path, kind: str, fault_s: float, budget_ms: int
) -> None:
    r = outage(
        tables,
        moto_server.endpoint,
        tmp_path,
        kind=kind,
        arns=30,
        versions=6,
        batch_size=50,
        fault_s=fault_s,
        budget_ms=budget_ms,
    )
    assert (r.lost, r.regressed) == (0, 0)
    assert r.injected.get(kind, 0) > 0
    assert r.exit_codes[-1] == 0 and r.exit_codes[:-1] and set(r.exit_codes[:-1]) == {3}, r.exit_codes
    daemon = r.daemon
    assert daemon is not None
    start, end = r.extra["fault_start"], r.extra["fault_end"]
    during = [cp for t, cp in daemon.requests if start < t < end]
    assert during == [], f"checkpoint requested while DynamoDB was down: {during}"
    # Each failed start said why: its flush failed, or (restarted during the fault) its start-up check of the tables.
    failed = daemon.log_events("flush_failed") + daemon.log_events("startup_failed")
    assert {f["start"] for f in failed} == {s.index for s in daemon.starts[:-1]}
    # Every replacement read the shard again from the last checkpoint acknowledged before the fault ended (the
    # one the fault was switched on at: nothing was acknowledged during it).
    acked_before = [pos for t, pos in daemon.acks if t < end]
    assert len(acked_before) == 2
    assert [s.resumed_after for s in daemon.starts[1:]] == [acked_before[-1]] * (len(daemon.starts) - 1)
    assert r.recover_s is not None and r.recover_s >= 0


# --- c ---------------------------------------------------------------------------------------------------------------


def test_sigkill_between_flush_and_checkpoint_is_reapplied_idempotently(tables: Settings, tmp_path: Path) -> None:
    r = killed(tables, tmp_path, arns=40, versions=8, kill_at=3, batch_size=100)
    assert (r.lost, r.regressed) == (0, 0)
    assert r.exit_codes == [-9, 0]
    daemon = r.daemon
    assert daemon is not None
    killed_at = daemon.requests[2][1].sequence_number  # the third checkpoint request, never answered
    assert daemon.starts[1].resumed_after == daemon.acks[1][1]  # from the second, acknowledged, checkpoint
    replayed = [f for f in daemon.flushes(start=1) if (f.last_sequence_number or "") <= killed_at]
    assert len(replayed) >= 2  # the same records again, in smaller batches
    assert sum(f.writes for f in replayed) == 0  # all rejected as stale: their data was already durable
    assert sum(f.stale for f in replayed) == sum(f.distinct_arns for f in replayed) > 0
    assert r.watch is not None and r.watch.scans >= 6


def test_sigkill_mid_flush(tables: Settings, moto_server: Any, tmp_path: Path) -> None:
    r = killed(
        tables, tmp_path, arns=40, versions=8, kill_at=3, batch_size=100, upstream=moto_server.endpoint, mid_flush=True
    )
    assert (r.lost, r.regressed) == (0, 0)
    assert r.exit_codes == [-9, 0]
    daemon = r.daemon
    assert daemon is not None
    # The killed process never finished its third flush, so it never asked for that checkpoint.
    assert len(daemon.starts[0].checkpoints) == 2
    assert len(daemon.flushes(start=0)) == 2
    replacement = daemon.flushes(start=1)
    held = r.injected["slow"]
    # The writes that took effect before the kill are rejected as stale; the ones that never went out are written.
    assert sum(f.stale for f in replacement) >= held > 0
    assert sum(f.writes for f in replacement) > 0


# --- e ---------------------------------------------------------------------------------------------------------------


def _log(path: Path, event: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if f'"event":"{event}"' in line]


def test_checkpoint_throttling_backs_off_within_growing_caps(tables: Settings, tmp_path: Path) -> None:
    records = records_from(make_stream(seed=21, arns=3, versions=2))
    replies = iter(["ThrottlingException"] * 4)
    times: list[float] = []

    def hook(cp: Any) -> str | None:
        times.append(time.monotonic())
        return next(replies, None)

    proc = ProcessorProcess(env=env_for(tables), on_checkpoint=hook, stderr_path=tmp_path / "err").start()
    try:
        proc.initialize("shardId-000000000000")
        proc.process_records(records)
        proc.shutdown_requested()
        assert proc.close() == 0
    finally:
        proc.kill()
    assert [c.error for c in proc.checkpoints] == ["ThrottlingException"] * 4 + [None]
    retries = _log(tmp_path / "err", "checkpoint_retry")
    assert [r["attempt"] for r in retries] == [1, 2, 3, 4]
    for r, before, after in zip(retries, times, times[1:]):
        assert 0 <= r["delay_s"] <= min(5.0, 0.1 * 2 ** r["attempt"])  # full jitter under a doubling cap
        assert after - before >= r["delay_s"] - 0.002  # and it really waited that long before asking again


def test_checkpoint_given_up_after_max_attempts_is_taken_by_the_next_flush(tables: Settings, tmp_path: Path) -> None:
    records = records_from(make_stream(seed=22, arns=3, versions=4, poison_every=10**6))
    replies = iter(["ThrottlingException"] * 3)
    proc = ProcessorProcess(
        env=env_for(tables, ECS_STATE_CHECKPOINT_MAX_ATTEMPTS="3"),
        on_checkpoint=lambda cp: next(replies, None),
        stderr_path=tmp_path / "err",
    ).start()
    try:
        proc.initialize("shardId-000000000000")
        proc.process_records(records[:10])
        assert [c.error for c in proc.checkpoints] == ["ThrottlingException"] * 3  # gave up, kept going
        assert _log(tmp_path / "err", "checkpoint_failed")
        proc.process_records([])  # nothing new: the durable position is checkpointed again
        assert proc.checkpoints[-1].error is None
        assert proc.checkpoints[-1].sequence_number == records[9].sequence_number
        proc.process_records(records[10:])
        assert proc.checkpoints[-1].sequence_number == records[-1].sequence_number
        proc.shutdown_requested()
        assert proc.close() == 0
    finally:
        proc.kill()
    assert stored_state(tables)[0] == expected_state(records)[0]


# --- f ---------------------------------------------------------------------------------------------------------------


def test_poison_corpus_through_the_processor(tables: Settings, tmp_path: Path) -> None:
    cases = poison_corpus()
    assert len(cases) >= 20 and len({c.expected for c in cases}) >= 15
    r = poison(tables, tmp_path, batch_size=30, watch_every_checkpoint=False)
    rows = r.extra["rows"]
    mismatches = [(row["case"], row["expected"], row["observed"]) for row in rows if row["observed"] != row["expected"]]
    assert mismatches == []
    assert all(row["follower_applied"] for row in rows)  # the shard moved on after every case
    assert r.exit_codes == [0] and r.checkpoints_checked >= len(rows) * 2 // 30
    assert r.extra["ignored_logged"] == sum(c.expected == IGNORED for c in cases)
    assert r.regressed == 0
    daemon = r.daemon
    assert daemon is not None and daemon.acks[-1][1][0] == daemon.records[-1].sequence_number
    by_case = {row["case"]: row for row in rows}
    for row in rows:
        if row["observed"] not in (STORED, IGNORED):
            assert row["raw_bytes_kept"], f"{row['case']}: dead letter does not hold the record's bytes"
        if row["observed"] == STORED:
            assert row["round_trip"], f"{row['case']}: compressed attributes do not decompress to the input"
    assert by_case["item over 400 KB that compresses"]["compressed"] == ["overrides"]
    assert by_case["1 MB record that compresses"]["compressed"] == ["blob"]
    assert by_case["1 MB of garbage"]["dead_letter_items"] > 1 and by_case["1 MB of garbage"]["raw_bytes_kept"]
    assert by_case["detail field named like metadata (event_id)"]["event_id"].startswith("id-")
    too_long = by_case["ARN over DynamoDB's 2048-byte key limit"]
    assert "2048-byte key limit" in too_long["reason"] and too_long["raw_bytes_kept"]


def test_poison_corpus_replayed_is_idempotent(tables: Settings, tmp_path: Path) -> None:
    """The same corpus read twice (a restart from TRIM_HORIZON): dead letters are rewritten in place, state
    writes are rejected as stale."""
    cases = [c for c in poison_corpus() if len(c.data) < 100_000]
    records, _ = corpus_records(cases)
    for attempt in range(2):
        daemon = ShardDaemon(records, env_for(tables), tmp_path / f"run{attempt}", batch_size=40)
        (tmp_path / f"run{attempt}").mkdir()
        daemon.run()
    second = daemon.flushes()
    assert sum(f.writes for f in second) == 0 and sum(f.stale for f in second) > 0
    _, dead = stored_state(tables)
    assert len(dead) == sum(c.expected not in (STORED, IGNORED) for c in cases)
