"""verify: the pure comparison, and one scan of real tables in the moto server."""

from __future__ import annotations

import argparse
import hashlib
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
from processor.core.route import route
from processor.loadgen.producer import GroundTruth, Options, Record, generate
from processor.loadgen.verify import compare, register, verify
from processor.ops.setup_tables import ensure_tables

TASK = "arn:aws:ecs:us-east-1:123456789012:task/default/{:032x}"
INSTANCE = "arn:aws:ecs:us-east-1:123456789012:container-instance/default/{:032x}"


def small_truth() -> dict[str, Any]:
    truth = GroundTruth()
    for n in range(3):
        for v in (1, 2, 3):
            truth.add(Record(TASK.format(n), b"t%d-%d" % (n, v), "task", "", TASK.format(n), v,
                             "RUNNING" if v < 3 else "STOPPED"))
    truth.add(Record(INSTANCE.format(1), b"i", "instance", "", INSTANCE.format(1), 5000, "ACTIVE"))
    truth.add(Record("pk-a", b"{bad", "poison", "truncated"))
    truth.add(Record("pk-b", b"null", "poison", "null"))
    truth.add(Record("pk-c", b"null", "poison", "null"))       # same bytes twice: two dead letters expected
    truth.add(Record("svc", b"ignored-bytes", "ignored", "ECS Service Action"))
    return truth.to_dict()


