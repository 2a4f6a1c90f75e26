"""The ground truth of a generated stream and its file (processor.loadgen.ground_truth)."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import pytest

from processor.loadgen.fleet import generate
from processor.loadgen.ground_truth import GroundTruth, load_truth
from processor.loadgen.records import Options, Record


def take(options: Options, n: int) -> list[Record]:
    return list(itertools.islice(generate(options), n))


def test_truth_is_the_highest_version_per_arn_with_its_status(tmp_path: Path) -> None:
    records = take(Options(seed=21, duplicate_rate=0.1, reorder_window=20, poison_rate=0.05, ignored_rate=0.03), 5000)
    truth = GroundTruth()
    for rec in records:
        truth.add(rec)
    expected: dict[str, dict[str, tuple[int, str]]] = {"task": {}, "instance": {}}
    for rec in records:  # recomputed from the bytes, not from the Record metadata
        if rec.kind in ("task", "instance"):
            detail = json.loads(rec.data)["detail"]
            arn = detail["taskArn" if rec.kind == "task" else "containerInstanceArn"]
            status = detail["lastStatus" if rec.kind == "task" else "status"]
            if arn not in expected[rec.kind] or detail["version"] > expected[rec.kind][arn][0]:
                expected[rec.kind][arn] = (detail["version"], status)
    truth.save(tmp_path / "truth.json")
    data = load_truth(tmp_path / "truth.json")
    assert {a: (v["version"], v["lastStatus"]) for a, v in data["tasks"].items()} == expected["task"]
    assert {a: (v["version"], v["status"]) for a, v in data["containerInstances"].items()} == expected["instance"]
    poison = [r for r in records if r.kind == "poison"]
    assert [p["sha256"] for p in data["poison"]] == [hashlib.sha256(r.data).hexdigest() for r in poison]
    assert [p["partitionKey"] for p in data["poison"]] == [r.partition_key for r in poison]
    assert data["ignored"]["count"] == sum(r.kind == "ignored" for r in records) > 0
    totals = data["totals"]
    assert totals["records"] == 5000 and totals["bytes"] == sum(len(r.data) for r in records)
    assert totals["duplicates"] == sum(r.duplicate for r in records) > 0
    assert totals["tasks"] == len(expected["task"]) and totals["instances"] == len(expected["instance"])


def test_load_truth_explains_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read truth file"):
        load_truth(tmp_path / "absent.json")
    (tmp_path / "half.json").write_text('{"format": ')
    with pytest.raises(ValueError, match="not JSON"):
        load_truth(tmp_path / "half.json")
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(ValueError, match="not an ecs-state truth file"):
        load_truth(tmp_path / "other.json")
