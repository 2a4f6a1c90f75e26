"""Decoding and validating one Kinesis record's data: bytes -> ``Event``, ``Ignored`` or ``Bad``. No I/O.

The data is one EventBridge event, either UTF-8 JSON (what EventBridge writes) or msgpack (what our producer can
write to save bytes). The two are told apart from the first significant byte: a msgpack map or array starts
with 0x80-0x9f or 0xdc-0xdf, none of which can start JSON text; everything else is parsed as JSON.

Rules (docs/design.md's reason-code table documents the same):
- JSON must be strict UTF-8 (no BOM), one object, no duplicate keys at any depth, no NaN/Infinity.
  Fast path: orjson parses, and the parse is taken only when re-serialising it gives back the input's exact
  bytes (compact JSON, as EventBridge and our producer write it). Equal bytes prove the parse lost nothing: no
  duplicate key was dropped, every float's shortest form is the text written (so ``Decimal(repr(f))`` is the
  number as written). Anything else (whitespace, escapes, a duplicate, a number orjson cannot hold, an error)
  goes to the strict parser (``json`` with a duplicate check and ``Decimal`` numbers), which decides alone.
- ``source`` must be ``"aws.ecs"`` and ``detail-type`` a string.
- ``ECS Task State Change`` / ``ECS Container Instance State Change`` need an object ``detail`` with a non-empty
  string ARN (``taskArn`` / ``containerInstanceArn``) and an integer ``version`` in 0..2**63-1 (a JSON integer,
  not a float, string or bool).
- The envelope's ``version``, ``id`` and ``time`` are strings when present (EventBridge writes strings); any other
  shape is ``Bad`` (``bad-envelope``): nothing from the record is turned into text beyond what a reason shows.
- Any other detail-type of a valid aws.ecs event is ``Ignored`` (it has no per-resource version).
- ``decode`` never raises for any bytes: every refusal of the parsers is a ``Bad`` naming it, and validation only
  looks at types and bounded excerpts (a property-based test in tests/unit/test_events_fuzz.py holds it). Only a
  ``MemoryError`` goes up: running out of memory is the process's condition, never proven about one record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgpack
import orjson

from processor.core.schema import INSTANCE, TASK, VERSIONED

__all__ = ["INSTANCE", "TASK", "VERSIONED"]  # re-exported: the kinds and detail-types are defined in core/schema.py

MAX_VERSION = 2**63 - 1
MAX_KEY_BYTES = 2048  # DynamoDB's limit for a partition key value
# msgpack maps (0x80-0x8f, 0xde, 0xdf) and arrays (0x90-0x9f, 0xdc, 0xdd): bytes no JSON text starts with.
# msgpack ext types (0xc7-0xc9, 0xd4-0xd8) cannot start JSON text either.
_MSGPACK_CONTAINER_FIRST_BYTES = frozenset(
    [*range(0x80, 0xA0), 0xC7, 0xC8, 0xC9, *range(0xD4, 0xD9), 0xDC, 0xDD, 0xDE, 0xDF]
)
_JSON_WHITESPACE = b" \t\r\n"
#: the envelope fields an Event keeps, each a string when present
ENVELOPE_FIELDS = ("version", "id", "time")


@dataclass(frozen=True, slots=True)
class Event:
    """A versioned ECS state-change event, validated."""

    kind: str  # TASK or INSTANCE
    key_name: str  # the key attribute name: taskArn / containerInstanceArn
    arn: str
    version: int
    detail: dict[str, Any]
    envelope_version: str
    event_id: str
    time: str


@dataclass(frozen=True, slots=True)
class Ignored:
    """A valid aws.ecs event of a detail-type without a per-resource version (counted, not stored)."""

    detail_type: str


@dataclass(frozen=True, slots=True)
class Bad:
    """Input that cannot be applied; ``code`` is short and stable (dead-letter ``reasonCode``)."""

    code: str
    reason: str


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[Any] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise _DuplicateKey(f"duplicate key {dup!r}")
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number DynamoDB can store")


_json_decoder = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_float=Decimal, parse_constant=_reject_constant)


def _parse_json(data: bytes) -> Any | Bad:
    try:
        fast = orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    else:
        try:
            if orjson.dumps(fast) == data:
                return fast
        except orjson.JSONEncodeError:  # nested deeper than orjson writes: the strict parser decides
            pass
    return _parse_json_strictly(data)


def _parse_json_strictly(data: bytes) -> Any | Bad:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Bad("bad-utf8", f"not UTF-8: {exc.reason} at byte {exc.start}")
    if text.startswith("\ufeff"):
        return Bad("bad-json", "starts with a byte-order mark (EventBridge never writes one)")
    try:
        return _json_decoder.decode(text)
    except _DuplicateKey as exc:
        return Bad("duplicate-key", f"JSON object has a {exc}")
    except RecursionError:
        return Bad("too-deep", "JSON nested too deeply to parse")
    except ValueError as exc:  # JSONDecodeError and the constant rejection
        return Bad("bad-json", f"not valid JSON: {exc}")


def _parse_msgpack(data: bytes) -> Any | Bad:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as exc:
        return Bad("duplicate-key", f"msgpack map has a {exc}")
    except RecursionError:
        return Bad("too-deep", "msgpack nested too deeply to parse")
    except Exception as exc:  # msgpack raises a variety of types (ExtraData, FormatError, ValueError, ...)
        return Bad("bad-msgpack", f"not valid msgpack: {type(exc).__name__}: {exc}")


def parse(data: bytes) -> Any | Bad:
    """Bytes -> a Python value (JSON or msgpack, detected from the bytes) or ``Bad``."""
    first = data.lstrip(_JSON_WHITESPACE)[:1]
    if not first:
        return Bad("empty", "record data is empty or only whitespace")
    if first[0] in _MSGPACK_CONTAINER_FIRST_BYTES:
        return _parse_msgpack(data)
    return _parse_json(data)


def decode(data: bytes) -> Event | Ignored | Bad:
    """Decode and validate one record's data. Never raises for any input."""
    try:
        value = parse(data)
    except MemoryError:
        raise
    except Exception as exc:  # defensive: the decoder promises never to raise
        return Bad("bad-data", f"could not parse: {type(exc).__name__}: {exc}")
    if isinstance(value, Bad):
        return value
    return validate(value)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float, Decimal)):
        return "a number"
    names: dict[type, str] = {list: "an array", dict: "an object", str: "a string", bytes: "binary data"}
    return names.get(type(value), f"a {type(value).__name__}")


