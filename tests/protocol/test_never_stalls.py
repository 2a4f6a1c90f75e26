"""Generative: no record stalls the shard. Hypothesis builds records shaped like ECS events (any JSON or msgpack
value in any field, odd and binary keys, deep nesting, huge strings and numbers, every type in the key and index
attributes, both ARN formats, lone surrogates), and one processor process, driven through the MultiLang protocol
against moto with the project's real table layout (index included), reads them as one long shard, one
``processRecords`` per example. After every example: the processor is still running and checkpointed the last
record; every record ended stored, ignored or dead-lettered with its original bytes; no stored version went down.
A finite retry budget (3 s) makes a record that DynamoDB (moto) answers with a 5xx fail the test instead of
retrying for ever.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Iterator

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.config import Settings
from processor.core.dead_letters import read_dead_letter_data
from processor.core.events import Event, Ignored, decode
from workshop.testing.multilang_driver import KinesisRecord, ProcessorProcess
from workshop.testing.protocol_helpers import env_for, stored_state, unique_settings

ACCOUNT = "arn:aws:ecs:us-east-1:123456789012"
ARNS = {
    "taskArn": [
        f"{ACCOUNT}:task/prod/0123456789abcdef0123456789abcdef",
        f"{ACCOUNT}:task/c4a5-old-format",
        f"{ACCOUNT}:task/prod/ffff0000ffff0000ffff0000ffff0000",
    ],
    "containerInstanceArn": [
        f"{ACCOUNT}:container-instance/prod/89ab0123cdef4567",
        f"{ACCOUNT}:container-instance/ab12-old",
    ],
}
DETAIL_TYPES = {"taskArn": "ECS Task State Change", "containerInstanceArn": "ECS Container Instance State Change"}


OUTCOMES: dict[str, int] = {}
ONE_IN_EIGHT = st.sampled_from([False] * 7 + [True])


class Raw:
    """A JSON number token written as is (``1e200``, 40 digits, ``-0.0``)."""

    def __init__(self, text: str) -> None:
        self.text = text


# ASCII, multi-byte, NUL and lone surrogates, plus anything at all
text = st.text(
    st.sampled_from([*"aZ09:/-_ ", "\u00e9", "\u20ac", "\U0001f600", "\x00", "\ud800", "\udfff"]), max_size=20
) | st.text(st.characters(codec=None, exclude_categories=()), max_size=20)
numbers = st.one_of(
    st.integers(),
    st.integers(-(10**40), 10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["1e200", "1e-200", "1" + "0" * 45, "1." + "1" * 40, "-0.0", "9.9e125", "1E-130"]).map(Raw),
)
leaves = st.one_of(
    st.none(), st.booleans(), numbers, text, st.binary(max_size=8), st.sampled_from(["x" * 300_000, "\u00e9" * 150_000])
)
keys = st.one_of(
    text,
    st.binary(max_size=4),
    st.sampled_from(["", "version", "event_id", "expires_at", "compressed_attributes", "clusterArn"]),
)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=12,
)
deep = st.integers(25, 40).map(lambda n: _nest(n))


def _nest(n: int) -> Any:
    value: Any = {"leaf": 1}
    for _ in range(n):
        value = {"a": value}
    return value


@st.composite
def ecs_event(draw: st.DrawFn) -> dict[Any, Any]:
    key = draw(st.sampled_from(sorted(ARNS)))
    odd = draw(ONE_IN_EIGHT)  # anything at all in the key attributes and the envelope
    arn = draw(values if odd else st.sampled_from(ARNS[key]))
    version = draw(values if draw(ONE_IN_EIGHT) else st.integers(0, 6))
    extra = draw(st.dictionaries(keys, st.one_of(values, deep) if draw(st.booleans()) else text, max_size=4))
    detail: dict[Any, Any] = (
        {**extra, key: arn, "version": version} if not odd else {key: arn, "version": version, **extra}
    )
    for name in ("clusterArn", "lastStatus", "status"):
        if draw(st.booleans()):
            odd_index = draw(ONE_IN_EIGHT)
            detail[name] = draw(values if odd_index else st.sampled_from([f"{ACCOUNT}:cluster/prod", "RUNNING"]))
    envelope: dict[Any, Any] = {
        "version": draw(values) if odd else "0",
        "id": draw(values) if odd else draw(st.uuids().map(str)),
        "detail-type": draw(st.sampled_from([DETAIL_TYPES[key]] * 8 + ["ECS Service Action"]) | text)
        if odd
        else DETAIL_TYPES[key],
        "source": draw(st.sampled_from(["aws.ecs"] * 6 + ["aws.ec2"])) if odd else "aws.ecs",
        "time": draw(values) if odd else "2026-11-29T10:00:00Z",
        "detail": detail,
    }
    return envelope


def _to_json(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(_json_key(k))}:{_to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_to_json(v) for v in value) + "]"
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, bytes):
        return json.dumps(value.hex())
    return json.dumps(value)


def _json_key(key: Any) -> str:
    return key.hex() if isinstance(key, bytes) else key


def _to_msgpack(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_msgpack(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_msgpack(v) for v in value]
    if isinstance(value, Raw):
        return float(Decimal(value.text)) if abs(Decimal(value.text)) < Decimal("1e308") else value.text
    return value


@st.composite
def encoded(draw: st.DrawFn) -> tuple[bytes, str]:
    event = draw(ecs_event())
    data = None
    if draw(st.booleans()):
        try:
            data = msgpack.packb(_to_msgpack(event), use_bin_type=True)
        except (UnicodeEncodeError, OverflowError, TypeError, ValueError):
            data = None  # a lone surrogate or an integer msgpack cannot hold: JSON then
    if data is None:
        data = (
            _to_json(event).encode("utf-8", "surrogatepass")
            if draw(st.booleans())
            else json.dumps(json.loads(_to_json(event))).encode()
        )
    arn = event["detail"].get("taskArn", event["detail"].get("containerInstanceArn"))
    partition_key = arn if isinstance(arn, str) and arn and draw(st.booleans()) else draw(text | st.just("pk"))
    return data[:1_000_000], partition_key[:256]


class Shard:
    def __init__(self, s: Settings, proc: ProcessorProcess) -> None:
        self.s, self.proc, self.sequence, self.high = s, proc, 0, {}  # high: (table, ARN) -> highest stored

    def records(self, batch: list[tuple[bytes, str]]) -> list[KinesisRecord]:
        out = []
        for data, pk in batch:
            self.sequence += 1
            out.append(KinesisRecord(data, pk, f"{self.sequence:056d}"))
        return out


@pytest.fixture(scope="module")
def shard(moto_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shard]:
    s = unique_settings("gen")
    err = tmp_path_factory.mktemp("never-stalls") / "stderr"
    proc = ProcessorProcess(env=env_for(s), stderr_path=err).start()
    proc.initialize("shardId-000000000000")
    try:
        yield Shard(s, proc)
        print("outcomes:", OUTCOMES)
        proc.shutdown_requested()
        assert proc.close() == 0
    finally:
        proc.kill()


def _versions(s: Settings) -> dict[tuple[str, str], int]:
    from workshop.testing.protocol_helpers import _dynamodb  # the cached client

    ddb, out = _dynamodb(None), {}
    for table, key in ((s.task_table, "taskArn"), (s.instance_table, "containerInstanceArn")):
        for page in ddb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                out[(key, item[key]["S"])] = int(item["version"]["N"])
    return out


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(st.lists(encoded(), min_size=3, max_size=12))
def test_no_record_stalls_the_shard_loses_data_or_lowers_a_stored_version(
    shard: Shard, batch: list[tuple[bytes, str]]
) -> None:
    records = shard.records(batch)
    shard.proc.process_records(records)  # ProcessExited if the processor died
    assert shard.proc.checkpoints[-1].sequence_number == records[-1].sequence_number
    assert shard.proc.checkpoints[-1].error is None
    versions = _versions(shard.s)
    _, dead = stored_state(shard.s)
    for record in records:
        got = decode(record.data)
        letter = dead.get(record.sequence_number)
        if letter is not None:
            parts = [d for k, d in dead.items() if k.startswith(record.sequence_number + "#part")]
            plain = [{k: next(iter(v.values())) for k, v in item.items()} for item in [letter, *parts]]
            assert read_dead_letter_data(plain) == record.data, f"dead letter {record.sequence_number} lost the bytes"
            assert not isinstance(got, Ignored)
        elif isinstance(got, Event):
            stored = versions.get((got.key_name, got.arn), -1)
            assert stored >= got.version, f"{got.arn} v{got.version} neither stored nor dead-lettered ({stored})"
        else:
            assert isinstance(got, Ignored), f"record {record.sequence_number} ({got}) has no dead letter"
    for slot, version in shard.high.items():
        assert versions.get(slot, -1) >= version, f"stored version of {slot} went down"
    shard.high = versions
    for record in records:
        letter = dead.get(record.sequence_number)
        outcome = letter["reasonCode"]["S"] if letter else type(decode(record.data)).__name__
        OUTCOMES[outcome] = OUTCOMES.get(outcome, 0) + 1
