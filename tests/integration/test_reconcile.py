"""ecs-state reconcile (processor/ops/reconcile.py): the command against moto's ECS and DynamoDB (moto server).

What moto's ECS reports, found while writing this: DescribeTasks and DescribeContainerInstances carry no ``version``
(real ECS does), ListTasks honours ``desiredStatus`` only when given (and matches clusters by substring, hence the
unique cluster names), and a task's ``lastStatus`` advances one step on every DescribeTasks unless moto's state
manager is told otherwise (the ``frozen_tasks`` fixture). Without versions the command compares statuses and says
"unversioned"; the version paths are exercised with a wrapper that adds versions to moto's real replies.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import re
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from cfn_template import create_tables_from_template, indexed, properties_file

from processor.aws import client
from processor.ops import reconcile

ARN = "arn:aws:ecs:us-east-1:123456789012:task/c/1"
MOTO_AMI = "ami-12c6146b"  # one of moto's built-in AMIs (listing them all takes seconds)


# ---------------------------------------------------------------------------------------------- pure part


# -------------------------------------------------------------------------------------------- against moto
@pytest.fixture(scope="module")
def frozen_tasks(moto_server: Any) -> Iterator[None]:
    """Keep moto's tasks in the status they are put in (by default each DescribeTasks advances them a step)."""

    def post(path: str, body: dict[str, Any]) -> None:
        request = urllib.request.Request(
            f"{moto_server.endpoint}/moto-api/state-manager/{path}", data=json.dumps(body).encode(), method="POST"
        )
        urllib.request.urlopen(request, timeout=10).close()

    post("set-transition", {"model_name": "ecs::task", "transition": {"progression": "manual", "times": 10**9}})
    yield
    post("unset-transition", {"model_name": "ecs::task"})


@pytest.fixture(scope="module")
def tables(moto_server: Any) -> dict[str, str]:
    return create_tables_from_template()


@functools.cache
def ecs_client() -> Any:
    return client("ecs")


class Cluster:
    """A moto ECS cluster with one registered container instance and running tasks."""

    def __init__(self, tasks: int) -> None:
        self.ecs, ec2 = ecs_client(), client("ec2")
        self.name = f"rc-{uuid.uuid4().hex[:10]}"
        self.arn = self.ecs.create_cluster(clusterName=self.name)["cluster"]["clusterArn"]
        instance = ec2.run_instances(ImageId=MOTO_AMI, MinCount=1, MaxCount=1)["Instances"][0]
        document = json.dumps(
            {"instanceId": instance["InstanceId"], "region": "us-east-1", "accountId": "123456789012"}
        )
        self.instance = self.ecs.register_container_instance(cluster=self.name, instanceIdentityDocument=document)[
            "containerInstance"
        ]["containerInstanceArn"]
        self.ecs.register_task_definition(
            family=self.name, containerDefinitions=[{"name": "app", "image": "busybox", "memory": 32}]
        )
        self.tasks = [
            t["taskArn"] for t in self.ecs.run_task(cluster=self.name, taskDefinition=self.name, count=tasks)["tasks"]
        ]


@functools.cache
def dynamodb() -> Any:
    """One client for the module (building a boto3 client takes a few hundred ms)."""
    return client("dynamodb")


def put_task(table: str, cluster: str, arn: str, status: str, version: int) -> None:
    dynamodb().put_item(
        TableName=table,
        Item=indexed(
            {
                "taskArn": {"S": arn},
                "clusterArn": {"S": cluster},
                "lastStatus": {"S": status},
                "version": {"N": str(version)},
            }
        ),
    )


def put_instance(table: str, cluster: str, arn: str, status: str, version: int) -> None:
    dynamodb().put_item(
        TableName=table,
        Item={
            "containerInstanceArn": {"S": arn},
            "clusterArn": {"S": cluster},
            "status": {"S": status},
            "version": {"N": str(version)},
        },
    )


def run(*argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="ecs-state")
    reconcile.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    out = io.StringIO()
    return args.func(args, out=out), out.getvalue()


