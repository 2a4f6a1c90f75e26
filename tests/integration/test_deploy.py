"""deploy/ecs-state.yaml, the core stack: every template in deploy/ is cfn-lint clean, and the core deployed into
moto's CloudFormation (real moto server over HTTP) creates the stream, the rules with their targets, the tables
(the cluster catalogue too), the roles and policies, and exports what the workers stack reads. With
StateTables=existing it adopts state tables that exist already (made as AWS's documented Lambda makes them) and
creates none: every policy and output names those tables, and ``ecs-state setup`` under the SetupPolicy brings them
to the schema. The workers, alarms and dashboard are test_deploy_workers.py; the organisation, test_deploy_org.py.

moto's CloudFormation does not do everything the template asks. Each gap has its own test below that (a) shows the
gap on the deployed stack, so the test fails the day moto learns the feature (then check the deployed resource
instead), and (b) checks the template text for the part moto cannot check:
- AWS::SQS::QueuePolicy and AWS::Events::EventBusPolicy are not supported at all (moto warns and skips them);
- AWS::DynamoDB::Table: PointInTimeRecoverySpecification and TimeToLiveSpecification are ignored, and so is a
  DeletionPolicy (RetainExceptOnCreate: kept on delete, removed when the create rolls back);
- AWS::Kinesis::Stream: StreamModeDetails (ON_DEMAND) and StreamEncryption are ignored;
- the template's Rules are not evaluated.
moto's EventBridge implements neither TestEventPattern nor delivery to Kinesis targets (and real EventBridge
refuses PutEvents with an ``aws.*`` source anyway), so the rules are checked by their exact patterns and targets;
the EventBridge -> Kinesis hop itself is not exercised here.
"""

from __future__ import annotations

import fnmatch
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from cfn_template import TEMPLATE, TEMPLATES, deploy, load_template, without_unknown_keys
from cfn_template import as_list as _as_list
from cfn_template import core_params as _params
from cfn_template import document as _document
from cfn_template import policy_document as _policy_document
from cfn_template import statements as _statements
from cfnlint.api import ManualArgs, lint_file

from processor.aws import client
from processor.config import Settings, load_settings, parse_properties
from processor.core.schema import cluster_part, cluster_parts, table_specs
from processor.ops.setup_tables import ensure_tables
from processor.worker.preflight import check_required

PROPERTIES_OUTPUTS = {
    "StreamName",
    "StreamArn",
    "TaskTable",
    "InstanceTable",
    "DeadLetterTable",
    "ApplicationName",
    "RegionName",
    "WorkerPolicyArn",
    "CatalogTable",
}


@pytest.fixture(scope="module")
def stack(moto_server: Any) -> dict[str, Any]:
    """Default parameters except names: ON_DEMAND, POLLING, no TTL."""
    suffix = uuid.uuid4().hex[:8]
    result = deploy(f"ecs-state-{suffix}", _params(suffix))
    result["params"] = _params(suffix)
    return result


@pytest.fixture(scope="module")
def provisioned_stack(moto_server: Any) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    params = _params(
        suffix,
        StreamMode="PROVISIONED",
        ShardCount="3",
        StreamRetentionHours="48",
        RetrievalMode="FANOUT",
        TaskExpiry="true",
    )
    result = deploy(f"ecs-state-{suffix}", params)
    result["params"] = params
    return result


AWS_PROPERTIES = Path(__file__).resolve().parents[2] / "properties" / "aws.properties"


# ---------------------------------------------------------------------------------------------- lint
@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_cfn_lint_passes_including_informational_checks(template: Path) -> None:
    matches = lint_file(
        template, config=ManualArgs(include_checks=["I"], regions=["us-east-1", "eu-west-1", "ap-southeast-2"])
    )
    assert not matches, "\n".join(str(m) for m in matches)


def test_deploy_md_documents_every_parameter_of_every_template() -> None:
    rows = [r for r in (TEMPLATE.parents[1] / "docs" / "deploy.md").read_text(encoding="utf-8").splitlines()]
    documented = {name for r in rows if r.startswith("| `") for name in re.findall(r"`(\w+)`", r.split(" | ")[0])}
    for template in TEMPLATES:
        missing = set(load_template(template)["Parameters"]) - documented
        assert not missing, f"docs/deploy.md does not document {template.name}'s {sorted(missing)}"


