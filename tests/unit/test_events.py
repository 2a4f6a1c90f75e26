from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.core.events import Bad, Event, Ignored, decode
from processor.testing.factories import (
    as_json,
    as_msgpack,
    instance_arn,
    instance_event,
    task_arn,
    task_event,
)
from processor.testing.poison_corpus import POISON


def test_task_event_json() -> None:
    event = decode(as_json(task_event(task_arn(1), 7)))
    assert isinstance(event, Event)
    assert (event.kind, event.key, event.arn, event.version) == ("task", "taskArn", task_arn(1), 7)
    assert event.envelope_version == "0" and event.time == "2026-11-29T10:00:00Z"


def test_instance_event_msgpack_is_detected_from_the_bytes() -> None:
    event = decode(as_msgpack(instance_event(instance_arn(2), 10**12)))
    assert isinstance(event, Event)
    assert (event.kind, event.key, event.version) == ("instance", "containerInstanceArn", 10**12)


def test_json_and_msgpack_decode_to_the_same_detail() -> None:
    raw = task_event(task_arn(3), 4)
    assert decode(as_json(raw)).detail == decode(as_msgpack(raw)).detail  # type: ignore[union-attr]


def test_floats_become_decimal_never_float() -> None:
    event = decode(as_json(task_event(task_arn(1), 1, cpuShare=0.25)))
    assert isinstance(event, Event) and event.detail["cpuShare"] == Decimal("0.25")
    assert isinstance(event.detail["cpuShare"], Decimal)


def test_leading_whitespace_is_fine() -> None:
    assert isinstance(decode(b"  \n" + as_json(task_event(task_arn(1), 1))), Event)


@pytest.mark.parametrize("detail_type", ["ECS Service Action", "ECS Deployment State Change", "Some Future Type"])
def test_unversioned_aws_ecs_types_are_ignored(detail_type: str) -> None:
    raw = {"source": "aws.ecs", "detail-type": detail_type, "detail": {"eventName": "X"}}
    assert decode(as_json(raw)) == Ignored(detail_type)


def _bad(data: bytes) -> str:
    result = decode(data)
    assert isinstance(result, Bad), result
    return result.code


@pytest.mark.parametrize("name", sorted(POISON))
def test_poison_is_bad_with_a_stable_code(name: str) -> None:
    data, code = POISON[name]
    assert _bad(data) == code


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_decode_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    assert isinstance(decode(data), (Event, Ignored, Bad))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values, st.sampled_from(["json", "msgpack"]))
def test_decode_never_raises_on_arbitrary_documents(value: object, fmt: str) -> None:
    doc = {"source": "aws.ecs", "detail-type": "ECS Task State Change", "detail": value}
    data = as_json(doc) if fmt == "json" else as_msgpack(doc)
    assert isinstance(decode(data), (Event, Ignored, Bad))
