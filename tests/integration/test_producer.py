"""The producer's Kinesis side against moto's Kinesis over HTTP: the command, a missing stream, a connection reset
retried (the pure parts: tests/unit/test_producer_batching.py)."""

from __future__ import annotations

import itertools
import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from processor import aws
from processor.loadgen.fleet import generate
from processor.loadgen.ground_truth import load_truth
from processor.loadgen.producer import KinesisWriter
from processor.loadgen.records import Options, Record
from processor.ops.cli import main as cli_main


def take(options: Options, n: int) -> list[Record]:
    return list(itertools.islice(generate(options), n))


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
