"""The synthetic ECS fleet (pure): determinism, the ECS life cycle, versions, duplicates, reordering, sizes,
poison kinds (checked against the processor's own per-record decision) and options."""

from __future__ import annotations

import hashlib
import itertools
import json
import statistics
from collections import Counter, defaultdict
from typing import Any

import pytest

from processor.core.dead_letters import DeadLetter
from processor.core.events import Ignored
from processor.core.items import Item
from processor.core.position import Position
from processor.loadgen.catalog import FORMATS
from processor.loadgen.fleet import generate
from processor.loadgen.poison import poison_kinds
from processor.loadgen.records import Options, Record, decode
from workshop.testing.factories import route


def take(options: Options, n: int) -> list[Record]:
    return list(itertools.islice(generate(options), n))


# ------------------------------------------------------------------------------------------- pure generator


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(fmt: str) -> None:
    options = Options(seed=7, format=fmt, duplicate_rate=0.05, reorder_window=5, poison_rate=0.05, ignored_rate=0.02)
    first = [(r.partition_key, r.data, r.kind) for r in take(options, 2000)]
    again = [(r.partition_key, r.data, r.kind) for r in take(options, 2000)]
    other = [(r.partition_key, r.data, r.kind) for r in take(Options(**{**options.__dict__, "seed": 8}), 2000)]
    assert first == again
    assert first != other
    assert (
        hashlib.sha256(b"".join(d for _, d, _ in first)).digest()
        == hashlib.sha256(b"".join(d for _, d, _ in again)).digest()
    )


def test_envelope_is_eventbridge_shaped_and_resource_arn_is_the_partition_key() -> None:
    for rec in take(Options(seed=1, ignored_rate=0.05), 1500):
        event = json.loads(rec.data)
        assert list(event) == [
            "version",
            "id",
            "detail-type",
            "source",
            "account",
            "time",
            "region",
            "resources",
            "detail",
        ]
        assert event["version"] == "0" and event["source"] == "aws.ecs"
        assert event["resources"][0] == rec.partition_key
        assert len(event["id"]) == 36 and event["time"].endswith("Z")
        if rec.kind == "task":
            assert event["detail-type"] == "ECS Task State Change"
            assert event["detail"]["taskArn"] == rec.arn == rec.partition_key
        elif rec.kind == "instance":
            assert event["detail-type"] == "ECS Container Instance State Change"
            assert event["detail"]["containerInstanceArn"] == rec.arn == rec.partition_key


def test_task_life_cycle_and_timestamps() -> None:
    order = [
        "PROVISIONING",
        "PENDING",
        "ACTIVATING",
        "RUNNING",
        "DEACTIVATING",
        "STOPPING",
        "DEPROVISIONING",
        "STOPPED",
    ]
    per_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in take(Options(seed=3, tasks=30), 6000):
        if rec.kind == "task":
            per_task[rec.arn].append(json.loads(rec.data)["detail"])
    stopped = [details for details in per_task.values() if details[-1]["lastStatus"] == "STOPPED"]
    assert len(stopped) > 100
    launch_types, stop_codes, seen_statuses = Counter(), Counter(), set()
    for details in stopped:
        statuses = [d["lastStatus"] for d in details]
        seen_statuses.update(statuses)
        positions = [order.index(s) for s in statuses]
        assert positions == sorted(positions), statuses  # never backwards
        last = details[-1]
        launch_types[last["launchType"]] += 1
        stop_codes[last["stopCode"]] += 1
        assert last["desiredStatus"] == "STOPPED" and last["stoppedReason"]
        assert last["createdAt"] <= last["stoppingAt"] <= last["executionStoppedAt"] <= last["stoppedAt"]
        assert all(c["lastStatus"] == "STOPPED" for c in last["containers"])
        if "startedAt" in last:
            assert last["createdAt"] <= last["pullStartedAt"] <= last["pullStoppedAt"] <= last["startedAt"]
            assert last["startedAt"] <= last["stoppingAt"]
        if last["launchType"] == "FARGATE":
            assert last["attachments"][0]["type"] == "eni" and last["attachments"][0]["status"] == "DELETED"
            assert "containerInstanceArn" not in last
        else:
            assert last["containerInstanceArn"].startswith("arn:aws:ecs:us-east-1:123456789012:container-instance/")
        for d in details:
            assert d["clusterArn"] and d["taskDefinitionArn"] and d["group"] and d["cpu"] and d["memory"]
            assert d["overrides"]["containerOverrides"]
            assert d["updatedAt"] >= d["createdAt"]
    assert seen_statuses == set(order)
    assert set(launch_types) == {"EC2", "FARGATE"}
    assert "TaskFailedToStart" in stop_codes and len(stop_codes) >= 3


