"""The thin DynamoDB client (processor/shard/dynamodb_http.py) against moto's server over HTTP, behind the fault
proxy for throttling, 5xx, resets and silence, and against a closed port. DynamoDB errors are Responses; no
reply at all is a TransportError saying whether the request may have been applied."""

from __future__ import annotations

import gzip
import http.server
import json
import socket
import threading
import uuid
import zlib
from typing import Any, Iterator

import pytest

from processor.errors import ConfigError, EcsStateError
from processor.shard.dynamodb_http import DynamoDBHttp, TransportError, TransportTimeout, serialise
from processor.shard.failures import STALE, TRANSIENT, classify
from workshop.testing.fault_proxy import FaultProxy, Rule

CONDITION = "attribute_not_exists(#k) OR #v < :v"


@pytest.fixture
def table(moto_server: Any) -> Iterator[str]:
    name = f"thin-{uuid.uuid4().hex[:8]}"
    with DynamoDBHttp.from_environment(endpoint_url=moto_server.endpoint) as client:
        created = client.call(
            "CreateTable",
            {
                "TableName": name,
                "BillingMode": "PAY_PER_REQUEST",
                "KeySchema": [{"AttributeName": "taskArn", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "taskArn", "AttributeType": "S"}],
            },
        )
        assert created.ok, created
        yield name
        client.call("DeleteTable", {"TableName": name})


@pytest.fixture
def client(moto_server: Any) -> Iterator[DynamoDBHttp]:
    with DynamoDBHttp.from_environment(endpoint_url=moto_server.endpoint, timeout_s=2.0) as c:
        yield c


def put(table: str, arn: str, version: int, **extra: Any) -> dict[str, Any]:
    return {
        "TableName": table,
        "ConditionExpression": CONDITION,
        "Item": {
            "taskArn": {"S": arn},
            "version": {"N": str(version)},
            "lastStatus": {"S": "RUNNING"},
            "containers": {"L": [{"M": {"name": {"S": "web"}, "cpu": {"N": "256"}}}]},
            "blob": {"B": b"\x00\x01zlib"},
        },
        "ExpressionAttributeNames": {"#k": "taskArn", "#v": "version"},
        "ExpressionAttributeValues": {":v": {"N": str(version)}},
        **extra,
    }


def test_a_conditional_put_succeeds_then_a_stale_one_fails_with_the_stored_item(
    client: DynamoDBHttp, table: str
) -> None:
    ok = client.call("PutItem", put(table, "arn:task/1", 5))
    assert (ok.status, ok.code, ok.ok, ok.body) == (200, "", True, {})
    stale = client.call("PutItem", put(table, "arn:task/1", 4, ReturnValuesOnConditionCheckFailure="ALL_OLD"))
    assert (stale.status, stale.code, stale.condition_failed, classify(stale).kind) == (
        400,
        "ConditionalCheckFailedException",
        True,
        STALE,
    )
    assert stale.item is not None and stale.item["version"] == {"N": "5"}
    assert stale.item["blob"] == {"B": "AAF6bGli"}  # base64 of the bytes sent
    assert client.call("PutItem", serialise(put(table, "arn:task/1", 6))).ok  # a body serialised once, sent as bytes


