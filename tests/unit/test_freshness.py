"""Freshness of a flush (processor/shard/freshness.py): p50/p99 of arrival-to-durable over the flush's records,
and its two fields on the flush line (processor/shard/flush_report.py)."""

from __future__ import annotations

from processor.shard.freshness import freshness, percentile


def test_p50_and_p99_are_nearest_ranks_of_the_ages_at_the_durable_instant() -> None:
    arrivals = [1_000_000 + i for i in range(100)]  # arrived 1 ms apart; the oldest is 100 ms old at 1_000_100
    assert freshness(arrivals, 1_000_100) == (50.0, 99.0)  # ages 1..100
    assert freshness(list(reversed(arrivals)), 1_000_100) == (50.0, 99.0)  # order does not matter


def test_one_record_gives_its_own_age_for_both() -> None:
    assert freshness([5_000], 5_250.4) == (250.4, 250.4)


def test_records_without_a_timestamp_are_left_out_and_skew_counts_as_zero() -> None:
    assert freshness([None, 2_000, 3_000], 2_500) == (0.0, 500.0)
    assert freshness([None], 1.0) == (None, None)
    assert freshness([], 1.0) == (None, None)


def test_percentile_picks_the_smallest_value_with_the_fraction_at_or_below_it() -> None:
    values = [float(v) for v in range(1, 11)]
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile(values, 0.0)) == (5.0, 10.0, 1.0)
