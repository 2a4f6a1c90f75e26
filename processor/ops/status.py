"""``ecs-state status [--properties FILE] [--check]``: KCL's lease table, one row per shard; ``--check`` for probes.

The lease table is named by ``applicationName`` in the properties file (``--properties`` or
``$ECS_STATE_PROPERTIES``; KCL creates it when the first worker starts); ``failoverTimeMillis`` (default 10000)
comes from the same file. A row shows the lease owner, the checkpoint, the parent shards, the owner switches since
the last checkpoint, the lease counter and whether the shard is finished (checkpoint ``SHARD_END``).

``--check`` reads the table twice, ``failoverTimeMillis`` apart, and exits 1 when a shard had no live owner for
that long (the rule is in ``ops/lease_status.py``: an unfinished shard whose parents are done and whose
``leaseCounter`` did not move) or when there are no leases; it is meant for a liveness probe, which should allow
for the probe taking ``failoverTimeMillis``. Exit 0: healthy (or no ``--check``); 1: unhealthy; 2: error (no
such table, no properties, no permission). Reading the table needs ``dynamodb:Scan`` on it. It answers for the
whole application, so it suits one scheduled check, not a per-container probe (two scans per probe per task).

``--liveness`` is the per-container probe instead (``worker/liveness.py``): this worker's heartbeat files, no AWS call.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, TextIO

from processor.errors import ConfigError, ReadError
from processor.ops.lease_status import (
    DEFAULT_FAILOVER_MILLIS,
    Lease,
    by_shard,
    judge,
    lease_from_item,
    problems,
    render_status,
    to_dict,
)
from processor.ops.render import to_json


def lease_settings(path: str | None) -> tuple[str, int]:
    """(applicationName, failoverTimeMillis) from the properties file (``--properties`` or
    ``$ECS_STATE_PROPERTIES``)."""
    from processor.config import PROPERTIES_ENV, read_properties

    path = path or os.environ.get(PROPERTIES_ENV)
    if not path:
        raise ConfigError(
            f"status needs the workers' properties file (for applicationName): pass --properties or "
            f"set {PROPERTIES_ENV}"
        )
    props = read_properties(path)
    application = props.get("applicationName", "").strip()
    if not application:
        raise ConfigError(f"{path} sets no applicationName; it names KCL's lease table")
    raw = props.get("failoverTimeMillis", str(DEFAULT_FAILOVER_MILLIS)).strip()
    try:
        failover = int(raw)
    except ValueError:
        raise ConfigError(f"{path}: failoverTimeMillis = {raw!r} is not an integer") from None
    if failover <= 0:
        raise ConfigError(f"{path}: failoverTimeMillis must be positive, got {failover}")
    return application, failover


def read_leases(ddb: Any, table: str) -> dict[str, Lease]:
    try:
        pages = ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
        return by_shard(lease_from_item(item) for page in pages for item in page.get("Items", []) if "leaseKey" in item)
    except ddb.exceptions.ResourceNotFoundException:
        raise ReadError(
            f"lease table {table} does not exist: no worker with applicationName {table} has started "
            f"in this account and region"
        ) from None


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status",
        help="KCL's leases: owner, checkpoint, parents per shard; --check for a liveness probe",
        description="One row per shard from KCL's lease table (named by applicationName). --check reads it "
        "twice, failoverTimeMillis apart, and exits 1 when a shard had no live owner that long.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when an unfinished shard's lease was not renewed or taken for "
        "failoverTimeMillis (takes that long)",
    )
    parser.add_argument(
        "--liveness",
        action="store_true",
        help="the container health check of the worker on this host: exit 1 when its daemon or a "
        "shard processor is stuck (heartbeat files in $ECS_STATE_HEARTBEAT_DIR; no AWS call)",
    )
    parser.add_argument("--output", choices=("json", "table"), default="table")
    parser.add_argument(
        "--properties",
        default=None,
        metavar="PATH",
        help="the workers' KCL properties file (default: $ECS_STATE_PROPERTIES)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if args.liveness:
        from processor.worker.liveness import probe

        return probe(out=out)
    from processor.aws import client

    table, failover = lease_settings(args.properties)
    ddb = client("dynamodb")
    leases = read_leases(ddb, table)
    verdicts = None
    if args.check:
        time.sleep(failover / 1000)  # the measurement window of the rule, not a wait for a condition
        first, leases = leases, read_leases(ddb, table)
        verdicts = judge(first, leases, failover)
    out.write(
        to_json(to_dict(table, leases, verdicts)) + "\n"
        if args.output == "json"
        else render_status(table, leases, verdicts)
    )
    return 1 if verdicts is not None and problems(verdicts, leases, table) else 0