def test_a_pipeline_of_puts_gets_each_its_own_response(client: DynamoDBHttp, table: str) -> None:
    assert client.call("PutItem", put(table, "arn:task/p0", 9)).ok
    extra = {"ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
    bodies = [serialise(put(table, f"arn:task/p{n}", 5, **extra)) for n in range(12)]
    requests = iter(enumerate(bodies))
    outcomes: dict[Any, Any] = {}
    client.pipeline("PutItem", lambda: next(requests, None), outcomes.__setitem__, 4)
    assert sorted(outcomes) == list(range(12))
    assert outcomes[0].condition_failed and outcomes[0].item["version"] == {"N": "9"}  # a newer one was stored
    assert all(outcomes[n].ok for n in range(1, 12))


def test_a_reset_in_a_pipeline_is_a_transport_error_for_that_put_only(moto_server: Any, table: str) -> None:
    with (
        FaultProxy(moto_server.endpoint, [Rule("reset", operations=frozenset({"PutItem"}), limit=1)]) as proxy,
        DynamoDBHttp.from_environment(endpoint_url=proxy.endpoint, pool=3) as client,
    ):
        requests = iter((n, serialise(put(table, f"arn:task/q{n}", 1))) for n in range(6))
        outcomes: dict[Any, Any] = {}
        client.pipeline("PutItem", lambda: next(requests, None), outcomes.__setitem__, 3)
    failed = [n for n, outcome in outcomes.items() if isinstance(outcome, Exception)]
    assert sorted(outcomes) == list(range(6)) and len(failed) == 1
    assert isinstance(outcomes[failed[0]], TransportError) and not isinstance(outcomes[failed[0]], TransportTimeout)
    assert all(outcomes[n].ok for n in outcomes if n not in failed)


def test_an_invalid_item_is_a_validation_response_not_an_exception(client: DynamoDBHttp, table: str) -> None:
    bad = client.call("PutItem", {"TableName": table, "Item": {"taskArn": {"S": ""}}})
    assert (bad.status, bad.code, classify(bad).kind) == (400, "ValidationException", "record")
    assert bad.message and "ValidationException" in bad.describe()


def test_batch_get_reads_projected_versions_and_describe_table_reads_the_schema(
    client: DynamoDBHttp, table: str
) -> None:
    for n in range(3):
        assert client.call("PutItem", put(table, f"arn:task/b{n}", n + 1)).ok
    got = client.call(
        "BatchGetItem",
        {
            "RequestItems": {
                table: {
                    "Keys": [{"taskArn": {"S": f"arn:task/b{n}"}} for n in range(4)],
                    "ProjectionExpression": "#k, #v",
                    "ExpressionAttributeNames": {"#k": "taskArn", "#v": "version"},
                }
            }
        },
    )
    assert got.ok
    items = sorted((i["taskArn"]["S"], i["version"]["N"]) for i in got.body["Responses"][table])
    assert items == [("arn:task/b0", "1"), ("arn:task/b1", "2"), ("arn:task/b2", "3")]
    described = client.call("DescribeTable", {"TableName": table})
    assert described.ok and described.body["Table"]["KeySchema"][0]["AttributeName"] == "taskArn"
    missing = client.call("DescribeTable", {"TableName": "no-such-table"})
    assert (missing.status, missing.code) == (400, "ResourceNotFoundException")


@pytest.mark.parametrize(
    "kind,status,code,throttled",
    [
        ("throttle", 400, "ProvisionedThroughputExceededException", True),
        ("throttling", 400, "ThrottlingException", True),
        ("internal", 500, "InternalServerError", False),
        ("unavailable", 503, "ServiceUnavailable", False),
    ],
)
def test_throttling_and_5xx_from_the_fault_proxy_are_transient_responses(
    moto_server: Any, table: str, kind: str, status: int, code: str, throttled: bool
) -> None:
    with (
        FaultProxy(moto_server.endpoint, [Rule(kind, operations=frozenset({"PutItem"}), limit=1)]) as proxy,
        DynamoDBHttp.from_environment(endpoint_url=proxy.endpoint) as client,
    ):
        first = client.call("PutItem", put(table, "arn:task/f", 1))
        verdict = classify(first)
        assert (first.status, first.code, verdict.kind, verdict.throttled) == (status, code, TRANSIENT, throttled)
        assert client.call("PutItem", put(table, "arn:task/f", 1)).ok  # the retry gets through, on the same connection
        assert client.connections_opened == 1


def test_a_reset_and_a_silent_server_raise_transport_errors_that_may_have_applied(moto_server: Any, table: str) -> None:
    rules = [Rule("reset", limit=1), Rule("slow", delay_s=3.0, forward=True, limit=1)]
    with (
        FaultProxy(moto_server.endpoint, rules) as proxy,
        DynamoDBHttp.from_environment(endpoint_url=proxy.endpoint, timeout_s=0.5) as client,
    ):
        with pytest.raises(TransportError) as reset:
            client.call("PutItem", put(table, "arn:task/r", 1))
        assert not isinstance(reset.value, TransportTimeout)
        with pytest.raises(TransportTimeout) as slow:
            client.call("PutItem", put(table, "arn:task/r", 1))
        assert isinstance(slow.value, EcsStateError)
        assert "PutItem" in str(slow.value)


def test_a_closed_port_is_a_transport_error_that_cannot_have_applied() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TransportError) as info:
        DynamoDBHttp.from_environment(endpoint_url=f"http://127.0.0.1:{port}").call("DescribeTable", {"TableName": "t"})
    assert "cannot connect" in str(info.value)


