"""``ecs-state run``'s preflight runs the processor's own start-up checks (settings, metrics target, tables) before
Java starts, against moto over HTTP; a DynamoDB that throttles or a metadata service that does not answer at start
is waited for (the fault proxy, a silent metadata server), a configuration problem is reported at once."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from processor.config import Settings
from processor.ops.setup_tables import ensure_tables
from processor.worker.preflight import STARTUP_WAIT_S, check_processor
from workshop.testing.fault_proxy import FaultProxy, Rule


def _props(tmp_path: Path, s: Settings, **extra: str) -> Path:
    path = tmp_path / "p.properties"
    lines = [
        f"ecsState.taskTable = {s.task_table}",
        f"ecsState.instanceTable = {s.instance_table}",
        f"ecsState.deadLetterTable = {s.dead_letter_table}",
        f"ecsState.catalogTable = {s.catalog_table}",
        *(f"{k} = {v}" for k, v in extra.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _settings() -> Settings:
    n = random.randrange(10**6)
    return Settings(
        task_table=f"pf-t-{n}", instance_table=f"pf-i-{n}", dead_letter_table=f"pf-d-{n}", catalog_table=f"pf-c-{n}"
    )


def test_preflight_passes_for_the_tables_setup_makes(moto_server: Any, tmp_path: Path) -> None:
    s = _settings()
    ensure_tables(s)
    assert check_processor(_props(tmp_path, s), dict(os.environ)) == []


def test_preflight_names_each_missing_table_and_the_fix(moto_server: Any, tmp_path: Path) -> None:
    s = _settings()
    problems = check_processor(_props(tmp_path, s), dict(os.environ))
    assert len(problems) == 4 and all("does not exist" in p and "ecs-state setup" in p for p in problems)


def test_preflight_refuses_a_misspelled_key_and_an_unopenable_metrics_file(moto_server: Any, tmp_path: Path) -> None:
    s = _settings()
    ensure_tables(s)
    [problem] = check_processor(_props(tmp_path, s, **{"ecsState.flushIntervalMilis": "1"}), dict(os.environ))
    assert "did you mean ecsState.flushIntervalMillis" in problem
    [problem] = check_processor(
        _props(tmp_path, s, **{"ecsState.metrics": f"file:{tmp_path}/none/x"}), dict(os.environ)
    )
    assert "ecsState.metrics" in problem


def test_preflight_reports_a_dynamodb_that_does_not_answer(moto_server: Any, tmp_path: Path) -> None:
    env = {**os.environ, "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9"}
    [problem] = check_processor(_props(tmp_path, _settings()), env, wait_s=0.5)
    assert "DynamoDB could not be reached" in problem and "in 0.5 s" in problem


def _log_lines(err: str, event: str) -> list[dict[str, Any]]:
    return [line for line in map(json.loads, filter(None, err.splitlines())) if line.get("event") == event]


def test_a_dynamodb_that_throttles_longer_than_ten_seconds_at_start_is_waited_for(
    moto_server: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    s = _settings()
    ensure_tables(s)
    throttle = Rule("throttle", operations=frozenset({"DescribeTable"}), stop_s=12.0)
    with FaultProxy(moto_server.endpoint, [throttle]) as proxy:
        env = {**os.environ, "AWS_ENDPOINT_URL_DYNAMODB": proxy.endpoint, "ECS_STATE_HEARTBEAT_DIR": str(tmp_path)}
        started = time.monotonic()
        assert check_processor(_props(tmp_path, s), env) == []
        assert time.monotonic() - started >= 12.0 and proxy.injected("throttle") > 3
    [line] = _log_lines(capfd.readouterr().err, "startup_retrying")  # once a minute: one line in 12 s
    assert "ProvisionedThroughputExceededException" in line["cause"]
    assert (tmp_path / "worker").is_file()  # the health check sees a worker waiting, not a dead one
    assert STARTUP_WAIT_S >= 600


def test_a_lasting_outage_logs_once_a_minute_and_ends_in_one_line_at_the_deadline(
    moto_server: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The clock is the test's (five minutes of throttling pass in a second); the requests are real."""
    s = _settings()
    ensure_tables(s)
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with FaultProxy(moto_server.endpoint, [Rule("internal")]) as proxy:
        env = {**os.environ, "AWS_ENDPOINT_URL_DYNAMODB": proxy.endpoint}
        [problem] = check_processor(_props(tmp_path, s), env, wait_s=300, sleep=sleep, clock=lambda: now[0])
    assert "could not be reached" in problem and "in 300 s" in problem and "InternalServerError" in problem
    lines = _log_lines(capfd.readouterr().err, "startup_retrying")
    assert 5 <= len(lines) <= 6


def test_a_missing_table_is_reported_at_once_even_while_dynamodb_throttles_other_calls(
    moto_server: Any, tmp_path: Path
) -> None:
    with FaultProxy(moto_server.endpoint, [Rule("throttle", operations=frozenset({"PutItem"}))]) as proxy:
        env = {**os.environ, "AWS_ENDPOINT_URL_DYNAMODB": proxy.endpoint}
        started = time.monotonic()
        problems = check_processor(_props(tmp_path, _settings()), env)
    assert len(problems) == 4 and time.monotonic() - started < 10


class _Metadata(BaseHTTPRequestHandler):
    """An EC2 instance metadata service (IMDSv2) that is silent until ``answer_after`` (holding each request past
    the client's timeout), then serves role credentials, or no role at all."""

    silent_until = 0.0
    role = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        pass

    def _answer(self, status: int, body: str) -> None:
        if time.monotonic() < self.silent_until:
            time.sleep(2.0)  # past every timeout of the client: a metadata service that does not answer
            self.close_connection = True
            return
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self) -> None:
        self._answer(200, "token")

    def do_GET(self) -> None:
        base = "/latest/meta-data/iam/security-credentials/"
        if not self.role:
            self._answer(404, "")
        elif self.path == base:
            self._answer(200, "worker-role")
        else:
            expiry = "2099-01-01T00:00:00Z"
            creds = {"Code": "Success", "AccessKeyId": "testing", "SecretAccessKey": "testing", "Token": "t"}
            self._answer(200, json.dumps({**creds, "Expiration": expiry}))


@pytest.fixture
def metadata(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[type[_Metadata]]:
    """Credentials only from the instance metadata service (the fake one above)."""
    handler = type("Metadata", (_Metadata,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    for key in ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("AWS_METADATA_SERVICE_TIMEOUT", "1")
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED", raising=False)
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_metadata_service_that_times_out_is_waited_for_and_never_called_no_credentials(
    moto_server: Any, metadata: type[_Metadata], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    s = _settings()
    ensure_tables(s)  # with the session's credentials, before the fixture's environment is read
    metadata.silent_until = time.monotonic() + 4.0
    assert check_processor(_props(tmp_path, s), dict(os.environ)) == []
    [line] = _log_lines(capfd.readouterr().err, "startup_retrying")
    assert "metadata service" in line["cause"] and "did not answer" in line["cause"]
    assert "no AWS credentials" not in line["cause"]


def test_a_metadata_service_that_answers_without_a_role_is_no_credentials_at_once(
    moto_server: Any, metadata: type[_Metadata], tmp_path: Path
) -> None:
    metadata.role = False
    started = time.monotonic()
    [problem] = check_processor(_props(tmp_path, _settings()), dict(os.environ))
    assert "no AWS credentials" in problem and time.monotonic() - started < 10
