"""The cluster catalogue against moto's DynamoDB over HTTP: the writer records each cluster it stores items of (its
account, region, name and newest event time) at most once a minute per shard, the time never goes down, its
failures are retried and never dead letters; ``ecs-state clusters`` and ``sources`` read it back, and ``--cluster``
is resolved against it (a name several accounts share is refused with the candidates, exit 2 through cli.main)."""

from __future__ import annotations

import argparse
import io
import json
import random
from typing import Any

import pytest
from cfn_template import fresh_tables

from processor import aws
from processor.config import Settings
from processor.core.position import Position
from processor.core.reducer import Batch, Counts
from processor.core.route import Candidate, admit
from processor.errors import ReadError
from processor.ops import catalog
from processor.ops import read as readside
from processor.shard.catalog import Catalog
from processor.shard.dynamodb_http import DynamoDBHttp, Response
from processor.shard.writer import Writer
from workshop.testing.factories import as_json, task_event

SHARD = "shardId-000000000000"
WEB_A = "arn:aws:ecs:eu-west-1:111111111111:cluster/web"
WEB_B = "arn:aws:ecs:us-east-1:222222222222:cluster/web"
BATCH_B = "arn:aws:ecs:us-east-1:222222222222:cluster/batch"


@pytest.fixture()
def settings(moto_server: Any, request: pytest.FixtureRequest) -> Settings:
    return fresh_tables(request, write_retry_budget_millis=5000)


