"""processor/ops/questions.py: TIME / DURATION parsing, the time filters, the days of a window, task ARNs from ids,
and a task's story in plain words."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from processor.errors import ReadError
from processor.ops import questions as q

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


def test_times_are_read_as_ecs_writes_them_and_a_time_without_offset_is_utc() -> None:
    assert q.parse_time("2026-11-27T09:07:00.000Z") == datetime(2026, 11, 27, 9, 7, tzinfo=timezone.utc)
    assert q.parse_time("2026-11-27T09:07:00") == datetime(2026, 11, 27, 9, 7, tzinfo=timezone.utc)
    assert q.parse_time("2026-11-27T10:07:00+01:00") == datetime(2026, 11, 27, 9, 7, tzinfo=timezone.utc)
    assert q.ecs_time(datetime(2026, 11, 27, 9, 7, 0, 123456, tzinfo=timezone.utc)) == "2026-11-27T09:07:00.123Z"
    with pytest.raises(ReadError, match="ISO 8601"):
        q.parse_time("yesterday")


def test_since_takes_a_duration_before_now_or_a_time() -> None:
    assert q.parse_since("90m", NOW) == NOW - timedelta(minutes=90)
    assert q.parse_since("2h", NOW) == NOW - timedelta(hours=2)
    assert q.parse_since("7d", NOW) == NOW - timedelta(days=7)
    assert q.parse_since("2026-11-27T09:07:00.000Z", NOW) == datetime(2026, 11, 27, 9, 7, tzinfo=timezone.utc)
    assert q.parse_duration("2w") is None


def test_running_at_a_time_means_started_at_or_before_and_not_stopped_by_then() -> None:
    at = q.parse_time("2026-11-27T09:00:00.000Z")
    assert q.running_at({"startedAt": "2026-11-27T09:00:00.000Z"}, at)
    assert q.running_at({"startedAt": "2026-11-27T08:00:00.000Z", "stoppedAt": "2026-11-27T09:00:00.001Z"}, at)
    assert not q.running_at({"startedAt": "2026-11-27T08:00:00.000Z", "stoppedAt": "2026-11-27T09:00:00.000Z"}, at)
    assert not q.running_at({"startedAt": "2026-11-27T09:00:00.001Z"}, at)
    assert not q.running_at({"lastStatus": "PENDING"}, at)  # never started
    assert not q.running_at({"startedAt": "2026-11-27T08:00:00.000Z", "stoppedAt": "garbage"}, at)


def test_a_window_covers_its_utc_days_newest_first_and_stopped_tasks_sort_newest_first() -> None:
    since, until = q.parse_time("2026-11-25T23:00:00Z"), q.parse_time("2026-11-27T01:00:00Z")
    assert q.days_between(since, until) == ["2026-11-27", "2026-11-26", "2026-11-25"]
    assert q.days_between(until, since) == []
    items = [
        {"taskArn": "a", "stoppedAt": "2026-11-26T00:00:00.000Z"},
        {"taskArn": "b", "stoppedAt": "2026-11-26T05:00:00.000Z"},
    ]
    assert [it["taskArn"] for it in q.newest_stopped_first(items)] == ["b", "a"]
    assert q.stopped_between(items[0], since, until) and not q.stopped_between({"stoppedAt": None}, since, until)


def test_a_task_id_becomes_an_arn_with_its_cluster() -> None:
    cluster = "arn:aws:ecs:us-east-1:123456789012:cluster/prod"
    assert q.task_arn("abc", cluster) == "arn:aws:ecs:us-east-1:123456789012:task/prod/abc"
    assert q.task_arn("arn:aws:ecs:us-east-1:1:task/x/y", None) == "arn:aws:ecs:us-east-1:1:task/x/y"
    with pytest.raises(ReadError, match="--cluster"):
        q.task_arn("abc", None)
    assert q.service_group("web") == "service:web" == q.service_group("service:web")


def test_the_story_of_an_oom_kill_names_the_container_the_exit_code_and_the_stop_code_in_plain_words() -> None:
    item = {
        "taskArn": "arn:aws:ecs:us-east-1:1:task/prod/abc",
        "clusterArn": "arn:aws:ecs:us-east-1:1:cluster/prod",
        "group": "service:web",
        "containerInstanceArn": "arn:aws:ecs:us-east-1:1:container-instance/prod/ci",
        "startedAt": "2026-11-27T08:00:00.000Z",
        "stoppedAt": "2026-11-27T09:30:00.000Z",
        "lastStatus": "STOPPED",
        "desiredStatus": "STOPPED",
        "version": 7,
        "stopCode": "EssentialContainerExited",
        "stoppedReason": "Essential container in task exited",
        "containers": [
            {
                "name": "web",
                "lastStatus": "STOPPED",
                "exitCode": 137,
                "reason": "OutOfMemoryError: Container killed due to memory usage",
            },
            {"name": "envoy", "lastStatus": "STOPPED", "exitCode": 0},
        ],
    }
    told = dict(q.story(item).lines)
    assert told["ran on"] == "container instance arn:aws:ecs:us-east-1:1:container-instance/prod/ci"
    assert told["ran for"] == "1:30:00"
    assert told["stop code"].startswith("EssentialContainerExited: an essential container exited")
    assert "out of memory" in told["container web"] and "exit 137" in told["container web"]
    assert told["container envoy"].endswith("exited normally (0)")
    assert "container web" in q.render_story(q.story(item))
    assert q.containers_summary(item) == ("web:137(OutOfMemoryError: Container killed due to memory usage) envoy:0")


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("TaskFailedToStart", "never reached RUNNING"),
        ("UserInitiated", "StopTask"),
        ("ServiceSchedulerInitiated", "service scheduler"),
        ("SpotInterruption", "Spot capacity"),
        ("TerminationNotice", "retired or terminated"),
        ("SomethingNew", "not one of the common ones"),
    ],
)
def test_each_common_stop_code_has_plain_words(code: str, words: str) -> None:
    assert words in q.reading_of_stop_code(code)


def test_common_reasons_are_read_health_checks_and_image_pulls() -> None:
    assert "health checks" in str(q.reading_of_reason("Task failed ELB health checks in (target-group x)"))
    assert "image could not be pulled" in str(q.reading_of_reason("CannotPullContainerError: pull image manifest"))
    assert q.reading_of_reason("Essential container in task exited") is None
    assert q.reading_of_exit(None, None).startswith("no exit code")
    told = dict(q.story({"taskArn": "t", "lastStatus": "RUNNING"}).lines)
    assert told["stop"].startswith("not stopped")


def test_the_status_at_a_time_is_read_from_created_started_and_stopped() -> None:
    task = {
        "createdAt": "2026-11-27T08:00:00.000Z",
        "startedAt": "2026-11-27T09:00:00.000Z",
        "stoppedAt": "2026-11-27T10:00:00.000Z",
        "lastStatus": "STOPPED",
    }

    def at(text: str) -> str | None:
        return q.status_at(task, q.parse_time(text))

    assert at("2026-11-27T07:59:59Z") is None  # not created yet
    assert at("2026-11-27T08:00:00Z") == "PENDING"
    assert at("2026-11-27T09:00:00Z") == "RUNNING"
    assert at("2026-11-27T09:59:59.999Z") == "RUNNING"
    assert at("2026-11-27T10:00:00Z") == "STOPPED"
    never_started = {"createdAt": "2026-11-27T08:00:00.000Z", "stoppedAt": "2026-11-27T08:05:00.000Z"}
    assert q.status_at(never_started, q.parse_time("2026-11-27T08:01:00Z")) == "PENDING"
    assert q.check_at_status("RUNNING") == "RUNNING"
    with pytest.raises(ReadError, match="only PENDING, RUNNING, STOPPED"):
        q.check_at_status("DEACTIVATING")


def test_times_durations_and_the_days_of_a_window_are_checked_with_one_line_errors() -> None:
    now = datetime(2026, 11, 27, tzinfo=timezone.utc)
    assert q.check_time("--at", now + timedelta(hours=23), now) == now + timedelta(hours=23)
    for bad in (datetime(1999, 12, 31, tzinfo=timezone.utc), now + timedelta(days=1, seconds=1)):
        with pytest.raises(ReadError, match="--at .* is out of range"):
            q.check_time("--at", bad, now)
    assert q.parse_duration_arg("--silent-for", "3650d") == timedelta(days=3650)
    for bad in ("0s", "3651d"):
        with pytest.raises(ReadError, match="out of range"):
            q.parse_duration_arg("--silent-for", bad)
    with pytest.raises(ReadError, match="is not a duration"):
        q.parse_duration_arg("--silent-for", "soon")
    days = q.days_between(now - timedelta(days=31), now)
    assert len(days) == 32 and q.check_days(days[:31], 31) == days[:31] and q.check_days(days, 0) == days
    with pytest.raises(ReadError, match="covers 32 UTC days .* more than --max-days 31"):
        q.check_days(days, 31)
