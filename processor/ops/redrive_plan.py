"""The redrive commands' pure part: what goes back into the stream, in which PutRecords batches, and the report.

- A dead letter (``ops/render.py`` ``dead_letter_groups``: its first item plus its parts ``<key>#part<i>``) is
  redriven as its ORIGINAL record: the bytes ``read_dead_letter_data`` reassembles, under its original partition
  key. It is skipped, and reported, when it cannot be: parts missing (fewer than ``dataParts``), bytes whose SHA-256
  differs from ``dataSha256``, or a partition key / size Kinesis does not take.
- An SQS message from an EventBridge dead-letter queue is redriven when its body is an ``aws.ecs`` event of one of
  the two versioned detail-types (``core/events.py`` ``VERSIONED``); its partition key is the resource ARN
  (``detail.taskArn`` / ``detail.containerInstanceArn``), as the rules' ``PartitionKeyPath`` sets it. The body's
  bytes are put unchanged.
- ``batches`` packs entries into PutRecords requests of at most 500 records and 5 MiB (data + partition keys, as
  Kinesis counts them), in order.
No I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Generic, Iterable, Iterator, Sequence, TypeVar

from processor.core.dead_letters import read_dead_letter_data
from processor.core.events import VERSIONED
from processor.kinesis_limits import (
    MAX_BATCH_BYTES,
    MAX_BATCH_RECORDS,
    MAX_PARTITION_KEY_CHARS,
    MAX_RECORD_BYTES,
    record_size,
    size_batches,
)
from processor.ops.render import render_table

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One record to put, and what to clear once Kinesis accepted it (``source``: a dead letter's keys, an SQS
    receipt handle). ``label`` groups the report (a reason code, a detail-type)."""

    data: bytes
    partition_key: str
    label: str
    source: T

    @property
    def size(self) -> int:
        return record_size(self.data, self.partition_key)


@dataclass(frozen=True)
class Skipped:
    """Something that is not redriven, and why (one line for the operator)."""

    label: str
    what: str
    why: str


def kinesis_problem(data: bytes, partition_key: Any) -> str | None:
    """Why Kinesis would refuse this record, or None."""
    if not isinstance(partition_key, str) or not partition_key:
        return "no partition key"
    if len(partition_key) > MAX_PARTITION_KEY_CHARS:
        return f"partition key of {len(partition_key)} characters (Kinesis takes {MAX_PARTITION_KEY_CHARS})"
    size = record_size(data, partition_key)
    if size > MAX_RECORD_BYTES:
        return f"record of {size} bytes (Kinesis takes {MAX_RECORD_BYTES} with its partition key)"
    return None


def batches(
    entries: Iterable[Entry[T]], max_records: int = MAX_BATCH_RECORDS, max_bytes: int = MAX_BATCH_BYTES
) -> Iterator[list[Entry[T]]]:
    """``entries`` in order, packed into PutRecords requests (each entry must fit a request on its own)."""
    return size_batches(entries, lambda entry: entry.size, max_records, max_bytes)


# ---- dead letters ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LetterKeys:
    """The table keys of one dead letter (first item and parts) and the SHA-256 its first item records."""

    shard_id: str
    sequence_numbers: tuple[str, ...]
    sha256: str

    @property
    def name(self) -> str:
        return f"{self.shard_id} {self.sequence_numbers[0]}"


def letter_keys(group: Sequence[dict[str, Any]]) -> LetterKeys:
    first = group[0]
    return LetterKeys(
        str(first["shardId"]), tuple(str(it["sequenceNumber"]) for it in group), str(first.get("dataSha256", ""))
    )


def selected(group: Sequence[dict[str, Any]], reason_codes: Sequence[str]) -> bool:
    return not reason_codes or str(group[0].get("reasonCode")) in reason_codes


