"""``ecs-state reconcile --cluster C``: compare what ECS reports now with what the tables hold; exit 1 on drift.

ECS side: ListTasks for each desired status (RUNNING, PENDING, STOPPED; ECS keeps stopped tasks listable for about
an hour) + DescribeTasks, and ListContainerInstances for each status + DescribeContainerInstances. Table side: the
task index (keys only, so it carries ``lastStatus``) for the cluster, then consistent BatchGetItem of ``version``
and ``lastStatus`` for the tasks ECS lists and for the stored tasks the index shows as not STOPPED; a filtered
scan of the container-instance table. Stored STOPPED tasks / INACTIVE instances that ECS no longer lists are
"gone", which is normal (ECS forgets them; the table keeps them until TTL), and are not read one by one.

States per resource (``compare``):
  ok              ECS and table have the same ``version``
  missing         ECS has it, the table does not                                  drift
  behind          table ``version`` < ECS ``version``                             drift
  ahead           table ``version`` > ECS ``version``                             drift
  only-in-table   stored with a non-final status, ECS no longer lists it          drift
  gone            stored with a final status (STOPPED / INACTIVE), ECS forgot it  fine
  unversioned     ECS gave no ``version`` and the statuses agree                  fine, but unverified
  status-differs  ECS gave no ``version`` and the statuses differ                 drift

Real ECS returns ``version`` for tasks and container instances. moto (the test emulator) does not, which is what
the two ``unversioned``/``status-differs`` states are for; they are reported separately so nobody mistakes an
unverified match for a verified one.

Events reach the table seconds after ECS changes state, so a single look can show drift that is only in flight:
``--wait SECONDS`` re-checks the drifting resources (only those) until they agree or the time is up.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence, TextIO

from processor.errors import ReadError
from processor.ops.read import batch_get, render_table

TASK, INSTANCE = "task", "instance"
DRIFT_STATES = ("missing", "behind", "ahead", "only-in-table", "status-differs")
ALL_STATES = ("ok", "unversioned", "gone", *DRIFT_STATES)
FINAL_STATUS = {TASK: "STOPPED", INSTANCE: "INACTIVE"}
TASK_DESIRED_STATUSES = ("RUNNING", "PENDING", "STOPPED")
INSTANCE_STATUSES = ("ACTIVE", "DRAINING", "REGISTERING", "DEREGISTERING", "REGISTRATION_FAILED")
DESCRIBE_LIMIT = 100
POLL_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Seen:
    """One resource as one side reports it."""

    version: int | None
    status: str | None


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    arn: str
    state: str
    ecs_version: int | None = None
    table_version: int | None = None
    ecs_status: str | None = None
    table_status: str | None = None

    @property
    def drift(self) -> bool:
        return self.state in DRIFT_STATES


# ------------------------------------------------------------------------------------------------ pure part
def judge(kind: str, arn: str, live: Seen | None, stored: Seen | None) -> Finding:
    """The state of one resource from its ECS view and its table view (either may be absent, not both)."""
    def finding(state: str) -> Finding:
        return Finding(kind, arn, state, live.version if live else None, stored.version if stored else None,
                       live.status if live else None, stored.status if stored else None)

    if live is None and stored is None:
        raise ValueError(f"{arn}: seen on neither side")
    if stored is None:
        return finding("missing")
    if live is None:
        return finding("gone" if stored.status == FINAL_STATUS[kind] else "only-in-table")
    if live.version is None:
        return finding("unversioned" if live.status == stored.status else "status-differs")
    if stored.version is None or stored.version < live.version:
        return finding("behind")
    if stored.version > live.version:
        return finding("ahead")
    return finding("ok")


def compare(kind: str, live: Mapping[str, Seen], stored: Mapping[str, Seen]) -> list[Finding]:
    """Every resource on either side, judged; sorted by drift first, then state and ARN."""
    findings = [judge(kind, arn, live.get(arn), stored.get(arn)) for arn in set(live) | set(stored)]
    return sorted(findings, key=lambda f: (not f.drift, f.state, f.arn))


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    result = {state: 0 for state in ALL_STATES}
    for f in findings:
        result[f.state] += 1
    return {state: n for state, n in result.items() if n}


def report_json(cluster: str, findings: Sequence[Finding], show_all: bool) -> str:
    shown = [asdict(f) for f in findings if show_all or f.state != "ok"]
    return json.dumps({"cluster": cluster, "drift": any(f.drift for f in findings), "counts": counts(findings),
                       "findings": shown}, indent=2) + "\n"


def report_table(cluster: str, findings: Sequence[Finding], show_all: bool) -> str:
    def text(value: Any) -> str:
        return "-" if value is None else str(value)

    rows = [[f.kind, f.state, f.arn, text(f.ecs_version), text(f.table_version), text(f.ecs_status),
             text(f.table_status)] for f in findings if show_all or f.state != "ok"]
    summary = ", ".join(f"{n} {state}" for state, n in counts(findings).items()) or "nothing found"
    verdict = "DRIFT" if any(f.drift for f in findings) else "no drift"
    body = render_table(("KIND", "STATE", "ARN", "ECS VERSION", "TABLE VERSION", "ECS STATUS", "TABLE STATUS"),
                        rows) if rows else ""
    return body + f"{cluster}: {verdict} ({summary})\n"


def _seen(version: Any, status: Any) -> Seen:
    return Seen(None if version is None else int(version), None if status is None else str(status))


def seen_from_ecs(resources: Iterable[Mapping[str, Any]], key: str, status_field: str) -> dict[str, Seen]:
    """DescribeTasks / DescribeContainerInstances entries -> {arn: Seen}."""
    return {r[key]: _seen(r.get("version"), r.get(status_field)) for r in resources}


def seen_from_items(items: Iterable[Mapping[str, Mapping[str, Any]]], key: str, status_field: str) -> dict[str, Seen]:
    """Low-level DynamoDB items (projected) -> {arn: Seen}."""
    result = {}
    for item in items:
        version = item.get("version", {}).get("N")
        status = item.get(status_field, {}).get("S")
        result[item[key]["S"]] = _seen(version, status)
    return result


# -------------------------------------------------------------------------------------------------- I/O part
def _chunks(values: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def resolve_cluster(ecs: Any, cluster: str) -> str:
    reply = ecs.describe_clusters(clusters=[cluster])
    found = reply.get("clusters", [])
    if not found:
        reasons = "; ".join(f"{f.get('arn')}: {f.get('reason')}" for f in reply.get("failures", []))
        raise ReadError(f"ECS does not know cluster {cluster!r} in this account and region ({reasons or 'no reply'})")
    return str(found[0]["clusterArn"])


def live_tasks(ecs: Any, cluster: str, arns: Sequence[str] | None = None) -> dict[str, Seen]:
    """The ECS view of the cluster's tasks (all listed ones, or just ``arns``)."""
    if arns is None:
        listed: set[str] = set()
        for status in TASK_DESIRED_STATUSES:
            for page in ecs.get_paginator("list_tasks").paginate(cluster=cluster, desiredStatus=status):
                listed.update(page.get("taskArns", []))
        arns = sorted(listed)
    described: list[dict[str, Any]] = []
    for chunk in _chunks(list(arns), DESCRIBE_LIMIT):
        described.extend(ecs.describe_tasks(cluster=cluster, tasks=list(chunk)).get("tasks", []))
    return seen_from_ecs(described, "taskArn", "lastStatus")


