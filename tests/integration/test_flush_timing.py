"""The KCL adapter performs what the shard's state machine says (``shard/record_processor.py`` around
``shard/machine.py``), on moto: the timing rules themselves are tested on the machine alone
(``tests/unit/test_machine.py``); here, that the adapter feeds it the clock and the records and performs its flush
and checkpoint, and lets go of each record's text as it goes.

The processor runs in this process with amazon_kclpy's own message classes and a clock the test moves; the writes
are real (moto). The checkpointer stands in for KCL's, which would send the checkpoint over the MultiLang
protocol: it records the sequence numbers it is given.
"""

from __future__ import annotations

import base64
import random
from typing import Any, Iterator

import pytest
from amazon_kclpy.messages import InitializeInput, ProcessRecordsInput, Record

from processor.config import Settings
from processor.ops.setup_tables import ensure_tables
from processor.shard.flush_report import flush_reports
from processor.shard.main import make_writer
from processor.shard.record_processor import ShardProcessor
from workshop.testing.factories import as_json, task_arn, task_event

INTERVAL_S = 10.0
WALL0_MS = 1_800_000_000_000


class Checkpoints:
    """KCL's checkpointer as the processor sees it: every sequence number it was asked to checkpoint."""

    def __init__(self) -> None:
        self.sequence_numbers: list[str | None] = []

    def checkpoint(self, sequence_number: str | None = None, sub_sequence_number: int | None = None) -> None:
        self.sequence_numbers.append(sequence_number)


class Shard:
    """One processor, its clock (seconds from 0) and the wall clock that goes with it."""

    def __init__(self, settings: Settings) -> None:
        self.now = 0.0
        self.checkpoints = Checkpoints()
        self.processor = ShardProcessor(
            settings,
            lambda shard_id: make_writer(settings, shard_id),
            clock=lambda: self.now,
            wall_ms=lambda: WALL0_MS + self.now * 1000,
            sleep=lambda s: None,
        )
        InitializeInput(
            {
                "shardId": "shardId-000000000000",
                "sequenceNumber": "LATEST",
                "subSequenceNumber": 0,
                "action": "initialize",
            }
        ).dispatch(self.checkpoints, self.processor)
        self.sequence = 0

    def call(self, at: float, arrived_s_before: float | None = None) -> None:
        """A processRecords call at ``at``: one record that arrived ``arrived_s_before`` seconds earlier, or none."""
        self.now = at
        records = []
        if arrived_s_before is not None:
            self.sequence += 1
            data = as_json(task_event(task_arn(self.sequence), 1))
            records.append(
                Record(
                    {
                        "sequenceNumber": f"{self.sequence:056d}",
                        "subSequenceNumber": 0,
                        "approximateArrivalTimestamp": WALL0_MS + (at - arrived_s_before) * 1000,
                        "partitionKey": task_arn(self.sequence),
                        "action": "record",
                        "data": base64.b64encode(data).decode("ascii"),
                    }
                )
            )
        ProcessRecordsInput({"records": records, "millisBehindLatest": 0, "action": "processRecords"}).dispatch(
            self.checkpoints, self.processor
        )

    @property
    def checkpointed(self) -> str | None:
        return self.checkpoints.sequence_numbers[-1] if self.checkpoints.sequence_numbers else None


@pytest.fixture()
def shard(moto_server: Any, request: pytest.FixtureRequest) -> Iterator[Shard]:
    suffix = f"{request.node.name[:40]}-{random.randrange(10**6)}"
    settings = Settings(
        task_table=f"tasks-{suffix}",
        instance_table=f"instances-{suffix}",
        dead_letter_table=f"dead-{suffix}",
        flush_interval_millis=int(INTERVAL_S * 1000),
    )
    ensure_tables(settings)
    yield Shard(settings)


def test_the_adapter_flushes_and_checkpoints_when_the_machine_says_after_half_the_interval(
    shard: Shard, capfd: pytest.CaptureFixture[str]
) -> None:
    shard.call(0.0, arrived_s_before=0.0)
    shard.call(4.9)
    assert shard.checkpointed is None
    shard.call(5.0)
    assert shard.checkpointed == f"{1:056d}"
    assert shard.processor.machine.durable is None  # the checkpoint's success went back to the machine
    (report,) = flush_reports(capfd.readouterr().err.splitlines())
    assert (report.reason, report.records, report.writes, report.last_sequence_number) == (
        "interval",
        1,
        1,
        f"{1:056d}",
    )


def test_a_call_holds_none_of_its_records_once_they_are_offered(shard: Shard) -> None:
    """A 10,000-record call's ~45 MB of base64 text is freed record by record, not at the end of the call."""
    records = [
        Record(
            {
                "sequenceNumber": f"{k:056d}",
                "subSequenceNumber": 0,
                "approximateArrivalTimestamp": WALL0_MS,
                "partitionKey": task_arn(k),
                "action": "record",
                "data": base64.b64encode(as_json(task_event(task_arn(k), 1))).decode("ascii"),
            }
        )
        for k in range(1, 4)
    ]
    call = ProcessRecordsInput({"records": records, "millisBehindLatest": 0, "action": "processRecords"})
    call.dispatch(shard.checkpoints, shard.processor)
    assert call.records == [None, None, None]
    shard.call(10.0)
    assert shard.checkpointed == f"{3:056d}"
