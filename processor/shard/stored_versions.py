"""Skipping writes known to be stale: a bounded per-shard memory of stored versions, and a bulk prefetch of them.

A conditional ``PutItem`` that fails costs a write unit per KB like one that succeeds. A replay (a new KCL
application from TRIM_HORIZON into the same tables) or a catch-up after a long stop sends mostly such writes.
Before each put the writer asks :meth:`StoredVersions.is_stale`; an item known to be stale is skipped (counted
as ``stale``, as the failed condition would have been).

Rules:
- Stored versions only grow (the conditional write never lowers one), so a remembered version is a lower bound
  of what is stored now: an item whose version is <= the remembered one would fail its condition, and skipping
  it changes nothing stored. An item not remembered is always sent. A miss costs one write, never correctness;
  the conditional write stays on every item sent.
- What is remembered: the version written (a 200 from the conditional put), the stored version a failed
  condition returned (``ReturnValuesOnConditionCheckFailure=ALL_OLD``), and versions read by :func:`prefetch`.
  The higher value wins. Nothing is remembered for an absent item.
- Thread-safe (one lock): the writer's threads may report what they wrote while another flush step reads.
- Bounded: at most ``capacity`` (table, ARN) entries, least recently used evicted first (about 350 bytes each:
  100,000 entries ~35 MB).
- The exception: an item deleted behind the processor's back (TTL expiry, an operator) is still remembered, so an
  older event of it is skipped instead of recreating it; for TTL that is the point (no ghost task), after a
  manual delete restart the processor to forget.
- :func:`prefetch` reads stored versions with ``BatchGetItem`` (at most 100 keys per request, projected on the
  key and ``version``), resending ``UnprocessedKeys`` with the one backoff policy (``processor/retry.py``); it is
  an optimisation, so a request that keeps failing is given up after ``PREFETCH_ATTEMPTS`` and its keys are simply
  not known. What failed is judged by the one classifier (``shard/failures.py``): any exception (credentials,
  network, a reply of another shape) and any transient reply is retried; a missing table or permission
  (``CONFIG_CODES``) is not (the writes will say so). Nothing it raises escapes, and only keys it asked for are
  taken from a reply.
  Reads cost a read unit per 4 KB of each *whole* item (the projection does not lower it), about 1/5 to 1/15 of
  the failed write it saves, and a wasted read when the write would have succeeded: the shard's state machine
  (``shard/machine.py``, ``CatchUp``) asks for a prefetch only while the shard is catching up.
- A prefetch of 10,000 keys, retried, can outlast the liveness window (``shard/heartbeat.py``): it calls ``beat``
  before every request, retries included, as the writes do.
"""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol, Sequence

from processor.retry import DYNAMODB
from processor.shard.dynamodb_http import DynamoDBTransport
from processor.shard.failures import CONFIG_CODES, TRANSIENT, classify

BATCH_GET_KEYS = 100  # DynamoDB's limit per BatchGetItem
PREFETCH_ATTEMPTS = 5


class Keyed(Protocol):
    """What the prefetch needs of a resource: an ``Item`` or a ``Candidate`` (the writer has candidates)."""

    @property
    def kind(self) -> str: ...
    @property
    def key_name(self) -> str: ...
    @property
    def arn(self) -> str: ...


class StoredVersions:
    """The per-shard memory of stored versions, keyed by (table, ARN); see the module docstring."""

    def __init__(self, capacity: int = 100_000) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._known: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._known)

    def known(self, table: str, arn: str) -> int | None:
        """The highest version known to be stored, or None."""
        return self._known.get((table, arn))

    def remember(self, table: str, arn: str, version: int) -> None:
        """``version`` is stored (written, returned by a failed condition, or read); the higher value wins."""
        key = (table, arn)
        with self._lock:
            held = self._known.get(key)
            if held is not None:
                self._known.move_to_end(key)
                if held >= version:
                    return
            self._known[key] = version
            if len(self._known) > self.capacity:
                self._known.popitem(last=False)

    def remember_stored_item(self, table: str, arn: str, item: dict[str, Any] | None) -> None:
        """The stored item a failed condition returned (ALL_OLD, DynamoDB JSON): remember its ``version``."""
        version = _version_of(item)
        if version is not None:
            self.remember(table, arn, version)

    def is_stale(self, table: str, arn: str, version: int) -> bool:
        """True when an equal or newer version is known to be stored: the conditional write would fail."""
        with self._lock:
            held = self._known.get((table, arn))
            if held is None:
                return False
            self._known.move_to_end((table, arn))
        return held >= version

    def unknown(self, items: Iterable[Keyed], tables: dict[str, str]) -> list[Keyed]:
        """The items whose stored version is not remembered (what a prefetch should read)."""
        with self._lock:
            return [item for item in items if (tables[item.kind], item.arn) not in self._known]


