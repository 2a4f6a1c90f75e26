"""How many record bytes the writer's threads may turn into items at once: the memory a flush takes beyond the
window, bounded. Pure (a lock and a condition, no I/O).

Why: building one state item holds the record decoded and its attribute maps until the put is answered, about
ten times the record's bytes (measured with tracemalloc on 1 MiB records: the decoded event and the attribute
maps, ~24 MB each, for a handful of records in flight). With ``writeConcurrency`` threads each building a record
near Kinesis' 1 MiB limit, that alone passed 150 MB. Small records (the common case) never wait: sixteen 4 KB
records are far below the budget.

Rules:
- ``hold(n)`` waits until the bytes held plus ``n`` fit in ``limit``, then holds them until the ``with`` block
  ends (whatever way it ends);
- one record always gets through when nothing else is held, whatever its size (a record larger than the
  budget is built alone, never blocked for ever);
- records of at most ``SMALL_RECORD_BYTES`` are not counted and never wait (no lock on the common path): at
  most ``writeConcurrency`` of them are in flight, a few MB;
- the budget is the caller's: the writer gives ``BUILD_BUDGET_BYTES`` of record data.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

#: Record bytes the writer builds into items at once (~10x that in memory while the puts are in flight).
BUILD_BUDGET_BYTES = 4 * 1024 * 1024
#: Records up to this size are built without counting (64 KB: sixteen in flight hold ~10 MB).
SMALL_RECORD_BYTES = 64 * 1024
_FREE: AbstractContextManager[None] = nullcontext()


class BuildBudget:
    def __init__(self, limit: int = BUILD_BUDGET_BYTES) -> None:
        self.limit = limit
        self.held = 0
        self._ready = threading.Condition()

    def hold(self, size: int) -> AbstractContextManager[None]:
        """A context that holds ``size`` record bytes of the budget while the item is built and put."""
        return _FREE if size <= SMALL_RECORD_BYTES else self._hold(size)

    @contextmanager
    def _hold(self, size: int) -> Iterator[None]:
        with self._ready:
            while self.held and self.held + size > self.limit:
                self._ready.wait()
            self.held += size
        try:
            yield
        finally:
            with self._ready:
                self.held -= size
                self._ready.notify_all()
