"""The pure part of skipping known-stale writes (processor/shard/stored_versions.py): what the bounded memory of
stored versions remembers, and which items it lets through (when the shard catches up: tests/unit/test_machine.py)."""

from __future__ import annotations

import pytest

from processor.core.items import Item
from processor.core.position import Position
from processor.shard.stored_versions import StoredVersions

TABLES = {"task": "tasks", "instance": "instances"}


def item(arn: str, version: int, kind: str = "task") -> Item:
    key = "taskArn" if kind == "task" else "containerInstanceArn"
    return Item(
        kind, key, arn, version, {key: {"S": arn}, "version": {"N": str(version)}}, 100, Position("shardId-0", "1")
    )


def test_an_item_at_or_below_the_remembered_version_is_skipped_and_a_newer_or_unknown_one_is_sent() -> None:
    memory = StoredVersions()
    memory.remember("tasks", "a", 5)
    stale = [(arn, v) for arn, v in (("a", 4), ("a", 5), ("a", 6), ("b", 1)) if memory.is_stale("tasks", arn, v)]
    assert stale == [("a", 4), ("a", 5)]  # equal fails the condition too; newer and unknown are sent


def test_the_higher_version_wins_and_tables_are_kept_apart() -> None:
    memory = StoredVersions()
    memory.remember("tasks", "a", 7)
    memory.remember("tasks", "a", 3)  # a late, lower report never lowers what is known
    assert memory.known("tasks", "a") == 7
    assert memory.known("instances", "a") is None
    assert not memory.is_stale("instances", "a", 1)
    assert memory.unknown([item("a", 2, "instance")], TABLES)  # same ARN text, other table: not known


def test_the_stored_item_of_a_failed_condition_is_remembered_by_its_version() -> None:
    memory = StoredVersions()
    memory.remember_stored_item("tasks", "a", {"taskArn": {"S": "a"}, "version": {"N": "12"}})
    memory.remember_stored_item("tasks", "b", None)  # absent: nothing known
    memory.remember_stored_item("tasks", "c", {"version": {"S": "twelve"}})  # not a number: nothing known
    assert (memory.known("tasks", "a"), memory.known("tasks", "b"), memory.known("tasks", "c")) == (12, None, None)


def test_the_memory_is_bounded_and_forgets_the_least_recently_used_first() -> None:
    memory = StoredVersions(capacity=3)
    for arn in "abc":
        memory.remember("tasks", arn, 1)
    assert memory.is_stale("tasks", "a", 1)  # a used: b is now the oldest
    memory.remember("tasks", "d", 1)
    assert len(memory) == 3 and memory.known("tasks", "b") is None
    assert [memory.known("tasks", x) for x in "acd"] == [1, 1, 1]
    # forgetting only costs a write: b is sent again
    assert not memory.is_stale("tasks", "b", 1)
    with pytest.raises(ValueError):
        StoredVersions(capacity=0)


def test_unknown_lists_what_a_prefetch_should_read() -> None:
    memory = StoredVersions()
    memory.remember("tasks", "a", 1)
    assert [i.arn for i in memory.unknown([item("a", 2), item("b", 2), item("a", 1, "instance")], TABLES)] == ["b", "a"]
