"""What the generator is asked for and what it yields: :class:`Options` (validated on construction),
:class:`Record` (one Kinesis record and what it means), and the wire encoding of events (:func:`encode`,
:func:`decode`).

Rules: pure, no randomness. ``encode`` is the one way events become bytes (compact JSON as EventBridge delivers,
or msgpack); the stream's hashes depend on its exact output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import msgpack

from processor.loadgen.catalog import FORMATS


@dataclass(frozen=True)
class Options:
    """What to generate. Rates are fractions of all records sent (0..1)."""

    clusters: int = 2
    instances: int = 4  # live container instances at a time, spread over the clusters (0 = Fargate only)
    tasks: int = 20  # concurrent tasks
    duplicate_rate: float = 0.0
    reorder_window: int = 0  # 0/1 = no reordering; W = each record moves fewer than W places
    poison_rate: float = 0.0
    ignored_rate: float = 0.0
    format: str = "json"
    seed: int = 0
    account: str = "123456789012"  # the first account; ``accounts`` > 1 adds the next numbers
    region: str = "us-east-1"  # the region when ``regions`` is empty
    accounts: int = 1  # the fleet spans this many accounts, each with ``clusters`` clusters per region
    regions: tuple[str, ...] = ()  # the regions of every account (empty: ``region`` alone)
    start_ms: int = 1_740_787_200_000  # 2025-03-01T00:00:00Z, the simulated clock's origin
    step_ms: int = 40  # mean simulated time between events (the demo spreads hours)

    def __post_init__(self) -> None:
        if self.clusters < 1:
            raise ValueError(f"--clusters must be >= 1, got {self.clusters}")
        if self.instances < 0 or self.tasks < 0:
            raise ValueError(f"--instances and --tasks must be >= 0, got {self.instances} and {self.tasks}")
        if self.tasks == 0 and self.instances == 0:
            raise ValueError("--tasks and --instances are both 0: there is nothing to simulate")
        for name in ("duplicate_rate", "poison_rate", "ignored_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"--{name.replace('_', '-')} must be between 0 and 1, got {value}")
        if self.poison_rate + self.ignored_rate > 1.0:
            raise ValueError("--poison-rate + --ignored-rate must not exceed 1")
        if self.step_ms < 1:
            raise ValueError(f"--step-ms must be >= 1, got {self.step_ms}")
        if self.reorder_window < 0:
            raise ValueError(f"--reorder-window must be >= 0, got {self.reorder_window}")
        if self.accounts < 1:
            raise ValueError(f"--accounts must be >= 1, got {self.accounts}")
        if not self.account.isdigit() or len(self.account) != 12 or int(self.account) + self.accounts > 10**12:
            raise ValueError(f"the first account must be 12 digits with room for {self.accounts}, got {self.account}")
        for region in self.regions or (self.region,):
            if not region or not all(part.isalnum() for part in region.split("-")):
                raise ValueError(f"--regions takes region names like us-east-1,eu-west-1, got {region!r}")
        if self.format not in FORMATS:
            raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {self.format!r}")

    def homes(self) -> list[tuple[str, str]]:
        """Every (account, region) the fleet spans, accounts first: ``account``, ``account`` + 1, ... in each of
        ``regions``."""
        first = int(self.account)
        return [
            (f"{first + a:012d}", region) for a in range(self.accounts) for region in self.regions or (self.region,)
        ]


@dataclass(frozen=True, slots=True)
class Record:
    """One Kinesis record and what it means.

    ``kind`` is ``task``, ``instance``, ``ignored`` or ``poison``; ``detail`` is the poison kind or the ignored
    detail-type; ``arn``/``version``/``status`` are set for task and instance events (status = ``lastStatus``
    for tasks, ``status`` for container instances); ``duplicate`` marks a second delivery of the same bytes.
    """

    partition_key: str
    data: bytes
    kind: str
    detail: str = ""
    arn: str = ""
    version: int = 0
    status: str = ""
    duplicate: bool = False


def encode(event: Any, fmt: str) -> bytes:
    """An event dict -> record bytes: compact JSON (as EventBridge delivers) or ``msgpack.packb``."""
    if fmt == "msgpack":
        return msgpack.packb(event, use_bin_type=True)
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode(data: bytes, fmt: str) -> Any:
    """The inverse of :func:`encode` for valid records (the tests use it)."""
    if fmt == "msgpack":
        return msgpack.unpackb(data, raw=False)
    return json.loads(data.decode("utf-8"))
