"""The one classifier of DynamoDB failures, and the comparison of a described table with what we write (pure)."""

from __future__ import annotations

import pytest
from botocore.exceptions import EndpointConnectionError, ParamValidationError, ReadTimeoutError

from processor.config import Settings
from processor.ops.setup_tables import table_specs
from processor.shard.failures import RECORD, STALE, TRANSIENT, classify
from processor.shard.table_check import compare


def _client_error(code: str, status: int = 400) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "PutItem")


@pytest.mark.parametrize("exc,kind", [
    (_client_error("ConditionalCheckFailedException"), STALE),
    (_client_error("ValidationException"), RECORD),
    (TypeError("keys must be str"), RECORD),
    (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), RECORD),
    (ParamValidationError(report="bad"), RECORD),
    (_client_error("ProvisionedThroughputExceededException"), TRANSIENT),
    (_client_error("ResourceNotFoundException"), TRANSIENT),
    (_client_error("AccessDeniedException"), TRANSIENT),
    (_client_error("SomethingNew"), TRANSIENT),
    (_client_error("", 503), TRANSIENT),
    (EndpointConnectionError(endpoint_url="http://x"), TRANSIENT),
    (ReadTimeoutError(endpoint_url="http://x"), TRANSIENT),
    (ConnectionResetError(), TRANSIENT),
])
def test_each_failure_has_one_class(exc: Exception, kind: str) -> None:
    assert classify(exc).kind == kind


def test_throttling_is_marked_as_such() -> None:
    assert classify(_client_error("ThrottlingException")).throttled
    assert not classify(_client_error("InternalServerError", 500)).throttled


def _described(spec: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in spec.items() if k in ("TableName", "KeySchema", "AttributeDefinitions",
                                                    "GlobalSecondaryIndexes")}


def test_the_tables_setup_makes_have_no_problems() -> None:
    for spec in table_specs(Settings()):
        assert compare(spec, _described(spec), "task_table") == []


def test_another_key_schema_a_missing_index_and_an_index_of_another_type_are_named() -> None:
    task = table_specs(Settings())[0]
    other = {"TableName": task["TableName"], "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
             "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"},
                                      {"AttributeName": "version", "AttributeType": "S"}],
             "GlobalSecondaryIndexes": [{"IndexName": "by-version",
                                         "KeySchema": [{"AttributeName": "version", "KeyType": "HASH"}]}]}
    problems = compare(task, other, "task_table")
    assert len(problems) == 3
    assert "key schema [id HASH S], the processor writes [taskArn HASH S]" in problems[0]
    assert "no index clusterArn-lastStatus-index" in problems[1]
    assert "keyed on version of type S" in problems[2] and "ecsState.taskTable" in problems[2]
