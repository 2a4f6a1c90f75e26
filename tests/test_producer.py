"""The producer: the pure generator (determinism, versions, duplicates, reordering, sizes, poison, truth) and the
Kinesis shell against moto's Kinesis over HTTP."""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import statistics
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from processor import aws
from processor.events import Ignored
from processor.items import DeadLetter, Item, Position, classify
from processor.producer import (
    FORMATS, MAX_BATCH_BYTES, MAX_BATCH_RECORDS, GroundTruth, KinesisWriter, Options, Pacer, ProduceError, Record,
    batches, decode, generate, load_truth, main, poison_kinds, produce,
)


def take(options: Options, n: int) -> list[Record]:
    return list(itertools.islice(generate(options), n))


# ------------------------------------------------------------------------------------------- pure generator


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(fmt: str) -> None:
    options = Options(seed=7, format=fmt, duplicate_rate=0.05, reorder_window=5, poison_rate=0.05,
                      ignored_rate=0.02)
    first = [(r.partition_key, r.data, r.kind) for r in take(options, 2000)]
    again = [(r.partition_key, r.data, r.kind) for r in take(options, 2000)]
    other = [(r.partition_key, r.data, r.kind) for r in take(Options(**{**options.__dict__, "seed": 8}), 2000)]
    assert first == again
    assert first != other
    assert hashlib.sha256(b"".join(d for _, d, _ in first)).digest() == \
        hashlib.sha256(b"".join(d for _, d, _ in again)).digest()


def test_envelope_is_eventbridge_shaped_and_resource_arn_is_the_partition_key() -> None:
    for rec in take(Options(seed=1, ignored_rate=0.05), 1500):
        event = json.loads(rec.data)
        assert list(event) == ["version", "id", "detail-type", "source", "account", "time", "region", "resources",
                               "detail"]
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
    order = ["PROVISIONING", "PENDING", "ACTIVATING", "RUNNING", "DEACTIVATING", "STOPPING", "DEPROVISIONING",
             "STOPPED"]
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
        assert positions == sorted(positions), statuses          # never backwards
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
    details = [json.loads(r.data)["detail"] for r in take(Options(seed=4, tasks=20, instances=6), 8000)
               if r.kind == "instance"]
    assert len(details) > 300
    assert {d["status"] for d in details} >= {"ACTIVE", "DRAINING"}
    assert {d["agentConnected"] for d in details} == {True, False}
    assert max(d["version"] for d in details) > 1000          # long-lived instances start with large versions
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
            original = records[i - 1]          # no reordering: the second delivery follows the first
            assert (original.data, original.partition_key, original.version) == \
                (rec.data, rec.partition_key, rec.version)
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
    assert steps[2] + steps[3] + steps[4] > 0                  # some gaps


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
    assert sum(1 for m in moves if m) > n // 10                # it really reorders
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
    assert 1_700 <= statistics.median(one) <= 3_000           # "about 2 KB for a one-container task event"
    assert statistics.median(multi) > statistics.median(one) + 400
    assert min(one) > 1_000 and max(one + multi) < 20_000
    assert max(one + multi) > 6_000                           # big overrides exist
    assert 2_500 <= statistics.median(instance) <= 6_000
    msgpack_sizes = [len(r.data) for r in take(Options(seed=9, tasks=40, instances=6, format="msgpack"), 6000)]
    assert statistics.mean(msgpack_sizes) < statistics.mean([len(r.data) for r in records])


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_poison_kind_appears_and_the_processor_dead_letters_each(fmt: str) -> None:
    """A contract with processor.items.classify (the processor's per-record decision): poison -> DeadLetter,
    ignored types -> Ignored, state events -> an Item with the same ARN and version."""
    records = take(Options(seed=13, format=fmt, poison_rate=0.6, ignored_rate=0.1), 4000)
    kinds = Counter(r.detail for r in records if r.kind == "poison")
    assert set(kinds) == set(poison_kinds(fmt))
    ignored = Counter(r.detail for r in records if r.kind == "ignored")
    assert set(ignored) == {"ECS Service Action", "ECS Deployment State Change", "AWS API Call via CloudTrail"}
    position = Position("shardId-000000000000", "4" * 56)
    wrong = []
    for rec in records:
        got = classify(rec.data, position, rec.partition_key, None)
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


