"""The read side: ``ecs-state get | tasks | stopped | why | instances | dead-letters | clusters | sources``.
Reads the tables the workers write, whichever account and region a cluster is in: ``--cluster`` is resolved
against the cluster catalogue (``ops/catalog.py``: a name, ``ACCOUNT/REGION/NAME`` or a unique part of it, or an
ARN); every question then works on that cluster's ARN. Every listing prints a table for people, or with
``--output json`` a JSON array of the stored items (compressed attributes decoded) for scripts; ``get`` and
``why`` print one item.

Each question is a Query on an index (``core/schema.py``), never a Scan of a state table; the indexes project
keys (or the one attribute a listing filters on), and the full items then come from the table by consistent
BatchGetItem. Because an index lags the table a little, every item read is checked again against the question
(cluster, status, service, instance, time) and dropped when it no longer matches.

- ``get ARN`` picks the table from the ARN's shape and prints the item (``--raw``: compressed attributes as stored).
- ``tasks --cluster C [--status S]``: ``cluster-index``, one Query per part of the cluster (``CLUSTER_PARTS``), with
  a status as a filter on the projected ``lastStatus``; ``--service NAME``: ``service-index``
  (``<cluster>#service:NAME``);
  ``--instance I``: ``instance-index`` on the container-instance ARN (an EC2 instance id is first resolved through
  the instance table's ``ec2-instance-index``; a container-instance id is made an ARN with the cluster's).
  ``--at TIME`` keeps the tasks running at TIME, or in ``--status`` at TIME (``questions.status_at``; the index is
  then not filtered on the newest status).
- ``stopped --cluster C [--service NAME] [--since TIME|DURATION] [--until TIME]``: ``stopped-index``, one Query
  per UTC day of the window (newest first), ``stoppedAt`` in the window; ``--service`` filters on the projected
  ``group``. A DURATION as ``--since`` counts back from ``--until`` (default now); default window: 24 hours; a
  window of more than ``--max-days`` days is refused (``questions.check_days``).
- ``why TASK``: GetItem of the task (an id is made an ARN with ``--cluster``) and its story (``questions.story``).
- ``instances --cluster C`` scans the instance table with a filter on ``clusterArn`` (one item per container
  instance, a small table).
- ``dead-letters`` lists the dead-letter table (a scan; ``--shard`` queries one shard), with ``--with-data`` the
  raw record bytes reassembled from their parts and decompressed, ready to be replayed.

The pure formatting is in ``ops/render.py``, the pure time and story rules in ``ops/questions.py``; this module
holds the thin DynamoDB reads (boto3 paginators, BatchGetItem with retries of unprocessed keys) and the commands.
Errors are raised (``ReadError``, ``ConfigError``, botocore's): ``cli.main`` alone maps them to exit codes.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, Sequence, TextIO

from processor.core.schema import (
    CLUSTER_INDEX,
    EC2_INSTANCE_INDEX,
    INSTANCE_INDEX,
    SERVICE_INDEX,
    STOPPED_INDEX,
    Index,
    cluster_parts,
    cluster_service,
    stopped_day,
)
from processor.errors import ReadError
from processor.ops import catalog, questions
from processor.ops.batch_get import batch_get
from processor.ops.catalog import resolve_cluster
from processor.ops.render import (
    OUTPUTS,
    LowItem,
    arn_kind,
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

DEFAULT_STOPPED_WINDOW = "24h"
CLUSTER_HELP = (
    "cluster: its name, ACCOUNT/REGION/NAME (or REGION/NAME, ACCOUNT/NAME), or its ARN, resolved against the "
    "cluster catalogue; a name several clusters share is refused with the candidates"
)


# -------------------------------------------------------------------------------------------------- I/O part
def _client(service: str) -> Any:
    from processor.aws import client

    return client(service)


def _pages(ddb: Any, operation: str, **request: Any) -> Iterator[dict[str, Any]]:
    """Every page of a Query or Scan (boto3's paginator follows LastEvaluatedKey)."""
    return iter(ddb.get_paginator(operation).paginate(**request))


def get_item(ddb: Any, table: str, key_name: str, arn: str) -> LowItem | None:
    return ddb.get_item(TableName=table, Key={key_name: {"S": arn}}, ConsistentRead=True).get("Item")


def index_keys(
    ddb: Any,
    table: str,
    index: Index,
    hash_value: str,
    range_between: tuple[str, str] | None = None,
    where: dict[str, str | None] | None = None,
    newest_first: bool = False,
) -> list[dict[str, Any]]:
    """Every entry (keys and projected attributes, low-level) of one index partition: a Query on the hash key,
    optionally the range key between two values, and ``where`` (attribute -> value) as a filter on projected
    attributes (``lastStatus`` for ``--status``, ``group`` for ``--service``)."""
    condition, names = "#h = :h", {"#h": index.hash_key}
    values: dict[str, Any] = {":h": {"S": hash_value}}
    if range_between is not None:
        assert index.range_key
        names["#r"] = index.range_key
        condition += " AND #r BETWEEN :r0 AND :r1"
        values[":r0"], values[":r1"] = {"S": range_between[0]}, {"S": range_between[1]}
    request: dict[str, Any] = {
        "TableName": table,
        "IndexName": index.name,
        "KeyConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }
    filters = [(name, value) for name, value in (where or {}).items() if value is not None]
    if filters:
        request["FilterExpression"] = " AND ".join(f"#f{i} = :f{i}" for i in range(len(filters)))
        for i, (name, value) in enumerate(filters):
            names[f"#f{i}"] = name
            values[f":f{i}"] = {"S": value}
    if newest_first:
        request["ScanIndexForward"] = False
    return [item for page in _pages(ddb, "query", **request) for item in page.get("Items", [])]


def task_arns_in_cluster(ddb: Any, table: str, cluster: str, status: str | None) -> list[str]:
    """Task ARNs of a cluster from ``cluster-index``: one Query per part of the cluster."""
    return sorted(
        {
            it["taskArn"]["S"]
            for part in cluster_parts(cluster)
            for it in index_keys(ddb, table, CLUSTER_INDEX, part, where={"lastStatus": status})
        }
    )


def container_instance_arns(ddb: Any, instance_table: str, cluster: str, instance: str) -> list[str]:
    """``--instance``: a container-instance ARN as it is; an EC2 instance id (``i-...``) through the instance
    table's ``ec2-instance-index`` (every container instance it registered as); else a container-instance id."""
    if instance.startswith("arn:"):
        return [instance]
    if instance.startswith("i-"):
        found = sorted(
            {it["containerInstanceArn"]["S"] for it in index_keys(ddb, instance_table, EC2_INSTANCE_INDEX, instance)}
        )
        if not found:
            raise ReadError(f"no container instance with EC2 instance id {instance} in table {instance_table}")
        return found
    head, _, name = cluster.partition(":cluster/")
    return [f"{head}:container-instance/{name}/{instance}"]


def read_tasks(ddb: Any, table: str, arns: Sequence[str]) -> list[dict[str, Any]]:
    return [decode_item(it) for it in batch_get(ddb, table, "taskArn", sorted(set(arns)))]


def find_tasks(
    ddb: Any,
    task_table: str,
    instance_table: str,
    cluster: str,
    *,
    status: str | None = None,
    service: str | None = None,
    instance: str | None = None,
    at: str | None = None,
    include_expired: bool = False,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """``ecs-state tasks``: the stored tasks of a cluster, by instance, service or the whole cluster, that match
    every condition given."""
    group = questions.service_group(service) if service else None
    now = time.time() if now is None else now
    moment = questions.check_time("--at", questions.parse_time(at), _utc(now)) if at else None
    if moment is not None and status:
        questions.check_at_status(status)
    current = None if moment is not None else status  # with --at, the status asked is the one at that time
    if instance:
        places = container_instance_arns(ddb, instance_table, cluster, instance)
        arns = [
            it["taskArn"]["S"]
            for place in places
            for it in index_keys(ddb, task_table, INSTANCE_INDEX, place, where={"lastStatus": current})
        ]
    elif group:
        arns = [
            it["taskArn"]["S"]
            for it in index_keys(
                ddb, task_table, SERVICE_INDEX, cluster_service(cluster, group), where={"lastStatus": current}
            )
        ]
    else:
        arns = task_arns_in_cluster(ddb, task_table, cluster, current)
        places = None
    items = [
        it
        for it in read_tasks(ddb, task_table, arns)
        if it.get("clusterArn") == cluster
        and (not current or it.get("lastStatus") == current)
        and (not group or it.get("group") == group)
        and (not instance or it.get("containerInstanceArn") in (places or ()))
        and (moment is None or questions.status_at(it, moment) == (status or "RUNNING"))
        and (include_expired or not is_expired(it, now))
    ]
    return sort_tasks(items)


def find_stopped(
    ddb: Any,
    table: str,
    cluster: str,
    since: str | None = None,
    until: str | None = None,
    service: str | None = None,
    now: datetime | None = None,
    max_days: int = questions.MAX_DAYS,
) -> list[dict[str, Any]]:
    """``ecs-state stopped``: the tasks of a cluster (or one service) that stopped in the window, newest first.
    A window of more than ``max_days`` UTC days (0: no cap) is refused."""
    now = now or datetime.now(timezone.utc)
    end = questions.check_time("--until", questions.parse_time(until), now) if until else now
    start = questions.parse_since(since or DEFAULT_STOPPED_WINDOW, end)  # a DURATION counts back from the end
    questions.check_time("--since", start, now)
    if start > end:
        raise ReadError(f"--since ({questions.ecs_time(start)}) is after --until ({questions.ecs_time(end)})")
    days = questions.check_days(questions.days_between(start, end), max_days)
    group = questions.service_group(service) if service else None
    # the key condition compares text: widen by a second, then decide on the parsed times
    between = (questions.ecs_time(start - timedelta(seconds=1)), questions.ecs_time(end + timedelta(seconds=1)))
    arns = [
        it["taskArn"]["S"]
        for day in days
        for it in index_keys(
            ddb,
            table,
            STOPPED_INDEX,
            stopped_day(cluster, day),
            range_between=between,
            where={"group": group},
            newest_first=True,
        )
    ]
    items = [
        it
        for it in read_tasks(ddb, table, arns)
        if it.get("clusterArn") == cluster
        and it.get("lastStatus") == "STOPPED"
        and (not group or it.get("group") == group)
        and questions.stopped_between(it, start, end)
    ]
    return questions.newest_stopped_first(items)


def scan_cluster(
    ddb: Any, table: str, cluster: str, projection: str | None = None, names: dict[str, str] | None = None
) -> list[LowItem]:
    """Every item of ``table`` whose ``clusterArn`` is ``cluster`` (a filtered scan: reads the whole table)."""
    request: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": "#c = :c",
        "ExpressionAttributeNames": {"#c": "clusterArn", **(names or {})},
        "ExpressionAttributeValues": {":c": {"S": cluster}},
        "ConsistentRead": True,
    }
    if projection:
        request["ProjectionExpression"] = projection
    return [item for page in _pages(ddb, "scan", **request) for item in page.get("Items", [])]


def instances_in_cluster(ddb: Any, table: str, cluster: str) -> list[dict[str, Any]]:
    items = [decode_item(it) for it in scan_cluster(ddb, table, cluster)]
    return sorted(items, key=lambda it: str(it.get("containerInstanceArn", "")))


def dead_letters(ddb: Any, table: str, shard: str | None) -> list[list[dict[str, Any]]]:
    if shard:
        pages = _pages(
            ddb,
            "query",
            TableName=table,
            KeyConditionExpression="shardId = :s",
            ExpressionAttributeValues={":s": {"S": shard}},
            ConsistentRead=True,
        )
    else:
        pages = _pages(ddb, "scan", TableName=table, ConsistentRead=True)
    items = [deserialize(it) for page in pages for it in page.get("Items", [])]
    return sorted(dead_letter_groups(items), key=lambda g: (g[0]["shardId"], sequence_key(g[0]["sequenceNumber"])))


def _utc(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, timezone.utc)


# ---------------------------------------------------------------------------------------------------- CLI
def _common(parser: argparse.ArgumentParser, output: str = "table") -> None:
    parser.add_argument(
        "--properties",
        default=argparse.SUPPRESS,
        metavar="PATH",
        help="KCL properties file with the ecsState.* table names (default: $ECS_STATE_PROPERTIES, "
        "else the built-in table names)",
    )
    parser.add_argument("--output", choices=OUTPUTS, default=output, help=f"json or table (default {output})")


def register(subparsers: Any) -> None:
    get = subparsers.add_parser(
        "get",
        help="print one task or container instance from the state tables",
        description="Print the stored item of a task or container-instance ARN.",
    )
    get.add_argument("arn")
    get.add_argument("--raw", action="store_true", help="print compressed attributes as stored (base64)")
    _common(get)
    get.set_defaults(func=run, readside="get")

    tasks = subparsers.add_parser(
        "tasks",
        help="list a cluster's tasks (by instance, service, status, or running at a time)",
        description=f"Query an index ({CLUSTER_INDEX.name}; {SERVICE_INDEX.name} with --service; "
        f"{INSTANCE_INDEX.name} with --instance), then read the items from the table.",
    )
    tasks.add_argument("--cluster", required=True, help=CLUSTER_HELP)
    place = tasks.add_mutually_exclusive_group()
    place.add_argument("--instance", help="container-instance ARN or id, or EC2 instance id (i-...)")
    place.add_argument("--service", help="service name: the tasks whose group is service:NAME")
    tasks.add_argument(
        "--status", help="lastStatus, e.g. RUNNING, PENDING, STOPPED; with --at, the status at that time"
    )
    tasks.add_argument(
        "--at",
        metavar="TIME",
        help="the tasks that were in --status (default RUNNING: startedAt at or before TIME, no stoppedAt or a "
        "later one) at TIME (ISO 8601, e.g. 2026-11-27T09:07:00.000Z); --status PENDING, RUNNING or STOPPED",
    )
    tasks.add_argument(
        "--include-expired",
        action="store_true",
        help="also list STOPPED tasks whose expires_at (TTL) has passed but DynamoDB has not yet deleted",
    )
    _common(tasks)
    tasks.set_defaults(func=run, readside="tasks")

    stopped = subparsers.add_parser(
        "stopped",
        help="the tasks that stopped in a time window, newest first, with stop codes and exit codes",
        description=f"Query {STOPPED_INDEX.name} (one Query per UTC day of the window), then read the items.",
    )
    stopped.add_argument("--cluster", required=True, help=CLUSTER_HELP)
    stopped.add_argument("--service", help="service name: only tasks whose group is service:NAME")
    stopped.add_argument(
        "--since",
        metavar="TIME|DURATION",
        help=f"window start: ISO 8601 time, or a duration before the window's end like 90m, 2h, "
        f"7d (default {DEFAULT_STOPPED_WINDOW})",
    )
    stopped.add_argument("--until", metavar="TIME", help="window end (default now)")
    stopped.add_argument(
        "--max-days",
        type=int,
        default=questions.MAX_DAYS,
        metavar="N",
        help=f"refuse a window of more than N UTC days, one query each (default {questions.MAX_DAYS}; 0: no cap)",
    )
    _common(stopped)
    stopped.set_defaults(func=run, readside="stopped")

    why = subparsers.add_parser(
        "why",
        help="one task's story: where and when it ran, how it stopped, each container's exit code",
        description="Read one task (GetItem) and tell where and when it ran and why it stopped, in plain words.",
    )
    why.add_argument("task", help="task ARN, or task id with --cluster")
    why.add_argument("--cluster", help=CLUSTER_HELP + " (needed for a task id)")
    _common(why)
    why.set_defaults(func=run, readside="why")

    instances = subparsers.add_parser(
        "instances",
        help="list a cluster's container instances (scans the instance table)",
        description="Scan the container-instance table with a filter on clusterArn: it has no index on the "
        "cluster, so this reads the whole (small) table.",
    )
    instances.add_argument("--cluster", required=True, help=CLUSTER_HELP)
    _common(instances)
    instances.set_defaults(func=run, readside="instances")

    letters = subparsers.add_parser(
        "dead-letters",
        help="list records the processor could not store",
        description="List the dead-letter table (scan, or query one shard with --shard).",
    )
    letters.add_argument("--shard", help="only this shard id")
    letters.add_argument(
        "--with-data", action="store_true", help="include the raw record (dataBase64, and dataText when it is UTF-8)"
    )
    _common(letters)
    letters.set_defaults(func=run, readside="dead-letters")

    catalog.register(subparsers, _common)
    for name in ("clusters", "sources"):
        subparsers.choices[name].set_defaults(func=run)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """One read command; every error is raised (``cli.main`` maps it to its exit code and one line)."""
    from processor.config import load_settings

    out = out or sys.stdout
    settings = load_settings(getattr(args, "properties", None))
    ddb = _client("dynamodb")

    def cluster_of(text: str) -> str:
        return resolve_cluster(ddb, settings.catalog_table, text)

    if args.readside in ("clusters", "sources"):
        return catalog.run(args, ddb, settings, out)
    if args.readside == "get":
        kind = arn_kind(args.arn)
        table, key = (
            (settings.task_table, "taskArn") if kind == "task" else (settings.instance_table, "containerInstanceArn")
        )
        item = get_item(ddb, table, key, args.arn)
        if item is None:
            print(f"ecs-state get: {args.arn} is not in table {table}", file=sys.stderr)
            return 1
        decoded = decode_item(item, raw=args.raw)
        if is_expired(decoded, time.time()):
            print(
                f"ecs-state get: note: this item expired at {decoded['expires_at']} (TTL) and is only "
                f"waiting for DynamoDB to delete it",
                file=sys.stderr,
            )
        out.write(to_json(decoded) + "\n" if args.output == "json" else render_item_table(decoded))
    elif args.readside == "tasks":
        items = find_tasks(
            ddb,
            settings.task_table,
            settings.instance_table,
            cluster_of(args.cluster),
            status=args.status,
            service=args.service,
            instance=args.instance,
            at=args.at,
            include_expired=args.include_expired,
        )
        out.write(render("task", items, args.output))
    elif args.readside == "stopped":
        cluster = cluster_of(args.cluster)
        items = find_stopped(
            ddb, settings.task_table, cluster, args.since, args.until, args.service, max_days=args.max_days
        )
        out.write(render("stopped", items, args.output))
    elif args.readside == "why":
        arn = questions.task_arn(args.task, cluster_of(args.cluster) if args.cluster else None)
        item = get_item(ddb, settings.task_table, "taskArn", arn)
        if item is None:
            print(f"ecs-state why: {arn} is not in table {settings.task_table}", file=sys.stderr)
            return 1
        decoded = decode_item(item)
        told = questions.story(decoded)
        out.write(
            to_json({"item": decoded, "story": [{"label": label, "text": text} for label, text in told.lines]}) + "\n"
            if args.output == "json"
            else questions.render_story(told)
        )
    elif args.readside == "instances":
        cluster = cluster_of(args.cluster)
        out.write(render("instance", instances_in_cluster(ddb, settings.instance_table, cluster), args.output))
    else:
        groups = dead_letters(ddb, settings.dead_letter_table, args.shard)
        out.write(render("dead-letter", [dead_letter_view(g, args.with_data) for g in groups], args.output))
    return 0
