"""Credential faults inside botocore's mandatory refresh window (credentials expiring in under 10 minutes, so every
request must refresh them first), against moto's DynamoDB over HTTP, from three real credential sources:
- a ``credential_process`` that answers garbage (exit 0: a ``JSONDecodeError`` in botocore) or garbage and then
  exits 1 (``CredentialRetrievalError``);
- web identity against a fake STS (a small local HTTP server, reached through ``AWS_ENDPOINT_URL_STS``) answering
  ``InvalidIdentityToken`` (botocore raises ``ClientError``);
- the ECS container credentials endpoint (``AWS_CONTAINER_CREDENTIALS_FULL_URI``, a local server) answering 500.
Each fails for a stretch of refreshes, then recovers. During live flushes and during a catch-up prefetch: zero
dead letters, ``write_retrying`` logged, every resource stored at its newest version by the same client (no
restart). The STS and container endpoints are stand-ins (the real ones live in AWS); the credential providers,
their refresh logic, the thin client and the writer are the real ones."""

from __future__ import annotations

import datetime
import http.server
import json
import sys
import threading
import uuid
from pathlib import Path
from typing import Any, Iterator

import botocore.session
import pytest

from processor.config import Settings
from processor.core.position import Position
from processor.core.reducer import Batch, Counts
from processor.core.route import Candidate, admit
from processor.errors import ConfigError
from processor.ops.setup_tables import ensure_tables
from processor.shard.dynamodb_http import DynamoDBHttp, TransportError
from processor.shard.failures import TRANSIENT, classify
from processor.shard.writer import Writer
from workshop.testing.factories import as_json, task_arn, task_event

SHARD = "shardId-000000000003"
SHORT_S = 300  # inside botocore's 10-minute mandatory refresh window: every request refreshes
CREDENTIAL_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_ENDPOINT_URL_STS",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)


def _expiry(seconds: int) -> str:
    when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


class Faults:
    """How many of the next credential fetches fail; fetches are counted (thread-safe)."""

    def __init__(self) -> None:
        self.bad_left = 0
        self.fetches = 0
        self.failed = 0
        self.lock = threading.Lock()

    def next_fails(self) -> bool:
        with self.lock:
            self.fetches += 1
            if self.bad_left > 0:
                self.bad_left -= 1
                self.failed += 1
                return True
            return False


class _CredentialServer(http.server.BaseHTTPRequestHandler):
    """The fake STS (POST Action=AssumeRoleWithWebIdentity) and the ECS container endpoint (GET /creds)."""

    protocol_version = "HTTP/1.1"

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # STS
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.server.faults.next_fails():  # type: ignore[attr-defined]
            self._reply(
                400,
                b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender'
                b'</Type><Code>InvalidIdentityToken</Code><Message>Couldn\'t retrieve verification key '
                b'from your identity provider</Message></Error><RequestId>r</RequestId></ErrorResponse>',
                "text/xml",
            )
            return
        body = (
            '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            '<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIAWEBIDENTITY</AccessKeyId>'
            '<SecretAccessKey>secret</SecretAccessKey><SessionToken>token</SessionToken>'
            f'<Expiration>{_expiry(SHORT_S)}</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>AROA:s'
            '</AssumedRoleId><Arn>arn:aws:sts::123456789012:assumed-role/r/s</Arn></AssumedRoleUser>'
            '<SubjectFromWebIdentityToken>s</SubjectFromWebIdentityToken></AssumeRoleWithWebIdentityResult>'
            '<ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>'
        )
        self._reply(200, body.encode(), "text/xml")

    def do_PUT(self) -> None:  # IMDSv2's session token
        self.server.imds.append(("PUT", self.path, ""))  # type: ignore[attr-defined]
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            self._reply(200, b"imds-session-token", "text/plain")
        else:
            self._reply(400, b"", "text/plain")

    def do_GET(self) -> None:  # the ECS container credentials endpoint, or IMDS
        if self.path.startswith("/latest/"):
            self._imds()
            return
        if self.server.faults.next_fails():  # type: ignore[attr-defined]
            self._reply(500, b'{"message": "internal error"}', "application/json")
            return
        body = {
            "AccessKeyId": "ASIACONTAINER",
            "SecretAccessKey": "secret",
            "Token": "token",
            "Expiration": _expiry(SHORT_S),
            "RoleArn": "arn:aws:iam::123456789012:role/task",
        }
        self._reply(200, json.dumps(body).encode(), "application/json")

    def _imds(self) -> None:
        token = self.headers.get("X-aws-ec2-metadata-token", "")
        self.server.imds.append(("GET", self.path, token))  # type: ignore[attr-defined]
        if token != "imds-session-token":
            self._reply(401, b"", "text/plain")
        elif self.path == "/latest/meta-data/iam/security-credentials/":
            self._reply(200, b"worker-role", "text/plain")
        elif self.path == "/latest/meta-data/iam/security-credentials/worker-role":
            if self.server.faults.next_fails():  # type: ignore[attr-defined]
                self._reply(500, b"", "text/plain")
                return
            body = {
                "Code": "Success",
                "Type": "AWS-HMAC",
                "AccessKeyId": "ASIAIMDS",
                "SecretAccessKey": "secret",
                "Token": "token",
                "Expiration": _expiry(SHORT_S),
                "LastUpdated": _expiry(0),
            }
            self._reply(200, json.dumps(body).encode(), "application/json")
        else:
            self._reply(404, b"", "text/plain")

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def credential_server() -> Iterator[tuple[Faults, str]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CredentialServer)
    server.faults = Faults()  # type: ignore[attr-defined]
    server.imds = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.faults, f"http://127.0.0.1:{server.server_address[1]}", server.imds  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


