"""Event -> DynamoDB item (low-level attribute-value map), with its size and, when needed, compression. No I/O.

Item layout (documented in docs/reading.md):
- every field of ``detail`` as a top-level attribute under its own name; numbers as ``N``; ``version`` ``N``;
- ``cw_version`` (envelope ``version``), ``event_id``, ``event_time`` (envelope ``id`` / ``time``),
  ``kinesis_shard_id``, ``kinesis_sequence_number``, ``kinesis_subsequence_number``: where the item came from;
  every name of ``METADATA_ATTRIBUTES`` is reserved: a ``detail`` field of that name is left out of the item,
  also when we do not set the attribute ourselves (a ``detail.expires_at`` would otherwise be taken by the
  table's TTL, a ``detail.compressed_attributes`` by readers);
- ``compressed_attributes`` (``SS``), only when the item would pass DynamoDB's 400 KB limit: each attribute named
  there holds ``B`` = zlib(msgpack(value)); inside it, integral numbers are integers and other numbers doubles;
- ``expires_at`` (``N``, epoch seconds), only for STOPPED tasks when a task retention is configured (TTL);
- the derived index keys of task items (``core/schema.py`` ``index_attributes``: ``cluster_part``,
  ``cluster_service``, ``stopped_day``), each only when its inputs are present strings; reserved names too.

DynamoDB's rules, checked here so that no item we send is refused (``Unstorable`` names the rule; its ``code``
is the dead-letter reason code):
- every attribute name is a non-empty string of valid Unicode (a msgpack binary key is refused, not sent),
  at most 65,535 UTF-8 bytes; every string we send, metadata included, is valid Unicode (no lone surrogate);
- numbers: at most 38 significant digits (leading and trailing zeros do not count), magnitude 1E-130 ..
  9.9999999999999999999999999999999999999E+125, or zero; sent in a form DynamoDB parses;
- documents nest at most ``MAX_DEPTH`` levels;
- key attributes: the table key is a non-empty string of at most 2048 bytes (checked by the decoder); the detail
  fields that key an index (``core/schema.py`` ``INDEX_KEY_LIMITS``: the task's ``clusterArn``, ``lastStatus``,
  ``containerInstanceArn``, ``stoppedAt``, the instance's ``ec2InstanceId``), when present, are non-empty strings
  within the hash (2048 bytes) or range (1024 bytes) key limit, or DynamoDB refuses the whole PutItem;
- size by DynamoDB's accounting (UTF-8 bytes of names and values, numbers ~1 byte per 2 significant digits + 1,
  3 bytes per list or map + 1 per element, 1 byte for null / boolean), metadata included; compressed above
  ``COMPRESS_ABOVE``, refused (``too-large``) if still above it.

Dead-letter items are built in ``dead_letters``; which of the two a record becomes is decided in ``route``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgpack

from processor.core.events import TASK, Event
from processor.core.position import Position
from processor.core.schema import (
    DERIVED_ATTRIBUTES,
    INDEX_KEY_LIMITS,
    METADATA_ATTRIBUTES,
    UNCOMPRESSED,
    derived_size_bound,
    index_attributes,
)

ITEM_LIMIT = 400 * 1024
#: Size above which we compress: below DynamoDB's limit with room for its own accounting differences.
COMPRESS_ABOVE = ITEM_LIMIT - 8 * 1024
MAX_DEPTH = 32  # DynamoDB's nesting limit for documents
MAX_NAME_BYTES = 65_535
_RESERVED = frozenset(METADATA_ATTRIBUTES + DERIVED_ATTRIBUTES)
#: The metadata taken from the EventBridge envelope (``version``, ``id``, ``time``): checked with the detail.
ENVELOPE_ATTRIBUTES = ("cw_version", "event_id", "event_time")
#: kind -> (attribute, max UTF-8 bytes) of the detail fields that key an index (``core/schema.py``)
INDEX_KEYS = INDEX_KEY_LIMITS
#: The most the position's metadata (shard id, sequence numbers, ``expires_at``) adds to an item's size.
POSITION_METADATA_MAX = 200

AttributeValue = dict[str, Any]


class Unstorable(ValueError):
    """A value DynamoDB cannot hold. ``path`` locates it (built only on this error path, so the happy path
    formats no strings); ``code`` is the dead-letter reason code."""

    def __init__(self, reason: str, code: str = "unstorable", path: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.path = path

    def inside(self, step: str) -> "Unstorable":
        self.path = step + self.path
        return self

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


@dataclass(frozen=True, slots=True)
class Item:
    """One state item ready for a conditional put."""

    kind: str
    key_name: str  # the table's key attribute: taskArn or containerInstanceArn
    arn: str
    version: int
    attributes: dict[str, AttributeValue]
    size: int
    position: Position


def _number_size(digits: int) -> int:
    """DynamoDB's size of a number of ``digits`` (significant) digits."""
    return 1 + (digits + 1) // 2


