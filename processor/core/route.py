"""Routing one record: bytes -> a candidate version of a resource (built into an item only at flush time), the
dead letter it becomes, or Ignored. Pure.

This is the only place that decides a record's fate, in two steps that never raise, whatever the bytes (a
property-based test holds it: tests/unit/test_events_fuzz.py):
- ``admit`` (every record, when it is read): decode, validate, and check that DynamoDB could hold its item
  (``items.check_event``: the builder's rules, walking the value without building anything). A storable
  versioned event becomes a ``Candidate``: what the reducer needs (kind, ARN, version) and the original bytes,
  nothing decoded is kept; anything else is ``Ignored`` or a dead letter holding its original bytes and a reason
  code, whatever else the flush window holds.
- ``build`` (only for the version a flush is about to write): decode again and build the DynamoDB item; should
  the builder still refuse it, or DynamoDB (``refused``), it becomes a dead letter holding its original bytes and
  the writer falls back to the next older candidate of the same ARN.
Only the core's own verdicts (``Bad``, ``Unstorable``) make a dead letter here. Any other exception (a bug in the
builder, a ``MemoryError``) is never the record's fault: it goes up, the flush or the call fails, and nothing is
checkpointed past the record.
"""

from __future__ import annotations

from dataclasses import dataclass

from processor.core.dead_letters import DeadLetter, dead_letter
from processor.core.events import Event, Ignored, decode
from processor.core.items import Item, Unstorable, build_item, check_event
from processor.core.position import Position

#: What one pending candidate costs in memory beyond its bytes, counted towards the pending byte limit: the
#: Candidate and its Position, their strings (ARN, key, partition key, sequence number), the bytes object's
#: header, the reducer's list and dict slots and the adapter's arrival entry. Measured with tracemalloc on the
#: soak stream (workshop/bench/soak.py): ~570 bytes per candidate.
CANDIDATE_OVERHEAD = 600


@dataclass(frozen=True, slots=True)
class Candidate:
    """One valid version of one resource, as read: cheap to hold until a flush decides whether to write it."""

    kind: str
    key_name: str  # the table's key attribute: taskArn or containerInstanceArn
    arn: str
    version: int
    data: bytes
    position: Position
    partition_key: str
    arrival_ms: int | None
    checked_size: int | None = None  # what check_event returned when admitted (None: build checks everything)

    @property
    def size(self) -> int:
        return len(self.data) + CANDIDATE_OVERHEAD  # what holding it costs, for the pending limit


def admit(
    data: bytes, position: Position, partition_key: str, arrival_ms: int | None, task_retention_hours: int = 0
) -> Candidate | DeadLetter | Ignored:
    """One record -> a ``Candidate``, ``Ignored`` or the dead letter it becomes. Never raises for any bytes."""
    decoded = decode(data)
    if isinstance(decoded, Event):
        try:
            checked_size = check_event(decoded, position, task_retention_hours)
        except Unstorable as exc:
            return dead_letter(data, position, partition_key, arrival_ms, exc.code, str(exc))
        return Candidate(
            decoded.kind,
            decoded.key_name,
            decoded.arn,
            decoded.version,
            data,
            position,
            partition_key,
            arrival_ms,
            checked_size,
        )
    if isinstance(decoded, Ignored):
        return decoded
    return dead_letter(data, position, partition_key, arrival_ms, decoded.code, decoded.reason)


def refused(candidate: Candidate, code: str, reason: str) -> DeadLetter:
    """The dead letter of a candidate that cannot be stored: its original bytes, a reason code."""
    return dead_letter(candidate.data, candidate.position, candidate.partition_key, candidate.arrival_ms, code, reason)


def build(candidate: Candidate, task_retention_hours: int = 0) -> Item | DeadLetter:
    """The item to write for ``candidate``, or its dead letter when DynamoDB could not hold it. Raises only on a
    bug (never for the record's content): the caller fails the flush."""
    event = decode(candidate.data)
    if not isinstance(event, Event):  # cannot happen: admit decoded the same bytes
        raise RuntimeError(f"{candidate.position.dead_letter_key()} decoded differently the second time: {event}")
    try:
        return build_item(event, candidate.position, task_retention_hours, candidate.checked_size)
    except Unstorable as exc:
        return refused(candidate, exc.code, str(exc))
