"""An in-memory DynamoDB behind the ``DynamoDBTransport`` seam, with faults injected at the seam: the fake the
writer's unit tests and the generative tests at the client seam use (never the product's). It is a handler of
the seam's one method, ``call(operation, request)``, as the real client is.

Rules:
- It implements what the shard runtime sends and nothing more: ``PutItem`` (unconditional, or with the writer's
  condition: absent, stored ``version`` missing or not a number, or lower; a failed condition answers
  ``ConditionalCheckFailedException`` with the stored item when ``ALL_OLD`` is asked), ``BatchGetItem`` (with
  ``ProjectionExpression`` ignored: whole items come back), and ``DescribeTable`` (the spec ``core/schema.py``
  gives for the table, or ``ResourceNotFoundException``). Requests may be mappings or serialised bytes.
- ``fault(operation, n)`` is asked before the n-th request (1-based, over all operations): an exception to raise,
  a ``Response`` to answer instead, or None to serve it. A fault is injected before the request is applied, so
  a faulted write is never durable (the fake's ``items`` are exactly what is durable).
- Items are keyed by their whole primary key (hash and range attributes).
- Thread-safe (the writer calls it from its pool).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Mapping

import orjson

from processor.core.schema import catalog_table_spec, table_specs
from processor.shard.dynamodb_http import Response

Fault = Callable[[str, int], "BaseException | Response | None"]


def _no_fault(operation: str, n: int) -> None:
    return None


class FakeDynamoDB:
    """See the module docstring. ``tables`` maps table names to their key attributes (hash, then range)."""

    def __init__(
        self, tables: Mapping[str, tuple[str, ...]], fault: Fault = _no_fault, specs: list[dict[str, Any]] | None = None
    ) -> None:
        self.keys = dict(tables)
        self.items: dict[str, dict[tuple[str, ...], dict[str, Any]]] = {name: {} for name in tables}
        self.specs = {spec["TableName"]: spec for spec in specs or []}
        self.fault = fault
        self.requests: list[str] = []  # operation names, in order
        self.tables_written: list[str] = []  # the TableName of every PutItem asked for, faulted or not
        self._lock = threading.Lock()

    @classmethod
    def for_settings(
        cls,
        task_table: str,
        instance_table: str,
        dead_letter_table: str,
        fault: Fault = _no_fault,
        catalog_table: str = "ECSClusterCatalog",
    ) -> FakeDynamoDB:
        """The tables ``Settings.tables`` names: the three of ``table_specs`` and the cluster catalogue (which the
        fake only describes: the writers under test here have no catalogue)."""
        specs = [*table_specs(task_table, instance_table, dead_letter_table), catalog_table_spec(catalog_table)]
        return cls(
            {spec["TableName"]: tuple(k["AttributeName"] for k in spec["KeySchema"]) for spec in specs}, fault, specs
        )

    def _key(self, table: str, item: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(str(next(iter(item[name].values()))) for name in self.keys[table])

    def version(self, table: str, *key: str) -> int | None:
        """The stored version of the item with this primary key (its values, hash then range), or None."""
        item = self.items[table].get(tuple(key))
        return int(item["version"]["N"]) if item and "version" in item else None

    # -- DynamoDBTransport ------------------------------------------------------------------------------------

    def call(self, operation: str, request: Mapping[str, Any] | bytes) -> Response:
        body = orjson.loads(request) if isinstance(request, (bytes, bytearray)) else dict(request)
        with self._lock:
            self.requests.append(operation)
            n = len(self.requests)
            if operation == "PutItem":
                self.tables_written.append(str(body.get("TableName")))
        injected = self.fault(operation, n)
        if isinstance(injected, BaseException):
            raise injected
        if isinstance(injected, Response):
            return injected
        handler = self._HANDLERS.get(operation)
        if handler is None:
            return self._error("UnknownOperationException", f"the fake does not implement {operation}")
        with self._lock:
            return handler(self, body)

    # -- operations, under the lock -----------------------------------------------------------------------------

    @staticmethod
    def _error(code: str, message: str, **extra: Any) -> Response:
        return Response(
            400, code, message, {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message, **extra}
        )

    def _PutItem(self, body: dict[str, Any]) -> Response:
        table, item = body["TableName"], body["Item"]
        if table not in self.items:
            return self._error("ResourceNotFoundException", "Requested resource not found")
        key = self._key(table, item)
        stored = self.items[table].get(key)
        if "ConditionExpression" in body and stored is not None:
            held = stored.get("version", {})
            new = int(body["ExpressionAttributeValues"][":v"]["N"])
            if "N" in held and int(held["N"]) >= new:
                extra = {"Item": stored} if body.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" else {}
                return self._error("ConditionalCheckFailedException", "The conditional request failed", **extra)
        self.items[table][key] = item
        return Response(200, "", "", {})

    def _BatchGetItem(self, body: dict[str, Any]) -> Response:
        found: dict[str, list[dict[str, Any]]] = {}
        for table, entry in body["RequestItems"].items():
            if table not in self.items:
                return self._error("ResourceNotFoundException", "Requested resource not found")
            for key in entry["Keys"]:
                stored = self.items[table].get(self._key(table, key))
                if stored is not None:
                    found.setdefault(table, []).append(stored)
        return Response(200, "", "", {"Responses": found, "UnprocessedKeys": {}})

    def _DescribeTable(self, body: dict[str, Any]) -> Response:
        spec = self.specs.get(body["TableName"])
        if spec is None:
            return self._error("ResourceNotFoundException", f"Table {body['TableName']} not found")
        return Response(200, "", "", {"Table": {**spec, "TableStatus": "ACTIVE"}})

    _HANDLERS: dict[str, Callable[[FakeDynamoDB, dict[str, Any]], Response]] = {
        "PutItem": _PutItem,
        "BatchGetItem": _BatchGetItem,
        "DescribeTable": _DescribeTable,
    }
