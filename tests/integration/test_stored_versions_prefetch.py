"""The prefetch of stored versions (processor/shard/stored_versions.py) against moto's server over HTTP:
BatchGetItem in chunks of 100 keys over two tables, absent items left out, UnprocessedKeys resent, and a
request that keeps failing given up without failing anything else."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator

import pytest

from processor.core.items import Item
from processor.core.position import Position
from processor.shard.dynamodb_http import DynamoDBHttp, Response
from processor.shard.stored_versions import StoredVersions, prefetch
from workshop.testing.fault_proxy import FaultProxy, Rule

KEYS = {"task": "taskArn", "instance": "containerInstanceArn"}


def item(kind: str, arn: str, version: int) -> Item:
    return Item(
        kind,
        KEYS[kind],
        arn,
        version,
        {KEYS[kind]: {"S": arn}, "version": {"N": str(version)}},
        100,
        Position("shardId-0", "1"),
    )


@pytest.fixture
def tables(moto_server: Any) -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    names = {"task": f"pf-tasks-{suffix}", "instance": f"pf-instances-{suffix}"}
    with DynamoDBHttp.from_environment(endpoint_url=moto_server.endpoint) as client:
        for kind, name in names.items():
            assert client.call(
                "CreateTable",
                {
                    "TableName": name,
                    "BillingMode": "PAY_PER_REQUEST",
                    "KeySchema": [{"AttributeName": KEYS[kind], "KeyType": "HASH"}],
                    "AttributeDefinitions": [{"AttributeName": KEYS[kind], "AttributeType": "S"}],
                },
            ).ok
        yield names
        for name in names.values():
            client.call("DeleteTable", {"TableName": name})


@pytest.fixture
def client(moto_server: Any) -> Iterator[DynamoDBHttp]:
    with DynamoDBHttp.from_environment(endpoint_url=moto_server.endpoint) as c:
        yield c


def store(client: DynamoDBHttp, tables: dict[str, str], stored: list[Item]) -> None:
    for it in stored:
        assert client.call(
            "PutItem", {"TableName": tables[it.kind], "Item": {**it.attributes, "pad": {"S": "x" * 50}}}
        ).ok


def test_prefetch_reads_every_stored_version_in_chunks_of_100_over_both_tables(
    client: DynamoDBHttp, tables: dict[str, str]
) -> None:
    stored = [item("task", f"arn:task/{n}", n + 1) for n in range(230)] + [
        item("instance", f"arn:ci/{n}", 40 + n) for n in range(20)
    ]
    store(client, tables, stored)
    wanted = stored + [item("task", "arn:task/absent", 1)] + [item("task", "arn:task/3", 99)]  # a repeated ARN
    with ThreadPoolExecutor(4) as pool:
        got = prefetch(client, wanted, tables, pool=pool)
    assert got.requests == 3 and got.given_up == 0 and not got.errors  # 251 distinct keys: 100 + 100 + 51
    assert got.versions == {(tables[i.kind], i.arn): i.version for i in stored}
    memory = StoredVersions()
    for (table, arn), version in got.versions.items():
        memory.remember(table, arn, version)
    table = tables["task"]
    assert memory.is_stale(table, "arn:task/0", 1)
    assert not memory.is_stale(table, "arn:task/0", 2) and not memory.is_stale(table, "arn:task/absent", 1)


class HalfUnprocessed:
    """The real client, except that the first reply moves half of its keys to UnprocessedKeys: moto never
    answers with UnprocessedKeys, so this stand-in produces what DynamoDB does under load."""

    def __init__(self, client: DynamoDBHttp) -> None:
        self.client = client
        self.calls = 0

    def call(self, operation: str, request: dict[str, Any] | bytes) -> Response:
        assert operation == "BatchGetItem"  # the prefetch only reads
        self.calls += 1
        reply = self.client.call(operation, request)
        if self.calls > 1 or not isinstance(request, dict):
            return reply
        unprocessed: dict[str, Any] = {}
        responses = reply.body["Responses"]
        for table, entry in request["RequestItems"].items():
            keep = entry["Keys"][::2]
            held_back = {next(iter(k.values()))["S"] for k in entry["Keys"][1::2]}
            unprocessed[table] = {**entry, "Keys": entry["Keys"][1::2]}
            responses[table] = [
                i
                for i in responses.get(table, [])
                if next(v["S"] for name, v in i.items() if name != "version") not in held_back
            ]
            assert len(keep) + len(unprocessed[table]["Keys"]) == len(entry["Keys"])
        return Response(200, "", "", {"Responses": responses, "UnprocessedKeys": unprocessed})


def test_unprocessed_keys_are_resent_until_every_version_is_known(client: DynamoDBHttp, tables: dict[str, str]) -> None:
    stored = [item("task", f"arn:task/u{n}", n + 10) for n in range(10)]
    store(client, tables, stored)
    sleeps: list[float] = []
    getter = HalfUnprocessed(client)
    got = prefetch(getter, stored, tables, sleep=sleeps.append)
    assert getter.calls == 2 and got.requests == 2 and len(sleeps) == 1
    assert got.versions == {(tables["task"], i.arn): i.version for i in stored} and got.given_up == 0


def test_a_prefetch_that_keeps_being_throttled_gives_up_and_knows_nothing(
    moto_server: Any, tables: dict[str, str]
) -> None:
    wanted = [item("task", f"arn:task/t{n}", 1) for n in range(5)]
    with (
        FaultProxy(moto_server.endpoint, [Rule("throttle", operations=frozenset({"BatchGetItem"}))]) as proxy,
        DynamoDBHttp.from_environment(endpoint_url=proxy.endpoint) as throttled,
    ):
        got = prefetch(throttled, wanted, tables, sleep=lambda s: None, max_attempts=3)
    assert (got.requests, got.given_up, got.versions) == (3, 5, {})
    assert "ProvisionedThroughputExceededException" in got.errors[0]


def test_a_missing_table_is_not_retried_and_leaves_every_key_unknown(client: DynamoDBHttp) -> None:
    got = prefetch(
        client, [item("task", "arn:task/x", 1)], {"task": "no-such-table", "instance": "x"}, sleep=lambda s: None
    )
    assert (got.requests, got.given_up, got.versions) == (1, 1, {})
    assert "ResourceNotFoundException" in got.errors[0]
