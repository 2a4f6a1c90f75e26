"""The read side: ``ecs-state get | tasks | instances | dead-letters``. Reads the tables the workers write.

- ``get ARN`` picks the table from the ARN's shape (``:task/`` or ``:container-instance/``) and prints the item
  with compressed attributes decoded (``compressed_attributes`` names attributes stored as B = zlib(msgpack(v)));
  ``--raw`` prints the stored form instead.
- ``tasks --cluster C [--status S]`` queries the GSI ``clusterArn-lastStatus-index`` (keys only): with a status,
  on both keys; without, on ``clusterArn`` alone, which returns every status of that cluster in one query (neither
  a query per known status, which would miss statuses ECS adds later, nor a scan of every cluster's tasks). The
  full items then come from the table by BatchGetItem with consistent reads; because the index lags the table a
  little, items whose current ``lastStatus`` no longer matches ``--status`` are dropped.
- ``instances --cluster C`` scans the instance table with a filter on ``clusterArn``: the table has no index on
  it (one item per container instance, a small table), so this reads the whole table.
- ``dead-letters`` lists the dead-letter table (a scan; ``--shard`` queries one shard), with ``--with-data`` the
  raw record bytes reassembled from their parts and decompressed, ready to be replayed.

The pure formatting (``decode_item``, ``render_table``, ``task_row``...) is in ``ops/render.py``; this module
holds the thin DynamoDB reads (boto3 paginators, BatchGetItem with retries of unprocessed keys) and the commands.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Iterator, Sequence, TextIO

from processor.errors import ReadError
from processor.ops.render import (
    OUTPUTS,
    LowItem,
    arn_kind,
    cluster_arn,
    dead_letter_groups,
    dead_letter_view,
    decode_item,
    deserialize,
    is_expired,
    render,
    render_item_table,
    sequence_key,
    sort_tasks,
    to_json,
)

TASK_INDEX = "clusterArn-lastStatus-index"
BATCH_GET_LIMIT = 100




# -------------------------------------------------------------------------------------------------- I/O part
def _client(service: str) -> Any:
    from processor.aws import client
    return client(service)


def _pages(ddb: Any, operation: str, **request: Any) -> Iterator[dict[str, Any]]:
    """Every page of a Query or Scan (boto3's paginator follows LastEvaluatedKey)."""
    return iter(ddb.get_paginator(operation).paginate(**request))


def get_item(ddb: Any, table: str, key_name: str, arn: str) -> LowItem | None:
    return ddb.get_item(TableName=table, Key={key_name: {"S": arn}}, ConsistentRead=True).get("Item")


def batch_get(ddb: Any, table: str, key_name: str, arns: Sequence[str], deadline_s: float = 60.0,
              projection: str | None = None, names: dict[str, str] | None = None) -> list[LowItem]:
    """Consistent BatchGetItem in groups of 100, retrying UnprocessedKeys with backoff until ``deadline_s``;
    ``projection`` / ``names`` become ProjectionExpression / ExpressionAttributeNames."""
    found: list[LowItem] = []
    end = time.monotonic() + deadline_s
    for start in range(0, len(arns), BATCH_GET_LIMIT):
        request: dict[str, Any] = {"Keys": [{key_name: {"S": a}} for a in arns[start:start + BATCH_GET_LIMIT]],
                                   "ConsistentRead": True}
        if projection:
            request["ProjectionExpression"] = projection
        if names:
            request["ExpressionAttributeNames"] = names
        pause = 0.05
        while request["Keys"]:
            reply = ddb.batch_get_item(RequestItems={table: request})
            found.extend(reply["Responses"].get(table, []))
            request = reply.get("UnprocessedKeys", {}).get(table) or {"Keys": []}
            if request["Keys"]:
                if time.monotonic() > end:
                    raise ReadError(f"{table}: {len(request['Keys'])} keys still unprocessed after "
                                    f"{deadline_s:.0f}s of BatchGetItem retries (throttled?); try again later")
                time.sleep(pause)  # backoff between retries of throttled keys, not a wait for a condition
                pause = min(pause * 2, 2.0)
    return found


def task_arns_in_cluster(ddb: Any, table: str, cluster: str, status: str | None) -> list[str]:
    """Task ARNs from the keys-only GSI: on (clusterArn, lastStatus) or on clusterArn alone."""
    condition, names, values = "#c = :c", {"#c": "clusterArn"}, {":c": {"S": cluster}}
    if status:
        condition += " AND #s = :s"
        names["#s"] = "lastStatus"
        values[":s"] = {"S": status}
    arns: list[str] = []
    for page in _pages(ddb, "query", TableName=table, IndexName=TASK_INDEX, KeyConditionExpression=condition,
                       ExpressionAttributeNames=names, ExpressionAttributeValues=values):
        arns.extend(item["taskArn"]["S"] for item in page.get("Items", []))
    return sorted(set(arns))


def tasks_in_cluster(ddb: Any, table: str, cluster: str, status: str | None,
                     include_expired: bool = False) -> list[dict[str, Any]]:
    arns = task_arns_in_cluster(ddb, table, cluster, status)
    items = [decode_item(it) for it in batch_get(ddb, table, "taskArn", arns)]
    now = time.time()
    items = [it for it in items if it.get("clusterArn") == cluster and (not status or it.get("lastStatus") == status)
             and (include_expired or not is_expired(it, now))]
    return sort_tasks(items)


def scan_cluster(ddb: Any, table: str, cluster: str, projection: str | None = None,
                 names: dict[str, str] | None = None) -> list[LowItem]:
    """Every item of ``table`` whose ``clusterArn`` is ``cluster`` (a filtered scan: reads the whole table)."""
    request: dict[str, Any] = {"TableName": table, "FilterExpression": "#c = :c",
                               "ExpressionAttributeNames": {"#c": "clusterArn", **(names or {})},
                               "ExpressionAttributeValues": {":c": {"S": cluster}}, "ConsistentRead": True}
    if projection:
        request["ProjectionExpression"] = projection
    return [item for page in _pages(ddb, "scan", **request) for item in page.get("Items", [])]


def instances_in_cluster(ddb: Any, table: str, cluster: str) -> list[dict[str, Any]]:
    items = [decode_item(it) for it in scan_cluster(ddb, table, cluster)]
    return sorted(items, key=lambda it: str(it.get("containerInstanceArn", "")))


def dead_letters(ddb: Any, table: str, shard: str | None) -> list[list[dict[str, Any]]]:
    if shard:
        pages = _pages(ddb, "query", TableName=table, KeyConditionExpression="shardId = :s",
                       ExpressionAttributeValues={":s": {"S": shard}}, ConsistentRead=True)
    else:
        pages = _pages(ddb, "scan", TableName=table, ConsistentRead=True)
    items = [deserialize(it) for page in pages for it in page.get("Items", [])]
    return sorted(dead_letter_groups(items), key=lambda g: (g[0]["shardId"], sequence_key(g[0]["sequenceNumber"])))


def resolve_cluster(cluster: str) -> str:
    """A cluster name -> its ARN in this account and region (STS GetCallerIdentity needs no permission)."""
    if cluster.startswith("arn:"):
        return cluster
    import boto3
    session = boto3.session.Session()
    region = session.region_name
    if not region:
        raise ReadError("no AWS region configured: set AWS_REGION (or pass the cluster's full ARN)")
    account = _client("sts").get_caller_identity()["Account"]
    return cluster_arn(cluster, session.get_partition_for_region(region), region, account)


# ---------------------------------------------------------------------------------------------------- CLI
def _common(parser: argparse.ArgumentParser, output: str = "table") -> None:
    parser.add_argument("--properties", default=argparse.SUPPRESS, metavar="PATH",
                        help="KCL properties file with the ecsState.* table names (default: $ECS_STATE_PROPERTIES, "
                             "else the built-in table names)")
    parser.add_argument("--output", choices=OUTPUTS, default=output, help=f"json or table (default {output})")


def register(subparsers: Any) -> None:
    get = subparsers.add_parser("get", help="print one task or container instance from the state tables",
                                description="Print the stored item of a task or container-instance ARN.")
    get.add_argument("arn")
    get.add_argument("--raw", action="store_true", help="print compressed attributes as stored (base64)")
    _common(get, output="json")
    get.set_defaults(func=run, readside="get")

    tasks = subparsers.add_parser(
        "tasks", help="list a cluster's tasks from the task table",
        description=f"Query the {TASK_INDEX} index (with --status on both keys, else on clusterArn alone, "
                    f"which returns all statuses), then read the items from the table.")
    tasks.add_argument("--cluster", required=True, help="cluster name or ARN")
    tasks.add_argument("--status", help="lastStatus, e.g. RUNNING, PENDING, STOPPED")
    tasks.add_argument("--include-expired", action="store_true",
                       help="also list STOPPED tasks whose expires_at (TTL) has passed but DynamoDB has not yet "
                            "deleted")
    _common(tasks)
    tasks.set_defaults(func=run, readside="tasks")

    instances = subparsers.add_parser(
        "instances", help="list a cluster's container instances (scans the instance table)",
        description="Scan the container-instance table with a filter on clusterArn: it has no index on the "
                    "cluster, so this reads the whole (small) table.")
    instances.add_argument("--cluster", required=True, help="cluster name or ARN")
    _common(instances)
    instances.set_defaults(func=run, readside="instances")

    letters = subparsers.add_parser(
        "dead-letters", help="list records the processor could not store",
        description="List the dead-letter table (scan, or query one shard with --shard).")
    letters.add_argument("--shard", help="only this shard id")
    letters.add_argument("--with-data", action="store_true",
                         help="include the raw record (dataBase64, and dataText when it is UTF-8)")
    _common(letters)
    letters.set_defaults(func=run, readside="dead-letters")


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from processor.config import load_settings
    from processor.errors import ConfigError

    out = out or sys.stdout
    try:
        settings = load_settings(getattr(args, "properties", None))
        ddb = _client("dynamodb")
        if args.readside == "get":
            kind = arn_kind(args.arn)
            table, key = ((settings.task_table, "taskArn") if kind == "task"
                          else (settings.instance_table, "containerInstanceArn"))
            item = get_item(ddb, table, key, args.arn)
            if item is None:
                print(f"ecs-state get: {args.arn} is not in table {table}", file=sys.stderr)
                return 1
            decoded = decode_item(item, raw=args.raw)
            if is_expired(decoded, time.time()):
                print(f"ecs-state get: note: this item expired at {decoded['expires_at']} (TTL) and is only "
                      f"waiting for DynamoDB to delete it", file=sys.stderr)
            out.write(to_json(decoded) + "\n" if args.output == "json" else render_item_table(decoded))
        elif args.readside == "tasks":
            cluster = resolve_cluster(args.cluster)
            items = tasks_in_cluster(ddb, settings.task_table, cluster, args.status, args.include_expired)
            out.write(render("task", items, args.output))
        elif args.readside == "instances":
            cluster = resolve_cluster(args.cluster)
            out.write(render("instance", instances_in_cluster(ddb, settings.instance_table, cluster), args.output))
        else:
            groups = dead_letters(ddb, settings.dead_letter_table, args.shard)
            out.write(render("dead-letter", [dead_letter_view(g, args.with_data) for g in groups], args.output))
        return 0
    except (ReadError, ConfigError) as exc:
        print(f"ecs-state {args.readside}: {exc}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as exc:
        print(f"ecs-state {args.readside}: AWS call failed: {exc}", file=sys.stderr)
        return 2
