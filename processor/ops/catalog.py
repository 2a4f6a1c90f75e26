"""The cluster catalogue, read: ``ecs-state clusters`` and ``ecs-state sources``, and how ``--cluster`` is
resolved for every read command (``resolve_cluster``).

Rules:
- The catalogue (``shard/catalog.py`` writes it) is small, one item per cluster: it is scanned. The task table is
  never scanned: ``clusters`` counts a cluster's tasks by status with ``Select=COUNT`` Queries on
  ``cluster-index`` (one per part of the cluster and listed status; ``ScannedCount`` gives the total, so "other"
  is the total less the listed statuses). The counts include STOPPED tasks kept until their TTL.
- ``--cluster`` is an ARN (taken as it is), ``ACCOUNT/REGION/NAME``, or a part of it ending with the name
  (``NAME``, ``REGION/NAME``, ``ACCOUNT/NAME``). A non-ARN is matched against the catalogue: one match is that
  cluster; several are refused in one line listing them (``ReadError``: exit 2); none falls back to the full
  ``ACCOUNT/REGION/NAME`` as written, else to the name in the caller's own account and region (STS
  GetCallerIdentity; tables made before the catalogue existed keep working).
- ``sources``: per account and region, the newest event of any of its clusters and how long ago it was; one silent
  longer than ``--silent-for`` (default 1h) is not forwarding: listed as such, and the command exits 1. An account
  whose clusters are all idle is silent too (ECS sends no event when nothing changes): choose the duration with
  that in mind.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterable, TextIO

from processor.core.catalog import ClusterRef, cluster_arn_of, parse_cluster_arn
from processor.core.schema import CLUSTER_INDEX, cluster_parts
from processor.errors import ReadError
from processor.ops.render import to_json

COUNTED_STATUSES = ("RUNNING", "PENDING", "STOPPED")
DEFAULT_SILENT_FOR = "1h"


@dataclass(frozen=True)
class Entry:
    """One catalogue item."""

    cluster: ClusterRef
    newest_event: str
    newest_ms: int | None


@dataclass
class Source:
    """One account and region, from its clusters' entries."""

    account: str
    region: str
    clusters: int = 0
    newest_event: str = ""
    newest_ms: int | None = None
    silent_s: float | None = None
    forwarding: bool = False
    names: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ pure part
def entry_from_item(item: dict[str, Any]) -> Entry | None:
    arn = item.get("clusterArn", {}).get("S", "")
    ref = parse_cluster_arn(arn)
    if ref is None:
        return None
    raw_ms = item.get("newest_event_ms", {}).get("N")
    return Entry(ref, item.get("newestEvent", {}).get("S", ""), int(raw_ms) if raw_ms else None)


def matches(entries: Iterable[Entry], text: str) -> list[Entry]:
    """The entries ``text`` names (module docstring): the last ``/`` part is the name, the others each the account
    or the region."""
    parts = [part for part in text.strip().split("/") if part]
    if not parts:
        return []
    name, qualifiers = parts[-1], parts[:-1]
    return [
        entry
        for entry in entries
        if entry.cluster.name == name and all(q in (entry.cluster.account, entry.cluster.region) for q in qualifiers)
    ]


