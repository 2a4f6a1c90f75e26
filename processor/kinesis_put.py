"""PutRecords with retries of only the entries Kinesis reports failed: the one way ecs-state writes to a stream
(the synthetic producer, ``ecs-state produce``, and the redrive commands, ``ecs-state redrive``).

Rules:
- a request holds what the caller packed (``kinesis_limits.size_batches``: at most 500 records, 5 MiB); each
  retry resends only the entries that failed, in their order, after the one backoff policy
  (``processor.retry.KINESIS``: exponential, full jitter), up to ``max_attempts`` calls;
- throttling, 5xx and a lost connection are retried (a reply lost after the stream accepted the batch puts it
  twice: the processor is idempotent per version); a refusal of the whole call for another reason raises
  ``PutRefused`` with Kinesis' code, which each caller turns into its own one-line error;
- what is still failing after ``max_attempts`` calls is returned to the caller, never dropped silently.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Protocol, Sequence, TypeVar

from processor.errors import EcsStateError
from processor.retry import KINESIS, Backoff

#: PutRecords errors of the whole call that are worth retrying (a status >= 500 is too)
RETRYABLE_CALL_ERRORS = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "ThrottlingException",
        "KMSThrottlingException",
        "InternalFailure",
        "InternalFailureException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


class Entry(Protocol):
    """What can be put: its bytes and its partition key."""

    @property
    def data(self) -> bytes: ...

    @property
    def partition_key(self) -> str: ...


E = TypeVar("E", bound=Entry)


class PutRefused(EcsStateError):
    """Kinesis refused a PutRecords call for a reason retrying cannot fix (``code``: its error code)."""

    def __init__(self, stream: str, code: str, message: str) -> None:
        super().__init__(f"PutRecords to {stream!r} refused: {code}: {message}")
        self.code = code
        self.missing = code == "ResourceNotFoundException"


@dataclass
class PutResult(Generic[E]):
    accepted: list[E]
    failing: list[E]  # still failing after the last attempt


@dataclass
class RecordPutter:
    """PutRecords of one packed batch at a time (module docstring); counts what it did across batches."""

    client: Any
    stream: str
    max_attempts: int = 10
    backoff: Backoff = KINESIS
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    calls: int = 0
    retried_records: int = 0
    throttled: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def put(self, batch: Sequence[E]) -> PutResult[E]:
        from botocore.exceptions import ClientError, HTTPClientError
        from botocore.exceptions import ConnectionError as BotocoreConnectionError

        accepted: list[E] = []
        pending = list(batch)
        for attempt in range(self.max_attempts):
            if attempt:
                self.sleep(self.backoff.delay(attempt, self.rng))
            self.calls += 1
            try:
                reply = self.client.put_records(
                    StreamName=self.stream, Records=[{"Data": e.data, "PartitionKey": e.partition_key} for e in pending]
                )
            except (BotocoreConnectionError, HTTPClientError) as exc:  # reset, refused, timed out: transient
                self.errors[type(exc).__name__] += 1
                continue
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if code in RETRYABLE_CALL_ERRORS or status >= 500:
                    self.errors[code or str(status)] += 1
                    self.throttled += 1
                    continue
                raise PutRefused(self.stream, code, exc.response.get("Error", {}).get("Message", "")) from exc
            failed = []
            for entry, result in zip(pending, reply["Records"]):
                if result.get("ErrorCode"):
                    self.errors[result["ErrorCode"]] += 1
                    failed.append(entry)
                else:
                    accepted.append(entry)
            if not failed:
                return PutResult(accepted, [])
            self.retried_records += len(failed)
            pending = failed
        return PutResult(accepted, pending)
