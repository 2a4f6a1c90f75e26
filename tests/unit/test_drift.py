"""reconcile's judgement: live ECS vs stored versions, pure."""

from __future__ import annotations

import json

import pytest

from processor.ops import drift as reconcile
from processor.ops.drift import Finding, Seen, State, compare, judge

ARN = "arn:aws:ecs:us-east-1:123456789012:task/c/1"


@pytest.mark.parametrize(
    "live, stored, state",
    [
        (Seen(3, "RUNNING"), Seen(3, "RUNNING"), "ok"),
        (Seen(3, "RUNNING"), None, "missing"),
        (Seen(4, "RUNNING"), Seen(3, "PENDING"), "behind"),
        (Seen(4, "RUNNING"), Seen(None, "RUNNING"), "behind"),
        (Seen(3, "RUNNING"), Seen(5, "STOPPED"), "ahead"),
        (None, Seen(5, "RUNNING"), "only-in-table"),
        (None, Seen(5, "STOPPED"), "gone"),
        (Seen(None, "RUNNING"), Seen(2, "RUNNING"), "unversioned"),
        (Seen(None, "RUNNING"), Seen(2, "PENDING"), "status-differs"),
    ],
)
def test_judge_task(live: Seen | None, stored: Seen | None, state: str) -> None:
    finding = judge("task", ARN, live, stored)
    assert finding.state == state
    assert finding.drift == (state in ("missing", "behind", "ahead", "only-in-table", "status-differs"))


def test_judge_instance_final_status_is_inactive() -> None:
    assert judge("instance", ARN, None, Seen(3, "INACTIVE")).state == "gone"
    assert judge("instance", ARN, None, Seen(3, "STOPPED")).state == "only-in-table"
    with pytest.raises(ValueError):
        judge("task", ARN, None, None)


def test_compare_covers_both_sides_and_sorts_drift_first() -> None:
    findings = compare(
        "task",
        {"a": Seen(1, "RUNNING"), "b": Seen(2, "RUNNING")},
        {"b": Seen(2, "RUNNING"), "c": Seen(1, "STOPPED"), "d": Seen(1, "RUNNING")},
    )
    assert [(f.arn, f.state) for f in findings] == [
        ("a", "missing"),
        ("d", "only-in-table"),
        ("c", "gone"),
        ("b", "ok"),
    ]
    assert findings[0] == Finding("task", "a", State.MISSING, 1, None, "RUNNING", None)


def test_reports() -> None:
    findings = [
        Finding("task", "arn:t/1", State.BEHIND, 4, 3, "RUNNING", "PENDING"),
        Finding("task", "arn:t/2", State.OK, 1, 1, "RUNNING", "RUNNING"),
    ]
    text = reconcile.report_table("arn:c", findings, show_all=False)
    assert "arn:t/1" in text and "arn:t/2" not in text
    assert text.splitlines()[-1] == "arn:c: DRIFT (1 ok, 1 behind)"
    data = json.loads(reconcile.report_json("arn:c", findings, show_all=True))
    assert data["drift"] is True and data["counts"] == {"ok": 1, "behind": 1} and len(data["findings"]) == 2
    assert reconcile.report_table("arn:c", findings[1:], show_all=False) == "arn:c: no drift (1 ok)\n"


def test_seen_from_items_and_ecs() -> None:
    items = [{"taskArn": {"S": "a"}, "version": {"N": "12"}, "lastStatus": {"S": "RUNNING"}}, {"taskArn": {"S": "b"}}]
    assert reconcile.seen_from_items(items, "taskArn", "lastStatus") == {
        "a": Seen(12, "RUNNING"),
        "b": Seen(None, None),
    }
    assert reconcile.seen_from_ecs(
        [{"taskArn": "a", "version": 7, "lastStatus": "STOPPED"}], "taskArn", "lastStatus"
    ) == {"a": Seen(7, "STOPPED")}
