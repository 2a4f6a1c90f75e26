"""The core never raises on any input: whatever a record's bytes are, decoding and checking them gives an event, an
ignored event or a bad-record verdict naming what was wrong, and routing gives a candidate whose item can be built
and serialised, an ignored event, or a dead letter holding the original bytes.

Property-based over structure, in both wire formats (JSON as EventBridge writes it and as people write it, msgpack
as our producer can write it): nesting depth (up to past every parser's limit, in the envelope and in the detail),
sizes, every value type each format has (huge integers, non-finite floats, binary, msgpack extension types and
timestamps, non-string map keys), any unicode including lone surrogates, envelope and detail fields of any shape,
and the bytes mutated after encoding. Pure: no I/O.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Any, Iterator

import msgpack
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from processor.core.dead_letters import DeadLetter, read_dead_letter_data
from processor.core.events import Bad, Event, Ignored, decode
from processor.core.items import Item
from processor.core.position import Position
from processor.core.route import Candidate, admit, build
from processor.shard.dynamodb_http import serialise

pytestmark = pytest.mark.unit

DEEP = "\x00deep\x00"  # a marker value replaced, after encoding, by a value nested ``depth`` levels deep
DEFAULT_RECURSION_LIMIT = 1000  # CPython's; the processor never changes it
POSITION = Position("shardId-000000000000", "4" * 56)

#: the detail-types that carry a version, one that does not, and anything else
DETAIL_TYPES = st.sampled_from(
    ["ECS Task State Change", "ECS Container Instance State Change", "ECS Service Action", ""]
) | st.text(max_size=8)
ANY_TEXT = st.text(st.characters(codec=None), max_size=40)  # every code point, lone surrogates included
#: what msgpack can carry: 64-bit integers (signed or not), doubles
MSGPACK_NUMBERS = (
    st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, -1, 2**63 - 1, 2**63, 2**64 - 1, 1e308, 5e-324])
)
#: what JSON text can carry: integers of any length (past Python's 4300-digit limit too), any float text
JSON_NUMBERS = MSGPACK_NUMBERS | st.integers(-(10**60), 10**60) | st.sampled_from([10**4000, -(2**200)])


def scalars(msgpack_only: bool) -> st.SearchStrategy[Any]:
    base: st.SearchStrategy[Any] = st.one_of(
        st.none(), st.booleans(), MSGPACK_NUMBERS if msgpack_only else JSON_NUMBERS, ANY_TEXT
    )
    if msgpack_only:
        base |= st.binary(max_size=40)
        base |= st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=16))
        base |= st.builds(msgpack.Timestamp, st.integers(0, 2**33), st.integers(0, 999_999_999))
    return base


def values(msgpack_only: bool) -> st.SearchStrategy[Any]:
    keys: st.SearchStrategy[Any] = ANY_TEXT | st.sampled_from(
        ["", "taskArn", "version", "lastStatus", "clusterArn", "cpu", "event_id"]
    )
    if msgpack_only:
        keys |= st.binary(max_size=8)
    return st.recursive(
        scalars(msgpack_only) | st.just(DEEP),
        lambda inner: st.lists(inner, max_size=6) | st.dictionaries(keys, inner, max_size=6),
        max_leaves=30,
    )


@st.composite
def events(draw: st.DrawFn, msgpack_only: bool) -> dict[str, Any]:
    """An envelope whose every field may be of any shape; often close enough to valid to reach the later checks."""
    value = values(msgpack_only)
    shaped = st.just(DEEP) | value  # an envelope field of any shape, often a deep one
    detail: Any = draw(st.dictionaries(st.sampled_from(["cpu", "containers", "lastStatus", "x", ""]), value))
    if draw(st.booleans()):
        key = draw(st.sampled_from(["taskArn", "containerInstanceArn"]))
        detail[key] = draw(st.sampled_from(["arn:aws:ecs:us-east-1:1:task/c/1", ""]) | ANY_TEXT | value)
        detail["version"] = draw(st.integers(-1, 2**63 + 1) | value)
    else:
        detail = draw(st.just(detail) | value)
    event: dict[str, Any] = {
        "version": draw(st.just("0") | shaped),
        "id": draw(st.just("6a7e8feb-b491-4cf7-a9f1-bf3703467718") | shaped),
        "detail-type": draw(DETAIL_TYPES | shaped),
        "source": draw(st.just("aws.ecs") | shaped),
        "time": draw(st.just("2026-12-07T01:00:00Z") | shaped),
        "detail": detail,
    }
    if draw(st.booleans()):  # half the time valid but for the envelope: every check runs
        event |= {"source": "aws.ecs", "detail-type": "ECS Task State Change"}
        event["detail"] = {"taskArn": "arn:aws:ecs:us-east-1:1:task/c/1", "version": 1, "x": draw(shaped)}
        event[draw(st.sampled_from(["version", "id", "time"]))] = draw(shaped)
        return event
    for name in draw(st.sets(st.sampled_from(sorted(event)))):
        del event[name]
    return event


def _json(event: dict[str, Any], compact: bool, ascii_only: bool) -> bytes:
    text = json.dumps(
        event,
        separators=(",", ":") if compact else (", ", ": "),
        ensure_ascii=ascii_only,
        allow_nan=True,  # NaN / Infinity: the strict parser must refuse them
        default=repr,
    )
    return text.encode("utf-8", "surrogatepass")


def _deepen(data: bytes, marker: bytes, depth: int, open_: bytes, leaf: bytes, close: bytes) -> bytes:
    return data.replace(marker, open_ * depth + leaf + close * depth)


@st.composite
def records(draw: st.DrawFn) -> bytes:
    """One record's bytes: an event in either format, deepened, sometimes mutated."""
    as_msgpack = draw(st.booleans())
    event = draw(events(as_msgpack))
    # around every limit: DynamoDB's 32 levels, orjson's 255, the interpreter's recursion limit, msgpack's stack
    depth = draw(st.sampled_from([1, 33, 300, 3000]) | st.integers(0, 1200) | st.integers(980, 1030))
    if as_msgpack:
        data = msgpack.packb(event, use_bin_type=True, unicode_errors="surrogatepass", strict_types=False)
        deep = draw(st.sampled_from([(b"\x91", b"\x01", b""), (b"\x81\xa1a", b"\xc0", b"")]))
        data = _deepen(data, msgpack.packb(DEEP), depth, *deep)
    else:
        data = _json(event, draw(st.booleans()), draw(st.booleans()))
        marker = json.dumps(DEEP, ensure_ascii=True).encode()
        deep = draw(st.sampled_from([(b"[", b"1", b"]"), (b'{"a":', b"null", b"}")]))
        data = _deepen(data, marker, depth, *deep)
        data = data.replace(json.dumps(DEEP, ensure_ascii=False).encode(), b"1")
    mutation = draw(st.sampled_from(["none", "none", "none", "truncate", "flip", "append"]))
    if mutation == "truncate" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif mutation == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    elif mutation == "append":
        data += draw(st.binary(min_size=1, max_size=8))
    return data


