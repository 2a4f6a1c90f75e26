"""reconcile --repair writes with the processor's own condition (against the moto server): absent, a ``version``
that is not a number (left by another tool), or a lower one is replaced; an equal or newer number never is."""

from __future__ import annotations

import random
from typing import Any

from processor.aws import client
from processor.core.events import Event, decode
from processor.core.items import build_item
from processor.core.position import Position
from processor.ops.repair import put_conditionally
from workshop.testing.factories import as_json, task_arn, task_event


def _table(ddb: Any) -> str:
    name = f"ECSTaskState-repair-{random.randrange(10**6)}"
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "taskArn", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "taskArn", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def _stored_version(ddb: Any, table: str, arn: str) -> dict[str, str]:
    return ddb.get_item(TableName=table, Key={"taskArn": {"S": arn}}, ConsistentRead=True)["Item"]["version"]


def test_a_repair_replaces_a_version_that_is_not_a_number_and_never_an_equal_or_newer_one(moto_server: Any) -> None:
    ddb = client("dynamodb")
    table = _table(ddb)
    event = decode(as_json(task_event(task_arn(1), 3)))
    assert isinstance(event, Event)
    item = build_item(event, Position("ecs-api", "2026-01-01T00:00:00.000Z"))

    ddb.put_item(TableName=table, Item={"taskArn": {"S": event.arn}, "version": {"S": "seven"}})
    assert put_conditionally(ddb, table, item)  # a version that is not a number counts as older, as the processor's
    assert _stored_version(ddb, table, event.arn) == {"N": "3"}

    assert not put_conditionally(ddb, table, item)  # equal: kept
    ddb.put_item(TableName=table, Item={"taskArn": {"S": event.arn}, "version": {"N": "5"}})
    assert not put_conditionally(ddb, table, item)  # newer: kept
    assert _stored_version(ddb, table, event.arn) == {"N": "5"}
