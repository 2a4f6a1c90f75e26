"""The fault proxy itself, seen by a boto3 client the way the processor sees it (``AWS_ENDPOINT_URL_DYNAMODB``)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any, Iterator

import boto3
import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

from processor import aws
from workshop.local.stack import free_port
from workshop.testing.fault_proxy import FaultProxy, Rule

TIMEOUT_S = 1.0  # the client's read timeout (roomy for a loaded machine); slow faults delay past it


@pytest.fixture()
def table(moto_server: Any) -> str:
    name = f"faults-{random.randrange(10**9)}"
    direct().create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


@pytest.fixture()
def proxy(moto_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    with FaultProxy(moto_server.endpoint, seed=7, record=True) as p:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", p.endpoint)
        yield p


def client() -> Any:
    """Like the processor's writer client: botocore's own retries off, so every fault reaches the caller."""
    return aws.client("dynamodb", botocore_retries=1, timeout=TIMEOUT_S)


def direct() -> Any:
    """Straight to moto (the session's AWS_ENDPOINT_URL), bypassing the proxy: what is really stored."""
    return boto3.session.Session().client("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL"])


def put(c: Any, table: str, key: str) -> None:
    c.put_item(TableName=table, Item={"k": {"S": key}})


def stored(table: str, key: str) -> bool:
    return "Item" in direct().get_item(TableName=table, Key={"k": {"S": key}})


def test_client_reaches_the_proxy_through_the_standard_variable(proxy: FaultProxy, table: str) -> None:
    c = client()
    assert c.meta.endpoint_url == proxy.endpoint
    for i in range(20):
        put(c, table, f"k{i}")
    assert c.get_item(TableName=table, Key={"k": {"S": "k3"}})["Item"]["k"] == {"S": "k3"}
    counts = proxy.counts()
    assert counts["requests"] == counts["forwarded"] == 21
    assert counts["connections"] == 1  # keep-alive: one connection for all sequential requests
    assert proxy.counts_by_operation() == {"PutItem": {"forwarded": 20}, "GetItem": {"forwarded": 1}}


@pytest.mark.parametrize(
    "kind,code,status",
    [
        ("throttle", "ProvisionedThroughputExceededException", 400),
        ("throttling", "ThrottlingException", 400),
        ("internal", "InternalServerError", 500),
        ("unavailable", "ServiceUnavailable", 503),
    ],
)
def test_error_replies_are_dynamodb_errors_and_keep_the_connection(
    proxy: FaultProxy, table: str, kind: str, code: str, status: int
) -> None:
    c = client()
    put(c, table, "before")
    proxy.set_rules([Rule(kind, operations=frozenset({"PutItem"}), limit=2)])
    for _ in range(2):
        with pytest.raises(ClientError) as info:
            put(c, table, "faulted")
        assert info.value.response["Error"]["Code"] == code
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    put(c, table, "after")  # the limit is reached: forwarded again
    assert not stored(table, "faulted") and stored(table, "after")
    assert proxy.counts()[kind] == 2 and proxy.injected() == 2
    assert proxy.counts()["connections"] == 1  # an error reply does not close a keep-alive connection


def test_reset_closes_without_a_reply_and_forwards_nothing(proxy: FaultProxy, table: str) -> None:
    c = client()
    proxy.set_rules([Rule("reset", limit=1)])
    with pytest.raises(ConnectionClosedError):
        put(c, table, "reset")
    assert not stored(table, "reset")
    put(c, table, "next")  # the client opens a new connection
    assert stored(table, "next")
    assert proxy.counts()["reset"] == 1 and proxy.counts()["connections"] == 2


@pytest.mark.parametrize("then,forward,applied", [("reply", True, True), ("drop", True, True), ("drop", False, False)])
def test_slow_reply_times_the_client_out(
    proxy: FaultProxy, table: str, then: str, forward: bool, applied: bool
) -> None:
    c = client()
    proxy.set_rules([Rule("slow", delay_s=TIMEOUT_S * 3, then=then, forward=forward, limit=1)])
    started = time.monotonic()
    with pytest.raises(ReadTimeoutError):
        put(c, table, "slow")
    assert time.monotonic() - started < TIMEOUT_S * 3  # the client gave up at its own timeout
    assert stored(table, "slow") is applied  # forwarded: the write took effect though the client never heard
    put(c, table, "next")
    assert proxy.counts()["slow"] == 1


def test_rules_select_operations(proxy: FaultProxy, table: str) -> None:
    c = client()
    proxy.set_rules([Rule("throttle", operations=frozenset({"PutItem"}))])
    c.get_item(TableName=table, Key={"k": {"S": "x"}})
    c.describe_table(TableName=table)
    with pytest.raises(ClientError):
        put(c, table, "x")
    assert proxy.counts_by_operation() == {
        "GetItem": {"forwarded": 1},
        "DescribeTable": {"forwarded": 1},
        "PutItem": {"throttle": 1},
    }


