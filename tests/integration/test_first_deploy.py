"""What a first deploy needs besides the template: the deploying identity's permissions (deploy/deployer-policy.json)
cover every resource type the templates in deploy/ hold, and the optional ``PermissionsBoundary`` parameter bounds
every role the stack makes.

``RESOURCE_ACTIONS`` is what CloudFormation calls, with the deployer's credentials, to create, update, read and
delete each resource type (the handlers' permissions in the type's CloudFormation resource schema: ``aws
cloudformation describe-type --type RESOURCE --type-name AWS::...``, ``handlers``), as far as the template's
properties use them. A type a template gains without an entry here fails the test: map it, and grant its actions.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import yaml
from cfn_template import TEMPLATE, _CfnLoader, deploy

from processor.aws import client

DEPLOYER_POLICY = TEMPLATE.parent / "deployer-policy.json"

#: every stack operation the documented deploy, update, rollback and teardown commands use
CLOUDFORMATION = {
    "cloudformation:CreateStack",
    "cloudformation:UpdateStack",
    "cloudformation:DeleteStack",
    "cloudformation:DescribeStacks",
    "cloudformation:DescribeStackEvents",
    "cloudformation:GetTemplateSummary",
    "cloudformation:CreateChangeSet",
    "cloudformation:DescribeChangeSet",
    "cloudformation:ExecuteChangeSet",
}

RESOURCE_ACTIONS: dict[str, set[str]] = {
    "AWS::Kinesis::Stream": {
        "kinesis:CreateStream",
        "kinesis:DeleteStream",
        "kinesis:DescribeStreamSummary",
        "kinesis:IncreaseStreamRetentionPeriod",
        "kinesis:DecreaseStreamRetentionPeriod",
        "kinesis:StartStreamEncryption",
        "kinesis:UpdateShardCount",
        "kinesis:UpdateStreamMode",
        "kinesis:AddTagsToStream",
        "kinesis:ListTagsForStream",
    },
    "AWS::DynamoDB::Table": {
        "dynamodb:CreateTable",
        "dynamodb:DeleteTable",
        "dynamodb:DescribeTable",
        "dynamodb:UpdateTable",
        "dynamodb:DescribeTimeToLive",
        "dynamodb:UpdateTimeToLive",
        "dynamodb:DescribeContinuousBackups",
        "dynamodb:UpdateContinuousBackups",
        "dynamodb:ListTagsOfResource",
        "dynamodb:TagResource",
    },
    "AWS::SQS::Queue": {
        "sqs:CreateQueue",
        "sqs:DeleteQueue",
        "sqs:GetQueueAttributes",
        "sqs:SetQueueAttributes",
        "sqs:GetQueueUrl",
        "sqs:ListQueueTags",
        "sqs:TagQueue",
    },
    "AWS::SQS::QueuePolicy": {"sqs:SetQueueAttributes", "sqs:GetQueueAttributes"},
    "AWS::Events::Rule": {
        "events:PutRule",
        "events:DeleteRule",
        "events:DescribeRule",
        "events:PutTargets",
        "events:RemoveTargets",
        "events:ListTargetsByRule",
        "iam:PassRole",
    },
    "AWS::IAM::Role": {
        "iam:CreateRole",
        "iam:DeleteRole",
        "iam:GetRole",
        "iam:UpdateAssumeRolePolicy",
        "iam:PutRolePolicy",
        "iam:GetRolePolicy",
        "iam:DeleteRolePolicy",
        "iam:ListRolePolicies",
        "iam:AttachRolePolicy",
        "iam:DetachRolePolicy",
        "iam:ListAttachedRolePolicies",
        "iam:PutRolePermissionsBoundary",
        "iam:DeleteRolePermissionsBoundary",
    },
    "AWS::IAM::ManagedPolicy": {
        "iam:CreatePolicy",
        "iam:DeletePolicy",
        "iam:GetPolicy",
        "iam:GetPolicyVersion",
        "iam:CreatePolicyVersion",
        "iam:DeletePolicyVersion",
        "iam:ListPolicyVersions",
        "iam:ListEntitiesForPolicy",
    },
    "AWS::Logs::LogGroup": {
        "logs:CreateLogGroup",
        "logs:DeleteLogGroup",
        "logs:DescribeLogGroups",
        "logs:PutRetentionPolicy",
        "logs:DeleteRetentionPolicy",
    },
    "AWS::ECS::Cluster": {"ecs:CreateCluster", "ecs:DeleteCluster", "ecs:DescribeClusters", "ecs:UpdateCluster"},
    "AWS::ECS::TaskDefinition": {
        "ecs:RegisterTaskDefinition",
        "ecs:DeregisterTaskDefinition",
        "ecs:DescribeTaskDefinition",
        "iam:PassRole",
    },
    "AWS::ECS::Service": {
        "ecs:CreateService",
        "ecs:DeleteService",
        "ecs:DescribeServices",
        "ecs:UpdateService",
        "iam:CreateServiceLinkedRole",
    },
    # the default bus's policy for an organisation (OrganizationId)
    "AWS::Events::EventBusPolicy": {"events:PutPermission", "events:RemovePermission", "events:DescribeEventBus"},
    "AWS::CloudWatch::Alarm": {"cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:DescribeAlarms"},
    "AWS::CloudWatch::Dashboard": {"cloudwatch:PutDashboard", "cloudwatch:GetDashboard", "cloudwatch:DeleteDashboards"},
    # the alarm topic and the worker security group the stack may make
    "AWS::SNS::Topic": {"sns:CreateTopic", "sns:DeleteTopic", "sns:GetTopicAttributes", "sns:SetTopicAttributes"},
    "AWS::SNS::Subscription": {"sns:Subscribe", "sns:Unsubscribe", "sns:GetSubscriptionAttributes"},
    "AWS::SNS::TopicPolicy": {"sns:SetTopicAttributes", "sns:GetTopicAttributes"},
    "AWS::EC2::SecurityGroup": {
        "ec2:CreateSecurityGroup",
        "ec2:DeleteSecurityGroup",
        "ec2:DescribeSecurityGroups",
        "ec2:AuthorizeSecurityGroupEgress",
        "ec2:RevokeSecurityGroupEgress",
    },
}


def templates() -> dict[Path, dict[str, Any]]:
    return {
        path: yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 (SafeLoader subclass)
        for path in sorted(TEMPLATE.parent.glob("*.yaml"))
    }


def resource_types() -> dict[str, str]:
    """{resource type: the first template and logical id that has it}, over every template in deploy/."""
    found: dict[str, str] = {}
    for path, template in templates().items():
        for logical_id, resource in template["Resources"].items():
            found.setdefault(resource["Type"], f"{path.name}: {logical_id}")
    return found


def policy() -> dict[str, Any]:
    return json.loads(DEPLOYER_POLICY.read_text(encoding="utf-8"))


def granted(document: dict[str, Any]) -> set[str]:
    return {
        action
        for statement in document["Statement"]
        if statement["Effect"] == "Allow"
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }


def missing_for_the_templates(document: dict[str, Any]) -> dict[str, list[str]]:
    have = granted(document)
    missing = {t: sorted(RESOURCE_ACTIONS[t] - have) for t in resource_types() if t in RESOURCE_ACTIONS}
    missing["(stack operations)"] = sorted(CLOUDFORMATION - have)
    return {t: actions for t, actions in missing.items() if actions}


def test_every_resource_type_of_the_templates_has_its_actions_mapped() -> None:
    unmapped = {t: where for t, where in resource_types().items() if t not in RESOURCE_ACTIONS}
    assert not unmapped, f"map these resource types in RESOURCE_ACTIONS and grant them in {DEPLOYER_POLICY}: {unmapped}"


def test_the_deployer_policy_grants_every_action_the_templates_resource_types_need() -> None:
    assert not missing_for_the_templates(policy())


def test_the_check_fails_for_a_policy_without_the_role_permissions_boundary_action() -> None:
    document = policy()
    for statement in document["Statement"]:
        if isinstance(statement["Action"], list):
            statement["Action"] = [a for a in statement["Action"] if a != "iam:PutRolePermissionsBoundary"]
    assert missing_for_the_templates(document) == {"AWS::IAM::Role": ["iam:PutRolePermissionsBoundary"]}


def test_the_deployer_policy_grants_nothing_no_resource_type_needs_and_passes_roles_to_two_services_only() -> None:
    document = policy()
    needed = set().union(*RESOURCE_ACTIONS.values()) | CLOUDFORMATION
    services = {a.split(":")[0] for a in needed}
    extra = sorted(a for a in granted(document) if a.split(":")[0] not in services)
    assert not extra, f"actions of services no resource type uses: {extra}"
    assert not [a for a in granted(document) if "*" in a], "no wildcard actions"
    (pass_role,) = [s for s in document["Statement"] if "iam:PassRole" in s["Action"]]
    assert pass_role["Action"] == ["iam:PassRole"]
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": ["events.amazonaws.com", "ecs-tasks.amazonaws.com"]}
    }
    assert not [s for s in document["Statement"] if "iam:*" in s["Action"] or s["Effect"] != "Allow"]


def test_the_deployer_policy_fits_a_managed_policy_and_iam_accepts_it(moto_server: Any) -> None:
    text = json.dumps(policy(), separators=(",", ":"))
    assert len(text) <= 6144, "a managed policy holds at most 6,144 characters (IAM quotas, whitespace excluded)"
    arn = client("iam").create_policy(PolicyName=f"ecs-state-deployer-{uuid.uuid4().hex[:8]}", PolicyDocument=text)
    assert arn["Policy"]["Arn"].startswith("arn:aws:iam::")


# ------------------------------------------------------------------------------------ permissions boundary
def test_every_role_of_every_template_takes_the_optional_permissions_boundary() -> None:
    for path, template in templates().items():
        assert template["Parameters"]["PermissionsBoundary"]["Default"] == ""
        roles = {k: r for k, r in template["Resources"].items() if r["Type"] == "AWS::IAM::Role"}
        for logical_id, role in roles.items():
            assert role["Properties"].get("PermissionsBoundary") == {
                "Fn::If": ["Bounded", {"Ref": "PermissionsBoundary"}, {"Ref": "AWS::NoValue"}]
            }, f"{path.name}: {logical_id} is not bounded by the PermissionsBoundary parameter"


def test_a_stack_deployed_with_a_boundary_bounds_its_roles_and_one_without_leaves_them_unbounded(
    moto_server: Any,
) -> None:
    iam = client("iam")
    suffix = uuid.uuid4().hex[:8]
    boundary = iam.create_policy(
        PolicyName=f"boundary-{suffix}",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        ),
    )["Policy"]["Arn"]
    names = {
        "StreamName": f"events-{suffix}",
        "TaskTableName": f"tasks-{suffix}",
        "InstanceTableName": f"instances-{suffix}",
        "DeadLetterTableName": f"dead-{suffix}",
        "CatalogTableName": f"clusters-{suffix}",
        "ApplicationName": f"app-{suffix}",
    }
    bounded = deploy(f"bounded-{suffix}", {**names, "PermissionsBoundary": boundary})
    role = iam.get_role(RoleName=bounded["resources"]["EventBridgeToKinesisRole"])["Role"]
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == boundary
    names = {k: v.replace(suffix, suffix + "b") for k, v in names.items()}
    plain = deploy(f"plain-{suffix}", names)
    assert "PermissionsBoundary" not in iam.get_role(RoleName=plain["resources"]["EventBridgeToKinesisRole"])["Role"]