def test_moto_reports_no_version(frozen_tasks: None) -> None:
    cluster = Cluster(tasks=1)
    (task,) = cluster.ecs.describe_tasks(cluster=cluster.name, tasks=cluster.tasks)["tasks"]
    (instance,) = cluster.ecs.describe_container_instances(cluster=cluster.name, containerInstances=[cluster.instance])[
        "containerInstances"
    ]
    assert task["lastStatus"] == "RUNNING"
    assert "version" not in task and "version" not in instance, (
        "moto now reports version: the moto tests below can check versions without the VersionedEcs wrapper"
    )


def test_reconcile_against_moto_reports_each_kind_of_drift(
    frozen_tasks: None, tables: dict[str, str], tmp_path: Path
) -> None:
    cluster = Cluster(tasks=3)
    same, differs, stopped = cluster.tasks
    cluster.ecs.stop_task(cluster=cluster.name, task=stopped, reason="test")
    ghost, old = (
        cluster.arn.replace(":cluster/", ":task/") + "/ghost",
        cluster.arn.replace(":cluster/", ":task/") + "/old",
    )
    put_task(tables["task"], cluster.arn, same, "RUNNING", 2)
    put_task(tables["task"], cluster.arn, differs, "PENDING", 1)
    put_task(tables["task"], cluster.arn, ghost, "RUNNING", 4)
    put_task(tables["task"], cluster.arn, old, "STOPPED", 6)
    put_task(tables["task"], "arn:aws:ecs:us-east-1:123456789012:cluster/elsewhere", ghost + "x", "RUNNING", 1)
    put_instance(tables["instance"], cluster.arn, cluster.instance, "ACTIVE", 10)
    put_instance(tables["instance"], cluster.arn, cluster.instance + "-gone", "INACTIVE", 3)
    put_instance(tables["instance"], cluster.arn, cluster.instance + "-lost", "ACTIVE", 3)

    code, out = run(
        "reconcile",
        "--cluster",
        cluster.name,
        "--output",
        "json",
        "--all",
        "--properties",
        str(properties_file(tmp_path, tables)),
    )
    assert code == 1
    report = json.loads(out)
    assert report["cluster"] == cluster.arn and report["drift"] is True
    states = {f["arn"]: f["state"] for f in report["findings"]}
    assert states == {
        same: "unversioned",
        differs: "status-differs",
        stopped: "missing",
        ghost: "only-in-table",
        old: "gone",
        cluster.instance: "unversioned",
        cluster.instance + "-gone": "gone",
        cluster.instance + "-lost": "only-in-table",
    }
    assert report["counts"] == {"unversioned": 2, "gone": 2, "missing": 1, "only-in-table": 2, "status-differs": 1}


def test_reconcile_without_drift_exits_zero(frozen_tasks: None, tables: dict[str, str], tmp_path: Path) -> None:
    cluster = Cluster(tasks=2)
    for arn in cluster.tasks:
        put_task(tables["task"], cluster.arn, arn, "RUNNING", 1)
    put_instance(tables["instance"], cluster.arn, cluster.instance, "ACTIVE", 1)
    code, out = run("reconcile", "--cluster", cluster.arn, "--properties", str(properties_file(tmp_path, tables)))
    assert code == 0
    lines = out.splitlines()
    assert lines[-1] == f"{cluster.arn}: no drift (3 unversioned)"
    assert [line.split()[:2] for line in lines[1:-1]] == [["instance", "unversioned"]] + [["task", "unversioned"]] * 2


