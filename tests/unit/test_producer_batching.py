"""The producer's pure parts: PutRecords batching, pacing, produce() on a clock the test moves, the stream name,
and retries of partial failures (botocore's Stubber supplies what moto never answers)."""

from __future__ import annotations

import argparse
import random
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from processor.errors import ProduceError
from processor.loadgen.fleet import generate
from processor.loadgen.ground_truth import GroundTruth
from processor.loadgen.producer import (
    MAX_BATCH_BYTES,
    MAX_BATCH_RECORDS,
    KinesisWriter,
    Pacer,
    batches,
    produce,
    stream_name,
)
from processor.loadgen.records import Options, Record
from processor.retry import Backoff


def test_batches_respect_record_and_byte_limits() -> None:
    small = [Record("k", b"x" * 100, "task") for _ in range(1201)]
    assert [len(b) for b in batches(small)] == [MAX_BATCH_RECORDS, MAX_BATCH_RECORDS, 201]
    big = [Record("k", b"x" * 900_000, "task") for _ in range(13)]
    sizes = [len(b) for b in batches(big)]
    assert sum(sizes) == 13 and all(sum(900_001 for _ in range(n)) <= MAX_BATCH_BYTES for n in sizes)
    assert sizes[0] == MAX_BATCH_BYTES // 900_001


def test_pacer_keeps_the_average_rate() -> None:
    steady = Pacer(200)
    dues = [steady.next_due() for _ in range(1000)]
    assert dues[0] == 0 and dues[-1] == pytest.approx(999 / 200)
    bursty = Pacer(200, bursty=True, seed=3)
    dues = [bursty.next_due() for _ in range(20_000)]
    assert 20_000 / dues[-1] == pytest.approx(200, rel=0.35)
    per_second = Counter(int(d) for d in dues)
    assert max(per_second.values()) > 2.5 * min(per_second.values())  # bursts and lulls
    assert Pacer(0).next_due() == 0.0


def test_produce_sends_the_count_paces_and_feeds_truth_only_with_accepted_records() -> None:
    now = [0.0]
    sent: list[list[Record]] = []

    def sink(batch: list[Record]) -> None:
        if len(sent) == 3:
            raise ProduceError("refused")
        sent.append(batch)

    def sleep(seconds: float) -> None:
        now[0] += seconds

    truth = GroundTruth()
    with pytest.raises(ProduceError):
        produce(
            generate(Options(seed=1)),
            sink,
            events=1000,
            pacer=Pacer(100),
            truth=truth,
            clock=lambda: now[0],
            sleep=sleep,
        )
    assert truth.totals["records"] == sum(len(b) for b in sent) > 0
    assert 0 < max(len(b) for b in sent) <= 10  # ~50 ms of records per call at 100/s

    truth = produce(generate(Options(seed=1)), lambda batch: None, events=1234)
    assert truth.totals["records"] == 1234


def test_produce_stops_at_the_duration() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    truth = produce(
        generate(Options(seed=1)), lambda batch: None, duration=2.0, pacer=Pacer(50), clock=lambda: now[0], sleep=sleep
    )
    assert truth.totals["records"] == 100  # due at 0.00, 0.02, ... 1.98 s


def test_stream_name_comes_from_the_option_then_the_properties_file(tmp_path: Path) -> None:
    props = tmp_path / "kcl.properties"
    props.write_text("executableName = ecs-state-processor\nstreamName = from-file\n")
    assert stream_name(argparse.Namespace(stream="given", properties=str(props)), {}) == "given"
    assert stream_name(argparse.Namespace(stream=None, properties=str(props)), {}) == "from-file"
    assert (
        stream_name(argparse.Namespace(stream=None, properties=None), {"ECS_STATE_PROPERTIES": str(props)})
        == "from-file"
    )
    assert stream_name(argparse.Namespace(stream=None, properties=None), {}) == "ecs-events"


def _offline_kinesis() -> Any:
    return boto3.session.Session().client(
        "kinesis", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


def _put_response(codes: list[str | None]) -> dict[str, Any]:
    records = [
        {"ErrorCode": c, "ErrorMessage": "Rate exceeded for shard"}
        if c
        else {"SequenceNumber": str(10**20 + i), "ShardId": "shardId-000000000000"}
        for i, c in enumerate(codes)
    ]
    failed = sum(1 for c in codes if c)  # the botocore model wants FailedRecordCount >= 1 when present
    return {"Records": records, **({"FailedRecordCount": failed} if failed else {})}


def test_partial_failure_retries_only_the_failed_entries() -> None:
    """moto never answers PutRecords with a partial failure, so botocore's Stubber supplies those responses (the
    one thing faked here); the request each retry sends is checked against the model by the Stubber too."""
    client = _offline_kinesis()
    recs = [Record(f"pk-{i}", f"data-{i}".encode(), "task") for i in range(5)]
    sleeps: list[float] = []
    writer = KinesisWriter(client, "s", sleep=sleeps.append, rng=random.Random(1), backoff=Backoff(0.1, 5.0))
    with Stubber(client) as stub:
        stub.add_response(
            "put_records",
            _put_response([None, "ProvisionedThroughputExceededException", None, "InternalFailure", None]),
            {"StreamName": "s", "Records": [{"Data": r.data, "PartitionKey": r.partition_key} for r in recs]},
        )
        stub.add_response(
            "put_records",
            _put_response(["ProvisionedThroughputExceededException", None]),
            {
                "StreamName": "s",
                "Records": [{"Data": r.data, "PartitionKey": r.partition_key} for r in (recs[1], recs[3])],
            },
        )
        stub.add_client_error("put_records", "ProvisionedThroughputExceededException", http_status_code=400)
        stub.add_response(
            "put_records",
            _put_response([None]),
            {"StreamName": "s", "Records": [{"Data": recs[1].data, "PartitionKey": "pk-1"}]},
        )
        writer.put(recs)
        stub.assert_no_pending_responses()
    assert writer.putter.calls == 4 and writer.putter.retried_records == 3
    assert len(sleeps) == 3
    assert all(0 <= s <= 0.1 * 2 ** (i + 1) for i, s in enumerate(sleeps))  # exponential cap, full jitter


def test_retries_give_up_with_a_clear_error() -> None:
    client = _offline_kinesis()
    writer = KinesisWriter(client, "s", max_attempts=3, sleep=lambda s: None)
    with Stubber(client) as stub:
        for _ in range(3):
            stub.add_response("put_records", _put_response(["ProvisionedThroughputExceededException"]))
        with pytest.raises(ProduceError, match="1 records still failing after 3 PutRecords attempts.*add shards"):
            writer.put([Record("k", b"d", "task")])
    with Stubber(client) as stub:
        stub.add_client_error("put_records", "ValidationException", "bad", http_status_code=400)
        with pytest.raises(ProduceError, match="ValidationException"):
            writer.put([Record("k", b"d", "task")])
    with pytest.raises(ProduceError, match="over Kinesis"):
        writer.put([Record("k", b"x" * (1024 * 1024), "task")])
