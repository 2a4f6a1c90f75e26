"""The one classifier of what goes wrong on the way to DynamoDB: every reply or exception -> one of three classes,
each with one behaviour (docs/design.md, "Failure classes"). Pure: it looks at what it is given only. The writer, the
stored-versions prefetch and the start-up check of the tables all use it; nothing else decides.

The default is the safe one: **unknown is never the record's fault**. Only what is proven about one record is
record-level.

- ``STALE``: the condition failed (an equal or newer version is stored): counted, not an error.
- ``RECORD`` (the record becomes a dead letter holding its original bytes, and the shard moves on), only for:
  DynamoDB's explicit refusal of the item (``ValidationException``, ``SerializationException`` and their kin,
  an item over 400 KB, which DynamoDB reports as a ``ValidationException``); or a failure while building that
  record's item, which the caller declares with :func:`building` (the core's decode / check / build, and the
  serialisation of the item we built: a value JSON cannot carry is the item's fault).
- ``TRANSIENT`` (retried with backoff while the lease is held, logged once a minute, never checkpointed past):
  everything else. Throttling, 5xx, an error code this classifier does not know, a reply that is not DynamoDB's,
  the loss of a table, a permission or the credentials after a successful start; and **every exception** raised
  on the way to DynamoDB, whatever its type: resolving or refreshing credentials (botocore's errors, a
  ``JSONDecodeError`` from a credential helper's garbage), signing, connecting, proxies, TLS, reading or parsing
  the reply, and any exception type nobody anticipated.
Configuration problems are found at start (``shard/table_check.py``), before any record is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from processor.shard.dynamodb_http import Response

STALE, RECORD, TRANSIENT = "stale", "record", "transient"

#: DynamoDB refused this item (a request we built from one record): the record's fault
RECORD_CODES = frozenset(
    {
        "ValidationException",
        "ValidationError",
        "SerializationException",
        "ItemCollectionSizeLimitExceededException",
        "InvalidParameterValue",
        "InvalidParameterCombination",
        "MissingParameter",
    }
)
#: transient like any other unknown code, and counted as throttling in the flush line
THROTTLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "Throttling",
        "ThrottledException",
        "SlowDown",
    }
)
#: a table, permission or credential problem: transient after a successful start (an operator's fix, or AWS's,
#: brings it back); the start-up check turns these codes into a configuration error
CONFIG_CODES = frozenset(
    {"ResourceNotFoundException", "AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException"}
)


@dataclass(frozen=True)
class Verdict:
    kind: str  # STALE, RECORD or TRANSIENT
    code: str  # DynamoDB's error code, or the exception's type name
    text: str  # one line: code and message
    throttled: bool = False


Failure = Union[Response, BaseException]


def by_code(code: str, status: int, message: str) -> Verdict:
    """The class of a DynamoDB error reply, from its short error code and HTTP status."""
    text = f"{code or status}: {message}"
    if code == "ConditionalCheckFailedException":
        return Verdict(STALE, code, text)
    if code in RECORD_CODES:
        return Verdict(RECORD, code, text)
    return Verdict(TRANSIENT, code or str(status), text, throttled=code in THROTTLE_CODES)


def classify(failure: Failure) -> Verdict:
    """The class of one failed request (module docstring): an error ``Response`` by its code; any exception raised
    on the way to DynamoDB is transient, whatever its type."""
    if isinstance(failure, Response):
        code = "" if failure.code == f"HTTP{failure.status}" else failure.code
        return by_code(code, failure.status, failure.message)
    name = type(failure).__name__
    return Verdict(TRANSIENT, name, f"{name}: {failure}")


def building(exc: BaseException) -> Verdict:
    """The class of a failure while building one record's item (the core's checks, serialising the item): the
    record's fault. Only the caller knows an exception came from building the item, so it says so here."""
    name = type(exc).__name__
    return Verdict(RECORD, name, f"{name}: {exc}")