def sources(entries: Iterable[Entry], now_ms: int, silent_for_s: float) -> list[Source]:
    """Per account and region: the newest event of its clusters and whether it is forwarding (pure)."""
    found: dict[tuple[str, str], Source] = {}
    for entry in entries:
        ref = entry.cluster
        source = found.setdefault((ref.account, ref.region), Source(ref.account, ref.region))
        source.clusters += 1
        source.names.append(ref.name)
        if entry.newest_ms is not None and (source.newest_ms is None or entry.newest_ms > source.newest_ms):
            source.newest_ms, source.newest_event = entry.newest_ms, entry.newest_event
    for source in found.values():
        if source.newest_ms is not None:
            source.silent_s = max(0.0, (now_ms - source.newest_ms) / 1000)
            source.forwarding = source.silent_s <= silent_for_s
        source.names.sort()
    return sorted(found.values(), key=lambda s: (s.account, s.region))


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    return "".join("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip() + "\n" for row in [header, *rows])


def render_clusters(rows: list[dict[str, Any]], output: str) -> str:
    if output == "json":
        return to_json(rows) + "\n"
    header = ["ACCOUNT", "REGION", "NAME", "NEWEST EVENT", *COUNTED_STATUSES, "OTHER", "ARN"]
    body = [
        [
            r["account"],
            r["region"],
            r["name"],
            r["newestEvent"] or "-",
            *(str(r["tasks"].get(s, "-")) for s in COUNTED_STATUSES),
            str(r["tasks"].get("other", "-")),
            r["clusterArn"],
        ]
        for r in rows
    ]
    return _table(header, body) if body else "no clusters in the catalogue\n"


def render_sources(found: list[Source], output: str, silent_for: str) -> str:
    if output == "json":
        return (
            to_json(
                [
                    {
                        "account": s.account,
                        "region": s.region,
                        "clusters": s.clusters,
                        "newestEvent": s.newest_event or None,
                        "silentSeconds": None if s.silent_s is None else round(s.silent_s, 1),
                        "forwarding": s.forwarding,
                    }
                    for s in found
                ]
            )
            + "\n"
        )
    header = ["ACCOUNT", "REGION", "CLUSTERS", "NEWEST EVENT", "SILENT FOR", f"FORWARDING (<= {silent_for})"]
    body = [
        [s.account, s.region, str(s.clusters), s.newest_event or "-", _ago(s.silent_s), "yes" if s.forwarding else "NO"]
        for s in found
    ]
    return _table(header, body) if body else "no account or region in the catalogue\n"


# -------------------------------------------------------------------------------------------------- I/O part
def read_catalog(ddb: Any, table: str) -> list[Entry]:
    """Every catalogue entry (a Scan of the small catalogue); an absent catalogue table is an empty one."""
    from botocore.exceptions import ClientError

    try:
        pages = list(ddb.get_paginator("scan").paginate(TableName=table))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return []
        raise
    entries = [entry_from_item(item) for page in pages for item in page.get("Items", [])]
    return sorted((e for e in entries if e is not None), key=lambda e: e.cluster.path)


def _own_account_arn(name: str) -> str:
    """The name in the caller's own account and region (STS GetCallerIdentity needs no permission)."""
    from processor import aws

    session = aws.session()
    region = session.region_name
    if not region:
        raise ReadError("no AWS region configured: set AWS_REGION (or pass the cluster's full ARN)")
    account = aws.client("sts").get_caller_identity()["Account"]
    return cluster_arn_of(session.get_partition_for_region(region), region, account, name)


def resolve_cluster(ddb: Any, catalog_table: str, text: str) -> str:
    """``--cluster`` -> a cluster ARN (module docstring)."""
    if text.startswith("arn:"):
        if parse_cluster_arn(text) is None:
            raise ReadError(f"{text!r} is not a cluster ARN (arn:PARTITION:ecs:REGION:ACCOUNT:cluster/NAME)")
        return text
    found = matches(read_catalog(ddb, catalog_table), text)
    if len(found) == 1:
        return found[0].cluster.arn
    if len(found) > 1:
        raise ReadError(
            f"--cluster {text} matches {len(found)} clusters: {', '.join(e.cluster.path for e in found)}; "
            f"name one as ACCOUNT/REGION/NAME or by its ARN"
        )
    parts = text.strip().split("/")
    if len(parts) == 3 and all(parts):
        import boto3

        account, region, name = parts
        return cluster_arn_of(boto3.session.Session().get_partition_for_region(region), region, account, name)
    if len(parts) != 1 or not parts[0]:
        raise ReadError(
            f"--cluster {text}: no such cluster in the catalogue {catalog_table}; give ACCOUNT/REGION/NAME or the ARN"
        )
    return _own_account_arn(parts[0])


def task_counts(ddb: Any, task_table: str, cluster: str, pool: ThreadPoolExecutor) -> dict[str, int]:
    """Tasks of a cluster by status, from ``cluster-index`` with ``Select=COUNT`` (never reading the items)."""

    def count(part: str, status: str) -> tuple[int, int]:
        request = {
            "TableName": task_table,
            "IndexName": CLUSTER_INDEX.name,
            "Select": "COUNT",
            "KeyConditionExpression": "#h = :h",
            "FilterExpression": "#s = :s",
            "ExpressionAttributeNames": {"#h": CLUSTER_INDEX.hash_key, "#s": "lastStatus"},
            "ExpressionAttributeValues": {":h": {"S": part}, ":s": {"S": status}},
        }
        pages = ddb.get_paginator("query").paginate(**request)
        matched = scanned = 0
        for page in pages:
            matched += int(page.get("Count", 0))
            scanned += int(page.get("ScannedCount", 0))
        return matched, scanned

    jobs = [
        (status, pool.submit(count, part, status)) for part in cluster_parts(cluster) for status in COUNTED_STATUSES
    ]
    counts = dict.fromkeys(COUNTED_STATUSES, 0)
    total = 0
    for status, job in jobs:
        matched, scanned = job.result()
        counts[status] += matched
        if status == COUNTED_STATUSES[0]:
            total += scanned
    counts["other"] = total - sum(counts[s] for s in COUNTED_STATUSES)
    return counts


def list_clusters(
    ddb: Any, catalog_table: str, task_table: str, account: str | None = None, counts: bool = True
) -> list[dict[str, Any]]:
    entries = [e for e in read_catalog(ddb, catalog_table) if account is None or e.cluster.account == account]
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="count") as pool:
        return [
            {
                "account": e.cluster.account,
                "region": e.cluster.region,
                "name": e.cluster.name,
                "clusterArn": e.cluster.arn,
                "newestEvent": e.newest_event,
                "tasks": task_counts(ddb, task_table, e.cluster.arn, pool) if counts else {},
            }
            for e in entries
        ]


