"""ecs-state reconcile (processor/ops/reconcile.py): the command against moto's ECS and DynamoDB (moto server).

What moto's ECS reports, found while writing this: DescribeTasks and DescribeContainerInstances carry no ``version``
(real ECS does), ListTasks honours ``desiredStatus`` only when given (and matches clusters by substring, hence the
unique cluster names), and a task's ``lastStatus`` advances one step on every DescribeTasks unless moto's state
manager is told otherwise (the ``frozen_tasks`` fixture). Without versions the command compares statuses and says
"unversioned"; the version paths are exercised with a wrapper that adds versions to moto's real replies.
"""

from __future__ import annotations

import argparse
import collections
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
from processor.errors import ReadError
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
    """A moto ECS cluster with one registered container instance and running tasks (in the caller's account and
    region, or with the ``ecs`` and ``ec2`` clients given, another's)."""

    def __init__(self, tasks: int, name: str | None = None, ecs: Any = None, ec2: Any = None) -> None:
        self.ecs, ec2 = ecs or ecs_client(), ec2 or client("ec2")
        self.name = name or f"rc-{uuid.uuid4().hex[:10]}"
        self.arn = self.ecs.create_cluster(clusterName=self.name)["cluster"]["clusterArn"]
        instance = ec2.run_instances(ImageId=MOTO_AMI, MinCount=1, MaxCount=1)["Instances"][0]
        account, region = self.arn.split(":")[4], self.arn.split(":")[3]
        document = json.dumps({"instanceId": instance["InstanceId"], "region": region, "accountId": account})
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
    """The command raises; ``cli.main``, the one place mapping errors to exit codes, makes it one line and 2."""
    from processor.ops import cli

    argv = [
        "reconcile",
        "--cluster",
        f"nope-{uuid.uuid4().hex}",
        "--properties",
        str(properties_file(tmp_path, tables)),
    ]
    with pytest.raises(ReadError, match="does not know cluster"):
        run(*argv)
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "does not know cluster" in captured.err and len(captured.err.splitlines()) == 1


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


class EveryTaskVersioned(VersionedEcs):
    """``VersionedEcs`` for every resource of the account (other tests' clusters too, which ListClusters also
    returns): the versions given, else 1. moto cannot produce a version (test_moto_reports_no_version)."""

    def __init__(self, versions: dict[str, int]) -> None:
        super().__init__(collections.defaultdict(lambda: 1, versions))


def test_all_clusters_with_repair_seeds_empty_tables_with_every_cluster_of_the_account(
    frozen_tasks: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seeding the tables of a new deploy with what already runs: one command over every cluster ListClusters
    gives (through the command line, with moto's real clusters and descriptions; only the versions are added)."""
    import processor.aws

    first, second = Cluster(tasks=2), Cluster(tasks=1)
    fresh = create_tables_from_template()
    made = processor.aws.client
    ecs = EveryTaskVersioned({arn: 7 for arn in [*first.tasks, *second.tasks, first.instance, second.instance]})
    monkeypatch.setattr(processor.aws, "client", lambda service, **kw: ecs if service == "ecs" else made(service, **kw))
    properties = properties_file(tmp_path, fresh)
    code, out = run("reconcile", "--all-clusters", "--repair", "--properties", str(properties), "--output", "json")
    assert code == 0, out
    report = json.loads(out)
    assert {first.arn, second.arn} <= {c["cluster"] for c in report["clusters"]}
    for cluster in (first, second):
        for arn in cluster.tasks:
            item = dynamodb().get_item(TableName=fresh["task"], Key={"taskArn": {"S": arn}}, ConsistentRead=True)
            assert item["Item"]["version"] == {"N": "7"} and item["Item"]["item_source"] == {"S": "ecs-api"}
        key = {"containerInstanceArn": {"S": cluster.instance}}
        assert dynamodb().get_item(TableName=fresh["instance"], Key=key)["Item"]["version"] == {"N": "7"}
    code, out = run("reconcile", "--all-clusters", "--properties", str(properties))
    assert code == 0, "after the seeding nothing drifts"


def test_cluster_and_all_clusters_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["reconcile"], ["reconcile", "--cluster", "c", "--all-clusters"]):
        with pytest.raises(SystemExit) as exited:
            run(*argv)
        assert exited.value.code == 2
    assert "--all-clusters" in capsys.readouterr().err


MEMBER = "444455556666"


def member_clients(region: str) -> tuple[Any, Any]:
    """ECS and EC2 clients acting in the member account: moto keys its resources by the account of the role
    the credentials were assumed into."""
    import boto3

    from processor.ops.member import member_role_arn

    sts = client("sts")
    role = member_role_arn("aws", MEMBER, "ecs-state-member-read")
    credentials = sts.assume_role(RoleArn=role, RoleSessionName="test-member")["Credentials"]
    session = boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=region,
    )
    return session.client("ecs"), session.client("ec2")


