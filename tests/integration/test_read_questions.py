"""The read side's questions against the moto server, on generated lifecycles: the synthetic fleet's tasks placed on
container instances, started and stopped over hours, delivered out of order with duplicates, written with the
processor's item builder and conditional put. Each access pattern must answer exactly what the newest stored
versions say, from an index: every DynamoDB call the reads make is recorded through the boto3 client's event
system, and none may be a Scan."""

from __future__ import annotations

import argparse
import io
import itertools
import json
import re
from datetime import datetime, timezone
from typing import Any

import pytest
from cfn_template import create_tables_from_template, properties_file

from processor.aws import client
from processor.core.events import Event, decode
from processor.core.items import build_item
from processor.core.position import Position
from processor.errors import ReadError
from processor.loadgen.fleet import generate
from processor.loadgen.records import Options
from processor.ops import questions
from processor.ops import read as readside
from processor.ops.repair import put_conditionally

FLEET = Options(seed=5, clusters=2, instances=4, tasks=24, duplicate_rate=0.1, reorder_window=25, step_ms=60_000)
EVENTS = 900


class Calls:
    """The operation names a boto3 client sends (recorded from its ``before-call`` events)."""

    def __init__(self, ddb: Any) -> None:
        self.names: list[str] = []
        ddb.meta.events.register("before-call.dynamodb", self._record)

    def _record(self, model: Any, **_: Any) -> None:
        self.names.append(model.name)


