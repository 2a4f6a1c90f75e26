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

Pure formatting functions (``decode_item``, ``to_json``, ``render_table``, ``task_row``...) are separate from the
thin I/O functions at the bottom.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from decimal import Decimal
from typing import Any, Callable, Iterable, Iterator, Sequence, TextIO

from boto3.dynamodb.types import Binary, TypeDeserializer

from processor.core.dead_letters import read_dead_letter_data
from processor.core.items import decompress_value
from processor.errors import ReadError

TASK_INDEX = "clusterArn-lastStatus-index"
OUTPUTS = ("json", "table")
BATCH_GET_LIMIT = 100

LowItem = dict[str, dict[str, Any]]  # an item as the low-level client returns it

_deserializer = TypeDeserializer()



# ------------------------------------------------------------------------------------------------ pure part
def arn_kind(arn: str) -> str:
    """``"task"`` or ``"instance"`` from the shape of an ECS ARN; ``ReadError`` for anything else."""
    if not arn.startswith("arn:"):
        raise ReadError(f"{arn!r} is not an ARN; pass a task ARN (arn:...:task/...) or a container-instance ARN "
                        f"(arn:...:container-instance/...)")
    if ":task/" in arn:
        return "task"
    if ":container-instance/" in arn:
        return "instance"
    raise ReadError(f"{arn!r} is neither a task ARN (':task/') nor a container-instance ARN "
                    f"(':container-instance/'); ecs-state stores only those two")


def cluster_arn(cluster: str, partition: str, region: str, account: str) -> str:
    """A cluster ARN from a name (an ARN is returned as it is)."""
    if cluster.startswith("arn:"):
        return cluster
    return f"arn:{partition}:ecs:{region}:{account}:cluster/{cluster}"


def plain(value: Any) -> Any:
    """A deserialized DynamoDB value -> JSON-ready Python: integral Decimals as int, others as float, sets as sorted
    lists, binary as base64 text."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (Binary, bytes, bytearray)):
        raw = value.value if isinstance(value, Binary) else bytes(value)
        return base64.b64encode(raw).decode("ascii")
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(plain(v) for v in value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def decode_item(item: LowItem, raw: bool = False) -> dict[str, Any]:
    """A low-level item -> plain dict. Unless ``raw``, attributes named in ``compressed_attributes`` are decoded
    (zlib + msgpack) back to their values and ``compressed_attributes`` itself is dropped."""
    decoded = {name: _deserializer.deserialize(av) for name, av in item.items()}
    if not raw:
        for name in decoded.pop("compressed_attributes", set()):
            blob = decoded.get(name)
            if isinstance(blob, Binary):
                decoded[name] = decompress_value(blob.value)
    return {name: plain(value) for name, value in sorted(decoded.items())}


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def short(arn: Any) -> str:
    """The last path segment of an ARN (``.../task/c1/abc`` -> ``abc``)."""
    return str(arn).rsplit("/", 1)[-1] if arn else "-"


def _text(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


TASK_COLUMNS = ("TASK", "LAST", "DESIRED", "VERSION", "TASK DEFINITION", "LAUNCH", "STARTED", "STOPPED",
                "CONTAINER INSTANCE")
INSTANCE_COLUMNS = ("CONTAINER INSTANCE", "EC2 INSTANCE", "STATUS", "AGENT", "RUNNING", "PENDING", "VERSION",
                    "UPDATED")
DEAD_LETTER_COLUMNS = ("SHARD", "SEQUENCE NUMBER", "CODE", "BYTES", "PARTITION KEY", "RECEIVED", "REASON")


def task_row(item: dict[str, Any]) -> list[str]:
    return [short(item.get("taskArn")), _text(item.get("lastStatus")), _text(item.get("desiredStatus")),
            _text(item.get("version")), short(item.get("taskDefinitionArn")), _text(item.get("launchType")),
            _text(item.get("startedAt")), _text(item.get("stoppedAt")), short(item.get("containerInstanceArn"))]


def instance_row(item: dict[str, Any]) -> list[str]:
    connected = item.get("agentConnected")
    agent = "-" if connected is None else ("connected" if connected else "disconnected")
    return [short(item.get("containerInstanceArn")), _text(item.get("ec2InstanceId")), _text(item.get("status")),
            agent, _text(item.get("runningTasksCount")), _text(item.get("pendingTasksCount")),
            _text(item.get("version")), _text(item.get("updatedAt"))]


def dead_letter_row(item: dict[str, Any]) -> list[str]:
    return [_text(item.get("shardId")), _text(item.get("sequenceNumber")), _text(item.get("reasonCode")),
            _text(item.get("dataLength")), _text(item.get("partitionKey")), _text(item.get("receivedAt")),
            _text(item.get("reason"))[:80]]


def render_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, header first; trailing spaces trimmed."""
    rows = [list(headers)] + [list(r) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(headers))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows) + "\n"


