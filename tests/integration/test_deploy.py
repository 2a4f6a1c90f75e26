"""deploy/ecs-state.yaml: cfn-lint clean, and deployed into moto's CloudFormation (real moto server over HTTP) it
creates the stream, the rules with their targets, the tables, the roles and policies. With StateTables=existing it
adopts state tables that exist already (made as AWS's documented Lambda makes them) and creates none: every policy,
output and the task environment name those tables, and ``ecs-state setup`` under the SetupPolicy brings them to the
schema.

moto's CloudFormation does not do everything the template asks. Each gap has its own test below that (a) shows the
gap on the deployed stack, so the test fails the day moto learns the feature (then check the deployed resource
instead), and (b) checks the template text for the part moto cannot check:
- AWS::SQS::QueuePolicy is not supported at all (moto warns and skips it);
- AWS::DynamoDB::Table: PointInTimeRecoverySpecification and TimeToLiveSpecification are ignored;
- AWS::Kinesis::Stream: StreamModeDetails (ON_DEMAND) and StreamEncryption are ignored;
- the optional Fargate workers (WorkerImage set): moto creates the cluster, the service (cluster, task definition,
  desired count) and the task definition (image, environment, stop timeout, init, log configuration, memory), but
  drops the Fargate parts: the task definition's RequiresCompatibilities, NetworkMode, Cpu, RuntimePlatform and
  both role ARNs, the service's LaunchType, NetworkConfiguration and DeploymentConfiguration, and the roles'
  ManagedPolicyArns (nothing is attached to the task and execution roles);
- the template's Rules (WorkerImage without WorkerSubnetIds) are not evaluated.
moto's EventBridge implements neither TestEventPattern nor delivery to Kinesis targets (and real EventBridge
refuses PutEvents with an ``aws.*`` source anyway), so the rules are checked by their exact patterns and targets;
the EventBridge -> Kinesis hop itself is not exercised here.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import pytest
from cfn_template import TEMPLATE, deploy, load_template
from cfnlint.api import ManualArgs, lint_file

from processor.aws import client
from processor.config import Settings, env_key, load_settings, parse_properties, property_key
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
}


def _params(suffix: str, **extra: str) -> dict[str, str]:
    """Unique names: the moto server is shared by the whole test session."""
    return {
        "StreamName": f"events-{suffix}",
        "TaskTableName": f"tasks-{suffix}",
        "InstanceTableName": f"instances-{suffix}",
        "DeadLetterTableName": f"dead-{suffix}",
        "ApplicationName": f"app-{suffix}",
        **extra,
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


WORKER_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/ecs-state-worker:1"
FARGATE_PARAMS = {
    "WorkerImage": WORKER_IMAGE,
    "WorkerSubnetIds": "subnet-0123abcd,subnet-4567abcd",
    "WorkerSecurityGroupIds": "sg-0123abcd",
    "WorkerCount": "3",
    "WorkerAssignPublicIp": "ENABLED",
    "MaxLeasesForWorker": "4",
}
ECS_PARTS = {
    "WorkerLogGroup",
    "WorkerExecutionRole",
    "WorkerTaskRole",
    "WorkerTaskDefinition",
    "WorkerCluster",
    "WorkerService",
}
AWS_PROPERTIES = Path(__file__).resolve().parents[2] / "properties" / "aws.properties"


@pytest.fixture(scope="module")
def fargate_stack(moto_server: Any) -> dict[str, Any]:
    """WorkerImage set: the ECS Fargate service of the workers too."""
    suffix = uuid.uuid4().hex[:8]
    params = _params(suffix, **FARGATE_PARAMS)
    result = deploy(f"ecs-state-{suffix}", params)
    result["params"] = params
    return result


def _env_lines(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def _task_definition(stack: dict[str, Any]) -> dict[str, Any]:
    return client("ecs").describe_task_definition(taskDefinition=stack["outputs"]["WorkerTaskDefinitionArn"])[
        "taskDefinition"
    ]


def _policy_document(policy_arn: str) -> dict[str, Any]:
    iam = client("iam")
    version = iam.get_policy(PolicyArn=policy_arn)["Policy"]["DefaultVersionId"]
    return _document(iam.get_policy_version(PolicyArn=policy_arn, VersionId=version)["PolicyVersion"]["Document"])


def _document(document: str | dict[str, Any]) -> dict[str, Any]:
    """IAM returns policy documents URL-encoded JSON, which botocore decodes for most calls. moto quirk: an inline
    role policy created through CloudFormation comes back as the Python repr of a dict (not JSON)."""
    if not isinstance(document, str):
        return document
    text = urllib.parse.unquote(document)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return ast.literal_eval(text)


def _statements(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in document["Statement"]}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# ---------------------------------------------------------------------------------------------- lint
def test_cfn_lint_passes_including_informational_checks() -> None:
    matches = lint_file(
        TEMPLATE, config=ManualArgs(include_checks=["I"], regions=["us-east-1", "eu-west-1", "ap-southeast-2"])
    )
    assert not matches, "\n".join(str(m) for m in matches)


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
    (statement,) = _policy_document(outputs["ReaderPolicyArn"])["Statement"]
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

    ours = statements["WriteStateAndDeadLetters"]
    assert sorted(ours["Resource"]) == sorted(
        table_arn(outputs[k]) for k in ("TaskTable", "InstanceTable", "DeadLetterTable")
    )
    assert "dynamodb:PutItem" in ours["Action"]
    assert not {"dynamodb:DeleteItem", "dynamodb:UpdateItem", "dynamodb:CreateTable"} & set(ours["Action"])
    assert sorted(statements["QueryTaskIndex"]["Resource"]) == [
        table_arn(outputs["InstanceTable"]) + "/index/*",
        table_arn(outputs["TaskTable"]) + "/index/*",
    ]

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
    assert {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:BatchGetItem"} <= set(
        statements["ReadTables"]["Action"]
    )
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
    settings = load_settings(path, env={})
    assert (settings.task_table, settings.instance_table, settings.dead_letter_table) == (
        outputs["TaskTable"],
        outputs["InstanceTable"],
        outputs["DeadLetterTable"],
    )


def test_worker_environment_output_says_the_same_as_the_properties_output(stack: dict[str, Any]) -> None:
    """KCL_<key> is the image's way to set <key>; ECS_STATE_<KEY> the processor's way to set ecsState.<key>."""
    env = _env_lines(stack["outputs"]["WorkerEnvironment"])
    props = parse_properties(stack["outputs"]["WorkerProperties"])
    as_properties = {}
    for name, value in env.items():
        if name.startswith("KCL_"):
            as_properties[name.removeprefix("KCL_")] = value
        else:
            (field,) = [f for f in ("task_table", "instance_table", "dead_letter_table") if env_key(f) == name]
            as_properties[property_key(field)] = value
    assert as_properties == props


def test_without_a_worker_image_the_stack_has_no_ecs_parts(stack: dict[str, Any]) -> None:
    assert not ECS_PARTS & set(stack["resources"])
    assert not {"WorkerServiceArn", "WorkerTaskDefinitionArn", "WorkerLogGroupName"} & set(stack["outputs"])


def test_fargate_task_definition_runs_the_image_with_the_stacks_settings(
    fargate_stack: dict[str, Any], tmp_path: Path
) -> None:
    outputs = fargate_stack["outputs"]
    assert ECS_PARTS <= set(fargate_stack["resources"])
    (container,) = _task_definition(fargate_stack)["containerDefinitions"]
    assert container["image"] == WORKER_IMAGE and container["essential"] is True
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert env == _env_lines(outputs["WorkerEnvironment"])
    # what the image's entry point makes of it: the template's keys with the KCL_* values, complete
    template = parse_properties(AWS_PROPERTIES.read_text(encoding="utf-8"))
    rendered = {**template, **{k.removeprefix("KCL_"): v for k, v in env.items() if k.startswith("KCL_")}}
    assert check_required(rendered, "rendered") == []
    assert rendered["streamName"] == outputs["StreamName"] and rendered["applicationName"] == outputs["ApplicationName"]
    settings = load_settings(None, env=env)
    assert (settings.task_table, settings.instance_table, settings.dead_letter_table) == (
        outputs["TaskTable"],
        outputs["InstanceTable"],
        outputs["DeadLetterTable"],
    )
    # SIGTERM reaches ecs-state run through an init, and the stop timeout leaves room for shutdownGraceMillis
    assert container["linuxParameters"]["initProcessEnabled"] is True
    assert container["stopTimeout"] * 1000 > int(template["shutdownGraceMillis"])
    logs = container["logConfiguration"]
    assert logs["logDriver"] == "awslogs"
    assert logs["options"]["awslogs-group"] == outputs["WorkerLogGroupName"]
    (group,) = client("logs").describe_log_groups(logGroupNamePrefix=outputs["WorkerLogGroupName"])["logGroups"]
    assert group["retentionInDays"] == 30


def test_fargate_service_runs_the_desired_count_in_its_own_cluster(fargate_stack: dict[str, Any]) -> None:
    outputs = fargate_stack["outputs"]
    (service,) = client("ecs").describe_services(
        cluster=outputs["WorkerClusterName"], services=[outputs["WorkerServiceArn"]]
    )["services"]
    assert service["desiredCount"] == 3
    assert service["taskDefinition"] == outputs["WorkerTaskDefinitionArn"]
    assert service["clusterArn"].endswith(f":cluster/{outputs['WorkerClusterName']}")


def test_worker_roles_are_for_ecs_tasks_of_this_account(fargate_stack: dict[str, Any]) -> None:
    iam, resources = client("iam"), fargate_stack["resources"]
    for logical_id in ("WorkerTaskRole", "WorkerExecutionRole"):
        (statement,) = iam.get_role(RoleName=resources[logical_id])["Role"]["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
        assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    assert not iam.list_role_policies(RoleName=resources["WorkerTaskRole"])["PolicyNames"]


# ------------------------------------------------------------------------------------------ moto's gaps
def test_moto_drops_the_fargate_parts_so_the_template_is_checked_instead(fargate_stack: dict[str, Any]) -> None:
    task_definition = _task_definition(fargate_stack)
    assert task_definition["compatibilities"] == ["EC2"] and task_definition["networkMode"] == "bridge", (
        "moto now keeps RequiresCompatibilities / NetworkMode: check FARGATE / awsvpc, Cpu and the roles here"
    )
    assert "taskRoleArn" not in task_definition, "moto now keeps TaskRoleArn: check it is WorkerTaskRole's ARN"
    outputs = fargate_stack["outputs"]
    (service,) = client("ecs").describe_services(
        cluster=outputs["WorkerClusterName"], services=[outputs["WorkerServiceArn"]]
    )["services"]
    assert service["launchType"] == "EC2" and service["networkConfiguration"] == {}, (
        "moto now keeps LaunchType / NetworkConfiguration: check FARGATE and the subnets here"
    )

    resources = load_template()["Resources"]
    td = resources["WorkerTaskDefinition"]["Properties"]
    assert (td["RequiresCompatibilities"], td["NetworkMode"]) == (["FARGATE"], "awsvpc")
    assert (td["Cpu"], td["Memory"]) == ({"Ref": "WorkerCpu"}, {"Ref": "WorkerMemory"})
    assert td["TaskRoleArn"] == {"Fn::GetAtt": ["WorkerTaskRole", "Arn"]}
    assert td["ExecutionRoleArn"] == {"Fn::GetAtt": ["WorkerExecutionRole", "Arn"]}
    svc = resources["WorkerService"]["Properties"]
    assert svc["LaunchType"] == "FARGATE"
    network = svc["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["Subnets"] == {"Fn::Split": [",", {"Ref": "WorkerSubnetIds"}]}
    assert network["SecurityGroups"] == {
        "Fn::If": [
            "WorkerSecurityGroupsGiven",
            {"Fn::Split": [",", {"Ref": "WorkerSecurityGroupIds"}]},
            {"Ref": "AWS::NoValue"},
        ]
    }
    assert network["AssignPublicIp"] == {"Ref": "WorkerAssignPublicIp"}
    assert svc["DeploymentConfiguration"]["MinimumHealthyPercent"] == 100
    assert all(resources[r]["Condition"] == "Workers" for r in ECS_PARTS)


def test_moto_drops_the_roles_managed_policies_so_the_template_is_checked_instead(
    fargate_stack: dict[str, Any],
) -> None:
    iam, resources = client("iam"), fargate_stack["resources"]
    for logical_id in ("WorkerTaskRole", "WorkerExecutionRole"):
        assert not iam.list_attached_role_policies(RoleName=resources[logical_id])["AttachedPolicies"], (
            "moto now attaches ManagedPolicyArns: check the worker policy / the execution role policy here"
        )
    template = load_template()["Resources"]
    assert template["WorkerTaskRole"]["Properties"]["ManagedPolicyArns"] == [{"Ref": "WorkerPolicy"}]
    assert template["WorkerExecutionRole"]["Properties"]["ManagedPolicyArns"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"}
    ]


def test_moto_ignores_the_rules_so_the_template_is_checked_instead(moto_server: Any) -> None:
    suffix = uuid.uuid4().hex[:8]
    without_subnets = deploy(f"ecs-state-{suffix}", _params(suffix, WorkerImage=WORKER_IMAGE))
    assert without_subnets["StackStatus"] == "CREATE_COMPLETE", "moto now evaluates Rules: expect a refusal here"

    rule = load_template()["Rules"]["WorkersNeedSubnets"]
    assert rule["RuleCondition"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "WorkerImage"}, ""]}]}
    assert rule["Assertions"][0]["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "WorkerSubnetIds"}, ""]}]}


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
    for logical_id in ("TaskTable", "InstanceTable", "DeadLetterTable"):
        assert resources[logical_id]["Properties"]["PointInTimeRecoverySpecification"] == {
            "PointInTimeRecoveryEnabled": True
        }
        assert resources[logical_id]["DeletionPolicy"] == "Retain"
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


# ---------------------------------------------------------------------------------- monitoring, image
# The metrics AWS publishes that the alarms and the dashboard use, with the dimensions they are published under
# (AWS docs: Kinesis "Monitoring the Amazon Kinesis Data Streams service with CloudWatch" (stream-level and
# enhanced fan-out consumer metrics), EventBridge "Monitoring Amazon EventBridge" (per RuleName), SQS "Available
# CloudWatch metrics for Amazon SQS" (per QueueName)). ECSState is ours: processor/shard/metrics.py.
AWS_METRICS = {
    ("AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds"): {"StreamName"},
    ("AWS/Kinesis", "SubscribeToShardEvent.MillisBehindLatest"): {"StreamName", "ConsumerName"},
    ("AWS/Events", "FailedInvocations"): {"RuleName"},
    ("AWS/Events", "InvocationsFailedToBeSentToDlq"): {"RuleName"},
    ("AWS/SQS", "ApproximateNumberOfMessagesVisible"): {"QueueName"},
}


def _our_metrics() -> set[str]:
    from processor.shard.metrics import METRICS, WORKER_HEARTBEAT

    return {name for name, _ in METRICS.values()} | {WORKER_HEARTBEAT[0]}


def _metric_is_known(namespace: str, name: str, dimensions: set[str]) -> str | None:
    """None when (namespace, name) under these dimension names is published, else what is wrong."""
    if namespace == "ECSState":
        if name not in _our_metrics():
            return f"ECSState {name} is not a metric the workers emit"
        return None if dimensions == {"Application"} else f"ECSState {name} by {dimensions}: we emit [Application]"
    if (namespace, name) not in AWS_METRICS:
        return f"{namespace} {name} is not an AWS metric this test knows"
    wanted = AWS_METRICS[(namespace, name)]
    return None if dimensions == wanted else f"{namespace} {name} by {dimensions}: AWS publishes it by {wanted}"


def _alarm_metrics(alarm: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(namespace, metric name, dimensions) of an alarm, single metric or metric math; the fan-out choice
    (!If [FanOut, a, b]) gives both branches."""
    found = []
    if "MetricName" in alarm:
        found.append((alarm["Namespace"], alarm["MetricName"], alarm["Dimensions"]))
    for query in alarm.get("Metrics", []):
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]
            found.append((metric["Namespace"], metric["MetricName"], metric["Dimensions"]))
    out = []
    for namespace, name, dimensions in found:
        names = name["Fn::If"][1:] if isinstance(name, dict) else [name]
        dims = dimensions["Fn::If"][1:] if isinstance(dimensions, dict) else [dimensions]
        out += list(zip(names, dims, strict=True)) if len(names) == 2 else [(names[0], d) for d in dims]
        out = [(namespace, *pair) if len(pair) == 2 else pair for pair in out]
    return out


