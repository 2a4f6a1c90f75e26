"""``ecs-state redrive dead-letters | queue`` against moto's server (Kinesis, SQS, DynamoDB).

The dead letters are made by the REAL processor: poison records are fed to an ``ecs-state-processor`` process
through the MultiLang protocol (``multilang_driver.run_shard``), which writes them to the dead-letter table; the
command then puts them back into a moto Kinesis stream, and the test reads the stream back and compares every
record's bytes and partition key with the original. moto's Kinesis is enough here (no KCL involved).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import random
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from processor.aws import client
from processor.config import Settings
from processor.ops import cli
from workshop.testing.factories import as_json, instance_arn, instance_event, task_arn, task_event
from workshop.testing.multilang_driver import ProcessorProcess, records_from, run_shard
from workshop.testing.poison_corpus import POISON
from workshop.testing.protocol_helpers import env_for, unique_settings

SHARD = "shardId-000000000007"
#: incompressible and not UTF-8: a bad-utf8 dead letter stored as three parts (350 KiB each)
BIG = b'{"source": "aws.ecs", "x": "' + random.Random(12).randbytes(800_000) + b'"}'
CODES = ("bad-json", "not-object", "wrong-source", "bad-version", "too-deep", "bad-utf8")


@functools.cache
def clients() -> dict[str, Any]:
    return {name: client(name) for name in ("dynamodb", "kinesis", "sqs")}


def make_stream() -> str:
    name = f"redrive-{uuid.uuid4().hex[:8]}"
    kinesis = clients()["kinesis"]
    kinesis.create_stream(StreamName=name, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
    return name


def stream_records(stream: str) -> list[tuple[str, bytes]]:
    """Every record in the stream as (partition key, data), shard by shard."""
    kinesis = clients()["kinesis"]
    found: list[tuple[str, bytes]] = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            reply = kinesis.get_records(ShardIterator=iterator, Limit=1000)
            found.extend((r["PartitionKey"], bytes(r["Data"])) for r in reply["Records"])
            if not reply["Records"]:
                break
            iterator = reply.get("NextShardIterator")
    return found


def dead_letter_items(settings: Settings) -> list[dict[str, Any]]:
    pages = clients()["dynamodb"].get_paginator("scan").paginate(TableName=settings.dead_letter_table)
    return [item for page in pages for item in page["Items"]]


@pytest.fixture
def poisoned(moto_server: Any, tmp_path: Path) -> tuple[Settings, dict[str, tuple[bytes, str]]]:
    """A dead-letter table filled by the real processor: one poison record per reason code in ``CODES`` (plus a
    three-part one) between valid events; returns the settings and {partition key: (data, code)}."""
    settings = unique_settings("redrive")
    chosen = {name: case for name, case in POISON.items() if case[1] in CODES}
    poison = {f"pk-{i}-{name.replace(' ', '-')}": case for i, (name, case) in enumerate(chosen.items())}
    poison["pk-big"] = (BIG, "bad-utf8")
    payloads: list[tuple[str, bytes]] = []
    for n, (key, (data, _)) in enumerate(poison.items()):
        payloads.append((key, data))
        payloads.append((task_arn(n), as_json(task_event(task_arn(n), 1))))
    payloads.append((instance_arn(1), as_json(instance_event(instance_arn(1), 3))))
    process = ProcessorProcess(env=env_for(settings), stderr_path=tmp_path / "processor.stderr").start()
    assert run_shard(process, SHARD, records_from(payloads)) == 0
    stored = dead_letter_items(settings)
    assert len({it["sequenceNumber"]["S"].split("#")[0] for it in stored}) == len(poison)
    assert sum("#part" in it["sequenceNumber"]["S"] for it in stored) == 2, "the big record must have 3 parts"
    return settings, poison


def properties(tmp_path: Path, settings: Settings) -> str:
    path = tmp_path / "redrive.properties"
    path.write_text(f"ecsState.deadLetterTable = {settings.dead_letter_table}\n", encoding="utf-8")
    return str(path)


def run(*argv: str) -> tuple[int, str]:
    """The command as a user runs it: through ``cli.main``, the one place errors become exit codes."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(list(argv))
    return code, out.getvalue()


def test_dead_letters_go_back_byte_identical_with_their_partition_keys_and_are_deleted(
    poisoned: tuple[Settings, dict[str, tuple[bytes, str]]], tmp_path: Path
) -> None:
    settings, poison = poisoned
    stream = make_stream()
    code, out = run(
        "redrive",
        "dead-letters",
        "--stream-name",
        stream,
        "--output",
        "json",
        "--properties",
        properties(tmp_path, settings),
    )
    assert code == 0, out
    report = json.loads(out)
    assert report["put"] == report["cleared"] == dict(Counter(c for _, c in poison.values()))
    assert report["skipped"] == [] and report["failed"] == {}
    assert sorted(stream_records(stream)) == sorted((key, data) for key, (data, _) in poison.items())
    assert dead_letter_items(settings) == []