def live_instances(ecs: Any, cluster: str, arns: Sequence[str] | None = None) -> dict[str, Seen]:
    if arns is None:
        listed: set[str] = set()
        for status in INSTANCE_STATUSES:
            for page in ecs.get_paginator("list_container_instances").paginate(cluster=cluster, status=status):
                listed.update(page.get("containerInstanceArns", []))
        arns = sorted(listed)
    described: list[dict[str, Any]] = []
    for chunk in _chunks(list(arns), DESCRIBE_LIMIT):
        reply = ecs.describe_container_instances(cluster=cluster, containerInstances=list(chunk))
        described.extend(reply.get("containerInstances", []))
    return seen_from_ecs(described, "containerInstanceArn", "status")


_TASK_PROJECTION = {"ProjectionExpression": "#k, #v, #s",
                    "ExpressionAttributeNames": {"#k": "taskArn", "#v": "version", "#s": "lastStatus"}}
_INSTANCE_PROJECTION = {"ProjectionExpression": "#k, #v, #s",
                        "ExpressionAttributeNames": {"#k": "containerInstanceArn", "#v": "version", "#s": "status"}}


def stored_tasks(ddb: Any, table: str, cluster: str, live_arns: Iterable[str],
                 only: Sequence[str] | None = None) -> dict[str, Seen]:
    """The table's view: consistent reads of the tasks ECS lists plus the stored non-STOPPED ones; stored STOPPED
    ones (from the index) only as ARN + status. ``only`` restricts everything to those ARNs (re-checks)."""
    stopped: dict[str, Seen] = {}
    to_read = set(live_arns)
    if only is None:
        for arn, status in task_index(ddb, table, cluster):
            if status == FINAL_STATUS[TASK]:
                stopped[arn] = Seen(None, status)
            else:
                to_read.add(arn)
    else:
        to_read = set(only)
    items = batch_get(ddb, table, "taskArn", sorted(to_read), **_projection(_TASK_PROJECTION))
    result = {arn: seen for arn, seen in stopped.items() if arn not in to_read}
    result.update(seen_from_items(items, "taskArn", "lastStatus"))
    return result


