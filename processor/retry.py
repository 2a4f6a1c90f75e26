"""The one backoff policy (capped exponential, full jitter) and the one rate-limited logger of every retry loop.

Rules:
- :class:`Backoff` is exponential with full jitter: attempt ``n`` (1-based) waits a uniform random time in
  ``[0, min(cap_s, base_s * 2**n))``. Full jitter spreads the retries of many shards over the window instead of
  synchronising them (AWS Architecture Blog, "Exponential Backoff And Jitter"). The exponent is clamped, so a
  retry loop that runs for days never overflows. Pure: the random source is the caller's.
- :class:`EveryMinute` lets one line through per ``every_s`` (60 s by default) across all the threads that share
  it: a long outage logs once a minute, a short burst of retries once. The first call always passes.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

LOG_EVERY_S = 60.0


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with full jitter; :meth:`delay` is the sleep before retry ``attempt``."""

    base_s: float
    cap_s: float

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        ceiling = min(self.cap_s, self.base_s * 2 ** min(max(attempt, 0), 30))
        return (rng or random).uniform(0, ceiling)


#: DynamoDB requests (the writer, the stored-versions prefetch, the start-up check of the tables)
DYNAMODB = Backoff(base_s=0.025, cap_s=2.0)
#: Kinesis PutRecords (``processor/kinesis_put.py``: the producer and the redrive commands)
KINESIS = Backoff(base_s=0.05, cap_s=5.0)
#: KCL checkpoints the daemon reports throttled (the record processor)
CHECKPOINT = Backoff(base_s=0.1, cap_s=5.0)


@dataclass
class EveryMinute:
    """A thread-safe gate: :meth:`due` is true at most once per ``every_s`` (see the module docstring)."""

    every_s: float = LOG_EVERY_S
    clock: Callable[[], float] = time.monotonic
    _last: float | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def due(self) -> bool:
        now = self.clock()
        with self._lock:
            if self._last is not None and now - self._last < self.every_s:
                return False
            self._last = now
            return True
