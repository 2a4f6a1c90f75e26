"""Adopting the tables of AWS's documented Lambda (against the moto server): tables made per its instructions (hash
key only, no index), holding the items its handler wrote (``workshop/bench/lambda_way.py``: the detail's fields,
``cw_version``, ``version`` as a number), are taken over by the processor (the start-up check passes with one
warning naming ``ecs-state setup``; the next newer event replaces each item, an older one never does) and brought
up to date by ``ecs-state setup`` (indexes added online, derived index keys added to the Lambda's items, nothing
deleted, a second run changes nothing), without losing an item; the read commands then answer from the indexes."""

from __future__ import annotations

import itertools
import os
import random
from pathlib import Path
from typing import Any

import boto3
import pytest

from processor.aws import client
from processor.config import Settings
from processor.core.events import Event, decode
from processor.core.items import build_item
from processor.core.position import Position
from processor.core.schema import INDEXES, catalog_table_spec, dead_letter_table_spec
from processor.loadgen.fleet import generate
from processor.loadgen.records import Options
from processor.ops import read as readside
from processor.ops.repair import put_conditionally
from processor.ops.setup_tables import ensure_tables
from processor.worker.preflight import check_processor
from workshop.bench.lambda_way import lambda_handler

FLEET = Options(seed=9, clusters=2, instances=4, tasks=20, duplicate_rate=0.05, reorder_window=10, step_ms=60_000)


def _props(tmp_path: Path, s: Settings) -> Path:
    path = tmp_path / "adopt.properties"
    path.write_text(
        f"ecsState.taskTable = {s.task_table}\necsState.instanceTable = {s.instance_table}\n"
        f"ecsState.deadLetterTable = {s.dead_letter_table}\necsState.catalogTable = {s.catalog_table}\n",
        encoding="utf-8",
    )
    return path


def _stored(ddb: Any, table: str) -> dict[str, dict[str, Any]]:
    """Every item of a table (the test's own check of what is there, not a read path of the product)."""
    items = [
        it for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True) for it in page["Items"]
    ]
    key = "taskArn" if "taskArn" in (items[0] if items else {}) else "containerInstanceArn"
    return {it[key]["S"]: it for it in items}


def test_the_documented_lambdas_tables_are_taken_over_and_brought_up_to_date_without_losing_an_item(
    moto_server: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    n = random.randrange(10**6)
    settings = Settings(
        task_table=f"ECSTaskState-{n}",
        instance_table=f"ECSCtrInstanceState-{n}",
        dead_letter_table=f"ECSEventDeadLetters-{n}",
        catalog_table=f"ECSClusterCatalog-{n}",
    )
    ddb = client("dynamodb")
    for name, key in ((settings.task_table, "taskArn"), (settings.instance_table, "containerInstanceArn")):
        ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    records = [r for r in itertools.islice(generate(FLEET), 700) if r.kind in ("task", "instance")]
    lambda_part, ours = records[:450], records[450:]

    # 1. the documented Lambda writes the first part of the fleet's life
    resource = boto3.resource("dynamodb")
    tables = {"task": resource.Table(settings.task_table), "instance": resource.Table(settings.instance_table)}
    for record in lambda_part:
        lambda_handler(record.data, tables, full_get=True)
    before = {**_stored(ddb, settings.task_table), **_stored(ddb, settings.instance_table)}
    assert all("cw_version" in it and "N" in it["version"] for it in before.values())

    # 2. the processor's start-up check adopts the tables: no error, one warning naming `ecs-state setup`
    ddb.create_table(**dead_letter_table_spec(settings.dead_letter_table))
    ddb.create_table(**catalog_table_spec(settings.catalog_table))
    capfd.readouterr()
    assert check_processor(_props(tmp_path, settings), dict(os.environ)) == []
    warning = [line for line in capfd.readouterr().err.splitlines() if "read_indexes_missing" in line]
    assert len(warning) == 1 and "ecs-state setup" in warning[0] and "WARNING" in warning[0]

    # 3. the processor takes over: the Lambda's events again (older or equal: nothing written), then the rest
    newest: dict[str, Event] = {}
    for i, record in enumerate(lambda_part + ours):
        event = decode(record.data)
        assert isinstance(event, Event)
        table = settings.task_table if event.kind == "task" else settings.instance_table
        wrote = put_conditionally(ddb, table, build_item(event, Position("shardId-000000000000", str(i))))
        if i < len(lambda_part):
            assert not wrote  # the Lambda already stored this version or a newer one: never lowered
        if event.arn not in newest or newest[event.arn].version < event.version:
            newest[event.arn] = event
    after = {**_stored(ddb, settings.task_table), **_stored(ddb, settings.instance_table)}
    assert set(after) == set(newest) and set(before) <= set(after)  # no item lost
    assert {arn: int(it["version"]["N"]) for arn, it in after.items()} == {arn: e.version for arn, e in newest.items()}
    taken_over = [arn for arn in before if int(after[arn]["version"]["N"]) > int(before[arn]["version"]["N"])]
    assert taken_over and all("kinesis_sequence_number" in after[arn] for arn in taken_over)

    # 4. setup brings the tables up to date online, says what it changed, and a second run changes nothing
    said: list[str] = []
    changes = ensure_tables(settings, ddb, say=said.append)
    assert said == changes
    for index in INDEXES:
        table = settings.task_table if index.kind == "task" else settings.instance_table
        assert f"table {table}: adding index {index.name} (for {index.serves})" in changes
        assert f"table {table}: index {index.name} is ACTIVE" in changes
    assert any("derived index keys added to" in line for line in changes)
    assert not any("created table" in line for line in changes if settings.dead_letter_table not in line)
    assert ensure_tables(settings, ddb) == []
    final = {**_stored(ddb, settings.task_table), **_stored(ddb, settings.instance_table)}
    assert {arn: it["version"] for arn, it in final.items()} == {arn: it["version"] for arn, it in after.items()}

    # 5. the read side now finds the Lambda's items too, from the indexes; the start-up check has nothing to say
    stopped_by_lambda = [
        arn
        for arn in before
        if arn not in taken_over and "taskArn" in before[arn] and before[arn]["lastStatus"]["S"] == "STOPPED"
    ]
    assert stopped_by_lambda
    last = max(e.detail["stoppedAt"] for e in newest.values() if e.detail.get("stoppedAt"))
    for cluster in sorted({newest[arn].detail["clusterArn"] for arn in stopped_by_lambda}):
        found = readside.find_stopped(ddb, settings.task_table, cluster, since="2025-03-01T00:00:00Z", until=last)
        listed = readside.find_tasks(ddb, settings.task_table, settings.instance_table, cluster, status="STOPPED")
        mine = {arn for arn in stopped_by_lambda if newest[arn].detail["clusterArn"] == cluster}
        assert mine <= {it["taskArn"] for it in found} and mine <= {it["taskArn"] for it in listed}
    capfd.readouterr()
    assert check_processor(_props(tmp_path, settings), dict(os.environ)) == []
    assert "read_indexes_missing" not in capfd.readouterr().err
