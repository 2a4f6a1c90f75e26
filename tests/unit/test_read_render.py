"""The read side's pure parts: ARN kinds, item decoding, rows and tables, dead-letter groups."""

from __future__ import annotations

import base64
import random
import zlib
from decimal import Decimal

import pytest
from boto3.dynamodb.types import Binary

from processor.core.dead_letters import dead_letter
from processor.core.items import compress_value
from processor.core.position import Position
from processor.errors import ReadError
from processor.ops import render as readside
from workshop.testing.factories import ACCOUNT, CLUSTER_A, CLUSTER_B, REGION
from workshop.testing.factories import instance_arn_in as instance_arn
from workshop.testing.factories import task_arn_in as task_arn


@pytest.mark.parametrize(
    "arn, kind",
    [
        (task_arn("alpha", "abc"), "task"),
        (f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/0b69d5c0-d655-4695-98cd-5d2d526d9d5a", "task"),  # old ARN format
        (instance_arn("alpha", "abc"), "instance"),
        (f"arn:aws-cn:ecs:cn-north-1:{ACCOUNT}:container-instance/abc", "instance"),
    ],
)
def test_arn_kind(arn: str, kind: str) -> None:
    assert readside.arn_kind(arn) == kind


@pytest.mark.parametrize("arn", [f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web:3", CLUSTER_A, "abc", ""])
def test_arn_kind_refuses_anything_else(arn: str) -> None:
    with pytest.raises(ReadError):
        readside.arn_kind(arn)


def test_cluster_arn() -> None:
    assert readside.cluster_arn("alpha", "aws", REGION, ACCOUNT) == CLUSTER_A
    assert readside.cluster_arn(CLUSTER_B, "aws-cn", "cn-north-1", "1") == CLUSTER_B


def test_decode_item_undoes_compressed_attributes() -> None:
    containers = [{"name": "web", "exitCode": 0, "cpu": "256", "ratio": 0.5}]
    item = {
        "taskArn": {"S": "arn:t"},
        "version": {"N": "7"},
        "containers": {"B": compress_value(containers)},
        "overrides": {"B": compress_value({"cpu": "512"})},
        "memory": {"N": "2.5"},
        "compressed_attributes": {"SS": ["containers", "overrides"]},
        "tags": {"SS": ["b", "a"]},
        "blob": {"B": b"\x00\x01"},
        "gone": {"NULL": True},
        "ok": {"BOOL": True},
    }
    decoded = readside.decode_item(item)
    assert decoded == {
        "taskArn": "arn:t",
        "version": 7,
        "containers": containers,
        "overrides": {"cpu": "512"},
        "memory": 2.5,
        "tags": ["a", "b"],
        "blob": "AAE=",
        "gone": None,
        "ok": True,
    }
    raw = readside.decode_item(item, raw=True)
    assert raw["compressed_attributes"] == ["containers", "overrides"]
    assert zlib.decompress(base64.b64decode(raw["containers"]))  # still the stored bytes


def test_plain() -> None:
    assert readside.plain(Decimal("12")) == 12 and isinstance(readside.plain(Decimal("12")), int)
    assert readside.plain(Decimal("1.25")) == 1.25
    assert readside.plain({"s": {Decimal(2), Decimal(1)}, "b": Binary(b"x")}) == {"s": [1, 2], "b": "eA=="}


def test_sequence_key_orders_numerically() -> None:
    keys = ["100", "99:2", "99", "1000", "99:10"]
    assert sorted(keys, key=readside.sequence_key) == ["99", "99:2", "99:10", "100", "1000"]


def test_render_table_aligns_columns() -> None:
    text = readside.render_table(("A", "LONGER"), [["xxxx", "1"], ["y", "22"]])
    assert text == "A     LONGER\nxxxx  1\ny     22\n"


def test_task_and_instance_rows() -> None:
    task = {
        "taskArn": task_arn("alpha", "t1"),
        "lastStatus": "RUNNING",
        "desiredStatus": "RUNNING",
        "version": 3,
        "taskDefinitionArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web:12",
        "launchType": "EC2",
        "startedAt": "2024-05-01T10:00:00Z",
        "containerInstanceArn": instance_arn("alpha", "i1"),
    }
    assert readside.task_row(task) == [
        "t1",
        "RUNNING",
        "RUNNING",
        "3",
        "web:12",
        "EC2",
        "2024-05-01T10:00:00Z",
        "-",
        "i1",
    ]
    instance = {
        "containerInstanceArn": instance_arn("alpha", "i1"),
        "ec2InstanceId": "i-0abc",
        "status": "ACTIVE",
        "agentConnected": False,
        "runningTasksCount": 2,
        "pendingTasksCount": 0,
        "version": 40,
    }
    assert readside.instance_row(instance) == ["i1", "i-0abc", "ACTIVE", "disconnected", "2", "0", "40", "-"]


def test_dead_letter_groups_and_view_reassemble_parts() -> None:
    raw = random.Random(1).randbytes(800_000)  # incompressible: several parts
    letter = dead_letter(
        raw, Position("shardId-000000000001", "4960"), "pk", 1_700_000_000_000, "too-large", "too large"
    )
    assert len(letter.items) > 1
    items = [{name: readside._deserializer.deserialize(av) for name, av in it.items()} for it in letter.items]
    (group,) = readside.dead_letter_groups(list(reversed(items)))
    view = readside.dead_letter_view(group, with_data=True)
    assert base64.b64decode(view["dataBase64"]) == raw
    assert "dataText" not in view and "data" not in view
    assert view["reasonCode"] == "too-large" and view["sequenceNumber"] == "4960"


def test_is_expired() -> None:
    assert readside.is_expired({"expires_at": 99}, now=100)
    assert not readside.is_expired({"expires_at": 101}, now=100)
    assert not readside.is_expired({}, now=100) and not readside.is_expired({"expires_at": "99"}, now=100)
