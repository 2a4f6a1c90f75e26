"""Helpers shared by the tests that drive the processor through the MultiLang protocol: fresh tables for a run, a
mixed event stream, the expected state computed from the records themselves, the stored state, and the durability
check run at every checkpoint request."""

from __future__ import annotations

import functools
import os
import random
import time
from typing import Any

from processor import aws
from processor.config import Settings
from processor.core.events import Event, decode
from processor.ops.setup_tables import ensure_tables
from workshop.testing.factories import as_json, as_msgpack, instance_arn, instance_event, task_arn, task_event
from workshop.testing.multilang_driver import Checkpoint, KinesisRecord

POISON = [
    b"{truncated",
    b"\xff\xfe",
    b"[]",
    b"null",
    b'{"source":"aws.ec2"}',
    b'{"source":"aws.ecs","detail-type":"ECS Task State Change","detail":{"taskArn":"x","version":"1"}}',
]


def unique_settings(prefix: str) -> Settings:
    """Fresh table names (the moto server is shared), tables created."""
    suffix = f"{prefix}-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    s = Settings(task_table=f"t-{suffix}", instance_table=f"i-{suffix}", dead_letter_table=f"d-{suffix}")
    ensure_tables(s)
    return s


def env_for(s: Settings, **extra: str) -> dict[str, str]:
    return {
        "ECS_STATE_TASK_TABLE": s.task_table,
        "ECS_STATE_INSTANCE_TABLE": s.instance_table,
        "ECS_STATE_DEAD_LETTER_TABLE": s.dead_letter_table,
        "ECS_STATE_FLUSH_INTERVAL_MILLIS": "0",
        "ECS_STATE_WRITE_RETRY_BUDGET_MILLIS": "3000",
        **extra,
    }


def make_stream(seed: int, arns: int = 40, versions: int = 12, poison_every: int = 37) -> list[tuple[str, bytes]]:
    """Events for ``arns`` resources, each with versions 1..N, duplicated, shuffled within a window, mixed
    formats, with poison records and ignored types sprinkled in."""
    rng = random.Random(seed)
    out: list[tuple[str, bytes]] = []
    for v in range(1, versions + 1):
        for n in range(arns):
            maker, arn = (task_event, task_arn(n)) if n % 3 else (instance_event, instance_arn(n))
            doc = maker(arn, v, "RUNNING" if v < versions else "STOPPED")
            data = (as_json if rng.random() < 0.7 else as_msgpack)(doc)
            out.append((arn, data))
            if rng.random() < 0.2:
                out.append((arn, data))  # duplicate delivery
    window = 25
    for start in range(0, len(out), window):
        chunk = out[start : start + window]
        rng.shuffle(chunk)
        out[start : start + window] = chunk
    for i in range(poison_every, len(out), poison_every):
        out.insert(i, ("poison", POISON[i % len(POISON)]))
    out.insert(5, ("svc", b'{"source":"aws.ecs","detail-type":"ECS Service Action","detail":{}}'))
    return out


def expected_state(records: list[KinesisRecord]) -> tuple[dict[str, int], set[str]]:
    """Highest version per ARN and the sequence numbers of poison records, from the records themselves."""
    best: dict[str, int] = {}
    poison: set[str] = set()
    for r in records:
        event = decode(r.data)
        if isinstance(event, Event):
            best[event.arn] = max(best.get(event.arn, -1), event.version)
        elif r.partition_key == "poison":
            poison.add(r.sequence_number)
    return best, poison


@functools.lru_cache(maxsize=None)
def _dynamodb(endpoint: str | None) -> Any:
    return aws.client("dynamodb")  # building a client costs ~0.1 s: one per endpoint


def stored_state(s: Settings) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
    ddb = _dynamodb(os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or os.environ.get("AWS_ENDPOINT_URL"))
    state: dict[str, int] = {}
    for table, key in ((s.task_table, "taskArn"), (s.instance_table, "containerInstanceArn")):
        for page in ddb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                state[item[key]["S"]] = int(item["version"]["N"])
    dead: dict[str, dict[str, Any]] = {}
    for page in ddb.get_paginator("scan").paginate(TableName=s.dead_letter_table):
        for item in page["Items"]:
            dead[item["sequenceNumber"]["S"]] = item
    return state, dead


class DurabilityCheck:
    """At every checkpoint request: everything at or before that sequence number must already be in DynamoDB."""

    def __init__(self, s: Settings, records: list[KinesisRecord]) -> None:
        self.s, self.records, self.checked = s, records, 0

    def __call__(self, cp: Checkpoint) -> str | None:
        covered = (
            self.records
            if cp.sequence_number is None
            else [r for r in self.records if r.sequence_number <= cp.sequence_number]
        )
        best, poison = expected_state(covered)
        state, dead = stored_state(self.s)
        behind = {arn: v for arn, v in best.items() if state.get(arn, -1) < v}
        assert not behind, f"checkpoint at {cp.sequence_number} before these were durable: {list(behind.items())[:3]}"
        assert poison <= set(dead), f"checkpoint before dead letters {sorted(poison - set(dead))[:3]} were durable"
        self.checked += 1
        return None
