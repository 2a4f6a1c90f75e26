"""``ecs-state canary`` against moto's DynamoDB over HTTP (the real service is what users run it against): every
step answers as the real service would, and the classifier's verdict is printed for each; a table that does not
exist, or an endpoint nothing listens on, fails the canary (exit 1) with the verdict the processor would act on."""

from __future__ import annotations

import io
import socket
import uuid
from typing import Any

import pytest

from processor import aws
from processor.ops import canary, cli


@pytest.mark.parametrize("schema", [[("taskArn", "S", "HASH")], [("shardId", "S", "HASH"), ("seq", "N", "RANGE")]])
def test_every_step_answers_as_expected_and_prints_its_verdict(
    moto_server: Any, schema: list[tuple[str, ...]], capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"canary-{uuid.uuid4().hex[:8]}"
    aws.client("dynamodb").create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": a, "KeyType": k} for a, _, k in schema],
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": t} for a, t, _ in schema],
    )
    assert cli.main(["canary", "--table", name]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"endpoint {moto_server.endpoint}/ signed for us-east-1; proxy none")
    steps = [line.split(" got ")[0].split()[1] for line in lines[1:7]]
    assert steps == ["DescribeTable", "PutItem", "PutItem", "BatchGetItem", "PutItem", "DeleteItem"]
    assert all(line.startswith("PASS") for line in lines[1:7]), lines
    assert "got stale: ConditionalCheckFailedException" in lines[3] and "version 2" in lines[3]
    assert "got record: ValidationException" in lines[5]
    assert lines[-1] == "6 of 6 steps as expected"
    assert aws.client("dynamodb").scan(TableName=name)["Count"] == 0  # the one item it wrote is gone


def test_a_missing_table_or_a_dead_endpoint_fails_the_canary_with_the_verdict(
    moto_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    args = cli.build_parser().parse_args(["canary", "--table", f"missing-{uuid.uuid4().hex[:6]}"])
    assert canary.run(args, out) == 1
    assert "FAIL DescribeTable" in out.getvalue() and "transient: ResourceNotFoundException" in out.getvalue()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{port}")
    out = io.StringIO()
    assert canary.run(args, out) == 1
    assert "transient: TransportError" in out.getvalue() and "would retry it" in out.getvalue()
