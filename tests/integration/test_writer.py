"""The writer against moto's DynamoDB over HTTP."""

from __future__ import annotations

import random
from typing import Any, Iterator

import pytest
from botocore.exceptions import ClientError

from processor import aws
from processor.config import Settings
from processor.core.dead_letters import dead_letter
from processor.core.events import Event, decode
from processor.core.items import Item, build_item
from processor.core.position import Position
from processor.core.reducer import Batch, Counts
from processor.ops.setup_tables import ensure_tables
from processor.shard.writer import Writer
from processor.testing.factories import as_json, task_arn, task_event

POS = Position("shardId-000000000000", "1" * 56)


@pytest.fixture()
def settings(moto_server: Any, request: pytest.FixtureRequest) -> Iterator[Settings]:
    suffix = f"{request.node.name[:40]}-{random.randrange(10**6)}"
    s = Settings(task_table=f"tasks-{suffix}", instance_table=f"instances-{suffix}",
                 dead_letter_table=f"dead-{suffix}", write_retry_budget_millis=5000)
    ensure_tables(s)
    yield s


def _item(n: int, version: int) -> Any:
    event = decode(as_json(task_event(task_arn(n), version)))
    assert isinstance(event, Event)
    return build_item(event, POS)


def _stored(settings: Settings, n: int) -> int | None:
    got = aws.client("dynamodb").get_item(TableName=settings.task_table, Key={"taskArn": {"S": task_arn(n)}})
    return int(got["Item"]["version"]["N"]) if "Item" in got else None


def _batch(items: list[Any], dead: list[Any] | None = None) -> Batch:
    return Batch(items, dead or [], POS, Counts())


def test_conditional_writes_store_newer_and_reject_older_or_equal(settings: Settings) -> None:
    writer = Writer(settings, aws.client("dynamodb", botocore_retries=1))
    out = writer.write(_batch([_item(n, 5) for n in range(20)]))
    assert (out.written, out.stale, out.ok) == (20, 0, True)
    out = writer.write(_batch([_item(0, 4), _item(1, 5), _item(2, 6)]))
    assert (out.written, out.stale) == (1, 2)
    assert [_stored(settings, n) for n in range(3)] == [5, 5, 6]
    assert out.requests == 3


def test_dead_letters_are_put(settings: Settings) -> None:
    writer = Writer(settings, aws.client("dynamodb"))
    dead = dead_letter(b"{bad", POS, "pk", 123, "bad-json", "not valid JSON")
    out = writer.write(_batch([], [dead]))
    assert out.ok and out.dead_letters == 1
    got = aws.client("dynamodb").get_item(TableName=settings.dead_letter_table,
                                          Key={"shardId": {"S": POS.shard_id}, "sequenceNumber": {"S": "1" * 56}})
    assert got["Item"]["reasonCode"] == {"S": "bad-json"} and got["Item"]["data"] == {"B": b"{bad"}


def test_missing_table_fails_the_flush_with_a_clear_message(settings: Settings) -> None:
    broken = Settings(task_table="no-such-table", dead_letter_table=settings.dead_letter_table,
                      write_retry_budget_millis=2000)
    out = Writer(broken, aws.client("dynamodb", botocore_retries=1)).write(_batch([_item(1, 1)]))
    assert not out.ok and "no-such-table" in out.failed[0] and "ecs-state setup" in out.failed[0]
    assert out.dead_letters == 0  # a missing table is not the record's fault: no dead letter


class Throttling:
    """Wraps the real client and answers the first ``n`` put_item calls with a throttling error — a reply moto
    cannot produce (the fault-proxy tests cover this over HTTP end to end)."""

    def __init__(self, real: Any, n: int, code: str = "ProvisionedThroughputExceededException") -> None:
        self.real, self.left, self.code = real, n, code

    def put_item(self, **kwargs: Any) -> Any:
        if self.left > 0:
            self.left -= 1
            raise ClientError({"Error": {"Code": self.code, "Message": "slow down"},
                               "ResponseMetadata": {"HTTPStatusCode": 400}}, "PutItem")
        return self.real.put_item(**kwargs)


def test_throttling_is_retried_with_backoff(settings: Settings) -> None:
    delays: list[float] = []
    writer = Writer(settings, Throttling(aws.client("dynamodb"), 4), sleep=delays.append, rng=random.Random(1))
    out = writer.write(_batch([_item(7, 3)]))
    assert out.ok and out.written == 1 and out.retries == 4 and out.throttled == 4 and out.requests == 5
    assert len(delays) == 4 and all(0 <= d <= 2.0 for d in delays)
    assert _stored(settings, 7) == 3


def test_retry_budget_exhausted_reports_failure(settings: Settings) -> None:
    s = Settings(task_table=settings.task_table, instance_table=settings.instance_table,
                 dead_letter_table=settings.dead_letter_table, write_max_attempts=3)
    out = Writer(s, Throttling(aws.client("dynamodb"), 100), sleep=lambda _: None).write(_batch([_item(8, 1)]))
    assert not out.ok and "after 3 attempts" in out.failed[0]
    assert _stored(settings, 8) is None


def test_an_item_dynamodb_refuses_becomes_a_dead_letter_at_its_position(settings: Settings) -> None:
    """moto answers ValidationException for an item over 400 KB (built here past our own size guard)."""
    good = _item(9, 1)
    huge = Item(good.kind, good.key, good.arn, 2, {**good.attributes, "blob": {"S": "x" * 500_000}}, good.size,
                Position("shardId-000000000009", "7" * 56, 2))
    out = Writer(settings, aws.client("dynamodb", botocore_retries=1)).write(_batch([huge]))
    assert out.ok and (out.written, out.dead_letters) == (0, 1)
    got = aws.client("dynamodb").get_item(TableName=settings.dead_letter_table,
                                          Key={"shardId": {"S": "shardId-000000000009"},
                                               "sequenceNumber": {"S": "7" * 56 + ":2"}})
    assert got["Item"]["reasonCode"] == {"S": "refused"} and "ValidationException" in got["Item"]["reason"]["S"]
    assert _stored(settings, 9) is None
