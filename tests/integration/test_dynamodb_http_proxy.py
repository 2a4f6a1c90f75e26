"""Proxies, through a real one: Debian's tinyproxy, started here on 127.0.0.1 with its own configuration file
(``scripts/bootstrap`` installs it; if it is missing these tests fail, they never skip). The thin DynamoDB client
takes the proxy botocore takes: ``HTTP_PROXY`` for http endpoints (the request in absolute form), ``HTTPS_PROXY``
for https (a ``CONNECT`` tunnel, TLS inside it verified against the endpoint's name), ``NO_PROXY`` to go direct.
A proxy that is down is transient: the writer retries until it is back, and nothing becomes a dead letter. The
https endpoint is a small TLS server made here with a self-signed certificate (moto speaks plain http)."""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from processor.config import Settings
from processor.core.position import Position
from processor.core.reducer import Batch, Counts
from processor.core.route import Candidate, admit
from processor.errors import ConfigError
from processor.ops import cli
from processor.shard.dynamodb_http import DynamoDBHttp, TransportError
from processor.shard.failures import TRANSIENT, classify
from processor.shard.writer import Writer
from workshop.local.env import LOCAL_ENV
from workshop.testing.factories import as_json, task_arn, task_event
from workshop.testing.tls import self_signed

PROXY_VARS = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Tinyproxy:
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, tmp_path: Path, basic_auth: tuple[str, str] | None = None) -> Tinyproxy:
        binary = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
        assert Path(binary).exists(), "tinyproxy is missing: run scripts/bootstrap (Debian: apt-get install tinyproxy)"
        conf = tmp_path / f"tinyproxy-{self.port}.conf"
        lines = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Timeout 30",
            f'LogFile "{self.log}"',
            "LogLevel Info",
            "MaxClients 50",
            "Allow 127.0.0.1",
            "DisableViaHeader Yes",
        ]
        if basic_auth:
            lines.append(f"BasicAuth {basic_auth[0]} {basic_auth[1]}")
        conf.write_text("\n".join(lines) + "\n")
        self.process = subprocess.Popen(
            [binary, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while True:
            assert self.process.poll() is None, f"tinyproxy exited {self.process.returncode}: {self.log_text()}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                assert time.monotonic() < deadline, "tinyproxy did not listen within 10 s"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
def proxies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Tinyproxy]]:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in LOCAL_ENV.items():  # dummy credentials, also for the tests that need no moto
        monkeypatch.setenv(name, value)
    made: list[Tinyproxy] = []
    yield made
    for proxy in made:
        proxy.stop()


def tinyproxy(proxies: list[Tinyproxy], tmp_path: Path, port: int | None = None, **start: Any) -> Tinyproxy:
    port = port or free_port()
    proxy = Tinyproxy(port, tmp_path / f"tinyproxy-{port}.log")
    proxies.append(proxy)
    return proxy.start(tmp_path, **start)


def make_table(client: DynamoDBHttp) -> str:
    name = f"proxied-{uuid.uuid4().hex[:8]}"
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
    return name


