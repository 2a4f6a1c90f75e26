"""The shard state machine (``shard/machine.py``), by example, on a clock the test moves: when it flushes (full,
interval, room, shutdown, shard end), where it checkpoints (after a flush reported ok, the retry of a failed
checkpoint, SHARD_END), what a failed flush, a stopped checkpoint and a lost lease do, and when a flush prefetches.
The flushes and checkpoints are "performed" by the test: it records them and reports the outcome it was told to."""

from __future__ import annotations

from processor.core.dead_letters import DeadLetter, dead_letter
from processor.core.events import Ignored
from processor.core.position import Position
from processor.core.route import CANDIDATE_OVERHEAD, Candidate
from processor.shard.machine import (
    CALL_MEMORY_FACTOR,
    RECORD_FRAMING_BYTES,
    Action,
    CatchUp,
    Checkpoint,
    CheckpointResult,
    Flush,
    Reason,
    ShardMachine,
    Stop,
)

SHARD = "shardId-000000000000"
WALL0_MS = 1_800_000_000_000
INTERVAL_S = 10.0


def seq(n: int) -> str:
    return f"{n:056d}"


def candidate(n: int, arn: str | None = None, size: int = CANDIDATE_OVERHEAD + 10) -> Candidate:
    arn = arn or f"arn:aws:ecs:eu-west-1:1:task/c/{n}"
    data = str(n).encode().ljust(size - CANDIDATE_OVERHEAD, b".")
    return Candidate("task", "taskArn", arn, 1, data, Position(SHARD, seq(n)), arn, None)


class Shard:
    """A machine driven the way the KCL adapter drives it. Flushes take ``flush_s`` and end ``flush_ok``;
    checkpoints end ``checkpoint_result``; every action performed is recorded."""

    def __init__(
        self,
        interval_s: float = INTERVAL_S,
        max_entries: int = 10_000,
        max_bytes: int = 96 * 1024 * 1024,
        start: str = "LATEST",
    ) -> None:
        self.machine = ShardMachine(max_entries, max_bytes, interval_s, prefetch_behind_ms=60_000)
        self.machine.initialized(0.0, start)
        self.flush_s = 0.0
        self.flush_ok = True
        self.checkpoint_result = CheckpointResult.OK
        self.flushes: list[Flush] = []
        self.checkpoints: list[str | None] = []  # every checkpoint asked for, its sequence number (None: SHARD_END)
        self.stopped = False
        self.sequence = 0

    def call(
        self,
        at: float,
        arrived_s_before: float | None = None,
        *,
        records: int | None = None,
        millis_behind: int | None = 0,
        text_bytes: int = 100,
        entries: list[Candidate | DeadLetter | Ignored] | None = None,
    ) -> None:
        """A processRecords call at ``at``: ``records`` records (one when ``arrived_s_before`` is given, else
        none), each ``arrived_s_before`` seconds old, or the given routed ``entries``."""
        machine = self.machine
        machine.call_started(at, millis_behind)
        count = records if records is not None else (0 if arrived_s_before is None else 1)
        routed: list[Candidate | DeadLetter | Ignored] = (
            entries if entries is not None else [candidate(self.sequence + k + 1) for k in range(count)]
        )
        for entry in routed:
            self.sequence += 1
            position = Position(SHARD, seq(self.sequence))
            arrival = None if arrived_s_before is None else int(WALL0_MS + (at - arrived_s_before) * 1000)
            delivered = machine.delivered(entry, position, at, WALL0_MS + at * 1000, arrival, text_bytes)
            self.perform(delivered, at)
        self.perform(machine.call_ended(at), at)
        machine.returned(at)

    def perform(self, action: Action | None, at: float) -> None:
        while action is not None:
            if isinstance(action, Flush):
                self.flushes.append(action)
                action = self.machine.flushed(self.flush_ok, at, at + self.flush_s)
            elif isinstance(action, Checkpoint):
                position = action.position
                self.checkpoints.append(position.sequence_number if position else None)
                self.machine.checkpointed(position, self.checkpoint_result)
                action = None
            else:
                assert isinstance(action, Stop)
                self.stopped = True
                action = None

    @property
    def reasons(self) -> list[str]:
        return [flush.reason.value for flush in self.flushes]


# --- the interval (the timing rules, in milliseconds instead of on moto) ---------------------------------------


def test_a_new_processor_flushes_its_first_window_after_half_the_interval() -> None:
    shard = Shard()
    shard.call(0.0, arrived_s_before=0.0)
    shard.call(4.9)
    assert shard.checkpoints == []
    shard.call(5.0)
    assert shard.reasons == ["interval"] and shard.checkpoints == [seq(1)]


