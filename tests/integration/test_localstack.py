"""The embedded local stack: moto + kinesis-mock, started here, on 127.0.0.1 only (needs scripts/bootstrap)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from processor.config import parse_properties
from workshop.local.stack import LOCAL_PROPERTIES, LocalStack, find_node, listening_addresses, write_loopback_preload


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(tmp_path_factory.mktemp("stack")) as running:
        yield running


# ---- pure ----------------------------------------------------------------------------------------------------


def test_child_env_drops_real_account_settings(stack: LocalStack) -> None:
    env = stack.child_env(
        {"AWS_PROFILE": "prod", "AWS_SESSION_TOKEN": "t", "AWS_ENDPOINT_URL": "http://x", "HOME": "/root"}
    )
    assert "AWS_PROFILE" not in env and "AWS_SESSION_TOKEN" not in env and "AWS_ENDPOINT_URL" not in env
    assert env["HOME"] == "/root"
    assert env["AWS_ENDPOINT_URL_KINESIS"] == stack.kinesis_endpoint
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == stack.dynamodb_endpoint
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == stack.region


# ---- the preload that pins node servers to loopback ----------------------------------------------------------


def test_loopback_preload_pins_every_listen_form(tmp_path: Path) -> None:
    preload = write_loopback_preload(tmp_path)
    script = tmp_path / "listen.js"
    script.write_text("""
const net = require('net');
const forms = [s => s.listen(0), s => s.listen(0, '0.0.0.0'), s => s.listen({port: 0}),
               s => s.listen({port: 0, host: '::'}), s => s.listen(0, () => {})];
let left = forms.length; const seen = [];
for (const f of forms) {
  const s = net.createServer();
  s.on('listening', () => {
    seen.push(s.address().address); s.close(); if (--left === 0) console.log(JSON.stringify(seen));
  });
  f(s);
}
""")
    out = subprocess.run(
        [find_node(), "-r", str(preload), str(script)], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    assert json.loads(out) == ["127.0.0.1"] * 5


# ---- the running stack ---------------------------------------------------------------------------------------


def test_servers_listen_on_loopback_only(stack: LocalStack) -> None:
    assert stack.moto is not None and stack.kinesis is not None
    ports = [stack.moto.port, stack.kinesis.port, int(stack.kinesis.extra["tls_port"])]
    for port in ports:
        # Every listening socket on the port is bound to 127.0.0.1 (none to 0.0.0.0, :: or another address).
        assert listening_addresses(port) == {"127.0.0.1"}, port


def test_put_and_get_a_record_through_kinesis_mock(stack: LocalStack) -> None:
    summary = stack.create_stream("roundtrip", 2)
    assert summary["OpenShardCount"] == 2
    kinesis = stack.client("kinesis")
    put = kinesis.put_record(StreamName="roundtrip", Data=b'{"hello": 1}', PartitionKey="arn:aws:ecs:task/1")
    iterator = kinesis.get_shard_iterator(
        StreamName="roundtrip", ShardId=put["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    deadline = time.monotonic() + 10
    records: list[dict[str, object]] = []
    while not records and time.monotonic() < deadline:
        response = kinesis.get_records(ShardIterator=iterator)
        records, iterator = response["Records"], response["NextShardIterator"]
    assert [(r["Data"], r["PartitionKey"], r["SequenceNumber"]) for r in records] == [
        (b'{"hello": 1}', "arn:aws:ecs:task/1", put["SequenceNumber"])
    ]


def test_create_stream_keeps_an_existing_stream(stack: LocalStack) -> None:
    first = stack.create_stream("twice", 1)
    again = stack.create_stream("twice", 3)
    assert again["StreamARN"] == first["StreamARN"] and again["OpenShardCount"] == 1


def test_dynamodb_is_moto(stack: LocalStack) -> None:
    dynamodb = stack.client("dynamodb")
    dynamodb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName="t", Item={"k": {"S": "a"}, "v": {"N": "1"}})
    assert dynamodb.get_item(TableName="t", Key={"k": {"S": "a"}})["Item"]["v"] == {"N": "1"}


def test_render_properties_fills_in_the_ports(stack: LocalStack, tmp_path: Path) -> None:
    path = stack.render_properties(LOCAL_PROPERTIES, tmp_path / "p" / "local.properties", streamName="other")
    props = parse_properties(path.read_text())
    assert props["kinesisEndpoint"] == stack.kinesis_endpoint
    assert props["dynamoDBEndpoint"] == stack.dynamodb_endpoint
    assert props["streamName"] == "other"
    assert props["ecsState.taskTable"] == "ECSTaskState"


# ---- `ecs-state stack` ---------------------------------------------------------------------------------------


def test_stack_command_writes_env_and_properties_then_stops_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "workshop", "stack", "--dir", str(tmp_path), "--stream", "cmd-stream", "--shards", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    env_file = tmp_path / "stack.env"
    try:
        deadline = time.monotonic() + 90
        while not env_file.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert env_file.exists(), proc.stderr.read() if proc.poll() is not None else "stack.env never appeared"
        env = dict(line.removeprefix("export ").split("=", 1) for line in env_file.read_text().splitlines())
        props = parse_properties(Path(env["ECS_STATE_PROPERTIES"]).read_text())
        assert props["kinesisEndpoint"] == env["AWS_ENDPOINT_URL_KINESIS"]
        assert props["dynamoDBEndpoint"] == env["AWS_ENDPOINT_URL_DYNAMODB"]
        assert props["streamName"] == "cmd-stream"
        kinesis_port = int(env["AWS_ENDPOINT_URL_KINESIS"].rsplit(":", 1)[1])
        assert listening_addresses(kinesis_port) == {"127.0.0.1"}
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    assert code == 0, proc.stderr.read()
    assert not env_file.exists()
    assert listening_addresses(kinesis_port) == set()


def test_stack_command_without_stream_name_fails_clearly(tmp_path: Path) -> None:
    template = tmp_path / "no-stream.properties"
    template.write_text("applicationName = a\n")
    result = subprocess.run(
        [sys.executable, "-m", "workshop", "stack", "--dir", str(tmp_path / "d"), "--properties", str(template)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert result.returncode == 2
    assert "no streamName" in result.stderr and "--stream" in result.stderr
