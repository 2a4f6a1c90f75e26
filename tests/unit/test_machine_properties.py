"""The shard state machine's invariants (``shard/machine.py``) over generated sequences of events: calls of
candidates, dead letters and ignored records at moving times, flushes that fail, checkpoints that fail or are
refused, then shutdown, shard end or a lost lease.

The test keeps its own account of what was delivered and what each flush covered (the records delivered since the
previous flush action), never the machine's, and checks at every action:
- a checkpoint never names a position past a record that is not in a flush reported ok, and never goes back;
- SHARD_END's checkpoint comes only once every delivered record was in a flush reported ok (and does come when
  every flush was ok and the lease held);
- after a failed flush or a lost lease, no checkpoint at all; a lost lease reports every pending resource dropped;
- after every delivery the window is below its limits (entries and bytes: the full rule), and after every call
  it has room for another call like it or is empty (the room rule).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from processor.core.dead_letters import DeadLetter, dead_letter
from processor.core.events import Ignored
from processor.core.position import Position
from processor.core.route import CANDIDATE_OVERHEAD, Candidate
from processor.shard.machine import (
    CALL_MEMORY_FACTOR,
    RECORD_FRAMING_BYTES,
    Action,
    Checkpoint,
    CheckpointResult,
    Flush,
    ShardMachine,
    Stop,
)

SHARD = "shardId-000000000007"
WALL0_MS = 1_800_000_000_000

record = st.tuples(
    st.sampled_from(["candidate", "candidate", "candidate", "dead", "ignored"]),
    st.integers(0, 5),  # which ARN
    st.integers(1, 4),  # version
    st.integers(0, 3000),  # payload bytes
)
call = st.tuples(
    st.just("call"),
    st.lists(record, max_size=8),
    st.floats(0, 8),  # seconds since the previous call
    st.one_of(st.none(), st.integers(0, 200_000)),  # millisBehindLatest
)
ending = st.sampled_from([("shutdown",), ("shard_end",), ("lease_lost",)])
outcomes = st.lists(st.booleans(), min_size=1, max_size=6)
results = st.lists(st.sampled_from(list(CheckpointResult)), min_size=1, max_size=6)


@dataclass
class Account:
    """The test's own account of the shard: what was delivered and which records flushes reported durable."""

    delivered: list[int] = field(default_factory=list)
    unflushed: list[int] = field(default_factory=list)  # delivered since the last flush action
    durable: set[int] = field(default_factory=set)  # in a flush reported ok
    pending_slots: set[tuple[str, str]] = field(default_factory=set)
    pending_dead: int = 0
    pending_bytes: int = 0
    call_text: int = 0
    checkpointed: int = -1  # the last checkpoint that succeeded
    failed_flush: bool = False
    lost: bool = False
    shard_end_checkpoints: int = 0

    def flushed_all(self) -> bool:
        return all(n in self.durable for n in self.delivered)

    def take_window(self) -> list[int]:
        window, self.unflushed = self.unflushed, []
        self.pending_slots, self.pending_dead, self.pending_bytes = set(), 0, 0
        return window


def entry(kind: str, arn_no: int, version: int, size: int, n: int) -> Candidate | DeadLetter | Ignored:
    position = Position(SHARD, f"{n:056d}")
    data = f"{n}:".encode().ljust(size, b".")  # distinct bytes: no record is a byte-identical duplicate
    if kind == "dead":
        return dead_letter(data, position, "pk", None, "not-json", "generated")
    if kind == "ignored":
        return Ignored("ECS Deployment State Change")
    arn = f"arn:aws:ecs:eu-west-1:1:task/c/{arn_no}"
    return Candidate("task", "taskArn", arn, version, data, position, arn, None)


