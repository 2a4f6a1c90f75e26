"""Least privilege, checked both ways: the AWS calls each role's code makes, recorded against moto with data in the
tables so that every call happens, are exactly what the template's policy for that role grants.

- Recorded: every boto3 call (botocore's ``before-parameter-build`` event, with the call's parameters,
  registered on each client the product builds through ``processor.aws.client``) and every call of the worker's
  thin DynamoDB client (the ``X-Amz-Target`` header and the body of each request it signs, ``DynamoDBHttp.sign``).
  Both are observers: the calls go to moto unchanged.
- Each call is an (IAM action, resource) pair; a resource is what the policies name: ``task`` / ``instance`` /
  ``dead_letter`` (the tables), ``<table>/index`` (a Query of an index), ``lease`` (KCL's lease table, the
  applicationName), ``stream``, ``queue``, ``ecs``.
- The grants are read from the template's policy statements (their ``Resource`` names resolved to the same kinds)
  and compared with the calls: a call not granted fails; a grant never called fails, unless it is in
  ``NOT_TRIGGERED`` with the reason it cannot happen here.
- The worker's own statements only: KCL's (its lease tables, the stream, its metrics) are the Java daemon's calls.
"""

from __future__ import annotations

import base64
import io
import json
import uuid
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any, Iterator

import pytest
from amazon_kclpy.messages import InitializeInput, ProcessRecordsInput, Record
from cfn_template import TEMPLATE, create_tables_from_template, load_template

import processor.aws
from processor.config import Settings
from processor.ops import cli
from processor.shard import dynamodb_http
from processor.shard.main import make_writer
from processor.shard.record_processor import ShardProcessor
from processor.shard.table_check import table_problems
from workshop.testing.factories import as_json, instance_arn, task_arn, task_event

Call = tuple[str, str]  # (IAM action, resource kind)

#: the IAM prefix of a botocore service whose signing name differs from it
IAM_PREFIX = {"monitoring": "cloudwatch"}
#: batch operations IAM authorises with the single operation's action (Amazon SQS Developer Guide, "Amazon SQS
#: batch actions": setting permissions for DeleteMessage sets them for DeleteMessageBatch; docs/field-notes.md)
BATCH_ACTION = {
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "sqs:SendMessageBatch": "sqs:SendMessage",
}
#: calls every identity may make (no IAM permission exists for them)
ALWAYS_ALLOWED = {("sts:GetCallerIdentity", "*")}
#: grants whose calls cannot be triggered here, each with the reason
NOT_TRIGGERED: dict[str, dict[Call, str]] = {
    "OperatorPolicy": {},
    "ReaderPolicy": {
        ("dynamodb:BatchGetItem", "instance"): "other code that reads the state (docs/reading.md) batch-reads "
        "container instances by ARN; the read commands do not",
        ("dynamodb:Query", "instance"): "the same: other code's queries of the instance table",
    },
}
NOT_TRIGGERED["OperatorPolicy"].update(NOT_TRIGGERED["ReaderPolicy"])  # the operator's ReadTables is the reader's


