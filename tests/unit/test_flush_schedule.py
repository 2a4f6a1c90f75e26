"""The flush schedule (``shard/machine.FlushSchedule``): when the interval flush is due, on explicit clock values."""

from __future__ import annotations

import pytest

from processor.shard.machine import FlushSchedule


def test_no_window_is_open_before_a_record_is_delivered() -> None:
    schedule = FlushSchedule(5.0)
    schedule.call_started(0.0)
    schedule.call_ended(100.0)
    assert not schedule.due(100.0)


def _after_instant_flushes(interval_s: float) -> FlushSchedule:
    """A schedule whose history is flushes that took no time, with no gap between calls."""
    schedule = FlushSchedule(interval_s)
    schedule.delivered(-1.0)
    schedule.flushed(-1.0, -1.0)
    return schedule


def test_with_instant_flushes_the_flush_is_due_one_interval_after_the_first_delivery() -> None:
    schedule = _after_instant_flushes(5.0)
    schedule.delivered(10.0)
    schedule.delivered(12.0)  # a later record does not move the window's opening
    assert not schedule.due(14.99)
    assert schedule.due(15.0)


def test_before_any_flush_the_first_window_is_half_the_interval() -> None:
    schedule = FlushSchedule(5.0)
    schedule.delivered(10.0)
    assert schedule.lead_s == 2.5
    assert not schedule.due(12.49)
    assert schedule.due(12.5)


def test_the_flush_starts_early_by_the_recent_flush_duration_and_call_gap() -> None:
    schedule = FlushSchedule(5.0)
    schedule.call_ended(0.0)
    schedule.call_started(0.25)  # KCL called again 250 ms later
    schedule.delivered(1.0)
    schedule.flushed(1.0, 2.0)  # a flush of one second
    assert schedule.lead_s == pytest.approx(1.25)
    schedule.delivered(10.0)
    assert not schedule.due(13.7)
    assert schedule.due(13.75)


def test_a_record_that_waited_before_delivery_brings_its_window_forward_by_that_age() -> None:
    schedule = _after_instant_flushes(5.0)
    schedule.delivered(10.0, age_s=1.5)  # it arrived in Kinesis 1.5 s before KCL handed it over
    schedule.delivered(10.5, age_s=0.0)  # a later record of the same window does not change the lead
    assert schedule.lead_s == 1.5
    assert not schedule.due(13.49)
    assert schedule.due(13.5)


def test_an_age_below_zero_from_clock_skew_counts_as_zero() -> None:
    schedule = _after_instant_flushes(5.0)
    schedule.delivered(0.0, age_s=-3.0)
    assert schedule.lead_s == 0.0


def test_a_backlog_of_old_records_still_gets_windows_of_half_the_interval() -> None:
    schedule = _after_instant_flushes(5.0)
    schedule.delivered(0.0, age_s=3600.0)  # a replay: the record is an hour old
    assert not schedule.due(2.49)
    assert schedule.due(2.5)


def test_the_lead_is_at_most_half_the_interval_so_slow_flushes_keep_their_windows() -> None:
    schedule = FlushSchedule(5.0)
    schedule.delivered(0.0)
    schedule.flushed(0.0, 60.0)  # a minute-long flush (a slow table, or a retried outage)
    schedule.delivered(60.0)
    assert schedule.lead_s == 2.5
    assert not schedule.due(62.4)
    assert schedule.due(62.5)


def test_one_slow_flush_moves_the_smoothed_duration_only_part_of_the_way() -> None:
    schedule = FlushSchedule(10.0)
    for start in (0.0, 10.0, 20.0):
        schedule.delivered(start)
        schedule.flushed(start, start + 1.0)
    schedule.delivered(30.0)
    schedule.flushed(30.0, 31.0 + 4.0)  # 5 s instead of 1 s
    assert schedule.flush_s == pytest.approx(1.0 + 0.3 * 4.0)


def test_a_flush_closes_the_window_and_the_next_record_opens_a_new_one() -> None:
    schedule = FlushSchedule(5.0)
    schedule.delivered(0.0)
    schedule.flushed(5.0, 5.0)
    assert not schedule.due(100.0)
    schedule.delivered(100.0)
    assert schedule.opened == 100.0


def test_a_dropped_window_is_no_longer_due() -> None:
    schedule = FlushSchedule(5.0)
    schedule.delivered(0.0)
    schedule.dropped()
    assert not schedule.due(50.0)


def test_a_zero_interval_is_due_as_soon_as_anything_was_delivered() -> None:
    schedule = FlushSchedule(0.0)
    assert not schedule.due(0.0)
    assert schedule.lead_s == 0.0
    schedule.delivered(0.0)
    assert schedule.due(0.0)