def _attributes(dead: DeadLetter) -> list[dict[str, Any]]:
    return [{name: next(iter(value.values())) for name, value in item.items()} for item in dead.items]


def _envelope_with(field: str, depth: int) -> bytes:
    head = msgpack.packb({"source": "aws.ecs", "detail-type": "ECS Task State Change"})
    detail = msgpack.packb("detail") + msgpack.packb({"taskArn": "arn:aws:ecs:us-east-1:1:task/c/1", "version": 1})
    return bytes([0x84]) + head[1:] + detail + msgpack.packb(field) + b"\x91" * depth + b"\xc0"


@contextmanager
def _interpreter_default_recursion_limit() -> Iterator[None]:
    """Hypothesis raises the recursion limit while it runs a test (to make its own stack overflows non-flaky); the
    processor runs with the interpreter's default, where a value nested about 1000 deep exhausted the stack."""
    raised = sys.getrecursionlimit()
    sys.setrecursionlimit(DEFAULT_RECURSION_LIMIT)
    try:
        yield
    finally:
        sys.setrecursionlimit(raised)


def _routes_to_a_verdict(data: bytes) -> None:
    """The property: a verdict from the decoder, and from routing a storable item or a dead letter with the bytes."""
    with _interpreter_default_recursion_limit():
        _route(data)


