"""verify: the pure comparison, and one scan of real tables in the moto server."""

from __future__ import annotations

import argparse
import itertools
import random
import time
from pathlib import Path
from typing import Any

import pytest

from processor import aws
from processor.config import Settings
from processor.core.dead_letters import DeadLetter
from processor.core.items import Item
from processor.core.position import Position
from processor.loadgen.fleet import generate
from processor.loadgen.ground_truth import GroundTruth
from processor.loadgen.records import Options, Record
from processor.loadgen.verify import register, verify
from processor.ops.setup_tables import ensure_tables
from workshop.testing.factories import route

TASK = "arn:aws:ecs:us-east-1:123456789012:task/default/{:032x}"
INSTANCE = "arn:aws:ecs:us-east-1:123456789012:container-instance/default/{:032x}"


# -------------------------------------------------------------------------------------------- moto tables


def _settings() -> Settings:
    suffix = random.randrange(10**6)
    return Settings(
        task_table=f"verify-tasks-{suffix}",
        instance_table=f"verify-instances-{suffix}",
        dead_letter_table=f"verify-dead-{suffix}",
    )


def _store(client: Any, settings: Settings, records: list[Record]) -> None:
    """Store what a correct processor would: the newest item per ARN (built by the processor's own
    route.route) and every dead letter."""
    newest: dict[str, Item] = {}
    for seq, rec in enumerate(records):
        got = route(rec.data, Position("shardId-000000000001", f"{seq:056d}"), rec.partition_key, 1)
        if isinstance(got, Item):
            if got.arn not in newest or got.version > newest[got.arn].version:
                newest[got.arn] = got
        elif isinstance(got, DeadLetter):
            for item in got.items:
                client.put_item(TableName=settings.dead_letter_table, Item=item)
    for item in newest.values():
        table = settings.task_table if item.kind == "task" else settings.instance_table
        client.put_item(TableName=table, Item=item.attributes)


def test_verify_scans_real_tables(moto_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = _settings()
    client = aws.client("dynamodb")
    ensure_tables(settings, client)
    records = list(
        itertools.islice(
            generate(
                Options(seed=3, tasks=8, duplicate_rate=0.1, reorder_window=6, poison_rate=0.08, ignored_rate=0.04)
            ),
            400,
        )
    )
    truth = GroundTruth()
    for rec in records:
        truth.add(rec)
    truth_path = tmp_path / "truth.json"
    truth.save(truth_path)
    _store(client, settings, records)

    report = verify(settings, str(truth_path), client)
    assert report.ok, report.render()
    assert report.tasks.matched == len(truth.tasks) > 20
    assert report.dead_letters.matched == len(truth.poison) > 10

    # break one task and remove one dead letter: the report and the command's exit code say so
    arn, (version, _status) = next(iter(truth.tasks.items()))
    client.put_item(
        TableName=settings.task_table,
        Item={"taskArn": {"S": arn}, "version": {"N": str(version - 1)}, "lastStatus": {"S": "PENDING"}},
    )
    first = client.scan(TableName=settings.dead_letter_table, Limit=1)["Items"][0]
    client.delete_item(
        TableName=settings.dead_letter_table,
        Key={"shardId": first["shardId"], "sequenceNumber": first["sequenceNumber"]},
    )
    started = time.monotonic()
    report = verify(settings, str(truth_path), client, wait_s=0.6, interval_s=0.2)
    assert time.monotonic() - started >= 0.6  # kept scanning until the deadline
    assert [r["arn"] for r in report.tasks.regressed] == [arn]
    assert [m["sha256"] for m in report.dead_letters.missing] == [first["dataSha256"]["S"]]

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    properties = tmp_path / "ecs-state.properties"
    properties.write_text(
        f"ecsState.taskTable = {settings.task_table}\n"
        f"ecsState.instanceTable = {settings.instance_table}\n"
        f"ecsState.deadLetterTable = {settings.dead_letter_table}\n"
    )
    args = parser.parse_args(["verify", "--truth", str(truth_path), "--properties", str(properties)])
    assert args.func(args) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and arn in out
    client.put_item(
        TableName=settings.task_table,
        Item={"taskArn": {"S": arn}, "version": {"N": str(version)}, "lastStatus": {"S": _status}},
    )
    client.put_item(TableName=settings.dead_letter_table, Item=first)
    args = parser.parse_args(["verify", "--truth", str(truth_path), "--properties", str(properties), "--json"])
    assert args.func(args) == 0
    assert '"ok": true' in capsys.readouterr().out
    args = parser.parse_args(["verify", "--truth", str(tmp_path / "absent.json"), "--properties", str(properties)])
    assert args.func(args) == 2


def test_verify_holds_per_account_and_region_and_points_at_the_one_that_is_off(
    moto_server: Any, tmp_path: Path
) -> None:
    settings = _settings()
    client = aws.client("dynamodb")
    ensure_tables(settings, client)
    options = Options(seed=6, tasks=24, instances=6, accounts=2, regions=("us-east-1", "eu-west-1"))
    records = list(itertools.islice(generate(options), 500))
    truth = GroundTruth()
    for rec in records:
        truth.add(rec)
    truth_path = tmp_path / "truth.json"
    truth.save(truth_path)
    _store(client, settings, records)
    report = verify(settings, str(truth_path), client)
    assert report.ok, report.render()
    homes = report.homes()
    assert set(homes) == {f"{a}/{r}" for a in ("123456789012", "123456789013") for r in ("us-east-1", "eu-west-1")}
    assert all(entry["ok"] and entry["tasks"]["matched"] > 0 for entry in homes.values())
    # one account's task in one region goes missing: only that account and region is off
    arn = next(a for a in truth.tasks if ":eu-west-1:123456789013:" in a)
    client.delete_item(TableName=settings.task_table, Key={"taskArn": {"S": arn}})
    report = verify(settings, str(truth_path), client)
    assert [home for home, entry in report.homes().items() if not entry["ok"]] == ["123456789013/eu-west-1"]