def _number(value: Decimal | int) -> tuple[AttributeValue, int]:
    if type(value) is int:
        text = str(value)
        digits = len(text) - (text[0] == "-")
        if digits <= 38:  # the common case: no Decimal needed
            return {"N": text}, _number_size(digits)
        value = Decimal(value)
    assert isinstance(value, Decimal)
    if not value.is_finite():
        raise Unstorable(f"{value} is not a finite number")
    digits_tuple = value.as_tuple().digits
    significant = "".join(map(str, digits_tuple)).strip("0")
    if not significant:
        return {"N": "0"}, 2
    if len(significant) > 38:
        raise Unstorable(f"{value} has more than 38 significant digits")
    if not -130 <= value.adjusted() <= 125:
        raise Unstorable(f"{value} is outside DynamoDB's number range (1E-130 .. 9.9E+125)")
    text = str(value) if len(digits_tuple) <= 38 else str(value.normalize())  # trailing zeros are not precision
    return {"N": text}, _number_size(len(significant))


def _utf8_len(text: str) -> int:
    if text.isascii():  # O(1) in CPython, and most of an ECS event is ASCII
        return len(text)
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate, e.g. from a JSON "\ud800" escape
        raise Unstorable("string holds a lone surrogate (not valid Unicode)") from None


def to_attribute(value: Any, depth: int = 0) -> tuple[AttributeValue, int]:
    """A decoded JSON/msgpack value -> (DynamoDB attribute value, its size in bytes as DynamoDB counts it), or
    ``Unstorable``. Two walks, one rule each: ``value_size`` checks and sizes (DynamoDB's rules live only there),
    ``_attribute`` builds. The hot path never calls this: every record is checked once when read
    (``check_event``) and the version a flush writes is built without a second check (``_build_checked``)."""
    size = value_size(value, depth)
    return _attribute(value), size


def value_size(value: Any, depth: int = 0) -> int:
    """The size of ``value`` as DynamoDB counts it, or ``Unstorable`` naming the rule it breaks, building nothing:
    the check every record gets when it is read (``check_event``), and the one place DynamoDB's rules for a value
    live."""
    kind = type(value)
    if kind is str:
        return len(value) if value.isascii() else _utf8_len(value)  # inlined: the common case, no call
    if kind is dict:
        if depth >= MAX_DEPTH:
            raise Unstorable(f"nested deeper than DynamoDB's {MAX_DEPTH} levels")
        size = 3
        for name, inner in value.items():
            if type(name) is not str or not name:
                raise Unstorable(f"map key {_show_name(name)} is not a non-empty string")
            try:
                name_size = len(name) if name.isascii() else _utf8_len(name)  # inlined: no call for ASCII
                inner_size = len(inner) if type(inner) is str and inner.isascii() else value_size(inner, depth + 1)
                size += name_size + inner_size + 1
            except Unstorable as exc:
                raise exc.inside(f".{name}") from None
        return size
    if kind is list:
        if depth >= MAX_DEPTH:
            raise Unstorable(f"nested deeper than DynamoDB's {MAX_DEPTH} levels")
        size = 3
        for index, inner in enumerate(value):
            try:
                size += (len(inner) if type(inner) is str and inner.isascii() else value_size(inner, depth + 1)) + 1
            except Unstorable as exc:
                raise exc.inside(f"[{index}]") from None
        return size
    if kind is int:
        digits = len(str(value)) - (value < 0)
        return _number_size(digits) if digits <= 38 else _number(value)[1]  # _number's sizing, without its dict
    if kind is bool or value is None:
        return 1
    if kind is float:
        return _float_size(value)
    if kind is Decimal:
        return _number(value)[1]
    if kind is bytes:
        return len(value)
    raise Unstorable(f"a {kind.__name__} cannot be stored")


def _float_size(value: float) -> int:
    """``_number(Decimal(repr(value)))[1]`` without a Decimal: the significant digits of ``repr``'s mantissa,
    for floats well inside DynamoDB's range (the exact path decides near its ends, and for NaN / infinity)."""
    magnitude = abs(value)
    if magnitude == 0.0:
        return 2
    if not 1e-120 <= magnitude <= 1e120:
        return _number(Decimal(repr(value)))[1]
    return _number_size(len(repr(magnitude).partition("e")[0].replace(".", "").strip("0")))


