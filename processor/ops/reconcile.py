"""``ecs-state reconcile --cluster C`` (or ``--all-clusters``: each cluster ListClusters gives, one after the other):
compare what ECS reports now with what the tables hold; exit 1 on drift.

ECS side: ListTasks for each desired status (RUNNING, PENDING, STOPPED; ECS keeps stopped tasks listable for about
an hour) + DescribeTasks, and ListContainerInstances for each status + DescribeContainerInstances. Table side: the
task table's ``cluster-index`` (it projects ``lastStatus``; one Query per part of the cluster), then
consistent BatchGetItem of ``version`` and ``lastStatus`` for the tasks ECS lists and for the stored tasks the index
shows as not STOPPED; a filtered
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

The cluster may be in any account and region: ``--cluster`` is resolved against the cluster catalogue
(``ops/catalog.py``), and ECS is read in the cluster's region, through the member account's read-only role when
it is another account (``ops/member.py``); the tables read and repaired are always the central ones.

``--repair`` then stores the API's description of every ``missing`` / ``behind`` resource ECS describes with a
version, with the processor's conditional write (``ops/repair.py``), and reports each repair; the exit code is
then 1 only for drift the repair did not resolve.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Iterable, Mapping, Sequence, TextIO

from processor.core.schema import CLUSTER_INDEX, cluster_parts
from processor.errors import ReadError
from processor.ops.batch_get import batch_get
from processor.ops.drift import (
    FINAL_STATUS,
    INSTANCE,
    TASK,
    Finding,
    Seen,
    compare,
    report_json,
    report_table,
    seen_from_ecs,
    seen_from_items,
)
from processor.ops.read import index_keys

TASK_DESIRED_STATUSES = ("RUNNING", "PENDING", "STOPPED")
INSTANCE_STATUSES = ("ACTIVE", "DRAINING", "REGISTERING", "DEREGISTERING", "REGISTRATION_FAILED")
DESCRIBE_LIMIT = 100
POLL_SECONDS = 2.0


# ------------------------------------------------------------------------------------------------ pure part


# -------------------------------------------------------------------------------------------------- I/O part
def _chunks(values: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def resolve_cluster(ecs: Any, cluster: str) -> str:
    """The cluster's ARN as ECS (in the cluster's account and region) knows it; ``ReadError`` when it does not."""
    reply = ecs.describe_clusters(clusters=[cluster])
    found = reply.get("clusters", [])
    if not found:
        reasons = "; ".join(f"{f.get('arn')}: {f.get('reason')}" for f in reply.get("failures", []))
        raise ReadError(f"ECS does not know cluster {cluster!r} in that account and region ({reasons or 'no reply'})")
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


_TASK_PROJECTION: dict[str, Any] = {
    "ProjectionExpression": "#k, #v, #s",
    "ExpressionAttributeNames": {"#k": "taskArn", "#v": "version", "#s": "lastStatus"},
}
_INSTANCE_PROJECTION: dict[str, Any] = {
    "ProjectionExpression": "#k, #v, #s",
    "ExpressionAttributeNames": {"#k": "containerInstanceArn", "#v": "version", "#s": "status"},
}


def stored_tasks(
    ddb: Any, table: str, cluster: str, live_arns: Iterable[str], only: Sequence[str] | None = None
) -> dict[str, Seen]:
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
    """(taskArn, lastStatus) pairs of the cluster from the keys-only ``cluster-index`` (one Query per part)."""
    return [
        (it["taskArn"]["S"], it.get("lastStatus", {}).get("S"))
        for part in cluster_parts(cluster)
        for it in index_keys(ddb, table, CLUSTER_INDEX, part)
    ]


def stored_instances(ddb: Any, table: str, cluster: str, only: Sequence[str] | None = None) -> dict[str, Seen]:
    if only is not None:
        items = batch_get(ddb, table, "containerInstanceArn", list(only), **_projection(_INSTANCE_PROJECTION))
    else:
        request: dict[str, Any] = {
            "TableName": table,
            "FilterExpression": "#c = :c",
            "ConsistentRead": True,
            "ExpressionAttributeValues": {":c": {"S": cluster}},
            "ProjectionExpression": _INSTANCE_PROJECTION["ProjectionExpression"],
            "ExpressionAttributeNames": {**_INSTANCE_PROJECTION["ExpressionAttributeNames"], "#c": "clusterArn"},
        }
        items = [it for page in ddb.get_paginator("scan").paginate(**request) for it in page.get("Items", [])]
    return seen_from_items(items, "containerInstanceArn", "status")


def _projection(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {"projection": spec["ProjectionExpression"], "names": spec["ExpressionAttributeNames"]}


def observe(
    ecs: Any,
    ddb: Any,
    task_table: str,
    instance_table: str,
    cluster: str,
    only: Mapping[str, Sequence[str]] | None = None,
) -> list[Finding]:
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


def reconcile(
    ecs: Any,
    ddb: Any,
    task_table: str,
    instance_table: str,
    cluster: str,
    wait_s: float = 0.0,
    poll_s: float = POLL_SECONDS,
) -> list[Finding]:
    """Look once; while some resources drift and ``wait_s`` has not run out, look at those again every
    ``poll_s`` seconds."""
    findings = observe(ecs, ddb, task_table, instance_table, cluster)
    deadline = time.monotonic() + wait_s
    while any(f.drift for f in findings) and time.monotonic() < deadline:
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))  # poll interval of a deadline loop
        drifting = [f for f in findings if f.drift]
        again = observe(
            ecs,
            ddb,
            task_table,
            instance_table,
            cluster,
            only={k: [f.arn for f in drifting if f.kind == k] for k in (TASK, INSTANCE)},
        )
        again_by_key = {(f.kind, f.arn): f for f in again}
        findings = [again_by_key.get((f.kind, f.arn), f) if f.drift else f for f in findings]
    return sorted(findings, key=lambda f: (not f.drift, f.kind, f.state, f.arn))


# ---------------------------------------------------------------------------------------------------- CLI
def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "reconcile",
        help="compare ECS's current tasks and container instances with the tables",
        description="List the cluster's tasks and container instances in ECS, compare each one's version with "
        "the stored item's, report drift. Exit 0: no drift; 1: drift; 2: error.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--cluster",
        help="cluster: its name, ACCOUNT/REGION/NAME (or a unique part of it) or ARN; another account's cluster "
        "is read through that account's read-only role (ecsState.memberReadRole)",
    )
    which.add_argument(
        "--all-clusters",
        action="store_true",
        help="every cluster of the caller's account in this region (ListClusters), one after the other: with "
        "--repair, seeds new tables with what already runs",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="re-check drifting resources until they agree or this many seconds pass (events "
        "take seconds to reach the table); default 0",
    )
    parser.add_argument("--all", action="store_true", help="also list resources that agree")
    parser.add_argument(
        "--repair",
        action="store_true",
        help="store the ECS API's description where the table is behind or misses a resource "
        "(conditional on the stored version being lower; marked item_source = ecs-api)",
    )
    parser.add_argument("--output", choices=("json", "table"), default="table")
    parser.add_argument(
        "--properties",
        default=argparse.SUPPRESS,
        metavar="PATH",
        help="KCL properties file with the ecsState.* table names",
    )
    parser.set_defaults(func=run)


def list_clusters(ecs: Any) -> list[str]:
    """Every cluster ARN of the account in the client's region (ListClusters, all pages)."""
    return sorted(arn for page in ecs.get_paginator("list_clusters").paginate() for arn in page.get("clusterArns", []))


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """One cluster (``--cluster``, of any account) or each of the caller's account's (``--all-clusters``): the
    report (and the repairs) of each, one after the other; drift left anywhere is exit 1. Errors are raised
    (``cli.main`` maps them to exit codes); what was done before one stays done."""
    from processor.aws import client
    from processor.config import load_settings
    from processor.ops.catalog import resolve_cluster as from_catalog
    from processor.ops.member import ecs_for_cluster
    from processor.ops.repair import repair, repairs_json, repairs_table, unresolved

    out = out or sys.stdout
    reports: list[dict[str, Any]] = []
    drift_left = False
    settings = load_settings(getattr(args, "properties", None))
    ddb = client("dynamodb")
    if getattr(args, "all_clusters", False):
        own = client("ecs")
        targets: list[tuple[Any, str]] = [(own, arn) for arn in list_clusters(own)]
    else:
        named = from_catalog(ddb, settings.catalog_table, args.cluster)
        ecs, _ = ecs_for_cluster(named, settings.member_read_role)
        targets = [(ecs, resolve_cluster(ecs, named))]
    for ecs, cluster in targets:
        repairs = None
        findings = reconcile(ecs, ddb, settings.task_table, settings.instance_table, cluster, args.wait)
        if getattr(args, "repair", False):
            repairs = repair(
                ecs,
                ddb,
                {TASK: settings.task_table, INSTANCE: settings.instance_table},
                cluster,
                findings,
                settings.task_retention_hours,
            )
        left = [f for f in findings if f.drift] if repairs is None else unresolved(findings, repairs)
        drift_left = drift_left or bool(left)
        if args.output == "json":
            report = json.loads(report_json(cluster, findings, args.all))
            if repairs is not None:
                report.update(repairs=repairs_json(repairs), unresolved=len(left))
            reports.append(report)
        else:
            out.write(report_table(cluster, findings, args.all))
            if repairs is not None:
                out.write(repairs_table(repairs, len(left)))
    if args.output == "json":
        document: Any = {"clusters": reports} if getattr(args, "all_clusters", False) else reports[0]
        out.write(json.dumps(document, indent=2) + "\n")
    elif getattr(args, "all_clusters", False) and not targets:
        out.write("no cluster in this account and region\n")
    return 1 if drift_left else 0