class _Canned(http.server.BaseHTTPRequestHandler):
    """Answers every POST with the server's canned reply: moto never returns UnprocessedKeys or a garbled body,
    so those two replies are canned here (the only stand-in in this file)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.asked.append(dict(self.headers))  # type: ignore[attr-defined]
        status, headers, body = self.server.reply  # type: ignore[attr-defined]
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def canned() -> Iterator[tuple[Any, str]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    server.asked = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_unprocessed_keys_come_back_in_the_body_and_a_garbled_reply_is_a_transport_error(canned: Any) -> None:
    server, endpoint = canned
    keys = {"t": {"Keys": [{"taskArn": {"S": "arn:task/u"}}]}}
    server.reply = (200, {}, json.dumps({"Responses": {"t": []}, "UnprocessedKeys": keys}).encode())
    client = DynamoDBHttp.from_environment(endpoint_url=endpoint)
    got = client.call("BatchGetItem", {"RequestItems": keys})
    assert got.ok and got.body["UnprocessedKeys"] == keys
    server.reply = (200, {"x-amz-crc32": "12345"}, b"{}")
    with pytest.raises(TransportError, match="CRC32"):
        client.call("BatchGetItem", {"RequestItems": keys})


def test_identity_encoding_is_asked_for_and_a_gzip_reply_is_still_read_as_the_applied_write(canned: Any) -> None:
    """(before: no Accept-Encoding, and a gzip'd 200 was 'not JSON': retried for ever although applied)"""
    server, endpoint = canned
    body = json.dumps({"Attributes": {"version": {"N": "3"}}}).encode()
    wire = gzip.compress(body)
    server.reply = (200, {"Content-Encoding": "gzip", "x-amz-crc32": str(zlib.crc32(wire))}, wire)
    client = DynamoDBHttp.from_environment(endpoint_url=endpoint)
    got = client.call("PutItem", {"TableName": "t", "Item": {}})
    assert got.ok and got.item == {"version": {"N": "3"}}
    assert server.asked[0]["Accept-Encoding"] == "identity"
    server.reply = (200, {"Content-Encoding": "br"}, b"\x0b\x02\x80{}\x03")
    with pytest.raises(TransportError, match="encoding"):
        client.call("PutItem", {"TableName": "t", "Item": {}})


def test_user_info_in_the_endpoint_url_is_never_shown_in_settings_or_errors() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there
    client = DynamoDBHttp.from_environment(endpoint_url=f"http://ecs:s3cret@127.0.0.1:{port}")
    assert client.endpoint_url == f"http://***@127.0.0.1:{port}/" and "s3cret" not in client.describe()
    with pytest.raises(TransportError) as down:
        client.call("DescribeTable", {"TableName": "t"})
    assert "cannot connect" in str(down.value) and "s3cret" not in str(down.value)
    with pytest.raises(ConfigError) as refused:
        DynamoDBHttp.from_environment(endpoint_url="ftp://ecs:s3cret@127.0.0.1:1")
    assert "s3cret" not in str(refused.value)
