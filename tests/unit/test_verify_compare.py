"""verify's comparison of the tables with the ground truth, pure."""

from __future__ import annotations

import hashlib
from typing import Any

from processor.loadgen.compare import compare
from processor.loadgen.ground_truth import GroundTruth
from processor.loadgen.records import Record

INSTANCE = "arn:aws:ecs:us-east-1:123456789012:container-instance/default/{:032x}"


TASK = "arn:aws:ecs:us-east-1:123456789012:task/default/{:032x}"


def small_truth() -> dict[str, Any]:
    truth = GroundTruth()
    for n in range(3):
        for v in (1, 2, 3):
            truth.add(
                Record(
                    TASK.format(n), b"t%d-%d" % (n, v), "task", "", TASK.format(n), v, "RUNNING" if v < 3 else "STOPPED"
                )
            )
    truth.add(Record(INSTANCE.format(1), b"i", "instance", "", INSTANCE.format(1), 5000, "ACTIVE"))
    truth.add(Record("pk-a", b"{bad", "poison", "truncated"))
    truth.add(Record("pk-b", b"null", "poison", "null"))
    truth.add(Record("pk-c", b"null", "poison", "null"))  # same bytes twice: two dead letters expected
    truth.add(Record("svc", b"ignored-bytes", "ignored", "ECS Service Action"))
    return truth.to_dict()


def rows_for(truth: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    tasks = [
        {"taskArn": arn, "version": want["version"], "lastStatus": want["lastStatus"]}
        for arn, want in truth["tasks"].items()
    ]
    instances = [
        {"containerInstanceArn": arn, "version": want["version"], "status": want["status"]}
        for arn, want in truth["containerInstances"].items()
    ]
    dead = [
        {
            "shardId": "shardId-000000000000",
            "sequenceNumber": str(i),
            "dataSha256": p["sha256"],
            "reasonCode": "bad-json",
            "partitionKey": p["partitionKey"],
        }
        for i, p in enumerate(truth["poison"])
    ]
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
    tasks[0]["version"] = 2  # regressed
    tasks[1]["lastStatus"] = "RUNNING"  # same version, other status
    del tasks[2]  # missing
    tasks.append({"taskArn": TASK.format(99), "version": 1, "lastStatus": "PENDING"})  # not in truth
    instances[0]["version"] = 5001  # newer than truth
    report = compare(truth, tasks, instances, dead)
    assert not report.ok and report.dead_letters.ok
    assert [r["arn"] for r in report.tasks.regressed] == [TASK.format(0)]
    assert report.tasks.regressed[0]["stored"] == 2 and report.tasks.regressed[0]["truth"] == 3
    assert [(r["arn"], r["stored"], r["truth"]) for r in report.tasks.status_mismatch] == [
        (TASK.format(1), "RUNNING", "STOPPED")
    ]
    assert [r["arn"] for r in report.tasks.missing] == [TASK.format(2)]
    assert [(r["arn"], r["why"]) for r in report.tasks.unexpected] == [(TASK.format(99), "ARN not in truth")]
    assert [(r["stored"], r["truth"], r["why"]) for r in report.instances.unexpected] == [
        (5001, 5000, "newer than truth")
    ]
    text = report.render()
    assert "MISMATCH" in text and "regressed 1" in text and "status mismatch 1" in text
    assert TASK.format(2) in text


def test_dead_letters_missing_unexpected_repeated() -> None:
    truth = small_truth()
    tasks, instances, dead = rows_for(truth)
    dead = [row for row in dead if row["partitionKey"] != "pk-a"]  # one missing
    dead.append({**dead[0], "sequenceNumber": "77"})  # a third "null": repeated
    dead.append(
        {
            "shardId": "s",
            "sequenceNumber": "88",
            "dataSha256": sha(b"other"),
            "reasonCode": "bad-json",
            "partitionKey": "x",
        }
    )  # unknown bytes
    dead.append(
        {
            "shardId": "s",
            "sequenceNumber": "99",
            "dataSha256": sha(b"ignored-bytes"),
            "reasonCode": "wrong-source",
            "partitionKey": "svc",
        }
    )  # an ignored event
    report = compare(truth, tasks, instances, dead)
    dl = report.dead_letters
    assert not report.ok and report.tasks.ok and report.instances.ok
    assert [m["kind"] for m in dl.missing] == ["truncated"]
    assert [r["kind"] for r in dl.repeated] == ["null"]
    assert sorted(u["why"] for u in dl.unexpected) == [
        "an ignored-type event was dead-lettered",
        "no poison record has these bytes",
    ]
    assert dl.reasons == {"null": {"bad-json": 2}}


def test_dead_letter_parts_are_not_counted_but_a_row_without_hash_is_unexpected() -> None:
    truth = small_truth()
    tasks, instances, dead = rows_for(truth)
    dead.append({"shardId": "s", "sequenceNumber": "1#part1"})  # continuation of a large one
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


def test_the_comparison_holds_per_account_and_region_and_names_the_one_that_is_off() -> None:
    truth_builder = GroundTruth()
    homes = [("111111111111", "us-east-1"), ("222222222222", "us-east-1"), ("111111111111", "eu-west-1")]
    for account, region in homes:
        for n in range(2):
            arn = f"arn:aws:ecs:{region}:{account}:task/prod/{n:032x}"  # the same cluster name in each
            truth_builder.add(Record(arn, arn.encode(), "task", "", arn, 2, "RUNNING"))
    truth = truth_builder.to_dict()
    tasks, instances, dead = rows_for(truth)
    report = compare(truth, tasks, instances, dead)
    assert report.ok and set(report.homes()) == {f"{a}/{r}" for a, r in homes}
    assert all(entry["tasks"] == {"expected": 2, "matched": 2, "problems": 0} for entry in report.homes().values())
    off = [row for row in tasks if ":222222222222:" not in row["taskArn"]]
    report = compare(truth, off, instances, dead)
    assert not report.ok
    assert {home for home, entry in report.homes().items() if not entry["ok"]} == {"222222222222/us-east-1"}
    assert "222222222222/us-east-1: tasks 0/2 (2 wrong) MISMATCH" in report.render()