def test_unknown_cluster_is_an_error(
    frozen_tasks: None, tables: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(
        "reconcile", "--cluster", f"nope-{uuid.uuid4().hex}", "--properties", str(properties_file(tmp_path, tables))
    )
    assert (code, out) == (2, "")
    assert "does not know cluster" in capsys.readouterr().err


class VersionedEcs:
    """moto's ECS cannot produce ``version`` (see test_moto_reports_no_version): this wrapper adds the versions in
    ``versions`` to moto's real DescribeTasks / DescribeContainerInstances replies, and can run a hook before each
    DescribeTasks. Every other call goes to moto unchanged."""

    def __init__(self, versions: dict[str, int], before_describe: Callable[[int], None] | None = None) -> None:
        self._ecs = ecs_client()
        self.versions = versions
        self.describe_calls = 0
        self._hook = before_describe

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ecs, name)

    def describe_tasks(self, **request: Any) -> dict[str, Any]:
        self.describe_calls += 1
        if self._hook:
            self._hook(self.describe_calls)
        reply = self._ecs.describe_tasks(**request)
        for task in reply["tasks"]:
            task["version"] = self.versions[task["taskArn"]]
        return reply

    def describe_container_instances(self, **request: Any) -> dict[str, Any]:
        reply = self._ecs.describe_container_instances(**request)
        for instance in reply["containerInstances"]:
            instance["version"] = self.versions[instance["containerInstanceArn"]]
        return reply


def test_reconcile_compares_versions(frozen_tasks: None, tables: dict[str, str]) -> None:
    cluster = Cluster(tasks=4)
    ok, behind, ahead, missing = cluster.tasks
    ecs = VersionedEcs({ok: 5, behind: 5, ahead: 5, missing: 5, cluster.instance: 20})
    put_task(tables["task"], cluster.arn, ok, "RUNNING", 5)
    put_task(tables["task"], cluster.arn, behind, "RUNNING", 4)
    put_task(tables["task"], cluster.arn, ahead, "RUNNING", 6)
    put_instance(tables["instance"], cluster.arn, cluster.instance, "ACTIVE", 19)
    findings = reconcile.reconcile(ecs, dynamodb(), tables["task"], tables["instance"], cluster.arn)
    assert {(f.arn, f.state, f.ecs_version, f.table_version) for f in findings} == {
        (ok, "ok", 5, 5),
        (behind, "behind", 5, 4),
        (ahead, "ahead", 5, 6),
        (missing, "missing", 5, None),
        (cluster.instance, "behind", 20, 19),
    }


def test_wait_rechecks_drift_until_the_event_lands(frozen_tasks: None, tables: dict[str, str]) -> None:
    """The stored item catches up between the first look and the re-check (as when an event is in flight)."""
    cluster = Cluster(tasks=2)
    settled, late = cluster.tasks
    put_task(tables["task"], cluster.arn, settled, "RUNNING", 3)
    put_instance(tables["instance"], cluster.arn, cluster.instance, "ACTIVE", 8)

    def event_lands(call: int) -> None:
        if call == 2:
            put_task(tables["task"], cluster.arn, late, "RUNNING", 3)

    ecs = VersionedEcs({settled: 3, late: 3, cluster.instance: 8}, before_describe=event_lands)
    findings = reconcile.reconcile(
        ecs, dynamodb(), tables["task"], tables["instance"], cluster.arn, wait_s=30, poll_s=0.05
    )
    assert {(f.arn, f.state) for f in findings} == {(settled, "ok"), (late, "ok"), (cluster.instance, "ok")}
    assert ecs.describe_calls == 2


def test_wait_gives_up_on_drift_that_stays(frozen_tasks: None, tables: dict[str, str]) -> None:
    cluster = Cluster(tasks=1)
    (task,) = cluster.tasks
    put_task(tables["task"], cluster.arn, task, "RUNNING", 1)
    put_instance(tables["instance"], cluster.arn, cluster.instance, "ACTIVE", 1)
    ecs = VersionedEcs({task: 2, cluster.instance: 1})
    findings = reconcile.reconcile(
        ecs, dynamodb(), tables["task"], tables["instance"], cluster.arn, wait_s=0.5, poll_s=0.05
    )
    assert [(f.arn, f.state) for f in findings if f.drift] == [(task, "behind")]
    assert ecs.describe_calls >= 2


