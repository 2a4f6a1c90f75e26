"""``ecs-state setup`` checks everything before it changes anything (against the moto server, behind the strict
layer where DynamoDB refuses what moto accepts): a table with another key schema, or a team's index keyed on an
attribute we write with another type, is refused in one line naming the table and the fix, with nothing changed;
on a provisioned-capacity table each new index gets throughput (the table's own, or ``--index-capacity``), which
DynamoDB requires."""

from __future__ import annotations

import random
from typing import Any, Iterator

import boto3
import pytest

from processor.core.schema import INDEX_NAMES
from processor.ops.cli import main
from workshop.testing.strict_tables import StrictTables


@pytest.fixture
def strict(moto_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[StrictTables]:
    """Every DynamoDB call of the command goes through the strict layer (the standard endpoint variable)."""
    with StrictTables(moto_server.endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy.endpoint)
        yield proxy


def _properties(tmp_path: Any, task_table: str, n: int = 0, extra: str = "") -> str:
    """A properties file naming ``task_table`` and instance / dead-letter tables ``setup-i-N`` / ``setup-d-N``."""
    n = n or random.randrange(10**9)
    path = tmp_path / "setup.properties"
    path.write_text(
        f"ecsState.taskTable = {task_table}\necsState.instanceTable = setup-i-{n}\n"
        f"ecsState.deadLetterTable = setup-d-{n}\n{extra}",
        encoding="utf-8",
    )
    return str(path)


def _ddb(moto_server: Any) -> Any:
    return boto3.client("dynamodb", endpoint_url=moto_server.endpoint)


def _indexes(ddb: Any, name: str) -> dict[str, dict[str, Any]]:
    table = ddb.describe_table(TableName=name)["Table"]
    return {i["IndexName"]: i for i in table.get("GlobalSecondaryIndexes") or []}


def test_another_key_schema_is_refused_in_one_line_before_any_index_is_added(
    moto_server: Any, strict: StrictTables, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ddb, name = _ddb(moto_server), f"setup-other-{random.randrange(10**9)}"
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    assert main(["setup", "--properties", _properties(tmp_path, name)]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert f"table {name} has key schema [id HASH S], the processor writes [taskArn HASH S]" in line
    assert "ecsState.taskTable" in line and line.endswith("(nothing was changed)")
    assert _indexes(ddb, name) == {}


def test_a_teams_index_of_another_type_is_refused_before_anything_changes(
    moto_server: Any, strict: StrictTables, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ddb, name = _ddb(moto_server), f"setup-team-{random.randrange(10**9)}"
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "taskArn", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "taskArn", "AttributeType": "S"},
            {"AttributeName": "memory", "AttributeType": "N"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-memory",
                "KeySchema": [{"AttributeName": "memory", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    n = random.randrange(10**9)
    assert main(["setup", "--properties", _properties(tmp_path, name, n)]) == 2
    err = capsys.readouterr().err
    assert f"table {name} global index by-memory has memory as its HASH key of type N (number)" in err
    assert set(_indexes(ddb, name)) == {"by-memory"}
    with pytest.raises(ddb.exceptions.ResourceNotFoundException):
        ddb.describe_table(TableName=f"setup-i-{n}")  # the missing tables were not created either


def _provisioned(ddb: Any, name: str) -> None:
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "taskArn", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "taskArn", "AttributeType": "S"}],
        ProvisionedThroughput={"ReadCapacityUnits": 6, "WriteCapacityUnits": 9},
    )


def test_on_a_provisioned_table_each_new_index_gets_the_tables_own_throughput(
    moto_server: Any, strict: StrictTables, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ddb, name = _ddb(moto_server), f"setup-prov-{random.randrange(10**9)}"
    _provisioned(ddb, name)
    assert main(["setup", "--properties", _properties(tmp_path, name), "--no-wait"]) == 0
    out = capsys.readouterr().out
    assert "with 6 read and 9 write units" in out
    added = _indexes(ddb, name)
    assert added and set(added) <= set(INDEX_NAMES)
    assert {i["ProvisionedThroughput"]["ReadCapacityUnits"] for i in added.values()} == {6}
    assert strict.refused["UpdateTable"] == 0


def test_index_capacity_chooses_the_new_indexes_throughput_and_a_malformed_value_is_refused(
    moto_server: Any, strict: StrictTables, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ddb, name = _ddb(moto_server), f"setup-cap-{random.randrange(10**9)}"
    _provisioned(ddb, name)
    properties = _properties(tmp_path, name)
    with pytest.raises(SystemExit) as refused:
        main(["setup", "--properties", properties, "--index-capacity", "5"])
    assert refused.value.code == 2 and "is not R,W" in capsys.readouterr().err
    assert main(["setup", "--properties", properties, "--no-wait", "--index-capacity", "2,3"]) == 0
    added = _indexes(ddb, name).values()
    assert added and all(i["ProvisionedThroughput"]["ReadCapacityUnits"] == 2 for i in added)
    assert all(i["ProvisionedThroughput"]["WriteCapacityUnits"] == 3 for i in added)


def test_a_ttl_on_another_attribute_is_refused_before_any_index_is_added(
    moto_server: Any, strict: StrictTables, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ddb, name = _ddb(moto_server), f"setup-ttl-{random.randrange(10**9)}"
    _provisioned(ddb, name)
    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "purge_at"})
    properties = _properties(tmp_path, name, extra="ecsState.taskRetentionHours = 72\n")
    assert main(["setup", "--properties", properties]) == 2
    assert f"table {name} has TTL on purge_at, not expires_at" in capsys.readouterr().err
    assert _indexes(ddb, name) == {}
