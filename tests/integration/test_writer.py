"""The writer on its thin client (``DynamoDBHttp``) against moto's DynamoDB over HTTP."""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cfn_template import fresh_tables

from processor import aws
from processor.config import Settings
from processor.core.dead_letters import DeadLetter, dead_letter, read_dead_letter_data
from processor.core.items import Item
from processor.core.position import Position
from processor.core.reducer import Batch, Counts
from processor.core.route import Candidate, admit, build
from processor.shard.dynamodb_http import DynamoDBHttp, Response
from processor.shard.writer import Writer
from workshop.testing.factories import as_json, as_msgpack, task_arn, task_event

POS = Position("shardId-000000000000", "1" * 56)


@pytest.fixture()
def settings(moto_server: Any, request: pytest.FixtureRequest) -> Settings:
    return fresh_tables(request, write_retry_budget_millis=5000)


def _client() -> DynamoDBHttp:
    """The writer's client, as ``shard/main.py`` makes it (the moto fixture sets the standard environment)."""
    return DynamoDBHttp.from_environment(pool=4, timeout_s=5.0)


def _item(n: int, version: int, seq: int = 1, **detail: Any) -> Candidate:
    got = admit(
        as_json(task_event(task_arn(n), version, **detail)), Position(POS.shard_id, f"{seq:056d}"), task_arn(n), 7
    )
    assert isinstance(got, Candidate)
    return got


def _stored(settings: Settings, n: int) -> int | None:
    got = aws.client("dynamodb").get_item(TableName=settings.task_table, Key={"taskArn": {"S": task_arn(n)}})
    return int(got["Item"]["version"]["N"]) if "Item" in got else None


def _batch(items: list[Any], dead: list[Any] | None = None) -> Batch:
    """One resource per candidate, or per list of candidates (newest first)."""
    return Batch([it if isinstance(it, list) else [it] for it in items], dead or [], POS, Counts())


def _dead(settings: Settings, seq: int) -> dict[str, Any] | None:
    got = aws.client("dynamodb").get_item(
        TableName=settings.dead_letter_table,
        Key={"shardId": {"S": POS.shard_id}, "sequenceNumber": {"S": f"{seq:056d}"}},
    )
    return got.get("Item")


def test_conditional_writes_store_newer_and_reject_older_or_equal(settings: Settings) -> None:
    writer = Writer(settings, _client())
    out = writer.write(_batch([_item(n, 5) for n in range(20)]))
    assert (out.written, out.stale, out.ok) == (20, 0, True)
    out = Writer(settings, _client()).write(_batch([_item(0, 4), _item(1, 5), _item(2, 6)]))  # remembers nothing
    assert (out.written, out.stale, out.skipped) == (1, 2, 0)
    assert [_stored(settings, n) for n in range(3)] == [5, 5, 6]
    assert out.requests == 3


def test_a_version_at_or_below_one_known_to_be_stored_is_stale_without_a_request(settings: Settings) -> None:
    """Known from its own writes and from the stored item a failed condition returns (ALL_OLD)."""
    first = Writer(settings, _client())
    assert first.write(_batch([_item(n, 5) for n in range(3)])).written == 3
    out = first.write(_batch([_item(0, 5), _item(1, 4), _item(2, 6)]))
    assert (out.written, out.stale, out.skipped, out.requests) == (1, 2, 2, 1)
    other = Writer(settings, _client())  # another processor (a replay): knows nothing yet
    out = other.write(_batch([_item(0, 2)]))
    assert (out.stale, out.skipped, out.requests) == (1, 0, 1)
    assert other.stored.known(settings.task_table, task_arn(0)) == 5  # from ALL_OLD
    out = other.write(_batch([_item(0, 3), _item(1, 1)]))
    assert (out.stale, out.skipped, out.requests) == (2, 1, 1)
    assert [_stored(settings, n) for n in range(3)] == [5, 5, 6]


def test_a_catching_up_writer_reads_unknown_stored_versions_in_batches_first(settings: Settings) -> None:
    Writer(settings, _client()).write(_batch([_item(n, 5) for n in range(150)]))
    replay = Writer(settings, _client())
    out = replay.write(
        _batch([_item(n, 4) for n in range(150)] + [_item(n, 6) for n in range(150, 160)]), prefetch=True
    )
    assert out.ok and (out.written, out.stale, out.skipped, out.prefetched) == (10, 150, 150, 150)
    assert out.requests == 2 + 10  # two BatchGetItem of at most 100 keys, then only the ten new items
    out = replay.write(_batch([_item(n, 7) for n in range(160)]), prefetch=True)  # all known now: no reads
    assert (out.written, out.requests, out.prefetched) == (160, 160, 0)


