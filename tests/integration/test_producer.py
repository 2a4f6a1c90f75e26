"""The producer's Kinesis side: PutRecords batching, pacing, produce(), the command against moto's Kinesis over
HTTP, and retries of partial failures."""

from __future__ import annotations

import itertools
import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from processor import aws
from processor.errors import ProduceError
from processor.loadgen.fleet import generate
from processor.loadgen.ground_truth import GroundTruth, load_truth
from processor.loadgen.producer import MAX_BATCH_BYTES, MAX_BATCH_RECORDS, KinesisWriter, Pacer, batches, produce
from processor.loadgen.records import Options, Record
from processor.ops.cli import main as cli_main
from processor.retry import Backoff


def take(options: Options, n: int) -> list[Record]:
    return list(itertools.islice(generate(options), n))


# ------------------------------------------------------------------------------------------ batching, pacing


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


# ---------------------------------------------------------------------------------------------- kinesis


def _read_all(client: Any, stream: str, expected: int, deadline_s: float = 30.0) -> list[dict[str, Any]]:
    shards = client.list_shards(StreamName=stream)["Shards"]
    iterators = [
        client.get_shard_iterator(StreamName=stream, ShardId=s["ShardId"], ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]
        for s in shards
    ]
    records: list[dict[str, Any]] = []
    end = time.monotonic() + deadline_s
    while len(records) < expected and time.monotonic() < end:
        for i, iterator in enumerate(iterators):
            page = client.get_records(ShardIterator=iterator, Limit=10_000)
            records.extend(page["Records"])
            iterators[i] = page["NextShardIterator"]
    return records


def test_produce_command_writes_every_record_to_kinesis(moto_server: Any, tmp_path: Path) -> None:
    stream = f"producer-{random.randrange(10**6)}"
    truth_path = tmp_path / "truth.json"
    code = cli_main(
        [
            "produce",
            "--stream",
            stream,
            "--create-shards",
            "3",
            "--events",
            "1500",
            "--seed",
            "4",
            "--poison-rate",
            "0.05",
            "--ignored-rate",
            "0.02",
            "--duplicate-rate",
            "0.05",
            "--reorder-window",
            "10",
            "--truth",
            str(truth_path),
            "--no-progress",
        ]
    )
    assert code == 0
    kinesis = aws.client("kinesis")
    got = _read_all(kinesis, stream, 1500)
    expected = take(
        Options(
            seed=4,
            poison_rate=0.05,
            ignored_rate=0.02,
            duplicate_rate=0.05,
            reorder_window=10,
            region=kinesis.meta.region_name,
        ),
        1500,
    )
    assert len(got) == 1500
    assert Counter((r["PartitionKey"], bytes(r["Data"])) for r in got) == Counter(
        (r.partition_key, r.data) for r in expected
    )
    for rec in expected:
        if rec.kind in ("task", "instance", "ignored"):
            assert rec.partition_key == json.loads(rec.data)["resources"][0]
    truth = load_truth(truth_path)
    assert truth["totals"]["records"] == 1500
    assert len(truth["poison"]) == sum(r.kind == "poison" for r in expected) > 0


def test_stream_name_comes_from_the_option_then_the_properties_file(tmp_path: Path) -> None:
    import argparse

    from processor.loadgen.producer import stream_name

    props = tmp_path / "kcl.properties"
    props.write_text("executableName = ecs-state-processor\nstreamName = from-file\n")
    assert stream_name(argparse.Namespace(stream="given", properties=str(props)), {}) == "given"
    assert stream_name(argparse.Namespace(stream=None, properties=str(props)), {}) == "from-file"
    assert (
        stream_name(argparse.Namespace(stream=None, properties=None), {"ECS_STATE_PROPERTIES": str(props)})
        == "from-file"
    )
    assert stream_name(argparse.Namespace(stream=None, properties=None), {}) == "ecs-events"


def test_produce_command_reports_a_missing_stream(moto_server: Any, tmp_path: Path) -> None:
    assert (
        cli_main(
            [
                "produce",
                "--stream",
                "no-such-stream",
                "--events",
                "10",
                "--no-progress",
                "--truth",
                str(tmp_path / "t.json"),
            ]
        )
        == 1
    )
    assert load_truth(tmp_path / "t.json")["totals"]["records"] == 0


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


def test_a_connection_reset_is_retried_like_a_5xx(moto_server: Any) -> None:
    """The fault proxy (in front of moto's Kinesis) resets the connection of the first PutRecords without
    forwarding it; the writer retries and every record lands once."""
    from workshop.testing.fault_proxy import FaultProxy, Rule

    stream = f"reset-{random.randrange(10**6)}"
    direct = aws.client("kinesis")
    direct.create_stream(StreamName=stream, ShardCount=1)
    direct.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    rule = Rule("reset", operations=frozenset({"PutRecords"}), limit=1)
    with FaultProxy(moto_server.endpoint, [rule]) as proxy:
        client = boto3.session.Session().client(
            "kinesis",
            endpoint_url=proxy.endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
        )
        writer = KinesisWriter(client, stream, sleep=lambda _: None)
        recs = [Record(f"pk-{i}", f"data-{i}".encode(), "task") for i in range(3)]
        writer.put(recs)
        assert proxy.injected("reset") == 1
    assert writer.putter.calls == 2
    shard = direct.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = direct.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    assert sorted(r["Data"] for r in direct.get_records(ShardIterator=iterator)["Records"]) == sorted(
        r.data for r in recs
    )
