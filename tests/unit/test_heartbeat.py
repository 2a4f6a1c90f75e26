"""The liveness rule (``shard/heartbeat.py``): which heartbeat ages make a worker healthy, and the shard
processor's heartbeat file (touched at most once a second, removed when the shard is given up, never raising)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from processor.shard.heartbeat import HEARTBEAT_ENV, ShardHeartbeat, clear_shards, judge, read_ages, touch_worker
from processor.worker.liveness import probe


def test_a_live_worker_with_processing_or_idle_shards_is_healthy() -> None:
    verdict = judge({"worker": 5.0, "shard-shardId-0": 0.5, "shard-shardId-1": 80.0}, stale_s=90)
    assert verdict.healthy and "2 shard processor(s)" in verdict.reason


def test_a_worker_holding_no_lease_is_healthy() -> None:
    assert judge({"worker": 1.0}).healthy


def test_a_missing_or_stale_worker_heartbeat_is_unhealthy() -> None:
    assert not judge({"worker": None}).healthy
    verdict = judge({"worker": 91.0, "shard-shardId-0": 1.0}, stale_s=90)
    assert not verdict.healthy and "daemon" in verdict.reason


def test_a_silent_shard_processor_is_unhealthy_and_named() -> None:
    verdict = judge({"worker": 1.0, "shard-shardId-0": 1.0, "shard-shardId-9": 300.0}, stale_s=90)
    assert not verdict.healthy and "shardId-9 300 s" in verdict.reason and "shardId-0" not in verdict.reason


def test_the_shard_file_is_touched_at_most_once_a_second_and_removed_when_the_shard_is_given_up(tmp_path: Path) -> None:
    now = [100.0]
    beat = ShardHeartbeat(tmp_path, clock=lambda: now[0])
    beat.start("shardId-3")
    path = tmp_path / "shard-shardId-3"
    os.utime(path, (1, 1))
    now[0] += 0.5
    beat.beat()
    assert path.stat().st_mtime == 1  # throttled
    now[0] += 0.6
    beat.beat()
    assert path.stat().st_mtime > 1
    beat.stop()
    assert not path.exists()


def test_a_heartbeat_that_cannot_be_written_stops_quietly(tmp_path: Path) -> None:
    (tmp_path / "a-file").touch()
    beat = ShardHeartbeat(tmp_path / "a-file" / "heartbeat", clock=lambda: 0.0)
    beat.start("shardId-0")  # logged once, never raised into the record path
    beat.beat()
    assert beat.path is not None and not beat.path.exists()


def test_the_folder_is_made_when_the_first_shard_starts(tmp_path: Path) -> None:
    beat = ShardHeartbeat(tmp_path / "not" / "yet", clock=lambda: 0.0)
    beat.start("shardId-0")
    assert (tmp_path / "not" / "yet" / "shard-shardId-0").exists()


def test_without_a_folder_nothing_is_written() -> None:
    beat = ShardHeartbeat(None)
    beat.start("shardId-0")
    beat.beat()
    beat.stop()
    assert beat.path is None


def test_the_probe_reads_the_files_ages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = {HEARTBEAT_ENV: str(tmp_path)}
    assert probe(env=env) == 1  # no worker file yet
    touch_worker(tmp_path)
    (tmp_path / "shard-shardId-0").touch()
    assert probe(env=env) == 0
    old = time.time() - 600
    os.utime(tmp_path / "shard-shardId-0", (old, old))
    assert set(read_ages(tmp_path)) == {"worker", "shard-shardId-0"}
    assert probe(env=env) == 1
    assert "shardId-0" in capsys.readouterr().out.splitlines()[-1]
    clear_shards(tmp_path)  # the supervisor, before it starts the daemon again
    assert probe(env=env) == 0
    assert probe(env={}) == 2


def test_ecs_state_status_liveness_is_the_same_probe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from processor.ops.cli import main

    monkeypatch.setenv(HEARTBEAT_ENV, str(tmp_path))
    assert main(["status", "--liveness"]) == 1
    touch_worker(tmp_path)
    assert main(["status", "--liveness"]) == 0
    assert "healthy: worker alive" in capsys.readouterr().out