def test_cfn_lint_does_catch_a_broken_template(tmp_path: Path) -> None:
    """The lint test can fail: drop the task table's cluster_part attribute definition the index needs."""
    broken = TEMPLATE.read_text(encoding="utf-8").replace(
        "        - {AttributeName: cluster_part, AttributeType: S}\n", "", 1
    )
    assert broken != TEMPLATE.read_text(encoding="utf-8")
    path = tmp_path / "broken.yaml"
    path.write_text(broken, encoding="utf-8")
    assert lint_file(path, config=ManualArgs(regions=["us-east-1"]))


# --------------------------------------------------------------------------------------- deployed stack
def test_outputs_name_everything_the_properties_file_needs(stack: dict[str, Any]) -> None:
    outputs, params = stack["outputs"], stack["params"]
    assert PROPERTIES_OUTPUTS <= set(outputs)
    assert outputs["StreamName"] == params["StreamName"]
    assert outputs["StreamArn"] == f"arn:aws:kinesis:us-east-1:123456789012:stream/{params['StreamName']}"
    assert outputs["TaskTable"] == params["TaskTableName"]
    assert outputs["InstanceTable"] == params["InstanceTableName"]
    assert outputs["DeadLetterTable"] == params["DeadLetterTableName"]
    assert outputs["ApplicationName"] == params["ApplicationName"]
    assert outputs["RegionName"] == "us-east-1"
    assert outputs["RetrievalMode"] == "POLLING"
    client("iam").get_policy(PolicyArn=outputs["WorkerPolicyArn"])
    client("iam").get_policy(PolicyArn=outputs["OperatorPolicyArn"])


def test_stream_exists(stack: dict[str, Any], provisioned_stack: dict[str, Any]) -> None:
    kinesis = client("kinesis")
    summary = kinesis.describe_stream_summary(StreamName=stack["outputs"]["StreamName"])["StreamDescriptionSummary"]
    assert summary["StreamStatus"] == "ACTIVE"
    assert summary["StreamARN"] == stack["outputs"]["StreamArn"]
    assert summary["RetentionPeriodHours"] == 24
    provisioned = kinesis.describe_stream_summary(StreamName=provisioned_stack["outputs"]["StreamName"])[
        "StreamDescriptionSummary"
    ]
    assert provisioned["OpenShardCount"] == 3
    assert provisioned["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    assert provisioned["RetentionPeriodHours"] == 48


@pytest.mark.parametrize(
    "logical_id, detail_type, key_path, queue",
    [
        ("TaskStateRule", "ECS Task State Change", "$.detail.taskArn", "TaskEventsDeadLetterQueue"),
        (
            "InstanceStateRule",
            "ECS Container Instance State Change",
            "$.detail.containerInstanceArn",
            "InstanceEventsDeadLetterQueue",
        ),
    ],
)
def test_rule_sends_its_detail_type_to_the_stream_keyed_by_arn(
    stack: dict[str, Any], logical_id: str, detail_type: str, key_path: str, queue: str
) -> None:
    events, sqs, iam = client("events"), client("sqs"), client("iam")
    name = stack["resources"][logical_id]
    rule = events.describe_rule(Name=name)
    assert rule["State"] == "ENABLED"
    assert json.loads(rule["EventPattern"]) == {"source": ["aws.ecs"], "detail-type": [detail_type]}
    (target,) = events.list_targets_by_rule(Rule=name)["Targets"]
    assert target["Arn"] == stack["outputs"]["StreamArn"]
    assert target["KinesisParameters"] == {"PartitionKeyPath": key_path}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}
    queue_url = stack["resources"][queue]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert target["DeadLetterConfig"] == {"Arn": queue_arn}
    role_name = stack["resources"]["EventBridgeToKinesisRole"]
    assert target["RoleArn"] == iam.get_role(RoleName=role_name)["Role"]["Arn"]