@pytest.fixture(scope="module")
def fleet(moto_server: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    names = create_tables_from_template()
    ddb = client("dynamodb")
    newest: dict[str, dict[str, Any]] = {}
    for n, record in enumerate(itertools.islice(generate(FLEET), EVENTS)):
        event = decode(record.data)
        if not isinstance(event, Event):
            continue
        table = names["task"] if event.kind == "task" else names["instance"]
        put_conditionally(ddb, table, build_item(event, Position("shardId-000000000000", str(n))))
        if event.arn not in newest or newest[event.arn]["version"] < event.version:
            newest[event.arn] = event.detail
    tasks = {arn: d for arn, d in newest.items() if "taskArn" in d}
    instances = {arn: d for arn, d in newest.items() if "taskArn" not in d}
    props = properties_file(tmp_path_factory.mktemp("questions"), names)
    return {"names": names, "tasks": tasks, "instances": instances, "properties": str(props)}


@pytest.fixture()
def ddb() -> Any:
    return client("dynamodb")


def _ids(items: list[dict[str, Any]]) -> list[str]:
    return [str(it["taskArn"]) for it in items]


def _cluster(fleet: dict[str, Any]) -> str:
    """The cluster with the most tasks in the generated lifecycles."""
    counts: dict[str, int] = {}
    for detail in fleet["tasks"].values():
        counts[detail["clusterArn"]] = counts.get(detail["clusterArn"], 0) + 1
    return max(counts, key=counts.__getitem__)


def test_the_generated_lifecycles_have_what_the_questions_need(fleet: dict[str, Any]) -> None:
    tasks = fleet["tasks"].values()
    assert sum(t["lastStatus"] == "STOPPED" for t in tasks) >= 20
    assert sum("containerInstanceArn" in t for t in tasks) >= 10
    assert sum(str(t.get("group", "")).startswith("service:") for t in tasks) >= 10
    stops = sorted(t["stoppedAt"] for t in tasks if t.get("stoppedAt"))
    assert questions.parse_time(stops[-1]) - questions.parse_time(stops[0]) > questions.parse_duration("3h")


@pytest.mark.parametrize("status", [None, "RUNNING", "STOPPED", "PENDING"])
def test_tasks_of_a_cluster_by_status_are_the_newest_versions_from_the_cluster_index(
    fleet: dict[str, Any], ddb: Any, status: str | None
) -> None:
    cluster, calls = _cluster(fleet), Calls(ddb)
    found = readside.find_tasks(ddb, fleet["names"]["task"], fleet["names"]["instance"], cluster, status=status)
    want = {
        arn
        for arn, t in fleet["tasks"].items()
        if t["clusterArn"] == cluster and (status is None or t["lastStatus"] == status)
    }
    assert set(_ids(found)) == want
    assert all(it["version"] == fleet["tasks"][it["taskArn"]]["version"] for it in found)
    assert "Scan" not in calls.names and "Query" in calls.names


def test_tasks_on_an_instance_by_ec2_id_and_by_container_instance_arn(fleet: dict[str, Any], ddb: Any) -> None:
    placed = [t for t in fleet["tasks"].values() if "containerInstanceArn" in t]
    place = max(
        {t["containerInstanceArn"] for t in placed},
        key=lambda ci: sum(t.get("containerInstanceArn") == ci for t in placed),
    )
    instance = fleet["instances"][place]
    cluster, calls = instance["clusterArn"], Calls(ddb)
    for status in (None, "RUNNING", "STOPPED"):
        want = {
            arn
            for arn, t in fleet["tasks"].items()
            if t.get("containerInstanceArn") == place and (status is None or t["lastStatus"] == status)
        }
        for key in (instance["ec2InstanceId"], place):
            found = readside.find_tasks(
                ddb, fleet["names"]["task"], fleet["names"]["instance"], cluster, instance=key, status=status
            )
            assert set(_ids(found)) == want, (key, status)
    assert want and "Scan" not in calls.names


def test_tasks_of_a_service_by_status(fleet: dict[str, Any], ddb: Any) -> None:
    cluster = _cluster(fleet)
    groups = sorted(
        {
            t["group"]
            for t in fleet["tasks"].values()
            if t["clusterArn"] == cluster and t["group"].startswith("service:")
        }
    )
    calls = Calls(ddb)
    for group in groups:
        for status in (None, "RUNNING"):
            found = readside.find_tasks(
                ddb,
                fleet["names"]["task"],
                fleet["names"]["instance"],
                cluster,
                service=group.split(":", 1)[1],
                status=status,
            )
            want = {
                arn
                for arn, t in fleet["tasks"].items()
                if t["clusterArn"] == cluster and t["group"] == group and (status is None or t["lastStatus"] == status)
            }
            assert set(_ids(found)) == want, (group, status)
    assert groups and "Scan" not in calls.names


def test_tasks_running_at_a_time_are_those_started_by_then_and_not_yet_stopped(fleet: dict[str, Any], ddb: Any) -> None:
    cluster = _cluster(fleet)
    starts = sorted(
        t["startedAt"] for t in fleet["tasks"].values() if t.get("startedAt") and t["clusterArn"] == cluster
    )
    calls = Calls(ddb)
    for at in (starts[len(starts) // 3], starts[len(starts) // 2], starts[-1]):
        found = readside.find_tasks(ddb, fleet["names"]["task"], fleet["names"]["instance"], cluster, at=at)
        moment = questions.parse_time(at)
        want = {
            arn for arn, t in fleet["tasks"].items() if t["clusterArn"] == cluster and questions.running_at(t, moment)
        }
        assert set(_ids(found)) == want and want
    assert "Scan" not in calls.names


def test_stopped_in_a_window_newest_first_by_cluster_and_service(fleet: dict[str, Any], ddb: Any) -> None:
    cluster = _cluster(fleet)
    stopped = sorted(
        (t for t in fleet["tasks"].values() if t["clusterArn"] == cluster and t["lastStatus"] == "STOPPED"),
        key=lambda t: t["stoppedAt"],
    )
    since, until = stopped[len(stopped) // 4]["stoppedAt"], stopped[-2]["stoppedAt"]
    now = questions.parse_time(stopped[-1]["stoppedAt"])
    calls = Calls(ddb)
    for service in (None, stopped[len(stopped) // 2]["group"].split(":", 1)[1]):
        found = readside.find_stopped(ddb, fleet["names"]["task"], cluster, since, until, service, now=now)
        want = [
            t
            for t in reversed(stopped)
            if since <= t["stoppedAt"] <= until and (service is None or t["group"] == f"service:{service}")
        ]
        assert _ids(found) == [t["taskArn"] for t in want]
        assert all("stopCode" in it for it in found)
    window = readside.find_stopped(ddb, fleet["names"]["task"], cluster, "2h", None, None, now=now)
    assert _ids(window) == [
        t["taskArn"]
        for t in reversed(stopped)
        if questions.parse_time(t["stoppedAt"]) >= now - questions.parse_duration("2h")
    ]
    end = stopped[len(stopped) // 2]["stoppedAt"]  # a DURATION counts back from --until
    before = readside.find_stopped(ddb, fleet["names"]["task"], cluster, "90m", end, None, now=now)
    start = questions.parse_time(end) - questions.parse_duration("90m")
    assert _ids(before) == [
        t["taskArn"]
        for t in reversed(stopped)
        if t["stoppedAt"] <= end and questions.parse_time(t["stoppedAt"]) >= start
    ]
    assert "Scan" not in calls.names and "Query" in calls.names


def _cli(*argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="ecs-state")
    readside.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    out = io.StringIO()
    return args.func(args, out=out), out.getvalue()


def test_why_tells_the_story_of_a_stopped_task_by_id_and_json_gives_the_item(fleet: dict[str, Any]) -> None:
    task = next(
        t
        for t in sorted(fleet["tasks"].values(), key=lambda t: t["taskArn"])
        if t["lastStatus"] == "STOPPED" and t.get("containers")
    )
    task_id = task["taskArn"].rsplit("/", 1)[1]
    code, out = _cli("why", task_id, "--cluster", task["clusterArn"], "--properties", fleet["properties"])
    assert code == 0
    assert re.search(rf"^stop code +{task['stopCode']}: ", out, re.MULTILINE)
    for container in task["containers"]:
        assert f"container {container['name']}" in out
    code, out = _cli("why", task["taskArn"], "--output", "json", "--properties", fleet["properties"])
    doc = json.loads(out)
    assert doc["item"]["version"] == task["version"] and doc["item"]["containers"] == task["containers"]


def test_every_listing_prints_a_table_by_default_and_a_json_array_of_items_on_request(fleet: dict[str, Any]) -> None:
    cluster = _cluster(fleet)
    last = max(t["stoppedAt"] for t in fleet["tasks"].values() if t.get("stoppedAt"))
    for argv in (
        ("tasks", "--cluster", cluster, "--status", "STOPPED"),
        ("stopped", "--cluster", cluster, "--since", "2025-01-01T00:00:00Z", "--until", last, "--max-days", "0"),
    ):
        code, table = _cli(*argv, "--properties", fleet["properties"])
        assert code == 0 and table.splitlines()[0].split()[0] in ("TASK", "STOPPED")
        code, out = _cli(*argv, "--output", "json", "--properties", fleet["properties"])
        items = json.loads(out)
        assert isinstance(items, list) and items and all("taskArn" in it for it in items)
        assert len(table.splitlines()) == len(items) + 1
    code, out = _cli("get", next(iter(fleet["tasks"])), "--properties", fleet["properties"])
    assert out.splitlines()[0].split() == ["ATTRIBUTE", "VALUE"]


def test_stopped_refuses_a_window_that_ends_before_it_starts(fleet: dict[str, Any], ddb: Any) -> None:
    with pytest.raises(Exception, match="is after --until"):
        readside.find_stopped(
            ddb,
            fleet["names"]["task"],
            _cluster(fleet),
            "2026-01-02T00:00:00Z",
            "2026-01-01T00:00:00Z",
            now=datetime(2026, 1, 3, tzinfo=timezone.utc),
        )


def _instant(text: str) -> datetime:
    """The test's own reading of a stored ECS time (not the product's parser)."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")


def test_tasks_at_a_time_with_a_status_are_those_in_that_status_then(fleet: dict[str, Any], ddb: Any) -> None:
    """The status at T from the stored times: STOPPED once stoppedAt has passed, RUNNING between startedAt and
    stoppedAt, PENDING between createdAt and startedAt; the index is not filtered on the newest status."""
    cluster = _cluster(fleet)
    tasks = [t for t in fleet["tasks"].values() if t["clusterArn"] == cluster]
    stops = sorted(t["stoppedAt"] for t in tasks if t.get("stoppedAt"))
    at = stops[len(stops) // 2]
    moment = _instant(at)

    def then(t: dict[str, Any]) -> str | None:
        if t.get("stoppedAt") and _instant(t["stoppedAt"]) <= moment:
            return "STOPPED"
        if t.get("startedAt") and _instant(t["startedAt"]) <= moment:
            return "RUNNING"
        if t.get("createdAt") and _instant(t["createdAt"]) <= moment:
            return "PENDING"
        return None

    seen = set()
    for status in ("STOPPED", "RUNNING", "PENDING"):
        found = readside.find_tasks(
            ddb, fleet["names"]["task"], fleet["names"]["instance"], cluster, status=status, at=at
        )
        want = {t["taskArn"] for t in tasks if then(t) == status}
        assert set(_ids(found)) == want, status
        seen |= {status} if want else set()
        newest = {t["taskArn"]: t["lastStatus"] for t in tasks}
        if status == "RUNNING":  # some of those running then have stopped since: not the newest status
            assert any(newest[arn] == "STOPPED" for arn in want)
    assert seen >= {"STOPPED", "RUNNING"}


def test_at_with_a_status_that_cannot_be_told_at_a_time_and_bad_times_are_one_line_exit_2(
    fleet: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from processor.ops import cli

    cluster, props = _cluster(fleet), fleet["properties"]
    cases = [
        (["tasks", "--cluster", cluster, "--at", "2025-03-01T01:00:00Z", "--status", "DEPROVISIONING"], "--at with"),
        (["tasks", "--cluster", cluster, "--at", "1999-12-31T00:00:00Z"], "out of range"),
        (["tasks", "--cluster", cluster, "--at", "3026-01-01T00:00:00Z"], "out of range"),
        (["tasks", "--cluster", cluster, "--at", "yesterday"], "is not a time"),
        (["stopped", "--cluster", cluster, "--since", "0h"], "out of range"),
        (["stopped", "--cluster", cluster, "--since", "5000d", "--max-days", "0"], "out of range"),
        (["stopped", "--cluster", cluster, "--since", "40d"], "more than --max-days 31"),
    ]
    for argv, words in cases:
        assert cli.main([*argv, "--properties", props]) == 2, argv
        captured = capsys.readouterr()
        [line] = captured.err.splitlines()
        assert words in line and captured.out == "", (argv, line)


def test_a_window_over_several_utc_days_queries_each_day(moto_server: Any, tmp_path: Any) -> None:
    """Tasks that stopped on three UTC days, two of them a second either side of midnight: a window across them
    finds all three, which it cannot by querying only the newest day's partition."""
    names = create_tables_from_template()
    ddb = client("dynamodb")
    cluster = "arn:aws:ecs:eu-west-1:333333333333:cluster/days"
    stops = {"a": "2026-11-27T23:59:59.000Z", "b": "2026-11-28T12:00:00.000Z", "c": "2026-11-29T00:00:01.000Z"}
    for task_id, stopped in stops.items():
        event = {
            "version": "0",
            "id": f"e-{task_id}",
            "detail-type": "ECS Task State Change",
            "source": "aws.ecs",
            "account": "333333333333",
            "time": stopped,
            "region": "eu-west-1",
            "resources": [],
            "detail": {
                "taskArn": f"arn:aws:ecs:eu-west-1:333333333333:task/days/{task_id}",
                "clusterArn": cluster,
                "lastStatus": "STOPPED",
                "desiredStatus": "STOPPED",
                "version": 3,
                "startedAt": "2026-11-27T20:00:00.000Z",
                "stoppedAt": stopped,
            },
        }
        decoded = decode(json.dumps(event).encode())
        assert isinstance(decoded, Event)
        assert put_conditionally(ddb, names["task"], build_item(decoded, Position("shardId-000000000000", "1")))
    now = datetime(2026, 11, 30, tzinfo=timezone.utc)
    calls = Calls(ddb)
    found = readside.find_stopped(ddb, names["task"], cluster, "2026-11-27T22:00:00Z", "2026-11-29T01:00:00Z", now=now)
    assert [it["taskArn"].rsplit("/", 1)[1] for it in found] == ["c", "b", "a"]
    assert calls.names.count("Query") == 3  # one per UTC day
    edge = readside.find_stopped(ddb, names["task"], cluster, "2026-11-28T00:00:00Z", "2026-11-29T00:00:00Z", now=now)
    assert [it["taskArn"].rsplit("/", 1)[1] for it in edge] == ["b"]
    last_day = readside.find_stopped(ddb, names["task"], cluster, "49h", "2026-11-29T01:00:00Z", now=now)
    assert [it["taskArn"].rsplit("/", 1)[1] for it in last_day] == ["c", "b", "a"]
    with pytest.raises(ReadError, match="covers 3 UTC days"):
        readside.find_stopped(
            ddb, names["task"], cluster, "2026-11-27T22:00:00Z", "2026-11-29T01:00:00Z", now=now, max_days=2
        )