def test_reconcile_reads_another_accounts_cluster_through_its_read_role_and_repairs_the_central_tables(
    frozen_tasks: None, tables: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cluster named like one of the caller's own, in a member account and another region: named as
    ACCOUNT/REGION/NAME (resolved against the catalogue), ECS is read in that account through the assumed role,
    and ``--repair`` writes the central tables. moto's ECS gives no versions: the member's real replies are
    wrapped to add them (as ``VersionedEcs`` does), to exercise the repair."""
    from processor.core.catalog import catalog_put, parse_cluster_arn
    from processor.core.schema import catalog_table_spec
    from processor.ops import member

    name = f"shared-{uuid.uuid4().hex[:8]}"
    own = Cluster(tasks=1, name=name)  # the same name in the caller's account
    member_ecs, member_ec2 = member_clients("eu-west-1")
    remote = Cluster(tasks=2, name=name, ecs=member_ecs, ec2=member_ec2)
    assert remote.arn.split(":")[3:5] == ["eu-west-1", MEMBER] and all(MEMBER in arn for arn in remote.tasks)
    catalogue = f"catalog-{uuid.uuid4().hex[:8]}"
    dynamodb().create_table(**catalog_table_spec(catalogue))
    for arn in (own.arn, remote.arn):
        ref = parse_cluster_arn(arn)
        assert ref is not None
        dynamodb().put_item(**catalog_put(catalogue, ref, "2026-11-29T10:00:00Z", 1_795_000_000_000))
    props = properties_file(tmp_path, tables)
    with props.open("a", encoding="utf-8") as handle:
        handle.write(f"ecsState.catalogTable = {catalogue}\n")
    stored, missing = remote.tasks
    put_task(tables["task"], remote.arn, stored, "RUNNING", 1)
    put_instance(tables["instance"], remote.arn, remote.instance, "ACTIVE", 1)

    with pytest.raises(ReadError, match="matches 2 clusters"):
        run("reconcile", "--cluster", name, "--properties", str(props))
    code, out = run(
        "reconcile", "--cluster", f"{MEMBER}/eu-west-1/{name}", "--output", "json", "--properties", str(props)
    )
    report = json.loads(out)
    assert code == 1 and report["cluster"] == remote.arn
    assert {(f["arn"], f["state"]) for f in report["findings"] if f["state"] != "unversioned"} == {(missing, "missing")}

    assumed: list[str | None] = []
    real = member.ecs_for_cluster

    def versioned(cluster: str, role: str) -> tuple[Any, str | None]:
        ecs, role_arn = real(cluster, role)
        assumed.append(role_arn)
        wrapper = VersionedEcs({stored: 2, missing: 3, remote.instance: 1})
        wrapper._ecs = ecs
        return wrapper, role_arn

    monkeypatch.setattr(member, "ecs_for_cluster", versioned)
    code, out = run("reconcile", "--cluster", remote.arn, "--repair", "--output", "json", "--properties", str(props))
    report = json.loads(out)
    assert assumed == [f"arn:aws:iam::{MEMBER}:role/ecs-state-member-read"]
    assert code == 0 and report["unresolved"] == 0
    assert {(r["arn"], r["result"]) for r in report["repairs"]} == {(stored, "repaired"), (missing, "repaired")}
    item = dynamodb().get_item(TableName=tables["task"], Key={"taskArn": {"S": missing}}, ConsistentRead=True)
    assert item["Item"]["version"] == {"N": "3"} and item["Item"]["clusterArn"] == {"S": remote.arn}
