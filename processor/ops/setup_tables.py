"""``ecs-state setup``: create the state, dead-letter and cluster-catalogue tables, or bring existing ones up to
date, idempotently. The processor never creates tables.

Rules:
- A missing table is created with the schema (``core/schema.py``), the read indexes ``ecsState.readIndexes``
  chooses included.
- An existing table (one made by AWS's documented Lambda, or by an older ecs-state) is never deleted or recreated.
  What the read side needs is added online: each missing read index by its own UpdateTable (DynamoDB builds one
  index at a time and back-fills it from the items already there), then, unless ``--no-wait``, a wait until the
  index is ACTIVE; the TTL on ``expires_at`` when ``ecsState.taskRetentionHours`` is set and the TTL is off.
- Items written before (by the documented Lambda, or before an index existed) lack the derived index keys
  (``cluster_part``, ``cluster_service``, ``stopped_day``); when setup added a task-table index in this run, or with
  ``--backfill``, it reads the task table once (a Scan of the keys and the derived keys' inputs) and adds those
  attributes with UpdateItem on the condition that the item's ``version`` is still the one read: an item the
  processor rewrote meanwhile already has them, and no version is ever changed.
- Every change is printed, one line each; nothing to change prints that the tables are up to date.
- Everything is checked before anything changes (``plan``): a table with another key schema, or with an index
  (a team's included) keyed on an attribute the processor writes with another type (``shard/table_check.py``
  ``compare``), refuses the run, one line per problem naming the table, what it expected and the fix (exit 2).
- On a table that bills by provisioned capacity, DynamoDB refuses an index without throughput: each new index gets
  ``--index-capacity R,W``, or the table's own capacity; a table whose capacity cannot be read refuses the run
  naming the flag. New tables are on-demand.
- An AWS error on the way names the table, what was already done, and the fix (``errors.describe``).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TextIO

from botocore.exceptions import ClientError

from processor import aws, logs
from processor.config import Settings, load_settings
from processor.core.schema import OWN_TYPES, TABLE_SETTINGS, TASK, Index, index_attributes
from processor.errors import ConfigError
from processor.errors import describe as describe_error
from processor.shard.table_check import compare

WAIT_SECONDS = 3600.0
_BACKFILL_INPUTS = (
    "taskArn",
    "clusterArn",
    "group",
    "lastStatus",
    "stoppedAt",
    "version",
    "cluster_part",
    "cluster_service",
    "stopped_day",
)


def _wait_table(client: Any, name: str) -> None:
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})


def index_status(client: Any, table: str, index: str) -> str | None:
    """IndexStatus of ``index`` (``ACTIVE`` only once its back-fill is done), ``None`` if the table lacks it."""
    described = client.describe_table(TableName=table)["Table"]
    for gsi in described.get("GlobalSecondaryIndexes") or []:
        if gsi["IndexName"] == index:
            return "BACKFILLING" if gsi.get("Backfilling") else str(gsi.get("IndexStatus", "ACTIVE"))
    return None


def wait_index(
    client: Any,
    table: str,
    index: str,
    wait_s: float = WAIT_SECONDS,
    poll_s: float = 5.0,
    say: Callable[[str], None] = print,
) -> bool:
    """Poll DescribeTable until ``index`` is ACTIVE (True) or ``wait_s`` passes (False)."""
    deadline = time.monotonic() + wait_s
    reported = ""
    while True:
        status = index_status(client, table, index)
        if status == "ACTIVE":
            return True
        if status != reported:
            say(f"  {table}: index {index} is {status}; waiting until it is ACTIVE")
            reported = str(status)
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)  # the poll interval of a deadline loop


def add_index(client: Any, table: str, index: Index, throughput: dict[str, int] | None = None) -> None:
    """One UpdateTable creating ``index`` (with ``throughput`` on a provisioned-capacity table: DynamoDB refuses an
    index without it there). Its attribute definitions are the table's own plus the new index's keys (DynamoDB
    needs only the new keys; moto replaces the table's definitions with the ones given)."""
    have = client.describe_table(TableName=table)["Table"].get("AttributeDefinitions") or []
    names = {a["AttributeName"] for a in have}
    definitions = have + [
        {"AttributeName": key, "AttributeType": OWN_TYPES[key]} for key in index.keys if key not in names
    ]
    create = index.spec() | ({"ProvisionedThroughput": throughput} if throughput else {})
    client.update_table(
        TableName=table, AttributeDefinitions=definitions, GlobalSecondaryIndexUpdates=[{"Create": create}]
    )


def backfill(client: Any, table: str) -> tuple[int, int]:
    """Add the derived index keys to the task items that lack them (conditional on ``version`` unchanged);
    returns (items updated, items skipped because the processor rewrote them meanwhile)."""
    from processor.ops.render import deserialize, plain

    names = {f"#a{i}": name for i, name in enumerate(_BACKFILL_INPUTS)}
    updated = skipped = 0
    pages = client.get_paginator("scan").paginate(
        TableName=table, ProjectionExpression=", ".join(names), ExpressionAttributeNames=names
    )
    for page in pages:
        for low in page.get("Items", []):
            item = plain(deserialize(low))
            want = index_attributes(TASK, item)
            changes = {name: value for name, value in want.items() if item.get(name) != value}
            if not changes:
                continue
            values: dict[str, Any] = {f":d{i}": {"S": value} for i, value in enumerate(changes.values())}
            request: dict[str, Any] = {
                "TableName": table,
                "Key": {"taskArn": low["taskArn"]},
                "UpdateExpression": "SET " + ", ".join(f"#d{i} = :d{i}" for i in range(len(changes))),
                "ExpressionAttributeNames": {f"#d{i}": name for i, name in enumerate(changes)} | {"#v": "version"},
            }
            if "version" in low:
                request["ConditionExpression"] = "#v = :v"
                values[":v"] = low["version"]
            else:
                request["ConditionExpression"] = "attribute_not_exists(#v)"
            request["ExpressionAttributeValues"] = values
            try:
                client.update_item(**request)
                updated += 1
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                skipped += 1
    return updated, skipped


@dataclass
class Plan:
    """What setup will do, decided before it changes anything: the tables to create, the indexes to add (with the
    throughput each gets on a provisioned-capacity table), and every problem that refuses the run."""

    create: list[dict[str, Any]] = field(default_factory=list)
    add: list[tuple[str, Index, dict[str, int] | None]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def provisioned_throughput(table: dict[str, Any]) -> dict[str, int] | None:
    """The described table's own read/write capacity when it bills by provisioned capacity, else None. A table made
    before on-demand billing existed is described without a ``BillingModeSummary``: provisioned."""
    mode = (table.get("BillingModeSummary") or {}).get("BillingMode")
    throughput = table.get("ProvisionedThroughput") or {}
    if mode == "PAY_PER_REQUEST" or (mode is None and not throughput.get("ReadCapacityUnits")):
        return None
    return {
        "ReadCapacityUnits": throughput.get("ReadCapacityUnits", 0),
        "WriteCapacityUnits": throughput.get("WriteCapacityUnits", 0),
    }


def _describe(client: Any, name: str) -> dict[str, Any] | None:
    try:
        return dict(client.describe_table(TableName=name)["Table"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            return None
        raise ConfigError(f"table {name}: DescribeTable failed: {describe_error(exc)}") from exc


def _ttl(client: Any, table: str) -> str | None:
    """The attribute the table's TTL is on (enabled or enabling), None when it is off."""
    try:
        ttl = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    except ClientError as exc:
        raise ConfigError(f"table {table}: DescribeTimeToLive failed: {describe_error(exc)}") from exc
    return str(ttl.get("AttributeName")) if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") else None


def plan(settings: Settings, client: Any, index_capacity: tuple[int, int] | None = None) -> Plan:
    """Read every table and decide (module docstring); changes nothing."""
    indexes = settings.indexes()
    result = Plan()
    for kind, spec in settings.tables():
        name = spec["TableName"]
        table = _describe(client, name)
        if table is None:
            result.create.append(spec)
            continue
        result.problems += compare(spec, table, TABLE_SETTINGS[kind])
        ttl_on = _ttl(client, name) if kind == TASK and settings.task_retention_hours else None
        if ttl_on not in (None, "expires_at"):
            result.problems.append(
                f"table {name} has TTL on {ttl_on}, not expires_at; turn it off (aws dynamodb update-time-to-live) "
                f"before setting ecsState.taskRetentionHours"
            )
        have = {gsi["IndexName"] for gsi in table.get("GlobalSecondaryIndexes") or []}
        new = [i for i in indexes if i.kind == kind and i.name not in have]
        own = provisioned_throughput(table)
        throughput = None
        if new and own is not None:
            if index_capacity is not None:
                throughput = {"ReadCapacityUnits": index_capacity[0], "WriteCapacityUnits": index_capacity[1]}
            elif own["ReadCapacityUnits"] > 0 and own["WriteCapacityUnits"] > 0:
                throughput = own
            else:
                result.problems.append(
                    f"table {name} bills by provisioned capacity, but its own capacity is unknown "
                    f"({own['ReadCapacityUnits']} read, {own['WriteCapacityUnits']} write), and DynamoDB refuses an "
                    f"index without one; pass --index-capacity R,W for the new indexes "
                    f"({', '.join(i.name for i in new)})"
                )
        result.add += [(name, index, throughput) for index in new]
    return result


def ensure_tables(
    settings: Settings,
    client: Any | None = None,
    wait: bool = True,
    force_backfill: bool = False,
    say: Callable[[str], None] = lambda line: None,
    index_capacity: tuple[int, int] | None = None,
) -> list[str]:
    """Create any of our tables that does not exist and add what an existing one lacks; returns every change made,
    one line each. Everything is checked first (``plan``): a problem raises ``ConfigError`` with one line per
    problem before anything changes. Safe to run again (a second run changes nothing)."""
    client = client or aws.client("dynamodb")
    planned = plan(settings, client, index_capacity)
    if planned.problems:
        raise ConfigError("\n".join(planned.problems) + " (nothing was changed)")
    changes: list[str] = []
    created: list[str] = []

    def change(line: str) -> None:
        changes.append(line)
        say(line)

    for spec in planned.create:
        try:
            client.create_table(**spec)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise ConfigError(
                    f"table {spec['TableName']}: CreateTable failed: {describe_error(exc)}" + _done(changes)
                ) from exc
            continue
        created.append(spec["TableName"])
        change(
            f"created table {spec['TableName']}"
            + "".join(f" with index {i['IndexName']}" for i in spec.get("GlobalSecondaryIndexes", []))
        )
    for name in created:
        if wait:
            _wait_table(client, name)
    added_task_index = False
    waited: set[str] = set()
    for name, index, throughput in planned.add:
        if name not in waited:
            _wait_table(client, name)
            waited.add(name)
        try:
            add_index(client, name, index, throughput)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("LimitExceededException", "ResourceInUseException"):
                raise ConfigError(
                    f"table {name}: adding index {index.name} was refused: {describe_error(exc)}; fix what DynamoDB "
                    f"names, or add the index by hand (aws dynamodb update-table)" + _done(changes)
                ) from exc
            change(
                f"table {name}: index {index.name} not added yet: {exc.response['Error']['Message']}; "
                f"run `ecs-state setup` again once the index being built is ACTIVE"
            )
            continue
        added_task_index |= index.kind == TASK
        capacity = (
            f" with {throughput['ReadCapacityUnits']} read and {throughput['WriteCapacityUnits']} write units "
            f"(--index-capacity R,W to choose)"
            if throughput
            else ""
        )
        change(f"table {name}: adding index {index.name} (for {index.serves}){capacity}")
        if not wait:
            change(
                f"table {name}: index {index.name} is building (--no-wait); the commands that query it work "
                f"once it is ACTIVE (aws dynamodb describe-table --table-name {name})"
            )
        elif wait_index(client, name, index.name, say=say):
            change(f"table {name}: index {index.name} is ACTIVE")
        else:
            change(f"table {name}: index {index.name} is still building after {WAIT_SECONDS:.0f}s")
    if settings.task_retention_hours and _ttl(client, settings.task_table) is None:
        try:
            client.update_time_to_live(
                TableName=settings.task_table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
            )
        except ClientError as exc:
            raise ConfigError(
                f"table {settings.task_table}: turning the TTL on failed: {describe_error(exc)}" + _done(changes)
            ) from exc
        change(f"table {settings.task_table}: TTL on expires_at enabled")
    if (added_task_index or force_backfill) and settings.task_table not in created:
        try:
            updated, skipped = backfill(client, settings.task_table)
        except ClientError as exc:
            raise ConfigError(
                f"table {settings.task_table}: adding the derived index keys failed: {describe_error(exc)}; "
                f"run `ecs-state setup --backfill` again once this is fixed" + _done(changes)
            ) from exc
        if updated or skipped:
            change(
                f"table {settings.task_table}: derived index keys added to {updated} items written before "
                f"({skipped} rewritten by the processor meanwhile, which have them)"
            )
    return changes


def _done(changes: list[str]) -> str:
    """What a failing run had changed before it failed (setup is safe to run again once the cause is fixed)."""
    if not changes:
        return " (nothing was changed)"
    return f" (already done: {'; '.join(changes)}; run `ecs-state setup` again once this is fixed)"


def index_capacity(text: str) -> tuple[int, int]:
    """``--index-capacity R,W``: two positive whole numbers."""
    parts = text.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not R,W (read and write capacity units, e.g. 5,5)")
    return int(parts[0]), int(parts[1])


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "setup",
        help="create the tables, or add what existing ones lack (idempotent, online)",
        description="Create the state, dead-letter and cluster-catalogue tables; on existing tables (e.g. the "
        "documented Lambda's) add the missing read indexes one at a time (UpdateTable, online) and the TTL "
        "when configured. Never deletes or recreates a table.",
    )
    parser.add_argument("--properties", help="properties file with ecsState.* keys (default: defaults)")
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="do not wait until an added index is ACTIVE (then only one index is added per run)",
    )
    parser.add_argument(
        "--index-capacity",
        type=index_capacity,
        metavar="R,W",
        help="read and write capacity units of each index added to a table that bills by provisioned capacity "
        "(default: the table's own); on-demand tables ignore it",
    )
    parser.add_argument(
        "--backfill",
        action="store_true",
        help="add the derived index keys to every task item lacking them (done by itself when an "
        "index was added in this run)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    settings = load_settings(args.properties)

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    changes = ensure_tables(
        settings, wait=not args.no_wait, force_backfill=args.backfill, say=say, index_capacity=args.index_capacity
    )
    names = [str(spec["TableName"]) for _, spec in settings.tables()]
    if not changes:
        say(f"tables up to date: {', '.join(names)}")
    logs.log("setup", changes=changes, tables=names)
    return 0
