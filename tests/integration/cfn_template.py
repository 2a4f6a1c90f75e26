"""Test helpers around the templates in deploy/ (the core stack ecs-state.yaml, the workers and alarms stack
ecs-state-workers.yaml over it, the organisation member ecs-state-member.yaml): read them (CloudFormation's
short-form tags included), create the core's tables directly from its own table definitions, deploy a template
into the moto server, in moto's default account or another one. Not a test module."""

from __future__ import annotations

import ast
import json
import random
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import yaml

from processor.aws import client
from processor.config import Settings
from processor.core.schema import TASK, index_attributes
from processor.ops.setup_tables import ensure_tables

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
TEMPLATE = DEPLOY / "ecs-state.yaml"
WORKERS_TEMPLATE = DEPLOY / "ecs-state-workers.yaml"
MEMBER_TEMPLATE = DEPLOY / "ecs-state-member.yaml"
TEMPLATES = (TEMPLATE, WORKERS_TEMPLATE, MEMBER_TEMPLATE)
TABLE_RESOURCES = {
    "task": "TaskTable",
    "instance": "InstanceTable",
    "dead_letter": "DeadLetterTable",
    "catalogue": "CatalogTable",
}


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


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 (SafeLoader subclass)


def in_account(service: str, account_id: str) -> Any:
    """A client of the moto server acting in another account: moto takes the account of a request from its
    ``x-moto-account-id`` header (moto/core/responses.py ``get_current_account``), so each account has its own
    resources, as separate AWS accounts do."""
    c = client(service)
    c.meta.events.register(
        "before-sign.*.*", lambda request, **_: request.headers.__setitem__("x-moto-account-id", account_id)
    )
    return c


def create_tables_from_template(suffix: str | None = None) -> dict[str, str]:
    """Create the template's four tables (same keys, index, billing) under unique names in the moto server;
    returns {"task": name, "instance": name, "dead_letter": name, "catalogue": name}."""
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
        f"ecsState.deadLetterTable = {tables['dead_letter']}\n"
        + (f"ecsState.catalogTable = {tables['catalogue']}\n" if "catalogue" in tables else ""),
        encoding="utf-8",
    )
    return path


def deploy(
    stack_name: str,
    parameters: dict[str, str],
    deadline_s: float = 60.0,
    template: Path = TEMPLATE,
    account_id: str | None = None,
) -> dict[str, Any]:
    """create_stack in the moto server (in ``account_id`` when given) and poll until it settles; returns the stack
    description plus ``resources`` = {logical id: physical id}."""
    cf = in_account("cloudformation", account_id) if account_id else client("cloudformation")
    cf.create_stack(
        StackName=stack_name,
        TemplateBody=template.read_text(encoding="utf-8"),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
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


def core_params(suffix: str, **extra: str) -> dict[str, str]:
    """The core stack's parameters with unique names: the moto server is shared by the whole test session."""
    return {
        "StreamName": f"events-{suffix}",
        "TaskTableName": f"tasks-{suffix}",
        "InstanceTableName": f"instances-{suffix}",
        "DeadLetterTableName": f"dead-{suffix}",
        "CatalogTableName": f"clusters-{suffix}",
        "ApplicationName": f"app-{suffix}",
        **extra,
    }


def policy_document(policy_arn: str) -> dict[str, Any]:
    iam = client("iam")
    version = iam.get_policy(PolicyArn=policy_arn)["Policy"]["DefaultVersionId"]
    return document(iam.get_policy_version(PolicyArn=policy_arn, VersionId=version)["PolicyVersion"]["Document"])


def document(text_or_dict: str | dict[str, Any]) -> dict[str, Any]:
    """IAM returns policy documents URL-encoded JSON, which botocore decodes for most calls. moto quirk: an inline
    role policy created through CloudFormation comes back as the Python repr of a dict (not JSON)."""
    if not isinstance(text_or_dict, str):
        return text_or_dict
    text = urllib.parse.unquote(text_or_dict)
    try:
        return dict(json.loads(text))
    except json.JSONDecodeError:
        return dict(ast.literal_eval(text))


def statements(policy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in policy["Statement"]}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def env_lines(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def without_unknown_keys(path: Path) -> Path:
    """The properties file without ``ecsState.catalogTable`` while this tree's settings do not know that key yet
    (the cluster catalogue's setting arrives with its processor side); the file itself when they do."""
    from processor.config import Settings

    if "catalog_table" in Settings.__dataclass_fields__:
        return path
    lines = [x for x in path.read_text(encoding="utf-8").splitlines() if not x.startswith("ecsState.catalogTable")]
    trimmed = path.with_name(path.name + ".known")
    trimmed.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return trimmed


def known_env(env: dict[str, str]) -> dict[str, str]:
    """The environment without ``ECS_STATE_CATALOG_TABLE`` while this tree's settings do not know it yet."""
    from processor.config import Settings

    if "catalog_table" in Settings.__dataclass_fields__:
        return env
    return {k: v for k, v in env.items() if k != "ECS_STATE_CATALOG_TABLE"}


def fresh_tables(request: Any, **settings: Any) -> Settings:
    """Settings naming four tables of this test's own in the moto server (made with ``ecs-state setup``'s
    ``ensure_tables``), with ``settings`` on top: the writer's and the catalogue's integration tests start so."""
    suffix = f"{request.node.name[:40]}-{random.randrange(10**6)}"
    made = Settings(
        task_table=f"tasks-{suffix}",
        instance_table=f"instances-{suffix}",
        dead_letter_table=f"dead-{suffix}",
        catalog_table=f"catalog-{suffix}",
        **settings,
    )
    ensure_tables(made)
    return made
