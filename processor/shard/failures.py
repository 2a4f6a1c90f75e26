"""The one classifier of what goes wrong on the way to DynamoDB: every reply or exception -> one of three classes,
each with one behaviour (docs/design.md, "Failure classes"). Pure: it looks at what it is given only. The writer, the
stored-versions prefetch and the start-up check of the tables all use it; nothing else decides.

The default is the safe one: **unknown is never the record's fault**. Only what is proven about one record is
record-level, and the list of what proves it is closed.

- ``STALE``: the condition failed (an equal or newer version is stored): counted, not an error.
- ``RECORD`` (the record becomes a dead letter holding its original bytes, and the shard moves on), only for
  DynamoDB's refusal of that one item, recognised by its message (``ITEM_REFUSALS``: the item too large, a number
  out of range or precision, an empty key value or set, a key value too long, nesting too deep). Our own verdicts
  on a record (the core's ``Bad`` and ``Unstorable``) never reach this module: the core turns them into dead letters.
- ``TRANSIENT`` (retried with backoff while the lease is held, logged once a minute, never checkpointed past):
  everything else. Throttling, 5xx, an error code this classifier does not know, a reply that is not DynamoDB's,
  the loss of a table, a permission or the credentials after a successful start; a ``ValidationException`` whose
  message is not on the closed list: those are about the table, not the record (``TABLE_REFUSALS`` names the fix
  for the ones we know: a team's index keyed on an attribute we write with another type, another key schema), and
  the once-a-minute log line carries ``Verdict.fix``; and **every exception** raised on the way to DynamoDB,
  whatever its type: resolving or refreshing credentials (botocore's errors, a ``JSONDecodeError`` from a
  credential helper's garbage), signing, connecting, proxies, TLS, reading or parsing the reply, and any exception
  type nobody anticipated.
Configuration problems are found at start (``shard/table_check.py``), before any record is read. An exception while
building or serialising an item is none of these: it is a bug, the caller lets it stop the flush (no checkpoint).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Union

from processor.shard.dynamodb_http import Response


class FailureClass(str, Enum):
    """The class of one failed request (module docstring)."""

    STALE = "stale"
    RECORD = "record"
    TRANSIENT = "transient"

    def __str__(self) -> str:
        return self.value


STALE, RECORD, TRANSIENT = FailureClass.STALE, FailureClass.RECORD, FailureClass.TRANSIENT

#: the error code DynamoDB refuses an item with; the item's fault only when the message is in ``ITEM_REFUSALS``
RECORD_CODES = frozenset({"ValidationException"})
#: DynamoDB's messages refusing one item for what it holds (each in docs/field-notes.md with its source); matched
#: as substrings, since DynamoDB prefixes some ("1 validation error detected: ...") and appends names to others
ITEM_REFUSALS = (
    "Item size has exceeded the maximum allowed size",
    "Number overflow. Attempting to store a number with magnitude larger than supported range",
    "Number underflow. Attempting to store a number with magnitude smaller than supported range",
    "Attempting to store more than 38 significant digits in a Number",
    "The parameter cannot be converted to a numeric value",
    "An AttributeValue may not contain an empty string",
    "The AttributeValue for a key attribute cannot contain an empty string value",
    "may not be empty",  # an empty set ("An string set may not be empty"; moto doubles the space)
    "Size of hashkey has exceeded the maximum size limit of",
    "Aggregated size of all range keys has exceeded the size limit of",
    "Nested levels have exceeded supported limits",
)
_KEY_SCHEMA_FIX = (
    "the table's key schema is not the one ecs-state writes (taskArn / containerInstanceArn, a string hash key "
    "and nothing else): point the processor at tables made by `ecs-state setup`"
)
#: DynamoDB's ValidationException messages about the table, never one record -> the fix the log line names
TABLE_REFUSALS = (
    (
        "Type mismatch for Index Key",
        "an index of the table is keyed on an attribute the processor writes with another type (the message names "
        "the index and the attribute): delete or change that index, or its attribute's type; `ecs-state run` "
        "checks the indexes at start",
    ),
    ("Type mismatch for key", _KEY_SCHEMA_FIX),
    ("Missing the key", _KEY_SCHEMA_FIX),
    ("The provided key element does not match the schema", _KEY_SCHEMA_FIX),
)
_UNKNOWN_VALIDATION_FIX = (
    "DynamoDB refused the request as invalid for a reason not known to be about one record: check the table's key "
    "schema and indexes against docs/design.md; nothing is dead-lettered or checkpointed meanwhile"
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
    kind: FailureClass
    code: str  # DynamoDB's error code, or the exception's type name
    text: str  # one line: code and message
    throttled: bool = False
    fix: str = ""  # for a transient failure known to need an operator: what to do (logged with it)


Failure = Union[Response, BaseException]


def by_code(code: str, status: int, message: str) -> Verdict:
    """The class of a DynamoDB error reply, from its short error code and HTTP status."""
    text = f"{code or status}: {message}"
    if code == "ConditionalCheckFailedException":
        return Verdict(STALE, code, text)
    if code in RECORD_CODES:
        if any(refusal in message for refusal in ITEM_REFUSALS):
            return Verdict(RECORD, code, text)
        fix = next((fix for pattern, fix in TABLE_REFUSALS if pattern in message), _UNKNOWN_VALIDATION_FIX)
        return Verdict(TRANSIENT, code, text, fix=fix)
    return Verdict(TRANSIENT, code or str(status), text, throttled=code in THROTTLE_CODES)


def classify(failure: Failure) -> Verdict:
    """The class of one failed request (module docstring): an error ``Response`` by its code; any exception raised
    on the way to DynamoDB is transient, whatever its type."""
    if isinstance(failure, Response):
        code = "" if failure.code == f"HTTP{failure.status}" else failure.code
        return by_code(code, failure.status, failure.message)
    name = type(failure).__name__
    return Verdict(TRANSIENT, name, f"{name}: {failure}")
