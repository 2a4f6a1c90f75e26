"""The one classifier of DynamoDB failures, and the comparison of a described table with what we write (pure): the
thin client's error replies (``Response``), and any exception on the way to DynamoDB (transient whatever its type:
unknown is never the record's fault); only building the item (``building``) or DynamoDB's refusal is the record's."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError, CredentialRetrievalError

from processor.config import Settings
from processor.core.schema import table_specs
from processor.shard.dynamodb_http import Response, TransportError, TransportTimeout
from processor.shard.failures import RECORD, STALE, TRANSIENT, building, classify
from processor.shard.table_check import compare, missing_indexes


def _reply(code: str, status: int = 400) -> Response:
    return Response(status, code or f"HTTP{status}", "m", {})


@pytest.mark.parametrize(
    "failure,kind",
    [
        (_reply("ConditionalCheckFailedException"), STALE),
        (_reply("ValidationException"), RECORD),
        (_reply("SerializationException"), RECORD),
        (_reply("ProvisionedThroughputExceededException"), TRANSIENT),
        (_reply("ResourceNotFoundException"), TRANSIENT),
        (_reply("AccessDeniedException"), TRANSIENT),
        (_reply("ExpiredTokenException"), TRANSIENT),
        (_reply("SomethingNew"), TRANSIENT),
        (_reply("InternalServerError", 500), TRANSIENT),
        (_reply("", 503), TRANSIENT),
        (_reply("", 413), TRANSIENT),  # a load balancer's page: a reply we do not understand is not the record's fault
        (TransportError("PutItem", "cannot connect to http://x: refused"), TRANSIENT),
        (TransportTimeout("PutItem", "timed out (read timeout=5)"), TRANSIENT),
        (TransportError("PutItem", "reply of 12 bytes failed its CRC32 check (garbled)"), TRANSIENT),
        (ConnectionResetError(), TRANSIENT),
        # what a credential provider raises when its source answers garbage, and anything nobody anticipated
        (json.JSONDecodeError("Expecting value", "<html>", 0), TRANSIENT),
        (
            ClientError({"Error": {"Code": "InvalidIdentityToken", "Message": "m"}}, "AssumeRoleWithWebIdentity"),
            TRANSIENT,
        ),
        (CredentialRetrievalError(provider="custom-process", error_msg="exit 1"), TRANSIENT),
        (TypeError("keys must be str"), TRANSIENT),
        (ValueError("invalid literal for int()"), TRANSIENT),
        (KeyError("Credentials"), TRANSIENT),
        (RuntimeError("?"), TRANSIENT),
    ],
)
def test_each_failure_has_one_class(failure: Exception, kind: str) -> None:
    assert classify(failure).kind == kind


@pytest.mark.parametrize(
    "exc", [TypeError("keys must be str"), UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")]
)
def test_a_failure_while_building_the_item_is_the_records_fault(exc: Exception) -> None:
    assert building(exc).kind == RECORD


def test_throttling_is_marked_as_such_and_a_page_without_a_code_is_named_by_its_status() -> None:
    assert classify(_reply("ThrottlingException")).throttled
    assert classify(_reply("ProvisionedThroughputExceededException")).throttled
    assert not classify(_reply("InternalServerError", 500)).throttled
    assert classify(_reply("", 502)).code == "502" and classify(_reply("", 502)).text.startswith("502: ")


def _described(spec: dict[str, object]) -> dict[str, object]:
    return {
        k: v
        for k, v in spec.items()
        if k in ("TableName", "KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes")
    }


def test_the_tables_setup_makes_have_no_problems() -> None:
    for spec in table_specs(Settings().task_table, Settings().instance_table, Settings().dead_letter_table):
        assert compare(spec, _described(spec), "task_table") == []


def test_another_key_schema_and_an_index_of_another_type_are_errors_a_missing_read_index_only_a_warning() -> None:
    task = table_specs(Settings().task_table, Settings().instance_table, Settings().dead_letter_table)[0]
    other = {
        "TableName": task["TableName"],
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "AttributeDefinitions": [
            {"AttributeName": "id", "AttributeType": "S"},
            {"AttributeName": "version", "AttributeType": "S"},
        ],
        "GlobalSecondaryIndexes": [
            {"IndexName": "by-version", "KeySchema": [{"AttributeName": "version", "KeyType": "HASH"}]}
        ],
    }
    problems = compare(task, other, "task_table")
    assert len(problems) == 2
    assert "key schema [id HASH S], the processor writes [taskArn HASH S]" in problems[0]
    assert "keyed on version of type S" in problems[1] and "ecsState.taskTable" in problems[1]
    assert "ECSTaskState has no index cluster-index" in missing_indexes(task, other)


def test_a_table_made_by_the_documented_lambda_hash_key_only_is_adopted_with_its_indexes_missing() -> None:
    task = table_specs(Settings().task_table, Settings().instance_table, Settings().dead_letter_table)[0]
    lambdas = {
        "TableName": task["TableName"],
        "KeySchema": [{"AttributeName": "taskArn", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "taskArn", "AttributeType": "S"}],
    }
    assert compare(task, lambdas, "task_table") == []
    assert len(missing_indexes(task, lambdas)) == len(task["GlobalSecondaryIndexes"]) == 4
