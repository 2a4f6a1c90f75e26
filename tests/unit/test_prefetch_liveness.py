"""A prefetch longer than the liveness window keeps the shard's heartbeat fresh (``shard/heartbeat.py``).

A shard catching up reads the stored versions of up to 10,000 ARNs (``BatchGetItem`` of 100 keys, retried) before
its writes; the container health check calls a shard whose file is older than 90 s stuck and replaces the task.
Here a real ``ShardProcessor`` with a real ``Writer`` and ``ShardHeartbeat`` (its file in a temporary folder)
starts at TRIM_HORIZON and gets one call of 1,000 tasks; the in-memory DynamoDB (``workshop/testing/
fake_dynamodb.py``) sits behind a transport that makes each read take 15 s of a clock the test moves (a slow or
throttled table: what a real table cannot be made to do on demand). At every read the transport notes whether
the shard file was touched since the previous request (it sets the file's time back after looking), so the
heartbeat's age is read in the test's clock, from the file itself.
"""

from __future__ import annotations

import base64
import os
import threading
from pathlib import Path
from typing import Any, Mapping

from amazon_kclpy.messages import InitializeInput, ProcessRecordsInput, Record

from processor.config import Settings
from processor.core.position import Position
from processor.core.route import Candidate
from processor.shard.dynamodb_http import Response
from processor.shard.flush_report import flush_reports
from processor.shard.heartbeat import DEFAULT_STALE_S, ShardHeartbeat
from processor.shard.metrics import Metrics
from processor.shard.record_processor import ShardProcessor
from processor.shard.stored_versions import prefetch
from processor.shard.writer import Writer
from workshop.testing.factories import as_json, task_arn, task_event
from workshop.testing.fake_dynamodb import FakeDynamoDB

SHARD = "shardId-000000000004"
READ_S = 15.0
TASKS = 1_000
WALL0_MS = 1_800_000_000_000


class SlowReads:
    """The fake DynamoDB, each BatchGetItem taking ``READ_S`` of the test's clock; records the heartbeat's age
    (in that clock) at every read."""

    def __init__(self, fake: FakeDynamoDB, shard_file: Path) -> None:
        self.fake = fake
        self.shard_file = shard_file
        self.now = 0.0
        self.last_beat = 0.0
        self.ages: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def call(self, operation: str, request: Mapping[str, Any] | bytes) -> Response:
        if operation == "BatchGetItem":
            with self._lock:
                if self.shard_file.stat().st_mtime > 1:  # touched since the last look
                    self.last_beat = self.now
                self.ages.append(self.now - self.last_beat)
                os.utime(self.shard_file, (1, 1))
                self.now += READ_S
        return self.fake.call(operation, request)


def record(n: int) -> Record:
    return Record(
        {
            "sequenceNumber": f"{n:056d}",
            "subSequenceNumber": 0,
            "approximateArrivalTimestamp": WALL0_MS,
            "partitionKey": task_arn(n),
            "action": "record",
            "data": base64.b64encode(as_json(task_event(task_arn(n), 1))).decode("ascii"),
        }
    )


class Checkpoints:
    def __init__(self) -> None:
        self.sequence_numbers: list[str | None] = []

    def checkpoint(self, sequence_number: str | None = None, sub_sequence_number: int | None = None) -> None:
        self.sequence_numbers.append(sequence_number)


def test_a_prefetch_longer_than_the_liveness_window_keeps_the_shard_heartbeat_fresh(tmp_path: Path, capfd: Any) -> None:
    settings = Settings(
        task_table="tasks", instance_table="instances", dead_letter_table="dead", max_pending_arns=TASKS
    )
    fake = FakeDynamoDB.for_settings(settings.task_table, settings.instance_table, settings.dead_letter_table)
    beats = tmp_path / "heartbeat"
    slow = SlowReads(fake, beats / f"shard-{SHARD}")
    processor = ShardProcessor(
        settings,
        lambda shard_id: Writer(settings, slow, clock=slow.clock, sleep=lambda s: None, shard_id=shard_id),
        metrics=Metrics(f"file:{tmp_path / 'emf.log'}", settings.application),
        heartbeat=ShardHeartbeat(beats, clock=slow.clock),
        clock=slow.clock,
        wall_ms=lambda: WALL0_MS + slow.clock() * 1000,
        sleep=lambda s: None,
    )
    checkpoints = Checkpoints()
    InitializeInput(
        {"shardId": SHARD, "sequenceNumber": "TRIM_HORIZON", "subSequenceNumber": 0, "action": "initialize"}
    ).dispatch(checkpoints, processor)
    call = {"records": [record(n) for n in range(1, TASKS + 1)], "millisBehindLatest": 86_400_000}
    ProcessRecordsInput({**call, "action": "processRecords"}).dispatch(checkpoints, processor)

    (flush,) = flush_reports(capfd.readouterr().err.splitlines())
    assert flush.reason == "full" and flush.writes == TASKS and checkpoints.sequence_numbers == [f"{TASKS:056d}"]
    assert len(slow.ages) == TASKS // 100 and slow.now > DEFAULT_STALE_S  # the prefetch outlasted the window
    assert max(slow.ages) < DEFAULT_STALE_S, f"the heartbeat went {max(slow.ages):.0f} s without a beat"


def test_the_prefetch_beats_before_every_read_retries_included() -> None:
    """Each of the two chunks is throttled twice before it is served: 6 reads, each one after a beat."""

    def throttle(operation: str, n: int) -> Response | None:
        if operation == "BatchGetItem" and n in (1, 2, 4, 5):
            return Response(400, "ThrottlingException", "Rate exceeded", {"__type": "x#ThrottlingException"})
        return None

    fake = FakeDynamoDB.for_settings("tasks", "instances", "dead", fault=throttle)
    items = [
        Candidate("task", "taskArn", task_arn(n), 1, b"{}", Position(SHARD, str(n)), "pk", None) for n in range(150)
    ]
    reads_at_beats: list[int] = []
    got = prefetch(
        fake,
        items,
        {"task": "tasks", "instance": "instances"},
        sleep=lambda s: None,
        beat=lambda: reads_at_beats.append(fake.requests.count("BatchGetItem")),
    )
    assert got.requests == 6 and got.given_up == 0 and len(got.errors) == 4
    assert reads_at_beats == list(range(6))  # a beat before each read: none of the 6 went without one
