from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.core.events import Bad, Event, Ignored, _parse_json, _parse_json_strictly, decode
from processor.core.items import Unstorable, to_attribute
from workshop.testing.factories import as_json, as_msgpack, instance_arn, instance_event, task_arn, task_event
from workshop.testing.poison_corpus import POISON


def test_task_event_json() -> None:
    event = decode(as_json(task_event(task_arn(1), 7)))
    assert isinstance(event, Event)
    assert (event.kind, event.key_name, event.arn, event.version) == ("task", "taskArn", task_arn(1), 7)
    assert event.envelope_version == "0" and event.time == "2026-11-29T10:00:00Z"


def test_instance_event_msgpack_is_detected_from_the_bytes() -> None:
    event = decode(as_msgpack(instance_event(instance_arn(2), 10**12)))
    assert isinstance(event, Event)
    assert (event.kind, event.key_name, event.version) == ("instance", "containerInstanceArn", 10**12)


def test_json_and_msgpack_decode_to_the_same_detail() -> None:
    raw = task_event(task_arn(3), 4)
    assert decode(as_json(raw)).detail == decode(as_msgpack(raw)).detail  # type: ignore[union-attr]


def test_floats_keep_the_digits_written_whichever_parser_reads_them() -> None:
    spaced = decode(as_json(task_event(task_arn(1), 1, cpuShare=0.25)))
    assert isinstance(spaced, Event) and spaced.detail["cpuShare"] == Decimal("0.25")  # the strict parser
    compact = json.dumps(task_event(task_arn(1), 1, cpuShare=0.25), separators=(",", ":")).encode()
    precise = decode(compact.replace(b'"cpuShare":0.25', b'"cpuShare":0.1000000000000000055511151231257827'))
    assert isinstance(precise, Event)  # more digits than a float holds: the strict parser, every digit kept
    assert precise.detail["cpuShare"] == Decimal("0.1000000000000000055511151231257827")
    compact = decode(compact)
    assert isinstance(compact, Event) and compact.detail["cpuShare"] == 0.25  # the fast path: a float...
    assert to_attribute(compact.detail["cpuShare"]) == to_attribute(spaced.detail["cpuShare"])  # ...stored the same


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=20,
)


def _stored(parsed: object) -> object:
    """What a parse means for the item: its attribute values (a float and the Decimal of its digits agree)."""
    if isinstance(parsed, Bad):
        return parsed.code
    try:
        return to_attribute(parsed)
    except Unstorable as exc:
        return f"unstorable {exc}"


@settings(max_examples=300, deadline=None)
@given(value=_json_values, duplicate=st.booleans(), ascii_only=st.booleans())
def test_the_fast_json_parse_always_means_what_the_strict_parser_reads(
    value: object, duplicate: bool, ascii_only: bool
) -> None:
    data = json.dumps({"detail": {"x": value, "version": 1}}, separators=(",", ":"), ensure_ascii=ascii_only)
    if duplicate:  # a key written twice: only the strict parser sees it
        data = data.replace('{"detail":{', '{"detail":{"version":0,', 1)
    raw = data.encode("utf-8", "surrogatepass")
    assert _stored(_parse_json(raw)) == _stored(_parse_json_strictly(raw))


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
