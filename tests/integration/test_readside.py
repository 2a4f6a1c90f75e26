"""The read side (processor/ops/read.py): the subcommands against the moto server with tables
created from the CloudFormation template's own table definitions."""

from __future__ import annotations

import argparse
import base64
import io
import json
import random
from pathlib import Path
from typing import Any

import pytest
from cfn_template import create_tables_from_template, indexed, properties_file

from processor.aws import client
from processor.core.dead_letters import dead_letter
from processor.core.items import compress_value
from processor.core.position import Position
from processor.errors import ReadError
from processor.ops import read as readside
from workshop.testing.factories import ACCOUNT, CLUSTER_A, CLUSTER_B, REGION
from workshop.testing.factories import instance_arn_in as instance_arn
from workshop.testing.factories import task_arn_in as task_arn

# ---------------------------------------------------------------------------------------------- pure part


# -------------------------------------------------------------------------------------------------- I/O part
@pytest.fixture(scope="module")
def tables(moto_server: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Tables from the template, filled once: cluster alpha has 2 RUNNING tasks (one with a compressed attribute),
    1 PENDING, 2 STOPPED (one expired) and 2 container instances; cluster beta 1 RUNNING task, 1 instance."""
    names = create_tables_from_template()
    ddb = client("dynamodb")

    def task(cluster: str, task_id: str, status: str, version: int, **extra: dict[str, Any]) -> None:
        item = {
            "taskArn": {"S": task_arn(cluster.rsplit("/", 1)[1], task_id)},
            "clusterArn": {"S": cluster},
            "lastStatus": {"S": status},
            "desiredStatus": {"S": "RUNNING"},
            "version": {"N": str(version)},
            "taskDefinitionArn": {"S": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web:1"},
            **extra,
        }
        ddb.put_item(TableName=names["task"], Item=indexed(item))

    task(
        CLUSTER_A,
        "t1",
        "RUNNING",
        3,
        containers={"B": compress_value([{"name": "web", "lastStatus": "RUNNING"}])},
        compressed_attributes={"SS": ["containers"]},
    )
    task(CLUSTER_A, "t2", "RUNNING", 5)
    task(CLUSTER_A, "t3", "PENDING", 1)
    task(CLUSTER_A, "t4", "STOPPED", 9)
    task(CLUSTER_A, "t6", "STOPPED", 4, expires_at={"N": "1000"})  # expired long ago, not yet deleted by TTL
    task(CLUSTER_B, "t5", "RUNNING", 2)
    for cluster, ci, status in [
        (CLUSTER_A, "i1", "ACTIVE"),
        (CLUSTER_A, "i2", "DRAINING"),
        (CLUSTER_B, "i3", "ACTIVE"),
    ]:
        ddb.put_item(
            TableName=names["instance"],
            Item={
                "containerInstanceArn": {"S": instance_arn(cluster.rsplit("/", 1)[1], ci)},
                "clusterArn": {"S": cluster},
                "status": {"S": status},
                "version": {"N": "4"},
                "agentConnected": {"BOOL": True},
                "ec2InstanceId": {"S": f"i-{ci}"},
            },
        )
    props = properties_file(tmp_path_factory.mktemp("readside"), names)
    return {"names": names, "properties": str(props)}


def run(*argv: str) -> tuple[int, str]:
    """Parse ``argv`` with a parser that has only readside's subcommands (as cli.py will register them)."""
    parser = argparse.ArgumentParser(prog="ecs-state")
    readside.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    out = io.StringIO()
    code = args.func(args, out=out)
    return code, out.getvalue()


def test_get_task_prints_the_item_with_compressed_attributes_decoded(tables: dict[str, Any]) -> None:
    code, out = run("get", task_arn("alpha", "t1"), "--output", "json", "--properties", tables["properties"])
    assert code == 0
    item = json.loads(out)
    assert item["containers"] == [{"name": "web", "lastStatus": "RUNNING"}]
    assert "compressed_attributes" not in item and item["version"] == 3

    code, out = run("get", task_arn("alpha", "t1"), "--raw", "--output", "json", "--properties", tables["properties"])
    assert json.loads(out)["compressed_attributes"] == ["containers"]


def test_get_instance_and_table_output(tables: dict[str, Any]) -> None:
    code, out = run("get", instance_arn("alpha", "i2"), "--output", "table", "--properties", tables["properties"])
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ATTRIBUTE", "VALUE"]
    assert ["status", "DRAINING"] in [line.split() for line in lines]


def test_get_missing_and_bad_arns(tables: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert run("get", task_arn("alpha", "nope"), "--properties", tables["properties"]) == (1, "")
    assert "is not in table" in capsys.readouterr().err
    with pytest.raises(ReadError, match="neither a task ARN"):  # cli.main makes it one line and exit 2
        run("get", CLUSTER_A, "--properties", tables["properties"])


def test_tasks_with_status_queries_both_index_keys(tables: dict[str, Any]) -> None:
    code, out = run(
        "tasks", "--cluster", CLUSTER_A, "--status", "RUNNING", "--output", "json", "--properties", tables["properties"]
    )
    assert code == 0
    items = json.loads(out)
    assert [it["taskArn"].rsplit("/", 1)[1] for it in items] == ["t1", "t2"]
    assert items[0]["containers"] == [{"name": "web", "lastStatus": "RUNNING"}]  # full item, decoded


def test_tasks_without_status_returns_every_status_of_the_cluster_only(tables: dict[str, Any]) -> None:
    code, out = run("tasks", "--cluster", CLUSTER_A, "--output", "json", "--properties", tables["properties"])
    assert code == 0
    assert sorted((it["taskArn"].rsplit("/", 1)[1], it["lastStatus"]) for it in json.loads(out)) == [
        ("t1", "RUNNING"),
        ("t2", "RUNNING"),
        ("t3", "PENDING"),
        ("t4", "STOPPED"),
    ]


def test_tasks_hides_expired_items_unless_asked(tables: dict[str, Any]) -> None:
    code, out = run(
        "tasks",
        "--cluster",
        CLUSTER_A,
        "--status",
        "STOPPED",
        "--include-expired",
        "--output",
        "json",
        "--properties",
        tables["properties"],
    )
    assert code == 0
    assert [it["taskArn"].rsplit("/", 1)[1] for it in json.loads(out)] == ["t4", "t6"]


def test_tasks_table_output_and_cluster_name(tables: dict[str, Any]) -> None:
    """A cluster name is turned into the ARN of this account (moto's STS) and region."""
    code, out = run("tasks", "--cluster", "beta", "--properties", tables["properties"])
    assert code == 0
    header, row = out.splitlines()
    assert header.split()[:3] == ["TASK", "LAST", "DESIRED"]
    assert row.split()[:5] == ["t5", "RUNNING", "RUNNING", "2", "web:1"]


def test_instances_scans_with_a_cluster_filter(tables: dict[str, Any]) -> None:
    code, out = run("instances", "--cluster", CLUSTER_A, "--output", "json", "--properties", tables["properties"])
    assert code == 0
    assert [(it["containerInstanceArn"].rsplit("/", 1)[1], it["status"]) for it in json.loads(out)] == [
        ("i1", "ACTIVE"),
        ("i2", "DRAINING"),
    ]
    code, out = run("instances", "--cluster", "beta", "--properties", tables["properties"])
    assert out.splitlines()[1].split()[:4] == ["i3", "i-i3", "ACTIVE", "connected"]


def test_tasks_reads_more_than_one_batch(moto_server: Any, tmp_path: Path) -> None:
    """BatchGetItem takes 100 keys: 230 tasks need three batches."""
    names = create_tables_from_template()
    ddb = client("dynamodb")
    cluster = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/big"
    for i in range(230):
        ddb.put_item(
            TableName=names["task"],
            Item=indexed(
                {
                    "taskArn": {"S": task_arn("big", f"{i:04d}")},
                    "clusterArn": {"S": cluster},
                    "lastStatus": {"S": "RUNNING"},
                    "version": {"N": "1"},
                }
            ),
        )
    code, out = run(
        "tasks",
        "--cluster",
        cluster,
        "--status",
        "RUNNING",
        "--output",
        "json",
        "--properties",
        str(properties_file(tmp_path, names)),
    )
    assert code == 0
    assert [it["taskArn"].rsplit("/", 1)[1] for it in json.loads(out)] == [f"{i:04d}" for i in range(230)]


def test_dead_letters_lists_and_returns_replayable_data(moto_server: Any, tmp_path: Path) -> None:
    names = create_tables_from_template()
    ddb = client("dynamodb")
    big = random.Random(2).randbytes(800_000)
    letters = [
        dead_letter(b"{not json", Position("shardId-000000000000", "100"), "pk-1", 1, "bad-json", "bad"),
        dead_letter(big, Position("shardId-000000000000", "99", 2), "pk-2", 2, "too-large", "big"),
        dead_letter(b"[]", Position("shardId-000000000003", "7"), "pk-3", 3, "not-object", "array"),
    ]
    for letter in letters:
        for item in letter.items:
            ddb.put_item(TableName=names["dead_letter"], Item=item)
    props = str(properties_file(tmp_path, names))

    code, out = run("dead-letters", "--with-data", "--output", "json", "--properties", props)
    assert code == 0
    views = json.loads(out)
    assert [(v["shardId"][-1], v["sequenceNumber"], v["reasonCode"]) for v in views] == [
        ("0", "99:2", "too-large"),
        ("0", "100", "bad-json"),
        ("3", "7", "not-object"),
    ]
    assert base64.b64decode(views[0]["dataBase64"]) == big
    assert views[1]["dataText"] == "{not json" and views[1]["partitionKey"] == "pk-1"

    code, out = run("dead-letters", "--shard", "shardId-000000000003", "--properties", props)
    header, row = out.splitlines()
    assert header.split()[:3] == ["SHARD", "SEQUENCE", "NUMBER"] and row.split()[:3] == [
        "shardId-000000000003",
        "7",
        "not-object",
    ]
