"""The tables' schema: key schemas, attribute types and indexes of the task, container-instance and dead-letter
tables, as CreateTable requests. Pure data: read by ``ecs-state setup`` (``ops/setup_tables.py``) and the
processor's start-up check (``shard/table_check.py``); a test holds it equal to deploy/ecs-state.yaml."""

from __future__ import annotations

from typing import Any

TASK_STATUS_INDEX = "clusterArn-lastStatus-index"


def table_specs(task_table: str, instance_table: str, dead_letter_table: str) -> list[dict[str, Any]]:
    """CreateTable requests for our three tables (on-demand billing), in this order: tasks, container instances,
    dead letters. Matches deploy/ecs-state.yaml."""
    return [
        {
            "TableName": task_table,
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
            "TableName": instance_table,
            "KeySchema": [{"AttributeName": "containerInstanceArn", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "containerInstanceArn", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
        {
            "TableName": dead_letter_table,
            "KeySchema": [{"AttributeName": "shardId", "KeyType": "HASH"},
                          {"AttributeName": "sequenceNumber", "KeyType": "RANGE"}],
            "AttributeDefinitions": [{"AttributeName": "shardId", "AttributeType": "S"},
                                     {"AttributeName": "sequenceNumber", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    ]