# ---- --repair ---------------------------------------------------------------------------------------------------


def test_repair_stores_the_api_description_where_the_table_is_behind_or_missing(
    frozen_tasks: None, tables: dict[str, str]
) -> None:
    """moto's ECS gives no versions: the VersionedEcs wrapper adds them to moto's real descriptions (so the
    descriptions themselves, with moto's datetimes, are moto's). A newer version that lands in the table between
    the look and the repair wins over the repair (the same conditional write as the processor)."""
    from processor.ops import repair

    cluster = Cluster(tasks=4)
    behind, missing, ahead, raced = cluster.tasks
    put_task(tables["task"], cluster.arn, behind, "PENDING", 4)
    put_task(tables["task"], cluster.arn, ahead, "RUNNING", 9)
    put_task(tables["task"], cluster.arn, raced, "RUNNING", 2)
    put_instance(tables["instance"], cluster.arn, cluster.instance, "ACTIVE", 1)

    def event_lands(call: int) -> None:
        if call == 2:  # the repair's own DescribeTasks: an event of version 8 is stored just before it
            put_task(tables["task"], cluster.arn, raced, "STOPPED", 8)

    ecs = VersionedEcs({behind: 5, missing: 3, ahead: 5, raced: 5, cluster.instance: 6}, before_describe=event_lands)
    findings = reconcile.reconcile(ecs, dynamodb(), tables["task"], tables["instance"], cluster.arn)
    repairs = repair.repair(ecs, dynamodb(), tables, cluster.arn, findings)
    assert {(r.arn, r.result, r.table_version, r.stored_version) for r in repairs} == {
        (behind, "repaired", 4, 5),
        (missing, "repaired", None, 3),
        (raced, "newer-in-table", 2, 5),
        (cluster.instance, "repaired", 1, 6),
    }
    assert [f.arn for f in repair.unresolved(findings, repairs)] == [ahead]

    def stored(table: str, key: str, arn: str) -> dict[str, Any]:
        return dynamodb().get_item(TableName=table, Key={key: {"S": arn}}, ConsistentRead=True)["Item"]

    item = stored(tables["task"], "taskArn", behind)
    assert item["version"] == {"N": "5"} and item["item_source"] == {"S": "ecs-api"}
    assert item["lastStatus"] == {"S": "RUNNING"} and item["clusterArn"] == {"S": cluster.arn}
    assert stored(tables["task"], "taskArn", missing)["version"] == {"N": "3"}
    assert stored(tables["task"], "taskArn", ahead)["version"] == {"N": "9"}
    assert stored(tables["task"], "taskArn", raced)["version"] == {"N": "8"}
    instance = stored(tables["instance"], "containerInstanceArn", cluster.instance)
    assert instance["version"] == {"N": "6"} and instance["item_source"] == {"S": "ecs-api"}
    assert "ec2InstanceId" in instance
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", instance["registeredAt"]["S"]), (
        "moto's datetime is stored as events carry timestamps"
    )

    again = reconcile.reconcile(ecs, dynamodb(), tables["task"], tables["instance"], cluster.arn)
    assert {(f.arn, f.state) for f in again if f.drift} == {(ahead, "ahead"), (raced, "ahead")}


def test_repair_without_versions_repairs_nothing_and_says_so(
    frozen_tasks: None, tables: dict[str, str], tmp_path: Path
) -> None:
    """Against moto's unversioned ECS through the command line: a missing task cannot be repaired (no version
    to put the condition on), so the drift stays and the exit code is 1."""
    cluster = Cluster(tasks=1)
    code, out = run(
        "reconcile",
        "--cluster",
        cluster.arn,
        "--repair",
        "--output",
        "json",
        "--properties",
        str(properties_file(tmp_path, tables)),
    )
    report = json.loads(out)
    assert code == 1 and report["unresolved"] == 2 and report["repairs"] == []
    assert dynamodb().get_item(TableName=tables["task"], Key={"taskArn": {"S": cluster.tasks[0]}}).get("Item") is None
