from __future__ import annotations

import hashlib
import os
import zlib
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.core.dead_letters import DeadLetter, read_dead_letter_data
from processor.core.events import Event, Ignored, decode
from processor.core.items import (
    COMPRESS_ABOVE,
    ITEM_LIMIT,
    Item,
    Unstorable,
    build_item,
    check_event,
    decompress_value,
    to_attribute,
    value_size,
)
from processor.core.position import Position
from processor.core.route import Candidate, admit
from processor.loadgen.fleet import generate
from processor.loadgen.records import Options
from workshop.testing.factories import as_json, instance_arn, instance_event, route, task_arn, task_event

POS = Position("shardId-000000000001", "49650000000000000000000000000000000000000000000000000001", 0)


def _event(**detail: object) -> Event:
    event = decode(as_json(task_event(task_arn(1), 5, **detail)))
    assert isinstance(event, Event)
    return event


def test_item_layout() -> None:
    item = build_item(_event(), POS)
    attrs = item.attributes
    assert attrs["taskArn"] == {"S": task_arn(1)}
    assert attrs["version"] == {"N": "5"}
    assert attrs["cw_version"] == {"S": "0"}
    assert attrs["event_id"]["S"].startswith("id-") and attrs["event_time"] == {"S": "2026-11-29T10:00:00Z"}
    assert attrs["kinesis_shard_id"] == {"S": POS.shard_id}
    assert attrs["kinesis_sequence_number"] == {"S": POS.sequence_number}
    assert attrs["kinesis_subsequence_number"] == {"N": "0"}
    assert attrs["containers"] == {"L": [{"M": {"name": {"S": "web"}, "lastStatus": {"S": "RUNNING"}}}]}
    assert "compressed_attributes" not in attrs and "expires_at" not in attrs
    assert 300 < item.size < 1000


def test_types() -> None:
    assert to_attribute(None)[0] == {"NULL": True}
    assert to_attribute(True)[0] == {"BOOL": True}
    assert to_attribute(3)[0] == {"N": "3"}
    assert to_attribute(Decimal("0.25"))[0] == {"N": "0.25"}
    assert to_attribute(b"\x00")[0] == {"B": b"\x00"}
    assert to_attribute("")[0] == {"S": ""}


@pytest.mark.parametrize(
    "value", [10**38 + 1, 10**126, Decimal("1e200"), Decimal("1." + "1" * 40), {"": 1}, {"a": "deep"}]
)
def test_unstorable_values(value: object) -> None:
    if isinstance(value, dict) and "a" in value:
        deep: object = 1
        for _ in range(40):
            deep = [deep]
        value = {"a": deep}
    with pytest.raises(Unstorable):
        to_attribute(value)


def test_large_item_is_compressed_and_readers_can_undo_it() -> None:
    # ~600 KB of overrides in a compressible shape: over the limit raw, fits compressed.
    overrides = {
        "containerOverrides": [
            {"name": f"c{i}", "environment": [{"name": "K", "value": "v" * 200}] * 10} for i in range(250)
        ]
    }
    event = _event(overrides=overrides)
    item = build_item(event, POS)
    assert item.size < ITEM_LIMIT
    assert item.attributes["compressed_attributes"] == {"SS": ["overrides"]}
    assert decompress_value(item.attributes["overrides"]["B"]) == overrides
    assert item.attributes["taskArn"] == {"S": task_arn(1)} and item.attributes["version"] == {"N": "5"}


def test_incompressible_item_over_the_limit_is_unstorable() -> None:
    noise = os.urandom(300 * 1024).hex()  # 600 KB of hex: compresses only to ~300 KB per attribute
    with pytest.raises(Unstorable) as info:
        build_item(_event(a=noise, b=noise[::-1]), POS)
    assert info.value.code == "too-large"


def test_ttl_only_for_stopped_tasks_when_configured() -> None:
    stopped = decode(as_json(task_event(task_arn(1), 9, "STOPPED", stoppedAt="2026-11-29T10:00:00.123Z")))
    assert isinstance(stopped, Event)
    assert "expires_at" not in build_item(stopped, POS, 0).attributes
    expires = int(build_item(stopped, POS, 24).attributes["expires_at"]["N"])
    assert expires == 1795946400 + 24 * 3600
    assert "expires_at" not in build_item(_event(), POS, 24).attributes