# ---------------------------------------------------------------------------------------------- the recorder
class Recorder:
    """Every AWS call made in this process, as (action, resource kind); table names are mapped to kinds."""

    def __init__(self, kinds: dict[str, str]) -> None:
        self.kinds = kinds
        self.calls: set[Call] = set()

    def table_kind(self, table: str, index: str | None = None) -> str:
        kind = self.kinds.get(table, f"unknown table {table}")
        return f"{kind}/index" if index else kind

    def note(self, action: str, params: dict[str, Any]) -> None:
        action = BATCH_ACTION.get(action, action)
        service = action.split(":")[0]
        if service == "dynamodb":
            if "RequestItems" in params:
                for table in params["RequestItems"]:
                    self.calls.add((action, self.table_kind(table)))
            elif "TableName" in params:
                self.calls.add((action, self.table_kind(params["TableName"], params.get("IndexName"))))
            else:
                self.calls.add((action, "*"))
        else:
            self.calls.add((action, {"kinesis": "stream", "sqs": "queue", "ecs": "ecs"}.get(service, "*")))

    def before_call(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        signing = model.service_model.signing_name
        self.note(f"{IAM_PREFIX.get(signing, signing)}:{model.name}", params)

    def clear(self) -> set[Call]:
        got, self.calls = self.calls, set()
        return got


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    rec = Recorder({})
    made = processor.aws.client

    def recorded_client(service: str, **kwargs: Any) -> Any:
        boto_client = made(service, **kwargs)
        boto_client.meta.events.register("before-parameter-build", rec.before_call)
        return boto_client

    def recorded_sign(self: Any, target: str, body: bytes, amz_date: str | None = None) -> dict[str, str]:
        rec.note(f"dynamodb:{target.rpartition('.')[2]}", json.loads(body))
        return real_sign(self, target, body, amz_date)

    real_sign = dynamodb_http.DynamoDBHttp.sign
    monkeypatch.setattr(processor.aws, "client", recorded_client)
    # (the commands import processor.aws.client when they run, or call aws.client: both see the recording one)
    monkeypatch.setattr(dynamodb_http.DynamoDBHttp, "sign", recorded_sign)
    yield rec


def test_the_recorder_sees_boto3_and_thin_client_calls(moto_server: Any, recorder: Recorder) -> None:
    tables = create_tables_from_template()
    recorder.kinds = {name: kind for kind, name in tables.items()}
    processor.aws.client("dynamodb").describe_table(TableName=tables["task"])
    with dynamodb_http.DynamoDBHttp.from_environment(endpoint_url=moto_server.endpoint) as thin:
        thin.put_item(
            {"TableName": tables["dead_letter"], "Item": {"shardId": {"S": "s"}, "sequenceNumber": {"S": "1"}}}
        )
    assert recorder.clear() == {("dynamodb:DescribeTable", "task"), ("dynamodb:PutItem", "dead_letter")}


# ------------------------------------------------------------------------------------------------ the grants
def policy_statements(logical_id: str) -> list[dict[str, Any]]:
    """The statements of a policy resource, wherever it is among the deploy/ templates."""
    for path in sorted(TEMPLATE.parent.glob("*.yaml")):
        resources = load_template_at(path)["Resources"]
        if logical_id in resources:
            return list(resources[logical_id]["Properties"]["PolicyDocument"]["Statement"])
    raise AssertionError(f"no {logical_id} in {TEMPLATE.parent}/*.yaml")


def load_template_at(path: Path) -> dict[str, Any]:
    return load_template() if path == TEMPLATE else _load(path)


def _load(path: Path) -> dict[str, Any]:
    import yaml
    from cfn_template import _CfnLoader

    return yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 (SafeLoader subclass)


def resource_kind(resource: Any) -> str:
    """The kind a statement's Resource names (see the module docstring)."""
    text = json.dumps(resource)
    index = "/index/*" in text
    for marker, kind in (
        ("TaskTableName", "task"),
        ("InstanceTableName", "instance"),
        ("DeadLetterTable", "dead_letter"),
        ("CatalogueTable", "catalogue"),
        ("EventStream", "stream"),
        ("EventsDeadLetterQueue", "queue"),
        (":ecs:", "ecs"),
    ):
        if marker in text:
            return f"{kind}/index" if index and kind in ("task", "instance") else kind
    if "${ApplicationName}-*" in text:
        return "kcl/index" if index else "kcl"
    if "${ApplicationName}" in text:
        return "lease/index" if index else "lease"
    return "*"


def grants(logical_id: str, sids: set[str] | None = None) -> set[Call]:
    """(action, kind) for every Allow statement of the policy (only ``sids`` when given)."""
    found: set[Call] = set()
    for statement in policy_statements(logical_id):
        if statement.get("Effect") != "Allow" or (sids is not None and statement.get("Sid") not in sids):
            continue
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        found |= {(action, resource_kind(r)) for action in actions for r in resources}
    return found


def compare(policy: str, called: set[Call], granted: set[Call]) -> None:
    """A call must match a grant exactly; a grant counts as used when its action was called on that table or on
    one of its indexes (IAM practice lists a table's ARN and its ``/index/*`` ARN together)."""
    called = called - ALWAYS_ALLOWED
    anywhere = {action for action, kind in granted if kind == "*"}  # actions IAM grants only on Resource "*"
    not_granted = sorted(c for c in called if c not in granted and c[0] not in anywhere)
    excused = NOT_TRIGGERED.get(policy, {})
    used = {(action, kind.removesuffix("/index")) for action, kind in called}
    used |= {(action, "*") for action, _ in called}
    never_called = sorted(g for g in granted if (g[0], g[1].removesuffix("/index")) not in used | set(excused))
    assert not not_granted, f"{policy} does not grant calls the code makes: {not_granted}"
    assert not never_called, f"{policy} grants what the code never calls (remove it, or say why): {never_called}"
    stale = sorted(set(excused) & used)
    assert not stale, f"NOT_TRIGGERED lists calls that did happen (drop them from it): {stale}"


# ---------------------------------------------------------------------------------------------- the worker
def _record(n: int, data: bytes, key: str) -> Record:
    return Record(
        {
            "sequenceNumber": f"{n:056d}",
            "subSequenceNumber": 0,
            "approximateArrivalTimestamp": 1_800_000_000_000,
            "partitionKey": key,
            "action": "record",
            "data": base64.b64encode(data).decode("ascii"),
        }
    )


class Checkpoints:
    def checkpoint(self, sequence_number: str | None = None, sub_sequence_number: int | None = None) -> None:
        pass


def run_worker(settings: Settings) -> None:
    """One shard from TRIM_HORIZON (so the stored versions are prefetched), as ``ecs-state-processor`` wires it:
    the start-up table check, a task, an instance, an older task version (skipped or refused), a poison record."""
    processor = ShardProcessor(
        settings,
        lambda shard_id: make_writer(settings, shard_id),
        startup=lambda writer: table_problems(settings, writer.client),
        sleep=lambda s: None,
    )
    checkpoints = Checkpoints()
    InitializeInput(
        {
            "shardId": "shardId-000000000000",
            "sequenceNumber": "TRIM_HORIZON",
            "subSequenceNumber": 0,
            "action": "initialize",
        }
    ).dispatch(checkpoints, processor)
    from workshop.testing.factories import instance_event

    records = [
        _record(1, as_json(task_event(task_arn(1), 5)), task_arn(1)),
        _record(2, as_json(instance_event(instance_arn(1), 3)), instance_arn(1)),
        _record(3, as_json(task_event(task_arn(2), 2)), task_arn(2)),
        _record(4, b"{not json", "poison"),
    ]
    ProcessRecordsInput({"records": records, "millisBehindLatest": 3_600_000, "action": "processRecords"}).dispatch(
        checkpoints, processor
    )
    from amazon_kclpy.messages import ShutdownRequestedInput

    ShutdownRequestedInput({"action": "shutdownRequested"}).dispatch(checkpoints, processor)


@pytest.fixture
def filled(moto_server: Any, tmp_path: Path) -> dict[str, Any]:
    """The template's tables with a task stored already (so the prefetch finds a version)."""
    tables = create_tables_from_template()
    settings = Settings(
        task_table=tables["task"],
        instance_table=tables["instance"],
        dead_letter_table=tables["dead_letter"],
        flush_interval_millis=0,
        write_retry_budget_millis=3000,
    )
    processor.aws.client("dynamodb").put_item(
        TableName=tables["task"], Item={"taskArn": {"S": task_arn(2)}, "version": {"N": "9"}}
    )
    return {"tables": tables, "settings": settings}


def test_the_worker_policy_grants_exactly_what_the_processor_calls(filled: dict[str, Any], recorder: Recorder) -> None:
    tables = filled["tables"]
    recorder.kinds = {name: kind for kind, name in tables.items()}
    run_worker(filled["settings"])
    called = recorder.clear()
    assert ("dynamodb:BatchGetItem", "task") in called, "the prefetch did not run: the test misses a call"
    assert ("dynamodb:PutItem", "dead_letter") in called, "the poison record was not dead-lettered"
    ours = {"task", "instance", "dead_letter", "catalogue", "task/index", "instance/index"}
    granted = {g for g in grants("WorkerPolicy") if g[1] in ours}
    compare("WorkerPolicy", called, granted)


# ---------------------------------------------------------------------------------- operator and reader
def _cli(*argv: str) -> int:
    with redirect_stdout(io.StringIO()):
        return cli.main(list(argv))


@pytest.fixture
def operated(filled: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """The worker has filled the tables; an ECS cluster runs the stored task's cluster; a lease table holds one
    lease; a queue holds one event EventBridge could not deliver; a stream takes redriven records."""
    run_worker(filled["settings"])
    tables = filled["tables"]
    application = f"app-{uuid.uuid4().hex[:8]}"
    ddb = processor.aws.client("dynamodb")
    ddb.create_table(
        TableName=application,
        KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName=application, Item={"leaseKey": {"S": "shardId-0"}, "leaseCounter": {"N": "1"}})
    cluster = ecs_cluster()
    stream = f"lp-{uuid.uuid4().hex[:8]}"
    kinesis = processor.aws.client("kinesis")
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
    sqs = processor.aws.client("sqs")
    queue = sqs.create_queue(QueueName=f"lp-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(task_event(task_arn(3), 1)))
    sqs.send_message(QueueUrl=queue, MessageBody="not an ECS event: redrive leaves it in the queue")
    properties = tmp_path / "operator.properties"
    properties.write_text(
        f"applicationName = {application}\nstreamName = {stream}\n"
        f"ecsState.taskTable = {tables['task']}\necsState.instanceTable = {tables['instance']}\n"
        f"ecsState.deadLetterTable = {tables['dead_letter']}\n",
        encoding="utf-8",
    )
    kinds = {name: kind for kind, name in tables.items()}
    kinds[application] = "lease"
    stored_cluster = task_event(task_arn(1), 5)["detail"]["clusterArn"]
    return {
        "p": str(properties),
        "cluster": stored_cluster,
        "ecs_cluster": cluster,
        "stream": stream,
        "queue": queue,
        "kinds": kinds,
    }


def ecs_cluster() -> str:
    """A moto ECS cluster with a registered container instance and a running task (as test_reconcile.py makes
    it), so that reconcile lists and describes both kinds."""
    ecs, ec2 = processor.aws.client("ecs"), processor.aws.client("ec2")
    name = f"lp-{uuid.uuid4().hex[:8]}"
    ecs.create_cluster(clusterName=name)
    instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]
    document = json.dumps({"instanceId": instance["InstanceId"], "region": "us-east-1", "accountId": "123456789012"})
    ecs.register_container_instance(cluster=name, instanceIdentityDocument=document)
    ecs.register_task_definition(family=name, containerDefinitions=[{"name": "app", "image": "busybox", "memory": 32}])
    ecs.run_task(cluster=name, taskDefinition=name, count=1)
    return name


READ_COMMANDS = ("tasks", "stopped", "why", "instances", "get")


def read_commands(o: dict[str, Any]) -> list[list[str]]:
    return [
        ["tasks", "--cluster", o["cluster"]],
        ["tasks", "--cluster", o["cluster"], "--at", "2027-01-01T00:00:00Z"],
        ["stopped", "--cluster", o["cluster"], "--since", "30d"],
        ["why", task_arn(1)],
        ["instances", "--cluster", o["cluster"]],
        ["get", task_arn(1)],
        ["get", instance_arn(1)],
    ]


def test_the_reader_policy_is_all_the_read_commands_need(operated: dict[str, Any], recorder: Recorder) -> None:
    recorder.kinds = operated["kinds"]
    for argv in read_commands(operated):
        assert _cli(*argv, "--properties", operated["p"]) in (0, 1), argv
    compare("ReaderPolicy", recorder.clear(), grants("ReaderPolicy"))


class Versioned:
    """The (recorded) ECS client with a ``version`` on every task and container instance it describes: moto's ECS
    gives none, and ``reconcile --repair`` stores only a versioned description (test_reconcile.py shows both)."""

    def __init__(self, ecs: Any) -> None:
        self._ecs = ecs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ecs, name)

    def describe_tasks(self, **request: Any) -> dict[str, Any]:
        reply: dict[str, Any] = self._ecs.describe_tasks(**request)
        for task in reply["tasks"]:
            task["version"] = 1
        return reply

    def describe_container_instances(self, **request: Any) -> dict[str, Any]:
        reply: dict[str, Any] = self._ecs.describe_container_instances(**request)
        for instance in reply["containerInstances"]:
            instance["version"] = 1
        return reply


def test_the_operator_policy_grants_exactly_what_the_operator_commands_call(
    operated: dict[str, Any], recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder.kinds = operated["kinds"]
    recorded = processor.aws.client
    monkeypatch.setattr(
        processor.aws,
        "client",
        lambda service, **kw: Versioned(recorded(service, **kw)) if service == "ecs" else recorded(service, **kw),
    )
    p, o = operated["p"], operated
    for argv in [
        *read_commands(o),
        ["dead-letters"],
        ["dead-letters", "--with-data"],
        ["dead-letters", "--shard", "shardId-000000000000"],
        ["reconcile", "--cluster", o["ecs_cluster"]],
        ["reconcile", "--cluster", o["ecs_cluster"], "--repair"],
        ["reconcile", "--all-clusters", "--repair"],
        ["status"],
        ["redrive", "queue", "--queue-url", o["queue"], "--stream-name", o["stream"]],
        ["redrive", "dead-letters", "--stream-name", o["stream"]],
    ]:
        assert _cli(*argv, "--properties", p) in (0, 1), argv
    compare("OperatorPolicy", recorder.clear(), grants("OperatorPolicy"))


# -------------------------------------------------------------------------------------------------- setup
def test_the_setup_policy_grants_exactly_what_setup_calls_on_adopted_tables(
    moto_server: Any, recorder: Recorder, tmp_path: Path
) -> None:
    """Tables as AWS's documented Lambda makes them (hash key only, no index, no TTL), with items written before:
    ``ecs-state setup --backfill`` adds the indexes, the TTL and the derived keys."""
    n = uuid.uuid4().hex[:8]
    names = {"task": f"lp-tasks-{n}", "instance": f"lp-instances-{n}", "dead_letter": f"lp-dead-{n}"}
    ddb = processor.aws.client("dynamodb")
    for kind, key in (("task", "taskArn"), ("instance", "containerInstanceArn")):
        ddb.create_table(
            TableName=names[kind],
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    ddb.put_item(TableName=names["task"], Item={**_lambda_task()})
    properties = tmp_path / "setup.properties"
    properties.write_text(
        f"ecsState.taskTable = {names['task']}\necsState.instanceTable = {names['instance']}\n"
        f"ecsState.deadLetterTable = {names['dead_letter']}\necsState.taskRetentionHours = 24\n",
        encoding="utf-8",
    )
    recorder.kinds = {name: kind for kind, name in names.items()}
    recorder.clear()
    assert _cli("setup", "--properties", str(properties), "--backfill") == 0
    called = recorder.clear()
    assert ("dynamodb:UpdateItem", "task") in called, "no item was backfilled: the test misses a call"
    compare("SetupPolicy", called, grants("SetupPolicy"))


def _lambda_task() -> dict[str, Any]:
    event = task_event(task_arn(40), 3)
    detail = event["detail"]
    return {
        "taskArn": {"S": detail["taskArn"]},
        "clusterArn": {"S": detail["clusterArn"]},
        "lastStatus": {"S": detail["lastStatus"]},
        "version": {"N": "3"},
        "createdAt": {"S": detail.get("createdAt", "2026-12-01T00:00:00Z")},
    }