def _route(data: bytes) -> None:
    decoded = decode(data)
    assert isinstance(decoded, (Event, Ignored, Bad))
    if isinstance(decoded, Bad):
        assert decoded.code and decoded.reason and len(decoded.reason) < 1000
    routed = admit(data, POSITION, "pk", None)
    if isinstance(routed, DeadLetter):
        assert isinstance(decoded, (Event, Bad)) and read_dead_letter_data(_attributes(routed)) == data
        serialise({"TableName": "d", "Item": routed.items[0]})  # our own dead letter can always be sent
    elif isinstance(routed, Candidate):
        assert isinstance(decoded, Event) and routed.data == data
        built = build(routed)
        assert isinstance(built, (Item, DeadLetter))
        if isinstance(built, Item):
            serialise({"TableName": "t", "Item": built.attributes})  # raises on anything JSON cannot carry
        else:
            assert read_dead_letter_data(_attributes(built)) == data
    else:
        assert isinstance(routed, Ignored) and isinstance(decoded, Ignored)


FUZZ = settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@FUZZ
@given(records())
@example(_envelope_with("version", 1000))  # str() of it exhausted the stack in validation
@example(b"[" * 400 + b"]" * 400)  # past what orjson writes back: the strict parser decides
def test_any_bytes_decode_to_a_verdict_and_route_to_a_storable_item_or_a_dead_letter_with_the_bytes(
    data: bytes,
) -> None:
    _routes_to_a_verdict(data)


#: where a deep value goes in an otherwise valid task event
PLACES = ["version", "id", "time", "source", "detail-type", "detail", "detail.x", "top"]


@FUZZ
@given(
    st.sampled_from(PLACES),
    st.booleans(),
    st.booleans(),
    # around every limit: DynamoDB's 32 levels, orjson's 255, the interpreter's recursion limit, msgpack's stack
    st.integers(0, 40) | st.integers(240, 270) | st.integers(900, 1100) | st.just(5000),
)
def test_a_value_nested_to_any_depth_anywhere_routes_to_a_verdict(
    place: str, as_msgpack: bool, as_map: bool, depth: int
) -> None:
    event: dict[str, Any] = {
        "version": "0",
        "id": "1",
        "detail-type": "ECS Task State Change",
        "source": "aws.ecs",
        "time": "2026-12-07T01:00:00Z",
        "detail": {"taskArn": "arn:aws:ecs:us-east-1:1:task/c/1", "version": 1},
    }
    if place == "detail.x":
        event["detail"]["x"] = DEEP
    elif place != "top":
        event[place] = DEEP
    if as_msgpack:
        data = msgpack.packb(DEEP if place == "top" else event)
        deep = (b"\x81\xa1a", b"\xc0", b"") if as_map else (b"\x91", b"\x01", b"")
        data = _deepen(data, msgpack.packb(DEEP), depth, *deep)
    else:
        data = _json(DEEP if place == "top" else event, True, True)  # type: ignore[arg-type]
        deep = (b'{"a":', b"null", b"}") if as_map else (b"[", b"1", b"]")
        data = _deepen(data, json.dumps(DEEP).encode(), depth, *deep)
    _routes_to_a_verdict(data)


@pytest.mark.parametrize("field", ["version", "id", "time"])
def test_an_envelope_field_of_another_shape_is_a_bad_envelope_naming_the_field(field: str) -> None:
    got = decode(_envelope_with(field, 1000))
    assert isinstance(got, Bad) and got.code == "bad-envelope" and got.reason.startswith(f"{field} is an array")
