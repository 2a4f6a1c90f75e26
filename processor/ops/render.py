"""The read side's pure part: which table an ARN belongs to, stored items decoded to plain JSON-ready values, rows,
aligned tables and dead-letter views. No I/O; ``ops/read.py`` calls these around its DynamoDB reads.

Attribute values are decoded by boto3's ``TypeDeserializer`` (one decoder for every reader); attributes named in
``compressed_attributes`` are B = zlib(msgpack(value)) and are decoded back unless the raw form is asked for."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any, Iterable, Sequence

from boto3.dynamodb.types import Binary, TypeDeserializer

from processor.core.dead_letters import read_dead_letter_data
from processor.core.items import decompress_value
from processor.errors import ReadError

OUTPUTS = ("json", "table")


LowItem = dict[str, dict[str, Any]]  # an item as the low-level client returns it


_deserializer = TypeDeserializer()


def arn_kind(arn: str) -> str:
    """``"task"`` or ``"instance"`` from the shape of an ECS ARN; ``ReadError`` for anything else."""
    if not arn.startswith("arn:"):
        raise ReadError(
            f"{arn!r} is not an ARN; pass a task ARN (arn:...:task/...) or a container-instance ARN "
            f"(arn:...:container-instance/...)"
        )
    if ":task/" in arn:
        return "task"
    if ":container-instance/" in arn:
        return "instance"
    raise ReadError(
        f"{arn!r} is neither a task ARN (':task/') nor a container-instance ARN "
        f"(':container-instance/'); ecs-state stores only those two"
    )


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


def deserialize(item: LowItem) -> dict[str, Any]:
    """A low-level item -> Python values (boto3's TypeDeserializer: numbers as Decimal, binary as Binary)."""
    return {name: _deserializer.deserialize(av) for name, av in item.items()}


def decode_item(item: LowItem, raw: bool = False) -> dict[str, Any]:
    """A low-level item -> plain dict. Unless ``raw``, attributes named in ``compressed_attributes`` are decoded
    (zlib + msgpack) back to their values and ``compressed_attributes`` itself is dropped."""
    decoded = deserialize(item)
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


TASK_COLUMNS = (
    "TASK",
    "LAST",
    "DESIRED",
    "VERSION",
    "TASK DEFINITION",
    "LAUNCH",
    "STARTED",
    "STOPPED",
    "CONTAINER INSTANCE",
)


INSTANCE_COLUMNS = ("CONTAINER INSTANCE", "EC2 INSTANCE", "STATUS", "AGENT", "RUNNING", "PENDING", "VERSION", "UPDATED")


STOPPED_COLUMNS = ("STOPPED AT", "TASK", "GROUP", "STOP CODE", "REASON", "CONTAINERS (name:exit(reason))")


DEAD_LETTER_COLUMNS = ("SHARD", "SEQUENCE NUMBER", "CODE", "BYTES", "PARTITION KEY", "RECEIVED", "REASON")


def task_row(item: dict[str, Any]) -> list[str]:
    return [
        short(item.get("taskArn")),
        _text(item.get("lastStatus")),
        _text(item.get("desiredStatus")),
        _text(item.get("version")),
        short(item.get("taskDefinitionArn")),
        _text(item.get("launchType")),
        _text(item.get("startedAt")),
        _text(item.get("stoppedAt")),
        short(item.get("containerInstanceArn")),
    ]


def stopped_row(item: dict[str, Any]) -> list[str]:
    from processor.ops.questions import containers_summary

    return [
        _text(item.get("stoppedAt")),
        short(item.get("taskArn")),
        _text(item.get("group")),
        _text(item.get("stopCode")),
        _text(item.get("stoppedReason"))[:60],
        containers_summary(item),
    ]


def instance_row(item: dict[str, Any]) -> list[str]:
    connected = item.get("agentConnected")
    agent = "-" if connected is None else ("connected" if connected else "disconnected")
    return [
        short(item.get("containerInstanceArn")),
        _text(item.get("ec2InstanceId")),
        _text(item.get("status")),
        agent,
        _text(item.get("runningTasksCount")),
        _text(item.get("pendingTasksCount")),
        _text(item.get("version")),
        _text(item.get("updatedAt")),
    ]


def dead_letter_row(item: dict[str, Any]) -> list[str]:
    return [
        _text(item.get("shardId")),
        _text(item.get("sequenceNumber")),
        _text(item.get("reasonCode")),
        _text(item.get("dataLength")),
        _text(item.get("partitionKey")),
        _text(item.get("receivedAt")),
        _text(item.get("reason"))[:80],
    ]


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
    """The printed result of a listing: a JSON array or a table (``kind``: task, stopped, instance, dead-letter)."""
    if output == "json":
        return to_json(items) + "\n"
    columns, row = {
        "task": (TASK_COLUMNS, task_row),
        "instance": (INSTANCE_COLUMNS, instance_row),
        "dead-letter": (DEAD_LETTER_COLUMNS, dead_letter_row),
        "stopped": (STOPPED_COLUMNS, stopped_row),
    }[kind]
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