def test_dead_letters_are_put(settings: Settings) -> None:
    writer = Writer(settings, _client())
    dead = dead_letter(b"{bad", POS, "pk", 123, "bad-json", "not valid JSON")
    out = writer.write(_batch([], [dead]))
    assert out.ok and out.dead_letters == 1
    got = aws.client("dynamodb").get_item(
        TableName=settings.dead_letter_table, Key={"shardId": {"S": POS.shard_id}, "sequenceNumber": {"S": "1" * 56}}
    )
    assert got["Item"]["reasonCode"] == {"S": "bad-json"} and got["Item"]["data"] == {"B": b"{bad"}


def test_a_table_lost_mid_run_is_transient_and_fails_only_past_a_finite_budget(settings: Settings) -> None:
    broken = Settings(
        task_table="no-such-table", dead_letter_table=settings.dead_letter_table, write_retry_budget_millis=1000
    )
    out = Writer(broken, _client()).write(_batch([_item(1, 1)]))
    assert not out.ok and "no-such-table" in out.failed[0] and "ResourceNotFoundException" in out.failed[0]
    assert out.dead_letters == 0 and out.retries > 1  # not the record's fault: retried, no dead letter


class Throttling:
    """Wraps the real client and answers the first ``n`` PutItem calls with a throttling error — a reply moto
    cannot produce (the fault-proxy tests cover this over HTTP end to end)."""

    def __init__(self, real: DynamoDBHttp, n: int, code: str = "ProvisionedThroughputExceededException") -> None:
        self.real, self.left, self.code = real, n, code
        self.bodies: set[bytes] = set()

    def call(self, operation: str, body: bytes) -> Response:
        self.bodies.add(body)
        if self.left > 0:
            self.left -= 1
            return Response(400 if "Throughput" in self.code else 503, self.code, "slow down", {})
        return self.real.call(operation, body)


def test_throttling_is_retried_with_backoff(settings: Settings) -> None:
    delays: list[float] = []
    writer = Writer(settings, Throttling(_client(), 4), sleep=delays.append, rng=random.Random(1))
    out = writer.write(_batch([_item(7, 3)]))
    assert out.ok and out.written == 1 and out.retries == 4 and out.throttled == 4 and out.requests == 5
    assert len(writer.client.bodies) == 1  # serialised once: every retry resent the same bytes
    assert len(delays) == 4 and all(0 <= d <= 2.0 for d in delays)
    assert _stored(settings, 7) == 3


def test_retry_budget_exhausted_reports_failure(settings: Settings) -> None:
    s = Settings(
        task_table=settings.task_table,
        instance_table=settings.instance_table,
        dead_letter_table=settings.dead_letter_table,
        write_max_attempts=3,
    )
    out = Writer(s, Throttling(_client(), 100), sleep=lambda _: None).write(_batch([_item(8, 1)]))
    assert not out.ok and "after 3 attempts" in out.failed[0]
    assert _stored(settings, 8) is None


def _oversized(candidate: Candidate, hours: int) -> Item | DeadLetter:
    """The real builder, plus a 500 KB attribute on version 2 only: an item past our own size guard, which moto
    refuses with a ValidationException (our builder never lets one through, so this stands in for a rule of
    DynamoDB's the builder might not know)."""
    item = build(candidate, hours)
    if isinstance(item, Item) and item.version == 2:
        return Item(
            item.kind,
            item.key_name,
            item.arn,
            item.version,
            {**item.attributes, "blob": {"S": "x" * 500_000}},
            item.size,
            item.position,
        )
    return item


def test_an_item_dynamodb_refuses_is_a_dead_letter_of_its_bytes_and_the_older_valid_version_is_written(
    settings: Settings,
) -> None:
    older, newest = _item(9, 1, seq=1), _item(9, 2, seq=2)
    writer = Writer(settings, _client(), build_item=_oversized)
    out = writer.write(_batch([[newest, older]]))
    assert out.ok and (out.written, out.dead_letters, out.fallbacks) == (1, 1, 1)
    dead = _dead(settings, 2)
    assert dead is not None and dead["reasonCode"] == {"S": "refused"} and "ValidationException" in dead["reason"]["S"]
    assert read_dead_letter_data([{k: next(iter(v.values())) for k, v in dead.items()}]) == newest.data
    assert _stored(settings, 9) == 1


def test_an_item_that_cannot_be_serialised_fails_the_flush_and_is_no_dead_letter(settings: Settings) -> None:
    """A msgpack binary map key past a lenient builder: the request's serialisation raises TypeError (JSON keys
    are text). That is a bug, not the record's fault: the flush fails (the caller does not checkpoint) and nothing
    is dead-lettered; the other resource is written all the same. (``admit``
    refuses such a record when it is read; the candidate is made by hand to test the writer's own backstop.)"""
    doc = task_event(task_arn(10), 3)
    doc["detail"]["weird"] = {b"k": 1}
    assert isinstance(admit(as_msgpack(doc), POS, task_arn(10), None), DeadLetter)
    bad = Candidate(
        "task", "taskArn", task_arn(10), 3, as_msgpack(doc), Position(POS.shard_id, f"{3:056d}"), task_arn(10), None
    )

    def lenient(candidate: Candidate, hours: int) -> Item | DeadLetter:
        item = build(_item(10, 2) if candidate is bad else candidate, hours)
        assert isinstance(item, Item)
        if candidate is bad:
            return Item(
                item.kind,
                item.key_name,
                item.arn,
                3,
                {**item.attributes, "weird": {"M": {b"k": {"N": "1"}}}},
                item.size,
                bad.position,
            )
        return item

    out = Writer(settings, _client(), build_item=lenient).write(_batch([[bad, _item(10, 1, seq=1)], _item(11, 1)]))
    assert not out.ok and (out.written, out.dead_letters) == (1, 0) and "TypeError" in out.failed[0]
    assert _dead(settings, 3) is None and _dead(settings, 1) is None
    assert (_stored(settings, 10), _stored(settings, 11)) == (None, 1)


