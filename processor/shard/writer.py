"""The writer: makes one ``Batch`` durable in DynamoDB. The only module that writes on the hot path.

State items go out as conditional ``PutItem`` calls (``attribute_not_exists(<key>) OR version < :v``), concurrently
on a bounded pool (BatchWriteItem takes no condition; one failed condition cancels a whole TransactWriteItems).
A failed condition means an equal or newer version is already stored: counted as ``stale``, not an error.
Dead letters are plain puts keyed by (shardId, sequenceNumber), so a replay rewrites the same item.

Throttling, 5xx and connection errors are retried with exponential backoff and full jitter, up to
``write_max_attempts`` attempts and ``write_retry_budget_millis`` of retrying per request. The budget is per
request, not per flush: under sustained partial throttling a large flush keeps making progress, while a request
that cannot get through at all still fails in bounded time. A state item DynamoDB refuses as
invalid (``ValidationException``, e.g. over its size limit) becomes a dead letter rather than stopping the
shard; any other refusal (missing table, no permission) fails the flush. Anything still failing ends in ``Outcome.failed``: the caller must then not checkpoint.
"""

from __future__ import annotations

import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from processor.config import Settings
from processor.core.dead_letters import DeadLetter, dead_letter
from processor.core.events import INSTANCE, TASK
from processor.core.items import Item
from processor.core.reducer import Batch
from processor.errors import WriteFailed

RETRYABLE_CODES = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "InternalServerError", "InternalFailure", "ServiceUnavailable", "ServiceUnavailableException",
    "LimitExceededException", "TransactionConflictException", "Throttling", "SlowDown",
})
THROTTLE_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException",
                            "RequestLimitExceeded", "Throttling", "SlowDown"})
RETRYABLE_ERRORS = (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError, ConnectTimeoutError)
CONDITION = "attribute_not_exists(#k) OR #v < :v"
BACKOFF_BASE_S = 0.025
BACKOFF_CAP_S = 2.0



@dataclass
class Outcome:
    written: int = 0
    stale: int = 0
    dead_letters: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    failed: list[str] = field(default_factory=list)
    millis: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass
class _Flush:
    """Per-flush shared state: thread-safe counters."""

    outcome: Outcome
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self.outcome, name, getattr(self.outcome, name) + value)


def _is_retryable(exc: Exception) -> tuple[bool, bool]:
    """(retryable, throttled) for an exception from botocore."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in RETRYABLE_CODES or status >= 500, code in THROTTLE_CODES
    return isinstance(exc, RETRYABLE_ERRORS), False


def _describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', '?')}: {err.get('Message', '')}"
    return f"{type(exc).__name__}: {exc}"


class Writer:
    def __init__(self, settings: Settings, client: Any, *, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.client = client
        self.tables = {TASK: settings.task_table, INSTANCE: settings.instance_table}
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._pool = ThreadPoolExecutor(max_workers=settings.write_concurrency, thread_name_prefix="put")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def write(self, batch: Batch) -> Outcome:
        """Make every item and dead letter of ``batch`` durable, or report what failed."""
        start = self._clock()
        flush = _Flush(Outcome())
        futures = [self._pool.submit(self._put_state, item, flush) for item in batch.items]
        futures += [self._pool.submit(self._put_dead_letter, dead, flush) for dead in batch.dead_letters]
        for future in futures:
            try:
                future.result()
            except WriteFailed as exc:
                flush.outcome.failed.append(str(exc))
            except Exception as exc:  # a bug or an unexpected library error: never checkpoint past it
                flush.outcome.failed.append(f"unexpected {type(exc).__name__}: {exc}")
        flush.outcome.millis = (self._clock() - start) * 1000
        return flush.outcome

    def _put_state(self, item: Item, flush: _Flush) -> None:
        request = {
            "TableName": self.tables[item.kind],
            "Item": item.attributes,
            "ConditionExpression": CONDITION,
            "ExpressionAttributeNames": {"#k": item.key, "#v": "version"},
            "ExpressionAttributeValues": {":v": {"N": str(item.version)}},
        }
        try:
            self._call(request, flush, what=f"{item.key} {item.arn} version {item.version}")
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                flush.add(stale=1)
                return
            if code != "ValidationException":  # missing table, no permission, bad credentials: fix and restart
                raise WriteFailed(f"{item.key} {item.arn} version {item.version} in {self.tables[item.kind]}: "
                                  f"{_describe(exc)}; check the table exists (ecs-state setup) and the worker's "
                                  f"credentials and permissions") from exc
            # DynamoDB refused the item itself (not retryable): keep the event as a dead letter.
            self._put_dead_letter(self._refused(item, exc), flush)
            return
        flush.add(written=1)

    def _refused(self, item: Item, exc: ClientError) -> DeadLetter:
        raw = json.dumps({"table": self.tables[item.kind], "item": item.attributes}, default=repr).encode()
        return dead_letter(raw, item.position, item.arn, None, "refused",
                           f"DynamoDB refused the item: {_describe(exc)}")

    def _put_dead_letter(self, dead: DeadLetter, flush: _Flush) -> None:
        for attributes in dead.items:
            try:
                self._call({"TableName": self.settings.dead_letter_table, "Item": attributes}, flush,
                           what=f"dead letter {dead.position.shard_id} {dead.position.dead_letter_key()}")
            except ClientError as exc:
                raise WriteFailed(f"dead letter {dead.position.shard_id} {dead.position.dead_letter_key()}: "
                                  f"{_describe(exc)}; check that table {self.settings.dead_letter_table} exists "
                                  f"(ecs-state setup) and the worker may write to it") from exc
        flush.add(dead_letters=1)

    def _call(self, request: dict[str, Any], flush: _Flush, what: str) -> None:
        """PutItem with retries. Raises ClientError for a non-retryable reply, WriteFailed when out of budget."""
        attempt = 0
        deadline = self._clock() + self.settings.write_retry_budget_millis / 1000
        while True:
            attempt += 1
            flush.add(requests=1)
            try:
                self.client.put_item(**request)
                return
            except (ClientError, BotoCoreError) as exc:
                retryable, throttled = _is_retryable(exc)
                if not retryable:
                    if isinstance(exc, ClientError):
                        raise
                    raise WriteFailed(f"{what}: {_describe(exc)}") from exc
                flush.add(retries=1, throttled=int(throttled))
                delay = self._rng.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** attempt))
                if attempt >= self.settings.write_max_attempts or self._clock() + delay > deadline:
                    raise WriteFailed(f"{what}: still failing after {attempt} attempts "
                                      f"({_describe(exc)}); DynamoDB unavailable or throttling beyond the retry "
                                      f"budget ({self.settings.write_retry_budget_millis} ms)") from exc
                self._sleep(delay)