def test_truth_is_the_highest_version_per_arn_with_its_status(tmp_path: Path) -> None:
    records = take(Options(seed=21, duplicate_rate=0.1, reorder_window=20, poison_rate=0.05, ignored_rate=0.03),
                   5000)
    truth = GroundTruth()
    for rec in records:
        truth.add(rec)
    expected: dict[str, dict[str, tuple[int, str]]] = {"task": {}, "instance": {}}
    for rec in records:   # recomputed from the bytes, not from the Record metadata
        if rec.kind in ("task", "instance"):
            detail = json.loads(rec.data)["detail"]
            arn = detail["taskArn" if rec.kind == "task" else "containerInstanceArn"]
            status = detail["lastStatus" if rec.kind == "task" else "status"]
            if arn not in expected[rec.kind] or detail["version"] > expected[rec.kind][arn][0]:
                expected[rec.kind][arn] = (detail["version"], status)
    truth.save(tmp_path / "truth.json")
    data = load_truth(tmp_path / "truth.json")
    assert {a: (v["version"], v["lastStatus"]) for a, v in data["tasks"].items()} == expected["task"]
    assert {a: (v["version"], v["status"]) for a, v in data["containerInstances"].items()} == expected["instance"]
    poison = [r for r in records if r.kind == "poison"]
    assert [p["sha256"] for p in data["poison"]] == [hashlib.sha256(r.data).hexdigest() for r in poison]
    assert [p["partitionKey"] for p in data["poison"]] == [r.partition_key for r in poison]
    assert data["ignored"]["count"] == sum(r.kind == "ignored" for r in records) > 0
    totals = data["totals"]
    assert totals["records"] == 5000 and totals["bytes"] == sum(len(r.data) for r in records)
    assert totals["duplicates"] == sum(r.duplicate for r in records) > 0
    assert totals["tasks"] == len(expected["task"]) and totals["instances"] == len(expected["instance"])


def test_load_truth_explains_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read truth file"):
        load_truth(tmp_path / "absent.json")
    (tmp_path / "half.json").write_text('{"format": ')
    with pytest.raises(ValueError, match="not JSON"):
        load_truth(tmp_path / "half.json")
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(ValueError, match="not an ecs-state truth file"):
        load_truth(tmp_path / "other.json")


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="--poison-rate"):
        Options(poison_rate=1.5)
    with pytest.raises(ValueError, match="--format"):
        Options(format="xml")
    with pytest.raises(ValueError, match="nothing to simulate"):
        Options(tasks=0, instances=0)
    only_instances = take(Options(tasks=0, instances=3), 200)
    assert {r.kind for r in only_instances} == {"instance"}
    all_poison = take(Options(poison_rate=1.0), 50)   # the first record is the event the poison is copied from
    assert [r.kind for r in all_poison] == ["task"] + ["poison"] * 49


# ------------------------------------------------------------------------------------------ batching, pacing


def test_batches_respect_record_and_byte_limits() -> None:
    small = [Record("k", b"x" * 100, "task") for _ in range(1201)]
    assert [len(b) for b in batches(small)] == [MAX_BATCH_RECORDS, MAX_BATCH_RECORDS, 201]
    big = [Record("k", b"x" * 900_000, "task") for _ in range(13)]
    sizes = [len(b) for b in batches(big)]
    assert sum(sizes) == 13 and all(sum(900_001 for _ in range(n)) <= MAX_BATCH_BYTES for n in sizes)
    assert sizes[0] == MAX_BATCH_BYTES // 900_001


