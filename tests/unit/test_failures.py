"""The one classifier of DynamoDB failures, and the comparison of a described table with what we write (pure): the
thin client's error replies (``Response``), and any exception on the way to DynamoDB (transient whatever its type:
unknown is never the record's fault); only DynamoDB's refusal of one item, by its message from a closed list, is the
record's: a ValidationException about the table never is."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError, CredentialRetrievalError

from processor.config import Settings
from processor.core.schema import table_specs
from processor.shard.dynamodb_http import Response, TransportError, TransportTimeout
from processor.shard.failures import RECORD, STALE, TRANSIENT, classify
from processor.shard.table_check import compare, missing_indexes


def _reply(code: str, status: int = 400, message: str = "m") -> Response:
    return Response(status, code or f"HTTP{status}", message, {})


@pytest.mark.parametrize(
    "failure,kind",
    [
        (_reply("ConditionalCheckFailedException"), STALE),
        (_reply("ValidationException"), TRANSIENT),  # a message not on the closed list: not proven the record's
        (_reply("SerializationException"), TRANSIENT),  # our request's shape: a bug, never one record's fault
        (_reply("ItemCollectionSizeLimitExceededException"), TRANSIENT),
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


#: DynamoDB's refusals of one item, as it words them (sources in docs/field-notes.md, "DynamoDB refusals")
ITEM_REFUSED = [
    "Item size has exceeded the maximum allowed size",
    "Number overflow. Attempting to store a number with magnitude larger than supported range",
    "Number underflow. Attempting to store a number with magnitude smaller than supported range",
    "Attempting to store more than 38 significant digits in a Number",
    "The parameter cannot be converted to a numeric value",
    "One or more parameter values were invalid: An AttributeValue may not contain an empty string",
    "One or more parameter values are not valid. A value specified for a secondary index key is not supported. The "
    "AttributeValue for a key attribute cannot contain an empty string value. IndexName: by-group, IndexKey: group",
    "One or more parameter values were invalid: Size of hashkey has exceeded the maximum size limit of2048 bytes",
    "One or more parameter values were invalid: Aggregated size of all range keys has exceeded the size limit of "
    "1024 bytes",
    "1 validation error detected: One or more parameter values were invalid: An string set  may not be empty",
    "Nested levels have exceeded supported limits",
]
#: DynamoDB's ValidationExceptions about the table: every item would get them, so none is the record's fault
TABLE_REFUSED = [
    "One or more parameter values were invalid: Type mismatch for Index Key cpu Expected: N Actual: S IndexName: "
    "by-cpu",
    "One or more parameter values were invalid: Type mismatch for key taskArn expected: N actual: S",
    "One or more parameter values were invalid: Missing the key id in the item",
    "The provided key element does not match the schema",
    "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes",
    "something DynamoDB may say one day",
]


@pytest.mark.parametrize("message", ITEM_REFUSED)
def test_dynamodb_refusing_one_item_for_what_it_holds_is_the_records_fault(message: str) -> None:
    assert classify(_reply("ValidationException", message=message)).kind == RECORD


@pytest.mark.parametrize("message", TABLE_REFUSED)
def test_a_validation_exception_about_the_table_is_transient_and_names_a_fix(message: str) -> None:
    verdict = classify(_reply("ValidationException", message=message))
    assert verdict.kind == TRANSIENT and verdict.fix and not verdict.throttled


def test_an_index_type_mismatch_names_the_index_fix_and_a_key_mismatch_the_key_schema_fix() -> None:
    index = classify(_reply("ValidationException", message=TABLE_REFUSED[0])).fix
    key = classify(_reply("ValidationException", message=TABLE_REFUSED[1])).fix
    assert "index" in index and "key schema" in key


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
    assert "index by-version has version as its HASH key of type S (string)" in problems[1]
    assert "writes version as N (number)" in problems[1] and "ecsState.taskTable" in problems[1]
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


def test_every_index_of_the_table_a_teams_global_or_local_is_checked_against_the_types_the_processor_writes() -> None:
    """ECS sends ``cpu`` and ``memory`` as strings: a team's index keying them as numbers would make DynamoDB refuse
    every task item; an index on an attribute we never write, or one declared with our type, is fine."""
    task = table_specs(Settings().task_table, Settings().instance_table, Settings().dead_letter_table)[0]
    adopted = {
        "TableName": task["TableName"],
        "KeySchema": [{"AttributeName": "taskArn", "KeyType": "HASH"}],
        "AttributeDefinitions": [
            {"AttributeName": "taskArn", "AttributeType": "S"},
            {"AttributeName": "cpu", "AttributeType": "N"},
            {"AttributeName": "team", "AttributeType": "N"},
            {"AttributeName": "group", "AttributeType": "S"},
            {"AttributeName": "createdAt", "AttributeType": "N"},
        ],
        "GlobalSecondaryIndexes": [
            {"IndexName": "by-cpu", "KeySchema": [{"AttributeName": "cpu", "KeyType": "HASH"}]},
            {"IndexName": "by-team", "KeySchema": [{"AttributeName": "team", "KeyType": "HASH"}]},
            {"IndexName": "by-group", "KeySchema": [{"AttributeName": "group", "KeyType": "HASH"}]},
        ],
        "LocalSecondaryIndexes": [
            {
                "IndexName": "by-created",
                "KeySchema": [
                    {"AttributeName": "taskArn", "KeyType": "HASH"},
                    {"AttributeName": "createdAt", "KeyType": "RANGE"},
                ],
            }
        ],
    }
    cpu, created = compare(task, adopted, "task_table")
    assert "global index by-cpu has cpu as its HASH key of type N (number)" in cpu
    assert "writes cpu as S (string)" in cpu and "Delete" in cpu and "ECSTaskState" in cpu
    assert "local index by-created has createdAt as its RANGE key of type N (number)" in created
    assert "cannot be dropped" in created and "ecsState.taskTable" in created


def test_a_dead_letter_table_index_is_checked_against_the_dead_letter_items_types() -> None:
    spec = table_specs("t", "i", "dl")[2]
    described = {
        **_described(spec),
        "AttributeDefinitions": [*spec["AttributeDefinitions"], {"AttributeName": "receivedAt", "AttributeType": "N"}],
        "GlobalSecondaryIndexes": [
            {"IndexName": "by-time", "KeySchema": [{"AttributeName": "receivedAt", "KeyType": "HASH"}]}
        ],
    }
    [problem] = compare(spec, described, "dead_letter_table")
    assert "table dl global index by-time" in problem and "ecsState.deadLetterTable" in problem