def test_a_record_that_arrived_long_before_its_delivery_is_flushed_sooner_than_a_fresh_one() -> None:
    shard = Shard()
    shard.call(0.0, arrived_s_before=0.0)
    shard.call(5.0)  # the first window (half the interval): now there is a flush history, of instant flushes
    assert shard.checkpoints == [seq(1)]
    shard.call(10.0, arrived_s_before=30.0)  # a record 30 s old when delivered: the lead is capped at 5 s
    shard.call(14.9)
    assert shard.checkpoints == [seq(1)]
    shard.call(15.0)
    assert shard.checkpoints == [seq(1), seq(2)]
    shard.call(20.0, arrived_s_before=0.0)  # a fresh one waits for (nearly) the whole interval
    shard.call(25.0)
    assert shard.checkpoints == [seq(1), seq(2)]
    shard.call(30.0)
    assert shard.checkpoints == [seq(1), seq(2), seq(3)]


def test_an_idle_shard_flushes_and_checkpoints_nothing() -> None:
    shard = Shard()
    for k in range(10):
        shard.call(k * 5.0)
    assert shard.flushes == [] and shard.checkpoints == []


def test_a_zero_interval_flushes_at_the_end_of_every_call_that_delivered_something() -> None:
    shard = Shard(interval_s=0.0)
    shard.call(0.0, arrived_s_before=0.0, records=3)
    shard.call(0.1)
    shard.call(0.2, arrived_s_before=0.0)
    assert shard.reasons == ["interval", "interval"] and shard.checkpoints == [seq(3), seq(4)]


def test_the_flush_covers_every_record_of_the_window_and_hands_over_their_arrival_times() -> None:
    shard = Shard()
    shard.call(0.0, arrived_s_before=1.0, records=2)
    shard.call(5.0)
    (flush,) = shard.flushes
    assert flush.batch.first == Position(SHARD, seq(1)) and flush.batch.last == Position(SHARD, seq(2))
    assert flush.arrivals == [WALL0_MS - 1000, WALL0_MS - 1000]


# --- full and room ----------------------------------------------------------------------------------------------


def test_a_full_window_is_flushed_at_once_mid_call_and_dead_letters_count_towards_the_limit() -> None:
    shard = Shard(max_entries=3)
    bad = dead_letter(b"\xff", Position(SHARD, seq(2)), "pk", None, "not-json", "not JSON")
    shard.call(0.0, entries=[candidate(1), bad, Ignored("x"), candidate(4), candidate(5)])
    assert shard.reasons == ["full"] and shard.checkpoints == [seq(4)]  # a1, the dead letter, a4: three entries
    assert len(shard.flushes[0].batch.dead_letters) == 1
    assert shard.machine.reducer.pending_arns == 1  # the call's last record waits for the next flush


def test_a_window_with_no_room_for_another_call_like_this_one_is_flushed_at_the_end_of_the_call() -> None:
    size = CANDIDATE_OVERHEAD + 1000
    # Two records of 1,600 bytes pending; another call like this one needs 2 x 2 x (1000 + 200 framing).
    needed = 2 * size + CALL_MEMORY_FACTOR * 2 * (1000 + RECORD_FRAMING_BYTES)
    roomy = Shard(max_bytes=needed)
    roomy.call(0.0, entries=[candidate(1, size=size), candidate(2, size=size)], text_bytes=1000)
    assert roomy.flushes == []
    tight = Shard(max_bytes=needed - 1)
    tight.call(0.0, entries=[candidate(1, size=size), candidate(2, size=size)], text_bytes=1000)
    assert tight.reasons == ["room"] and tight.checkpoints == [seq(2)]


def test_a_window_over_its_byte_limit_is_flushed_as_full() -> None:
    shard = Shard(max_bytes=3000)
    shard.call(0.0, entries=[candidate(1, size=1000), candidate(2, size=1000), candidate(3, size=1000)], text_bytes=0)
    assert shard.reasons == ["full"] and shard.checkpoints == [seq(3)]


# --- checkpoints ------------------------------------------------------------------------------------------------


def test_a_failed_checkpoint_is_tried_again_once_the_interval_has_passed_since_the_flush() -> None:
    shard = Shard()
    shard.checkpoint_result = CheckpointResult.FAILED
    shard.call(0.0, arrived_s_before=0.0)
    shard.call(5.0)
    assert shard.checkpoints == [seq(1)] and shard.machine.durable == Position(SHARD, seq(1))
    shard.checkpoint_result = CheckpointResult.OK
    shard.call(14.9)  # no new record, and not yet an interval since the flush
    assert shard.checkpoints == [seq(1)] and shard.flushes[-1].reason is Reason.INTERVAL
    shard.call(15.0)  # an empty call: the checkpoint is tried again, with nothing to flush
    assert shard.checkpoints == [seq(1), seq(1)] and len(shard.flushes) == 1
    assert shard.machine.durable is None
    shard.call(30.0)
    assert shard.checkpoints == [seq(1), seq(1)]  # checkpointed: nothing is owed any more


def test_a_checkpoint_refused_for_a_lost_lease_stops_checkpointing_but_not_flushing() -> None:
    shard = Shard(max_entries=1)
    shard.checkpoint_result = CheckpointResult.STOPPED
    shard.call(0.0, arrived_s_before=0.0)
    shard.call(1.0, arrived_s_before=0.0)
    shard.call(100.0)
    assert shard.reasons == ["full", "full"] and shard.checkpoints == [seq(1)]


