"""The cluster catalogue's pure part: what a cluster ARN says (partition, region, account, name), and the one
conditional PutItem that records a cluster and the newest event time seen from it. No I/O; the shard's memory of
what it wrote is ``shard/catalog.py``, the readers are ``ops/catalog.py``.

Rules:
- A cluster ARN is ``arn:PARTITION:ecs:REGION:ACCOUNT:cluster/NAME``; anything else is not a cluster (``None``),
  and is never written to the catalogue.
- An event time is EventBridge's ``time`` (ISO 8601, ``2026-11-27T09:07:00Z``), kept as text (``newestEvent``)
  and as epoch milliseconds (``newest_event_ms``); a time that cannot be parsed is not recorded.
- The put's condition (absent, or the stored ``newest_event_ms`` lower) means the newest event time of a cluster
  never goes down, whichever shard or replay writes last; a failed condition is the normal answer of a late
  writer, not an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

CATALOG_CONDITION = "attribute_not_exists(#k) OR NOT attribute_type(#t, :n) OR #t < :t"


@dataclass(frozen=True)
class ClusterRef:
    """A cluster as its ARN names it."""

    arn: str
    partition: str
    region: str
    account: str
    name: str

    @property
    def path(self) -> str:
        """``ACCOUNT/REGION/NAME``: how ``--cluster`` names a cluster without its ARN."""
        return f"{self.account}/{self.region}/{self.name}"


def parse_cluster_arn(arn: str) -> ClusterRef | None:
    """``arn:aws:ecs:eu-west-1:111122223333:cluster/web`` -> its parts; ``None`` when it is not a cluster ARN."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "ecs" or not parts[5].startswith("cluster/"):
        return None
    partition, region, account, name = parts[1], parts[3], parts[4], parts[5][len("cluster/") :]
    if not (partition and region and account and name) or "/" in name:
        return None
    return ClusterRef(arn, partition, region, account, name)


def cluster_arn_of(partition: str, region: str, account: str, name: str) -> str:
    return f"arn:{partition}:ecs:{region}:{account}:cluster/{name}"


def event_ms(text: str) -> int | None:
    """An event time (ISO 8601, UTC when no offset) -> epoch milliseconds; ``None`` when it is not a time."""
    value = text.strip()
    try:
        parsed = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(parsed.timestamp() * 1000)


def catalog_put(table: str, cluster: ClusterRef, newest_text: str, newest_ms: int) -> dict[str, Any]:
    """The conditional PutItem recording ``cluster`` with its newest event time (never lowering a stored one)."""
    return {
        "TableName": table,
        "Item": {
            "clusterArn": {"S": cluster.arn},
            "account": {"S": cluster.account},
            "region": {"S": cluster.region},
            "clusterName": {"S": cluster.name},
            "newestEvent": {"S": newest_text},
            "newest_event_ms": {"N": str(newest_ms)},
        },
        "ConditionExpression": CATALOG_CONDITION,
        "ExpressionAttributeNames": {"#k": "clusterArn", "#t": "newest_event_ms"},
        "ExpressionAttributeValues": {":t": {"N": str(newest_ms)}, ":n": {"S": "N"}},
    }
