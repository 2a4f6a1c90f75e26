"""``ecs-state canary --table SCRATCH [--region R] [--profile P]``: exercise the processor's thin DynamoDB client
against the real service, with the worker's credentials, region, endpoint, proxy and CA bundle, and print the one
classifier's verdict for each request. For users to run where the processor will run (docs/connectivity.md); nothing
here runs in the processor.

What it does, on a scratch table the user names (any key schema of string, number or binary keys; it writes and
then deletes one item with a fresh key, and touches nothing else):
1. ``DescribeTable``: the table's key schema (expected: ok);
2. ``PutItem`` of version 2 with the writer's own condition (``shard/writer.py`` ``CONDITION``): expected ok;
3. ``PutItem`` of version 1 with the same condition and ``ReturnValuesOnConditionCheckFailure=ALL_OLD``:
   expected ``ConditionalCheckFailedException`` carrying the stored item (verdict stale);
4. ``BatchGetItem`` of the key: expected the stored version 2;
5. ``PutItem`` of an invalid item (an empty string as its key, an empty set): refused by DynamoDB with
   ``ValidationException`` (verdict record): the one refusal the processor dead-letters;
6. ``DeleteItem`` of the key (clean-up).
Exit 0 when every step answered as expected, 1 otherwise (each unexpected line says what came instead); a setting
the client refuses at construction is a configuration error (exit 2).
"""

from __future__ import annotations

import argparse
import base64
import sys
import uuid
from dataclasses import dataclass
from typing import Any, Callable, TextIO

from processor.shard.dynamodb_http import DynamoDBHttp, DynamoDBTransport, Response
from processor.shard.failures import STALE, TRANSIENT, Verdict, classify
from processor.shard.writer import CONDITION


@dataclass(frozen=True)
class Step:
    name: str
    expected: str  # "ok", or the verdict kind expected
    reply: Response | None
    verdict: Verdict | None
    note: str = ""

    @property
    def passed(self) -> bool:
        got = "ok" if self.reply is not None and self.reply.ok else (self.verdict.kind if self.verdict else "?")
        return got == self.expected and not self.note.startswith("unexpected")

    def line(self) -> str:
        if self.reply is not None and self.reply.ok:
            got = "ok (HTTP 200)"
        elif self.verdict is not None:
            got = f"{self.verdict.kind}: {self.verdict.text}"
        else:
            got = "?"
        mark = "PASS" if self.passed else "FAIL"
        return f"{mark} {self.name:<34} expected {self.expected:<9} got {got}{'; ' + self.note if self.note else ''}"


def _attempt(name: str, expected: str, send: Callable[[], Response]) -> Step:
    try:
        reply = send()
    except Exception as exc:  # whatever the client raises: what the processor would do with it is the verdict
        return Step(name, expected, None, classify(exc))
    return Step(name, expected, reply, None if reply.ok else classify(reply))


def _key_value(kind: str, marker: str) -> dict[str, str]:
    if kind == "N":
        return {"N": str(uuid.UUID(marker).int % 10**30)}
    if kind == "B":
        return {"B": base64.b64encode(uuid.UUID(marker).bytes).decode()}
    return {"S": f"ecs-state-canary-{marker}"}


def run_canary(client: DynamoDBTransport, table: str) -> list[Step]:
    """The steps of the module docstring, in order; stops after DescribeTable when the table cannot be read."""
    described = _attempt("DescribeTable", "ok", lambda: client.call("DescribeTable", {"TableName": table}))
    steps = [described]
    description = described.reply.body.get("Table") if described.reply is not None and described.reply.ok else None
    if not isinstance(description, dict):
        return steps
    types = {a["AttributeName"]: a["AttributeType"] for a in description.get("AttributeDefinitions", [])}
    schema = [(k["AttributeName"], types.get(k["AttributeName"], "S")) for k in description.get("KeySchema", [])]
    marker = str(uuid.uuid4())
    key = {name: _key_value(kind, marker) for name, kind in schema}
    hash_key = schema[0][0]

    def put(version: int, **extra: Any) -> Response:
        return client.call(
            "PutItem",
            {
                "TableName": table,
                "Item": {**key, "version": {"N": str(version)}},
                "ConditionExpression": CONDITION,
                "ExpressionAttributeNames": {"#k": hash_key, "#v": "version"},
                "ExpressionAttributeValues": {":v": {"N": str(version)}, ":n": {"S": "N"}},
                **extra,
            },
        )

    steps.append(_attempt("PutItem (new, conditional)", "ok", lambda: put(2)))
    stale = _attempt("PutItem (older, ALL_OLD)", STALE, lambda: put(1, ReturnValuesOnConditionCheckFailure="ALL_OLD"))
    if stale.reply is not None and stale.verdict is not None and stale.verdict.kind == STALE:
        returned = (stale.reply.item or {}).get("version")
        note = (
            "the stored item came back (version 2)"
            if returned == {"N": "2"}
            else f"unexpected: ALL_OLD returned {returned!r}, not version 2"
        )
        stale = Step(stale.name, stale.expected, stale.reply, stale.verdict, note)
    steps.append(stale)
    got = _attempt(
        "BatchGetItem", "ok", lambda: client.call("BatchGetItem", {"RequestItems": {table: {"Keys": [key]}}})
    )
    if got.reply is not None and got.reply.ok:
        items = (got.reply.body.get("Responses") or {}).get(table) or []
        versions = [item.get("version") for item in items]
        note = "read version 2" if versions == [{"N": "2"}] else f"unexpected: read {versions!r}, not version 2"
        got = Step(got.name, got.expected, got.reply, got.verdict, note)
    steps.append(got)
    refused_key = {name: ({"S": ""} if kind == "S" else _key_value(kind, marker)) for name, kind in schema}
    refused_item = {**refused_key, "empty": {"SS": []}}  # an empty string set: DynamoDB refuses it
    steps.append(
        _attempt(
            "PutItem (invalid item)",
            "record",
            lambda: client.call("PutItem", {"TableName": table, "Item": refused_item}),
        )
    )
    steps.append(
        _attempt("DeleteItem (clean-up)", "ok", lambda: client.call("DeleteItem", {"TableName": table, "Key": key}))
    )
    return steps


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "canary",
        help="exercise the processor's DynamoDB client on a scratch table; print each verdict",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--table", required=True, help="a scratch table (one item is written, then deleted)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    with DynamoDBHttp.from_environment(region=getattr(args, "region", None), pool=1, timeout_s=10.0) as client:
        print(client.describe(), file=out)
        steps = run_canary(client, args.table)
    for step in steps:
        print(step.line(), file=out)
    failed = [step for step in steps if not step.passed]
    if any(step.verdict is not None and step.verdict.kind == TRANSIENT for step in failed):
        print(
            "a transient failure: the processor would retry it while holding the lease (docs/connectivity.md)", file=out
        )
    print(f"{len(steps) - len(failed)} of {len(steps)} steps as expected", file=out)
    return 1 if failed or len(steps) < 6 else 0
