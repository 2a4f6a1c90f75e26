"""The ground truth of a generated record stream: what the records sent mean, and its JSON file.

:class:`GroundTruth` accumulates, per task and container instance ARN, the highest version sent and its status,
plus the poison records (by sha256) and the ignored ones. The producer feeds it only with records Kinesis
accepted and saves it (``ecs-state produce --truth FILE``); ``ecs-state verify`` reads it back with
:func:`load_truth` and compares the tables with it; the benchmark uses it to count stale ARNs. Pure apart from
:meth:`GroundTruth.save` / :func:`load_truth`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from processor.loadgen.records import Record


@dataclass
class GroundTruth:
    """What the records sent mean. Task and instance maps hold ``[highest version, its status]`` per ARN."""

    tasks: dict[str, list[Any]] = field(default_factory=dict)
    instances: dict[str, list[Any]] = field(default_factory=dict)
    poison: list[dict[str, Any]] = field(default_factory=list)
    ignored: Counter[str] = field(default_factory=Counter)
    ignored_sha256: list[str] = field(default_factory=list)
    totals: Counter[str] = field(default_factory=Counter)
    meta: dict[str, Any] = field(default_factory=dict)

    def add(self, rec: Record) -> None:
        self.totals["records"] += 1
        self.totals["bytes"] += len(rec.data)
        if rec.kind in ("task", "instance"):
            self.totals[f"{rec.kind}_events"] += 1
            if rec.duplicate:
                self.totals["duplicates"] += 1
            table = self.tasks if rec.kind == "task" else self.instances
            current = table.get(rec.arn)
            if current is None or rec.version > current[0]:
                table[rec.arn] = [rec.version, rec.status]
        elif rec.kind == "poison":
            self.totals["poison"] += 1
            self.poison.append(
                {
                    "partitionKey": rec.partition_key,
                    "sha256": hashlib.sha256(rec.data).hexdigest(),
                    "kind": rec.detail,
                    "length": len(rec.data),
                }
            )
        elif rec.kind == "ignored":
            self.totals["ignored"] += 1
            self.ignored[rec.detail] += 1
            self.ignored_sha256.append(hashlib.sha256(rec.data).hexdigest())
        else:
            raise ValueError(f"record of unknown kind {rec.kind!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "ecs-state-truth/1",
            "meta": self.meta,
            "totals": {
                "records": 0,
                "bytes": 0,
                "task_events": 0,
                "instance_events": 0,
                "duplicates": 0,
                "poison": 0,
                "ignored": 0,
                **self.totals,
                "tasks": len(self.tasks),
                "instances": len(self.instances),
            },
            "tasks": {arn: {"version": v, "lastStatus": s} for arn, (v, s) in self.tasks.items()},
            "containerInstances": {arn: {"version": v, "status": s} for arn, (v, s) in self.instances.items()},
            "poison": self.poison,
            "ignored": {"count": self.totals["ignored"], "byType": dict(self.ignored), "sha256": self.ignored_sha256},
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the truth JSON atomically (temporary file + rename)."""
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, target)


def load_truth(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a truth file written by :meth:`GroundTruth.save`; the message says what is wrong otherwise."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(
            f"cannot read truth file {path}: {exc.strerror}; write one with `ecs-state produce --truth {path}`"
        ) from exc
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"truth file {path} is not JSON ({exc}); was the producer interrupted while writing it?"
        ) from exc
    if not isinstance(data, dict) or data.get("format") != "ecs-state-truth/1":
        raise ValueError(f"{path} is not an ecs-state truth file (no \"format\": \"ecs-state-truth/1\")")
    return data