def test_a_failed_flush_stops_the_shard_without_checkpointing() -> None:
    shard = Shard(max_entries=1)
    shard.call(0.0, arrived_s_before=0.0)
    shard.flush_ok = False
    shard.call(1.0, arrived_s_before=0.0)
    assert shard.stopped and shard.checkpoints == [seq(1)]
    shard.flush_ok = True  # whatever follows (the adapter has exited), nothing is checkpointed past the failure
    shard.call(2.0, arrived_s_before=0.0)
    shard.perform(shard.machine.shard_ended(3.0), 3.0)
    assert shard.checkpoints == [seq(1)]


# --- the end of a lease -----------------------------------------------------------------------------------------


def test_shutdown_flushes_what_is_pending_and_checkpoints_the_last_record() -> None:
    shard = Shard()
    shard.call(0.0, arrived_s_before=0.0, records=2)
    shard.perform(shard.machine.shutdown_requested(1.0), 1.0)
    assert shard.reasons == ["shutdown"] and shard.checkpoints == [seq(2)]


def test_shutdown_with_nothing_pending_checkpoints_what_is_durable_and_not_yet_checkpointed() -> None:
    shard = Shard()
    shard.checkpoint_result = CheckpointResult.FAILED
    shard.call(0.0, arrived_s_before=0.0)
    shard.call(5.0)
    shard.checkpoint_result = CheckpointResult.OK
    shard.perform(shard.machine.shutdown_requested(6.0), 6.0)
    assert shard.checkpoints == [seq(1), seq(1)]


def test_a_shard_end_flushes_then_checkpoints_at_shard_end_even_once_checkpointing_stopped() -> None:
    shard = Shard()
    shard.checkpoint_result = CheckpointResult.STOPPED
    shard.call(0.0, arrived_s_before=0.0)
    shard.call(5.0)
    shard.call(6.0, arrived_s_before=0.0)
    shard.perform(shard.machine.shard_ended(7.0), 7.0)
    assert shard.reasons == ["interval", "shard_end"] and shard.checkpoints == [seq(1), None]


def test_a_lost_lease_drops_the_window_and_never_checkpoints_again() -> None:
    shard = Shard()
    shard.call(0.0, arrived_s_before=0.0, records=3)
    assert shard.machine.lease_lost() == 3
    assert not shard.machine.reducer.has_pending and not shard.machine.schedule.due(1e9)
    shard.perform(shard.machine.shard_ended(1.0), 1.0)
    assert shard.flushes == [] and shard.checkpoints == []


# --- catching up: the prefetch --------------------------------------------------------------------------------


def test_a_flush_prefetches_when_a_record_of_its_window_was_delivered_while_catching_up() -> None:
    shard = Shard(max_entries=2)
    shard.call(0.0, arrived_s_before=0.0, millis_behind=3_600_000)
    shard.call(1.0, arrived_s_before=0.0, millis_behind=0)  # at the tip now; the window is full
    assert [f.prefetch for f in shard.flushes] == [True]
    shard.call(2.0, arrived_s_before=0.0, records=2, millis_behind=0)
    assert [f.prefetch for f in shard.flushes] == [True, False]  # the flag went with the window it belonged to


def test_a_flush_taken_while_catching_up_prefetches_even_if_its_records_came_before() -> None:
    shard = Shard()
    shard.call(0.0, arrived_s_before=0.0)
    shard.call(5.0, millis_behind=120_000)  # the empty poll says the shard fell behind
    assert [f.prefetch for f in shard.flushes] == [True]


def test_a_shard_started_from_trim_horizon_prefetches_until_a_delivery_is_near_the_tip() -> None:
    shard = Shard(max_entries=1, start="TRIM_HORIZON")
    shard.call(0.0, arrived_s_before=0.0, millis_behind=1000)
    assert [f.prefetch for f in shard.flushes] == [False]  # the first call said: near the tip
    from_start = Shard(max_entries=1, start="TRIM_HORIZON")
    from_start.call(0.0, arrived_s_before=0.0, millis_behind=None)
    assert [f.prefetch for f in from_start.flushes] == [True]


def test_catching_up_from_the_start_lasts_until_a_delivery_is_near_the_tip() -> None:
    catch_up = CatchUp(behind_ms=60_000)
    catch_up.on_initialize("TRIM_HORIZON")
    assert catch_up.active
    catch_up.on_records(None)  # no figure: no change
    catch_up.on_records(3_600_000)
    assert catch_up.active
    catch_up.on_records(1_000)
    assert not catch_up.active
    catch_up.on_records(120_000)  # fell behind again (a long flush, a throttled table)
    assert catch_up.active


def test_a_shard_started_at_a_checkpoint_catches_up_only_while_it_is_far_behind() -> None:
    catch_up = CatchUp(behind_ms=60_000)
    catch_up.on_initialize("49590338271490256608559692538361571095921575989136588898")
    assert not catch_up.active
    catch_up.on_records(59_999)
    assert not catch_up.active
    catch_up.on_records(60_000)
    assert catch_up.active