def test_container_instance_events() -> None:
    details = [
        json.loads(r.data)["detail"] for r in take(Options(seed=4, tasks=20, instances=6), 8000) if r.kind == "instance"
    ]
    assert len(details) > 300
    assert {d["status"] for d in details} >= {"ACTIVE", "DRAINING"}
    assert {d["agentConnected"] for d in details} == {True, False}
    assert max(d["version"] for d in details) > 1000  # long-lived instances start with large versions
    for d in details:
        assert d["ec2InstanceId"].startswith("i-") and d["attributes"] and d["versionInfo"]["agentVersion"]
        registered = {r["name"]: r for r in d["registeredResources"]}
        remaining = {r["name"]: r for r in d["remainingResources"]}
        assert 0 <= remaining["CPU"]["integerValue"] <= registered["CPU"]["integerValue"]
        assert 0 <= remaining["MEMORY"]["integerValue"] <= registered["MEMORY"]["integerValue"]
        assert d["runningTasksCount"] >= 0 and d["pendingTasksCount"] >= 0
    assert any(d["runningTasksCount"] > 0 for d in details)


@pytest.mark.parametrize("fmt", FORMATS)
def test_versions_grow_by_one_per_arn_apart_from_gaps_and_duplicates_repeat_bytes(fmt: str) -> None:
    records = take(Options(seed=11, format=fmt, duplicate_rate=0.1), 8000)
    last: dict[str, Record] = {}
    steps: Counter[int] = Counter()
    duplicates = 0
    for i, rec in enumerate(records):
        if rec.kind not in ("task", "instance"):
            continue
        assert decode(rec.data, fmt)["detail"]["version"] == rec.version
        if rec.duplicate:
            duplicates += 1
            original = records[i - 1]  # no reordering: the second delivery follows the first
            assert (original.data, original.partition_key, original.version) == (
                rec.data,
                rec.partition_key,
                rec.version,
            )
            assert not original.duplicate
            continue
        previous = last.get(rec.arn)
        if previous is None:
            assert rec.kind == "instance" or rec.version == 1
        else:
            steps[rec.version - previous.version] += 1
            assert previous.data != rec.data
        last[rec.arn] = rec
    assert 500 < duplicates < 1100
    assert set(steps) <= {1, 2, 3, 4}
    assert steps[1] / sum(steps.values()) > 0.9
    assert steps[2] + steps[3] + steps[4] > 0  # some gaps


def _identities(records: list[Record]) -> list[tuple[bytes, int]]:
    """(bytes, n-th occurrence of those bytes): duplicates share bytes, so the occurrence tells them apart."""
    seen: Counter[bytes] = Counter()
    out = []
    for rec in records:
        seen[rec.data] += 1
        out.append((rec.data, seen[rec.data]))
    return out


@pytest.mark.parametrize("window", [2, 8, 50])
def test_reordering_moves_no_record_by_window_or_more(window: int) -> None:
    base = Options(seed=5, duplicate_rate=0.05, poison_rate=0.02, ignored_rate=0.02)
    n = 3000
    straight = _identities(take(base, n + window))
    shuffled = _identities(take(Options(**{**base.__dict__, "reorder_window": window}), n))
    where = {ident: i for i, ident in enumerate(straight)}
    moves = [abs(where[ident] - i) for i, ident in enumerate(shuffled)]
    assert max(moves) < window
    assert sum(1 for m in moves if m) > n // 10  # it really reorders
    # same-ARN events do arrive out of version order sometimes (what the processor must handle)
    if window >= 8:
        seen: dict[str, int] = {}
        backwards = 0
        for rec in take(Options(**{**base.__dict__, "reorder_window": window}), n):
            if rec.kind in ("task", "instance"):
                backwards += rec.version < seen.get(rec.arn, 0)
                seen[rec.arn] = max(seen.get(rec.arn, 0), rec.version)
        assert backwards > 0


