"""The per-shard reducer: the pending versions of each resource since the last flush. Pure: no I/O.

Every record the shard delivers is offered exactly once, in order, as one of: a ``Candidate`` (a valid version
of one resource, its original bytes), a ``DeadLetter``, or an ignored record. The reducer keeps, per (kind,
ARN), every distinct version offered, newest first, the dead letters, and the position of the last record offered.
A record with the same version and the same bytes as one held is a duplicate (dropped); with the same version but
other bytes it is kept after the first (a redelivery is byte-identical, so one of the two is damaged: if the
first cannot be stored, the next is tried). Older versions are kept as fallbacks: a flush writes the
newest version that can be stored, so a newest version that DynamoDB cannot hold (dead-lettered) never displaces
an older valid one of the same window. Every candidate's bytes count towards ``max_bytes``.

``drain()`` hands all of that over as a ``Batch``: once the batch is durable, checkpointing at ``batch.last`` is
safe, because every record at or before it is in the batch (or superseded by something in it, or ignored).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from processor.core.dead_letters import DeadLetter
from processor.core.position import Position
from processor.core.route import Candidate


class Offered(Enum):
    """What became of a candidate offered to the reducer, relative to the versions it holds of that resource."""

    NEW = "new"  # the first version of the resource in this window
    NEWER = "newer"  # newer than every version held: now the newest
    DUPLICATE = "duplicate"  # the same version and the same bytes as one held: dropped
    SAME_VERSION = "same-version"  # the same version as one held, other bytes: kept after it as a fallback
    OLDER = "older"  # older than the newest held: kept as a fallback


@dataclass
class Counts:
    records: int = 0
    events: int = 0
    duplicates: int = 0
    superseded: int = 0  # older versions on arrival or replaced by a newer one (kept only as fallbacks)
    ignored: int = 0
    dead_letters: int = 0


@dataclass(frozen=True)
class Batch:
    """What one flush must make durable before checkpointing at ``last``: per resource, its candidate versions
    newest first (the writer stores the first one that can be stored), and the dead letters."""

    resources: list[list[Candidate]]  # per resource, its candidate versions, newest first
    dead_letters: list[DeadLetter]
    last: Position | None
    counts: Counts
    first: Position | None = None

    @property
    def empty(self) -> bool:
        return self.last is None


#: The default pending limits (``Settings.max_pending_arns`` / ``max_pending_bytes`` take them).
MAX_PENDING_ARNS = 10_000
MAX_PENDING_BYTES = 96 * 1024 * 1024


@dataclass
class Reducer:
    max_entries: int = MAX_PENDING_ARNS  # resources and dead letters together (``maxPendingArns``)
    max_bytes: int = MAX_PENDING_BYTES
    _pending: dict[tuple[str, str], list[Candidate]] = field(default_factory=dict)
    _dead: list[DeadLetter] = field(default_factory=list)
    _first: Position | None = None
    _last: Position | None = None
    _bytes: int = 0
    _counts: Counts = field(default_factory=Counts)

    def offer(self, candidate: Candidate, position: Position) -> Offered:
        """Offer a candidate version; what became of it, relative to the versions held ("stale" is the writer's
        word for a version DynamoDB already holds or passed)."""
        self._advance(position)
        self._counts.events += 1
        slot = (candidate.kind, candidate.arn)
        held = self._pending.get(slot)
        if held is None:
            self._pending[slot] = [candidate]
            self._bytes += candidate.size
            return Offered.NEW
        if candidate.version > held[0].version:
            held.insert(0, candidate)
            self._bytes += candidate.size
            self._counts.superseded += 1
            return Offered.NEWER
        index = len(held)
        for i, c in enumerate(held):
            if c.version == candidate.version and c.data == candidate.data:
                self._counts.duplicates += 1
                return Offered.DUPLICATE
            if c.version < candidate.version:
                index = i
                break
        held.insert(index, candidate)  # after the versions it does not pass, equal ones included
        self._bytes += candidate.size
        if held[0].version == candidate.version:
            self._counts.duplicates += 1  # same version, other bytes: kept in case the first cannot be stored
            return Offered.SAME_VERSION
        self._counts.superseded += 1
        return Offered.OLDER

    def offer_dead(self, dead: DeadLetter) -> None:
        self._advance(dead.position)
        self._dead.append(dead)
        self._bytes += dead.size
        self._counts.dead_letters += 1

    def offer_ignored(self, position: Position) -> None:
        self._advance(position)
        self._counts.ignored += 1

    def _advance(self, position: Position) -> None:
        if self._first is None:
            self._first = position
        self._last = position
        self._counts.records += 1

    @property
    def full(self) -> bool:
        """True when the pending state passed a limit and should be flushed now."""
        return len(self._pending) + len(self._dead) >= self.max_entries or self._bytes >= self.max_bytes

    @property
    def pending_arns(self) -> int:
        return len(self._pending)

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    @property
    def has_pending(self) -> bool:
        """True when records were offered since the last drain (even if none needs a write)."""
        return self._last is not None

    def drain(self) -> Batch:
        batch = Batch(list(self._pending.values()), self._dead, self._last, self._counts, self._first)
        self.clear()
        return batch

    def clear(self) -> None:
        """Forget everything pending (after a drain, or when the lease is lost)."""
        self._pending = {}
        self._dead = []
        self._first = None
        self._last = None
        self._bytes = 0
        self._counts = Counts()
