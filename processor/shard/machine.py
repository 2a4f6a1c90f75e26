"""The shard state machine, pure: every rule about when to flush and where to checkpoint, in one place.

:class:`ShardMachine` is told what happened to one shard (events, one method each, the time an argument in
monotonic seconds) and answers what to do (actions): :class:`Flush`, :class:`Checkpoint`, :class:`Stop` or
nothing (None). It never touches amazon_kclpy, boto3, threads, sockets or a clock: the KCL adapter
(``shard/record_processor.py``) turns the daemon's calls into events, performs the actions (the writes, the
checkpoint, the logs and metrics) and reports their outcomes back as events. It owns the shard's pending state:
the reducer (``core/reducer.py``), the window's arrival times, the flush schedule and the catch-up state.

Events: ``initialized``; per ``processRecords`` call ``call_started``, then ``delivered`` for each record (its
routed entry), then ``call_ended`` and, once the call's actions are done, ``returned``; ``flushed`` (a flush's
outcome, ok or not); ``checkpointed`` (ok, failed, or stopped: the lease is gone or the worker shuts down);
``shutdown_requested``; ``shard_ended``; ``lease_lost``.

When to flush (the reason is the flush log line's ``reason``):
- ``full``: right after the record that brought the pending state to a limit (``maxPendingArns`` entries,
  resources and dead letters together, or ``maxPendingBytes``), mid-call if need be;
- ``interval``: at the end of a call, when :class:`FlushSchedule` says the window's oldest record has waited long
  enough to be durable about ``flushIntervalMillis`` after its arrival in Kinesis (KCL calls us on idle shards
  too: ``callProcessRecordsEvenForEmptyRecordList = true``);
- ``room``: at the end of a call, when the window has no room left for another call like this one: reading and
  parsing a call's line takes about twice its text (``CALL_MEMORY_FACTOR``), and the pending bytes plus that
  must stay within ``maxPendingBytes`` (docs/sizing.md);
- ``shutdown``, ``shard_end``: whatever is pending, when the daemon asks.
A window opens with its first record (of any kind) and closes with the flush that takes it (or a lease loss).
A flush taking a record delivered while the shard was catching up (:class:`CatchUp`), or taken while it still is,
reads the stored versions first (``Flush.prefetch``): the decision follows the records' delivery, not the empty
poll at the tip that may trigger the interval flush.

Where to checkpoint:
- after a flush reported ok, at the last record it covered (``batch.last``): every record at or before it is in
  that batch or an earlier one, stored, dead-lettered, superseded or ignored;
- a checkpoint that failed is tried again at the end of a call once the interval has passed since the last
  flush, with or without new records; a checkpoint refused because the lease is gone or the worker shuts down
  stops checkpointing (the data stays written);
- ``shutdown``: at the last durable position not yet checkpointed; ``shard_end``: at SHARD_END
  (``Checkpoint(None)``, which lets KCL start the child shards), after the final flush, even once checkpointing
  stopped;
- a failed flush answers :class:`Stop`: exit without checkpointing, the shard is re-read from its last checkpoint;
- a lost lease drops the pending state: the new owner re-reads from the last checkpoint.

The invariant: a :class:`Checkpoint` never names a position past the last record of a flush reported ok, a
failed flush or checkpoint never moves the position forward, ``Checkpoint(None)`` (SHARD_END) comes only once
every delivered record was in a flush reported ok, and after a failed flush or a lost lease no checkpoint comes
at all. Between two deliveries the window is below its limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from processor.core.dead_letters import DeadLetter
from processor.core.events import Ignored
from processor.core.position import Position
from processor.core.reducer import Batch, Reducer
from processor.core.route import Candidate

#: Reading a call's line takes about twice its text (the line, and the pieces it is joined from), then the line
#: and its parsed records live together: the memory a call needs, per byte of its records' base64 text.
CALL_MEMORY_FACTOR = 2
#: A record's JSON framing in the call's line beside its base64 data (keys, partition key, sequence number).
RECORD_FRAMING_BYTES = 200
#: Where a processor started when it reads the shard from its beginning (or a moment in its past).
FROM_THE_START = ("TRIM_HORIZON", "AT_TIMESTAMP")
#: The weight of the newest measurement in the smoothed flush duration and call gap.
SMOOTHING = 0.3


class Reason(str, Enum):
    """Why a flush happens (the flush log line's ``reason``)."""

    FULL = "full"
    INTERVAL = "interval"
    ROOM = "room"
    SHUTDOWN = "shutdown"
    SHARD_END = "shard_end"


class CheckpointResult(Enum):
    OK = "ok"
    FAILED = "failed"  # the data is durable; the checkpoint is tried again later
    STOPPED = "stopped"  # the lease is gone or the worker shuts down: no further checkpoints


@dataclass(frozen=True)
class Flush:
    """Make ``batch`` durable (reading stored versions first when ``prefetch``), then report ``flushed``."""

    reason: Reason
    batch: Batch
    arrivals: list[int | None]  # approximateArrivalTimestamp of every record of the batch (for freshness)
    prefetch: bool


@dataclass(frozen=True)
class Checkpoint:
    """Checkpoint at ``position`` (None: at SHARD_END), then report ``checkpointed``."""

    position: Position | None


@dataclass(frozen=True)
class Stop:
    """A flush failed: stop without checkpointing; the shard is read again from its last checkpoint."""


Action = Flush | Checkpoint | Stop


def _smooth(previous: float | None, newest: float) -> float:
    return newest if previous is None else previous + SMOOTHING * (newest - previous)


@dataclass
class FlushSchedule:
    """When the interval flush is due: a record read now should be durable about one interval later (seconds).

    - the interval is a freshness budget counted from the window's oldest record's arrival in Kinesis, not a
      period: the flush is due once that record has been delivered for ``interval - lead``, where ``lead`` is its
      age when it was delivered (``approximateArrivalTimestamp`` to delivery) plus what still comes between
      "due" and "durable": the recent flush duration and the recent gap between KCL's calls (a flush can only
      start at the end of a call), both smoothed (weight ``SMOOTHING`` on the newest), so one slow flush does not
      reshape every window. Before the first flush there is no history: the lead is half the interval;
    - ``lead`` is at most half the interval: a slow table or a backlog does not shrink the windows that coalesce
      its writes, which would add writes when writes are what is slow;
    - ``interval = 0``: due at the end of every call that delivered anything.
    """

    interval_s: float
    opened: float | None = None  # when the window's oldest record was delivered (None: no window open)
    age_s: float = 0.0  # how old that record was when it was delivered (0: unknown)
    flush_s: float | None = None  # smoothed duration of recent flushes
    gap_s: float | None = None  # smoothed time from the end of one call to the start of the next
    _call_ended: float | None = None

    def call_started(self, now: float) -> None:
        if self._call_ended is not None:
            self.gap_s = _smooth(self.gap_s, max(0.0, now - self._call_ended))

    def call_ended(self, now: float) -> None:
        self._call_ended = now

    def delivered(self, now: float, age_s: float | None = None) -> None:
        """A record was delivered, ``age_s`` after its arrival in Kinesis (None: unknown; a negative age, clock
        skew, counts as 0). Only the first of a window counts."""
        if self.opened is None:
            self.opened = now
            self.age_s = max(0.0, age_s or 0.0)

    def flushed(self, started: float, ended: float) -> None:
        """The window was taken at ``started`` and its flush ended at ``ended``."""
        self.opened = None
        self.flush_s = _smooth(self.flush_s, max(0.0, ended - started))

    def dropped(self) -> None:
        """The window's records were dropped (lease lost): nothing is pending any more."""
        self.opened = None

    @property
    def lead_s(self) -> float:
        """How much earlier than the interval the flush starts (at most interval / 2, and that before any flush)."""
        if self.flush_s is None:
            return self.interval_s / 2
        return min(self.interval_s / 2, self.age_s + self.flush_s + (self.gap_s or 0.0))

    def due(self, now: float) -> bool:
        """Whether the window's oldest record has waited long enough that the flush should start now."""
        return self.opened is not None and now - self.opened >= self.interval_s - self.lead_s


@dataclass
class CatchUp:
    """Whether the shard is catching up (a prefetch of stored versions is worth its reads): after starting at
    TRIM_HORIZON / AT_TIMESTAMP until a delivery is less than ``behind_ms`` behind the tip, and whenever
    ``millisBehindLatest`` >= ``behind_ms``."""

    behind_ms: int = 60_000
    from_start: bool = False
    behind: bool = False

    def on_initialize(self, sequence_number: str | None) -> None:
        self.from_start = sequence_number in FROM_THE_START

    def on_records(self, millis_behind_latest: int | None) -> None:
        if millis_behind_latest is None:
            return
        self.behind = millis_behind_latest >= self.behind_ms
        if not self.behind:
            self.from_start = False  # at the tip now: the start is history

    @property
    def active(self) -> bool:
        return self.from_start or self.behind


@dataclass
class ShardMachine:
    """One shard's flush and checkpoint decisions; see the module docstring."""

    max_pending_entries: int
    max_pending_bytes: int
    interval_s: float
    prefetch_behind_ms: int = 60_000
    reducer: Reducer = field(init=False)
    schedule: FlushSchedule = field(init=False)
    catch_up: CatchUp = field(init=False)
    millis_behind_latest: int | None = None
    #: flushed (durable) but not yet checkpointed
    durable: Position | None = None
    checkpointing: bool = True
    _arrivals: list[int | None] = field(default_factory=list)
    _delivered_catching_up: bool = False  # some pending record was delivered while the shard was catching up
    _call_bytes: int = 0
    _last_flush: float = 0.0
    _flushing: Flush | None = None
    _ending: Reason | None = None
    _stopped: bool = False  # a flush failed, or the lease was lost: no checkpoint any more

    def __post_init__(self) -> None:
        self.reducer = Reducer(self.max_pending_entries, self.max_pending_bytes)
        self.schedule = FlushSchedule(self.interval_s)
        self.catch_up = CatchUp(self.prefetch_behind_ms)

    # --- events ----------------------------------------------------------------------------------------------

    def initialized(self, now: float, sequence_number: str | None) -> None:
        """The processor starts at ``sequence_number`` (a sequence number, or TRIM_HORIZON, LATEST, ...)."""
        self._last_flush = now
        self.catch_up.on_initialize(sequence_number)

    def call_started(self, now: float, millis_behind_latest: int | None) -> None:
        self.millis_behind_latest = millis_behind_latest
        self.catch_up.on_records(millis_behind_latest)
        self.schedule.call_started(now)
        self._call_bytes = 0

    def delivered(
        self,
        entry: Candidate | DeadLetter | Ignored,
        position: Position,
        now: float,
        wall_ms: float,
        arrival_ms: int | None,
        text_bytes: int,
    ) -> Flush | None:
        """A record of the current call, routed (``core/route.admit``), delivered at ``now`` / ``wall_ms``;
        ``text_bytes`` is the length of its base64 text in the call's line. A ``full`` flush when it filled the
        window."""
        self._call_bytes += text_bytes + RECORD_FRAMING_BYTES
        self.schedule.delivered(now, (wall_ms - arrival_ms) / 1000 if arrival_ms is not None else None)
        self._arrivals.append(arrival_ms)
        self._delivered_catching_up = self._delivered_catching_up or self.catch_up.active
        if isinstance(entry, Ignored):
            self.reducer.offer_ignored(position)
        elif isinstance(entry, DeadLetter):
            self.reducer.offer_dead(entry)
        else:
            self.reducer.offer(entry, position)
        return self._take(Reason.FULL) if self.reducer.full else None

    def call_ended(self, now: float) -> Flush | Checkpoint | None:
        """The call's records are all delivered: an ``interval`` flush, a retried checkpoint, a ``room`` flush
        or nothing."""
        if self.schedule.due(now) or (self.durable is not None and now - self._last_flush >= self.interval_s):
            flush = self._take(Reason.INTERVAL)
            if flush is not None:
                return flush
            self._last_flush = now
            return self._checkpoint_durable()
        pending = self.reducer.pending_bytes
        if pending and pending + CALL_MEMORY_FACTOR * self._call_bytes > self.max_pending_bytes:
            return self._take(Reason.ROOM)
        return None

    def returned(self, now: float) -> None:
        """The call returned to the daemon at ``now`` (its flushes and checkpoints done)."""
        self.schedule.call_ended(now)

    def flushed(self, ok: bool, started: float, ended: float) -> Checkpoint | Stop | None:
        """The flush of the last :class:`Flush` ran from ``started`` to ``ended``; ``ok``: everything durable."""
        flush, self._flushing = self._flushing, None
        assert flush is not None, "flushed without a flush"
        self._last_flush = started
        self.schedule.flushed(started, ended)
        if not ok:
            self._stopped = True
            return Stop()
        if self._stopped:
            return None
        self.durable = flush.batch.last
        if self._ending is Reason.SHARD_END:
            return Checkpoint(None)
        return self._checkpoint_durable()

    def checkpointed(self, position: Position | None, result: CheckpointResult) -> None:
        if result is CheckpointResult.OK:
            if position == self.durable:
                self.durable = None
        elif result is CheckpointResult.STOPPED:
            self.checkpointing = False

    def shutdown_requested(self, now: float) -> Flush | Checkpoint | None:
        """The worker shuts down: flush what is pending, then checkpoint what is durable."""
        self._ending = Reason.SHUTDOWN
        flush = self._take(Reason.SHUTDOWN)
        if flush is not None:
            return flush
        self._last_flush = now
        return self._checkpoint_durable()

    def shard_ended(self, now: float) -> Flush | Checkpoint | None:
        """The shard was split or merged and every record delivered: flush, then checkpoint at SHARD_END."""
        self._ending = Reason.SHARD_END
        flush = self._take(Reason.SHARD_END)
        if flush is not None:
            return flush
        self._last_flush = now
        return None if self._stopped else Checkpoint(None)

    def lease_lost(self) -> int:
        """Another worker holds the shard now: drop what is pending (returns how many resources were), never
        checkpoint again."""
        dropped = self.reducer.pending_arns
        self.reducer.clear()
        self.schedule.dropped()
        self._arrivals, self._delivered_catching_up = [], False
        self.checkpointing = False
        self._stopped = True
        return dropped

    # --- the window ------------------------------------------------------------------------------------------

    def _take(self, reason: Reason) -> Flush | None:
        """Close the window for a flush (None when nothing was delivered since the last one)."""
        if not self.reducer.has_pending:
            return None
        prefetch = self._delivered_catching_up or self.catch_up.active
        flush = Flush(reason, self.reducer.drain(), self._arrivals, prefetch)
        self._arrivals, self._delivered_catching_up = [], False
        self._flushing = flush
        return flush

    def _checkpoint_durable(self) -> Checkpoint | None:
        if self.durable is None or not self.checkpointing or self._stopped:
            return None
        return Checkpoint(self.durable)
