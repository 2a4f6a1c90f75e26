"""Test helpers around deploy/ecs-state.yaml: read it (CloudFormation's short-form tags included), create its
tables directly from its own table definitions, deploy it into the moto server. Not a test module."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from processor.aws import client
from processor.core.schema import TASK, index_attributes

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "ecs-state.yaml"
TABLE_RESOURCES = {"task": "TaskTable", "instance": "InstanceTable", "dead_letter": "DeadLetterTable"}


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns ``!Ref x`` into ``{"Ref": x}``, ``!GetAtt a.b`` into ``{"Fn::GetAtt": [a, b]}`` and
    every other ``!Fn`` into ``{"Fn::Fn": ...}``: the long form CloudFormation itself uses."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _tag)


def load_template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 (SafeLoader subclass)


def create_tables_from_template(suffix: str | None = None) -> dict[str, str]:
    """Create the template's three tables (same keys, index, billing) under unique names in the moto server;
    returns {"task": name, "instance": name, "dead_letter": name}."""
    suffix = suffix or uuid.uuid4().hex[:8]
    resources = load_template()["Resources"]
    ddb = client("dynamodb")
    names = {}
    for kind, logical_id in TABLE_RESOURCES.items():
        props = resources[logical_id]["Properties"]
        name = f"{logical_id}-{suffix}"
        request = {
            "TableName": name,
            "BillingMode": props["BillingMode"],
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
        }
        if props.get("GlobalSecondaryIndexes"):
            request["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        ddb.create_table(**request)
        names[kind] = name
    return names


def indexed(item: dict[str, Any]) -> dict[str, Any]:
    """A low-level task item put directly by a test, with the derived index keys the processor would write
    (``core/schema.py`` ``index_attributes``)."""
    plain = {name: value["S"] for name, value in item.items() if "S" in value}
    return {**item, **{name: {"S": value} for name, value in index_attributes(TASK, plain).items()}}


def properties_file(directory: Path, tables: dict[str, str]) -> Path:
    path = directory / "test.properties"
    path.write_text(
        f"ecsState.taskTable = {tables['task']}\n"
        f"ecsState.instanceTable = {tables['instance']}\n"
        f"ecsState.deadLetterTable = {tables['dead_letter']}\n",
        encoding="utf-8",
    )
    return path


def deploy(stack_name: str, parameters: dict[str, str], deadline_s: float = 60.0) -> dict[str, Any]:
    """create_stack in the moto server and poll until it settles; returns the stack description plus
    ``resources`` = {logical id: physical id}."""
    cf = client("cloudformation")
    cf.create_stack(
        StackName=stack_name,
        TemplateBody=TEMPLATE.read_text(encoding="utf-8"),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    end = time.monotonic() + deadline_s
    while True:
        stack = cf.describe_stacks(StackName=stack_name)["Stacks"][0]
        if not stack["StackStatus"].endswith("_IN_PROGRESS"):
            break
        if time.monotonic() > end:
            raise TimeoutError(f"stack {stack_name} still {stack['StackStatus']} after {deadline_s}s")
        time.sleep(0.2)
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise AssertionError(f"stack {stack_name}: {stack['StackStatus']} {stack.get('StackStatusReason')}")
    summaries = cf.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
    stack["resources"] = {
        r["LogicalResourceId"]: r.get("PhysicalResourceId") for r in summaries if r.get("LogicalResourceId")
    }
    stack["resource_types"] = {
        r["LogicalResourceId"]: r.get("ResourceType") for r in summaries if r.get("LogicalResourceId")
    }
    stack["outputs"] = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    return stack