def test_every_alarm_watches_a_metric_we_emit_or_aws_publishes() -> None:
    resources = load_template()["Resources"]
    alarms = {k: r["Properties"] for k, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert len(alarms) == 8
    problems = []
    for logical_id, alarm in alarms.items():
        metrics = _alarm_metrics(alarm)
        assert metrics, f"{logical_id} watches no metric"
        for namespace, name, dimensions in metrics:
            problem = _metric_is_known(namespace, name, {d["Name"] for d in dimensions})
            if problem:
                problems.append(f"{logical_id}: {problem}")
        # a metric-math alarm returns exactly one series, and every alarm notifies the topic only when given
        if "Metrics" in alarm:
            assert sum(1 for q in alarm["Metrics"] if q.get("ReturnData")) == 1, logical_id
        for actions in ("AlarmActions", "OKActions"):
            assert alarm[actions] == {"Fn::If": ["AlarmsNotify", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    assert not problems, "\n".join(problems)


def test_the_alarm_check_can_fail() -> None:
    assert _metric_is_known("ECSState", "DeadLetter", {"Application"})  # a misspelt metric of ours
    assert _metric_is_known("ECSState", "DeadLetters", {"ShardId"})  # a dimension set we do not aggregate to
    assert _metric_is_known("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"RuleName"})


def test_the_alarms_cover_what_must_page_someone() -> None:
    watched = {
        name
        for r in load_template()["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        for _, name, _ in _alarm_metrics(r["Properties"])
    }
    assert {
        "GetRecords.IteratorAgeMilliseconds",
        "DeadLetters",
        "FailedInvocations",
        "InvocationsFailedToBeSentToDlq",
        "ApproximateNumberOfMessagesVisible",
        "WriteRetries",
        "WriteRetryingFor",
        "WorkerHeartbeat",
    } <= watched


def _dashboard_metrics(body: dict[str, Any]) -> list[tuple[str, str, set[str]]]:
    found = []
    for widget in body["widgets"]:
        for row in widget["properties"].get("metrics", []):
            fields = [f for f in row if isinstance(f, str)]
            namespace, name, pairs = fields[0], fields[1], fields[2:]
            assert len(pairs) % 2 == 0 and all(pairs[1::2]), f"dimension without a value: {row}"
            found.append((namespace, name, set(pairs[0::2])))
    return found


def test_the_deployed_dashboard_is_json_naming_only_metrics_that_exist(
    stack: dict[str, Any], provisioned_stack: dict[str, Any]
) -> None:
    for deployed in (stack, provisioned_stack):  # POLLING and FANOUT
        outputs = deployed["outputs"]
        body = json.loads(client("cloudwatch").get_dashboard(DashboardName=outputs["DashboardName"])["DashboardBody"])
        metrics = _dashboard_metrics(body)
        problems = [p for p in (_metric_is_known(*m) for m in metrics) if p]
        assert not problems, "\n".join(problems)
        text = json.dumps(body)
        assert outputs["StreamName"] in text and f'"Application", "{outputs["ApplicationName"]}"' in text
        assert "${" not in text  # every substitution resolved
        (alarms,) = [w["properties"]["alarms"] for w in body["widgets"] if w["type"] == "alarm"]
        names = {
            r["Properties"]["AlarmName"]["Fn::Sub"]
            for r in load_template()["Resources"].values()
            if r["Type"] == "AWS::CloudWatch::Alarm"
        }
        assert {a.rsplit(":alarm:", 1)[1] for a in alarms} == {
            n.replace("${ApplicationName}", outputs["ApplicationName"]) for n in names
        }
        assert {"FreshnessP99", "MillisBehindLatest", "WorkerHeartbeat"} <= {name for _, name, _ in metrics}
    fanout = json.dumps(
        json.loads(
            client("cloudwatch").get_dashboard(DashboardName=provisioned_stack["outputs"]["DashboardName"])[
                "DashboardBody"
            ]
        )
    )
    assert "SubscribeToShardEvent.MillisBehindLatest" in fanout and "GetRecords.IteratorAgeMilliseconds" not in fanout


def test_moto_skips_the_alarms_so_the_template_is_checked_instead(stack: dict[str, Any]) -> None:
    app = stack["outputs"]["ApplicationName"]
    assert client("cloudwatch").describe_alarms(AlarmNamePrefix=app)["MetricAlarms"] == [], (
        "moto now creates AWS::CloudWatch::Alarm: check the deployed alarms' metrics here"
    )


def test_the_task_health_check_is_the_images_and_costs_no_aws_call() -> None:
    (container,) = load_template()["Resources"]["WorkerTaskDefinition"]["Properties"]["ContainerDefinitions"]
    check = container["HealthCheck"]
    dockerfile = (TEMPLATE.parents[1] / "Dockerfile").read_text(encoding="utf-8")
    (line,) = [x for x in dockerfile.replace("\\\n", " ").splitlines() if x.startswith("HEALTHCHECK")]
    assert json.loads(line.split(" CMD ", 1)[1]) == check["Command"][1:] and check["Command"][0] == "CMD"
    assert f"--interval={check['Interval']}s" in line and f"--retries={check['Retries']}" in line
    assert f"--start-period={check['StartPeriod']}s" in line and f"--timeout={check['Timeout']}s" in line
    assert check["Command"][1:] == ["python", "-m", "processor.worker.liveness"]
    assert "ECS_STATE_HEARTBEAT_DIR=" in dockerfile  # where the probe and ecs-state run meet


def test_cpu_architecture_is_the_task_platform_and_an_architecture_the_build_knows() -> None:
    template = load_template()
    parameter = template["Parameters"]["CpuArchitecture"]
    platform = template["Resources"]["WorkerTaskDefinition"]["Properties"]["RuntimePlatform"]
    assert platform == {"OperatingSystemFamily": "LINUX", "CpuArchitecture": {"Ref": "CpuArchitecture"}}
    script = (TEMPLATE.parents[1] / "scripts" / "image").read_text(encoding="utf-8")
    build_names = {"X86_64": "amd64", "ARM64": "arm64"}
    assert set(parameter["AllowedValues"]) == set(build_names)
    assert "case $arch in amd64|arm64)" in script


def test_max_leases_for_worker_reaches_the_task_and_both_outputs(
    stack: dict[str, Any], fargate_stack: dict[str, Any]
) -> None:
    (container,) = _task_definition(fargate_stack)["containerDefinitions"]
    assert {e["name"]: e["value"] for e in container["environment"]}["KCL_maxLeasesForWorker"] == "4"
    default = parse_properties(stack["outputs"]["WorkerProperties"])
    assert default["maxLeasesForWorker"] == "2147483647"  # 0: KCL's own default, no limit
    assert _env_lines(fargate_stack["outputs"]["WorkerEnvironment"])["KCL_maxLeasesForWorker"] == "4"


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
    """StateTables=existing over the documented Lambda's two tables, with the Fargate workers (their environment
    names the tables too)."""
    suffix = uuid.uuid4().hex[:8]
    params = _params(suffix, StateTables="existing", **FARGATE_PARAMS)
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
    assert [k for k, t in types.items() if t == "AWS::DynamoDB::Table"] == ["DeadLetterTable"]
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
    (reader,) = _policy_document(existing_stack["outputs"]["ReaderPolicyArn"])["Statement"]
    assert sorted(reader["Resource"]) == sorted([tasks, tasks + "/index/*", instances, instances + "/index/*"])
    worker = _worker_statements(existing_stack)
    assert {tasks, instances} <= set(worker["WriteStateAndDeadLetters"]["Resource"])
    assert sorted(worker["QueryTaskIndex"]["Resource"]) == [instances + "/index/*", tasks + "/index/*"]
    operator = _statements(_policy_document(existing_stack["outputs"]["OperatorPolicyArn"]))
    assert {tasks, tasks + "/index/*", instances, instances + "/index/*"} <= set(operator["ReadTables"]["Resource"])
    assert sorted(operator["RepairFromEcsApi"]["Resource"]) == sorted([tasks, instances])


def test_the_policy_comparison_can_fail(stack: dict[str, Any], existing_stack: dict[str, Any]) -> None:
    document = _policy_document(existing_stack["outputs"]["ReaderPolicyArn"])
    document["Statement"][0]["Resource"] = document["Statement"][0]["Resource"][:2]  # the instance table dropped
    assert _named(document, existing_stack) != _named(_policy_document(stack["outputs"]["ReaderPolicyArn"]), stack)


def test_with_existing_tables_the_outputs_and_the_workers_name_them(existing_stack: dict[str, Any]) -> None:
    outputs, params = existing_stack["outputs"], existing_stack["params"]
    names = (params["TaskTableName"], params["InstanceTableName"], params["DeadLetterTableName"])
    assert (outputs["TaskTable"], outputs["InstanceTable"], outputs["DeadLetterTable"]) == names
    settings = load_settings(None, env=_env_lines(outputs["WorkerEnvironment"]))
    assert (settings.task_table, settings.instance_table, settings.dead_letter_table) == names
    props = parse_properties(outputs["WorkerProperties"])
    assert (props["ecsState.taskTable"], props["ecsState.instanceTable"]) == names[:2]
    (container,) = _task_definition(existing_stack)["containerDefinitions"]
    assert {e["name"]: e["value"] for e in container["environment"]} == _env_lines(outputs["WorkerEnvironment"])


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
        "dynamodb:CreateTable",
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