def test_classify_routes_each_outcome() -> None:
    assert isinstance(route(as_json(task_event(task_arn(1), 1)), POS, "pk", 1), Item)
    assert isinstance(route(b'{"source":"aws.ecs","detail-type":"ECS Service Action"}', POS, "pk", 1), Ignored)
    dead = route(b"{not json", POS, "pk", 1)
    assert isinstance(dead, DeadLetter) and dead.code == "bad-json"
    first = dead.items[0]
    assert first["shardId"] == {"S": POS.shard_id} and first["sequenceNumber"] == {"S": POS.sequence_number}
    assert first["data"] == {"B": b"{not json"} and first["dataEncoding"] == {"S": "raw"}
    assert first["partitionKey"] == {"S": "pk"} and first["approximateArrivalTimestamp"] == {"N": "1"}


def test_dead_letter_of_a_1mb_record_is_split_and_reassembles() -> None:
    data = os.urandom(1024 * 1024)
    dead = route(data, Position("s", "9", 3), "pk", None)
    assert isinstance(dead, DeadLetter) and len(dead.items) == 3
    assert dead.items[0]["sequenceNumber"] == {"S": "9:3"} and dead.items[2]["sequenceNumber"] == {"S": "9:3#part2"}
    plain = [{k: next(iter(v.values())) for k, v in it.items()} for it in dead.items]
    assert read_dead_letter_data(plain) == data
    assert plain[0]["dataSha256"] == hashlib.sha256(data).hexdigest()


def test_compressible_dead_letter_is_zlib() -> None:
    data = b"x" * 50_000
    dead = route(data, POS, "pk", None)
    assert isinstance(dead, DeadLetter) and dead.items[0]["dataEncoding"] == {"S": "zlib"}
    assert zlib.decompress(dead.items[0]["data"]["B"]) == data


def test_lone_surrogate_is_unstorable_not_a_crash() -> None:
    data = as_json(task_event(task_arn(1), 1)).replace(b'"cpu": "256"', b'"cpu": "\\ud800"')
    dead = route(data, POS, "pk", None)
    assert isinstance(dead, DeadLetter) and dead.code == "unstorable" and "surrogate" in dead.reason


def test_trailing_zeros_are_not_precision() -> None:
    assert to_attribute(10**38)[0] == {"N": "1E+38"}  # 39 digits, one of them significant
    assert to_attribute(Decimal("1.5" + "0" * 45))[0] == {"N": "1.5"}
    assert to_attribute(Decimal("0E-500"))[0] == {"N": "0"}
    assert to_attribute(-(10**125) * 9)[0] == {"N": "-9E+125"}


def _msgpack_event(detail: dict[object, object]) -> Event:
    import msgpack

    doc = task_event(task_arn(1), 5)
    doc["detail"].update(detail)
    event = decode(msgpack.packb(doc, use_bin_type=True))
    assert isinstance(event, Event)
    return event


@pytest.mark.parametrize(
    "detail,needle",
    [
        ({b"bin": 1}, "attribute name b'bin'"),
        ({"m": {b"bin": 1}}, "map key b'bin'"),
        ({"n" * 70_000: 1}, "65535"),
        ({"clusterArn": 5}, "index key clusterArn"),
        ({"clusterArn": ""}, "index key clusterArn"),
        ({"lastStatus": None}, "index key lastStatus"),
        ({"lastStatus": "x" * 1025}, "1024-byte"),
    ],
)
def test_what_dynamodb_would_refuse_is_unstorable_before_it_is_sent(detail: dict[object, object], needle: str) -> None:
    with pytest.raises(Unstorable, match=needle):
        build_item(_msgpack_event(detail), POS)


def test_an_attribute_name_with_a_lone_surrogate_is_unstorable() -> None:
    event = decode(as_json(task_event(task_arn(1), 5, **{"\ud800": 1})))
    assert isinstance(event, Event)
    with pytest.raises(Unstorable, match="surrogate"):
        build_item(event, POS)


