"""The one read-side BatchGetItem loop (boto3's low-level client): consistent reads in groups of 100 keys, the
keys DynamoDB leaves unprocessed (throttling, the 16 MB reply limit) retried with the one backoff policy
(``processor/retry.py``) until a deadline, then a ``ReadError`` saying so. Used by the read commands, reconcile and
redrive."""

from __future__ import annotations

import time
from typing import Any, Sequence

from processor.errors import ReadError
from processor.retry import DYNAMODB

BATCH_GET_LIMIT = 100  # DynamoDB's limit of keys per BatchGetItem
LowItem = dict[str, Any]


def batch_get(
    ddb: Any,
    table: str,
    key_name: str,
    arns: Sequence[str],
    deadline_s: float = 60.0,
    projection: str | None = None,
    names: dict[str, str] | None = None,
) -> list[LowItem]:
    """The items of ``arns`` (string hash key ``key_name``): :func:`batch_get_keys` with a ProjectionExpression /
    ExpressionAttributeNames when given."""
    extra: dict[str, Any] = {}
    if projection:
        extra["ProjectionExpression"] = projection
    if names:
        extra["ExpressionAttributeNames"] = names
    return batch_get_keys(ddb, table, [{key_name: {"S": a}} for a in arns], deadline_s, **extra)


def batch_get_keys(
    ddb: Any, table: str, keys: Sequence[LowItem], deadline_s: float = 60.0, **request: Any
) -> list[LowItem]:
    """Consistent BatchGetItem of ``keys`` in groups of 100, retrying UnprocessedKeys (throttling, the 16 MB reply
    limit) with the one backoff policy until ``deadline_s``: the one read-side BatchGetItem loop (the read commands
    and redrive)."""
    found: list[LowItem] = []
    end = time.monotonic() + deadline_s
    for start in range(0, len(keys), BATCH_GET_LIMIT):
        pending: dict[str, Any] = {
            "Keys": list(keys[start : start + BATCH_GET_LIMIT]),
            "ConsistentRead": True,
            **request,
        }
        attempt = 0
        while pending.get("Keys"):
            reply = ddb.batch_get_item(RequestItems={table: pending})
            found.extend(reply["Responses"].get(table, []))
            pending = reply.get("UnprocessedKeys", {}).get(table) or {}
            if pending.get("Keys"):
                if time.monotonic() > end:
                    raise ReadError(
                        f"{table}: {len(pending['Keys'])} keys still unprocessed after "
                        f"{deadline_s:.0f}s of BatchGetItem retries (throttled?); try again later"
                    )
                attempt += 1
                time.sleep(DYNAMODB.delay(attempt))  # backoff before retrying keys DynamoDB did not process
    return found