def test_reason_codes_and_dry_run_select_without_touching_the_rest(
    poisoned: tuple[Settings, dict[str, tuple[bytes, str]]], tmp_path: Path
) -> None:
    settings, poison = poisoned
    stream = make_stream()
    props = properties(tmp_path, settings)
    before = dead_letter_items(settings)
    code, out = run("redrive", "dead-letters", "--stream-name", stream, "--dry-run", "--properties", props)
    assert code == 0 and f"dry run: {len(poison)} dead letters would be put back" in out, out
    assert stream_records(stream) == [] and len(dead_letter_items(settings)) == len(before)

    code, out = run(
        "redrive",
        "dead-letters",
        "--stream-name",
        stream,
        "--reason-code",
        "bad-utf8",
        "--reason-code",
        "too-deep",
        "--shard-id",
        SHARD,
        "--properties",
        props,
    )
    assert code == 0, out
    wanted = {key: data for key, (data, c) in poison.items() if c in ("bad-utf8", "too-deep")}
    assert sorted(stream_records(stream)) == sorted(wanted.items())
    left = {it["partitionKey"]["S"] for it in dead_letter_items(settings) if "partitionKey" in it}
    assert left == set(poison) - set(wanted)
    assert not any("#part" in it["sequenceNumber"]["S"] for it in dead_letter_items(settings))


def test_a_dead_letter_with_a_missing_part_is_reported_and_kept(
    poisoned: tuple[Settings, dict[str, tuple[bytes, str]]], tmp_path: Path
) -> None:
    settings, poison = poisoned
    ddb = clients()["dynamodb"]
    part = next(it for it in dead_letter_items(settings) if it["sequenceNumber"]["S"].endswith("#part2"))
    ddb.delete_item(
        TableName=settings.dead_letter_table, Key={"shardId": part["shardId"], "sequenceNumber": part["sequenceNumber"]}
    )
    stream = make_stream()
    code, out = run("redrive", "dead-letters", "--stream-name", stream, "--properties", properties(tmp_path, settings))
    assert code == 1
    assert "has 2 of its 3 items (parts missing); left in the table" in out
    assert ("pk-big", BIG) not in stream_records(stream) and len(stream_records(stream)) == len(poison) - 1
    assert {it["partitionKey"]["S"] for it in dead_letter_items(settings) if "partitionKey" in it} == {"pk-big"}


def test_a_missing_stream_is_an_error_that_deletes_nothing(
    poisoned: tuple[Settings, dict[str, tuple[bytes, str]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, _ = poisoned
    before = dead_letter_items(settings)
    code, _ = run(
        "redrive", "dead-letters", "--stream-name", "no-such-stream", "--properties", properties(tmp_path, settings)
    )
    assert code == 2 and "does not exist" in capsys.readouterr().err
    assert len(dead_letter_items(settings)) == len(before)


# ---- the EventBridge dead-letter queue ------------------------------------------------------------------------


def visible_bodies(queue_url: str) -> list[str]:
    """Every message currently visible (received with a short visibility, then released)."""
    sqs = clients()["sqs"]
    bodies: dict[str, str] = {}
    handles: list[tuple[str, str]] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        reply = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=30)
        fresh = [m for m in reply.get("Messages", []) if m["MessageId"] not in bodies]
        if not fresh:
            break
        bodies.update((m["MessageId"], m["Body"]) for m in fresh)
        handles.extend((m["MessageId"], m["ReceiptHandle"]) for m in fresh)
    sqs_release(queue_url, handles)
    return sorted(bodies.values())


def sqs_release(queue_url: str, handles: list[tuple[str, str]]) -> None:
    for start in range(0, len(handles), 10):
        clients()["sqs"].change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                for i, (_, h) in enumerate(handles[start : start + 10])
            ],
        )


def test_queue_messages_move_into_the_stream_keyed_by_arn_and_the_rest_stay(moto_server: Any) -> None:
    sqs = clients()["sqs"]
    queue_url = sqs.create_queue(QueueName=f"dlq-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    task = json.dumps(task_event(task_arn(77), 4))
    instance = json.dumps(instance_event(instance_arn(78), 9))
    others = [
        json.dumps({**task_event(task_arn(79), 1), "source": "aws.ec2"}),
        json.dumps({"source": "aws.ecs", "detail-type": "ECS Service Action", "detail": {}}),
        json.dumps({**task_event(task_arn(80), 1), "detail": {"version": 1}}),
        "not json at all",
    ]
    for body in [task, instance, *others]:
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    stream = make_stream()

    code, out = run("redrive", "queue", "--queue-url", queue_url, "--stream-name", stream, "--dry-run")
    assert code == 1 and "dry run: 2 messages would be put back" in out, out
    assert stream_records(stream) == []
    assert len(visible_bodies(queue_url)) == 6, "a dry run must leave every message visible"

    code, out = run("redrive", "queue", "--queue-url", queue_url, "--stream-name", stream, "--output", "json")
    assert code == 1, out
    report = json.loads(out)
    assert report["put"] == report["cleared"] == {"ECS Task State Change": 1, "ECS Container Instance State Change": 1}
    assert len(report["skipped"]) == 4
    assert sorted(stream_records(stream)) == sorted(
        [(task_arn(77), task.encode()), (instance_arn(78), instance.encode())]
    )
    assert visible_bodies(queue_url) == sorted(others), "the messages that are not ECS events stay, visible"
