"""What one flush's writes came to: the counts the flush line reports (``Outcome``) and the thread-safe tally the
writer's threads and its pipeline keep of them (``Tally``). A flush with any failure recorded is not ok, and the
record processor never checkpoints past it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class Outcome:
    """The counts of one flush's writes, and what failed."""

    written: int = 0
    stale: int = 0
    dead_letters: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    fallbacks: int = 0  # resources written at an older version because a newer one could not be stored
    skipped: int = 0  # of ``stale``: known stale from the stored-version memory, no request sent
    prefetched: int = 0  # stored versions read by BatchGetItem before the writes
    catalogued: int = 0  # cluster catalogue puts answered (stored, or a newer time already there)
    failed: list[str] = field(default_factory=list)
    millis: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass
class Tally:
    """The outcome of one flush as the writer's threads count it: thread-safe."""

    outcome: Outcome
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self.outcome, name, getattr(self.outcome, name) + value)

    def add_failure(self, text: str) -> None:
        with self.lock:
            self.outcome.failed.append(text)
