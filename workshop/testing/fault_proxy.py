"""A fault-injecting HTTP proxy in front of the DynamoDB emulator, for tests and the fault benchmark.

Clients reach it the standard way (``AWS_ENDPOINT_URL_DYNAMODB=<proxy.endpoint>``); it forwards every request to
the upstream (the moto server) over keep-alive connections, except when a ``Rule`` picks the request, in which
case it answers the way DynamoDB does when it is in trouble:

=============  ===========================================================================================
kind           what the client gets (botocore's view)
=============  ===========================================================================================
throttle       HTTP 400 ``ProvisionedThroughputExceededException`` (ClientError)
throttling     HTTP 400 ``ThrottlingException`` (ClientError)
internal       HTTP 500 ``InternalServerError`` (ClientError)
unavailable    HTTP 503 ``ServiceUnavailable`` (ClientError)
reset          the connection is reset (TCP RST) without a reply (ConnectionClosedError); nothing forwarded
slow           the reply comes ``delay_s`` late (ReadTimeoutError when that is past the client's read timeout);
               with ``forward=True`` the request reaches the upstream first (the write takes effect, the
               client does not learn it); ``then="drop"`` resets the connection instead of replying
=============  ===========================================================================================

A rule applies to the operations named in ``operations`` (the ``X-Amz-Target`` suffix, e.g. ``PutItem``; empty:
all), inside its window (``start_s`` .. ``stop_s`` seconds after it was installed), with ``probability``, at
most ``limit`` times. Rules are tried in order; each one that matches draws from one seeded RNG. Counters per
kind and per operation are readable in-process (``FaultProxy.counts()``) or over HTTP (``GET /__faults__``);
``PUT /__faults__/rules`` (a JSON list of rules) and ``DELETE /__faults__/rules`` change the rules of a proxy
running in another process (``python -m workshop faults --upstream URL``, or ``python -m workshop faults``).

Standard library only: ``http.server.ThreadingHTTPServer`` (HTTP/1.1, one thread per client connection) and one
``http.client`` upstream connection per client connection.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import json
import random
import socket
import struct
import threading
import time
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable
from urllib.parse import urlsplit

from workshop.errors import FaultConfigError

HOST = "127.0.0.1"
CONTROL_PATH = "/__faults__"
_DDB = "com.amazonaws.dynamodb.v20120810#"
_CORAL = "com.amazon.coral.availability#"

#: kind -> (HTTP status, DynamoDB ``__type``, message) for the faults that are error replies.
ERROR_REPLIES: dict[str, tuple[int, str, str]] = {
    "throttle": (
        400,
        _DDB + "ProvisionedThroughputExceededException",
        "The level of configured provisioned throughput for the table was exceeded. (injected by the fault proxy)",
    ),
    "throttling": (
        400,
        _CORAL + "ThrottlingException",
        "Rate of requests exceeds the allowed throughput. (injected by the fault proxy)",
    ),
    "internal": (500, _DDB + "InternalServerError", "Internal server error (injected by the fault proxy)"),
    "unavailable": (503, _DDB + "ServiceUnavailable", "Service unavailable (injected by the fault proxy)"),
}
KINDS = (*ERROR_REPLIES, "reset", "slow")
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)


@dataclass
class Rule:
    kind: str
    probability: float = 1.0
    operations: frozenset[str] = frozenset()
    start_s: float = 0.0
    stop_s: float | None = None
    limit: int | None = None
    delay_s: float = 0.0
    then: str = "reply"
    forward: bool = True
    injected: int = field(default=0, compare=False)
    installed_at: float = field(default=0.0, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.operations = frozenset(self.operations)
        if self.kind not in KINDS:
            raise FaultConfigError(f"rule kind {self.kind!r} is unknown; use one of {', '.join(KINDS)}")
        if not 0.0 <= self.probability <= 1.0:
            raise FaultConfigError(f"rule probability {self.probability} must be between 0 and 1")
        if self.stop_s is not None and self.stop_s < self.start_s:
            raise FaultConfigError(f"rule window stop_s {self.stop_s} is before start_s {self.start_s}")
        if self.kind == "slow" and self.delay_s <= 0:
            raise FaultConfigError("a slow rule needs delay_s > 0 (make it longer than the client's read timeout)")
        if self.then not in ("reply", "drop"):
            raise FaultConfigError(f"rule then={self.then!r}: use 'reply' or 'drop'")

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Rule:
        known = {f.name for f in dataclasses.fields(cls) if f.init} - {"injected", "installed_at"}
        unknown = set(raw) - known
        if unknown:
            raise FaultConfigError(f"unknown rule fields {sorted(unknown)}; known: {sorted(known)}")
        operations = raw.get("operations") or ()
        if isinstance(operations, str):
            raise FaultConfigError(f"rule operations must be a list of names, e.g. [\"{operations}\"]")
        return cls(**{**raw, "operations": frozenset(operations)})

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["operations"] = sorted(self.operations)
        out.pop("installed_at")
        return out

    def matches(self, operation: str, now: float) -> bool:
        if self.operations and operation not in self.operations:
            return False
        if self.limit is not None and self.injected >= self.limit:
            return False
        age = now - self.installed_at
        return age >= self.start_s and (self.stop_s is None or age < self.stop_s)


@dataclass(frozen=True)
class Exchange:
    """One request as the proxy saw it (kept only with ``record=True``)."""

    started: float  # time.monotonic()
    operation: str
    digest: str  # sha256 of the request body: a retry of the same request has the same digest
    outcome: str  # "forwarded", "upstream-error" or a fault kind


def operation_of(target: str | None) -> str:
    """``DynamoDB_20120810.PutItem`` -> ``PutItem``; no header -> ``""``."""
    return (target or "").rpartition(".")[2]


def error_body(kind: str) -> tuple[int, bytes]:
    status, type_, message = ERROR_REPLIES[kind]
    return status, json.dumps({"__type": type_, "message": message}).encode()


class FaultProxy:
    """The proxy; ``start()`` serves it on a thread, ``stop()`` (or the context manager) ends it."""

    def __init__(
        self,
        upstream: str,
        rules: Iterable[Rule] = (),
        *,
        seed: int = 0,
        host: str = HOST,
        port: int = 0,
        record: bool = False,
        upstream_timeout_s: float = 60.0,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise FaultConfigError(f"upstream {upstream!r} must be an http://host:port URL (the emulator)")
        self.upstream = (parts.hostname, parts.port or 80)
        self.upstream_timeout_s = upstream_timeout_s
        self.record = record
        self.history: list[Exchange] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._counts: Counter[str] = Counter()
        self._by_operation: dict[str, Counter[str]] = {}
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server = _Server((host, port), _Handler, self)
        self._thread: threading.Thread | None = None
        self.set_rules(rules)

    # --- lifecycle ---------------------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            open_connections = list(self._connections)
        for sock in open_connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread:
            self._thread.join(10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- rules and counters ------------------------------------------------------------------------------------

    def set_rules(self, rules: Iterable[Rule]) -> None:
        """Replace the rules; their windows start now."""
        now = time.monotonic()
        rules = list(rules)
        for rule in rules:
            rule.installed_at = now
        with self._lock:
            self._rules = rules

    def add_rule(self, rule: Rule) -> None:
        rule.installed_at = time.monotonic()
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        """No more faults: everything is forwarded from now on."""
        self.set_rules([])

    @property
    def rules(self) -> list[Rule]:
        with self._lock:
            return list(self._rules)

    def counts(self) -> dict[str, int]:
        """``connections`` (client connections accepted), ``requests``, ``forwarded``, ``upstream-error`` and one
        entry per fault kind injected so far."""
        with self._lock:
            return {"connections": 0, "requests": 0, "forwarded": 0, **self._counts}

    def counts_by_operation(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {op: dict(c) for op, c in self._by_operation.items()}

    def injected(self, *kinds: str) -> int:
        """How many faults of these kinds (all kinds if none given) were injected so far."""
        counts = self.counts()
        return sum(counts.get(k, 0) for k in (kinds or KINDS))

    def decide(self, operation: str) -> Rule | None:
        """The rule that faults this request, or None to forward it. Counts the request."""
        now = time.monotonic()
        with self._lock:
            self._counts["requests"] += 1
            chosen = None
            for rule in self._rules:
                if rule.matches(operation, now) and self._rng.random() < rule.probability:
                    rule.injected += 1
                    chosen = rule
                    break
            return chosen

    def _note(self, operation: str, outcome: str, started: float, body: bytes) -> None:
        with self._lock:
            self._counts[outcome] += 1
            self._by_operation.setdefault(operation or "-", Counter())[outcome] += 1
            if self.record:
                self.history.append(Exchange(started, operation, hashlib.sha256(body).hexdigest(), outcome))

    def snapshot(self) -> dict[str, Any]:
        return {
            "counts": self.counts(),
            "by_operation": self.counts_by_operation(),
            "rules": [r.to_dict() for r in self.rules],
        }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that goes away (timed out, killed, reset) is routine here; anything else is printed."""
        import sys

        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: botocore reuses its pooled connections
    server: _Server
    _upstream: http.client.HTTPConnection | None = None

    # --- plumbing ----------------------------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.proxy._lock:
            self.server.proxy._connections.add(self.connection)
            self.server.proxy._counts["connections"] += 1

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        with self.server.proxy._lock:
            self.server.proxy._connections.discard(self.connection)
        if self._upstream is not None:
            self._upstream.close()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        pass  # quiet: tests read the counters, not an access log

    def do_POST(self) -> None:
        self._handle()

    do_GET = do_PUT = do_DELETE = do_POST

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        reason = self.responses.get(status, ("",))[0]
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [
            f"{name}: {value}"
            for name, value in headers
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length"
        ]
        lines.append(f"Content-Length: {len(body)}")
        try:
            # One write for head and body: two small writes would meet Nagle + delayed ACK (40 ms each).
            self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        except OSError:  # the client gave up (its read timed out) before a late reply
            self.close_connection = True

    def _reset(self) -> None:
        """Close the client connection with a TCP RST, without a reply."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send the request upstream on this connection's keep-alive upstream connection (one fresh retry when a
        reused connection turns out to be closed: the upstream never saw that request)."""
        for attempt in (1, 2):
            reused = self._upstream is not None
            if self._upstream is None:
                self._upstream = http.client.HTTPConnection(
                    *self.server.proxy.upstream, timeout=self.server.proxy.upstream_timeout_s
                )
            conn = self._upstream
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                        conn.putheader(name, value)
                conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
                response = conn.getresponse()
                data = response.read()
                if response.will_close:
                    conn.close()
                    self._upstream = None
                return response.status, response.getheaders(), data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                self._upstream = None
                if not reused or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    # --- the proxy ---------------------------------------------------------------------------------------------

    def _handle(self) -> None:
        proxy = self.server.proxy
        started = time.monotonic()
        body = self._read_body()
        if self.path.split("?")[0].rstrip("/").startswith(CONTROL_PATH):
            self._control(body)
            return
        operation = operation_of(self.headers.get("X-Amz-Target"))
        rule = proxy.decide(operation)
        if rule is None or (rule.kind == "slow" and rule.forward):
            try:
                status, headers, data = self._forward(body)
            except OSError as exc:
                proxy._note(operation, "upstream-error", started, body)
                message = f"fault proxy: upstream {proxy.upstream[0]}:{proxy.upstream[1]} failed: {exc}"
                self._reply(502, [("Content-Type", "text/plain")], message.encode())
                return
        if rule is None:
            proxy._note(operation, "forwarded", started, body)
            self._reply(status, headers, data)
            return
        proxy._note(operation, rule.kind, started, body)
        if rule.kind in ERROR_REPLIES:
            code, payload = error_body(rule.kind)
            self._reply(
                code,
                [
                    ("Content-Type", "application/x-amz-json-1.0"),
                    ("x-amzn-RequestId", str(uuid.uuid4())),
                    ("x-amz-crc32", str(zlib.crc32(payload))),
                ],
                payload,
            )
        elif rule.kind == "reset":
            self._reset()
        else:  # slow
            proxy._stopping.wait(rule.delay_s)
            if rule.then == "drop" or proxy._stopping.is_set():
                self._reset()
            elif rule.forward:
                self._reply(status, headers, data)
            else:
                self._reset()  # nothing was forwarded, so there is no reply to give late

    def _control(self, body: bytes) -> None:
        proxy = self.server.proxy
        try:
            if self.command == "GET":
                result: Any = proxy.snapshot()
            elif self.command == "PUT" and self.path.rstrip("/").endswith("/rules"):
                raw = json.loads(body or b"[]")
                if not isinstance(raw, list):
                    raise FaultConfigError("PUT /__faults__/rules takes a JSON list of rules")
                proxy.set_rules(Rule.from_dict(r) for r in raw)
                result = proxy.snapshot()
            elif self.command == "DELETE" and self.path.rstrip("/").endswith("/rules"):
                proxy.clear()
                result = proxy.snapshot()
            else:
                raise FaultConfigError(
                    f"{self.command} {self.path}: use GET {CONTROL_PATH}, "
                    f"PUT {CONTROL_PATH}/rules or DELETE {CONTROL_PATH}/rules"
                )
        except (ValueError, TypeError) as exc:
            self._reply(400, [("Content-Type", "text/plain")], f"{exc}\n".encode())
            return
        self._reply(200, [("Content-Type", "application/json")], json.dumps(result).encode())