def task_index(ddb: Any, table: str, cluster: str) -> list[tuple[str, str | None]]:
    """(taskArn, lastStatus) pairs of the cluster from the keys-only index."""
    pairs: list[tuple[str, str | None]] = []
    request: dict[str, Any] = {"TableName": table, "IndexName": "clusterArn-lastStatus-index",
                               "KeyConditionExpression": "#c = :c", "ExpressionAttributeNames": {"#c": "clusterArn"},
                               "ExpressionAttributeValues": {":c": {"S": cluster}}}
    while True:
        page = ddb.query(**request)
        pairs.extend((it["taskArn"]["S"], it.get("lastStatus", {}).get("S")) for it in page.get("Items", []))
        if not page.get("LastEvaluatedKey"):
            return pairs
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def stored_instances(ddb: Any, table: str, cluster: str, only: Sequence[str] | None = None) -> dict[str, Seen]:
    if only is not None:
        items = batch_get(ddb, table, "containerInstanceArn", list(only), **_projection(_INSTANCE_PROJECTION))
    else:
        request: dict[str, Any] = {"TableName": table, "FilterExpression": "#c = :c", "ConsistentRead": True,
                                   "ExpressionAttributeValues": {":c": {"S": cluster}},
                                   "ProjectionExpression": _INSTANCE_PROJECTION["ProjectionExpression"],
                                   "ExpressionAttributeNames": {**_INSTANCE_PROJECTION["ExpressionAttributeNames"],
                                                                "#c": "clusterArn"}}
        items = []
        while True:
            page = ddb.scan(**request)
            items.extend(page.get("Items", []))
            if not page.get("LastEvaluatedKey"):
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return seen_from_items(items, "containerInstanceArn", "status")


def _projection(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {"projection": spec["ProjectionExpression"], "names": spec["ExpressionAttributeNames"]}


def observe(ecs: Any, ddb: Any, task_table: str, instance_table: str, cluster: str,
            only: Mapping[str, Sequence[str]] | None = None) -> list[Finding]:
    """One look at both sides. ``only`` = {"task": arns, "instance": arns} re-checks just those."""
    findings: list[Finding] = []
    if only is None or only.get(TASK):
        arns = None if only is None else only[TASK]
        live = live_tasks(ecs, cluster, arns)
        findings += compare(TASK, live, stored_tasks(ddb, task_table, cluster, live, only=arns))
    if only is None or only.get(INSTANCE):
        arns = None if only is None else only[INSTANCE]
        live = live_instances(ecs, cluster, arns)
        findings += compare(INSTANCE, live, stored_instances(ddb, instance_table, cluster, only=arns))
    return findings


def reconcile(ecs: Any, ddb: Any, task_table: str, instance_table: str, cluster: str,
              wait_s: float = 0.0, poll_s: float = POLL_SECONDS) -> list[Finding]:
    """Look once; while some resources drift and ``wait_s`` has not run out, look at those again every
    ``poll_s`` seconds."""
    findings = observe(ecs, ddb, task_table, instance_table, cluster)
    deadline = time.monotonic() + wait_s
    while any(f.drift for f in findings) and time.monotonic() < deadline:
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))  # poll interval of a deadline loop
        drifting = [f for f in findings if f.drift]
        again = observe(ecs, ddb, task_table, instance_table, cluster,
                        only={k: [f.arn for f in drifting if f.kind == k] for k in (TASK, INSTANCE)})
        again_by_key = {(f.kind, f.arn): f for f in again}
        findings = [again_by_key.get((f.kind, f.arn), f) if f.drift else f for f in findings]
    return sorted(findings, key=lambda f: (not f.drift, f.kind, f.state, f.arn))


# ---------------------------------------------------------------------------------------------------- CLI
def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "reconcile", help="compare ECS's current tasks and container instances with the tables",
        description="List the cluster's tasks and container instances in ECS, compare each one's version with "
                    "the stored item's, report drift. Exit 0: no drift; 1: drift; 2: error.")
    parser.add_argument("--cluster", required=True, help="cluster name or ARN")
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="re-check drifting resources until they agree or this many seconds pass (events "
                             "take seconds to reach the table); default 0")
    parser.add_argument("--all", action="store_true", help="also list resources that agree")
    parser.add_argument("--output", choices=("json", "table"), default="table")
    parser.add_argument("--properties", default=argparse.SUPPRESS, metavar="PATH",
                        help="KCL properties file with the ecsState.* table names")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from processor.aws import client
    from processor.config import load_settings
    from processor.errors import ConfigError

    out = out or sys.stdout
    try:
        settings = load_settings(getattr(args, "properties", None))
        ecs, ddb = client("ecs"), client("dynamodb")
        cluster = resolve_cluster(ecs, args.cluster)
        findings = reconcile(ecs, ddb, settings.task_table, settings.instance_table, cluster, args.wait)
    except (ReadError, ConfigError) as exc:
        print(f"ecs-state reconcile: {exc}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as exc:
        print(f"ecs-state reconcile: AWS call failed: {exc}", file=sys.stderr)
        return 2
    render = report_json if args.output == "json" else report_table
    out.write(render(cluster, findings, args.all))
    return 1 if any(f.drift for f in findings) else 0

