"""deploy/ecs-state-workers.yaml over a core stack: deployed into moto's CloudFormation (real moto server over HTTP)
it reads the core's exports and makes the Fargate workers (WorkerImage set) with every processor setting the docs
offer, a security group when none is given, the alarm topic (mailing AlarmEmail), the rule that puts member
accounts' alarms on it, and the dashboard. The alarms are tested by what they do (alarm_eval.py): each one,
resolved for the deployed parameters, is fed the series of a healthy run and of the failure it exists for.

moto's gaps, each with a test that fails the day moto closes it: the task definition's and service's Fargate parts
and the roles' ManagedPolicyArns are dropped; AWS::CloudWatch::Alarm, AWS::SNS::TopicPolicy and
AWS::SNS::Subscription are skipped; Rules are not evaluated.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest
from alarm_eval import COMPARISONS, Samples, evaluate, resolve
from cfn_template import WORKERS_TEMPLATE, deploy, known_env, load_template
from cfn_template import core_params as _params
from cfn_template import env_lines as _env_lines

from processor.aws import client
from processor.config import Settings, env_key, load_settings, parse_properties, property_key
from processor.worker.preflight import check_required

ROOT = Path(__file__).resolve().parents[2]
AWS_PROPERTIES = ROOT / "properties" / "aws.properties"
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
#: Settings fields that are not a workers-stack parameter: the tables come from the core stack, the metrics target
#: is the image's (stderr, what the alarms need), the application is KCL's applicationName, the member read role is
#: the operator's (reconcile across accounts), not the workers'
NOT_PARAMETERS = {
    "task_table",
    "instance_table",
    "dead_letter_table",
    "catalog_table",
    "metrics",
    "application",
    "member_read_role",
}


def _pair(suffix: str, workers: dict[str, str], core: dict[str, str] | None = None) -> dict[str, Any]:
    """A core stack and a workers stack over it; returns the workers stack with ``core`` and ``params``."""
    core_params = _params(suffix, **(core or {}))
    core_stack = deploy(f"ecs-state-{suffix}", core_params)
    params = {"CoreStackName": f"ecs-state-{suffix}", **workers}
    result = deploy(f"ecs-state-workers-{suffix}", params, template=WORKERS_TEMPLATE)
    result.update(core=core_stack, core_params=core_params, params=params)
    return result


@pytest.fixture(scope="module")
def stack(moto_server: Any) -> dict[str, Any]:
    """No WorkerImage (workers run elsewhere), AlarmEmail set."""
    return _pair(uuid.uuid4().hex[:8], {"AlarmEmail": "oncall@example.com"})


@pytest.fixture(scope="module")
def fargate_stack(moto_server: Any) -> dict[str, Any]:
    """WorkerImage set, with security groups given, and settings changed from their defaults."""
    changed = {
        "TaskRetentionHours": "72",
        "FlushIntervalMillis": "2000",
        "WriteRetryBudgetMillis": "600000",
        "LogLevel": "DEBUG",
    }
    return _pair(uuid.uuid4().hex[:8], {**changed, **FARGATE_PARAMS})


@pytest.fixture(scope="module")
def vpc_stack(moto_server: Any) -> dict[str, Any]:
    """WorkerImage set without security groups: the stack makes one in WorkerVpcId."""
    vpc = client("ec2").create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    params = {k: v for k, v in FARGATE_PARAMS.items() if k != "WorkerSecurityGroupIds"}
    return _pair(uuid.uuid4().hex[:8], {"WorkerVpcId": vpc, **params})


def _task_definition(stack: dict[str, Any]) -> dict[str, Any]:
    return client("ecs").describe_task_definition(taskDefinition=stack["outputs"]["WorkerTaskDefinitionArn"])[
        "taskDefinition"
    ]


def _container_env(stack: dict[str, Any]) -> dict[str, str]:
    (container,) = _task_definition(stack)["containerDefinitions"]
    return {e["name"]: e["value"] for e in container["environment"]}


# -------------------------------------------------------------------------- the core's exports, settings
def test_the_workers_read_the_core_stacks_names_through_its_exports(fargate_stack: dict[str, Any]) -> None:
    core = fargate_stack["core"]["outputs"]
    env = _container_env(fargate_stack)
    assert env["KCL_streamName"] == core["StreamName"] and env["KCL_applicationName"] == core["ApplicationName"]
    assert env["KCL_retrievalMode"] == core["RetrievalMode"]
    assert (env["ECS_STATE_TASK_TABLE"], env["ECS_STATE_INSTANCE_TABLE"], env["ECS_STATE_DEAD_LETTER_TABLE"]) == (
        core["TaskTable"],
        core["InstanceTable"],
        core["DeadLetterTable"],
    )
    assert env["ECS_STATE_CATALOG_TABLE"] == core["CatalogTable"]
    exports = {e["Name"]: e["Value"] for e in client("cloudformation").list_exports()["Exports"]}
    imported = set(re.findall(r"\$\{CoreStackName\}-(\w+)", WORKERS_TEMPLATE.read_text(encoding="utf-8")))
    prefix = fargate_stack["params"]["CoreStackName"]
    assert {f"{prefix}-{name}" for name in imported} <= set(exports)


def test_every_setting_the_docs_offer_is_a_parameter_that_reaches_the_processor(fargate_stack: dict[str, Any]) -> None:
    """Each ecsState key a user would change on Fargate: a parameter named after it, passed as ECS_STATE_<KEY>,
    read back by the processor's own load_settings from the task definition's environment."""
    parameters = load_template(WORKERS_TEMPLATE)["Parameters"]
    fields = [f for f in Settings.__dataclass_fields__ if f not in NOT_PARAMETERS]
    names = {f: property_key(f).removeprefix("ecsState.") for f in fields}
    missing = [n for n in names.values() if n[0].upper() + n[1:] not in parameters]
    assert not missing, f"ecsState keys with no workers-stack parameter: {missing}"

    env = _container_env(fargate_stack)
    settings = load_settings(None, env=known_env(env))
    given = fargate_stack["params"]
    for field, name in names.items():
        parameter = name[0].upper() + name[1:]
        value = given.get(parameter, str(parameters[parameter]["Default"]))
        assert env[env_key(field)] == value, field
        assert str(getattr(settings, field)) == value, field
    assert (settings.task_retention_hours, settings.flush_interval_millis) == (72, 2000)
    assert (settings.write_retry_budget_millis, settings.log_level) == (600000, "DEBUG")


def test_the_settings_defaults_are_the_aws_properties_file_or_the_codes() -> None:
    parameters = load_template(WORKERS_TEMPLATE)["Parameters"]
    props, defaults = parse_properties(AWS_PROPERTIES.read_text(encoding="utf-8")), Settings()
    for field in (f for f in Settings.__dataclass_fields__ if f not in NOT_PARAMETERS):
        key = property_key(field)
        parameter = key.removeprefix("ecsState.")
        expected = props.get(key, str(getattr(defaults, field)))
        assert str(parameters[parameter[0].upper() + parameter[1:]]["Default"]) == expected, key


def test_worker_environment_output_is_the_task_definitions_and_says_what_the_properties_output_says(
    fargate_stack: dict[str, Any],
) -> None:
    """KCL_<key> is the image's way to set <key>; ECS_STATE_<KEY> the processor's way to set ecsState.<key>."""
    env = _env_lines(fargate_stack["outputs"]["WorkerEnvironment"])
    assert env == _container_env(fargate_stack)
    props = parse_properties(fargate_stack["core"]["outputs"]["WorkerProperties"])
    fields = {env_key(f): f for f in Settings.__dataclass_fields__} | {"ECS_STATE_CATALOG_TABLE": "catalog_table"}
    as_properties = {
        name.removeprefix("KCL_") if name.startswith("KCL_") else property_key(fields[name]): value
        for name, value in env.items()
    }
    operator_only = {"ecsState.memberReadRole"}  # reconcile's member role: read by the operator's commands
    assert {k: as_properties[k] for k in props if k not in operator_only} == {
        k: v for k, v in props.items() if k not in operator_only
    }
    assert props["ecsState.memberReadRole"] == "ecs-state-member-read"
    assert as_properties["maxLeasesForWorker"] == "4"


def test_without_a_worker_image_the_stack_has_no_ecs_parts_but_its_alarms_and_topic(stack: dict[str, Any]) -> None:
    assert not ECS_PARTS & set(stack["resources"])
    assert not {"WorkerServiceArn", "WorkerTaskDefinitionArn", "WorkerLogGroupName"} & set(stack["outputs"])
    assert stack["outputs"]["AlarmTopicArn"] == stack["resources"]["AlarmTopic"]
    assert _env_lines(stack["outputs"]["WorkerEnvironment"])["KCL_maxLeasesForWorker"] == "2147483647"


# ----------------------------------------------------------------------------------------- Fargate
def test_fargate_task_definition_runs_the_image_with_the_stacks_settings(fargate_stack: dict[str, Any]) -> None:
    outputs, core = fargate_stack["outputs"], fargate_stack["core"]["outputs"]
    assert ECS_PARTS <= set(fargate_stack["resources"])
    (container,) = _task_definition(fargate_stack)["containerDefinitions"]
    assert container["image"] == WORKER_IMAGE and container["essential"] is True
    env = {e["name"]: e["value"] for e in container["environment"]}
    # what the image's entry point makes of it: the template's keys with the KCL_* values, complete
    template = parse_properties(AWS_PROPERTIES.read_text(encoding="utf-8"))
    rendered = {**template, **{k.removeprefix("KCL_"): v for k, v in env.items() if k.startswith("KCL_")}}
    assert check_required(rendered, "rendered") == []
    assert rendered["streamName"] == core["StreamName"] and rendered["applicationName"] == core["ApplicationName"]
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


def test_without_security_groups_the_stack_makes_one_that_allows_outbound_https_only(
    vpc_stack: dict[str, Any], fargate_stack: dict[str, Any]
) -> None:
    """moto makes the group in the VPC without inbound rules, but ignores SecurityGroupEgress (it keeps EC2's
    default allow-all egress, which AWS's CloudFormation replaces by the rules given): the egress is checked in the
    template text, and this test fails the day moto applies it."""
    group_id = vpc_stack["outputs"]["WorkerSecurityGroupId"]
    (group,) = client("ec2").describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    assert group["VpcId"] == vpc_stack["params"]["WorkerVpcId"]
    assert group["IpPermissions"] == []
    assert [p["IpProtocol"] for p in group["IpPermissionsEgress"]] == ["-1"], (
        "moto now applies SecurityGroupEgress: check tcp 443 only here"
    )
    properties = load_template(WORKERS_TEMPLATE)["Resources"]["WorkerSecurityGroup"]["Properties"]
    assert "SecurityGroupIngress" not in properties
    assert [(r["IpProtocol"], r["FromPort"], r["ToPort"], r["CidrIp"]) for r in properties["SecurityGroupEgress"]] == [
        ("tcp", 443, 443, "0.0.0.0/0")
    ]
    assert "WorkerSecurityGroup" not in fargate_stack["resources"]  # given groups: none made
    network = load_template(WORKERS_TEMPLATE)["Resources"]["WorkerService"]["Properties"]["NetworkConfiguration"]
    assert network["AwsvpcConfiguration"]["SecurityGroups"] == {
        "Fn::If": [
            "WorkerSecurityGroupsGiven",
            {"Fn::Split": [",", {"Ref": "WorkerSecurityGroupIds"}]},
            [{"Ref": "WorkerSecurityGroup"}],
        ]
    }


@pytest.fixture(scope="module")
def existing_stack(moto_server: Any) -> dict[str, Any]:
    """The core with StateTables=existing over the documented Lambda's two tables, and the Fargate workers."""
    suffix = uuid.uuid4().hex[:8]
    ddb, names = client("dynamodb"), _params(suffix)
    for name, key in ((names["TaskTableName"], "taskArn"), (names["InstanceTableName"], "containerInstanceArn")):
        ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    return _pair(suffix, FARGATE_PARAMS, core={"StateTables": "existing"})


def test_with_existing_tables_the_workers_name_them(existing_stack: dict[str, Any]) -> None:
    params = existing_stack["core_params"]
    names = (params["TaskTableName"], params["InstanceTableName"], params["DeadLetterTableName"])
    settings = load_settings(None, env=known_env(_container_env(existing_stack)))
    assert (settings.task_table, settings.instance_table, settings.dead_letter_table) == names


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

    resources = load_template(WORKERS_TEMPLATE)["Resources"]
    td = resources["WorkerTaskDefinition"]["Properties"]
    assert (td["RequiresCompatibilities"], td["NetworkMode"]) == (["FARGATE"], "awsvpc")
    assert (td["Cpu"], td["Memory"]) == ({"Ref": "WorkerCpu"}, {"Ref": "WorkerMemory"})
    assert td["TaskRoleArn"] == {"Fn::GetAtt": ["WorkerTaskRole", "Arn"]}
    assert td["ExecutionRoleArn"] == {"Fn::GetAtt": ["WorkerExecutionRole", "Arn"]}
    svc = resources["WorkerService"]["Properties"]
    assert svc["LaunchType"] == "FARGATE"
    network = svc["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["Subnets"] == {"Fn::Split": [",", {"Ref": "WorkerSubnetIds"}]}
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
    template = load_template(WORKERS_TEMPLATE)["Resources"]
    assert template["WorkerTaskRole"]["Properties"]["ManagedPolicyArns"] == [
        {"Fn::ImportValue": {"Fn::Sub": "${CoreStackName}-WorkerPolicyArn"}}
    ]
    assert template["WorkerExecutionRole"]["Properties"]["ManagedPolicyArns"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"}
    ]


def test_moto_ignores_the_rules_so_the_template_is_checked_instead(moto_server: Any) -> None:
    suffix = uuid.uuid4().hex[:8]
    without_subnets = _pair(suffix, {"WorkerImage": WORKER_IMAGE})
    assert without_subnets["StackStatus"] == "CREATE_COMPLETE", "moto now evaluates Rules: expect a refusal here"

    rule = load_template(WORKERS_TEMPLATE)["Rules"]["WorkersNeedSubnets"]
    assert rule["RuleCondition"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "WorkerImage"}, ""]}]}
    assert rule["Assertions"][0]["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "WorkerSubnetIds"}, ""]}]}
    assert rule["Assertions"][1]["Assert"] == {
        "Fn::Or": [
            {"Fn::Not": [{"Fn::Equals": [{"Ref": "WorkerSecurityGroupIds"}, ""]}]},
            {"Fn::Not": [{"Fn::Equals": [{"Ref": "WorkerVpcId"}, ""]}]},
        ]
    }


def test_moto_skips_alarms_topic_policy_and_subscription_so_the_template_is_checked_instead(
    stack: dict[str, Any],
) -> None:
    app = stack["core"]["outputs"]["ApplicationName"]
    assert client("cloudwatch").describe_alarms(AlarmNamePrefix=app)["MetricAlarms"] == [], (
        "moto now creates AWS::CloudWatch::Alarm: check the deployed alarms here"
    )
    topic = stack["outputs"]["AlarmTopicArn"]
    assert client("sns").list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"] == [], (
        "moto now creates AWS::SNS::Subscription: check the AlarmEmail subscription here"
    )
    resources = load_template(WORKERS_TEMPLATE)["Resources"]
    # a topic under the AWS managed key (alias/aws/sns) takes no alarm action: its key policy refuses CloudWatch
    assert "KmsMasterKeyId" not in resources["AlarmTopic"]["Properties"]
    mail = resources["AlarmMail"]
    assert mail["Condition"] == "MailOwnTopic"
    assert mail["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
    }
    grants = {
        s["Sid"]: s["Principal"]["Service"]
        for s in resources["AlarmTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    }
    assert grants == {"CloudWatchAlarms": "cloudwatch.amazonaws.com", "MemberAlarmsRule": "events.amazonaws.com"}
    for logical_id, alarm in _alarms().items():
        for actions in ("AlarmActions", "OKActions"):
            assert alarm[actions] == [{"Fn::If": ["TopicGiven", {"Ref": "AlarmTopicArn"}, {"Ref": "AlarmTopic"}]}], (
                logical_id
            )


def test_member_accounts_alarms_reach_the_alarm_topic(stack: dict[str, Any]) -> None:
    events = client("events")
    name = stack["resources"]["MemberAlarmsRule"]
    pattern = json.loads(events.describe_rule(Name=name)["EventPattern"])
    assert pattern == {
        "source": ["aws.cloudwatch"],
        "detail-type": ["CloudWatch Alarm State Change"],
        "detail": {"alarmName": [{"prefix": "ecs-state-member-"}]},
    }
    (target,) = events.list_targets_by_rule(Rule=name)["Targets"]
    assert target["Arn"] == stack["outputs"]["AlarmTopicArn"]
    member = load_template(WORKERS_TEMPLATE.with_name("ecs-state-member.yaml"))["Resources"]
    assert member["DeliveryFailuresAlarm"]["Properties"]["AlarmName"]["Fn::Sub"].startswith("ecs-state-member-")


# ------------------------------------------------------------------------- alarms, by what they do
def _alarms() -> dict[str, dict[str, Any]]:
    resources = load_template(WORKERS_TEMPLATE)["Resources"]
    return {k: r["Properties"] for k, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}


APP, STREAM, REPLAY = "ecs-state", "ecs-state-events", "ecs-state-replay"
IMPORTS = {
    f"core-{name}": value
    for name, value in {
        "ApplicationName": APP,
        "StreamName": STREAM,
        "StreamRetentionHours": "24",
        "TaskStateRuleName": "task-rule",
        "InstanceStateRuleName": "instance-rule",
        "TaskEventsDeadLetterQueueName": "task-queue",
        "InstanceEventsDeadLetterQueueName": "instance-queue",
    }.items()
}
PARAMETERS = {
    "CoreStackName": "core",
    "StreamAgeAlarmSeconds": "600",
    "WriteStallAlarmSeconds": "300",
    "WorkerCount": "2",
    "AlarmTopicArn": "",
    "AlarmTopic": "topic",
}
CONDITIONS = {"Workers": True, "NoWorkersWanted": False, "TopicGiven": False}
MINUTES = 60  # every scenario is one hour of samples, evaluated at its end


def _app(name: str, app: str = APP) -> tuple[str, str, frozenset[tuple[str, str]]]:
    return ("ECSState", name, frozenset({("Application", app)}))


def _each_minute(value: Callable[[int], float | None], per_minute: int = 1) -> list[tuple[float, float]]:
    return [(m * 60.0 + i, v) for m in range(MINUTES) for i in range(per_minute) if (v := value(m)) is not None]


def _last(minutes: int, bad: float, good: float | None) -> Callable[[int], float | None]:
    return lambda m: bad if m >= MINUTES - minutes else good


def _events(metric: str, rule: str, value: Callable[[int], float | None]) -> Samples:
    return {("AWS/Events", metric, frozenset({("RuleName", rule)})): _each_minute(value)}


def _queue(queue: str, value: Callable[[int], float | None]) -> Samples:
    return {("AWS/SQS", "ApproximateNumberOfMessagesVisible", frozenset({("QueueName", queue)})): _each_minute(value)}


def _shards(read: Callable[[int], float], incoming: float = 4000.0, other: Samples | None = None) -> Samples:
    return {
        ("AWS/Kinesis", "IncomingRecords", frozenset({("StreamName", STREAM)})): _each_minute(lambda m: incoming),
        _app("Records"): _each_minute(read),
        **(other or {}),
    }


# Per alarm: the healthy runs (none may alarm) and the failures it exists for (each must alarm). Values are in the
# metric's own unit as published: milliseconds for the ages and durations, counts otherwise.
SCENARIOS: dict[str, dict[str, dict[str, Samples]]] = {
    "StreamAgeAlarm": {
        "healthy": {
            "2 s behind": {_app("MillisBehindLatest"): _each_minute(lambda m: 2_000)},
            "a replay under another application, 20 h behind": {
                _app("MillisBehindLatest"): _each_minute(lambda m: 1_500),
                _app("MillisBehindLatest", REPLAY): _each_minute(lambda m: 20 * 3_600_000),
            },
            "a 3-minute catch-up after a deploy": {_app("MillisBehindLatest"): _each_minute(_last(3, 900_000, 2_000))},
        },
        "failing": {
            "15 min behind for 10 min": {_app("MillisBehindLatest"): _each_minute(_last(10, 900_000, 2_000))},
            "no processor reports": {_app("MillisBehindLatest"): _each_minute(lambda m: 2_000 if m < 40 else None)},
        },
    },
    "StreamAgeNearRetentionAlarm": {
        "healthy": {
            "15 min behind": {_app("MillisBehindLatest"): _each_minute(lambda m: 900_000)},
            "a replay 20 h behind": {_app("MillisBehindLatest", REPLAY): _each_minute(lambda m: 20 * 3_600_000)},
        },
        "failing": {"13 h behind": {_app("MillisBehindLatest"): _each_minute(lambda m: 13 * 3_600_000)}},
    },
    "ShardWithoutOwnerAlarm": {
        "healthy": {
            "every record read": _shards(lambda m: 4000),
            "a one-minute pause in a deploy, caught up": _shards(lambda m: {30: 0, 31: 8000}.get(m, 4000)),
            "rising traffic read a minute late": {
                ("AWS/Kinesis", "IncomingRecords", frozenset({("StreamName", STREAM)})): _each_minute(
                    lambda m: 4000 + 10 * m
                ),
                _app("Records"): _each_minute(lambda m: 4000 + 10 * (m - 1)),
            },
            "a replay reading fast beside a healthy production": _shards(
                lambda m: 4000, other={_app("Records", REPLAY): _each_minute(lambda m: 40_000)}
            ),
            "a quiet stream": {},
        },
        "failing": {
            "one shard of four without an owner": _shards(lambda m: 3000),
            "one shard of forty without an owner": _shards(lambda m: 3900),
            "nothing read while a replay reads everything": _shards(
                lambda m: 0 if m >= 20 else 4000, other={_app("Records", REPLAY): _each_minute(lambda m: 4000)}
            ),
        },
    },
    "DeadLettersAlarm": {
        "healthy": {"none written": {}},
        "failing": {"three dead letters": {_app("DeadLetters"): [(MINUTES * 60.0 - 30, 3.0)]}},
    },
    "EventDeliveryFailuresAlarm": {
        "healthy": {"no failure published": {}, "zeros": _events("FailedInvocations", "task-rule", lambda m: 0)},
        "failing": {
            "task events failed": _events("FailedInvocations", "task-rule", _last(2, 5, 0)),
            "instance events lost": _events("InvocationsFailedToBeSentToDlq", "instance-rule", _last(1, 1, None)),
        },
    },
    "EventDeadLetterQueuesAlarm": {
        "healthy": {"empty queues": _queue("task-queue", lambda m: 0)},
        "failing": {"two waiting": _queue("instance-queue", _last(10, 2, 0))},
    },
    "WriteStallAlarm": {
        "healthy": {
            "nothing retried": {},
            "one request retried for 40 s": {_app("WriteRetryingFor"): [(MINUTES * 60.0 - 20, 40_000.0)]},
        },
        "failing": {"retried for 7 min": {_app("WriteRetryingFor"): _each_minute(_last(7, 420_000, None))}},
    },
    "WriteRetriesAlarm": {
        "healthy": {"a few retries once": {_app("WriteRetries"): [(MINUTES * 60.0 - 400, 4.0)]}},
        "failing": {"retries for 20 min": {_app("WriteRetries"): _each_minute(_last(20, 5, 0))}},
    },
    "WorkersBelowDesiredAlarm": {
        "healthy": {
            "two workers": {_app("WorkerHeartbeat"): _each_minute(lambda m: 1, per_minute=2)},
            "a rolling deploy, four for a while": {
                _app("WorkerHeartbeat"): _each_minute(lambda m: 1, per_minute=2) + _each_minute(_last(2, 1, None), 2)
            },
        },
        "failing": {"one worker of two": {_app("WorkerHeartbeat"): _each_minute(lambda m: 1)}, "none runs": {}},
    },
}


def _resolved(properties: dict[str, Any]) -> dict[str, Any]:
    return dict(resolve(properties, PARAMETERS, CONDITIONS, IMPORTS))


def _problems(alarm: dict[str, Any], scenarios: dict[str, dict[str, Samples]]) -> list[str]:
    wrong = []
    for kind, wanted in (("healthy", "OK"), ("failing", "ALARM")):
        for name, samples in scenarios[kind].items():
            verdict = evaluate(alarm, samples, MINUTES * 60.0)
            if (verdict.state == "ALARM") != (wanted == "ALARM"):
                wrong.append(f"{kind} '{name}': {verdict.state} on {verdict.datapoints}")
    return wrong


def test_every_alarm_has_a_healthy_run_and_a_failure_to_be_tested_by() -> None:
    assert set(_alarms()) == set(SCENARIOS)
    assert all(s["healthy"] and s["failing"] for s in SCENARIOS.values())


@pytest.mark.parametrize("logical_id", sorted(SCENARIOS))
def test_each_alarm_stays_ok_on_a_healthy_run_and_fires_on_its_failure(logical_id: str) -> None:
    problems = _problems(_resolved(_alarms()[logical_id]), SCENARIOS[logical_id])
    assert not problems, f"{logical_id}: " + "; ".join(problems)


FLIPPED = {
    "GreaterThanThreshold": "LessThanOrEqualToThreshold",
    "GreaterThanOrEqualToThreshold": "LessThanThreshold",
    "LessThanThreshold": "GreaterThanOrEqualToThreshold",
    "LessThanOrEqualToThreshold": "GreaterThanThreshold",
}


@pytest.mark.parametrize("logical_id", sorted(SCENARIOS))
def test_a_flipped_comparison_or_a_threshold_off_by_1000_fails_the_alarm_tests(logical_id: str) -> None:
    """The alarm tests can fail: each mutation of the alarm makes some scenario give the wrong state (a zero
    threshold has no factor to be off by)."""
    alarm = _resolved(_alarms()[logical_id])
    assert set(FLIPPED) == set(COMPARISONS)
    flipped = {**alarm, "ComparisonOperator": FLIPPED[alarm["ComparisonOperator"]]}
    assert _problems(flipped, SCENARIOS[logical_id]), "a flipped comparison went unnoticed"
    if float(alarm["Threshold"]) != 0:
        for factor in (1000, 1 / 1000):
            scaled = {**alarm, "Threshold": float(alarm["Threshold"]) * factor}
            assert _problems(scaled, SCENARIOS[logical_id]), f"a threshold x{factor} went unnoticed"


def test_the_alarm_evaluator_can_tell_a_missing_datapoint_by_the_alarms_own_rule() -> None:
    alarm = _resolved(_alarms()["WorkersBelowDesiredAlarm"])
    assert evaluate(alarm, {}, MINUTES * 60.0).state == "ALARM"
    assert evaluate({**alarm, "TreatMissingData": "notBreaching"}, {}, MINUTES * 60.0).state == "OK"
    assert evaluate({**alarm, "TreatMissingData": "missing"}, {}, MINUTES * 60.0).state == "INSUFFICIENT_DATA"


def test_every_alarm_is_on_what_this_application_reports_never_the_stream_wide_read_age() -> None:
    """A replay or a catch-up under another applicationName must not fire production's alarms."""
    text = json.dumps(_alarms())
    assert "IteratorAgeMilliseconds" not in text and "SubscribeToShardEvent" not in text
    for logical_id, alarm in _alarms().items():
        resolved = _resolved(alarm)
        metrics = (
            [resolved]
            if "MetricName" in resolved
            else [q["MetricStat"]["Metric"] for q in resolved["Metrics"] if "MetricStat" in q]
        )
        for metric in metrics:
            if metric["Namespace"] == "ECSState":
                assert metric["Dimensions"] == [{"Name": "Application", "Value": APP}], logical_id


# ------------------------------------------------------------------------------------ monitoring.md
def _doc_alarm_rows() -> dict[str, list[str]]:
    text = (ROOT / "docs" / "monitoring.md").read_text(encoding="utf-8")
    section = text.split("## Alarms", 1)[1].split("\n## ", 1)[0]
    rows = [r for r in section.splitlines() if r.startswith("| `")]
    return {r.split("`")[1]: [c.strip() for c in r.strip("|").split(" | ")] for r in rows}


def test_monitoring_md_lists_every_alarm_with_the_templates_missing_data_behaviour() -> None:
    rows, problems = _doc_alarm_rows(), []
    header = (ROOT / "docs" / "monitoring.md").read_text(encoding="utf-8").split("| Alarm |", 1)[1].splitlines()[0]
    column = [c.strip() for c in ("Alarm |" + header).strip("|").split("|")].index("Missing data")
    names = {}
    for logical_id, alarm in _alarms().items():
        name = alarm["AlarmName"]["Fn::Sub"][0].removeprefix("${App}-")
        names[name] = logical_id
        if name not in rows:
            problems.append(f"{name} is not in monitoring.md's alarm table")
            continue
        treat = alarm["TreatMissingData"]
        wanted = set(treat["Fn::If"][1:]) if isinstance(treat, dict) else {treat}
        stated = set(re.findall(r"`(breaching|notBreaching|ignore|missing)`", rows[name][column]))
        if stated != wanted:
            problems.append(f"{name}: monitoring.md says {stated or 'nothing'}, the template {wanted}")
        runbook = alarm["AlarmDescription"].split("First:", 1)[1].split()[0:2]
        if not runbook:
            problems.append(f"{name}: the alarm's description has no 'First:' step")
    assert set(rows) == set(names), f"monitoring.md rows {set(rows) ^ set(names)} are not the template's alarms"
    assert not problems, "\n".join(problems)
    count = {9: "nine"}[len(names)]
    assert f"creates {count} alarms" in (ROOT / "docs" / "monitoring.md").read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------- dashboard
def test_the_deployed_dashboard_is_json_naming_the_stacks_metrics_and_every_alarm(stack: dict[str, Any]) -> None:
    outputs, core = stack["outputs"], stack["core"]["outputs"]
    body = json.loads(client("cloudwatch").get_dashboard(DashboardName=outputs["DashboardName"])["DashboardBody"])
    text = json.dumps(body)
    assert "${" not in text  # every substitution resolved
    assert core["StreamName"] in text and f'"Application", "{core["ApplicationName"]}"' in text
    assert core["TaskStateRuleName"] in text and core["InstanceEventsDeadLetterQueueName"] in text
    (alarms,) = [w["properties"]["alarms"] for w in body["widgets"] if w["type"] == "alarm"]
    names = {a["AlarmName"]["Fn::Sub"][0].replace("${App}", core["ApplicationName"]) for a in _alarms().values()}
    assert {a.rsplit(":alarm:", 1)[1] for a in alarms} == names


# ------------------------------------------------------------------------------------------ the image
def test_the_task_health_check_is_the_images_and_costs_no_aws_call() -> None:
    (container,) = load_template(WORKERS_TEMPLATE)["Resources"]["WorkerTaskDefinition"]["Properties"][
        "ContainerDefinitions"
    ]
    check = container["HealthCheck"]
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    (line,) = [x for x in dockerfile.replace("\\\n", " ").splitlines() if x.startswith("HEALTHCHECK")]
    assert json.loads(line.split(" CMD ", 1)[1]) == check["Command"][1:] and check["Command"][0] == "CMD"
    assert f"--interval={check['Interval']}s" in line and f"--retries={check['Retries']}" in line
    assert f"--start-period={check['StartPeriod']}s" in line and f"--timeout={check['Timeout']}s" in line
    assert check["Command"][1:] == ["python", "-m", "processor.worker.liveness"]
    assert "ECS_STATE_HEARTBEAT_DIR=" in dockerfile  # where the probe and ecs-state run meet


def test_cpu_architecture_is_the_task_platform_and_an_architecture_the_build_knows() -> None:
    template = load_template(WORKERS_TEMPLATE)
    parameter = template["Parameters"]["CpuArchitecture"]
    platform = template["Resources"]["WorkerTaskDefinition"]["Properties"]["RuntimePlatform"]
    assert platform == {"OperatingSystemFamily": "LINUX", "CpuArchitecture": {"Ref": "CpuArchitecture"}}
    script = (ROOT / "scripts" / "image").read_text(encoding="utf-8")
    assert set(parameter["AllowedValues"]) == {"X86_64", "ARM64"}
    assert "case $arch in amd64|arm64)" in script
