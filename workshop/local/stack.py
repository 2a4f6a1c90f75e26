"""Embedded local stack: emulators started and stopped by the project, every one on 127.0.0.1 only.

- DynamoDB (KCL's lease tables and ours): the moto server, ``python -m moto.server -H 127.0.0.1``.
- Kinesis for the KCL daemon: kinesis-mock (npm package ``kinesis-local``, installed into ``.local/node`` by
  ``scripts/bootstrap``), on its plain-HTTP port. It has no host option, so node is started with a ``-r``
  preload that makes every ``listen`` bind 127.0.0.1.

``LocalStack`` starts both and hands out the environment for child processes (``AWS_ENDPOINT_URL_*``, dummy
credentials, region). ``python -m workshop stack`` (``stack_command.py``) runs it in the foreground for the demo
and for manual runs: it writes ``stack.env`` and a ``local.properties`` with the real ports filled in, then waits
for SIGTERM / SIGINT.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Mapping

from processor.worker.supervisor import die_with_parent
from workshop.errors import StackError
from workshop.local.env import REGION, local_client, local_env
from workshop.local.paths import project_dir

HOST = "127.0.0.1"
NODE_PREFIX = project_dir() / ".local" / "node"
KINESIS_MOCK_MAIN_ENV = "ECS_STATE_KINESIS_MOCK"
LOCAL_PROPERTIES = project_dir() / "properties" / "local.properties"

# Credentials for the emulators only. kinesis-mock takes a 12-digit access key id as an account id; anything
# else maps to its default account 000000000000.

# Variables that would send a child somewhere other than the local stack (a real profile, a session token that
# does not belong to the dummy keys, a catch-all endpoint).

# Loaded into node with ``-r``: every net/tls server of kinesis-mock listens on 127.0.0.1 only. kinesis-mock
# calls ``server.listen(port, cb)`` for a wildcard address and ``listen(port, host, cb)`` otherwise.
LOOPBACK_PRELOAD_JS = """\
'use strict';
// Written by workshop/local/stack.py. Preloaded with `node -r`: every server binds 127.0.0.1 only.
const net = require('net');
const HOST = '127.0.0.1';
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (typeof first === 'number' || (typeof first === 'string' && /^[0-9]+$/.test(first))) {
    const rest = args.slice(1);
    if (typeof rest[0] === 'string' || rest[0] === undefined || rest[0] === null) rest.shift();
    return listen.call(this, Number(first), HOST, ...rest);
  }
  if (first && typeof first === 'object' && first.path === undefined && first.fd === undefined
      && first._handle === undefined) {
    return listen.call(this, Object.assign({}, first, { host: HOST }), ...args.slice(1));
  }
  return listen.apply(this, args);
};
"""

# kinesis-mock's simulated delays (default 500 ms each) and limits, made short / roomy for tests.
KINESIS_MOCK_SETTINGS = {
    "CREATE_STREAM_DURATION": "10ms",
    "DELETE_STREAM_DURATION": "10ms",
    "REGISTER_STREAM_CONSUMER_DURATION": "10ms",
    "DEREGISTER_STREAM_CONSUMER_DURATION": "10ms",
    "START_STREAM_ENCRYPTION_DURATION": "10ms",
    "STOP_STREAM_ENCRYPTION_DURATION": "10ms",
    "MERGE_SHARDS_DURATION": "10ms",
    "SPLIT_SHARD_DURATION": "10ms",
    "UPDATE_SHARD_COUNT_DURATION": "10ms",
    "UPDATE_STREAM_MODE_DURATION": "10ms",
    "SHARD_LIMIT": "200",
    "SHOULD_PERSIST_DATA": "false",
    "LOAD_DATA_IF_EXISTS": "false",
    "LOG_LEVEL": "WARN",
    "ROOT_LOG_LEVEL": "ERROR",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, deadline_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``url`` until it answers any HTTP status, the process dies, or the deadline passes."""
    end = time.monotonic() + deadline_s
    last: Exception | None = None
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before {url} answered")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError as exc:
            last = exc
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {deadline_s:.0f}s (last error: {last})")


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)
    stop_grace_s: float = 10.0  # SIGTERM, then SIGKILL after this long

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def wait_ready(self, deadline_s: float) -> Server:
        """Wait until the server answers HTTP (stopping it if it does not); returns ``self``."""
        try:
            wait_http(self.endpoint + self.extra.get("ready_path", "/"), deadline_s, self.proc)
        except Exception as exc:
            self.stop()
            hint = f"; see {self.log_path}" if self.log_path else ""
            raise StackError(f"{self.name} did not start: {exc}{hint}") from exc
        return self

    def stop(self, timeout: float | None = None) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(self.stop_grace_s if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _log_target(log_path: Path | None) -> IO[bytes] | int:
    return open(log_path, "ab") if log_path else subprocess.DEVNULL


def spawn_moto(port: int | None = None, log_path: Path | None = None) -> Server:
    """Start the moto server process without waiting for it (see ``Server.wait_ready``)."""
    port = port or free_port()
    out = _log_target(log_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ},
        preexec_fn=die_with_parent(),
    )
    if not isinstance(out, int):
        out.close()
    return Server("moto", proc, port, log_path, {"ready_path": "/moto-api/"})