def test_pacer_keeps_the_average_rate() -> None:
    steady = Pacer(200)
    dues = [steady.next_due() for _ in range(1000)]
    assert dues[0] == 0 and dues[-1] == pytest.approx(999 / 200)
    bursty = Pacer(200, bursty=True, seed=3)
    dues = [bursty.next_due() for _ in range(20_000)]
    assert 20_000 / dues[-1] == pytest.approx(200, rel=0.35)
    per_second = Counter(int(d) for d in dues)
    assert max(per_second.values()) > 2.5 * min(per_second.values())   # bursts and lulls
    assert Pacer(0).next_due() == 0.0


def test_produce_sends_the_count_paces_and_feeds_truth_only_with_accepted_records() -> None:
    now = [0.0]
    sent: list[list[Record]] = []

    def sink(batch: list[Record]) -> None:
        if len(sent) == 3:
            raise ProduceError("refused")
        sent.append(batch)

    def sleep(seconds: float) -> None:
        now[0] += seconds

    truth = GroundTruth()
    with pytest.raises(ProduceError):
        produce(generate(Options(seed=1)), sink, events=1000, pacer=Pacer(100), truth=truth,
                clock=lambda: now[0], sleep=sleep)
    assert truth.totals["records"] == sum(len(b) for b in sent) > 0
    assert 0 < max(len(b) for b in sent) <= 10                 # ~50 ms of records per call at 100/s

    truth = produce(generate(Options(seed=1)), lambda batch: None, events=1234)
    assert truth.totals["records"] == 1234


def test_produce_stops_at_the_duration() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    truth = produce(generate(Options(seed=1)), lambda batch: None, duration=2.0, pacer=Pacer(50),
                    clock=lambda: now[0], sleep=sleep)
    assert truth.totals["records"] == 100                     # due at 0.00, 0.02, ... 1.98 s


# ---------------------------------------------------------------------------------------------- kinesis


def _read_all(client: Any, stream: str, expected: int, deadline_s: float = 30.0) -> list[dict[str, Any]]:
    shards = client.list_shards(StreamName=stream)["Shards"]
    iterators = [client.get_shard_iterator(StreamName=stream, ShardId=s["ShardId"],
                                           ShardIteratorType="TRIM_HORIZON")["ShardIterator"] for s in shards]
    records: list[dict[str, Any]] = []
    end = time.monotonic() + deadline_s
    while len(records) < expected and time.monotonic() < end:
        for i, iterator in enumerate(iterators):
            page = client.get_records(ShardIterator=iterator, Limit=10_000)
            records.extend(page["Records"])
            iterators[i] = page["NextShardIterator"]
    return records


def test_produce_command_writes_every_record_to_kinesis(moto_server: Any, tmp_path: Path) -> None:
    stream = f"producer-{random.randrange(10**6)}"
    truth_path = tmp_path / "truth.json"
    code = main(["--stream", stream, "--create-shards", "3", "--events", "1500", "--seed", "4",
                 "--poison-rate", "0.05", "--ignored-rate", "0.02", "--duplicate-rate", "0.05",
                 "--reorder-window", "10", "--truth", str(truth_path), "--no-progress"])
    assert code == 0
    kinesis = aws.client("kinesis")
    got = _read_all(kinesis, stream, 1500)
    expected = take(Options(seed=4, poison_rate=0.05, ignored_rate=0.02, duplicate_rate=0.05, reorder_window=10,
                            region=kinesis.meta.region_name), 1500)
    assert len(got) == 1500
    assert Counter((r["PartitionKey"], bytes(r["Data"])) for r in got) == \
        Counter((r.partition_key, r.data) for r in expected)
    for rec in expected:
        if rec.kind in ("task", "instance", "ignored"):
            assert rec.partition_key == json.loads(rec.data)["resources"][0]
    truth = load_truth(truth_path)
    assert truth["totals"]["records"] == 1500
    assert len(truth["poison"]) == sum(r.kind == "poison" for r in expected) > 0


