"""ops/lease_status.py: KCL lease items as rows, and the liveness rule of ``ecs-state status --check``."""

from __future__ import annotations

from typing import Any

from processor.ops.lease_status import by_shard, judge, lease_from_item, problems, render_status, to_dict


def item(
    shard: str,
    counter: int,
    owner: str | None = "worker-a",
    checkpoint: str = "4950000000001",
    parents: list[str] | None = None,
    switches: int = 0,
    sub: int = 0,
) -> dict[str, Any]:
    """A lease item as KCL 3 writes it (low-level attribute values)."""
    it: dict[str, Any] = {
        "leaseKey": {"S": shard},
        "leaseCounter": {"N": str(counter)},
        "checkpoint": {"S": checkpoint},
        "checkpointSubSequenceNumber": {"N": str(sub)},
        "ownerSwitchesSinceCheckpoint": {"N": str(switches)},
    }
    if owner:
        it["leaseOwner"] = {"S": owner}
    if parents:
        it["parentShardId"] = {"SS": parents}
    return it


def table(*items: dict[str, Any]) -> dict[str, Any]:
    return by_shard(lease_from_item(it) for it in items)


def test_a_lease_item_becomes_a_row_with_owner_checkpoint_parents_switches_and_finished() -> None:
    leases = table(
        item("shardId-1", 7, checkpoint="SHARD_END", switches=2),
        item("shardId-2", 3, owner=None, checkpoint="TRIM_HORIZON", parents=["shardId-1"]),
        item("shardId-3", 9, sub=4),
    )
    text = render_status("app", leases)
    lines = text.splitlines()
    assert lines[0].split() == [
        "SHARD",
        "OWNER",
        "CHECKPOINT",
        "PARENTS",
        "OWNER",
        "SWITCHES",
        "LEASE",
        "COUNTER",
        "FINISHED",
    ]
    assert lines[1].split() == ["shardId-1", "worker-a", "SHARD_END", "-", "2", "7", "yes"]
    assert lines[2].split() == ["shardId-2", "-", "TRIM_HORIZON", "shardId-1", "0", "3", "no"]
    assert lines[3].split() == ["shardId-3", "worker-a", "4950000000001:4", "-", "0", "9", "no"]
    assert lines[-1] == "app: 3 leases, 1 finished, 1 workers holding leases"


def test_a_lease_whose_counter_moves_is_processing_and_the_check_passes() -> None:
    verdicts = judge(table(item("s-1", 5)), table(item("s-1", 8)), 10_000)
    assert [(v.shard_id, v.state) for v in verdicts] == [("s-1", "processing")]
    assert problems(verdicts, table(item("s-1", 8)), "app") == []


def test_a_counter_that_stays_for_the_window_is_stalled_whether_or_not_an_owner_is_set() -> None:
    first = table(item("s-1", 5), item("s-2", 2, owner=None))
    second = table(item("s-1", 5), item("s-2", 2, owner=None))
    verdicts = judge(first, second, 10_000)
    assert [(v.state, v.why) for v in verdicts] == [
        ("stalled", "leaseCounter stayed 5 for 10000 ms (failoverTimeMillis): owner worker-a did not renew it"),
        ("stalled", "leaseCounter stayed 2 for 10000 ms (failoverTimeMillis): it had no owner"),
    ]
    assert len(problems(verdicts, second, "app")) == 2
    assert to_dict("app", second, verdicts)["healthy"] is False


def test_finished_shards_and_children_waiting_for_their_parent_are_not_stalled() -> None:
    parent = item("s-1", 5)
    child = item("s-2", 1, owner=None, checkpoint="TRIM_HORIZON", parents=["s-1"])
    done = item("s-0", 4, checkpoint="SHARD_END")
    verdicts = judge(table(done, parent, child), table(done, item("s-1", 6), child), 10_000)
    assert {v.shard_id: v.state for v in verdicts} == {
        "s-0": "finished",
        "s-1": "processing",
        "s-2": "waiting-for-parent",
    }


def test_a_child_whose_parent_is_finished_or_gone_must_be_owned() -> None:
    child = item("s-2", 1, owner=None, checkpoint="TRIM_HORIZON", parents=["s-1"])
    for parents in (table(item("s-1", 5, checkpoint="SHARD_END")), table()):
        leases = {**parents, **table(child)}
        assert [v.state for v in judge(leases, leases, 10_000) if v.shard_id == "s-2"] == ["stalled"]


def test_a_shard_seen_only_in_the_second_read_is_new_not_judged() -> None:
    verdicts = judge(table(), table(item("s-9", 1)), 10_000)
    assert [(v.state, v.bad) for v in verdicts] == [("new", False)]


def test_no_leases_at_all_fails_the_check() -> None:
    assert problems(judge({}, {}, 10_000), {}, "app")[0].startswith("lease table app has no leases")
    assert "has no leases" in render_status("app", {}, [])