def start_moto(port: int | None = None, log_path: Path | None = None) -> Server:
    """Start ``moto.server`` (DynamoDB, Kinesis, CloudFormation, ECS ... all on one port) on 127.0.0.1."""
    return spawn_moto(port, log_path).wait_ready(60)


def find_node(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    node = shutil.which("node", path=env.get("PATH"))
    if not node:
        raise StackError(
            "node not found on PATH: install Node.js 18+ (Debian: apt-get install nodejs), then run scripts/bootstrap"
        )
    return node


def find_kinesis_mock(env: Mapping[str, str] | None = None) -> Path:
    """``main.js`` of kinesis-local: ``$ECS_STATE_KINESIS_MOCK`` or ``<repo>/.local/node/node_modules/...``."""
    env = os.environ if env is None else env
    configured = env.get(KINESIS_MOCK_MAIN_ENV)
    main = Path(configured) if configured else NODE_PREFIX / "node_modules" / "kinesis-local" / "main.js"
    if main.is_dir():
        main = main / "main.js"
    if not main.is_file():
        where = f"${KINESIS_MOCK_MAIN_ENV}={configured}" if configured else str(main)
        raise StackError(
            f"kinesis-mock not found at {where}: run scripts/bootstrap (it installs the npm "
            f"package kinesis-local into {NODE_PREFIX})"
        )
    if not (main.parent / "server.json").is_file():
        raise StackError(
            f"{main.parent / 'server.json'} is missing (kinesis-mock crashes without its "
            f"certificate file): reinstall with scripts/bootstrap"
        )
    return main


def write_loopback_preload(directory: Path) -> Path:
    path = directory / "loopback-only.js"
    path.write_text(LOOPBACK_PRELOAD_JS, encoding="utf-8")
    return path


def kinesis_mock_env(
    plain_port: int, tls_port: int, cert_path: Path, region: str = REGION, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment for the kinesis-mock process (pure)."""
    env = dict(os.environ if base is None else base)
    env.update(KINESIS_MOCK_SETTINGS)
    env.update(
        {
            "KINESIS_MOCK_PLAIN_PORT": str(plain_port),
            "KINESIS_MOCK_TLS_PORT": str(tls_port),
            "KINESIS_MOCK_CERT_PATH": str(cert_path),
            "AWS_REGION": region,
        }
    )
    env.pop("INITIALIZE_STREAMS", None)
    return env


def spawn_kinesis_mock(
    port: int | None = None,
    tls_port: int | None = None,
    log_path: Path | None = None,
    work_dir: Path | None = None,
    region: str = REGION,
) -> Server:
    """Start the kinesis-mock process without waiting for it (see ``Server.wait_ready``)."""
    node = find_node()
    main = find_kinesis_mock()
    port = port or free_port()
    tls_port = tls_port or free_port()
    work_dir = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="kinesis-mock-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    preload = write_loopback_preload(work_dir)
    out = _log_target(log_path)
    proc = subprocess.Popen(
        [node, "-r", str(preload), str(main)],
        cwd=work_dir,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=kinesis_mock_env(port, tls_port, main.parent / "server.json", region),
        preexec_fn=die_with_parent(),
    )
    if not isinstance(out, int):
        out.close()
    # kinesis-mock keeps running after SIGTERM while a client holds a keep-alive connection (seen: 10 s and
    # more); it persists nothing here, so it gets one second.
    return Server(
        "kinesis-mock",
        proc,
        port,
        log_path,
        {"tls_port": str(tls_port), "preload": str(preload), "ready_path": "/"},
        stop_grace_s=1.0,
    )


def start_kinesis_mock(
    port: int | None = None,
    tls_port: int | None = None,
    log_path: Path | None = None,
    work_dir: Path | None = None,
    region: str = REGION,
    deadline_s: float = 60.0,
) -> Server:
    """Start kinesis-mock on 127.0.0.1; ``Server.endpoint`` is its plain-HTTP endpoint (the one for KCL: the
    daemon rejects the TLS port's self-signed certificate). ``extra`` holds ``tls_port`` and ``preload``.
    Its simulated delays are short (``KINESIS_MOCK_SETTINGS``); ``work_dir`` is its working directory."""
    return spawn_kinesis_mock(port, tls_port, log_path, work_dir, region).wait_ready(deadline_s)


def aws_client(service: str, endpoint: str, region: str = REGION) -> Any:
    """A boto3 client pinned to an emulator endpoint with the dummy credentials (touches no environment)."""
    return local_client(service, endpoint, region, connect_timeout=5, read_timeout=30)


def wait_stream_active(kinesis: Any, name: str, deadline_s: float = 30.0) -> dict[str, Any]:
    """Poll DescribeStreamSummary until the stream is ACTIVE; returns the summary."""
    end = time.monotonic() + deadline_s
    status = "missing"
    while time.monotonic() < end:
        try:
            summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
            status = summary["StreamStatus"]
            if status == "ACTIVE":
                return dict(summary)
        except kinesis.exceptions.ResourceNotFoundException:
            status = "missing"
        time.sleep(0.05)
    raise TimeoutError(f"stream {name} not ACTIVE within {deadline_s:.0f}s (last status {status})")


def create_stream(kinesis: Any, name: str, shards: int, deadline_s: float = 30.0) -> dict[str, Any]:
    """Create ``name`` with ``shards`` shards (an existing stream is kept as it is) and wait until ACTIVE."""
    try:
        kinesis.create_stream(StreamName=name, ShardCount=shards)
    except kinesis.exceptions.ResourceInUseException:
        pass
    return wait_stream_active(kinesis, name, deadline_s)


_KEY_LINE = re.compile(r"^\s*((?:\\.|[^=:\s])+)(?:\s*[=:]\s*|\s+|$)")


def render_properties(text: str, values: Mapping[str, str]) -> str:
    """Set ``values`` in Java properties ``text`` (pure). Every uncommented ``key = value`` line of such a key
    gets the new value (Java keeps the last of repeated keys, so all of them are set); keys not present are
    appended. Comments stay as they are. Values are written as given (no escaping): meant for endpoints,
    names and numbers; a replaced key's continuation lines are kept (so do not continue those)."""
    seen: set[str] = set()
    out: list[str] = []
    continued = False
    for line in text.splitlines():
        body = line.lstrip()
        is_key_line = not continued and body[:1] not in ("#", "!", "")
        odd_backslashes = (len(line) - len(line.rstrip("\\"))) % 2 == 1
        continued = (is_key_line or continued) and odd_backslashes
        match = _KEY_LINE.match(line) if is_key_line else None
        if match and match.group(1) in values:
            key = match.group(1)
            line = f"{key} = {values[key]}"
            seen.add(key)
        out.append(line)
    missing = [key for key in values if key not in seen]
    if missing:
        out.append("")
        out.append("# Set by workshop.local.stack.render_properties")
        out.extend(f"{key} = {values[key]}" for key in missing)
    return "\n".join(out) + "\n"


class LocalStack:
    """moto (DynamoDB) + kinesis-mock (Kinesis) on 127.0.0.1, for one ``with`` block.

    >>> with LocalStack(work_dir) as stack:
    ...     stack.create_stream("events", 2)
    ...     subprocess.run(cmd, env=stack.child_env())
    """

    def __init__(
        self,
        work_dir: Path | str | None = None,
        region: str = REGION,
        moto_port: int | None = None,
        kinesis_port: int | None = None,
    ) -> None:
        self.work_dir = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="ecs-state-stack-"))
        self.region = region
        self._ports = (moto_port, kinesis_port)
        self.moto: Server | None = None
        self.kinesis: Server | None = None

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # Both take a second or two to come up: spawn both, then wait for each.
        try:
            self.kinesis = spawn_kinesis_mock(
                self._ports[1],
                log_path=self.work_dir / "kinesis-mock.log",
                work_dir=self.work_dir / "kinesis-mock",
                region=self.region,
            )
            self.moto = spawn_moto(self._ports[0], log_path=self.work_dir / "moto.log")
            self.kinesis.wait_ready(60)
            self.moto.wait_ready(60)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for server in (self.kinesis, self.moto):
            if server is not None:
                server.stop()

    def _require(self) -> tuple[Server, Server]:
        if self.moto is None or self.kinesis is None:
            raise StackError("LocalStack is not started: use it as a context manager or call start()")
        return self.moto, self.kinesis

    @property
    def dynamodb_endpoint(self) -> str:
        return self._require()[0].endpoint

    @property
    def kinesis_endpoint(self) -> str:
        return self._require()[1].endpoint

    @property
    def env(self) -> dict[str, str]:
        """Variables a child process needs to reach this stack through boto3's / the Java SDK's standard
        settings (boto3 reads AWS_DEFAULT_REGION, the Java SDK AWS_REGION: both are set)."""
        return local_env({}, dynamodb=self.dynamodb_endpoint, kinesis=self.kinesis_endpoint, region=self.region)

    def child_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment) without real-account settings, plus ``env``."""
        return {**local_env(base, region=self.region), **self.env}

    def client(self, service: str) -> Any:
        """boto3 client for ``dynamodb`` or ``kinesis`` of this stack."""
        endpoint = {"dynamodb": self.dynamodb_endpoint, "kinesis": self.kinesis_endpoint}.get(service)
        if endpoint is None:
            raise ValueError(f"the local stack serves dynamodb and kinesis, not {service!r}")
        return aws_client(service, endpoint, self.region)

    def create_stream(self, name: str, shards: int, deadline_s: float = 30.0) -> dict[str, Any]:
        return create_stream(self.client("kinesis"), name, shards, deadline_s)

    def properties_values(self) -> dict[str, str]:
        return {
            "kinesisEndpoint": self.kinesis_endpoint,
            "dynamoDBEndpoint": self.dynamodb_endpoint,
            "regionName": self.region,
        }

    def render_properties(
        self, template: Path | str = LOCAL_PROPERTIES, dest: Path | str | None = None, **overrides: str
    ) -> Path:
        """Write a copy of ``template`` with this stack's endpoints and region (and ``overrides``) filled in;
        default destination ``<work_dir>/properties/<template name>``. The daemon puts the file's folder on
        its classpath, so it gets a folder of its own."""
        template = Path(template)
        try:
            text = template.read_text(encoding="utf-8")
        except OSError as exc:
            raise StackError(f"cannot read properties template {template}: {exc.strerror}") from exc
        dest = Path(dest) if dest else self.work_dir / "properties" / template.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(render_properties(text, {**self.properties_values(), **overrides}), encoding="utf-8")
        return dest


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket in LISTEN state on ``port`` (from /proc/net/tcp{,6}; Linux)."""
    found: set[str] = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in lines:
            cols = row.split()
            local, state = cols[1], cols[3]
            addr_hex, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port:
                continue
            raw = bytes.fromhex(addr_hex)
            if width == 8:
                found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
            else:
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found
