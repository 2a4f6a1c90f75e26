"""The one backoff policy and the one once-a-minute gate (processor/retry.py)."""

from __future__ import annotations

import random
import threading

from processor.retry import DYNAMODB, Backoff, EveryMinute


def test_the_delay_is_full_jitter_under_a_doubling_ceiling_capped() -> None:
    rng = random.Random(7)
    policy = Backoff(base_s=0.025, cap_s=2.0)
    for attempt, ceiling in [(1, 0.05), (2, 0.1), (5, 0.8), (7, 2.0), (10_000, 2.0)]:
        delays = [policy.delay(attempt, rng) for _ in range(2000)]
        assert 0 <= min(delays) < ceiling * 0.05 and ceiling * 0.95 < max(delays) <= ceiling
    assert DYNAMODB == Backoff(0.025, 2.0)


def test_the_gate_lets_one_line_through_a_minute_across_threads() -> None:
    now = [1000.0]
    gate = EveryMinute(clock=lambda: now[0])
    passed: list[bool] = []
    threads = [threading.Thread(target=lambda: passed.append(gate.due())) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert passed.count(True) == 1  # the first call passes, the others in the same minute do not
    now[0] += 59.9
    assert not gate.due()
    now[0] += 0.2
    assert gate.due() and not gate.due()
