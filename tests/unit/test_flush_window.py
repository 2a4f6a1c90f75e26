"""The flush window (``shard/flush_window.py``): one object opens and closes a window, and closing it leaves
nothing of the old window behind, whichever way it closes."""

from __future__ import annotations

from processor.core.position import Position
from processor.core.reducer import Reducer
from processor.core.route import Candidate
from processor.shard.flush_schedule import FlushSchedule
from processor.shard.flush_window import FlushWindow


def candidate(arn: str, version: int, seq: int) -> Candidate:
    return Candidate("task", "taskArn", arn, version, b"{}", Position("s", str(seq)), arn, None)


def window_with_two_records(catching_up_on_first: bool) -> FlushWindow:
    window = FlushWindow(Reducer(), FlushSchedule(5.0))
    for seq, arrival in ((1, 9_000), (2, None)):
        window.delivered(10.0, 10_000.0, arrival, catching_up=catching_up_on_first and seq == 1)
        window.reducer.offer(candidate(f"a{seq}", 1, seq), Position("s", str(seq)))
    return window


def test_a_window_opens_at_its_first_record_and_remembers_its_age_and_every_arrival() -> None:
    window = window_with_two_records(catching_up_on_first=False)
    assert window.schedule.opened == 10.0 and window.schedule.age_s == 1.0
    assert window.arrivals == [9_000, None] and window.reducer.pending_arns == 2


def test_taking_a_window_hands_over_its_batch_and_arrivals_and_leaves_nothing_pending() -> None:
    window = window_with_two_records(catching_up_on_first=True)
    taken = window.take(catching_up=False)
    assert [r[0].arn for r in taken.batch.resources] == ["a1", "a2"] and taken.arrivals == [9_000, None]
    assert taken.prefetch  # a record of the window was delivered while catching up
    assert window.arrivals == [] and not window.caught_up and not window.reducer.has_pending
    assert not window.take(catching_up=False).prefetch  # the flag went with the window it belonged to


def test_a_window_taken_while_catching_up_prefetches_even_if_its_records_came_before() -> None:
    assert window_with_two_records(catching_up_on_first=False).take(catching_up=True).prefetch


def test_dropping_a_window_forgets_its_records_arrivals_flag_and_opening() -> None:
    window = window_with_two_records(catching_up_on_first=True)
    assert window.drop() == 2
    assert window.schedule.opened is None and window.arrivals == [] and not window.caught_up
    assert not window.reducer.has_pending and not window.schedule.due(1e9)
