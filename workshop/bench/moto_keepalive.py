"""moto's DynamoDB under waitress, with a capacity meter: the volume benchmark's keep-alive endpoint.

``moto_server`` (werkzeug) answers ``Connection: close`` on every request, so a client's keep-alive pool cannot be
measured against it; moto's WSGI app under waitress keeps HTTP/1.1 connections alive. Loopback only.

The meter (:class:`Meter`, a WSGI middleware) prices every DynamoDB request the way DynamoDB bills on-demand
tables, from the request and reply bodies:
- ``PutItem``: a write unit per KB (rounded up, at least 1) of the larger of the new item and the item it
  replaces, whether the put succeeded or failed its condition (a failed conditional write is billed too);
- ``GetItem`` / ``BatchGetItem``: a read unit per 4 KB (rounded up, at least 1) of each *whole* stored item per
  key read, found or not (a projection does not lower it; strongly consistent pricing, the upper bound);
- item sizes follow DynamoDB's rules (:func:`item_size`: names + values; numbers ~1 byte per 2 digits + 1); the
  stored size of each key is learnt from the successful puts seen (keys from each table's ``CreateTable``).
``GET /__meter__`` returns the counts as JSON (per operation: requests, outcomes, units), ``DELETE /__meter__``
returns them and resets them. Figures are the benchmark's, not AWS's bill: compare them between passes and contenders.

Usage: ``python -m workshop.bench.moto_keepalive PORT``
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterable

from workshop.local.stack import Server

CONTROL_PATH = "/__meter__"
READ_UNITS_PER_WRITE_UNIT = 5  # the price: 5 read units cost what 1 write unit does


def value_size(value: dict[str, Any]) -> int:
    """DynamoDB's size of one attribute value (DynamoDB JSON)."""
    ((kind, v),) = value.items()
    if kind == "S":
        return len(v.encode("utf-8"))
    if kind == "N":
        return len(v.lstrip("-").replace(".", "").lstrip("0")) // 2 + 2
    if kind == "B":
        return len(base64.b64decode(v))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + value_size(x) for x in v)
    if kind == "M":
        return 3 + sum(len(k.encode("utf-8")) + 1 + value_size(x) for k, x in v.items())
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: x}) for x in v)
    return len(json.dumps(v))


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB's size of an item: each attribute's name and value."""
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())


class Meter:
    """WSGI middleware pricing every DynamoDB request; see the module docstring."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.keys: dict[str, list[str]] = {}  # table -> key attribute names
        self.sizes: dict[tuple[str, str], int] = {}  # (table, key values) -> stored item size
        self.counts: dict[str, dict[str, float]] = {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == CONTROL_PATH:
            return self._control(environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith("DynamoDB_"):
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        status: list[str] = []

        def capture(s: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            status.append(s)
            return start_response(s, headers, *rest)

        reply = b"".join(self.app(environ, capture))
        try:
            self._price(target.rsplit(".", 1)[-1], json.loads(body or b"{}"), int(status[0].split()[0]), reply)
        except Exception as exc:  # the meter must never break the emulator
            logging.getLogger("meter").warning("meter: %s", exc)
        return [reply]

    def _key(self, table: str, item: dict[str, Any]) -> tuple[str, str]:
        names = self.keys.get(table) or sorted(item)[:1]
        return table, json.dumps([item.get(n) for n in names], sort_keys=True)

    def _price(self, operation: str, request: dict[str, Any], status: int, reply: bytes) -> None:
        answer = json.loads(reply or b"{}") if status != 200 or operation == "BatchGetItem" else {}
        code = str(answer.get("__type", "")).rsplit("#", 1)[-1] if status != 200 else "ok"
        write = read = 0.0
        with self.lock:
            if operation == "CreateTable" and status == 200:
                self.keys[request["TableName"]] = [k["AttributeName"] for k in request["KeySchema"]]
            elif operation == "PutItem" and code in ("ok", "ConditionalCheckFailedException"):
                table, item = request["TableName"], request["Item"]
                key, size = self._key(table, item), item_size(item)
                write = max(1, math.ceil(max(size, self.sizes.get(key, 0)) / 1024))
                if code == "ok":
                    self.sizes[key] = size
            elif operation == "GetItem" and status == 200:
                key = self._key(request["TableName"], request["Key"])
                read = max(1, math.ceil(self.sizes.get(key, 0) / 4096))
            elif operation == "BatchGetItem" and status == 200:
                unprocessed = answer.get("UnprocessedKeys") or {}
                for table, entry in request["RequestItems"].items():
                    skipped = {json.dumps(k, sort_keys=True) for k in unprocessed.get(table, {}).get("Keys", [])}
                    for k in entry["Keys"]:
                        if json.dumps(k, sort_keys=True) not in skipped:
                            read += max(1, math.ceil(self.sizes.get(self._key(table, k), 0) / 4096))
            row = self.counts.setdefault(operation, {"requests": 0, "write_units": 0.0, "read_units": 0.0})
            row["requests"] += 1
            row[code] = row.get(code, 0) + 1
            row["write_units"] += write
            row["read_units"] += read

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            ops = {op: dict(row) for op, row in self.counts.items()}
        write = sum(r["write_units"] for r in ops.values())
        read = sum(r["read_units"] for r in ops.values())
        return {
            "operations": ops,
            "requests": sum(int(r["requests"]) for r in ops.values()),
            "write_units": write,
            "read_units": read,
            "write_unit_equivalents": write + read / READ_UNITS_PER_WRITE_UNIT,
        }

    def _control(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        counts = self.snapshot()
        if environ.get("REQUEST_METHOD") == "DELETE":
            with self.lock:
                self.counts.clear()
        body = json.dumps(counts).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def start(log_path: Path | None = None) -> Server:
    """This server as a child process on a free loopback port, once it answers (``Server.stop()`` ends it)."""
    from processor.worker.supervisor import die_with_parent
    from workshop.local.stack import free_port

    port = free_port()
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-m", "workshop.bench.moto_keepalive", str(port)],
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=die_with_parent(),
    )
    if not isinstance(out, int):
        out.close()
    return Server("moto (waitress, keep-alive)", proc, port, log_path, {"ready_path": "/moto-api/"}).wait_ready(60)


def meter(endpoint: str, reset: bool = False) -> dict[str, Any]:
    """The meter's counts so far (``reset``: and zero them, so the next reading covers what follows)."""
    request = urllib.request.Request(endpoint + CONTROL_PATH, method="DELETE" if reset else "GET")
    with urllib.request.urlopen(request, timeout=30) as reply:
        counts: dict[str, Any] = json.loads(reply.read())
    return counts


def main(argv: list[str]) -> int:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from waitress import serve

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    app = Meter(DomainDispatcherApplication(create_backend_app))
    serve(app, host="127.0.0.1", port=int(argv[0]), threads=8, connection_limit=400, channel_timeout=300, ident="moto")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
