"""docs/reading.md: every ``python`` block of the reader guide runs, in order, against the moto server, on tables
made by ``ecs-state setup``'s schema and items built by the processor's item builder; each example answers what
the items say, and none of them scans."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

from processor.aws import client
from processor.config import Settings
from processor.core.events import Event
from processor.core.items import build_item
from processor.core.position import Position
from processor.ops.repair import put_conditionally
from processor.ops.setup_tables import ensure_tables

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "reading.md"
PREFIX = "arn:aws:ecs:us-east-1:123456789012"
CLUSTER = f"{PREFIX}:cluster/prod"
INSTANCE = f"{PREFIX}:container-instance/prod/ci-1"
OOM = "OutOfMemoryError: Container killed due to memory usage"


def _task(task_id: str, status: str, cluster: str = CLUSTER, **detail: Any) -> Event:
    name = cluster.rsplit("/", 1)[1]
    arn = f"{PREFIX}:task/{name}/{task_id}"
    body = {"taskArn": arn, "clusterArn": cluster, "lastStatus": status, "version": 5, **detail}
    return Event("task", "taskArn", arn, 5, body, "0", f"id-{task_id}", "2026-11-27T12:00:00Z")


def _seed(settings: Settings) -> dict[str, str]:
    ddb = client("dynamodb")
    events = [
        _task(
            "0123456789abcdef0123456789abcdef",
            "RUNNING",
            group="service:web",
            containerInstanceArn=INSTANCE,
            startedAt="2026-11-27T08:00:00.000Z",
        ),
        _task(
            "b" * 32,
            "STOPPED",
            group="service:web",
            containerInstanceArn=INSTANCE,
            startedAt="2026-11-27T07:00:00.000Z",
            stoppedAt="2026-11-27T09:07:00.000Z",
            stopCode="EssentialContainerExited",
            stoppedReason="Essential container in task exited",
            containers=[{"name": "web", "exitCode": 137, "reason": OOM}],
        ),
        _task("c" * 32, "RUNNING", group="family:batch", startedAt="2026-11-27T10:00:00.000Z"),
        _task(
            "d" * 32,
            "RUNNING",
            cluster=f"{PREFIX}:cluster/other",
            group="service:web",
            startedAt="2026-11-27T08:00:00.000Z",
        ),
        _task(
            "e" * 32,
            "STOPPED",
            group="service:web",
            startedAt="2026-11-26T07:00:00.000Z",
            stoppedAt="2026-11-26T08:00:00.000Z",
            stopCode="UserInitiated",
        ),
    ]
    instance = Event(
        "instance",
        "containerInstanceArn",
        INSTANCE,
        3,
        {
            "containerInstanceArn": INSTANCE,
            "clusterArn": CLUSTER,
            "ec2InstanceId": "i-0123456789abcdef0",
            "status": "ACTIVE",
            "version": 3,
        },
        "0",
        "id-ci",
        "2026-11-27T12:00:00Z",
    )
    for n, event in enumerate([*events, instance]):
        table = settings.task_table if event.kind == "task" else settings.instance_table
        assert put_conditionally(ddb, table, build_item(event, Position("shardId-000000000000", str(n))))
    return {e.detail["taskArn"].rsplit("/", 1)[1][0]: e.arn for e in events}


def _blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", GUIDE.read_text(encoding="utf-8"), re.DOTALL | re.MULTILINE)


def test_the_reader_guides_examples_run_and_answer_from_the_indexes_without_a_scan(moto_server: Any) -> None:
    n = random.randrange(10**6)
    settings = Settings(task_table=f"guide-t-{n}", instance_table=f"guide-i-{n}", dead_letter_table=f"guide-d-{n}")
    ensure_tables(settings)
    arn = _seed(settings)
    blocks = _blocks()
    assert len(blocks) == 7
    namespace: dict[str, Any] = {}
    calls: list[str] = []
    for i, block in enumerate(blocks):
        code = block.replace('"ECSTaskState"', repr(settings.task_table)).replace(
            '"ECSCtrInstanceState"', repr(settings.instance_table)
        )
        exec(compile(code, f"{GUIDE}:block{i}", "exec"), namespace)  # noqa: S102 (the guide's own examples)
        if i == 0:
            namespace["ddb"].meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))

    def ids(items: list[dict[str, Any]]) -> set[str]:
        return {item["taskArn"] for item in items}

    assert namespace["task"]["taskArn"] == arn["0"] and namespace["task"]["version"] == 5
    assert ids(namespace["running"]) == {arn["0"], arn["c"]}
    assert ids(namespace["on_instance"]) == {arn["0"], arn["b"]}
    assert ids(namespace["in_service"]) == {arn["0"], arn["b"], arn["e"]}
    assert [t["taskArn"] for t in namespace["stopped"]] == [arn["b"]]
    assert namespace["reasons"] == [
        (
            "2026-11-27T09:07:00.000Z",
            "EssentialContainerExited",
            "Essential container in task exited",
            [("web", 137, OOM)],
        )
    ]
    assert ids(namespace["running_at"]) == {arn["0"], arn["b"]}
    assert calls and set(calls) <= {"GetItem", "BatchGetItem", "Query"}