def check_event(event: Event, position: Position, task_retention_hours: int = 0) -> int:
    """Raise the ``Unstorable`` that ``build_item`` would raise, building nothing unless the item is large
    enough to need compression (then the builder itself decides). Every record gets this check when it is read,
    so an unstorable record is a dead letter whatever else its window holds; the item itself is built only for
    the version a flush writes. Returns the size of what was checked (``detail`` and the envelope's metadata),
    which ``build_item(..., checked_size=)`` takes as proof that the checks passed."""
    total = 0
    for name, value in event.detail.items():
        if type(name) is str and name.isascii() and 0 < len(name) <= MAX_NAME_BYTES:
            name_size = len(name)  # _name_len's common case, inlined
        else:
            name_size = _name_len(name)
        if name in _RESERVED:
            continue
        try:
            total += name_size + (len(value) if type(value) is str and value.isascii() else value_size(value, 1))
        except Unstorable as exc:
            raise exc.inside(f"detail.{name}") from None
    _check_index_keys(event, event.detail)
    for name, text in zip(ENVELOPE_ATTRIBUTES, (event.envelope_version, event.event_id, event.time)):
        try:
            total += len(name) + _utf8_len(text)
        except Unstorable as exc:
            raise exc.inside(name) from None
    if total + POSITION_METADATA_MAX + derived_size_bound(event.kind, event.detail) > COMPRESS_ABOVE:
        build_item(event, position, task_retention_hours)
    return total


def _show_name(name: Any) -> str:
    return repr(name)[:80]


def _name_len(name: Any) -> int:
    """UTF-8 length of a top-level attribute name; Unstorable unless it is a valid, non-empty, short string."""
    if type(name) is not str or not name:
        raise Unstorable(f"attribute name {_show_name(name)} is not a non-empty string", path="detail")
    size = _utf8_len(name)
    if size > MAX_NAME_BYTES:
        raise Unstorable(f"an attribute name is {size} bytes (DynamoDB's limit is {MAX_NAME_BYTES})", path="detail")
    return size


def _check_index_keys(event: Event, attributes: dict[str, AttributeValue]) -> None:
    for name, limit in INDEX_KEYS.get(event.kind, ()):
        if name not in attributes:
            continue
        value = event.detail[name]
        if type(value) is not str or not value:
            raise Unstorable(
                f"index key {name} must be a non-empty string, got {_show_name(value)}", path=f"detail.{name}"
            )
        if _utf8_len(value) > limit:
            raise Unstorable(f"index key {name} is longer than DynamoDB's {limit}-byte limit", path=f"detail.{name}")


def _msgpack_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"cannot pack {type(value).__name__}")


def compress_value(value: Any) -> bytes:
    """The documented encoding of a compressed attribute: zlib(msgpack(value))."""
    return zlib.compress(msgpack.packb(value, default=_msgpack_default, use_bin_type=True), 6)


def decompress_value(blob: bytes) -> Any:
    """Undo ``compress_value`` (what readers of ``compressed_attributes`` do)."""
    return msgpack.unpackb(zlib.decompress(blob), raw=False, strict_map_key=False)


def _epoch(timestamp: str) -> int | None:
    try:
        return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


def _attribute(value: Any) -> AttributeValue:
    """The attribute value of a value ``value_size`` passed: building only, no check or size (the checks are
    ``value_size``'s alone). Dispatches on the exact type; maps and lists (most of an event) go through
    ``_map`` / ``_list``, which inline strings, maps and lists (one call per container, none per string)."""
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is dict:
        return {"M": _map(value)}
    if kind is list:
        return {"L": _list(value)}
    if kind is bool:
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    if kind is bytes:
        return {"B": value}
    if kind is int:
        text = str(value)
        if len(text) <= 38:  # what _number sends for an integer of at most 38 digits
            return {"N": text}
    return _number(Decimal(repr(value)) if kind is float else value)[0]  # the number's text, as DynamoDB takes it


def _map(value: dict[str, Any]) -> dict[str, AttributeValue]:
    """The ``M`` of a map: ``_attribute`` of each value, in the map's order."""
    out: dict[str, AttributeValue] = {}
    for name, inner in value.items():
        kind = type(inner)
        if kind is str:
            out[name] = {"S": inner}
        elif kind is dict:
            out[name] = {"M": _map(inner)}
        elif kind is list:
            out[name] = {"L": _list(inner)}
        else:
            out[name] = _attribute(inner)
    return out


def _list(value: list[Any]) -> list[AttributeValue]:
    """The ``L`` of a list: ``_attribute`` of each element, in order."""
    out: list[AttributeValue] = []
    append = out.append
    for inner in value:
        kind = type(inner)
        if kind is str:
            append({"S": inner})
        elif kind is dict:
            append({"M": _map(inner)})
        elif kind is list:
            append({"L": _list(inner)})
        else:
            append(_attribute(inner))
    return out