def test_sizes_are_like_ecs() -> None:
    records = take(Options(seed=9, tasks=40, instances=6), 6000)
    one, multi, instance = [], [], []
    for rec in records:
        detail = json.loads(rec.data)["detail"]
        if rec.kind == "task":
            (one if len(detail["containers"]) == 1 else multi).append(len(rec.data))
        else:
            instance.append(len(rec.data))
    assert 1_700 <= statistics.median(one) <= 3_000  # "about 2 KB for a one-container task event"
    assert statistics.median(multi) > statistics.median(one) + 400
    assert min(one) > 1_000 and max(one + multi) < 20_000
    assert max(one + multi) > 6_000  # big overrides exist
    assert 2_500 <= statistics.median(instance) <= 6_000
    msgpack_sizes = [len(r.data) for r in take(Options(seed=9, tasks=40, instances=6, format="msgpack"), 6000)]
    assert statistics.mean(msgpack_sizes) < statistics.mean([len(r.data) for r in records])


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_poison_kind_appears_and_the_processor_dead_letters_each(fmt: str) -> None:
    """A contract with processor.core.route.route (the processor's per-record decision): poison -> DeadLetter,
    ignored types -> Ignored, state events -> an Item with the same ARN and version."""
    records = take(Options(seed=13, format=fmt, poison_rate=0.6, ignored_rate=0.1), 4000)
    kinds = Counter(r.detail for r in records if r.kind == "poison")
    assert set(kinds) == set(poison_kinds(fmt))
    ignored = Counter(r.detail for r in records if r.kind == "ignored")
    assert set(ignored) == {"ECS Service Action", "ECS Deployment State Change", "AWS API Call via CloudTrail"}
    position = Position("shardId-000000000000", "4" * 56)
    wrong = []
    for rec in records:
        got = route(rec.data, position, rec.partition_key, None)
        if rec.kind == "poison":
            ok = isinstance(got, DeadLetter)
        elif rec.kind == "ignored":
            ok = isinstance(got, Ignored)
        else:
            ok = isinstance(got, Item) and (got.arn, got.version) == (rec.arn, rec.version)
        if not ok:
            wrong.append((rec.kind, rec.detail, type(got).__name__, rec.data[:80]))
    assert not wrong, wrong[:5]
    for rec in records:
        assert 1 <= len(rec.partition_key) <= 256


def test_poison_records_are_all_different_from_valid_events() -> None:
    records = take(Options(seed=17, poison_rate=0.3, duplicate_rate=0.1), 3000)
    valid = {r.data for r in records if r.kind in ("task", "instance")}
    assert not any(r.data in valid for r in records if r.kind == "poison")


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="--poison-rate"):
        Options(poison_rate=1.5)
    with pytest.raises(ValueError, match="--format"):
        Options(format="xml")
    with pytest.raises(ValueError, match="nothing to simulate"):
        Options(tasks=0, instances=0)
    only_instances = take(Options(tasks=0, instances=3), 200)
    assert {r.kind for r in only_instances} == {"instance"}
    all_poison = take(Options(poison_rate=1.0), 50)  # the first record is the event the poison is copied from
    assert [r.kind for r in all_poison] == ["task"] + ["poison"] * 49


def test_a_fleet_over_accounts_and_regions_repeats_cluster_names_and_every_event_carries_its_own_home() -> None:
    options = Options(seed=11, clusters=2, instances=8, tasks=40, accounts=3, regions=("us-east-1", "eu-west-1"))
    homes: dict[tuple[str, str], set[str]] = defaultdict(set)
    for record in take(options, 1500):
        if record.kind not in ("task", "instance"):
            continue
        event = decode(record.data, options.format)
        _, _, _, region, account, resource = record.arn.split(":", 5)
        assert (event["account"], event["region"]) == (account, region)
        assert event["detail"]["clusterArn"].startswith(f"arn:aws:ecs:{region}:{account}:cluster/")
        homes[(account, region)].add(event["detail"]["clusterArn"].rpartition("/")[2])
    assert set(homes) == {
        (account, region)
        for account in ("123456789012", "123456789013", "123456789014")
        for region in ("us-east-1", "eu-west-1")
    }
    names = list(homes.values())
    assert all(n <= names[0] | names[1] for n in names) and len(set().union(*names)) <= 2  # names repeat


def test_one_account_and_region_is_the_fleet_as_before_and_bad_homes_are_refused() -> None:
    default = take(Options(seed=5), 200)
    assert take(Options(seed=5, accounts=1, regions=("us-east-1",)), 200) == default
    with pytest.raises(ValueError, match="--accounts"):
        Options(accounts=0)
    with pytest.raises(ValueError, match="--regions"):
        Options(regions=("us east",))
