"""Small builders of ECS events for the core tests (the producer has the realistic generator)."""

from __future__ import annotations

import json
from typing import Any

import msgpack

from processor.core.dead_letters import DeadLetter
from processor.core.events import Ignored
from processor.core.items import Item
from processor.core.position import Position
from processor.core.route import Candidate, admit, build

CLUSTER = "arn:aws:ecs:us-east-1:123456789012:cluster/default"


def task_arn(n: int) -> str:
    return f"arn:aws:ecs:us-east-1:123456789012:task/default/{n:032x}"


def instance_arn(n: int) -> str:
    return f"arn:aws:ecs:us-east-1:123456789012:container-instance/default/{n:032x}"


def task_event(arn: str, version: int, status: str = "RUNNING", **detail: Any) -> dict[str, Any]:
    return {
        "version": "0",
        "id": f"id-{arn[-6:]}-{version}",
        "detail-type": "ECS Task State Change",
        "source": "aws.ecs",
        "account": "123456789012",
        "time": "2026-11-29T10:00:00Z",
        "region": "us-east-1",
        "resources": [arn],
        "detail": {
            "taskArn": arn,
            "clusterArn": CLUSTER,
            "lastStatus": status,
            "desiredStatus": "RUNNING",
            "version": version,
            "containers": [{"name": "web", "lastStatus": status}],
            "cpu": "256",
            "memory": "512",
            **detail,
        },
    }


def instance_event(arn: str, version: int, status: str = "ACTIVE", **detail: Any) -> dict[str, Any]:
    return {
        "version": "0",
        "id": f"id-{arn[-6:]}-{version}",
        "detail-type": "ECS Container Instance State Change",
        "source": "aws.ecs",
        "account": "123456789012",
        "time": "2026-11-29T10:00:00Z",
        "region": "us-east-1",
        "resources": [arn],
        "detail": {
            "containerInstanceArn": arn,
            "clusterArn": CLUSTER,
            "status": status,
            "version": version,
            "agentConnected": True,
            "runningTasksCount": 3,
            **detail,
        },
    }


def as_json(event: Any) -> bytes:
    return json.dumps(event).encode()


def as_msgpack(event: Any) -> bytes:
    return msgpack.packb(event, use_bin_type=True)


ACCOUNT, REGION = "123456789012", "us-east-1"
CLUSTER_A = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/alpha"
CLUSTER_B = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/beta"


def task_arn_in(cluster: str, task_id: str) -> str:
    """A long-form task ARN in a named cluster (the read side's tests)."""
    return f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{cluster}/{task_id}"


def instance_arn_in(cluster: str, instance_id: str) -> str:
    """A long-form container-instance ARN in a named cluster."""
    return f"arn:aws:ecs:{REGION}:{ACCOUNT}:container-instance/{cluster}/{instance_id}"


def route(
    data: bytes, position: Position, partition_key: str, arrival_ms: int | None, task_retention_hours: int = 0
) -> Item | DeadLetter | Ignored:
    """One record -> the state item it yields, the dead letter it becomes, or ``Ignored`` (``admit`` then ``build``
    at once, as the processor does across a flush window): for tests and tools that want one record's item."""
    admitted = admit(data, position, partition_key, arrival_ms, task_retention_hours)
    return build(admitted, task_retention_hours) if isinstance(admitted, Candidate) else admitted
