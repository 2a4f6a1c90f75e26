"""Dead letters: the original bytes of a record that cannot be applied, as DynamoDB items. Pure, no I/O.

A dead letter is keyed by (shardId, sequenceNumber[:subSequenceNumber]), so a replay rewrites the same item. It
holds the raw record bytes (zlib-compressed when that makes them smaller and they are over 1 KiB), a short stable
reason code, the reason, the partition key and times; every string is made valid Unicode (``valid_text``). Raw data
too large for one item even compressed is split into parts stored under ``<key>#part<i>`` (``dataParts`` on the first
item says how many); ``read_dead_letter_data`` reassembles them."""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from processor.core.items import AttributeValue
from processor.core.position import Position

DEAD_LETTER_PART_BYTES = 350 * 1024


def valid_text(text: str) -> str:
    """``text`` with any lone surrogate replaced by U+FFFD: DynamoDB refuses strings that are not valid Unicode,
    and partition keys and reasons come from outside (a reason quotes the record)."""
    if text.isascii():
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One or more dead-letter table items for one bad record."""

    code: str
    reason: str
    position: Position
    items: tuple[dict[str, AttributeValue], ...]
    size: int
    partition_key: str = ""


def dead_letter(
    data: bytes,
    position: Position,
    partition_key: str,
    arrival_ms: int | None,
    code: str,
    reason: str,
    received_at: datetime | None = None,
) -> DeadLetter:
    """The dead-letter item(s) for one bad record. Large data is compressed; what is still too large for one
    item is split into parts stored under ``<key>#part<i>`` (``dataParts`` on the first item says how many)."""
    payload, encoding = data, "raw"
    if len(data) > 1024:
        packed = zlib.compress(data, 6)
        if len(packed) < len(data):
            payload, encoding = packed, "zlib"
    chunks = [payload[i : i + DEAD_LETTER_PART_BYTES] for i in range(0, len(payload), DEAD_LETTER_PART_BYTES)] or [b""]
    when = (received_at or datetime.now(timezone.utc)).isoformat(timespec="milliseconds")
    key = position.dead_letter_key()
    first: dict[str, AttributeValue] = {
        "shardId": {"S": position.shard_id},
        "sequenceNumber": {"S": key},
        "reasonCode": {"S": valid_text(code)},
        "reason": {"S": valid_text(reason[:2000])},
        "partitionKey": {"S": valid_text(partition_key)},
        "data": {"B": chunks[0]},
        "dataEncoding": {"S": encoding},
        "dataLength": {"N": str(len(data))},
        "dataSha256": {"S": hashlib.sha256(data).hexdigest()},
        "receivedAt": {"S": when},
    }
    if arrival_ms is not None:
        first["approximateArrivalTimestamp"] = {"N": str(arrival_ms)}
    if len(chunks) > 1:
        first["dataParts"] = {"N": str(len(chunks))}
    items = [first] + [
        {"shardId": {"S": position.shard_id}, "sequenceNumber": {"S": f"{key}#part{i}"}, "data": {"B": chunk}}
        for i, chunk in enumerate(chunks[1:], start=1)
    ]
    return DeadLetter(code, reason, position, tuple(items), len(payload) + 512, partition_key)


def read_dead_letter_data(items: list[dict[str, Any]]) -> bytes:
    """Reassemble the raw bytes from a dead letter's items (first item, then its parts in order), for replay.
    Takes items as boto3's resource layer returns them (``data`` as bytes or ``Binary``)."""
    first, parts = items[0], sorted(items[1:], key=lambda it: int(str(it["sequenceNumber"]).rsplit("#part", 1)[1]))
    payload = b"".join(bytes(getattr(it["data"], "value", it["data"])) for it in [first, *parts])
    return zlib.decompress(payload) if first.get("dataEncoding") == "zlib" else payload
