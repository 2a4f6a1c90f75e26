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
- A table with another key schema is not touched: the start-up check reports it (``shard/table_check.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable, TextIO

from botocore.exceptions import ClientError

from processor import aws, logs
from processor.config import Settings, load_settings
from processor.core.schema import OWN_TYPES, TASK, Index, index_attributes
from processor.errors import ConfigError

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


def add_index(client: Any, table: str, index: Index) -> None:
    """One UpdateTable creating ``index``. Its attribute definitions are the table's own plus the new index's keys
    (DynamoDB needs only the new keys; moto replaces the table's definitions with the ones given)."""
    have = client.describe_table(TableName=table)["Table"].get("AttributeDefinitions") or []
    names = {a["AttributeName"] for a in have}
    definitions = have + [
        {"AttributeName": key, "AttributeType": OWN_TYPES[key]} for key in index.keys if key not in names
    ]
    client.update_table(
        TableName=table, AttributeDefinitions=definitions, GlobalSecondaryIndexUpdates=[{"Create": index.spec()}]
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


def ensure_tables(
    settings: Settings,
    client: Any | None = None,
    wait: bool = True,
    force_backfill: bool = False,
    say: Callable[[str], None] = lambda line: None,
) -> list[str]:
    """Create any of our tables that does not exist and add what an existing one lacks; returns every change made,
    one line each. Safe to run again (a second run changes nothing)."""
    client = client or aws.client("dynamodb")
    indexes = settings.indexes()
    changes: list[str] = []
    created: list[str] = []

    def change(line: str) -> None:
        changes.append(line)
        say(line)

    tables = settings.tables()
    for _, spec in tables:
        try:
            client.create_table(**spec)
            created.append(spec["TableName"])
            change(
                f"created table {spec['TableName']}"
                + "".join(f" with index {i['IndexName']}" for i in spec.get("GlobalSecondaryIndexes", []))
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise
    for name in created:
        if wait:
            _wait_table(client, name)
    added_task_index = False
    for kind, spec in tables:
        name = spec["TableName"]
        if name in created or kind not in (TASK, "instance"):
            continue
        _wait_table(client, name)
        have = {
            gsi["IndexName"]
            for gsi in client.describe_table(TableName=name)["Table"].get("GlobalSecondaryIndexes") or []
        }
        for index in (i for i in indexes if i.kind == kind and i.name not in have):
            try:
                add_index(client, name, index)
            except ClientError as exc:
                if exc.response["Error"]["Code"] not in ("LimitExceededException", "ResourceInUseException"):
                    raise
                change(
                    f"table {name}: index {index.name} not added yet: {exc.response['Error']['Message']}; "
                    f"run `ecs-state setup` again once the index being built is ACTIVE"
                )
                continue
            added_task_index |= kind == TASK
            change(f"table {name}: adding index {index.name} (for {index.serves})")
            if not wait:
                change(
                    f"table {name}: index {index.name} is building (--no-wait); the commands that query it work "
                    f"once it is ACTIVE (aws dynamodb describe-table --table-name {name})"
                )
            elif wait_index(client, name, index.name, say=say):
                change(f"table {name}: index {index.name} is ACTIVE")
            else:
                change(f"table {name}: index {index.name} is still building after {WAIT_SECONDS:.0f}s")
    if settings.task_retention_hours:
        ttl = client.describe_time_to_live(TableName=settings.task_table)["TimeToLiveDescription"]
        if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            client.update_time_to_live(
                TableName=settings.task_table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
            )
            change(f"table {settings.task_table}: TTL on expires_at enabled")
        elif ttl.get("AttributeName") != "expires_at":
            raise ConfigError(
                f"table {settings.task_table} has TTL on {ttl.get('AttributeName')}, not expires_at; "
                f"turn it off (update-time-to-live) before setting ecsState.taskRetentionHours"
            )
    if (added_task_index or force_backfill) and settings.task_table not in created:
        updated, skipped = backfill(client, settings.task_table)
        if updated or skipped:
            change(
                f"table {settings.task_table}: derived index keys added to {updated} items written before "
                f"({skipped} rewritten by the processor meanwhile, which have them)"
            )
    return changes


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

    changes = ensure_tables(settings, wait=not args.no_wait, force_backfill=args.backfill, say=say)
    names = [str(spec["TableName"]) for _, spec in settings.tables()]
    if not changes:
        say(f"tables up to date: {', '.join(names)}")
    logs.log("setup", changes=changes, tables=names)
    return 0