def test_index_keys_of_the_container_instance_table_do_not_exist() -> None:
    event = decode(as_json(instance_event(instance_arn(1), 2, clusterArn=5)))
    assert isinstance(event, Event)
    assert build_item(event, POS).attributes["clusterArn"] == {"N": "5"}


def test_metadata_strings_must_be_valid_unicode_too() -> None:
    doc = task_event(task_arn(1), 5)
    doc["id"] = "\ud800"
    event = decode(as_json(doc))
    assert isinstance(event, Event)
    with pytest.raises(Unstorable, match="event_id"):
        build_item(event, POS)


def test_reserved_metadata_names_in_detail_are_left_out_even_when_we_do_not_set_them() -> None:
    item = build_item(_event(expires_at=1, compressed_attributes=["containers"], event_id="mine"), POS)
    assert "expires_at" not in item.attributes and "compressed_attributes" not in item.attributes
    assert item.attributes["event_id"]["S"].startswith("id-")


def test_index_keys_are_never_compressed() -> None:
    noise = os.urandom(100 * 1024).hex()
    item = build_item(_event(clusterArn="c" * 2000, blob=noise, other=noise[::-1]), POS)
    assert item.attributes["clusterArn"] == {"S": "c" * 2000}
    assert "clusterArn" not in item.attributes["compressed_attributes"]["SS"]


_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(st.characters(codec=None, exclude_categories=())),
    st.binary(max_size=4),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            10**38,
            10**39 + 1,
            10**126,
            -(10**38),
            0.0,
            -0.0,
            100.0,
            1e-07,
            1.5e20,
            1e-130,
            9.99e-131,
            1e125,
            9.99e125,
            1e126,
            5e-324,
            1e-120,
            1.0000000000000002e120,
            1.7976931348623157e308,
        ]
    ),
)
_values = st.recursive(
    _leaves,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3) | st.binary(max_size=2), inner, max_size=3)
    ),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(_values, st.integers(0, 33))
def test_the_check_walk_and_the_build_walk_agree_on_size_and_refusal(value: object, depth: int) -> None:
    try:
        expected: object = to_attribute(value, depth)[1]
    except Unstorable as exc:
        expected = ("refused", str(exc))
    try:
        got: object = value_size(value, depth)
    except Unstorable as exc:
        got = ("refused", str(exc))
    assert got == expected


@settings(max_examples=500, deadline=None)
@given(_values, st.sampled_from([0, 24]), st.booleans())
def test_a_checked_event_builds_the_same_item_without_its_checks(value: object, retention: int, big: bool) -> None:
    detail = {
        "taskArn": task_arn(1),
        "version": 5,
        "x": value,
        "lastStatus": "STOPPED",
        "pad": "p" * (COMPRESS_ABOVE if big else 10),
    }
    event = Event("task", "taskArn", task_arn(1), 5, detail, "0", "id-1", "2026-11-29T10:00:00Z")
    try:
        checked = check_event(event, POS, retention)
    except Unstorable:
        return  # a dead letter when read: never built
    assert build_item(event, POS, retention, checked_size=checked) == build_item(event, POS, retention)


def test_every_record_of_the_fleet_builds_the_same_item_from_its_checked_size() -> None:
    built = 0
    for record, _ in zip(generate(Options(seed=5, tasks=50, instances=5, poison_rate=0.05)), range(500)):
        event = decode(record.data)
        if not isinstance(event, Event):
            continue
        try:
            checked = check_event(event, POS, 24)
        except Unstorable:
            continue  # poison: a dead letter when read
        assert build_item(event, POS, 24, checked_size=checked) == build_item(event, POS, 24)
        built += 1
    assert built > 400


def test_every_record_is_checked_when_read_so_an_unstorable_one_is_a_dead_letter_whatever_its_window() -> None:
    deep: object = 1
    for _ in range(40):
        deep = [deep]
    got = admit(as_json(task_event(task_arn(1), 5, nest=deep)), POS, "pk", None)
    assert isinstance(got, DeadLetter) and got.code == "unstorable" and "deeper than" in got.reason
    assert isinstance(admit(as_json(task_event(task_arn(1), 5)), POS, "pk", None), Candidate)