class Driver:
    def __init__(
        self, machine: ShardMachine, account: Account, flush_ok: list[bool], checkpoint_results: list[CheckpointResult]
    ) -> None:
        self.machine, self.account = machine, account
        self.flush_ok, self.results = flush_ok, checkpoint_results
        self.flushes = self.checkpoints = 0

    def perform(self, action: Action | None, now: float) -> None:
        account = self.account
        while action is not None:
            if isinstance(action, Flush):
                window = account.take_window()
                assert window, "a flush of an empty window"
                assert action.batch.last == Position(SHARD, f"{window[-1]:056d}")
                assert action.batch.counts.records == len(window)
                ok = self.flush_ok[self.flushes % len(self.flush_ok)]
                self.flushes += 1
                if ok:
                    account.durable.update(window)
                else:
                    account.failed_flush = True
                action = self.machine.flushed(ok, now, now + 0.5)
                assert isinstance(action, Stop) == (not ok)
            elif isinstance(action, Checkpoint):
                assert not account.failed_flush, "a checkpoint after a failed flush"
                assert not account.lost, "a checkpoint after the lease was lost"
                if action.position is None:
                    assert account.flushed_all(), "SHARD_END before every record was durable"
                    account.shard_end_checkpoints += 1
                    n = max(account.delivered, default=-1)
                else:
                    n = int(action.position.sequence_number)
                    assert all(m in account.durable for m in account.delivered if m <= n), "past a record not durable"
                assert n >= account.checkpointed, "a checkpoint went back"
                result = self.results[self.checkpoints % len(self.results)]
                self.checkpoints += 1
                if result is CheckpointResult.OK:
                    account.checkpointed = n
                self.machine.checkpointed(action.position, result)
                action = None
            else:
                assert isinstance(action, Stop)
                action = None


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(call, max_size=14),
    end=ending,
    max_entries=st.integers(1, 8),
    max_bytes=st.integers(2_000, 30_000),
    interval_s=st.sampled_from([0.0, 1.0, 5.0]),
    start=st.sampled_from(["LATEST", "TRIM_HORIZON", "49590338271490256608559692538361571095921575989136588898"]),
    flush_ok=outcomes,
    checkpoint_results=results,
)
def test_no_checkpoint_passes_what_a_flush_made_durable_and_the_window_stays_within_its_limits(
    steps: list[tuple[str, list[tuple[str, int, int, int]], float, int | None]],
    end: tuple[str],
    max_entries: int,
    max_bytes: int,
    interval_s: float,
    start: str,
    flush_ok: list[bool],
    checkpoint_results: list[CheckpointResult],
) -> None:
    machine = ShardMachine(max_entries, max_bytes, interval_s, prefetch_behind_ms=60_000)
    account = Account()
    driver = Driver(machine, account, flush_ok, checkpoint_results)
    now, n = 0.0, 0
    machine.initialized(now, start)
    for _, records, dt, behind in steps:
        now += dt
        machine.call_started(now, behind)
        account.call_text = 0
        for kind, arn_no, version, size in records:
            n += 1
            routed = entry(kind, arn_no, version, size, n)
            account.delivered.append(n)
            account.unflushed.append(n)
            account.call_text += size + RECORD_FRAMING_BYTES
            if isinstance(routed, Candidate):
                account.pending_slots.add((routed.kind, routed.arn))
                account.pending_bytes += len(routed.data) + CANDIDATE_OVERHEAD
            elif isinstance(routed, DeadLetter):
                account.pending_dead += 1
                account.pending_bytes += routed.size
            position = Position(SHARD, f"{n:056d}")
            driver.perform(machine.delivered(routed, position, now, WALL0_MS + now * 1000, None, size), now)
            # the full rule: below both limits after every delivery
            assert len(account.pending_slots) + account.pending_dead < max_entries
            assert account.pending_bytes < max_bytes
        driver.perform(machine.call_ended(now), now)
        machine.returned(now)
        # the room rule: room for another call like this one, or nothing pending
        assert account.pending_bytes == 0 or account.pending_bytes + CALL_MEMORY_FACTOR * account.call_text <= max_bytes
    now += 1.0
    if end == ("lease_lost",):
        assert machine.lease_lost() == len(account.pending_slots)
        account.lost = True
        driver.perform(machine.shard_ended(now), now)  # whatever comes after: no checkpoint
    elif end == ("shutdown",):
        driver.perform(machine.shutdown_requested(now), now)
    else:
        driver.perform(machine.shard_ended(now), now)
        if not account.failed_flush:
            assert account.shard_end_checkpoints == 1  # every flush ok: the shard's end is checkpointed
    assert not machine.reducer.has_pending or account.failed_flush  # the end leaves nothing pending


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(call, min_size=1, max_size=10), checkpoint_results=results)
def test_a_shutdown_after_good_flushes_checkpoints_the_last_record_delivered(
    steps: list[tuple[str, list[tuple[str, int, int, int]], float, int | None]],
    checkpoint_results: list[CheckpointResult],
) -> None:
    machine = ShardMachine(3, 20_000, 5.0)
    account = Account()
    driver = Driver(machine, account, [True], checkpoint_results)
    now, n = 0.0, 0
    machine.initialized(now, "LATEST")
    for _, records, dt, behind in steps:
        now += dt
        machine.call_started(now, behind)
        for kind, arn_no, version, size in records:
            n += 1
            account.delivered.append(n)
            account.unflushed.append(n)
            routed = entry(kind, arn_no, version, size, n)
            driver.perform(machine.delivered(routed, Position(SHARD, f"{n:056d}"), now, 0.0, None, size), now)
        driver.perform(machine.call_ended(now), now)
        machine.returned(now)
    driver.results = [CheckpointResult.OK]
    driver.checkpoints = 0
    stopped = not machine.checkpointing
    driver.perform(machine.shutdown_requested(now + 1.0), now + 1.0)
    if not stopped:
        assert account.checkpointed == max(account.delivered, default=-1)
