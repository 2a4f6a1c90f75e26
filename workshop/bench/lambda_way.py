"""The ``lambda`` / ``lambda-8`` contenders: the documented per-event Lambda logic, in a child process of its own.

* Per event (:func:`lambda_handler`): ``get_item`` on the ARN, then an unconditional ``put_item`` of ``detail`` +
  ``cw_version`` when there is no item or the stored version is lower; boto3's resource API, as the documented
  Lambda. It decodes with the processor's own decoder (same events accepted, same JSON decoding cost), then
  turns the detail's floats into ``Decimal`` (:func:`floats_as_decimals`, what the usual
  ``json.loads(json.dumps(detail), parse_float=Decimal)`` does): boto3 refuses floats, so the documented code as
  written fails on every container-instance event (their
  resources carry ``"doubleValue": 0.0``) and a contender that fails a fifth of its events cheaply is no
  measure of a working Lambda. By
  default ``get_item`` fetches only ``version`` (cheaper for the Lambda than the documented whole-item read, and
  much faster on moto); ``full_get`` for the literal one.
* ``lambda`` runs sequentially; ``lambda-8`` on N threads pulling from the same stream in order, one client per
  thread (as every concurrent Lambda environment has its own).
* The batched Lambda (``batch`` > 0, :func:`batched_handler`): a Kinesis event source hands it ``batch`` records
  per invocation and, as a Powertools-style batch processor, it decodes each and sends one conditional
  ``put_item`` per state event (only if absent or the stored ``version`` is lower; a refused condition is an
  older event) on ``workers`` threads sharing one client, no read before the write.
* The child (:func:`lambda_child`, ``python -m workshop.bench.lambda_child SPEC``) regenerates the same stream
  from the same options, so nothing but the spec crosses the process boundary; it measures its own CPU
  (``RUSAGE_SELF`` around the work, after its clients were built) and counts every HTTP request botocore sends,
  retries included. A failed event is counted as ``failed`` (a real Lambda would fail the invocation) with its
  first errors kept, one line each.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path
from typing import Any

from processor.config import Settings
from processor.loadgen.fleet import Options, generate
from workshop.bench.cpu import self_cpu
from workshop.bench.emulator import child_env
from workshop.bench.stream import BenchConfig
from workshop.errors import BenchError


def run_lambda(
    cfg: BenchConfig, workers: int, settings: Settings, endpoint: str, work: Path, batch: int = 0
) -> dict[str, Any]:
    """The per-event Lambda logic in a child process (it regenerates the same stream from the same options);
    ``batch`` > 0: the batched Lambda, ``batch`` records per invocation."""
    spec = {
        "batch": batch,
        "options": asdict(cfg.options()),
        "events": cfg.events,
        "workers": workers,
        "tables": {"task": settings.task_table, "instance": settings.instance_table},
        "full_get": cfg.lambda_full_get,
        "out": str(work / f"lambda-{workers}.json"),
    }
    if batch:
        spec["out"] = str(work / f"lambda-batched-{workers}.json")
    spec_path = work / f"lambda-{workers}-{batch}-spec.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    log_path = work / f"lambda-{workers}-{batch}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.run(
            [sys.executable, "-m", "workshop.bench.lambda_child", str(spec_path)],
            env=child_env(endpoint),
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if proc.returncode != 0:
        raise BenchError(f"the Lambda contender ({workers} workers) exited with {proc.returncode}; see {log_path}")
    result: dict[str, Any] = json.loads(Path(str(spec["out"])).read_text(encoding="utf-8"))
    return result


def lambda_handler(data: bytes, tables: dict[str, Any], full_get: bool) -> str:
    """The documented per-event logic for one record: get the stored item, put the event's state when there is
    none or the stored version is lower. Returns ``put``, ``older`` or ``skipped`` (not a state event)."""
    from processor.core.events import Event, decode

    event = decode(data)
    if not isinstance(event, Event):
        return "skipped"
    table = tables[event.kind]
    request: dict[str, Any] = {"Key": {event.key_name: event.arn}}
    if not full_get:
        request.update(ProjectionExpression="#v", ExpressionAttributeNames={"#v": "version"})
    stored = table.get_item(**request).get("Item")
    if stored is not None and stored["version"] >= event.version:
        return "older"
    detail = floats_as_decimals(event.detail)  # boto3 refuses floats
    table.put_item(Item={"cw_version": event.envelope_version, **detail})
    return "put"


def batched_handler(data: bytes, tables: dict[str, Any]) -> str:
    """One record of a batched invocation: a conditional put of the event's state (absent or older stored
    version). Returns ``put``, ``older`` (the condition refused it) or ``skipped`` (not a state event)."""
    from processor.core.events import Event, decode

    event = decode(data)
    if not isinstance(event, Event):
        return "skipped"
    table = tables[event.kind]
    detail = floats_as_decimals(event.detail)  # boto3 refuses floats
    try:
        table.put_item(
            Item={"cw_version": event.envelope_version, **detail, "version": event.version},
            ConditionExpression="attribute_not_exists(#v) OR #v < :v",
            ExpressionAttributeNames={"#v": "version"},
            ExpressionAttributeValues={":v": event.version},
        )
    except table.meta.client.exceptions.ConditionalCheckFailedException:
        return "older"
    return "put"


def floats_as_decimals(value: Any) -> Any:
    """``value`` with every float as the ``Decimal`` of its shortest text (boto3's serialiser refuses floats)."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: floats_as_decimals(v) for k, v in value.items()}
    if isinstance(value, list):
        return [floats_as_decimals(v) for v in value]
    return value


def lambda_child(spec_path: str) -> int:
    """Entry point of the Lambda contender's process: writes its figures as JSON to ``spec["out"]``."""
    import boto3
    from botocore.config import Config

    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    records = list(itertools.islice(generate(Options(**spec["options"])), spec["events"]))
    workers = int(spec["workers"])
    http = [0] * workers
    outcomes: list[dict[str, int]] = [{} for _ in range(workers)]
    errors: list[str] = []
    tables = []
    for w in range(workers):  # one client per worker, as every concurrent Lambda environment has its own
        ddb = boto3.session.Session().resource(
            "dynamodb", config=Config(retries={"mode": "standard", "total_max_attempts": 3}, max_pool_connections=2)
        )

        def count(w: int = w, **_: Any) -> None:
            http[w] += 1

        ddb.meta.client.meta.events.register("before-send.dynamodb", count)
        tables.append({"task": ddb.Table(spec["tables"]["task"]), "instance": ddb.Table(spec["tables"]["instance"])})
    if spec.get("batch"):
        return _batched_child(spec, records, workers)
    feed = iter(records)
    lock = threading.Lock()

    def worker(w: int) -> None:
        while True:
            with lock:
                rec = next(feed, None)
            if rec is None:
                return
            try:
                outcome = lambda_handler(rec.data, tables[w], spec["full_get"])
            except Exception as exc:  # a real Lambda would fail the invocation (and EventBridge retry it)
                outcome = "failed"
                if len(errors) < 5:
                    errors.append(brief_error(exc))
            outcomes[w][outcome] = outcomes[w].get(outcome, 0) + 1

    cpu0, wall0 = self_cpu(), time.perf_counter()
    if workers == 1:
        worker(0)
    else:
        threads = [threading.Thread(target=worker, args=(w,)) for w in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    wall, cpu = time.perf_counter() - wall0, self_cpu() - cpu0
    totals: dict[str, int] = {}
    for o in outcomes:
        for key, value in o.items():
            totals[key] = totals.get(key, 0) + value
    n = len(records)
    result = {
        "events": n,
        "requests": sum(http),
        "requests_per_event": sum(http) / n,
        "cpu_s": round(cpu, 3),
        "cpu_us_per_event": cpu / n * 1e6,
        "wall_s": round(wall, 3),
        "events_per_s": n / wall,
        "workers": workers,
        "outcomes": totals,
        "get_item": sum(v for k, v in totals.items() if k != "skipped"),
        "errors": errors,
        "full_get": spec["full_get"],
    }
    Path(spec["out"]).write_text(json.dumps(result), encoding="utf-8")
    return 0


def _batched_child(spec: dict[str, Any], records: list[Any], workers: int) -> int:
    """The batched Lambda: one client, ``workers`` threads per invocation of ``spec["batch"]`` records."""
    import boto3
    from botocore.config import Config

    ddb = boto3.session.Session().resource(
        "dynamodb", config=Config(retries={"mode": "standard", "total_max_attempts": 3}, max_pool_connections=workers)
    )
    http = [0]
    lock = threading.Lock()

    def count(**_: Any) -> None:
        with lock:
            http[0] += 1

    ddb.meta.client.meta.events.register("before-send.dynamodb", count)
    tables = {"task": ddb.Table(spec["tables"]["task"]), "instance": ddb.Table(spec["tables"]["instance"])}
    errors: list[str] = []
    totals: dict[str, int] = {}

    def one(data: bytes) -> str:
        try:
            return batched_handler(data, tables)
        except Exception as exc:  # Powertools would report the record as a batch item failure
            if len(errors) < 5:
                errors.append(brief_error(exc))
            return "failed"

    size = int(spec["batch"])
    cpu0, wall0 = self_cpu(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for a in range(0, len(records), size):
            for outcome in pool.map(one, [r.data for r in records[a : a + size]]):
                totals[outcome] = totals.get(outcome, 0) + 1
    wall, cpu = time.perf_counter() - wall0, self_cpu() - cpu0
    n = len(records)
    result = {
        "events": n,
        "requests": http[0],
        "requests_per_event": http[0] / n,
        "cpu_s": round(cpu, 3),
        "cpu_us_per_event": cpu / n * 1e6,
        "wall_s": round(wall, 3),
        "events_per_s": n / wall,
        "workers": workers,
        "batch": size,
        "outcomes": totals,
        "errors": errors,
    }
    Path(spec["out"]).write_text(json.dumps(result), encoding="utf-8")
    return 0


def brief_error(exc: BaseException) -> str:
    """One line: moto's 500 replies carry an HTML page after the message."""
    text = str(exc).split("\n", 1)[0].split(": <", 1)[0]
    return f"{type(exc).__name__}: {text[:200]}"
