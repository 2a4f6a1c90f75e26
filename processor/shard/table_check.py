"""The start-up check of the tables, shared by the processor's ``initialize`` and ``ecs-state run``'s preflight:
DescribeTable each of our three tables and compare it with what the processor writes (``core/schema.py``
``table_specs``). Every problem is one line naming the table or setting and the fix; none found means the
processor may start. A table that is missing, another key schema, a missing index or an index keyed on one of our
attributes with another type is a configuration error: found here, before any record, instead of turning every
event into a dead letter. A missing table, a denied permission or credentials DynamoDB does not recognise are
configuration too (``failures.CONFIG_CODES``). Everything else the one classifier (``shard/failures.py``) calls
transient (throttling, 5xx, network, proxies, credentials that fail to refresh, any exception, a description we
cannot read) is retried with the one backoff policy (``processor/retry.py``; for ever unless
``writeRetryBudgetMillis`` is set), logging once a minute. The client is the writer's transport
(``DynamoDBTransport``: the thin ``DynamoDBHttp`` in production).
"""

from __future__ import annotations

import random
import time
from typing import Any, Callable

from processor import logs
from processor.config import Settings, property_key
from processor.core.schema import table_specs
from processor.errors import WriteFailed
from processor.retry import DYNAMODB, EveryMinute
from processor.shard.dynamodb_http import DynamoDBTransport
from processor.shard.failures import CONFIG_CODES, TRANSIENT, Failure, classify

#: the type of every attribute the processor itself writes (detail fields have whatever type the event has)
OWN_TYPES = {"taskArn": "S", "containerInstanceArn": "S", "clusterArn": "S", "lastStatus": "S", "version": "N",
             "cw_version": "S", "event_id": "S", "event_time": "S", "kinesis_shard_id": "S",
             "kinesis_sequence_number": "S", "kinesis_subsequence_number": "N", "expires_at": "N",
             "shardId": "S", "sequenceNumber": "S", "reasonCode": "S", "partitionKey": "S"}
_SETTING = {0: "task_table", 1: "instance_table", 2: "dead_letter_table"}


def _keys(schema: list[dict[str, str]], types: dict[str, str]) -> list[tuple[str, str, str]]:
    return [(k["AttributeName"], k["KeyType"], types.get(k["AttributeName"], "?")) for k in schema]


def _show(keys: list[tuple[str, str, str]]) -> str:
    return ", ".join(f"{name} {kind} {typ}" for name, kind, typ in keys) or "none"


def compare(spec: dict[str, Any], table: dict[str, Any], setting: str) -> list[str]:
    """Problems of one described table against the spec it must match (pure)."""
    name = spec["TableName"]
    fix = (f"point {property_key(setting)} at a table made by `ecs-state setup`, or create one with it "
           f"(the processor never creates tables)")
    want_types = {a["AttributeName"]: a["AttributeType"] for a in spec["AttributeDefinitions"]}
    have_types = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])}
    problems = []
    want, have = _keys(spec["KeySchema"], want_types), _keys(table.get("KeySchema", []), have_types)
    if want != have:
        problems.append(f"table {name} has key schema [{_show(have)}], the processor writes [{_show(want)}]; {fix}")
    indexes = {i["IndexName"]: i for i in table.get("GlobalSecondaryIndexes", []) or []}
    for index in spec.get("GlobalSecondaryIndexes", []):
        got = indexes.get(index["IndexName"])
        want_index = _keys(index["KeySchema"], want_types)
        if got is None:
            problems.append(f"table {name} has no index {index['IndexName']} [{_show(want_index)}] (ecs-state tasks "
                            f"reads it); {fix}")
        elif _keys(got["KeySchema"], have_types) != want_index:
            problems.append(f"table {name} index {index['IndexName']} has keys [{_show(_keys(got['KeySchema'], have_types))}]"
                            f", the processor writes [{_show(want_index)}]; {fix}")
    for index in [*(table.get("GlobalSecondaryIndexes") or []), *(table.get("LocalSecondaryIndexes") or [])]:
        for attr, _, typ in _keys(index["KeySchema"], have_types):
            if attr in OWN_TYPES and typ != OWN_TYPES[attr]:
                problems.append(f"table {name} index {index['IndexName']} is keyed on {attr} of type {typ}, but the "
                                f"processor writes {attr} as {OWN_TYPES[attr]}: every item would be refused; {fix}")
    return problems


def check_table(client: DynamoDBTransport, spec: dict[str, Any], setting: str, settings: Settings, *,
                sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                rng: random.Random | None = None) -> list[str]:
    """DescribeTable and compare, retrying transient failures; the problems of one table (empty: none)."""
    name = spec["TableName"]
    started, attempt, retrying_log = clock(), 0, EveryMinute(clock=clock)
    budget_s = settings.write_retry_budget_millis / 1000
    while True:
        attempt += 1
        failure: Failure
        try:
            reply = client.describe_table(name)
            if reply.ok:
                table = reply.body.get("Table")
                if not isinstance(table, dict):
                    raise TypeError(f"DescribeTable's reply holds no table: {str(reply.body)[:100]}")
                return compare(spec, table, setting)
            failure = reply
        except Exception as exc:  # whatever the type (credentials, network, a reply not understood): transient
            failure = exc
        verdict = classify(failure)
        code = verdict.code
        if code == "ResourceNotFoundException":
            return [(f"table {name} does not exist; create it with `ecs-state setup --properties FILE`, or set "
                     f"{property_key(setting)} to the right name")]
        if code in CONFIG_CODES:
            return [(f"table {name}: {verdict.text}; give the worker dynamodb:DescribeTable, PutItem on it "
                     f"(deploy/ecs-state.yaml WorkerPolicy) and valid credentials")]
        if verdict.kind != TRANSIENT:
            return [f"table {name}: DescribeTable failed: {verdict.text}"]
        if budget_s and clock() - started > budget_s:
            raise WriteFailed(f"DescribeTable {name}: still failing after {attempt} attempts ({verdict.text})")
        if retrying_log.due():
            logs.log("startup_retrying", level="WARNING", table=name, cause=verdict.text, attempt=attempt,
                     action="retrying the start-up check of the tables; check DynamoDB's endpoint and "
                            "availability, proxies (HTTPS_PROXY / NO_PROXY) and the worker's credentials")
        sleep(DYNAMODB.delay(attempt, rng))


def table_problems(settings: Settings, client: DynamoDBTransport, **retry: Any) -> list[str]:
    """Every problem with our three tables, one line each (empty: the processor may start)."""
    problems: list[str] = []
    for n, spec in enumerate(table_specs(settings.task_table, settings.instance_table, settings.dead_letter_table)):
        problems += check_table(client, spec, _SETTING[n], settings, **retry)
    return problems