def test_an_http_endpoint_is_reached_through_http_proxy_in_absolute_form(
    moto_server: Any, proxies: list[Tinyproxy], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = tinyproxy(proxies, tmp_path)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    with DynamoDBHttp.from_environment(endpoint_url=moto_server.endpoint) as client:
        assert client.proxy_url == proxy.url
        assert client.request_target == f"{moto_server.endpoint}/"
        table = make_table(client)
        assert client.call("PutItem", {"TableName": table, "Item": {"taskArn": {"S": "arn:p"}}}).ok
        assert client.call("DescribeTable", {"TableName": table}).ok
    assert f"POST {moto_server.endpoint}/" in proxy.log_text()


def test_no_proxy_sends_the_endpoint_direct(
    moto_server: Any, proxies: list[Tinyproxy], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = tinyproxy(proxies, tmp_path)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    with DynamoDBHttp.from_environment(endpoint_url=moto_server.endpoint) as client:
        assert client.proxy_url is None and client.request_target == "/"
        make_table(client)
    assert "POST" not in proxy.log_text()


class _Table(http.server.BaseHTTPRequestHandler):
    """A TLS endpoint answering DescribeTable as DynamoDB would (moto speaks plain http only)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.seen.append((self.path, self.headers["Host"], self.headers["X-Amz-Target"]))  # type: ignore
        body = json.dumps({"Table": {"TableName": "t", "TableStatus": "ACTIVE"}}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def tls_endpoint(tmp_path: Path) -> Iterator[tuple[Any, str, Path]]:
    cert, key = self_signed(tmp_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Table)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.seen = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, f"https://localhost:{server.server_address[1]}/base", cert
    server.shutdown()
    server.server_close()


def test_an_https_endpoint_is_reached_through_a_connect_tunnel_with_tls_verified_inside(
    tls_endpoint: tuple[Any, str, Path], proxies: list[Tinyproxy], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, endpoint, cert = tls_endpoint
    proxy = tinyproxy(proxies, tmp_path, basic_auth=("ecs", "s3cret"))
    monkeypatch.setenv("HTTPS_PROXY", f"http://ecs:s3cret@127.0.0.1:{proxy.port}")
    monkeypatch.setenv("AWS_CA_BUNDLE", str(cert))
    with DynamoDBHttp.from_environment(endpoint_url=endpoint) as client:
        assert client.request_target == "/base"  # the tunnel carries the origin form
        assert client.call("DescribeTable", {"TableName": "t"}).body["Table"]["TableName"] == "t"
        assert (
            client.call("DescribeTable", {"TableName": "t"}).ok and client.connections_opened == 1
        )  # one tunnel, kept alive
    port = server.server_address[1]
    assert server.seen == [("/base", f"localhost:{port}", "DynamoDB_20120810.DescribeTable")] * 2
    assert f"CONNECT localhost:{port}" in proxy.log_text()
    # the wrong password: the proxy refuses the tunnel; the request was never sent, and it is transient
    monkeypatch.setenv("HTTPS_PROXY", f"http://ecs:wrong@127.0.0.1:{proxy.port}")
    with DynamoDBHttp.from_environment(endpoint_url=endpoint) as client, pytest.raises(TransportError) as refused:
        client.call("DescribeTable", {"TableName": "t"})
    # (tinyproxy 1.11 answers a wrong BasicAuth with 401, not the 407 RFC 9110 asks of a proxy)
    assert "refused CONNECT" in str(refused.value) and "wrong" not in str(refused.value)
    assert classify(refused.value).kind == TRANSIENT


def test_a_proxy_reached_over_tls_is_refused_at_start_naming_the_variable(
    proxies: list[Tinyproxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "https://ecs:s3cret@proxy.example:3129")
    with pytest.raises(ConfigError, match="HTTPS_PROXY") as refused:
        DynamoDBHttp.from_environment(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")
    assert "s3cret" not in str(refused.value) and "proxy.example:3129" in str(refused.value)


@pytest.mark.parametrize(
    ("variable", "endpoint", "proxy_url"),
    [
        ("HTTPS_PROXY", "https://dynamodb.us-east-1.amazonaws.com", "http://ecs:s3cret@127.0.0.1:99999"),
        ("HTTPS_PROXY", "https://dynamodb.us-east-1.amazonaws.com", "http://ecs:s3cret@proxy.example:port"),
        ("HTTPS_PROXY", "https://dynamodb.us-east-1.amazonaws.com", "http://ecs:s3cret@[::1"),
        ("HTTP_PROXY", "http://127.0.0.1:8000", "http://ecs:s3cret@proxy.example:-1"),
        ("HTTP_PROXY", "http://127.0.0.1:8000", "socks5://ecs:s3cret@proxy.example:1080"),
    ],
)
def test_a_malformed_proxy_url_is_one_configuration_line_naming_the_variable_and_never_its_password(
    proxies: list[Tinyproxy],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    endpoint: str,
    proxy_url: str,
) -> None:
    """(before: a bad port or bracket ended in a ValueError traceback, and the refusal quoted the password)"""
    monkeypatch.setenv(variable, proxy_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
    assert cli.main(["canary", "--table", "scratch"]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and variable in captured.err and "Traceback" not in captured.err
    assert "s3cret" not in captured.out + captured.err


def test_credentials_fetched_through_a_proxy_that_fails_never_show_its_password(
    proxies: list[Tinyproxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No credentials in the environment: botocore asks the instance metadata service, through the proxy, which is
    down; its error quotes the proxy URL (before: password and all, in the start-up error)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_EC2_METADATA_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("HTTP_PROXY", f"http://ecs:s3cret@127.0.0.1:{free_port()}")  # nothing listens there
    with pytest.raises((TransportError, ConfigError)) as failed:
        DynamoDBHttp.from_environment(endpoint_url="http://127.0.0.1:8000")
    assert "s3cret" not in str(failed.value)


def test_the_canary_goes_through_a_proxy_with_a_password_and_never_prints_the_password(
    moto_server: Any,
    proxies: list[Tinyproxy],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """(before: the first line printed the proxy URL as given, password and all)"""
    with DynamoDBHttp.from_environment(endpoint_url=moto_server.endpoint) as direct:
        table = make_table(direct)
    proxy = tinyproxy(proxies, tmp_path, basic_auth=("ecs", "s3cret"))
    monkeypatch.setenv("HTTP_PROXY", f"http://ecs:s3cret@127.0.0.1:{proxy.port}")
    assert cli.main(["canary", "--table", table]) == 0
    captured = capsys.readouterr()
    assert f"proxy http://127.0.0.1:{proxy.port};" in captured.out.splitlines()[0]
    assert "s3cret" not in captured.out + captured.err
    assert f"POST {moto_server.endpoint}/" in proxy.log_text()  # the password still opened the proxy


def test_a_proxy_that_is_down_is_transient_and_the_writer_goes_on_when_it_is_back(
    moto_server: Any, proxies: list[Tinyproxy], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with DynamoDBHttp.from_environment(endpoint_url=moto_server.endpoint) as direct:
        settings = Settings(task_table=make_table(direct), write_concurrency=1)
    port = free_port()  # nothing listens there yet
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    client = DynamoDBHttp.from_environment(endpoint_url=moto_server.endpoint)
    with pytest.raises(TransportError) as down:
        client.call("DescribeTable", {"TableName": settings.task_table})
    assert classify(down.value).kind == TRANSIENT
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:  # the writer's backoff: the proxy comes back after the third retry
        sleeps.append(seconds)
        if len(sleeps) == 3:
            tinyproxy(proxies, tmp_path, port=port)

    writer = Writer(settings, client, sleep=sleep, shard_id="shardId-proxy")
    position = Position("shardId-proxy", "1" * 56)
    candidate = admit(as_json(task_event(task_arn(1), 3)), position, task_arn(1), 7)
    assert isinstance(candidate, Candidate)
    out = writer.write(Batch([[candidate]], [], position, Counts()))
    writer.close()
    client.close()
    assert out.ok and out.written == 1 and out.dead_letters == 0 and out.retries == 3
    assert f"POST {moto_server.endpoint}/" in proxies[0].log_text()
