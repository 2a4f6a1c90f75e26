"""DynamoDB's refusals of a PutItem where the emulator is lenient: a transport wrapper that answers exactly as
DynamoDB documents, in front of any ``DynamoDBTransport`` (the thin client to moto, or the in-memory fake).

Why: moto accepts items real DynamoDB refuses. It checks an index key only for NULL, so an item whose attribute has
another type than an index declared on it (a team's own index, on an adopted table) is stored, where DynamoDB
refuses the whole PutItem; it does not count significant digits. Tests that run the writer through this layer see
DynamoDB's answers, with DynamoDB's error code and message, before the request reaches the emulator.

Rules (each in docs/field-notes.md, "DynamoDB refusals", with its source), checked in this order, the first one
found answered as HTTP 400 ``ValidationException`` with DynamoDB's message; what passes is sent on unchanged:
- the table's key attributes: missing ("Missing the key"), of another type ("Type mismatch for key"), an empty
  string or binary ("The AttributeValue for a key attribute cannot contain an empty string value");
- every index key attribute present in the item: of another type ("Type mismatch for Index Key ... IndexName"),
  empty ("A value specified for a secondary index key is not supported ..."), a hash key over 2048 bytes or a
  range key over 1024;
- every number, at any depth: not a number, more than 38 significant digits, magnitude above
  9.9999999999999999999999999999999999999E+125 or below 1E-130;
- the item over 400 KB, counted as DynamoDB documents item sizes.
Only ``PutItem`` is checked; every other call goes through as it is. Stateless and thread-safe.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

import orjson

from processor.shard.dynamodb_http import Response

MAX_ITEM_BYTES = 400 * 1024
MAX_HASH_KEY_BYTES, MAX_RANGE_KEY_BYTES = 2048, 1024
_INVALID = "One or more parameter values were invalid: "
_NOT_VALID = "One or more parameter values are not valid. "
_MAX_N = Decimal("9.9999999999999999999999999999999999999E+125")
_MIN_N = Decimal("1E-130")


@dataclass(frozen=True)
class Index:
    name: str
    keys: tuple[tuple[str, str], ...]  # (attribute, type S/N/B), hash first


@dataclass(frozen=True)
class Table:
    """What DynamoDB knows of a table that decides a PutItem: its key schema and its indexes' keys."""

    keys: tuple[tuple[str, str], ...]  # (attribute, type S/N/B), hash first
    indexes: tuple[Index, ...] = field(default_factory=tuple)

    @classmethod
    def from_description(cls, table: Mapping[str, Any]) -> Table:
        """From a ``DescribeTable`` / ``CreateTable`` shape: KeySchema, AttributeDefinitions, the indexes."""
        types = {d["AttributeName"]: d["AttributeType"] for d in table.get("AttributeDefinitions", [])}

        def keys(schema: list[dict[str, str]]) -> tuple[tuple[str, str], ...]:
            ordered = sorted(schema, key=lambda k: k["KeyType"] != "HASH")
            return tuple((k["AttributeName"], types[k["AttributeName"]]) for k in ordered)

        indexes = [
            Index(i["IndexName"], keys(i["KeySchema"]))
            for i in [*table.get("GlobalSecondaryIndexes", []), *table.get("LocalSecondaryIndexes", [])]
        ]
        return cls(keys(table["KeySchema"]), tuple(indexes))


def _type_of(value: Mapping[str, Any]) -> str:
    return next(iter(value), "?") if isinstance(value, Mapping) else "?"


def _empty(value: Mapping[str, Any]) -> bool:
    return _type_of(value) in ("S", "B") and value[_type_of(value)] == ""


def _bytes_of(value: Mapping[str, Any]) -> int:
    kind = _type_of(value)
    raw = value.get(kind, "")
    if kind == "B":
        return len(base64.b64decode(raw)) if isinstance(raw, str) else len(raw)
    return len(str(raw).encode("utf-8", "surrogatepass"))


def _number_refusal(text: Any) -> str | None:
    try:
        number = Decimal(str(text).strip()) if str(text) == str(text).strip() else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        return "The parameter cannot be converted to a numeric value"
    if len(_significant(number)) > 38:
        return "Attempting to store more than 38 significant digits in a Number"
    if number != 0 and abs(number) > _MAX_N:
        return "Number overflow. Attempting to store a number with magnitude larger than supported range"
    if number != 0 and abs(number) < _MIN_N:
        return "Number underflow. Attempting to store a number with magnitude smaller than supported range"
    return None


def _significant(number: Decimal) -> str:
    """The significant digits, leading and trailing zeros trimmed (no context rounding: ``normalize`` would)."""
    return "".join(map(str, number.as_tuple().digits)).strip("0") or "0"