def _outcomes(moto: Any, table: str, monkeypatch: pytest.MonkeyPatch, seed: int) -> list[str]:
    rules = [Rule("throttle", probability=0.3), Rule("internal", probability=0.1)]
    with FaultProxy(moto.endpoint, rules, seed=seed, record=True) as p:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", p.endpoint)
        c = client()
        for i in range(200):
            try:
                put(c, table, f"p{i}")
            except ClientError:
                pass
        return [e.outcome for e in p.history]


def test_probabilities_follow_the_seed(moto_server: Any, table: str, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _outcomes(moto_server, table, monkeypatch, seed=1)
    assert first == _outcomes(moto_server, table, monkeypatch, seed=1)  # same seed, same faults
    assert first != _outcomes(moto_server, table, monkeypatch, seed=2)
    throttled, internal = first.count("throttle"), first.count("internal")
    assert 40 <= throttled <= 80  # 30% of 200
    assert 5 <= internal <= 30  # 10% of the remaining 70%
    assert first.count("forwarded") == 200 - throttled - internal


def test_window_ends_the_fault(proxy: FaultProxy, table: str) -> None:
    c = client()
    proxy.set_rules([Rule("unavailable", stop_s=0.5)])
    with pytest.raises(ClientError):
        put(c, table, "early")
    deadline = time.monotonic() + 10
    while True:
        try:
            put(c, table, "late")
            break
        except ClientError:
            assert time.monotonic() < deadline, "the fault window never closed"
    after = proxy.counts()["unavailable"]
    for i in range(10):
        put(c, table, f"after{i}")
    assert proxy.counts()["unavailable"] == after


def test_window_start_delays_the_fault(proxy: FaultProxy, table: str) -> None:
    c = client()
    proxy.set_rules([Rule("throttle", start_s=0.3)])
    put(c, table, "early")  # inside the first 0.3 s
    deadline = time.monotonic() + 10
    with pytest.raises(ClientError):
        while time.monotonic() < deadline:
            put(c, table, "late")
    assert proxy.counts()["throttle"] == 1


def _control(proxy: FaultProxy, method: str, path: str = "", body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(proxy.endpoint + "/__faults__" + path, data=data, method=method)
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_control_api_changes_rules_and_reads_counters(proxy: FaultProxy, table: str) -> None:
    c = client()
    snap = _control(proxy, "PUT", "/rules", [{"kind": "throttling", "operations": ["PutItem"], "limit": 1}])
    assert snap["rules"][0]["kind"] == "throttling" and snap["rules"][0]["operations"] == ["PutItem"]
    with pytest.raises(ClientError):
        put(c, table, "x")
    snap = _control(proxy, "GET")
    assert snap["counts"]["throttling"] == 1 and snap["rules"][0]["injected"] == 1
    assert _control(proxy, "DELETE", "/rules")["rules"] == []
    with pytest.raises(urllib.error.HTTPError) as info:
        _control(proxy, "PUT", "/rules", [{"kind": "meteor"}])
    assert info.value.code == 400 and b"meteor" in info.value.read()


def test_upstream_down_is_a_502(monkeypatch: pytest.MonkeyPatch, moto_server: Any) -> None:
    with FaultProxy(f"http://127.0.0.1:{free_port()}") as p:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", p.endpoint)
        with pytest.raises(ClientError) as info:
            client().describe_table(TableName="x")
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 502
        assert p.counts()["upstream-error"] == 1


def test_stop_closes_kept_alive_connections(moto_server: Any, table: str, monkeypatch: pytest.MonkeyPatch) -> None:
    p = FaultProxy(moto_server.endpoint).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", p.endpoint)
    c = client()
    put(c, table, "a")
    p.stop()
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        put(c, table, "b")


def test_command_line_proxy_runs_until_sigterm(moto_server: Any, table: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rule = json.dumps({"kind": "throttling", "operations": ["PutItem"], "limit": 1})
    proc = subprocess.Popen(
        [sys.executable, "-m", "workshop", "faults", "--upstream", moto_server.endpoint, "--rule", rule],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        started = json.loads(proc.stdout.readline())
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", started["endpoint"])
        c = client()
        with pytest.raises(ClientError, match="ThrottlingException"):
            put(c, table, "cli")
        put(c, table, "cli")
        assert stored(table, "cli")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        stopped = json.loads(proc.stdout.readline())
        assert stopped["counts"]["throttling"] == 1 and stopped["counts"]["forwarded"] == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
