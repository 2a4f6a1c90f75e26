"""``ecs-state setup``: create the state and dead-letter tables, idempotently. The processor never creates tables."""

from __future__ import annotations

import argparse
from typing import Any

from botocore.exceptions import ClientError

from processor import aws, logs
from processor.config import Settings, load_settings

TASK_STATUS_INDEX = "clusterArn-lastStatus-index"


def table_specs(settings: Settings) -> list[dict[str, Any]]:
    """CreateTable requests for our three tables (on-demand billing). Matches deploy/ecs-state.yaml."""
    return [
        {
            "TableName": settings.task_table,
            "KeySchema": [{"AttributeName": "taskArn", "KeyType": "HASH"}],
            "AttributeDefinitions": [
                {"AttributeName": "taskArn", "AttributeType": "S"},
                {"AttributeName": "clusterArn", "AttributeType": "S"},
                {"AttributeName": "lastStatus", "AttributeType": "S"},
            ],
            "GlobalSecondaryIndexes": [{
                "IndexName": TASK_STATUS_INDEX,
                "KeySchema": [{"AttributeName": "clusterArn", "KeyType": "HASH"},
                              {"AttributeName": "lastStatus", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }],
            "BillingMode": "PAY_PER_REQUEST",
        },
        {
            "TableName": settings.instance_table,
            "KeySchema": [{"AttributeName": "containerInstanceArn", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "containerInstanceArn", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
        {
            "TableName": settings.dead_letter_table,
            "KeySchema": [{"AttributeName": "shardId", "KeyType": "HASH"},
                          {"AttributeName": "sequenceNumber", "KeyType": "RANGE"}],
            "AttributeDefinitions": [{"AttributeName": "shardId", "AttributeType": "S"},
                                     {"AttributeName": "sequenceNumber", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    ]


def ensure_tables(settings: Settings, client: Any | None = None, wait: bool = True) -> list[str]:
    """Create any of our tables that does not exist; returns the names created. Safe to run again."""
    client = client or aws.client("dynamodb")
    created = []
    for spec in table_specs(settings):
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
    logs.log("setup", created=created, tables=[s["TableName"] for s in table_specs(settings)])
    return 0
