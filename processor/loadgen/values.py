"""Value makers shared by the resource models, the simulation and the poison maker: ECS timestamps from the
simulated clock (epoch milliseconds) and identifiers drawn from the seeded ``random.Random``.

Rules: pure; every random value comes from the ``rng`` passed in, and each maker draws a fixed number of values
from it (the stream's determinism depends on it).
"""

from __future__ import annotations

import functools
import random
import time
import uuid


@functools.lru_cache(maxsize=4096)
def _iso_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def iso_ms(ms: int) -> str:
    """Epoch milliseconds -> ``2025-03-01T00:00:00.123Z`` (ECS detail timestamps)."""
    return f"{_iso_second(ms // 1000)}.{ms % 1000:03d}Z"


def iso_s(ms: int) -> str:
    """Epoch milliseconds -> ``2025-03-01T00:00:00Z`` (the envelope's ``time``)."""
    return _iso_second(ms // 1000) + "Z"


def random_uuid(rng: random.Random) -> str:
    """A version-4 UUID string from 128 random bits (event ids, container ARNs, ENI attachment ids)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def random_hex(rng: random.Random, n: int) -> str:
    """``n`` lower-case hex digits (task and instance ids, EC2/AMI/VPC ids, digests)."""
    return f"{rng.getrandbits(4 * n):0{n}x}"


def random_ip(rng: random.Random) -> str:
    """A private ``10.x.y.z`` IPv4 address."""
    return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