def _version_of(item: dict[str, Any] | None) -> int | None:
    try:
        return int(item["version"]["N"]) if item else None
    except (KeyError, TypeError, ValueError):
        return None


@dataclass
class Prefetched:
    """What :func:`prefetch` found: stored versions by (table, ARN) (absent items are left out), the requests it
    sent (retries included), and the keys it gave up on."""

    versions: dict[tuple[str, str], int] = field(default_factory=dict)
    requests: int = 0
    given_up: int = 0
    errors: list[str] = field(default_factory=list)


def prefetch(
    client: DynamoDBTransport,
    items: Sequence[Keyed],
    tables: dict[str, str],
    *,
    pool: Executor | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    max_attempts: int = PREFETCH_ATTEMPTS,
    beat: Callable[[], None] = lambda: None,
) -> Prefetched:
    """Read the stored ``version`` of each item's (table, ARN) in ``BatchGetItem`` requests of 100 keys, on
    ``pool`` when given; ``UnprocessedKeys`` are resent with backoff, up to ``max_attempts`` per chunk; ``beat``
    (the shard's liveness) before every request."""
    keys: dict[tuple[str, str], str] = {}
    for item in items:
        keys.setdefault((tables[item.kind], item.arn), item.key_name)
    wanted = list(keys.items())
    chunks = [wanted[i : i + BATCH_GET_KEYS] for i in range(0, len(wanted), BATCH_GET_KEYS)]
    rng = rng or random.Random()

    def one(chunk: list[tuple[tuple[str, str], str]]) -> Prefetched:
        return _prefetch_chunk(client, chunk, sleep, rng, max_attempts, beat)

    results = list(pool.map(one, chunks)) if pool is not None else [one(c) for c in chunks]
    out = Prefetched()
    for got in results:
        out.versions.update(got.versions)
        out.requests += got.requests
        out.given_up += got.given_up
        out.errors += got.errors[:3]
    return out


def _request(chunk: Iterable[tuple[tuple[str, str], str]]) -> dict[str, Any]:
    by_table: dict[str, dict[str, Any]] = {}
    for (table, arn), key in chunk:
        entry = by_table.setdefault(
            table,
            {"Keys": [], "ProjectionExpression": "#k, #v", "ExpressionAttributeNames": {"#k": key, "#v": "version"}},
        )
        entry["Keys"].append({key: {"S": arn}})
    return {"RequestItems": by_table}


def _read_reply(
    body: dict[str, Any], key_attr: dict[str, str], asked: set[tuple[str, str]]
) -> tuple[dict[tuple[str, str], int], dict[str, Any]]:
    """(stored versions found among the keys ``asked``, UnprocessedKeys) of a BatchGetItem reply; raises on a
    reply of another shape."""
    found: dict[tuple[str, str], int] = {}
    for table, items in (body.get("Responses") or {}).items():
        for item in items:
            version = _version_of(item)
            arn = item.get(key_attr.get(table, ""), {}).get("S")
            if version is not None and (table, arn) in asked:
                found[(table, arn)] = version
    unprocessed = body.get("UnprocessedKeys") or {}
    if not isinstance(unprocessed, dict) or not all(
        isinstance(e, dict) and isinstance(e.get("Keys", []), list) for e in unprocessed.values()
    ):
        raise TypeError(f"UnprocessedKeys of another shape: {str(unprocessed)[:100]}")
    return found, unprocessed


def _prefetch_chunk(
    client: DynamoDBTransport,
    chunk: list[tuple[tuple[str, str], str]],
    sleep: Callable[[float], None],
    rng: random.Random,
    max_attempts: int,
    beat: Callable[[], None],
) -> Prefetched:
    out = Prefetched()
    key_attr = {table: key for (table, _arn), key in chunk}
    asked = {table_arn for table_arn, _key in chunk}
    request: dict[str, Any] = _request(chunk)
    for attempt in range(1, max_attempts + 1):
        beat()
        out.requests += 1
        try:
            reply = client.call("BatchGetItem", request)
            verdict = classify(reply) if not reply.ok else None
            if verdict is None:
                found, unprocessed = _read_reply(reply.body, key_attr, asked)
        except Exception as exc:  # whatever the type (credentials, network, a reply not understood): transient
            verdict = classify(exc)
        if verdict is None:
            out.versions.update(found)
            request = {"RequestItems": unprocessed}
            if not unprocessed:
                return out
        else:
            out.errors.append(verdict.text)
            if verdict.kind != TRANSIENT or verdict.code in CONFIG_CODES:
                break  # missing table, no permission: the writes will say so; nothing known here
        if attempt < max_attempts:
            sleep(DYNAMODB.delay(attempt, rng))
    out.given_up = sum(len(entry.get("Keys", ())) for entry in request["RequestItems"].values())
    return out