def test_eventbridge_role_may_only_put_into_the_stream(stack: dict[str, Any]) -> None:
    iam = client("iam")
    role_name = stack["resources"]["EventBridgeToKinesisRole"]
    trust = iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"]
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    (policy_name,) = iam.list_role_policies(RoleName=role_name)["PolicyNames"]
    document = _document(iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"])
    (grant,) = document["Statement"]
    assert sorted(grant["Action"]) == ["kinesis:PutRecord", "kinesis:PutRecords"]
    assert grant["Resource"] == stack["outputs"]["StreamArn"]


def _comparable(table: dict[str, Any]) -> dict[str, Any]:
    """Keys, attribute types and indexes of a CreateTable spec or a described table, order-free."""
    return {
        "KeySchema": table["KeySchema"],
        "AttributeDefinitions": sorted((a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]),
        "GlobalSecondaryIndexes": sorted(
            (i["IndexName"], repr(i["KeySchema"]), repr(i["Projection"]))
            for i in table.get("GlobalSecondaryIndexes") or []
        ),
    }


def test_the_template_tables_are_the_schema_of_core_schema_py() -> None:
    """One schema: the template's three tables are what ``ecs-state setup`` creates (core/schema.py)."""
    resources = load_template()["Resources"]
    specs = table_specs("t", "i", "d")
    for spec, logical_id in zip(specs, ("TaskTable", "InstanceTable", "DeadLetterTable")):
        props = resources[logical_id]["Properties"]
        assert props["BillingMode"] == spec["BillingMode"] == "PAY_PER_REQUEST"
        assert _comparable(props) == _comparable(spec), logical_id


def test_deployed_tables_have_the_schema_keys_and_indexes(stack: dict[str, Any]) -> None:
    ddb = client("dynamodb")
    outputs = stack["outputs"]
    specs = table_specs(outputs["TaskTable"], outputs["InstanceTable"], outputs["DeadLetterTable"])
    for spec in specs:
        described = ddb.describe_table(TableName=spec["TableName"])["Table"]
        assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        assert _comparable(described) == _comparable(spec), spec["TableName"]


def test_the_gsi_answers_the_readside_query(stack: dict[str, Any]) -> None:
    """Items with the processor's derived index keys land in cluster-index the way the read side queries it."""
    ddb, table = client("dynamodb"), stack["outputs"]["TaskTable"]
    cluster = "arn:aws:ecs:us-east-1:123456789012:cluster/gsi"
    for i, status in enumerate(["RUNNING", "RUNNING", "STOPPED"]):
        arn = f"arn:aws:ecs:us-east-1:123456789012:task/gsi/{i}"
        ddb.put_item(
            TableName=table,
            Item={
                "taskArn": {"S": arn},
                "clusterArn": {"S": cluster},
                "lastStatus": {"S": status},
                "version": {"N": "1"},
                "cluster_part": {"S": cluster_part(cluster, arn)},
            },
        )
    running = [
        it
        for part in cluster_parts(cluster)
        for it in ddb.query(
            TableName=table,
            IndexName="cluster-index",
            KeyConditionExpression="cluster_part = :c",
            FilterExpression="lastStatus = :s",
            ExpressionAttributeValues={":c": {"S": part}, ":s": {"S": "RUNNING"}},
        )["Items"]
    ]
    assert sorted(it["taskArn"]["S"].rsplit("/", 1)[1] for it in running) == ["0", "1"]
    assert set(running[0]) == {"taskArn", "cluster_part", "lastStatus"}  # keys and the projected status


def test_reader_policy_allows_point_reads_and_queries_of_the_state_tables_only(stack: dict[str, Any]) -> None:
    outputs = stack["outputs"]
    table_arn = "arn:aws:dynamodb:us-east-1:123456789012:table/{}".format
    found = _statements(_policy_document(outputs["ReaderPolicyArn"]))
    assert set(found) == {"ReadState", "ListInstances", "ReadCatalog"}
    statement, scan = found["ReadState"], found["ListInstances"]
    assert scan["Action"] == "dynamodb:Scan" and scan["Resource"] == table_arn(outputs["InstanceTable"])
    assert statement["Effect"] == "Allow"
    assert sorted(statement["Action"]) == ["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:Query"]
    assert sorted(statement["Resource"]) == sorted(
        [
            table_arn(outputs["TaskTable"]),
            table_arn(outputs["TaskTable"]) + "/index/*",
            table_arn(outputs["InstanceTable"]),
            table_arn(outputs["InstanceTable"]) + "/index/*",
        ]
    )


@pytest.mark.parametrize("mode", ["create", "existing"])
def test_the_cluster_catalogue_is_created_in_both_modes_and_each_policy_grants_what_its_user_needs(
    mode: str, stack: dict[str, Any], existing_stack: dict[str, Any]
) -> None:
    deployed = stack if mode == "create" else existing_stack
    outputs, name = deployed["outputs"], deployed["params"]["CatalogTableName"]
    assert outputs["CatalogTable"] == name
    described = client("dynamodb").describe_table(TableName=name)["Table"]
    assert described["KeySchema"] == [{"AttributeName": "clusterArn", "KeyType": "HASH"}]
    assert described["AttributeDefinitions"] == [{"AttributeName": "clusterArn", "AttributeType": "S"}]
    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    arn = f"arn:aws:dynamodb:us-east-1:123456789012:table/{name}"
    wanted = {
        "WorkerPolicyArn": {"dynamodb:PutItem", "dynamodb:DescribeTable"},
        "ReaderPolicyArn": {"dynamodb:Scan"},
        "OperatorPolicyArn": {"dynamodb:Scan"},
        "SetupPolicyArn": {"dynamodb:DescribeTable", "dynamodb:CreateTable"},
    }
    for output, actions in wanted.items():
        granted = _policy_document(outputs[output])["Statement"]
        missing = {a for a in actions if not _allowed(granted, a, arn)}
        assert not missing, f"{output} lacks {missing} on the catalogue"
    assert not _allowed(_policy_document(outputs["ReaderPolicyArn"])["Statement"], "dynamodb:PutItem", arn)


def _worker_statements(stack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return _statements(_policy_document(stack["outputs"]["WorkerPolicyArn"]))


def test_worker_policy_grants_kcl_and_our_tables_and_nothing_wider(stack: dict[str, Any]) -> None:
    outputs, app = stack["outputs"], stack["params"]["ApplicationName"]
    table_arn = "arn:aws:dynamodb:us-east-1:123456789012:table/{}".format
    statements = _worker_statements(stack)

    read = statements["ReadStream"]
    assert read["Effect"] == "Allow" and read["Resource"] == outputs["StreamArn"]
    assert set(read["Action"]) == {
        "kinesis:DescribeStreamSummary",
        "kinesis:ListShards",
        "kinesis:GetShardIterator",
        "kinesis:GetRecords",
    }

    kcl = statements["KclTables"]
    assert sorted(_as_list(kcl["Resource"])) == [table_arn(app), table_arn(app + "-*")]
    assert {
        "dynamodb:CreateTable",
        "dynamodb:DescribeTable",
        "dynamodb:UpdateTable",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Scan",
    } <= set(kcl["Action"])
    assert "dynamodb:DeleteTable" not in kcl["Action"]
    assert sorted(_as_list(statements["KclTableIndexes"]["Resource"])) == [
        table_arn(app + "-*/index/*"),
        table_arn(app + "/index/*"),
    ]

    # which actions: tests/integration/test_least_privilege.py compares them with the calls the processor makes
    state, dead = statements["WriteState"], statements["WriteDeadLetters"]
    assert sorted(state["Resource"]) == sorted(table_arn(outputs[k]) for k in ("TaskTable", "InstanceTable"))
    assert dead["Resource"] == table_arn(outputs["DeadLetterTable"])
    assert "QueryTaskIndex" not in statements

    metrics = statements["KclMetrics"]
    assert metrics["Action"] == "cloudwatch:PutMetricData"
    assert metrics["Condition"] == {"StringLike": {"cloudwatch:namespace": [app, app + "-*"]}}

    for sid, statement in statements.items():
        assert not any(str(a).endswith("*") for a in _as_list(statement["Action"])), sid
        if sid != "KclMetrics":  # PutMetricData has no resource type; the namespace condition narrows it
            assert "*" not in _as_list(statement["Resource"]), sid


def test_fan_out_is_allowed_only_when_chosen(stack: dict[str, Any], provisioned_stack: dict[str, Any]) -> None:
    polling, fanout = _worker_statements(stack), _worker_statements(provisioned_stack)
    for sid in ("FanOutRegisterConsumer", "FanOutReadConsumer"):
        assert polling[sid]["Effect"] == "Deny"
        assert fanout[sid]["Effect"] == "Allow"
    assert fanout["FanOutReadConsumer"]["Resource"] == provisioned_stack["outputs"]["StreamArn"] + "/consumer/*"
    assert set(fanout["FanOutReadConsumer"]["Action"]) == {"kinesis:DescribeStreamConsumer", "kinesis:SubscribeToShard"}


def test_operator_policy_reads_tables_and_ecs(stack: dict[str, Any]) -> None:
    statements = _statements(_policy_document(stack["outputs"]["OperatorPolicyArn"]))
    assert {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:BatchGetItem"} <= set(statements["ReadTables"]["Action"])
    assert not [a for a in statements["ReadTables"]["Action"] if "Put" in a or "Delete" in a or "Update" in a]
    assert set(statements["ReadEcs"]["Action"]) == {
        "ecs:DescribeClusters",
        "ecs:ListTasks",
        "ecs:DescribeTasks",
        "ecs:ListContainerInstances",
        "ecs:DescribeContainerInstances",
    }
    clear = statements["ClearReplayedDeadLetters"]
    assert clear["Action"] == "dynamodb:DeleteItem"
    assert clear["Resource"] == f"arn:aws:dynamodb:us-east-1:123456789012:table/{stack['outputs']['DeadLetterTable']}"


# ----------------------------------------------------------------------------- worker settings, Fargate
def test_worker_properties_output_appended_to_the_template_is_a_complete_properties_file(
    stack: dict[str, Any], tmp_path: Path
) -> None:
    """docs/deploy.md's step: a copy of properties/aws.properties with the WorkerProperties output appended; the last
    value of a key wins (as for Java's Properties), so the stack's names replace the template's."""
    outputs = stack["outputs"]
    path = tmp_path / "my.properties"
    path.write_text(
        AWS_PROPERTIES.read_text(encoding="utf-8") + "\n" + outputs["WorkerProperties"] + "\n", encoding="utf-8"
    )
    props = parse_properties(path.read_text(encoding="utf-8"))
    assert {k: props[k] for k in ("streamName", "applicationName", "regionName", "retrievalMode")} == {
        "streamName": outputs["StreamName"],
        "applicationName": outputs["ApplicationName"],
        "regionName": outputs["RegionName"],
        "retrievalMode": outputs["RetrievalMode"],
    }
    assert check_required(props, str(path)) == []
    assert props["ecsState.catalogTable"] == outputs["CatalogTable"]
    settings = load_settings(without_unknown_keys(path), env={})
    assert (settings.task_table, settings.instance_table, settings.dead_letter_table) == (
        outputs["TaskTable"],
        outputs["InstanceTable"],
        outputs["DeadLetterTable"],
    )


# ------------------------------------------------------------------------------------------ moto's gaps (base)
def test_moto_skips_the_queue_policy_so_the_template_is_checked_instead(stack: dict[str, Any]) -> None:
    sqs = client("sqs")
    for queue in ("TaskEventsDeadLetterQueue", "InstanceEventsDeadLetterQueue"):
        attributes = sqs.get_queue_attributes(QueueUrl=stack["resources"][queue], AttributeNames=["All"])
        assert "Policy" not in attributes["Attributes"], "moto now applies AWS::SQS::QueuePolicy: check it here"
    assert "DeadLetterQueuePolicy" not in stack["resources"]

    policy = load_template()["Resources"]["DeadLetterQueuePolicy"]
    assert policy["Type"] == "AWS::SQS::QueuePolicy"
    assert policy["Properties"]["Queues"] == [
        {"Ref": "TaskEventsDeadLetterQueue"},
        {"Ref": "InstanceEventsDeadLetterQueue"},
    ]
    grants = {
        (s["Resource"]["Fn::GetAtt"][0], s["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::GetAtt"][0])
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow"
        and s["Action"] == "sqs:SendMessage"
        and s["Principal"] == {"Service": "events.amazonaws.com"}
    }
    assert grants == {
        ("TaskEventsDeadLetterQueue", "TaskStateRule"),
        ("InstanceEventsDeadLetterQueue", "InstanceStateRule"),
    }


def test_moto_ignores_pitr_and_ttl_so_the_template_is_checked_instead(provisioned_stack: dict[str, Any]) -> None:
    ddb, outputs = client("dynamodb"), provisioned_stack["outputs"]
    for key in ("TaskTable", "InstanceTable", "DeadLetterTable"):
        backups = ddb.describe_continuous_backups(TableName=outputs[key])["ContinuousBackupsDescription"]
        assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "DISABLED", (
            "moto now applies PointInTimeRecoverySpecification: check ENABLED here"
        )
    ttl = ddb.describe_time_to_live(TableName=outputs["TaskTable"])["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "DISABLED", "moto now applies TimeToLiveSpecification: check it here"

    template = load_template()
    resources = template["Resources"]
    for logical_id in ("TaskTable", "InstanceTable", "DeadLetterTable", "CatalogTable"):
        assert resources[logical_id]["Properties"]["PointInTimeRecoverySpecification"] == {
            "PointInTimeRecoveryEnabled": True
        }
    # what holds data is kept when the stack is deleted, but not when its first create rolls back (then a retry
    # would fail on "already exists"); the stream is deleted with the stack (docs/deploy.md: teardown)
    kept = {k for k, r in resources.items() if r.get("DeletionPolicy") == "RetainExceptOnCreate"}
    assert kept == {
        "TaskTable",
        "InstanceTable",
        "DeadLetterTable",
        "CatalogTable",
        "TaskEventsDeadLetterQueue",
        "InstanceEventsDeadLetterQueue",
    }
    assert not {k for k, r in resources.items() if r.get("DeletionPolicy") == "Retain"}
    assert resources["EventStream"]["DeletionPolicy"] == "Delete"
    assert template["Conditions"]["ExpiryOn"] == {"Fn::Equals": [{"Ref": "TaskExpiry"}, "true"]}
    assert resources["TaskTable"]["Properties"]["TimeToLiveSpecification"] == {
        "Fn::If": ["ExpiryOn", {"AttributeName": "expires_at", "Enabled": True}, {"Ref": "AWS::NoValue"}]
    }
    assert template["Parameters"]["TaskExpiry"]["Default"] == "false"


def test_moto_ignores_stream_mode_and_encryption_so_the_template_is_checked_instead(stack: dict[str, Any]) -> None:
    summary = client("kinesis").describe_stream_summary(StreamName=stack["outputs"]["StreamName"])[
        "StreamDescriptionSummary"
    ]
    assert summary["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}, (
        "moto now applies StreamModeDetails: check ON_DEMAND here"
    )
    assert summary["EncryptionType"] == "NONE", "moto now applies StreamEncryption: check KMS here"

    template = load_template()
    stream = template["Resources"]["EventStream"]["Properties"]
    assert template["Parameters"]["StreamMode"]["Default"] == "ON_DEMAND"
    assert stream["StreamModeDetails"] == {"StreamMode": {"Ref": "StreamMode"}}
    assert stream["ShardCount"] == {"Fn::If": ["Provisioned", {"Ref": "ShardCount"}, {"Ref": "AWS::NoValue"}]}
    assert stream["StreamEncryption"] == {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}


def test_parameter_defaults_follow_the_data_layout() -> None:
    parameters = load_template()["Parameters"]
    assert parameters["TaskTableName"]["Default"] == "ECSTaskState"
    assert parameters["InstanceTableName"]["Default"] == "ECSCtrInstanceState"
    assert parameters["DeadLetterTableName"]["Default"] == "ECSEventDeadLetters"
    assert parameters["RetrievalMode"]["Default"] == "POLLING"


def test_setup_creates_the_same_tables_as_the_template() -> None:
    """``ecs-state setup`` (processor/ops/setup_tables.py) and the template must agree on keys and index."""
    from processor.config import Settings
    from processor.core.schema import table_specs

    resources = load_template()["Resources"]
    specs = {
        spec["TableName"]: spec
        for spec in table_specs(Settings().task_table, Settings().instance_table, Settings().dead_letter_table)
    }
    for logical_id, name in (
        ("TaskTable", "ECSTaskState"),
        ("InstanceTable", "ECSCtrInstanceState"),
        ("DeadLetterTable", "ECSEventDeadLetters"),
    ):
        props, spec = resources[logical_id]["Properties"], specs[name]
        assert spec["KeySchema"] == props["KeySchema"], logical_id
        assert sorted(spec["AttributeDefinitions"], key=str) == sorted(props["AttributeDefinitions"], key=str)
        assert spec["BillingMode"] == props["BillingMode"]
        assert spec.get("GlobalSecondaryIndexes", []) == props.get("GlobalSecondaryIndexes", []), logical_id


# ------------------------------------------------------------------ adopting existing state tables
STATE_TABLE_RESOURCES = ("TaskTable", "InstanceTable")
POLICIES = ("WorkerPolicyArn", "OperatorPolicyArn", "ReaderPolicyArn", "SetupPolicyArn")


def _lambda_tables(params: dict[str, str]) -> None:
    """The two tables as AWS's documented Lambda has them made: hash key only, no index, no TTL."""
    ddb = client("dynamodb")
    for name, key in ((params["TaskTableName"], "taskArn"), (params["InstanceTableName"], "containerInstanceArn")):
        ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )


@pytest.fixture(scope="module")
def existing_stack(moto_server: Any) -> dict[str, Any]:
    """StateTables=existing over the documented Lambda's two tables."""
    suffix = uuid.uuid4().hex[:8]
    params = _params(suffix, StateTables="existing")
    _lambda_tables(params)
    result = deploy(f"ecs-state-{suffix}", params)
    result["params"] = params
    return result


def _named(document: dict[str, Any], stack: dict[str, Any]) -> str:
    """A policy document with the stack's own names (tables, stream, application, queues) replaced by
    placeholders, so that the documents of two stacks compare."""
    text = json.dumps(document, sort_keys=True)
    params = stack["params"]
    queues = [
        stack["resources"][q].rsplit("/", 1)[1] for q in ("TaskEventsDeadLetterQueue", "InstanceEventsDeadLetterQueue")
    ]
    names = {
        params["TaskTableName"]: "<tasks>",
        params["InstanceTableName"]: "<instances>",
        params["DeadLetterTableName"]: "<dead>",
        params["CatalogTableName"]: "<catalogue>",
        params["StreamName"]: "<stream>",
        params["ApplicationName"]: "<app>",
        queues[0]: "<task-queue>",
        queues[1]: "<instance-queue>",
    }
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(name, names[name])
    return text


def test_the_default_is_to_create_the_state_tables(stack: dict[str, Any]) -> None:
    assert load_template()["Parameters"]["StateTables"]["Default"] == "create"
    assert stack["resource_types"]["TaskTable"] == stack["resource_types"]["InstanceTable"] == "AWS::DynamoDB::Table"


def test_with_existing_tables_the_stack_creates_no_state_table_and_leaves_them_as_they_were(
    existing_stack: dict[str, Any],
) -> None:
    types = existing_stack["resource_types"]
    assert not set(STATE_TABLE_RESOURCES) & set(types)
    assert sorted(k for k, t in types.items() if t == "AWS::DynamoDB::Table") == ["CatalogTable", "DeadLetterTable"]
    ddb, params = client("dynamodb"), existing_stack["params"]
    for name in (params["TaskTableName"], params["InstanceTableName"]):  # (before the setup test below runs)
        described = ddb.describe_table(TableName=name)["Table"]
        assert not described.get("GlobalSecondaryIndexes") and len(described["AttributeDefinitions"]) == 1, name
    template = load_template()
    assert all(template["Resources"][r]["Condition"] == "CreateStateTables" for r in STATE_TABLE_RESOURCES)
    assert "Condition" not in template["Resources"]["DeadLetterTable"]


def test_with_existing_tables_every_policy_names_the_existing_tables_and_their_indexes(
    stack: dict[str, Any], existing_stack: dict[str, Any]
) -> None:
    """Each policy grants on the adopted tables exactly what it grants on tables the stack creates."""
    for output in POLICIES:
        created = _named(_policy_document(stack["outputs"][output]), stack)
        adopted = _named(_policy_document(existing_stack["outputs"][output]), existing_stack)
        assert adopted == created, output
    table_arn = "arn:aws:dynamodb:us-east-1:123456789012:table/{}".format
    params = existing_stack["params"]
    tasks, instances = table_arn(params["TaskTableName"]), table_arn(params["InstanceTableName"])
    reader = _statements(_policy_document(existing_stack["outputs"]["ReaderPolicyArn"]))["ReadState"]
    assert sorted(reader["Resource"]) == sorted([tasks, tasks + "/index/*", instances, instances + "/index/*"])
    worker = _worker_statements(existing_stack)
    assert sorted(worker["WriteState"]["Resource"]) == sorted([tasks, instances])
    operator = _statements(_policy_document(existing_stack["outputs"]["OperatorPolicyArn"]))
    assert {tasks, tasks + "/index/*", instances, instances + "/index/*"} <= set(operator["ReadTables"]["Resource"])
    assert sorted(operator["RepairFromEcsApi"]["Resource"]) == sorted([tasks, instances])


def test_the_policy_comparison_can_fail(stack: dict[str, Any], existing_stack: dict[str, Any]) -> None:
    document = _policy_document(existing_stack["outputs"]["ReaderPolicyArn"])
    document["Statement"][0]["Resource"] = document["Statement"][0]["Resource"][:2]  # the instance table dropped
    assert _named(document, existing_stack) != _named(_policy_document(stack["outputs"]["ReaderPolicyArn"]), stack)


def _allowed(statements: list[dict[str, Any]], action: str, resource: str) -> bool:
    return any(
        s["Effect"] == "Allow"
        and action in _as_list(s["Action"])
        and any(fnmatch.fnmatchcase(resource, pattern) for pattern in _as_list(s["Resource"]))
        for s in statements
    )


def test_setup_on_the_adopted_tables_brings_them_to_the_schema_under_the_setup_policy(
    existing_stack: dict[str, Any],
) -> None:
    """The migration order (deploy with StateTables=existing, then `ecs-state setup`): setup finds the stack's
    dead-letter table there, adds the read indexes and the TTL, and makes only calls the SetupPolicy grants (each
    call recorded as botocore sends it to the moto server, which itself enforces no IAM)."""
    outputs, params = existing_stack["outputs"], existing_stack["params"]
    settings = Settings(
        task_table=params["TaskTableName"],
        instance_table=params["InstanceTableName"],
        dead_letter_table=params["DeadLetterTableName"],
        catalog_table=params["CatalogTableName"],
        task_retention_hours=72,
    )
    ddb = client("dynamodb")
    calls: list[tuple[str, str]] = []
    ddb.meta.events.register(
        "before-call.dynamodb.*",
        lambda model, params, **_: calls.append(
            (f"dynamodb:{model.name}", json.loads(params["body"] or "{}").get("TableName", ""))
        ),
    )
    changes = ensure_tables(settings, client=ddb)
    assert any("adding index cluster-index" in c for c in changes) and any("TTL" in c for c in changes)
    assert not any("created table" in c for c in changes)
    for spec in table_specs(settings.task_table, settings.instance_table, settings.dead_letter_table):
        described = client("dynamodb").describe_table(TableName=spec["TableName"])["Table"]
        assert _comparable(described) == _comparable(spec), spec["TableName"]

    statements = _policy_document(outputs["SetupPolicyArn"])["Statement"]
    table_arn = "arn:aws:dynamodb:us-east-1:123456789012:table/{}".format
    assert {action for action, _ in calls} >= {
        "dynamodb:DescribeTable",
        "dynamodb:UpdateTable",
        "dynamodb:UpdateTimeToLive",
    }
    refused = sorted({(a, t) for a, t in calls if not _allowed(statements, a, table_arn(t))})
    assert not refused, f"setup calls the SetupPolicy does not grant: {refused}"
    assert not _allowed(statements, "dynamodb:DeleteTable", table_arn(settings.task_table))
    assert not _allowed(statements, "dynamodb:UpdateTable", table_arn("some-other-table"))
    assert ensure_tables(settings, client=client("dynamodb")) == []  # a second run changes nothing


def test_moto_ignores_the_expiry_rule_so_the_template_is_checked_instead(moto_server: Any) -> None:
    """TaskExpiry=true cannot reach a table the stack does not create: the template refuses the pair."""
    suffix = uuid.uuid4().hex[:8]
    params = _params(suffix, StateTables="existing", TaskExpiry="true")
    _lambda_tables(params)
    assert deploy(f"ecs-state-{suffix}", params)["StackStatus"] == "CREATE_COMPLETE", (
        "moto now evaluates Rules: expect a refusal here"
    )
    rule = load_template()["Rules"]["ExpiryNeedsOwnTables"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "StateTables"}, "existing"]}
    assert rule["Assertions"][0]["Assert"] == {"Fn::Equals": [{"Ref": "TaskExpiry"}, "false"]}
