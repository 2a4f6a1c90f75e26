"""The start-up check of the tables, shared by the processor's ``initialize`` and ``ecs-state run``'s preflight:
DescribeTable each of our four tables (``Settings.tables``: the cluster catalogue too) and compare it with the
schema (``core/schema.py``). The processor needs only the key schemas: a table that is missing, another key
schema, or an index keyed on an attribute the processor writes with another type (every such item would be
refused) is a configuration error, one line naming the table or setting and the fix; none found means the
processor may start. A missing table, a denied permission or credentials DynamoDB does not recognise are
configuration too (``failures.CONFIG_CODES``). A missing read index (the ones
``ecsState.readIndexes`` chooses), or one with other keys, only costs the read commands that query it: one
WARNING log line naming ``ecs-state setup``, and the processor starts (tables made by AWS's documented Lambda are
adopted as they are). Everything else the one classifier (``shard/failures.py``) calls transient (throttling, 5xx,
network, proxies, credentials that fail to refresh, any exception, a description we cannot read) is retried with
the one backoff policy (``processor/retry.py``; for ever unless ``writeRetryBudgetMillis`` is set), logging once a
minute. The client is the writer's transport (``DynamoDBTransport``: the thin ``DynamoDBHttp`` in production).
"""

from __future__ import annotations

import random
import time
from typing import Any, Callable

from processor import logs
from processor.config import Settings, property_key
from processor.core.schema import OWN_TYPES, TABLE_SETTINGS
from processor.errors import WriteFailed
from processor.retry import DYNAMODB, EveryMinute
from processor.shard.dynamodb_http import DynamoDBTransport
from processor.shard.failures import CONFIG_CODES, TRANSIENT, Failure, classify


def _keys(schema: list[dict[str, str]], types: dict[str, str]) -> list[tuple[str, str, str]]:
    return [(k["AttributeName"], k["KeyType"], types.get(k["AttributeName"], "?")) for k in schema]


def _show(keys: list[tuple[str, str, str]]) -> str:
    return ", ".join(f"{name} {kind} {typ}" for name, kind, typ in keys) or "none"


def compare(spec: dict[str, Any], table: dict[str, Any], setting: str) -> list[str]:
    """Configuration errors of one described table against its spec (pure): key schema, index key types."""
    name = spec["TableName"]
    fix = (
        f"point {property_key(setting)} at a table made by `ecs-state setup`, or create one with it "
        f"(the processor never creates tables)"
    )
    want_types = {a["AttributeName"]: a["AttributeType"] for a in spec["AttributeDefinitions"]}
    have_types = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])}
    problems = []
    want, have = _keys(spec["KeySchema"], want_types), _keys(table.get("KeySchema", []), have_types)
    if want != have:
        problems.append(f"table {name} has key schema [{_show(have)}], the processor writes [{_show(want)}]; {fix}")
    for index in [*(table.get("GlobalSecondaryIndexes") or []), *(table.get("LocalSecondaryIndexes") or [])]:
        for attr, _, typ in _keys(index["KeySchema"], have_types):
            if attr in OWN_TYPES and typ != OWN_TYPES[attr]:
                problems.append(
                    f"table {name} index {index['IndexName']} is keyed on {attr} of type {typ}, but the "
                    f"processor writes {attr} as {OWN_TYPES[attr]}: every item would be refused; {fix}"
                )
    return problems


def missing_indexes(spec: dict[str, Any], table: dict[str, Any]) -> list[str]:
    """The spec's read indexes that the described table lacks or has with other keys (pure): each costs only the
    read commands that query it."""
    want_types = {a["AttributeName"]: a["AttributeType"] for a in spec["AttributeDefinitions"]}
    have_types = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])}
    indexes = {i["IndexName"]: i for i in table.get("GlobalSecondaryIndexes", []) or []}
    missing = []
    for index in spec.get("GlobalSecondaryIndexes", []):
        got = indexes.get(index["IndexName"])
        want_index = _keys(index["KeySchema"], want_types)
        if got is None:
            missing.append(f"{spec['TableName']} has no index {index['IndexName']}")
        elif _keys(got["KeySchema"], have_types) != want_index:
            missing.append(
                f"{spec['TableName']} index {index['IndexName']} has keys "
                f"[{_show(_keys(got['KeySchema'], have_types))}], not [{_show(want_index)}]"
            )
    return missing


def describe(
    client: DynamoDBTransport,
    name: str,
    setting: str,
    settings: Settings,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> dict[str, Any] | list[str]:
    """DescribeTable, retrying transient failures: the table's description, or its problems (configuration)."""
    started, attempt, retrying_log = clock(), 0, EveryMinute(clock=clock)
    budget_s = settings.write_retry_budget_millis / 1000
    while True:
        attempt += 1
        failure: Failure
        try:
            reply = client.call("DescribeTable", {"TableName": name})
            if reply.ok:
                table = reply.body.get("Table")
                if not isinstance(table, dict):
                    raise TypeError(f"DescribeTable's reply holds no table: {str(reply.body)[:100]}")
                return table
            failure = reply
        except Exception as exc:  # whatever the type (credentials, network, a reply not understood): transient
            failure = exc
        verdict = classify(failure)
        code = verdict.code
        if code == "ResourceNotFoundException":
            return [
                (
                    f"table {name} does not exist; create it with `ecs-state setup --properties FILE`, or set "
                    f"{property_key(setting)} to the right name"
                )
            ]
        if code in CONFIG_CODES:
            return [
                (
                    f"table {name}: {verdict.text}; give the worker dynamodb:DescribeTable, PutItem on it "
                    f"(deploy/ecs-state.yaml WorkerPolicy) and valid credentials"
                )
            ]
        if verdict.kind != TRANSIENT:
            return [f"table {name}: DescribeTable failed: {verdict.text}"]
        if budget_s and clock() - started > budget_s:
            raise WriteFailed(f"DescribeTable {name}: still failing after {attempt} attempts ({verdict.text})")
        if retrying_log.due():
            logs.log(
                "startup_retrying",
                level="WARNING",
                table=name,
                cause=verdict.text,
                attempt=attempt,
                action="retrying the start-up check of the tables; check DynamoDB's endpoint and "
                "availability, proxies (HTTPS_PROXY / NO_PROXY) and the worker's credentials",
            )
        sleep(DYNAMODB.delay(attempt, rng))


def table_problems(settings: Settings, client: DynamoDBTransport, **retry: Any) -> list[str]:
    """Every configuration error of our four tables, one line each (empty: the processor may start). Missing
    read indexes are logged as one WARNING line naming ``ecs-state setup``, not returned."""
    problems: list[str] = []
    missing: list[str] = []
    for kind, spec in settings.tables():
        table = describe(client, spec["TableName"], TABLE_SETTINGS[kind], settings, **retry)
        if isinstance(table, list):
            problems += table
        else:
            problems += compare(spec, table, TABLE_SETTINGS[kind])
            missing += missing_indexes(spec, table)
    if missing and not problems:
        logs.log(
            "read_indexes_missing",
            level="WARNING",
            missing=missing,
            action="the processor writes as usual; the read commands that query these indexes fail until "
            "`ecs-state setup --properties FILE` adds them (online), or choose the indexes with "
            "ecsState.readIndexes",
        )
    return problems
