"""The worker's liveness signals, from the parts that write them: a shard processor (in this process, with
amazon_kclpy's own message classes and writes to moto) touches its heartbeat file on every processRecords call and
removes it when it gives the shard up, and reports its age (MillisBehindLatest) at least once a wall-clock minute
even with nothing to flush; ``ecs-state run``'s supervisor, around a real child process standing in for the KCL
daemon (a Python sleeping process: the daemon would need a stream), touches the worker file while the child runs,
clears stale shard files before it starts one, and writes one WorkerHeartbeat EMF line a minute. The probe
(``python -m processor.worker.liveness``) then judges those files in a process of its own, as ECS would run it.
"""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from amazon_kclpy.messages import InitializeInput, ProcessRecordsInput, ShutdownRequestedInput

from processor.config import Settings
from processor.ops.setup_tables import ensure_tables
from processor.shard.heartbeat import HEARTBEAT_ENV, ShardHeartbeat
from processor.shard.main import make_writer
from processor.shard.metrics import Metrics
from processor.shard.record_processor import ShardProcessor
from processor.worker.supervisor import Supervisor

WALL0_MS = 1_800_000_000_000
SHARD = "shardId-000000000002"


class Checkpoints:
    def checkpoint(self, sequence_number: str | None = None, sub_sequence_number: int | None = None) -> None:
        pass


def _probe(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "processor.worker.liveness"],
        env={**os.environ, HEARTBEAT_ENV: str(folder)},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=60,
        check=False,
    )


def test_a_shard_processor_beats_while_idle_reports_its_age_each_minute_and_leaves_no_file(
    moto_server: Any, tmp_path: Path
) -> None:
    suffix = random.randrange(10**6)
    settings = Settings(
        task_table=f"tasks-live-{suffix}",
        instance_table=f"instances-live-{suffix}",
        dead_letter_table=f"dead-live-{suffix}",
        application="ecs-state-replay",
    )
    ensure_tables(settings)
    emf = tmp_path / "emf.log"
    beats = tmp_path / "heartbeat"
    beats.mkdir()
    now = [0.0]
    processor = ShardProcessor(
        settings,
        lambda shard_id: make_writer(settings, shard_id),
        metrics=Metrics(f"file:{emf}", settings.application),
        heartbeat=ShardHeartbeat(beats, clock=lambda: now[0]),
        clock=lambda: now[0],
        wall_ms=lambda: WALL0_MS + now[0] * 1000,
        sleep=lambda s: None,
    )
    checkpoints = Checkpoints()
    InitializeInput(
        {"shardId": SHARD, "sequenceNumber": "LATEST", "subSequenceNumber": 0, "action": "initialize"}
    ).dispatch(checkpoints, processor)
    shard_file = beats / f"shard-{SHARD}"
    assert shard_file.exists()
    for second in range(150):  # 2.5 idle minutes, one empty call a second (callProcessRecordsEven...)
        now[0] = float(second)
        if second == 100:
            os.utime(shard_file, (1, 1))
        ProcessRecordsInput({"records": [], "millisBehindLatest": 1000 + second, "action": "processRecords"}).dispatch(
            checkpoints, processor
        )
        if second == 100:
            assert shard_file.stat().st_mtime > 1  # touched by this call
    docs = [json.loads(line) for line in emf.read_text().splitlines()]
    assert [doc["MillisBehindLatest"] for doc in docs] == [1000, 1060, 1120]  # minutes 0, 1, 2 of the wall clock
    assert all(doc["Application"] == "ecs-state-replay" and doc["ShardId"] == SHARD for doc in docs)
    ShutdownRequestedInput({"action": "shutdownRequested"}).dispatch(checkpoints, processor)
    assert not shard_file.exists()


def test_the_supervisor_beats_while_its_daemon_runs_and_the_probe_follows(tmp_path: Path) -> None:
    beats = tmp_path / "heartbeat"
    beats.mkdir()
    (beats / "shard-shardId-000000000009").touch()  # left by a processor of a daemon that died
    os.utime(beats / "shard-shardId-000000000009", (1, 1))
    emf = tmp_path / "emf.log"
    marker = tmp_path / "daemon-started"
    # stands in for the KCL daemon: says it started, then runs until it is killed
    daemon = [sys.executable, "-c", f"import pathlib, time; pathlib.Path({str(marker)!r}).touch(); time.sleep(60)"]
    supervisor = Supervisor(
        daemon,
        {**os.environ, HEARTBEAT_ENV: str(beats)},
        "INFO",
        None,
        io.StringIO(),
        Metrics(f"file:{emf}", "ecs-state"),
    )
    assert _probe(beats).returncode == 1  # nothing runs yet
    outcome: list[Any] = []
    runner = threading.Thread(target=lambda: outcome.append(supervisor.run_once()))
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while not (marker.exists() and (beats / "worker").exists()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (beats / "worker").exists(), "the supervisor never touched the worker file"
        assert not (beats / "shard-shardId-000000000009").exists()  # cleared before the daemon started
        probe = _probe(beats)
        assert probe.returncode == 0, probe.stdout
        (beats / "shard-shardId-000000000001").touch()
        old = time.time() - 600
        os.utime(beats / "shard-shardId-000000000001", (old, old))
        probe = _probe(beats)
        assert probe.returncode == 1 and "shardId-000000000001" in probe.stdout
    finally:
        assert supervisor.proc is not None
        supervisor.proc.kill()
        runner.join(30)
    heartbeats = [json.loads(line) for line in emf.read_text().splitlines()]
    minutes = [doc["_aws"]["Timestamp"] // 60_000 for doc in heartbeats]
    assert 1 <= len(heartbeats) <= 2 and len(set(minutes)) == len(minutes)  # one per wall-clock minute
    for doc in heartbeats:
        assert doc["WorkerHeartbeat"] == 1 and doc["Application"] == "ecs-state"
        assert doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Application"]]
