"""The one classifier of what goes wrong with a DynamoDB request: every reply or exception -> one of three
classes, each with one behaviour (README, "Failures"). Pure: it looks at what it is given only.

It takes what the thin DynamoDB client (``shard/dynamodb_http.py``, used by the writer and the start-up table
check) produces: an error ``Response`` (DynamoDB's short error code and HTTP status), a ``TransportError`` when
there was no usable reply, or any other exception raised while preparing the request.

- ``STALE``: the condition failed (an equal or newer version is stored): counted, not an error.
- ``RECORD``: about this one item: DynamoDB refused the item as invalid (``ValidationException`` and its kin), or
  anything raised while preparing or sending the request that is not a network or credential problem (a
  ``TypeError`` or ``UnicodeEncodeError`` from the serializer): the record becomes a dead letter holding its
  original bytes, and the shard moves on.
- ``TRANSIENT``: throttling, 5xx, timeouts, connection errors, and the loss of a table, a permission or the
  credentials after a successful start (``ResourceNotFoundException``, ``AccessDeniedException``, expired
  tokens, KMS errors), and any 4xx reply this classifier does not know (a reply we do not understand is never
  taken as the record's fault), and the thin client's ``TransportError`` (no usable reply: refused or reset
  connections, timeouts, garbled replies, credentials that cannot be refreshed): retried with capped backoff and
  jitter while the lease is held.
Configuration problems are found at start (``shard/table_check.py``), before any record is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from processor.shard.dynamodb_http import Response, TransportError

STALE, RECORD, TRANSIENT = "stale", "record", "transient"

RECORD_CODES = frozenset({"ValidationException", "ValidationError", "SerializationException",
                          "ItemCollectionSizeLimitExceededException", "InvalidParameterValue",
                          "InvalidParameterCombination", "MissingParameter"})
THROTTLE_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException",
                            "RequestLimitExceeded", "Throttling", "SlowDown", "ThrottledException"})
#: a table, permission or credential lost after a successful start: an operator's fix, or AWS's, brings it back
LOST_CODES = frozenset({"ResourceNotFoundException", "AccessDeniedException", "UnrecognizedClientException",
                        "ExpiredTokenException", "ExpiredToken", "InvalidSignatureException", "RequestExpired",
                        "MissingAuthenticationToken", "IncompleteSignature", "InvalidClientTokenId",
                        "NotAuthorized", "KMSAccessDeniedException", "KMSDisabledException",
                        "KMSInvalidStateException", "KMSNotFoundException", "KMSThrottlingException"})
NETWORK_ERRORS = (TransportError, ConnectionError, TimeoutError, OSError)


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
    """The class of one failed request (module docstring): an error ``Response``, or an exception raised while
    preparing or sending the request."""
    if isinstance(failure, Response):
        code = "" if failure.code == f"HTTP{failure.status}" else failure.code
        return by_code(code, failure.status, failure.message)
    name = type(failure).__name__
    text = f"{name}: {failure}"
    if isinstance(failure, NETWORK_ERRORS):
        return Verdict(TRANSIENT, name, text)
    if isinstance(failure, Exception):  # TypeError, UnicodeEncodeError, ValueError from the serializer, ...
        return Verdict(RECORD, name, text)
    return Verdict(TRANSIENT, name, text)  # pragma: no cover - BaseException that is not an Exception
