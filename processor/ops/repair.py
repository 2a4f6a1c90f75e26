"""``ecs-state reconcile --repair``: store the ECS API's description where the table is behind (an event lost).

For every drifting resource that ECS describes with a ``version`` the table does not hold (``missing``, or
``behind``: stored version lower), the resource is described again and its description is stored in the item
layout, with the processor's own conditional write (``shard/writer.CONDITION``: absent, a ``version`` that is not a
number, or a lower one), so a repair never lowers a stored version and loses to an event that landed meanwhile.
The item is ``build_item``'s, from an ``Event`` made of the description:

- ``detail`` = the API's description (DescribeTasks / DescribeContainerInstances have the fields an event's
  ``detail`` has), with timestamps written as events carry them (ISO 8601, UTC, milliseconds, ``Z``);
- ``cw_version`` ``"0"``, ``event_id`` ``ecs-api``, ``event_time`` = the time of the repair; position
  ``Position("ecs-api", <that time>)``, so ``kinesis_shard_id`` = ``ecs-api`` and ``kinesis_sequence_number`` =
  the time;
- ``item_source`` = ``"ecs-api"``: the marker that the item came from the API, not from an event. Snake case like
  the other metadata attributes (no ECS field is snake case); the processor's items do not have it, so the next
  event of that resource replaces the whole item and the marker with it.

Not repaired: ``ahead`` (the API lags), ``only-in-table`` / ``gone`` (nothing to store), resources ECS describes
without a ``version`` (nothing to compare the condition with), and descriptions DynamoDB cannot hold (reported).
Needs ``dynamodb:PutItem`` on the state tables besides what reconcile needs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from processor.core.events import INSTANCE, TASK, Event
from processor.core.items import Item, Unstorable, build_item
from processor.core.position import Position
from processor.core.schema import TABLE_KEYS
from processor.ops.drift import Finding, State
from processor.ops.render import render_table
from processor.shard.writer import CONDITION

SOURCE_ATTRIBUTE = "item_source"
SOURCE = "ecs-api"
REPAIRABLE = (State.MISSING, State.BEHIND)
DESCRIBE_LIMIT = 100


@dataclass(frozen=True, slots=True)
class Repair:
    kind: str
    arn: str
    result: str  # repaired | newer-in-table | not-described | unversioned | unstorable
    table_version: int | None
    stored_version: int | None = None
    why: str = ""


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def as_event_detail(value: Any) -> Any:
    """An API value -> what an event's ``detail`` carries (datetimes -> ISO 8601 strings), recursively."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, dict):
        return {k: as_event_detail(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_event_detail(v) for v in value]
    return value


def repair_item(
    kind: str, description: Mapping[str, Any], now: datetime, task_retention_hours: int = 0, cluster: str | None = None
) -> Item:
    """The state item for an API description (raises ``Unstorable`` like the processor's path). ``cluster``
    fills ``clusterArn`` when the description has none (DescribeContainerInstances gives none; events do)."""
    detail = as_event_detail(dict(description))
    if cluster and "clusterArn" not in detail:
        detail["clusterArn"] = cluster
    key = TABLE_KEYS[kind]
    when = iso(now)
    event = Event(kind, key, str(detail[key]), int(detail["version"]), detail, "0", SOURCE, when)
    item = build_item(event, Position(SOURCE, when), task_retention_hours)
    attributes = {**item.attributes, SOURCE_ATTRIBUTE: {"S": SOURCE}}
    return replace(item, attributes=attributes, size=item.size + len(SOURCE_ATTRIBUTE) + len(SOURCE))


def targets(findings: Sequence[Finding]) -> dict[str, list[Finding]]:
    """The findings a repair can fix, by kind."""
    found: dict[str, list[Finding]] = {TASK: [], INSTANCE: []}
    for f in findings:
        if f.state in REPAIRABLE and f.ecs_version is not None:
            found[f.kind].append(f)
    return found


def describe(ecs: Any, kind: str, cluster: str, arns: Sequence[str]) -> dict[str, dict[str, Any]]:
    described: dict[str, dict[str, Any]] = {}
    for start in range(0, len(arns), DESCRIBE_LIMIT):
        chunk = list(arns[start : start + DESCRIBE_LIMIT])
        if kind == TASK:
            found = ecs.describe_tasks(cluster=cluster, tasks=chunk).get("tasks", [])
        else:
            found = ecs.describe_container_instances(cluster=cluster, containerInstances=chunk).get(
                "containerInstances", []
            )
        described.update((r[TABLE_KEYS[kind]], r) for r in found)
    return described


def put_conditionally(ddb: Any, table: str, item: Item) -> bool:
    """The processor's conditional write; False when the table holds this version or a newer one."""
    from botocore.exceptions import ClientError

    try:
        ddb.put_item(
            TableName=table,
            Item=item.attributes,
            ConditionExpression=CONDITION,
            ExpressionAttributeNames={"#k": item.key_name, "#v": "version"},
            ExpressionAttributeValues={":v": {"N": str(item.version)}, ":n": {"S": "N"}},
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True


def repair(
    ecs: Any,
    ddb: Any,
    tables: Mapping[str, str],
    cluster: str,
    findings: Sequence[Finding],
    task_retention_hours: int = 0,
    now: datetime | None = None,
) -> list[Repair]:
    """Describe every repairable resource again and store what the API says; one Repair per target."""
    repairs: list[Repair] = []
    for kind, wanted in targets(findings).items():
        described = describe(ecs, kind, cluster, [f.arn for f in wanted]) if wanted else {}
        for f in wanted:
            description = described.get(f.arn)
            if description is None:
                repairs.append(Repair(kind, f.arn, "not-described", f.table_version, why="ECS no longer describes it"))
                continue
            if description.get("version") is None:
                repairs.append(Repair(kind, f.arn, "unversioned", f.table_version, why="ECS gave no version"))
                continue
            try:
                item = repair_item(kind, description, now or datetime.now(timezone.utc), task_retention_hours, cluster)
            except (Unstorable, ValueError, TypeError) as exc:
                repairs.append(Repair(kind, f.arn, "unstorable", f.table_version, why=str(exc)))
                continue
            stored = put_conditionally(ddb, tables[kind], item)
            repairs.append(
                Repair(
                    kind,
                    f.arn,
                    "repaired" if stored else "newer-in-table",
                    f.table_version,
                    item.version,
                    "" if stored else "an event stored this version or a newer one",
                )
            )
    return sorted(repairs, key=lambda r: (r.kind, r.arn))


def unresolved(findings: Sequence[Finding], repairs: Sequence[Repair]) -> list[Finding]:
    """Drift a repair did not resolve (``repaired`` and ``newer-in-table`` resolve it)."""
    done = {(r.kind, r.arn) for r in repairs if r.result in ("repaired", "newer-in-table")}
    return [f for f in findings if f.drift and (f.kind, f.arn) not in done]


def repairs_table(repairs: Sequence[Repair], left: int) -> str:
    def text(value: Any) -> str:
        return "-" if value is None else str(value)

    rows = [[r.kind, r.result, r.arn, text(r.table_version), text(r.stored_version), r.why] for r in repairs]
    body = render_table(("KIND", "REPAIR", "ARN", "TABLE VERSION", "STORED VERSION", "NOTE"), rows) if rows else ""
    fixed = sum(r.result == "repaired" for r in repairs)
    return body + f"repair: {fixed} items stored from the ECS API, {left} drifting resources left\n"


def repairs_json(repairs: Sequence[Repair]) -> list[dict[str, Any]]:
    return [asdict(r) for r in repairs]