def letter_entry(group: Sequence[dict[str, Any]]) -> Entry[LetterKeys] | Skipped:
    """A dead letter's group of deserialized items (with ``data``) -> the record to put, or why not."""
    first = group[0]
    keys = letter_keys(group)
    code = str(first.get("reasonCode", "?"))
    parts = int(first.get("dataParts", 1))
    if len(group) != parts:
        return Skipped(code, keys.name, f"has {len(group)} of its {parts} items (parts missing); left in the table")
    try:
        data = read_dead_letter_data(list(group))
    except Exception as exc:  # noqa: BLE001 - a damaged item is reported, never fatal
        return Skipped(code, keys.name, f"its data cannot be reassembled ({exc}); left in the table")
    if keys.sha256 and hashlib.sha256(data).hexdigest() != keys.sha256:
        return Skipped(code, keys.name, "reassembled data does not match dataSha256; left in the table")
    problem = kinesis_problem(data, first.get("partitionKey"))
    if problem:
        return Skipped(code, keys.name, f"{problem}; left in the table")
    return Entry(data, str(first["partitionKey"]), code, keys)


# ---- SQS messages ---------------------------------------------------------------------------------------------


def queue_entry(body: str, source: T, message_id: str) -> Entry[T] | Skipped:
    """An EventBridge dead-letter message body -> the record to put (partition key = the resource ARN), or why
    it is left in the queue."""

    def skip(why: str, label: str = "not-an-ecs-event") -> Skipped:
        return Skipped(label, f"message {message_id}", f"{why}; left in the queue")

    try:
        event = json.loads(body)
    except ValueError:
        return skip("body is not JSON")
    if not isinstance(event, dict) or event.get("source") != "aws.ecs":
        return skip("body is not an aws.ecs event")
    detail_type = event.get("detail-type")
    if detail_type not in VERSIONED:
        return skip(f"detail-type {detail_type!r} is neither of {sorted(VERSIONED)}")
    _, key = VERSIONED[detail_type]
    detail = event.get("detail")
    arn = detail.get(key) if isinstance(detail, dict) else None
    data = body.encode("utf-8")
    problem = kinesis_problem(data, arn)
    if problem:
        return skip(f"detail.{key}: {problem}" if arn else f"no detail.{key}", label=str(detail_type))
    return Entry(data, str(arn), str(detail_type), source)


# ---- the report -----------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What a redrive did, per label: put (accepted by Kinesis), cleared (deleted from the table / queue),
    failed (still refused by Kinesis after the retries, or not cleared), skipped."""

    put: Counter[str] = field(default_factory=Counter)
    cleared: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    skipped: list[Skipped] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.errors

    def to_dict(self, dry_run: bool) -> dict[str, Any]:
        return {
            "dryRun": dry_run,
            "put": dict(self.put),
            "cleared": dict(self.cleared),
            "failed": dict(self.failed),
            "skipped": [{"label": s.label, "what": s.what, "why": s.why} for s in self.skipped],
            "errors": self.errors,
        }

    def render(self, what: str, dry_run: bool) -> str:
        labels = sorted(set(self.put) | set(self.cleared) | set(self.failed) | {s.label for s in self.skipped})
        skipped = Counter(s.label for s in self.skipped)
        heads = (
            "REASON" if what == "dead letters" else "DETAIL-TYPE",
            "WOULD PUT" if dry_run else "PUT",
            "CLEARED",
            "FAILED",
            "SKIPPED",
        )
        rows = [
            [label, str(self.put[label]), str(self.cleared[label]), str(self.failed[label]), str(skipped[label])]
            for label in labels
        ]
        out = render_table(heads, rows) if rows else ""
        out += "".join(f"skipped {s.what}: {s.why}\n" for s in self.skipped)
        out += "".join(f"error: {e}\n" for e in self.errors)
        total = sum(self.put.values())
        if dry_run:
            return out + f"dry run: {total} {what} would be put back into the stream; nothing changed\n"
        return out + (
            f"{total} {what} put back into the stream, {sum(self.cleared.values())} cleared, "
            f"{sum(self.failed.values())} failed, {len(self.skipped)} skipped\n"
        )