# ---------------------------------------------------------------------------------------------------- CLI
def register(subparsers: Any, common: Any) -> None:
    clusters = subparsers.add_parser(
        "clusters",
        help="list every cluster the tables know: account, region, name, ARN, newest event, tasks by status",
        description="Scan the cluster catalogue (one item per cluster, kept by the processor) and count each "
        "cluster's tasks by status on cluster-index (Select=COUNT queries; the task table is never scanned).",
    )
    clusters.add_argument("--account", metavar="ID", help="only this account's clusters")
    clusters.add_argument("--no-counts", action="store_true", help="do not count tasks (no query per cluster)")
    common(clusters)
    clusters.set_defaults(readside="clusters")

    found = subparsers.add_parser(
        "sources",
        help="per account and region: the newest event and whether it is forwarding; exit 1 for a silent one",
        description="From the cluster catalogue: per account and region, the newest event of its clusters and "
        "how long ago it was. Exit 1 when one has been silent longer than --silent-for.",
    )
    found.add_argument(
        "--silent-for",
        metavar="DURATION",
        default=DEFAULT_SILENT_FOR,
        help=f"silent longer than this (e.g. 30m, 6h, 2d) is not forwarding (default {DEFAULT_SILENT_FOR})",
    )
    found.add_argument("--account", metavar="ID", help="only this account")
    common(found)
    found.set_defaults(readside="sources")


def run(args: argparse.Namespace, ddb: Any, settings: Any, out: TextIO | None = None) -> int:
    from processor.ops import questions

    out = out or sys.stdout
    if args.readside == "clusters":
        rows = list_clusters(ddb, settings.catalog_table, settings.task_table, args.account, not args.no_counts)
        out.write(render_clusters(rows, args.output))
        return 0
    silent_for = questions.parse_duration_arg("--silent-for", args.silent_for)
    entries = [
        e for e in read_catalog(ddb, settings.catalog_table) if not args.account or e.cluster.account == args.account
    ]
    found = sources(entries, int(time.time() * 1000), silent_for.total_seconds())
    out.write(render_sources(found, args.output, args.silent_for))
    return 1 if any(not s.forwarding for s in found) else 0
