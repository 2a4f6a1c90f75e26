"""The one classifier of what goes wrong with a DynamoDB request: every reply or exception -> one of three
classes, each with one behaviour (README, "Failures"). Pure: it looks at the exception only.

- ``STALE``: the condition failed (an equal or newer version is stored): counted, not an error.
- ``RECORD``: about this one item: DynamoDB refused the item as invalid (``ValidationException`` and its kin), or
  anything raised while preparing or sending the request that is not a network or credential problem (a
  ``TypeError`` from the serializer, a parameter validation error): the record becomes a dead letter holding its
  original bytes, and the shard moves on.
- ``TRANSIENT``: throttling, 5xx, timeouts, connection errors, and the loss of a table, a permission or the
  credentials after a successful start (``ResourceNotFoundException``, ``AccessDeniedException``, expired
  tokens, KMS errors), and any 4xx reply this classifier does not know (a reply we do not understand is never
  taken as the record's fault): retried with capped backoff and jitter while the lease is held.
Configuration problems are found at start (``shard/table_check.py``), before any record is read.
"""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

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
NETWORK_ERRORS = (BotoConnectionError, HTTPClientError, NoCredentialsError, CredentialRetrievalError,
                  PartialCredentialsError, ConnectionError, TimeoutError, OSError)


@dataclass(frozen=True)
class Verdict:
    kind: str  # STALE, RECORD or TRANSIENT
    code: str  # DynamoDB's error code, or the exception's type name
    text: str  # one line: code and message
    throttled: bool = False


def classify(exc: BaseException) -> Verdict:
    """The class of one failed request (module docstring)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "") or "")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        text = f"{code or status}: {error.get('Message', '')}"
        if code == "ConditionalCheckFailedException":
            return Verdict(STALE, code, text)
        if code in RECORD_CODES:
            return Verdict(RECORD, code, text)
        return Verdict(TRANSIENT, code or str(status), text, throttled=code in THROTTLE_CODES)
    name = type(exc).__name__
    text = f"{name}: {exc}"
    if isinstance(exc, NETWORK_ERRORS):
        return Verdict(TRANSIENT, name, text)
    if isinstance(exc, (BotoCoreError, Exception)):  # ParamValidationError, TypeError, UnicodeEncodeError, ...
        return Verdict(RECORD, name, text)
    return Verdict(TRANSIENT, name, text)  # pragma: no cover - BaseException that is not an Exception
