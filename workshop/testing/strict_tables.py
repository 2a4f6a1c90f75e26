"""DynamoDB's table-level refusals that moto does not make, reproduced in front of it: an HTTP proxy for tests.

moto accepts requests that real DynamoDB refuses because of how a *table* is made, so a test against moto alone
cannot see them. ``StrictTables`` forwards every request to the moto server, except these, which it answers as
DynamoDB does (HTTP 400, ``ValidationException``, DynamoDB's words; sources in docs/field-notes.md):

- CreateTable on a provisioned-capacity table (``BillingMode`` PROVISIONED or absent) with a global index without
  ``ProvisionedThroughput``: "One or more parameter values were invalid: ProvisionedThroughput is not specified for
  index: NAME"; on an on-demand table, a global index with it: "... ProvisionedThroughput should not be specified
  for index: NAME when BillingMode is PAY_PER_REQUEST".
- UpdateTable creating a global index without ``ProvisionedThroughput`` on a table whose billing mode is
  PROVISIONED: the first message above.
- PutItem whose item lacks a table key attribute ("Missing the key K in the item"), has it with another type
  ("Type mismatch for key K expected: S actual: N"), or has an index key attribute (global or local index) with
  another type than the table declares ("Type mismatch for Index Key K Expected: S Actual: N IndexName: NAME").

Item-level refusals (item size, numbers, empty values) are not this layer's. The table descriptions it judges by are
read from the upstream (DescribeTable, signed with the caller's own ``Authorization`` header so that moto finds the
same region and account). Standard library only.
"""

from __future__ import annotations

import http.client
import json
import threading
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from workshop.errors import FaultConfigError

HOST = "127.0.0.1"
VALIDATION = "com.amazon.coral.validate#ValidationException"
INVALID = "One or more parameter values were invalid: "
_PASS_HEADERS = ("Authorization", "X-Amz-Date", "X-Amz-Security-Token", "User-Agent")


def _provisioned(billing_mode: str | None) -> bool:
    return (billing_mode or "PROVISIONED") == "PROVISIONED"


def create_table_refusal(request: dict[str, Any]) -> str | None:
    """What DynamoDB says to this CreateTable about its indexes' throughput, or None."""
    provisioned = _provisioned(request.get("BillingMode"))
    for index in request.get("GlobalSecondaryIndexes") or []:
        has = "ProvisionedThroughput" in index
        if provisioned and not has:
            return f"{INVALID}ProvisionedThroughput is not specified for index: {index['IndexName']}"
        if not provisioned and has:
            return (
                f"{INVALID}ProvisionedThroughput should not be specified for index: {index['IndexName']} when "
                f"BillingMode is PAY_PER_REQUEST"
            )
    return None


def update_table_refusal(request: dict[str, Any], table: dict[str, Any]) -> str | None:
    """What DynamoDB says to this UpdateTable creating an index on the described table, or None."""
    mode = request.get("BillingMode") or (table.get("BillingModeSummary") or {}).get("BillingMode")
    if mode is None:  # a table described without a summary was made with provisioned capacity
        mode = "PROVISIONED" if (table.get("ProvisionedThroughput") or {}).get("ReadCapacityUnits") else None
    for update in request.get("GlobalSecondaryIndexUpdates") or []:
        create = update.get("Create")
        if create and _provisioned(mode) and "ProvisionedThroughput" not in create:
            return f"{INVALID}ProvisionedThroughput is not specified for index: {create['IndexName']}"
    return None


def put_item_refusal(item: dict[str, Any], table: dict[str, Any]) -> str | None:
    """What DynamoDB says to a PutItem of ``item`` into the described table about its keys, or None."""
    declared = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions") or []}
    for key in table.get("KeySchema") or []:
        name = key["AttributeName"]
        if name not in item:
            return f"{INVALID}Missing the key {name} in the item"
        [actual] = item[name]
        if actual != declared.get(name):
            return f"{INVALID}Type mismatch for key {name} expected: {declared.get(name)} actual: {actual}"
    for index in [*(table.get("GlobalSecondaryIndexes") or []), *(table.get("LocalSecondaryIndexes") or [])]:
        for key in index.get("KeySchema") or []:
            name = key["AttributeName"]
            if name not in item:
                continue  # sparse: the item is not in that index
            [actual] = item[name]
            if actual != declared.get(name):
                return (
                    f"{INVALID}Type mismatch for Index Key {name} Expected: {declared.get(name)} Actual: {actual} "
                    f"IndexName: {index['IndexName']}"
                )
    return None


class StrictTables:
    """The proxy; ``start()`` serves it on a thread, ``stop()`` (or the context manager) ends it. ``refused``
    counts the refusals per operation."""

    def __init__(self, upstream: str, *, host: str = HOST, port: int = 0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise FaultConfigError(f"upstream {upstream!r} must be an http://host:port URL (the emulator)")
        self.upstream = (parts.hostname, parts.port or 80)
        self.refused: Counter[str] = Counter()
        self.lock = threading.Lock()
        self._server = _Server((host, port), _Handler, self)
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> StrictTables:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="strict-tables", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(10)

    def __enter__(self) -> StrictTables:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def post(self, headers: dict[str, str], body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """One request to the upstream on a fresh connection: (status, headers, body)."""
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            conn.request("POST", "/", body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def describe(self, table: str, caller: dict[str, str]) -> dict[str, Any] | None:
        headers = {
            **{k: v for k, v in caller.items() if k in _PASS_HEADERS},
            "X-Amz-Target": "DynamoDB_20120810.DescribeTable",
            "Content-Type": "application/x-amz-json-1.0",
        }
        status, _, body = self.post(headers, json.dumps({"TableName": table}).encode())
        return json.loads(body)["Table"] if status == 200 else None

    def judge(self, operation: str, request: dict[str, Any], caller: dict[str, str]) -> str | None:
        """DynamoDB's refusal of this request (module docstring), or None to forward it."""
        if operation == "CreateTable":
            return create_table_refusal(request)
        if operation in ("UpdateTable", "PutItem"):
            table = self.describe(str(request.get("TableName")), caller)
            if table is None:
                return None  # the upstream answers for a missing table
            if operation == "UpdateTable":
                return update_table_refusal(request, table)
            return put_item_refusal(request.get("Item") or {}, table)
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], proxy: StrictTables) -> None:
        super().__init__(address, handler)
        self.proxy = proxy


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        pass

    def do_POST(self) -> None:
        proxy = self.server.proxy
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        operation = (self.headers.get("X-Amz-Target") or "").rpartition(".")[2]
        caller = {k: v for k, v in self.headers.items()}
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            request = None
        refusal = proxy.judge(operation, request, caller) if isinstance(request, dict) else None
        if refusal is not None:
            with proxy.lock:
                proxy.refused[operation] += 1
            payload = json.dumps({"__type": VALIDATION, "message": refusal}).encode()
            headers = [("Content-Type", "application/x-amz-json-1.0"), ("x-amz-crc32", str(zlib.crc32(payload)))]
            self._reply(400, headers, payload)
            return
        forward = {k: v for k, v in caller.items() if k.lower() not in ("connection", "content-length", "host")}
        status, headers, data = proxy.post(forward, body)
        self._reply(status, headers, data)

    def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("connection", "content-length", "transfer-encoding", "keep-alive"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