def build_item(
    event: Event, position: Position, task_retention_hours: int = 0, checked_size: int | None = None
) -> Item:
    """The state item for ``event`` read at ``position``; raises ``Unstorable`` when DynamoDB cannot hold it.

    ``checked_size``: what ``check_event`` returned for this same event. The detail then goes into the item
    without its checks and sizes walked again, unless the item may need compression (then the full walk)."""
    if (
        checked_size is not None
        and checked_size + POSITION_METADATA_MAX + derived_size_bound(event.kind, event.detail) <= COMPRESS_ABOVE
    ):
        return _build_checked(event, position, task_retention_hours, checked_size)
    attributes: dict[str, AttributeValue] = {}
    sizes: dict[str, int] = {}
    for name, value in event.detail.items():
        name_size = _name_len(name)
        if name in _RESERVED:
            continue  # metadata wins (module docstring)
        try:
            av, size = to_attribute(value, 1)
        except Unstorable as exc:
            raise exc.inside(f"detail.{name}") from None
        sizes[name] = name_size + size
        attributes[name] = av
    _check_index_keys(event, attributes)
    for name, av in _metadata(event, position, task_retention_hours).items():
        sizes[name] = _metadata_size(name, av)
        attributes[name] = av
    total = sum(sizes.values())
    if total > COMPRESS_ABOVE:
        total = _compress_largest(event, attributes, sizes, total)
    return Item(event.kind, event.key_name, event.arn, event.version, attributes, total, position)


def _metadata(event: Event, position: Position, task_retention_hours: int) -> dict[str, AttributeValue]:
    meta: dict[str, AttributeValue] = {
        "cw_version": {"S": event.envelope_version},
        "event_id": {"S": event.event_id},
        "event_time": {"S": event.time},
        "kinesis_shard_id": {"S": position.shard_id},
        "kinesis_sequence_number": {"S": position.sequence_number},
        "kinesis_subsequence_number": {"N": str(position.sub_sequence_number)},
    }
    if task_retention_hours and event.kind == TASK and event.detail.get("lastStatus") == "STOPPED":
        stopped = _epoch(str(event.detail.get("stoppedAt") or event.time))
        if stopped is not None:
            meta["expires_at"] = {"N": str(stopped + task_retention_hours * 3600)}
    for name, value in index_attributes(event.kind, event.detail).items():
        meta[name] = {"S": value}
    return meta


def _metadata_size(name: str, av: AttributeValue) -> int:
    """The size of one metadata attribute (a single ``S`` or ``N``), as DynamoDB counts it."""
    try:
        return len(name) + _utf8_len(next(iter(av.values())))
    except Unstorable as exc:
        raise exc.inside(name) from None


def _build_checked(event: Event, position: Position, task_retention_hours: int, checked_size: int) -> Item:
    detail = event.detail
    attributes = _map(
        detail if _RESERVED.isdisjoint(detail) else {n: v for n, v in detail.items() if n not in _RESERVED}
    )
    size = checked_size
    for name, av in _metadata(event, position, task_retention_hours).items():
        if name not in ENVELOPE_ATTRIBUTES:  # those were checked and counted by check_event
            size += _metadata_size(name, av)
        attributes[name] = av
    return Item(event.kind, event.key_name, event.arn, event.version, attributes, size, position)


def _compress_largest(event: Event, attributes: dict[str, AttributeValue], sizes: dict[str, int], total: int) -> int:
    protected = {event.key_name, "version", *_RESERVED, *UNCOMPRESSED.get(event.kind, ())}
    compressed: list[str] = []
    for name in sorted((n for n in sizes if n not in protected), key=sizes.__getitem__, reverse=True):
        blob = compress_value(event.detail[name])
        new_size = _utf8_len(name) + len(blob)
        if new_size >= sizes[name]:
            continue
        attributes[name] = {"B": blob}
        total += new_size - sizes[name]
        sizes[name] = new_size
        compressed.append(name)
        if total + 30 + sum(_utf8_len(n) for n in compressed) <= COMPRESS_ABOVE:
            break
    if compressed:
        attributes["compressed_attributes"] = {"SS": sorted(compressed)}
        total += len("compressed_attributes") + sum(_utf8_len(n) for n in compressed)
    if total > COMPRESS_ABOVE:
        raise Unstorable(
            f"item is {total} bytes even with {len(compressed)} attributes compressed "
            f"(DynamoDB's limit is {ITEM_LIMIT})",
            code="too-large",
        )
    return total
