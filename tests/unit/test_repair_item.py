"""ops/repair.py's pure part: an ECS API description -> the state item reconcile --repair stores."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from processor.core.events import INSTANCE, TASK
from processor.core.items import METADATA_ATTRIBUTES
from processor.ops.drift import Finding, State
from processor.ops.repair import SOURCE_ATTRIBUTE, Repair, repair_item, targets, unresolved
from workshop.testing.factories import instance_arn, instance_event, task_arn, task_event

NOW = datetime(2026, 11, 29, 10, 0, 0, 123000, tzinfo=timezone.utc)


def test_a_task_description_becomes_the_item_an_event_would_give_with_timestamps_as_events_carry_them() -> None:
    started = datetime(2026, 11, 29, 9, 58, 1, 500000, tzinfo=timezone(timedelta(hours=1)))
    description = {
        **task_event(task_arn(1), 7)["detail"],
        "startedAt": started,
        "containers": [{"name": "web", "lastStatus": "RUNNING", "createdAt": started}],
    }
    item = repair_item(TASK, description, NOW)
    attrs = item.attributes
    assert (item.key_name, item.arn, item.version) == ("taskArn", task_arn(1), 7)
    assert attrs["startedAt"] == {"S": "2026-11-29T08:58:01.500Z"}
    assert attrs["containers"]["L"][0]["M"]["createdAt"] == {"S": "2026-11-29T08:58:01.500Z"}
    assert attrs["lastStatus"] == {"S": "RUNNING"} and attrs["version"] == {"N": "7"}
    assert attrs[SOURCE_ATTRIBUTE] == {"S": "ecs-api"}
    assert attrs["kinesis_shard_id"] == {"S": "ecs-api"} and attrs["event_time"] == {"S": "2026-11-29T10:00:00.123Z"}


def test_the_marker_attribute_collides_with_no_detail_field_nor_the_processors_metadata() -> None:
    fields = set(task_event(task_arn(1), 1)["detail"]) | set(instance_event(instance_arn(1), 1)["detail"])
    assert SOURCE_ATTRIBUTE not in fields and SOURCE_ATTRIBUTE not in METADATA_ATTRIBUTES
    assert "_" in SOURCE_ATTRIBUTE and not any("_" in f for f in fields), "ECS fields are camelCase"


def test_a_stopped_task_from_the_api_gets_its_expiry_like_an_event_would() -> None:
    description = {
        **task_event(task_arn(2), 9, status="STOPPED")["detail"],
        "stoppedAt": datetime(2026, 11, 29, 9, 0, tzinfo=timezone.utc),
    }
    item = repair_item(TASK, description, NOW, task_retention_hours=2)
    assert item.attributes["expires_at"] == {
        "N": str(int(datetime(2026, 11, 29, 11, 0, tzinfo=timezone.utc).timestamp()))
    }


def test_only_missing_and_behind_resources_with_an_ecs_version_are_repaired_and_count_as_resolved() -> None:
    findings = [
        Finding(TASK, "a", State.MISSING, 3, None),
        Finding(TASK, "b", State.BEHIND, 3, 2),
        Finding(TASK, "c", State.AHEAD, 3, 4),
        Finding(INSTANCE, "d", State.STATUS_DIFFERS),
        Finding(INSTANCE, "e", State.BEHIND, 5, 1),
        Finding(TASK, "f", State.OK, 1, 1),
    ]
    assert {k: [f.arn for f in v] for k, v in targets(findings).items()} == {TASK: ["a", "b"], INSTANCE: ["e"]}
    repairs = [
        Repair(TASK, "a", "repaired", None, 3),
        Repair(TASK, "b", "newer-in-table", 2, 3),
        Repair(INSTANCE, "e", "unstorable", 1),
    ]
    assert [f.arn for f in unresolved(findings, repairs)] == ["c", "d", "e"]


def test_a_container_instance_description_gets_the_cluster_arn_the_api_leaves_out() -> None:
    description = {k: v for k, v in instance_event(instance_arn(3), 4)["detail"].items() if k != "clusterArn"}
    item = repair_item(INSTANCE, description, NOW, cluster="arn:aws:ecs:us-east-1:123456789012:cluster/prod")
    assert item.attributes["clusterArn"] == {"S": "arn:aws:ecs:us-east-1:123456789012:cluster/prod"}
    kept = repair_item(TASK, task_event(task_arn(3), 4)["detail"], NOW, cluster="other")
    assert kept.attributes["clusterArn"] == {"S": task_event(task_arn(3), 4)["detail"]["clusterArn"]}
