"""Checkpoint hooks for ``ShardDaemon`` (callables taking the ``Checkpoint`` request, run before it is answered):
``VersionWatch`` records stored versions that went down, ``OnCheckpoint`` switches a fault on at the n-th request,
``CorpusCheck`` asserts the poison corpus's durable outcomes.

Invariants: a hook returns None (never refuses a checkpoint); a checking hook raises AssertionError, which stops
the run, when what was checkpointed is not durable. (The general durability check, against the ground truth of a
mixed stream, is ``protocol_helpers.DurabilityCheck``.)
"""

from __future__ import annotations

import time
from typing import Callable

from processor.config import Settings
from workshop.testing.factories import task_arn
from workshop.testing.multilang_driver import Checkpoint, KinesisRecord
from workshop.testing.poison_cases import IGNORED, STORED, Case
from workshop.testing.protocol_helpers import stored_state


class VersionWatch:
    """Checkpoint hook: scans the state tables at every checkpoint and records any ARN whose stored version went
    down since the previous scan (it never should: every write is conditional on a lower stored version)."""

    def __init__(self, s: Settings) -> None:
        self.s = s
        self.seen: dict[str, int] = {}
        self.regressions: list[tuple[str, int, int]] = []
        self.scans = 0

    def observe(self) -> None:
        state, _ = stored_state(self.s)
        for arn, version in state.items():
            if version < self.seen.get(arn, -1):
                self.regressions.append((arn, self.seen[arn], version))
            self.seen[arn] = max(version, self.seen.get(arn, -1))
        missing = set(self.seen) - set(state)
        self.regressions += [(arn, self.seen[arn], -1) for arn in missing]  # a deleted item is a regression too
        self.scans += 1

    def __call__(self, cp: Checkpoint) -> None:
        self.observe()
        return None


class OnCheckpoint:
    """Checkpoint hook that runs ``action`` once, at the n-th checkpoint request (before answering it)."""

    def __init__(self, n: int, action: Callable[[], None]) -> None:
        self.n, self.action, self.count = n, action, 0
        self.at: float | None = None

    def __call__(self, cp: Checkpoint) -> None:
        self.count += 1
        if self.count == self.n:
            self.at = time.monotonic()
            self.action()
        return None


class CorpusCheck:
    """Checkpoint hook: at a checkpoint, every case and follower at or before it has its expected durable outcome
    (the corpus's own ground truth: expected_state() would count unstorable events as state)."""

    def __init__(self, s: Settings, cases: list[Case], records: list[KinesisRecord]) -> None:
        self.s, self.cases, self.records, self.checked = s, cases, records, 0

    def __call__(self, cp: Checkpoint) -> None:
        def covered(record: KinesisRecord) -> bool:
            return cp.sequence_number is None or record.sequence_number <= cp.sequence_number

        state, dead = stored_state(self.s)
        for i, case in enumerate(self.cases):
            record, follower = self.records[2 * i], self.records[2 * i + 1]
            if not covered(record):
                break
            if case.expected == STORED:
                assert case.arn in state, f"checkpoint {cp.sequence_number} before {case.name} was stored"
            elif case.expected != IGNORED:
                assert record.sequence_number in dead, (
                    f"checkpoint {cp.sequence_number} before {case.name}'s dead letter was durable"
                )
            if covered(follower):
                assert task_arn(80000 + i) in state, (
                    f"checkpoint {cp.sequence_number} before the event after {case.name} was stored"
                )
        self.checked += 1
        return None
