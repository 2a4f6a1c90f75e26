"""When the interval flush is due: a record read now should be durable about one ``flushIntervalMillis`` later. Pure.

The record processor tells a ``FlushSchedule`` what happens, with its own monotonic clock (seconds), and asks
:meth:`FlushSchedule.due` at the end of every ``processRecords`` call. The rules:
- a flush window opens when its first record (of any kind: candidate, dead letter, ignored) is delivered, and
  closes when it is drained (every flush, whatever its reason; a lease loss drops it);
- the interval is a freshness budget, counted from the oldest record's arrival in Kinesis, not a period: the
  flush is due once that record has been delivered for ``interval - lead``, where ``lead`` is its age when it
  was delivered (``approximateArrivalTimestamp`` to delivery: the reader's poll, and the previous flush, during
  which nothing is delivered) plus what still comes between "due" and "durable": the recent flush duration and
  the recent gap between KCL's calls (a flush can only start at the end of a call). The last two are smoothed
  (exponentially, weight ``SMOOTHING`` on the newest), so one slow flush does not reshape every window. Before
  the first flush there is no history, and the lead is the most it can be (half the interval): the first window
  of a processor is short rather than late;
- ``lead`` is at most half the interval: a window lasts at least ``interval / 2``, so a slow table (long flushes)
  or a backlog (old records) does not shrink the windows that coalesce its writes to a batch each, which would
  add writes when writes are what is slow;
- ``interval = 0``: due at the end of every call that delivered anything.
With a table that keeps up, the oldest record of a window is then durable about one interval after its arrival
in Kinesis (plus the scatter of one poll, as the due moment falls between two calls): the freshness the flush
line reports (``shard/freshness.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

#: The weight of the newest measurement in the smoothed flush duration and call gap.
SMOOTHING = 0.3


def _smooth(previous: float | None, newest: float) -> float:
    return newest if previous is None else previous + SMOOTHING * (newest - previous)


@dataclass
class FlushSchedule:
    """One shard's flush window and the recent flush durations and call gaps that set its lead (seconds)."""

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
        skew, counts as 0). Call it for every record: only the first of a window counts."""
        if self.opened is None:
            self.opened = now
            self.age_s = max(0.0, age_s or 0.0)

    def flushed(self, started: float, ended: float) -> None:
        """The window was drained at ``started`` and its flush ended at ``ended``."""
        self.opened = None
        self.flush_s = _smooth(self.flush_s, max(0.0, ended - started))

    def dropped(self) -> None:
        """The window's records were dropped (lease lost): nothing is pending any more."""
        self.opened = None

    @property
    def lead_s(self) -> float:
        """How much earlier than the interval the flush starts: the oldest record's age at delivery + recent flush
        + call gap, at most interval / 2 (and that before any flush: no history yet)."""
        if self.flush_s is None:
            return self.interval_s / 2
        return min(self.interval_s / 2, self.age_s + self.flush_s + (self.gap_s or 0.0))

    def due(self, now: float) -> bool:
        """Whether the window's oldest record has waited long enough that the flush should start now."""
        return self.opened is not None and now - self.opened >= self.interval_s - self.lead_s