def rows_for(truth: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    tasks = [{"taskArn": arn, "version": want["version"], "lastStatus": want["lastStatus"]}
             for arn, want in truth["tasks"].items()]
    instances = [{"containerInstanceArn": arn, "version": want["version"], "status": want["status"]}
                 for arn, want in truth["containerInstances"].items()]
    dead = [{"shardId": "shardId-000000000000", "sequenceNumber": str(i), "dataSha256": p["sha256"],
             "reasonCode": "bad-json", "partitionKey": p["partitionKey"]} for i, p in enumerate(truth["poison"])]
    return tasks, instances, dead


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_exact_match_passes() -> None:
    truth = small_truth()
    report = compare(truth, *rows_for(truth))
    assert report.ok
    assert (report.tasks.matched, report.instances.matched, report.dead_letters.matched) == (3, 1, 3)
    assert "OK - exact match" in report.render()


def test_versions_as_stored_by_dynamodb_compare_equal() -> None:
    from decimal import Decimal
    truth = small_truth()
    tasks, instances, dead = rows_for(truth)
    tasks = [{**row, "version": Decimal(row["version"])} for row in tasks]
    instances = [{**row, "version": str(row["version"])} for row in instances]
    assert compare(truth, tasks, instances, dead).ok


def test_missing_regressed_unexpected_and_status_mismatch() -> None:
    truth = small_truth()
    tasks, instances, dead = rows_for(truth)
    tasks[0]["version"] = 2                                    # regressed
    tasks[1]["lastStatus"] = "RUNNING"                         # same version, other status
    del tasks[2]                                               # missing
    tasks.append({"taskArn": TASK.format(99), "version": 1, "lastStatus": "PENDING"})   # not in truth
    instances[0]["version"] = 5001                             # newer than truth
    report = compare(truth, tasks, instances, dead)
    assert not report.ok and report.dead_letters.ok
    assert [r["arn"] for r in report.tasks.regressed] == [TASK.format(0)]
    assert report.tasks.regressed[0]["stored"] == 2 and report.tasks.regressed[0]["truth"] == 3
    assert [(r["arn"], r["stored"], r["truth"]) for r in report.tasks.status_mismatch] == \
        [(TASK.format(1), "RUNNING", "STOPPED")]
    assert [r["arn"] for r in report.tasks.missing] == [TASK.format(2)]
    assert [(r["arn"], r["why"]) for r in report.tasks.unexpected] == [(TASK.format(99), "ARN not in truth")]
    assert [(r["stored"], r["truth"], r["why"]) for r in report.instances.unexpected] == \
        [(5001, 5000, "newer than truth")]
    text = report.render()
    assert "MISMATCH" in text and "regressed 1" in text and "status mismatch 1" in text
    assert TASK.format(2) in text


def test_dead_letters_missing_unexpected_repeated() -> None:
    truth = small_truth()
    tasks, instances, dead = rows_for(truth)
    dead = [row for row in dead if row["partitionKey"] != "pk-a"]                      # one missing
    dead.append({**dead[0], "sequenceNumber": "77"})                                   # a third "null": repeated
    dead.append({"shardId": "s", "sequenceNumber": "88", "dataSha256": sha(b"other"), "reasonCode": "bad-json",
                 "partitionKey": "x"})                                                 # unknown bytes
    dead.append({"shardId": "s", "sequenceNumber": "99", "dataSha256": sha(b"ignored-bytes"),
                 "reasonCode": "wrong-source", "partitionKey": "svc"})                 # an ignored event
    report = compare(truth, tasks, instances, dead)
    dl = report.dead_letters
    assert not report.ok and report.tasks.ok and report.instances.ok
    assert [m["kind"] for m in dl.missing] == ["truncated"]
    assert [r["kind"] for r in dl.repeated] == ["null"]
    assert sorted(u["why"] for u in dl.unexpected) == ["an ignored-type event was dead-lettered",
                                                       "no poison record has these bytes"]
    assert dl.reasons == {"null": {"bad-json": 2}}


def test_dead_letter_parts_are_not_counted_but_a_row_without_hash_is_unexpected() -> None:
    truth = small_truth()
    tasks, instances, dead = rows_for(truth)
    dead.append({"shardId": "s", "sequenceNumber": "1#part1"})                # continuation of a large one
    assert compare(truth, tasks, instances, dead).ok
    dead.append({"shardId": "s", "sequenceNumber": "2", "reasonCode": "bad-json"})
    report = compare(truth, tasks, instances, dead)
    assert [u["why"] for u in report.dead_letters.unexpected] == ["dead letter without dataSha256"]


def test_repeated_dead_letters_alone_still_pass() -> None:
    truth = small_truth()
    tasks, instances, dead = rows_for(truth)
    dead.append({**dead[0], "sequenceNumber": "1000"})
    report = compare(truth, tasks, instances, dead)
    assert report.ok and len(report.dead_letters.repeated) == 1


def test_render_limits_examples() -> None:
    truth = small_truth()
    _, instances, dead = rows_for(truth)
    report = compare(truth, [], instances, dead)
    text = report.render(examples=1)
    assert text.count("missing: arn=") == 1 and "... and 2 more" in text


# -------------------------------------------------------------------------------------------- moto tables


def _settings() -> Settings:
    suffix = random.randrange(10**6)
    return Settings(task_table=f"verify-tasks-{suffix}", instance_table=f"verify-instances-{suffix}",
                    dead_letter_table=f"verify-dead-{suffix}")


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
    records = list(itertools.islice(generate(Options(seed=3, tasks=8, duplicate_rate=0.1, reorder_window=6,
                                                     poison_rate=0.08, ignored_rate=0.04)), 400))
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
    client.put_item(TableName=settings.task_table, Item={"taskArn": {"S": arn}, "version": {"N": str(version - 1)},
                                                         "lastStatus": {"S": "PENDING"}})
    first = client.scan(TableName=settings.dead_letter_table, Limit=1)["Items"][0]
    client.delete_item(TableName=settings.dead_letter_table,
                       Key={"shardId": first["shardId"], "sequenceNumber": first["sequenceNumber"]})
    started = time.monotonic()
    report = verify(settings, str(truth_path), client, wait_s=0.6, interval_s=0.2)
    assert time.monotonic() - started >= 0.6                   # kept scanning until the deadline
    assert [r["arn"] for r in report.tasks.regressed] == [arn]
    assert [m["sha256"] for m in report.dead_letters.missing] == [first["dataSha256"]["S"]]

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    properties = tmp_path / "ecs-state.properties"
    properties.write_text(f"ecsState.taskTable = {settings.task_table}\n"
                          f"ecsState.instanceTable = {settings.instance_table}\n"
                          f"ecsState.deadLetterTable = {settings.dead_letter_table}\n")
    args = parser.parse_args(["verify", "--truth", str(truth_path), "--properties", str(properties)])
    assert args.func(args) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and arn in out
    client.put_item(TableName=settings.task_table, Item={"taskArn": {"S": arn}, "version": {"N": str(version)},
                                                         "lastStatus": {"S": _status}})
    client.put_item(TableName=settings.dead_letter_table, Item=first)
    args = parser.parse_args(["verify", "--truth", str(truth_path), "--properties", str(properties), "--json"])
    assert args.func(args) == 0
    assert '"ok": true' in capsys.readouterr().out
    args = parser.parse_args(["verify", "--truth", str(tmp_path / "absent.json"), "--properties", str(properties)])
    assert args.func(args) == 2