class Clock:
    """The writer's clock, moved by the test (the rate limit is per minute of this clock)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _task(cluster: str, n: int, version: int, when: str, seq: int = 1) -> Candidate:
    arn = cluster.replace(":cluster/", ":task/") + f"/{n:032x}"
    event = task_event(arn, version, clusterArn=cluster)
    event["time"] = when
    got = admit(as_json(event), Position(SHARD, f"{seq:056d}"), arn, 7)
    assert isinstance(got, Candidate)
    return got


def _batch(items: list[Candidate]) -> Batch:
    return Batch([[it] for it in items], [], Position(SHARD, "1" * 56), Counts())


def _catalogue(settings: Settings) -> dict[str, dict[str, str]]:
    items = aws.client("dynamodb").scan(TableName=settings.catalog_table, ConsistentRead=True)["Items"]
    return {it["clusterArn"]["S"]: {k: next(iter(v.values())) for k, v in it.items()} for it in items}


def _writer(settings: Settings, clock: Clock, client: Any = None) -> Writer:
    return Writer(
        settings,
        client or DynamoDBHttp.from_environment(pool=4, timeout_s=5.0),
        clock=clock,
        catalog=Catalog(settings.catalog_table, shard_id=SHARD),
    )


def test_setup_creates_the_catalogue_and_the_startup_check_expects_it(settings: Settings) -> None:
    from processor.shard.table_check import table_problems

    described = aws.client("dynamodb").describe_table(TableName=settings.catalog_table)["Table"]
    assert described["KeySchema"] == [{"AttributeName": "clusterArn", "KeyType": "HASH"}]
    assert not described.get("GlobalSecondaryIndexes")
    client = DynamoDBHttp.from_environment(pool=1, timeout_s=5.0)
    assert table_problems(settings, client) == []
    missing = Settings(**{**settings.__dict__, "catalog_table": "no-such-catalogue"})
    [problem] = table_problems(missing, client)
    assert "no-such-catalogue does not exist" in problem and "ecs-state setup" in problem


def test_the_writer_records_each_cluster_at_most_once_a_minute_and_its_newest_time_never_goes_down(
    settings: Settings,
) -> None:
    clock = Clock()
    writer = _writer(settings, clock)
    out = writer.write(
        _batch(
            [
                _task(WEB_A, 1, 1, "2026-11-29T10:00:05Z"),
                _task(WEB_A, 2, 1, "2026-11-29T10:00:09Z"),
                _task(WEB_B, 3, 1, "2026-11-29T10:00:07Z"),
            ]
        )
    )
    assert out.ok and out.written == 3 and out.requests == 3 + 2  # one catalogue write per cluster
    stored = _catalogue(settings)
    assert stored[WEB_A] == {
        "clusterArn": WEB_A,
        "account": "111111111111",
        "region": "eu-west-1",
        "clusterName": "web",
        "newestEvent": "2026-11-29T10:00:09Z",
        "newest_event_ms": stored[WEB_A]["newest_event_ms"],
    }
    assert stored[WEB_B]["account"] == "222222222222" and stored[WEB_B]["newestEvent"] == "2026-11-29T10:00:07Z"

    clock.now += 59  # within the minute: newer events are remembered, not written
    out = writer.write(_batch([_task(WEB_A, 4, 1, "2026-11-29T10:01:00Z")]))
    assert out.requests == 1 and _catalogue(settings)[WEB_A]["newestEvent"] == "2026-11-29T10:00:09Z"
    clock.now += 1  # a minute since the last catalogue write of that cluster: the next flush writes it
    out = writer.write(_batch([_task(WEB_B, 5, 1, "2026-11-29T10:00:01Z")]))  # older than web B's stored time
    assert out.requests == 1 + 1 and _catalogue(settings)[WEB_A]["newestEvent"] == "2026-11-29T10:01:00Z"
    assert _catalogue(settings)[WEB_B]["newestEvent"] == "2026-11-29T10:00:07Z"

    replay = _writer(settings, Clock())  # another shard (or a replay) that saw only older events
    out = replay.write(_batch([_task(WEB_A, 1, 1, "2026-11-29T09:00:00Z", seq=2)]))
    assert out.ok and out.dead_letters == 0 and out.stale == 1
    assert _catalogue(settings)[WEB_A]["newestEvent"] == "2026-11-29T10:01:00Z"


class FailingCatalogue:
    """Answers the catalogue's first ``n`` puts with ``code`` (throttling or a 500, which moto cannot be made to
    produce on demand); every other request goes to moto unchanged."""

    def __init__(self, real: DynamoDBHttp, table: str, n: int, code: str, message: str = "slow down") -> None:
        self.real, self.table, self.left, self.code, self.message = real, table, n, code, message

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def call(self, operation: str, body: Any) -> Response:
        if operation == "PutItem" and self.left > 0 and f'"{self.table}"'.encode() in body:
            self.left -= 1
            status = 500 if self.code.startswith("InternalServer") else 400
            return Response(status, self.code, self.message, {})
        return self.real.call(operation, body)


@pytest.mark.parametrize(
    "code",
    # a ValidationException whose message is not one of DynamoDB's per-item refusals is about the table: transient
    ["ProvisionedThroughputExceededException", "InternalServerError", "ValidationException"],
)
def test_a_failing_catalogue_write_is_retried_and_never_a_dead_letter(settings: Settings, code: str) -> None:
    real = DynamoDBHttp.from_environment(pool=4, timeout_s=5.0)
    writer = Writer(
        settings,
        FailingCatalogue(real, settings.catalog_table, 3, code),
        sleep=lambda _: None,
        catalog=Catalog(settings.catalog_table, shard_id=SHARD),
    )
    out = writer.write(_batch([_task(WEB_A, 1, 1, "2026-11-29T10:00:05Z")]))
    assert out.ok and out.written == 1 and out.dead_letters == 0 and out.retries == 3
    assert _catalogue(settings)[WEB_A]["newestEvent"] == "2026-11-29T10:00:05Z"


def test_a_refused_catalogue_write_is_logged_once_and_never_a_dead_letter(
    settings: Settings, capfd: pytest.CaptureFixture[str]
) -> None:
    """DynamoDB refusing the catalogue item for what it holds (a ValidationException with a per-item message, which
    moto would not answer to this item) is about the catalogue, not the record: the state item is stored, no dead
    letter, one WARNING line."""
    real = DynamoDBHttp.from_environment(pool=4, timeout_s=5.0)
    writer = Writer(
        settings,
        FailingCatalogue(
            real, settings.catalog_table, 1, "ValidationException", "Item size has exceeded the maximum allowed size"
        ),
        sleep=lambda _: None,
        catalog=Catalog(settings.catalog_table, shard_id=SHARD),
    )
    capfd.readouterr()
    out = writer.write(_batch([_task(WEB_A, 1, 1, "2026-11-29T10:00:05Z")]))
    assert out.ok and out.written == 1 and out.dead_letters == 0 and out.retries == 0
    assert _catalogue(settings) == {}
    assert aws.client("dynamodb").scan(TableName=settings.dead_letter_table)["Items"] == []
    [line] = [line for line in capfd.readouterr().err.splitlines() if "catalog_refused" in line]
    assert json.loads(line)["level"] == "WARNING" and WEB_A in json.loads(line)["request"]


def test_catalogue_writes_per_event_are_bounded_by_clusters_per_minute(settings: Settings) -> None:
    """A generated stream: 6 clusters over 5 simulated minutes, 40 events per flush, a flush every 2 s. The
    catalogue costs at most clusters x (minutes + 1) writes, whatever the event rate."""
    clusters = [f"arn:aws:ecs:eu-west-1:{100000000000 + n % 3}:cluster/c{n}" for n in range(6)]
    clock = Clock()
    writer = _writer(settings, clock)
    rng = random.Random(3)
    events = catalogue_writes = 0
    for flush in range(150):
        clock.now += 2
        second = flush * 2
        batch = [
            _task(rng.choice(clusters), n, 1, f"2026-11-29T10:{second // 60:02d}:{second % 60:02d}Z")
            for n in range(flush * 40, flush * 40 + 40)
        ]
        out = writer.write(_batch(batch))
        events += len(batch)
        catalogue_writes += out.requests - len(batch)
    minutes = 150 * 2 / 60
    assert catalogue_writes <= len(clusters) * (minutes + 1)
    assert catalogue_writes / events < 0.01  # 30 writes for 6000 events here (docs/reading.md gives the sums)
    assert {arn for arn in _catalogue(settings)} == set(clusters)


# ---------------------------------------------------------------------------------------------------- reading
def _cli(*argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="ecs-state")
    readside.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    out = io.StringIO()
    return args.func(args, out=out), out.getvalue()


@pytest.fixture()
def fleet(settings: Settings, tmp_path: Any) -> dict[str, Any]:
    """Clusters named web in two accounts and batch in one, written by the writer with its catalogue: web A has
    2 RUNNING tasks and 1 STOPPED, web B 1 RUNNING, batch B 1 PENDING."""
    writer = _writer(settings, Clock())
    tasks = [
        _task(WEB_A, 1, 1, "2026-11-29T10:00:05Z"),
        _task(WEB_A, 2, 1, "2026-11-29T10:00:06Z"),
        _task(WEB_B, 3, 1, "2026-11-29T10:00:07Z"),
    ]
    stopped = _task(WEB_A, 4, 1, "2026-11-29T10:00:08Z")
    pending = _task(BATCH_B, 5, 1, "2026-11-29T09:00:00Z")
    for candidate, status in ((stopped, "STOPPED"), (pending, "PENDING")):
        event = json.loads(candidate.data)
        event["detail"]["lastStatus"] = status
        if status == "STOPPED":
            event["detail"].update(startedAt="2026-11-29T09:50:00.000Z", stoppedAt="2026-11-29T10:00:08.000Z")
        got = admit(as_json(event), candidate.position, candidate.arn, 7)
        assert isinstance(got, Candidate)
        tasks.append(got)
    assert writer.write(_batch(tasks)).written == 5
    props = tmp_path / "catalog.properties"
    props.write_text(
        f"ecsState.taskTable = {settings.task_table}\necsState.instanceTable = {settings.instance_table}\n"
        f"ecsState.deadLetterTable = {settings.dead_letter_table}\necsState.catalogTable = {settings.catalog_table}\n",
        encoding="utf-8",
    )
    return {"properties": str(props), "tasks": tasks}


def test_clusters_lists_every_account_and_counts_tasks_by_status_without_a_scan_of_the_task_table(
    settings: Settings, fleet: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str]] = []
    real = aws.client

    def recording(service: str, **kw: Any) -> Any:
        made = real(service, **kw)
        made.meta.events.register(
            "provide-client-params.dynamodb",
            lambda model, params, **_: calls.append((model.name, params.get("TableName"))),
        )
        return made

    monkeypatch.setattr(readside, "_client", recording)  # the real client, its calls recorded
    code, out = _cli("clusters", "--output", "json", "--properties", fleet["properties"])
    assert code == 0
    rows = {row["clusterArn"]: row for row in json.loads(out)}
    assert set(rows) == {WEB_A, WEB_B, BATCH_B}
    assert rows[WEB_A]["tasks"] == {"RUNNING": 2, "PENDING": 0, "STOPPED": 1, "other": 0}
    assert rows[BATCH_B]["tasks"] == {"RUNNING": 0, "PENDING": 1, "STOPPED": 0, "other": 0}
    assert (rows[WEB_B]["account"], rows[WEB_B]["region"], rows[WEB_B]["name"]) == ("222222222222", "us-east-1", "web")
    assert ("Scan", settings.task_table) not in calls and ("Scan", settings.catalog_table) in calls
    code, out = _cli("clusters", "--account", "111111111111", "--properties", fleet["properties"])
    assert code == 0 and WEB_A in out and WEB_B not in out


def test_a_name_several_accounts_share_is_refused_with_the_candidates_and_a_qualified_one_answers_that_cluster(
    settings: Settings, fleet: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from processor.ops import cli

    props = fleet["properties"]
    with pytest.raises(ReadError, match="matches 2 clusters"):
        _cli("tasks", "--cluster", "web", "--properties", props)
    assert cli.main(["tasks", "--cluster", "web", "--properties", props]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "111111111111/eu-west-1/web" in line and "222222222222/us-east-1/web" in line
    for name in ("222222222222/us-east-1/web", "222222222222/web", "us-east-1/web", WEB_B):
        code, out = _cli("tasks", "--cluster", name, "--output", "json", "--properties", props)
        assert code == 0 and {it["clusterArn"] for it in json.loads(out)} == {WEB_B}, name
        assert len(json.loads(out)) == 1
    code, out = _cli("tasks", "--cluster", "batch", "--output", "json", "--properties", props)
    assert [it["lastStatus"] for it in json.loads(out)] == ["PENDING"]
    code, out = _cli("stopped", "--cluster", "111111111111/web", "--since", "2026-11-29T00:00:00Z", "--until",
                     "2026-11-30T00:00:00Z", "--output", "json", "--properties", props)  # fmt: skip
    assert code == 0 and len(json.loads(out)) == 1
    task_id = fleet["tasks"][2].arn.rsplit("/", 1)[1]
    code, out = _cli("why", task_id, "--cluster", "us-east-1/web", "--properties", props)
    assert code == 0 and WEB_B in out


def test_sources_tells_per_account_and_region_whether_it_is_forwarding(
    settings: Settings, fleet: dict[str, Any]
) -> None:
    entries = catalog.read_catalog(aws.client("dynamodb"), settings.catalog_table)
    now_ms = entries[0].newest_ms or 0
    found = catalog.sources(entries, now_ms=max(e.newest_ms or 0 for e in entries) + 30 * 60_000, silent_for_s=3600)
    assert [(s.account, s.region, s.clusters, s.forwarding) for s in found] == [
        ("111111111111", "eu-west-1", 1, True),
        ("222222222222", "us-east-1", 2, True),
    ]
    assert found[1].newest_event == "2026-11-29T10:00:07Z"  # the newest of its two clusters
    later = catalog.sources(entries, now_ms=now_ms + 10 * 86_400_000, silent_for_s=3600)
    assert not any(s.forwarding for s in later)
    code, out = _cli("sources", "--silent-for", "1h", "--properties", fleet["properties"])  # the events are old
    assert code == 1 and "NO" in out
    code, out = _cli("sources", "--silent-for", "3650d", "--output", "json", "--properties", fleet["properties"])
    assert code == 0 and all(row["forwarding"] for row in json.loads(out))
    with pytest.raises(ReadError, match="out of range"):
        _cli("sources", "--silent-for", "0s", "--properties", fleet["properties"])