def test_stream_name_comes_from_the_option_then_the_properties_file(tmp_path: Path) -> None:
    import argparse
    from processor.producer import stream_name
    props = tmp_path / "kcl.properties"
    props.write_text("executableName = ecs-state-processor\nstreamName = from-file\n")
    assert stream_name(argparse.Namespace(stream="given", properties=str(props)), {}) == "given"
    assert stream_name(argparse.Namespace(stream=None, properties=str(props)), {}) == "from-file"
    assert stream_name(argparse.Namespace(stream=None, properties=None), {"ECS_STATE_PROPERTIES": str(props)}) \
        == "from-file"
    assert stream_name(argparse.Namespace(stream=None, properties=None), {}) == "ecs-events"


def test_produce_command_reports_a_missing_stream(moto_server: Any, tmp_path: Path) -> None:
    assert main(["--stream", "no-such-stream", "--events", "10", "--no-progress",
                 "--truth", str(tmp_path / "t.json")]) == 1
    assert load_truth(tmp_path / "t.json")["totals"]["records"] == 0


def _offline_kinesis() -> Any:
    return boto3.session.Session().client("kinesis", region_name="us-east-1", aws_access_key_id="x",
                                          aws_secret_access_key="x")


def _put_response(codes: list[str | None]) -> dict[str, Any]:
    records = [{"ErrorCode": c, "ErrorMessage": "Rate exceeded for shard"} if c else
               {"SequenceNumber": str(10**20 + i), "ShardId": "shardId-000000000000"} for i, c in enumerate(codes)]
    failed = sum(1 for c in codes if c)   # the botocore model wants FailedRecordCount >= 1 when present
    return {"Records": records, **({"FailedRecordCount": failed} if failed else {})}


def test_partial_failure_retries_only_the_failed_entries() -> None:
    """moto never answers PutRecords with a partial failure, so botocore's Stubber supplies those responses (the
    one thing faked here); the request each retry sends is checked against the model by the Stubber too."""
    client = _offline_kinesis()
    recs = [Record(f"pk-{i}", f"data-{i}".encode(), "task") for i in range(5)]
    sleeps: list[float] = []
    writer = KinesisWriter(client, "s", sleep=sleeps.append, rng=random.Random(1), base_delay=0.1)
    with Stubber(client) as stub:
        stub.add_response("put_records", _put_response([None, "ProvisionedThroughputExceededException", None,
                                                        "InternalFailure", None]),
                          {"StreamName": "s", "Records": [{"Data": r.data, "PartitionKey": r.partition_key}
                                                          for r in recs]})
        stub.add_response("put_records", _put_response(["ProvisionedThroughputExceededException", None]),
                          {"StreamName": "s", "Records": [{"Data": r.data, "PartitionKey": r.partition_key}
                                                          for r in (recs[1], recs[3])]})
        stub.add_client_error("put_records", "ProvisionedThroughputExceededException", http_status_code=400)
        stub.add_response("put_records", _put_response([None]),
                          {"StreamName": "s", "Records": [{"Data": recs[1].data, "PartitionKey": "pk-1"}]})
        writer.put(recs)
        stub.assert_no_pending_responses()
    assert writer.stats.calls == 4 and writer.stats.retried_records == 3
    assert len(sleeps) == 3
    assert all(0 <= s <= 0.1 * 2 ** (i + 1) for i, s in enumerate(sleeps))   # exponential cap, full jitter


def test_retries_give_up_with_a_clear_error() -> None:
    client = _offline_kinesis()
    writer = KinesisWriter(client, "s", max_attempts=3, sleep=lambda s: None)
    with Stubber(client) as stub:
        for _ in range(3):
            stub.add_response("put_records", _put_response(["ProvisionedThroughputExceededException"]))
        with pytest.raises(ProduceError, match="1 records still failing after 3 PutRecords attempts.*add shards"):
            writer.put([Record("k", b"d", "task")])
    with Stubber(client) as stub:
        stub.add_client_error("put_records", "ValidationException", "bad", http_status_code=400)
        with pytest.raises(ProduceError, match="ValidationException"):
            writer.put([Record("k", b"d", "task")])
    with pytest.raises(ProduceError, match="over Kinesis"):
        writer.put([Record("k", b"x" * (1024 * 1024), "task")])