HELPER = """
import datetime, json, sys
state_path, mode = sys.argv[1], sys.argv[2]
with open(state_path) as f:
    state = json.load(f)
state["fetches"] += 1
failing = state["bad_left"] > 0
if failing:
    state["bad_left"] -= 1
with open(state_path, "w") as f:
    json.dump(state, f)
if failing:
    print("<html><body>502 Bad Gateway: identity provider timed out</body></html>")
    sys.exit(1 if mode == "exit1" else 0)
expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=SHORT_S)
print(json.dumps({"Version": 1, "AccessKeyId": "ASIAPROCESS", "SecretAccessKey": "secret", "SessionToken": "t",
                  "Expiration": expiry.strftime("%Y-%m-%dT%H:%M:%SZ")}))
""".replace("SHORT_S", str(SHORT_S))


class ProcessFaults:
    """The credential_process helper's state file: how many of its next answers are garbage."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_text(json.dumps({"bad_left": 0, "fetches": 0}))

    def _state(self) -> dict[str, int]:
        return dict(json.loads(self.path.read_text()))

    @property
    def bad_left(self) -> int:
        return self._state()["bad_left"]

    @bad_left.setter
    def bad_left(self, n: int) -> None:
        self.path.write_text(json.dumps({**self._state(), "bad_left": n}))


def _settings(moto_server: Any) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(
        task_table=f"cred-tasks-{suffix}",
        instance_table=f"cred-inst-{suffix}",
        dead_letter_table=f"cred-dead-{suffix}",
        write_concurrency=1,
    )
    ensure_tables(settings)  # with the session's dummy credentials, before the faulty source takes over
    return settings


def _source(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, endpoint: str) -> Any:
    for name in CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    config = tmp_path / "config"
    if kind.startswith("process"):
        helper = tmp_path / "helper.py"
        helper.write_text(HELPER)
        faults = ProcessFaults(tmp_path / "state.json")
        mode = "exit1" if kind == "process-exit1" else "garbage"
        config.write_text(f"[profile faulty]\ncredential_process = {sys.executable} {helper} {faults.path} {mode}\n")
        monkeypatch.setenv("AWS_PROFILE", "faulty")
    elif kind == "web-identity":
        token = tmp_path / "token"
        token.write_text("eyJhbGciOi.fake.jwt")
        config.write_text("")
        monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
        monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/web")
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", endpoint)
        faults = None
    else:
        config.write_text("")
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"{endpoint}/creds")
        faults = None
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    return faults


def _candidate(n: int, version: int, seq: int) -> Candidate:
    got = admit(as_json(task_event(task_arn(n), version)), Position(SHARD, f"{seq:056d}"), task_arn(n), 7)
    assert isinstance(got, Candidate)
    return got


@pytest.mark.parametrize("phase", ["live", "catch-up"])
@pytest.mark.parametrize("kind", ["process-garbage", "process-exit1", "web-identity", "container-500"])
def test_a_credential_source_failing_for_a_while_loses_nothing_and_dead_letters_nothing(
    moto_server: Any,
    credential_server: tuple[Faults, str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    kind: str,
    phase: str,
) -> None:
    settings = _settings(moto_server)
    server_faults, endpoint, _ = credential_server
    faults = _source(kind, tmp_path, monkeypatch, endpoint) or server_faults
    client = DynamoDBHttp.from_environment(session=botocore.session.Session(), pool=1, timeout_s=5.0)
    writer = Writer(settings, client, sleep=lambda _: None, shard_id=SHARD)
    first = writer.write(Batch([[_candidate(n, 1, n + 1)] for n in range(3)], [], Position(SHARD, "1"), Counts()))
    assert first.ok and first.written == 3  # the source works: credentials that expire within minutes
    # The ECS endpoint's fetcher tries 3 times per refresh (1 s apart); the others once. A catch-up flush first
    # spends up to 5 BatchGetItem attempts on the prefetch.
    per_refresh = 3 if kind == "container-500" else 1
    faults.bad_left = per_refresh * (7 if phase == "catch-up" else 3)
    fresh = Writer(settings, client, sleep=lambda _: None, shard_id=SHARD) if phase == "catch-up" else writer
    batch = Batch(
        [[_candidate(n, 5, 10 + n), _candidate(n, 4, 20 + n)] for n in range(3)], [], Position(SHARD, "2"), Counts()
    )
    out = fresh.write(batch, prefetch=phase == "catch-up")
    assert out.ok and out.dead_letters == 0 and out.written == 3 and out.fallbacks == 0
    assert faults.bad_left == 0  # the whole stretch of failures was met, and outlived
    logged = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    retrying = [line for line in logged if line.get("event") == "write_retrying"]
    assert retrying and "refreshing AWS credentials failed" in retrying[0]["cause"], logged[-3:]
    if phase == "catch-up":
        assert any(line.get("event") == "prefetch_incomplete" for line in logged)
    assert not any(line.get("event") == "dead_letter" for line in logged)
    got = {
        n: client.call(
            "GetItem",
            {"TableName": settings.task_table, "Key": {"taskArn": {"S": task_arn(n)}}, "ConsistentRead": True},
        ).item
        for n in range(3)
    }
    assert {n: item["version"]["N"] if item else None for n, item in got.items()} == {0: "5", 1: "5", 2: "5"}
    for w in {writer, fresh}:
        w.close()
    client.close()


def test_credentials_from_imdsv2_are_refreshed_with_a_session_token_and_an_imds_outage_loses_nothing(
    moto_server: Any,
    credential_server: tuple[Faults, str, list[tuple[str, str, str]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """IMDSv2 (a local stand-in for the instance metadata service): a session token first, then the role's
    credentials with that token. botocore stretches IMDS credentials that expire soon (its static stability), so
    the test moves their expiry to now (time passing is what a local server cannot produce); the next request
    then must refresh, IMDS answers 500 twice, and the writer retries until it answers: nothing is dead-lettered
    and every write lands, on the same client."""
    settings = _settings(moto_server)
    faults, endpoint, imds = credential_server
    for name in CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "false")
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", f"{endpoint}/")
    session = botocore.session.Session()
    client = DynamoDBHttp.from_environment(session=session, pool=1, timeout_s=5.0)
    writer = Writer(settings, client, sleep=lambda _: None, shard_id=SHARD)
    assert writer.write(Batch([[_candidate(0, 1, 1)]], [], Position(SHARD, "1"), Counts())).ok
    assert ("PUT", "/latest/api/token", "") in imds
    assert all(token == "imds-session-token" for method, _, token in imds if method == "GET")
    before = faults.fetches
    faults.bad_left = 2
    session.get_credentials()._expiry_time = datetime.datetime.now(datetime.timezone.utc)
    out = writer.write(Batch([[_candidate(n, 3, 10 + n)] for n in range(3)], [], Position(SHARD, "2"), Counts()))
    assert out.ok and out.written == 3 and out.dead_letters == 0 and out.retries >= 2
    assert faults.failed == 2 and faults.fetches >= before + 3  # two failed refreshes, then a good one
    err = capfd.readouterr().err
    assert "write_retrying" in err and "dead_letter" not in err
    writer.close()
    client.close()


def test_a_credential_source_failing_at_start_is_transient_not_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, credential_server: tuple[Faults, str, Any]
) -> None:
    """The daemon starts the processor again; exit 2 (configuration) would tell an operator to fix a setting."""
    faults = _source("process-garbage", tmp_path, monkeypatch, credential_server[1])
    faults.bad_left = 1
    with pytest.raises(TransportError, match="resolving AWS credentials failed: JSONDecodeError") as info:
        DynamoDBHttp.from_environment(session=botocore.session.Session(), endpoint_url="http://127.0.0.1:9")
    assert not isinstance(info.value, ConfigError) and classify(info.value).kind == TRANSIENT