def render_item_table(item: dict[str, Any]) -> str:
    """``get --output table``: one attribute per row."""
    return render_table(("ATTRIBUTE", "VALUE"), ([name, _text(value)] for name, value in sorted(item.items())))


def is_expired(item: dict[str, Any], now: float) -> bool:
    """True when the item's TTL attribute ``expires_at`` has passed: DynamoDB deletes such items only eventually
    (typically within days), so readers treat them as deleted already."""
    expires = item.get("expires_at")
    return isinstance(expires, (int, float)) and not isinstance(expires, bool) and expires <= now


def sort_tasks(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda it: (str(it.get("lastStatus", "")), str(it.get("taskArn", ""))))


def render(kind: str, items: list[dict[str, Any]], output: str) -> str:
    """The printed result of a listing: a JSON array or a table (``kind``: task, instance, dead-letter)."""
    if output == "json":
        return to_json(items) + "\n"
    columns, row = {"task": (TASK_COLUMNS, task_row), "instance": (INSTANCE_COLUMNS, instance_row),
                    "dead-letter": (DEAD_LETTER_COLUMNS, dead_letter_row)}[kind]
    return render_table(columns, (row(it) for it in items))


def dead_letter_groups(items: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Group deserialized dead-letter items into [first, part1, part2...] lists (parts are ``<key>#part<i>``)."""
    firsts: dict[tuple[str, str], list[dict[str, Any]]] = {}
    parts: list[dict[str, Any]] = []
    for item in items:
        if "#part" in str(item["sequenceNumber"]):
            parts.append(item)
        else:
            firsts[(item["shardId"], item["sequenceNumber"])] = [item]
    for part in parts:
        base = str(part["sequenceNumber"]).rsplit("#part", 1)[0]
        group = firsts.get((part["shardId"], base))
        if group is not None:
            group.append(part)
    return list(firsts.values())


def sequence_key(key: str) -> tuple[int, int, str]:
    """Sort key of a dead letter's ``sequenceNumber`` (``<seq>`` or ``<seq>:<subseq>``): numeric order."""
    seq, _, sub = key.partition(":")
    try:
        return int(seq), int(sub or 0), ""
    except ValueError:
        return -1, 0, key


def dead_letter_view(group: list[dict[str, Any]], with_data: bool) -> dict[str, Any]:
    """One dead letter for printing: the first item's attributes without the stored ``data``; with ``with_data``,
    ``dataBase64`` holds the raw record (reassembled, decompressed) and ``dataText`` it as UTF-8 when it is."""
    first = group[0]
    view = {name: plain(value) for name, value in first.items() if name != "data"}
    if with_data:
        raw = read_dead_letter_data(group)
        view["dataBase64"] = base64.b64encode(raw).decode("ascii")
        try:
            view["dataText"] = raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return view


# -------------------------------------------------------------------------------------------------- I/O part
def _client(service: str) -> Any:
    from processor.aws import client
    return client(service)


def _pages(call: Callable[..., dict[str, Any]], **request: Any) -> Iterator[dict[str, Any]]:
    while True:
        page = call(**request)
        yield page
        if not page.get("LastEvaluatedKey"):
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


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
    for page in _pages(ddb.query, TableName=table, IndexName=TASK_INDEX, KeyConditionExpression=condition,
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
    return [item for page in _pages(ddb.scan, **request) for item in page.get("Items", [])]


def instances_in_cluster(ddb: Any, table: str, cluster: str) -> list[dict[str, Any]]:
    items = [decode_item(it) for it in scan_cluster(ddb, table, cluster)]
    return sorted(items, key=lambda it: str(it.get("containerInstanceArn", "")))


def dead_letters(ddb: Any, table: str, shard: str | None) -> list[list[dict[str, Any]]]:
    if shard:
        pages = _pages(ddb.query, TableName=table, KeyConditionExpression="shardId = :s",
                       ExpressionAttributeValues={":s": {"S": shard}}, ConsistentRead=True)
    else:
        pages = _pages(ddb.scan, TableName=table, ConsistentRead=True)
    items = [{n: _deserializer.deserialize(av) for n, av in it.items()} for page in pages
             for it in page.get("Items", [])]
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