def _number_size(text: str) -> int:
    return (len(_significant(Decimal(text))) + 1) // 2 + 1


def _walk(value: Mapping[str, Any]) -> tuple[int, str | None]:
    """(size as DynamoDB counts it, the first number refusal) of one attribute value, at any depth."""
    kind = _type_of(value)
    raw = value.get(kind) if isinstance(value, Mapping) else None
    if kind in ("S", "B"):
        return _bytes_of(value), None
    if kind == "N":
        refusal = _number_refusal(raw)
        return (1 if refusal else _number_size(str(raw))), refusal
    if kind in ("NS", "SS", "BS"):
        size, refusal = 0, None
        for member in raw or []:
            got, bad = _walk({kind[0]: member})
            size, refusal = size + got, refusal or bad
        return size, refusal
    if kind in ("L", "M"):
        size, refusal = 3, None
        members = (raw or {}).items() if kind == "M" else enumerate(raw or [])
        for name, member in members:
            got, bad = _walk(member)
            size += got + 1 + (len(str(name).encode("utf-8", "surrogatepass")) if kind == "M" else 0)
            refusal = refusal or bad
        return size, refusal
    return 1, None  # BOOL, NULL


def refusal(table: Table, item: Mapping[str, Mapping[str, Any]]) -> str | None:
    """DynamoDB's message refusing a PutItem of ``item`` into ``table`` (module docstring), or None."""
    for name, kind in table.keys:
        if name not in item:
            return f"{_INVALID}Missing the key {name} in the item"
        if _type_of(item[name]) != kind:
            return f"{_INVALID}Type mismatch for key {name} expected: {kind} actual: {_type_of(item[name])}"
        if _empty(item[name]):
            return (
                f"{_NOT_VALID}The AttributeValue for a key attribute cannot contain an empty string value. Key: {name}"
            )
    for index in table.indexes:
        for position, (name, kind) in enumerate(index.keys):
            if name not in item:
                continue  # a sparse index: the item is simply not in it
            actual = _type_of(item[name])
            if actual != kind:
                return (
                    f"{_INVALID}Type mismatch for Index Key {name} Expected: {kind} Actual: {actual} "
                    f"IndexName: {index.name}"
                )
            if _empty(item[name]):
                return (
                    f"{_NOT_VALID}A value specified for a secondary index key is not supported. The AttributeValue "
                    f"for a key attribute cannot contain an empty string value. IndexName: {index.name}, "
                    f"IndexKey: {name}"
                )
            if position == 0 and _bytes_of(item[name]) > MAX_HASH_KEY_BYTES:
                return f"{_INVALID}Size of hashkey has exceeded the maximum size limit of{MAX_HASH_KEY_BYTES} bytes"
            if position == 1 and _bytes_of(item[name]) > MAX_RANGE_KEY_BYTES:
                return (
                    f"{_INVALID}Aggregated size of all range keys has exceeded the size limit of "
                    f"{MAX_RANGE_KEY_BYTES} bytes"
                )
    size = 0
    for name, value in item.items():
        got, bad = _walk(value)
        if bad:
            return bad
        size += len(name.encode("utf-8", "surrogatepass")) + got
    if size > MAX_ITEM_BYTES:
        return "Item size has exceeded the maximum allowed size"
    return None


def refused(message: str) -> Response:
    """The reply DynamoDB gives: HTTP 400, ``ValidationException``, its message."""
    body = {"__type": "com.amazon.coral.validate#ValidationException", "message": message}
    return Response(400, "ValidationException", message, body)


class StrictDynamoDB:
    """A ``DynamoDBTransport`` that refuses PutItems as DynamoDB does (module docstring), then delegates to
    ``inner``. ``tables`` maps table names to what DynamoDB knows of them; other tables are not checked.
    ``refusals`` counts the refusals given, by message."""

    def __init__(self, inner: Any, tables: Mapping[str, Table]) -> None:
        self.inner = inner
        self.tables = dict(tables)
        self.refusals: list[str] = []

    def _check(self, operation: str, request: Mapping[str, Any] | bytes) -> Response | None:
        if operation != "PutItem":
            return None
        body = orjson.loads(request) if isinstance(request, (bytes, bytearray)) else request
        table = self.tables.get(str(body.get("TableName")))
        message = refusal(table, body.get("Item", {})) if table is not None else None
        if message is None:
            return None
        self.refusals.append(message)
        return refused(message)

    def call(self, operation: str, request: Mapping[str, Any] | bytes) -> Response:
        return self._check(operation, request) or self.inner.call(operation, request)

    def __getattr__(self, name: str) -> Any:  # every other call goes through unchanged
        return getattr(self.inner, name)
