"""ops/redrive_plan.py: what the redrive commands put back, in which batches, and what they leave."""

from __future__ import annotations

import hashlib
import json
import random
import zlib

from processor.core.dead_letters import dead_letter
from processor.core.position import Position
from processor.ops.redrive_plan import Entry, Skipped, Tally, batches, letter_entry, queue_entry
from processor.ops.render import dead_letter_groups, deserialize
from workshop.testing.factories import instance_arn, instance_event, task_arn, task_event


def entry(size: int, key: str = "k") -> Entry[int]:
    return Entry(b"x" * (size - len(key)), key, "code", size)


def test_batches_hold_at_most_500_records() -> None:
    sizes = [len(b) for b in batches([entry(10) for _ in range(1203)])]
    assert sizes == [500, 500, 203]


def test_batches_hold_at_most_5_mib_counting_partition_keys() -> None:
    mib = 1024 * 1024
    groups = list(batches([entry(mib) for _ in range(11)]))
    assert [len(g) for g in groups] == [5, 5, 1]
    assert all(sum(e.size for e in g) <= 5 * mib for g in groups)
    assert [e.source for g in groups for e in g] == [mib] * 11


def group_of(data: bytes, key: str = "pk-1", code: str = "bad-json") -> list[dict]:
    letter = dead_letter(data, Position("shardId-1", "49000000000000000001"), key, 1, code, "reason")
    return dead_letter_groups([deserialize(it) for it in letter.items])[0]


def test_a_dead_letter_yields_its_original_bytes_and_partition_key() -> None:
    data = random.Random(3).randbytes(800_000)  # incompressible: split into parts
    group = group_of(data)
    assert len(group) > 1
    got = letter_entry(group)
    assert isinstance(got, Entry) and (got.data, got.partition_key, got.label) == (data, "pk-1", "bad-json")
    assert got.source.sequence_numbers == tuple(str(it["sequenceNumber"]) for it in group)
    assert got.source.sha256 == hashlib.sha256(data).hexdigest()


def test_a_dead_letter_with_a_part_missing_or_damaged_data_is_skipped() -> None:
    group = group_of(random.Random(3).randbytes(800_000))
    missing = letter_entry(group[:-1])
    assert isinstance(missing, Skipped) and "parts missing" in missing.why
    damaged = [{**group[0], "data": zlib.compress(b"other")}]
    damaged[0].pop("dataParts")
    got = letter_entry(damaged)
    assert isinstance(got, Skipped) and "does not match dataSha256" in got.why


def test_a_dead_letter_kinesis_would_refuse_is_skipped() -> None:
    got = letter_entry(group_of(b"{", key="x" * 300))
    assert isinstance(got, Skipped) and "partition key of 300 characters" in got.why


def test_an_ecs_event_body_is_keyed_by_its_resource_arn_and_put_unchanged() -> None:
    task = json.dumps(task_event(task_arn(1), 3))
    instance = json.dumps(instance_event(instance_arn(2), 5))
    got = [queue_entry(body, "receipt", "m") for body in (task, instance)]
    assert [(e.partition_key, e.data, e.label) for e in got if isinstance(e, Entry)] == [
        (task_arn(1), task.encode(), "ECS Task State Change"),
        (instance_arn(2), instance.encode(), "ECS Container Instance State Change"),
    ]


def test_bodies_that_are_not_ecs_state_changes_or_lack_the_arn_stay_in_the_queue() -> None:
    bodies = {
        "not json": "body is not JSON",
        json.dumps({**task_event(task_arn(1), 1), "source": "aws.ec2"}): "not an aws.ecs event",
        json.dumps({"source": "aws.ecs", "detail-type": "ECS Service Action"}): "is neither of",
        json.dumps({**task_event(task_arn(1), 1), "detail": {"version": 1}}): "no detail.taskArn",
        json.dumps({**task_event(task_arn(1), 1), "detail": []}): "no detail.taskArn",
    }
    for body, why in bodies.items():
        got = queue_entry(body, "receipt", "m-1")
        assert isinstance(got, Skipped) and why in got.why and got.why.endswith("left in the queue"), (body, got)


def test_the_report_counts_by_label_and_says_what_a_dry_run_would_do() -> None:
    tally = Tally()
    tally.put.update(["bad-json", "bad-json", "too-large"])
    tally.skipped.append(Skipped("too-large", "shardId-1 7", "parts missing"))
    text = tally.render("dead letters", dry_run=True)
    assert text.splitlines()[1].split() == ["bad-json", "2", "0", "0", "0"]
    assert "skipped shardId-1 7: parts missing" in text
    assert text.endswith("dry run: 3 dead letters would be put back into the stream; nothing changed\n")
