"""Freshness of a flush: how long its records took from arriving in Kinesis to being durable in DynamoDB. Pure.

Every record a flush covers becomes durable at the same instant (the flush's writes all succeeded), so a record's
freshness is ``durable_ms - approximateArrivalTimestamp``. :func:`freshness` gives the p50 and p99 of those ages
(nearest rank on the sorted ages, milliseconds, rounded to 0.1) for the ``freshness_p50_ms`` /
``freshness_p99_ms`` fields of the flush line (:mod:`processor.shard.flush_report`). Records without an arrival
timestamp are left out; an age below 0 (clock skew between Kinesis and this host) counts as 0; no arrival at all
gives (None, None).
"""

from __future__ import annotations

import math
from typing import Iterable


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of ``sorted_values`` (not empty): the smallest value with at least ``fraction``
    of the values at or below it."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def freshness(arrivals_ms: Iterable[int | None], durable_ms: float) -> tuple[float | None, float | None]:
    """(p50, p99) of ``durable_ms - arrival`` over the records' arrival timestamps (ms since the epoch)."""
    ages = sorted(max(0.0, durable_ms - a) for a in arrivals_ms if a is not None)
    if not ages:
        return None, None
    return round(percentile(ages, 0.50), 1), round(percentile(ages, 0.99), 1)
