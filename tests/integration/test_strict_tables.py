"""Table-level refusals real DynamoDB makes and moto does not (``workshop/testing/strict_tables.py`` reproduces them
in front of the moto server): each is first shown accepted by moto alone, then refused by the strict layer in
DynamoDB's words; then the processor's start-up check finds the table that would cause it before any record is
read, so a team's index of another type never turns valid records into dead letters."""

from __future__ import annotations

import random
from typing import Any, Iterator

import boto3
import pytest
from botocore.exceptions import ClientError

from processor.config import Settings
from processor.core.events import Event, decode
from processor.core.items import build_item
from processor.core.position import Position
from processor.loadgen.fleet import generate
from processor.loadgen.records import Options
from processor.ops.setup_tables import ensure_tables
from processor.shard.dynamodb_http import DynamoDBHttp
from processor.shard.table_check import table_problems
from workshop.testing.strict_tables import StrictTables


@pytest.fixture
def strict(moto_server: Any) -> Iterator[StrictTables]:
    with StrictTables(moto_server.endpoint) as proxy:
        yield proxy


def _ddb(endpoint: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=endpoint, config=boto3.session.Config(retries={"max_attempts": 1}))


def _name(prefix: str) -> str:
    return f"{prefix}-{random.randrange(10**9)}"


def _provisioned_table(ddb: Any, name: str) -> None:
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "taskArn", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "taskArn", "AttributeType": "S"}],
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 7},
    )


def _add_index(ddb: Any, name: str) -> None:
    ddb.update_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "group", "AttributeType": "S"}],
        GlobalSecondaryIndexUpdates=[
            {
                "Create": {
                    "IndexName": "by-group",
                    "KeySchema": [{"AttributeName": "group", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                }
            }
        ],
    )


def test_an_index_without_throughput_on_a_provisioned_table_is_accepted_by_moto_and_refused_by_dynamodb(
    moto_server: Any, strict: StrictTables
) -> None:
    lenient, name = _ddb(moto_server.endpoint), _name("prov")
    _provisioned_table(lenient, name)
    _add_index(lenient, name)  # moto: accepted
    other = _name("prov")
    _provisioned_table(_ddb(strict.endpoint), other)
    with pytest.raises(ClientError) as refused:
        _add_index(_ddb(strict.endpoint), other)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert refused.value.response["Error"]["Message"] == (
        "One or more parameter values were invalid: ProvisionedThroughput is not specified for index: by-group"
    )


def _task_item() -> dict[str, Any]:
    for record in generate(Options(seed=4, tasks=5, instances=1)):
        event = decode(record.data)
        if isinstance(event, Event) and event.kind == "task":
            return build_item(event, Position("shardId-000000000000", "1")).attributes
    raise AssertionError("the fleet made no task event")


def _team_table(ddb: Any, name: str) -> None:
    """A state table as a team may have made it: our key, plus their own index keying ``cpu`` as a number."""
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "taskArn", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "taskArn", "AttributeType": "S"},
            {"AttributeName": "cpu", "AttributeType": "N"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-cpu",
                "KeySchema": [{"AttributeName": "cpu", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def test_an_index_key_of_another_type_refuses_every_item_in_dynamodb_and_the_start_up_check_finds_it_first(
    moto_server: Any, strict: StrictTables
) -> None:
    name = _name("team")
    _team_table(_ddb(moto_server.endpoint), name)
    item = _task_item()
    _ddb(moto_server.endpoint).put_item(TableName=name, Item=item)  # moto: accepted
    with pytest.raises(ClientError) as refused:
        _ddb(strict.endpoint).put_item(TableName=name, Item=item)
    assert refused.value.response["Error"]["Message"] == (
        "One or more parameter values were invalid: Type mismatch for Index Key cpu Expected: N Actual: S "
        "IndexName: by-cpu"
    )
    settings = Settings(task_table=name, instance_table=_name("i"), dead_letter_table=_name("d"))
    ensure_tables(
        Settings(
            task_table=_name("unused"),
            instance_table=settings.instance_table,
            dead_letter_table=settings.dead_letter_table,
        )
    )
    with DynamoDBHttp.from_environment(endpoint_url=strict.endpoint, pool=1) as client:
        [problem] = table_problems(settings, client, sleep=lambda _: None)
    assert f"table {name} global index by-cpu has cpu as its HASH key of type N (number)" in problem
    assert "writes cpu as S (string)" in problem and "ecsState.taskTable" in problem


def test_a_put_without_the_tables_key_or_with_another_key_type_is_refused_as_dynamodb_words_it(
    strict: StrictTables,
) -> None:
    ddb, name = _ddb(strict.endpoint), _name("keys")
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
    )
    item = _task_item()
    with pytest.raises(ClientError, match="Missing the key id in the item"):
        ddb.put_item(TableName=name, Item=item)
    with pytest.raises(ClientError, match="Type mismatch for key id expected: N actual: S"):
        ddb.put_item(TableName=name, Item={**item, "id": {"S": "1"}})
    assert strict.refused["PutItem"] == 2