def test_a_stored_version_that_is_missing_or_not_a_number_is_older_than_any_version(settings: Settings) -> None:
    """Items left by another tool (a hand-written Lambda): without this they would block the ARN for ever."""
    ddb = aws.client("dynamodb")
    ddb.put_item(TableName=settings.task_table, Item={"taskArn": {"S": task_arn(12)}, "version": {"S": "99"}})
    ddb.put_item(TableName=settings.task_table, Item={"taskArn": {"S": task_arn(13)}, "lastStatus": {"S": "X"}})
    out = Writer(settings, _client()).write(_batch([_item(12, 1), _item(13, 1)]))
    assert out.ok and out.written == 2
    assert (_stored(settings, 12), _stored(settings, 13)) == (1, 1)
    out = Writer(settings, _client()).write(_batch([_item(12, 1), _item(13, 0)]))
    assert (out.written, out.stale) == (0, 2)  # now numbers: the usual rule again


def test_transient_failures_are_retried_for_ever_by_default(settings: Settings) -> None:
    s = Settings(
        task_table=settings.task_table,
        instance_table=settings.instance_table,
        dead_letter_table=settings.dead_letter_table,
    )
    assert (s.write_retry_budget_millis, s.write_max_attempts) == (0, 0)
    out = Writer(s, Throttling(_client(), 300, code="ServiceUnavailable"), sleep=lambda _: None).write(
        _batch([_item(14, 1)])
    )
    assert out.ok and out.retries == 300 and _stored(settings, 14) == 1


@pytest.mark.parametrize(
    "detail", [{"containerInstanceArn": ""}, {"containerInstanceArn": None}, {"stoppedAt": "x" * 1025}]
)
def test_the_builder_refuses_the_index_keys_dynamodb_refuses(settings: Settings, detail: dict[str, Any]) -> None:
    """Each rule checked against moto, which enforces these three: the item as it would be sent is refused, and
    our check refuses the record before anything is sent."""
    record = as_json(task_event(task_arn(15), 1, **detail))
    got = admit(record, POS, task_arn(15), None)
    assert isinstance(got, DeadLetter) and got.code == "unstorable" and "index key" in got.reason
    plain = build(Candidate("task", "taskArn", task_arn(15), 1, as_json(task_event(task_arn(15), 1)), POS, "pk", None))
    assert isinstance(plain, Item)
    value = {"NULL": True} if next(iter(detail.values())) is None else {"S": next(iter(detail.values()))}
    with pytest.raises(ClientError, match="ValidationException"):
        aws.client("dynamodb").put_item(
            TableName=settings.task_table, Item={**plain.attributes, next(iter(detail)): value}
        )


def test_a_long_retry_reports_how_long_once_a_minute_and_beats_on_every_attempt(
    settings: Settings, tmp_path: Path
) -> None:
    """The write-stall alarm's metric (WriteRetryingFor) and the liveness beat: a retrying flush is alive."""
    import json

    from processor.shard.metrics import Metrics

    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    s = Settings(
        task_table=settings.task_table,
        instance_table=settings.instance_table,
        dead_letter_table=settings.dead_letter_table,
    )
    writer = Writer(
        s,
        Throttling(_client(), 300, code="ServiceUnavailable"),
        sleep=sleep,
        clock=lambda: now[0],
        rng=random.Random(3),
        shard_id="shardId-000000000004",
    )
    beats: list[float] = []
    emf = tmp_path / "emf.log"
    writer.observe(Metrics(f"file:{emf}", application="app"), lambda: beats.append(now[0]))
    assert writer.write(_batch([_item(15, 1)])).ok
    docs = [json.loads(line) for line in emf.read_text().splitlines()]
    retrying = [doc["WriteRetryingFor"] for doc in docs]
    assert len(beats) == 301  # every attempt, the successful one included
    gaps = [later - earlier for earlier, later in itertools.pairwise(retrying)]
    assert retrying[0] == 0 and len(retrying) >= 4  # the first retry, then once a minute (backoff <= 2 s)
    assert all(60_000 <= gap <= 62_000 for gap in gaps) and now[0] * 1000 - retrying[-1] <= 62_000
    assert {(doc["Application"], doc["ShardId"]) for doc in docs} == {("app", "shardId-000000000004")}
