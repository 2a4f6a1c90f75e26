"""The organisation topology on moto: the central core stack with OrganizationId, and deploy/ecs-state-member.yaml
deployed in another account (moto keeps each account's resources apart, as AWS does; the account is chosen per
request, cfn_template.in_account). The member forwards both ECS rules to the central default bus through its own
role, with a dead-letter queue; its delivery-failure alarm's state changes go to the central bus too; its optional
read-only role is trusted by the central account and reads ECS only.

moto's gaps, each with a test that fails the day moto closes it: AWS::Events::EventBusPolicy, AWS::SQS::QueuePolicy
and AWS::CloudWatch::Alarm are skipped (checked in the template text instead), Conditions on AWS::Region are
evaluated, and EventBridge delivers nothing across accounts (so the hop itself is not exercised)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from cfn_template import MEMBER_TEMPLATE, TEMPLATE, deploy, in_account, load_template
from cfn_template import core_params as _params
from cfn_template import document as _document

from processor.aws import client

CENTRAL, MEMBER = "123456789012", "210987654321"
ORGANIZATION = "o-a1b2c3d4e5"
CENTRAL_BUS = f"arn:aws:events:us-east-1:{CENTRAL}:event-bus/default"


@pytest.fixture(scope="module")
def central(moto_server: Any) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    params = _params(suffix, OrganizationId=ORGANIZATION)
    result = deploy(f"ecs-state-{suffix}", params)
    result["params"] = params
    return result


@pytest.fixture(scope="module")
def member(moto_server: Any, central: dict[str, Any]) -> dict[str, Any]:
    params = {"CentralAccountId": CENTRAL, "CentralRegion": "us-east-1"}
    result = deploy(f"ecs-state-member-{uuid.uuid4().hex[:8]}", params, template=MEMBER_TEMPLATE, account_id=MEMBER)
    result["params"] = params
    return result


def test_the_member_stack_lives_in_the_member_account_only(member: dict[str, Any]) -> None:
    name = member["StackName"]
    assert member["StackId"].split(":")[4] == MEMBER
    assert name not in {s["StackName"] for s in client("cloudformation").describe_stacks()["Stacks"]}


@pytest.mark.parametrize(
    "logical_id, detail_type",
    [("TaskStateRule", "ECS Task State Change"), ("InstanceStateRule", "ECS Container Instance State Change")],
)
def test_each_ecs_rule_forwards_to_the_central_bus_with_a_role_retries_and_a_dead_letter_queue(
    member: dict[str, Any], logical_id: str, detail_type: str
) -> None:
    events = in_account("events", MEMBER)
    name = member["resources"][logical_id]
    assert json.loads(events.describe_rule(Name=name)["EventPattern"]) == {
        "source": ["aws.ecs"],
        "detail-type": [detail_type],
    }
    (target,) = events.list_targets_by_rule(Rule=name)["Targets"]
    assert target["Arn"] == CENTRAL_BUS
    assert target["RoleArn"].split(":")[4] == MEMBER and target["RoleArn"].endswith(member["resources"]["ForwardRole"])
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}
    queue_url = member["outputs"]["DeadLetterQueueUrl"]
    queue_arn = in_account("sqs", MEMBER).get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    assert target["DeadLetterConfig"] == {"Arn": queue_arn["Attributes"]["QueueArn"]}


def test_the_forward_role_may_only_put_events_on_the_central_bus(member: dict[str, Any]) -> None:
    iam, role = in_account("iam", MEMBER), member["resources"]["ForwardRole"]
    (trust,) = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": MEMBER}}
    (policy,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
    (grant,) = _document(iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"])["Statement"]
    assert (grant["Action"], grant["Resource"]) == ("events:PutEvents", CENTRAL_BUS)


def test_the_read_only_role_is_named_trusted_by_the_central_account_and_reads_ecs_only(member: dict[str, Any]) -> None:
    iam = in_account("iam", MEMBER)
    role = iam.get_role(RoleName="ecs-state-member-read")["Role"]
    assert member["outputs"]["ReadOnlyRoleArn"] == role["Arn"] == f"arn:aws:iam::{MEMBER}:role/ecs-state-member-read"
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"AWS": f"arn:aws:iam::{CENTRAL}:root"} and trust["Action"] == "sts:AssumeRole"
    (policy,) = iam.list_role_policies(RoleName="ecs-state-member-read")["PolicyNames"]
    document = _document(iam.get_role_policy(RoleName="ecs-state-member-read", PolicyName=policy)["PolicyDocument"])
    (grant,) = document["Statement"]
    assert sorted(grant["Action"]) == [
        "ecs:DescribeContainerInstances",
        "ecs:DescribeTasks",
        "ecs:ListClusters",
        "ecs:ListContainerInstances",
        "ecs:ListTasks",
    ]


def test_only_the_home_regions_instance_makes_the_read_only_role(moto_server: Any) -> None:
    """IAM is global: a StackSet deployed to several regions of an account makes the named role once."""
    other = {"CentralAccountId": CENTRAL, "CentralRegion": "eu-west-1"}
    stack = deploy(
        f"ecs-state-member-{uuid.uuid4().hex[:8]}", other, template=MEMBER_TEMPLATE, account_id="345678901234"
    )
    assert "ReadOnlyRole" not in stack["resources"] and "ReadOnlyRoleArn" not in stack["outputs"]
    assert {"TaskStateRule", "InstanceStateRule", "DeadLetterQueue"} <= set(stack["resources"])
    (target,) = in_account("events", "345678901234").list_targets_by_rule(Rule=stack["resources"]["TaskStateRule"])[
        "Targets"
    ]
    assert target["Arn"] == f"arn:aws:events:eu-west-1:{CENTRAL}:event-bus/default"  # across regions


def test_the_members_alarm_state_changes_go_to_the_central_bus(member: dict[str, Any]) -> None:
    events = in_account("events", MEMBER)
    name = member["resources"]["AlarmForwardRule"]
    pattern = json.loads(events.describe_rule(Name=name)["EventPattern"])
    assert pattern["source"] == ["aws.cloudwatch"] and pattern["detail-type"] == ["CloudWatch Alarm State Change"]
    (alarm_arn,) = pattern["resources"]
    assert alarm_arn.endswith(f":alarm:ecs-state-member-delivery-failures-{MEMBER}-us-east-1")
    (target,) = events.list_targets_by_rule(Rule=name)["Targets"]
    assert target["Arn"] == CENTRAL_BUS


def test_moto_skips_the_members_alarm_and_queue_policy_so_the_template_is_checked_instead(
    member: dict[str, Any],
) -> None:
    assert in_account("cloudwatch", MEMBER).describe_alarms()["MetricAlarms"] == [], (
        "moto now creates AWS::CloudWatch::Alarm: check the member alarm here"
    )
    resources = load_template(MEMBER_TEMPLATE)["Resources"]
    alarm = resources["DeliveryFailuresAlarm"]["Properties"]
    watched = {
        (q["MetricStat"]["Metric"]["MetricName"], json.dumps(q["MetricStat"]["Metric"]["Dimensions"][0]["Value"]))
        for q in alarm["Metrics"]
        if "MetricStat" in q
    }
    assert watched == {
        ("FailedInvocations", json.dumps({"Ref": "TaskStateRule"})),
        ("FailedInvocations", json.dumps({"Ref": "InstanceStateRule"})),
        ("ApproximateNumberOfMessagesVisible", json.dumps({"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]})),
    }
    assert (alarm["ComparisonOperator"], alarm["Threshold"], alarm["TreatMissingData"]) == (
        "GreaterThanThreshold",
        0,
        "notBreaching",
    )
    (grant,) = resources["DeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert grant["Condition"]["ArnEquals"]["aws:SourceArn"] == [
        {"Fn::GetAtt": ["TaskStateRule", "Arn"]},
        {"Fn::GetAtt": ["InstanceStateRule", "Arn"]},
    ]


def test_moto_skips_the_organisations_bus_policy_so_the_template_is_checked_instead(central: dict[str, Any]) -> None:
    """The central default bus accepts PutEvents from every account of the organisation, and only with
    OrganizationId set; the core's rules match source aws.ecs whatever the account, so forwarded events feed the
    stream."""
    assert "OrganizationEventBusPolicy" not in central["resources"]
    policy = client("events").describe_event_bus(Name="default").get("Policy")
    assert not policy or ORGANIZATION not in policy, "moto now applies AWS::Events::EventBusPolicy: check it here"
    template = load_template(TEMPLATE)
    bus_policy = template["Resources"]["OrganizationEventBusPolicy"]
    assert bus_policy["Condition"] == "FromOrganization"
    assert template["Conditions"]["FromOrganization"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "OrganizationId"}, ""]}]}
    statement = bus_policy["Properties"]["Statement"]
    assert (statement["Effect"], statement["Principal"], statement["Action"]) == ("Allow", "*", "events:PutEvents")
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}}}
    for rule in ("TaskStateRule", "InstanceStateRule"):
        pattern = template["Resources"][rule]["Properties"]["EventPattern"]
        assert set(pattern) == {"source", "detail-type"}  # no account: forwarded events match too
