"""One shard's flush window: everything pending between two flushes, owned by one object. Pure: no I/O.

A window opens when its first record is delivered and closes in exactly one of two ways, each one call:
- ``take()``: a flush drains it (every flush, whatever its reason) and gets the batch to make durable, the
  arrival times of its records (for the freshness the flush line reports) and whether any of them was delivered
  while the shard was catching up (the writer then reads stored versions first);
- ``drop()``: the lease was lost; the new owner re-reads from the last checkpoint, so nothing pending is kept.
What it holds: the reducer (the pending versions and dead letters), the arrival time of every record, the
catching-up flag, and the schedule's opening of the window (``shard/flush_schedule.py``: the schedule keeps the
smoothed history of flushes and calls across windows; the window tells it when a window opens and closes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from processor.core.reducer import Batch, Reducer
from processor.shard.flush_schedule import FlushSchedule


@dataclass(frozen=True)
class Taken:
    """What a flush takes from the window: the batch, its records' arrival times and whether to prefetch."""

    batch: Batch
    arrivals: list[int | None]
    prefetch: bool


@dataclass
class FlushWindow:
    reducer: Reducer
    schedule: FlushSchedule
    arrivals: list[int | None] = field(default_factory=list)  # approximateArrivalTimestamp of every pending record
    caught_up: bool = False  # some pending record was delivered while the shard was catching up

    def delivered(self, now: float, wall_ms: float, arrival_ms: int | None, catching_up: bool) -> None:
        """A record is delivered at ``now`` (monotonic s) / ``wall_ms``; call before offering it to the reducer."""
        self.schedule.delivered(now, (wall_ms - arrival_ms) / 1000 if arrival_ms is not None else None)
        self.arrivals.append(arrival_ms)
        self.caught_up = self.caught_up or catching_up

    def take(self, catching_up: bool) -> Taken:
        """Close the window for a flush: its batch, arrival times, and whether the writer should prefetch."""
        taken = Taken(self.reducer.drain(), self.arrivals, self.caught_up or catching_up)
        self.arrivals, self.caught_up = [], False
        return taken

    def drop(self) -> int:
        """Close the window without a flush (lease lost); returns how many resources were pending."""
        dropped = self.reducer.pending_arns
        self.reducer.clear()
        self.schedule.dropped()
        self.arrivals, self.caught_up = [], False
        return dropped