def _show(value: Any) -> str:
    """A value as the event's author wrote it (JSON terms), for reasons."""
    if isinstance(value, Decimal):
        return f"the non-integer number {value}"
    if isinstance(value, float):
        return f"the non-integer number {value!r}"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return "an integer of more than 77 digits"
    if isinstance(value, str) or isinstance(value, int) or value is None:
        text = json.dumps(value[:81] if isinstance(value, str) else value)
        return text if len(text) <= 80 else text[:77] + "..."
    return _json_type(value)


def validate(obj: Any) -> Event | Ignored | Bad:
    """A parsed value -> Event / Ignored / Bad by the rules in the module docstring."""
    if not isinstance(obj, dict):
        return Bad("not-object", f"event is {_json_type(obj)}, not an object")
    source = obj.get("source")
    if source != "aws.ecs":
        return Bad("wrong-source", f"source is {_show(source)}, expected \"aws.ecs\"")
    detail_type = obj.get("detail-type")
    if not isinstance(detail_type, str):
        return Bad("no-detail-type", f"detail-type is {_show(detail_type)}, expected a string")
    route = VERSIONED.get(detail_type)
    if route is None:
        return Ignored(detail_type)
    kind, key = route
    detail = obj.get("detail")
    if not isinstance(detail, dict):
        return Bad("no-detail", f"{detail_type} has no detail object")
    arn = detail.get(key)
    if not isinstance(arn, str) or not arn:
        return Bad("no-arn", f"detail.{key} is {_show(arn)}, expected a non-empty string")
    if len(arn.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        return Bad("no-arn", f"detail.{key} is longer than DynamoDB's {MAX_KEY_BYTES}-byte key limit")
    version = detail.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        return Bad("bad-version", f"detail.version is {_show(version)}, expected an integer")
    if not 0 <= version <= MAX_VERSION:
        return Bad("bad-version", f"detail.version {_show(version)} is outside 0..2**63-1")
    envelope: list[str] = []
    for field in ENVELOPE_FIELDS:
        value = obj.get(field, "")
        if not isinstance(value, str):
            return Bad("bad-envelope", f"{field} is {_show(value)}, expected a string")
        envelope.append(value)
    envelope_version, event_id, time = envelope
    return Event(
        kind=kind,
        key_name=key,
        arn=arn,
        version=version,
        detail=detail,
        envelope_version=envelope_version,
        event_id=event_id,
        time=time,
    )
