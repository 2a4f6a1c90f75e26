"""``ecs-state setup``: create the state and dead-letter tables, idempotently. The processor never creates tables."""

from __future__ import annotations

import argparse
from typing import Any

from botocore.exceptions import ClientError

from processor import aws, logs
from processor.config import Settings, load_settings
from processor.core.schema import table_specs

def ensure_tables(settings: Settings, client: Any | None = None, wait: bool = True) -> list[str]:
    """Create any of our tables that does not exist; returns the names created. Safe to run again."""
    client = client or aws.client("dynamodb")
    created = []
    for spec in table_specs(settings.task_table, settings.instance_table, settings.dead_letter_table):
        try:
            client.create_table(**spec)
            created.append(spec["TableName"])
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise
    if wait:
        for name in created:
            client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    if settings.task_retention_hours and settings.task_table in created:
        client.update_time_to_live(TableName=settings.task_table,
                                   TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})
    return created


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("setup", help="create the state and dead-letter tables (idempotent)")
    parser.add_argument("--properties", help="properties file with ecsState.* keys (default: defaults)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.properties)
    created = ensure_tables(settings)
    logs.log("setup", created=created, tables=[settings.task_table, settings.instance_table, settings.dead_letter_table])
    return 0
