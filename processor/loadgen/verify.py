"""``ecs-state verify``: compare the state and dead-letter tables with a producer's ground truth.

This module is the I/O side: :func:`scan` / :func:`read_tables` read the tables named by the settings (consistent,
paginated scans, attribute values decoded by boto3's ``TypeDeserializer``), :func:`verify` compares them with a
truth file by the pure :func:`processor.loadgen.compare.compare` (re-scanning while the processor catches up),
and :func:`register` / :func:`run` are the command. A run passes only on an exact match (the rules are in
:mod:`processor.loadgen.compare`); the exit code is 0 on a match, 1 on a mismatch, 2 on a bad truth file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Iterable, Mapping

from boto3.dynamodb.types import Binary, TypeDeserializer

from processor.config import Settings, load_settings
from processor.loadgen.compare import INSTANCE_KEY, TASK_KEY, Report, compare
from processor.loadgen.ground_truth import load_truth

# ------------------------------------------------------------------------------------------------------ I/O


_deserializer = TypeDeserializer()


def _plain(attr: Mapping[str, Any]) -> Any:
    """One DynamoDB attribute value -> plain Python by boto3's ``TypeDeserializer`` (numbers as ``Decimal``, which
    :func:`processor.loadgen.compare.compare` reads as int versions), except that binary comes back as ``bytes``
    rather than boto3's ``Binary`` wrapper."""
    value = _deserializer.deserialize(attr)
    return value.value if isinstance(value, Binary) else value


def scan(client: Any, table: str, attributes: list[str]) -> Iterable[dict[str, Any]]:
    """Every item of ``table``, projected to ``attributes`` (names passed as placeholders: some are reserved
    words), as plain dicts. Consistent reads, paginated."""
    names = {f"#a{i}": name for i, name in enumerate(attributes)}
    paginator = client.get_paginator("scan")
    for page in paginator.paginate(
        TableName=table, ProjectionExpression=", ".join(names), ExpressionAttributeNames=names, ConsistentRead=True
    ):
        for item in page.get("Items", []):
            yield {name: _plain(value) for name, value in item.items()}


def read_tables(
    settings: Settings, client: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    tasks = list(scan(client, settings.task_table, [TASK_KEY, "version", "lastStatus"]))
    instances = list(scan(client, settings.instance_table, [INSTANCE_KEY, "version", "status"]))
    dead = list(
        scan(
            client,
            settings.dead_letter_table,
            ["shardId", "sequenceNumber", "dataSha256", "reasonCode", "partitionKey"],
        )
    )
    return tasks, instances, dead


def verify(
    settings: Settings, truth_path: str, client: Any | None = None, wait_s: float = 0.0, interval_s: float = 2.0
) -> Report:
    """Scan the tables and compare them with the truth file; with ``wait_s`` > 0, scan again every
    ``interval_s`` until the match is exact or ``wait_s`` has passed (the processor may still be catching up)."""
    truth = load_truth(truth_path)
    if client is None:
        from processor import aws

        client = aws.client("dynamodb")
    deadline = time.monotonic() + wait_s
    while True:
        report = compare(truth, *read_tables(settings, client))
        if report.ok or time.monotonic() >= deadline:
            return report
        time.sleep(min(interval_s, max(0.0, deadline - time.monotonic())))


# ------------------------------------------------------------------------------------------------------ cli


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "verify", help="compare the state tables with a producer's ground truth", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--truth", required=True, metavar="FILE", help="truth file written by `produce --truth`")
    parser.add_argument("--properties", help="properties file with ecsState.* keys (table names)")
    parser.add_argument("--examples", type=int, default=5, help="examples shown per kind of problem")
    parser.add_argument(
        "--wait", type=float, default=0.0, metavar="S", help="re-scan until an exact match or S seconds have passed"
    )
    parser.add_argument(
        "--output", choices=("json", "table"), default="table", help="json: the full report as JSON (default table)"
    )
    parser.add_argument(
        "--json", dest="output", action="store_const", const="json", help=argparse.SUPPRESS
    )  # the old spelling, kept working
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from processor.logs import log

    settings = load_settings(args.properties)
    try:
        report = verify(settings, args.truth, wait_s=args.wait)
    except ValueError as exc:
        log("verify.bad-truth", level="ERROR", error=str(exc))
        return 2
    if args.output == "json":
        print(json.dumps(report.to_dict(), indent=1, default=str))
    else:
        print(report.render(args.examples))
    sys.stdout.flush()
    log(
        "verify.done",
        ok=report.ok,
        tasks_matched=report.tasks.matched,
        tasks_expected=report.tasks.expected,
        instances_matched=report.instances.matched,
        instances_expected=report.instances.expected,
        dead_letters_matched=report.dead_letters.matched,
        dead_letters_expected=report.dead_letters.expected,
    )
    return 0 if report.ok else 1
