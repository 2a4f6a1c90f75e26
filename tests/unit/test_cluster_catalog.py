"""The cluster catalogue's pure parts: what a cluster ARN says, how ``--cluster`` text matches entries, the
sources' verdicts, the member role's ARN, and the shard's memory of what is due (at most once a minute per
cluster, only when its newest time grew)."""

from __future__ import annotations

from typing import Any

import pytest

from processor.core.catalog import CATALOG_CONDITION, catalog_put, event_ms, parse_cluster_arn
from processor.ops.catalog import Entry, matches, sources
from processor.ops.member import member_role_arn
from processor.shard.catalog import Catalog

pytestmark = pytest.mark.unit

WEB_A = "arn:aws:ecs:eu-west-1:111111111111:cluster/web"
WEB_B = "arn:aws:ecs:us-east-1:222222222222:cluster/web"
API_B = "arn:aws:ecs:us-east-1:222222222222:cluster/api"


def _entry(arn: str, ms: int | None = None) -> Entry:
    ref = parse_cluster_arn(arn)
    assert ref is not None
    return Entry(ref, "t" if ms else "", ms)


def test_a_cluster_arn_gives_its_partition_region_account_and_name_and_nothing_else_is_a_cluster() -> None:
    ref = parse_cluster_arn("arn:aws-cn:ecs:cn-north-1:111111111111:cluster/web")
    assert ref is not None and (ref.partition, ref.region, ref.account, ref.name) == (
        "aws-cn",
        "cn-north-1",
        "111111111111",
        "web",
    )
    assert ref.path == "111111111111/cn-north-1/web"
    for bad in ("web", "arn:aws:ecs:eu-west-1:1:task/web/x", "arn:aws:ecs::1:cluster/web", "arn:aws:s3:r:1:cluster/x"):
        assert parse_cluster_arn(bad) is None, bad


def test_cluster_text_matches_by_name_and_each_qualifier_is_the_account_or_the_region() -> None:
    entries = [_entry(WEB_A), _entry(WEB_B), _entry(API_B)]
    assert [e.cluster.arn for e in matches(entries, "web")] == [WEB_A, WEB_B]
    for text in ("222222222222/us-east-1/web", "us-east-1/web", "222222222222/web", "/us-east-1/web/"):
        assert [e.cluster.arn for e in matches(entries, text)] == [WEB_B], text
    assert matches(entries, "eu-west-1/api") == [] and matches(entries, "") == [] and matches(entries, "we") == []


def test_a_source_is_forwarding_while_its_newest_event_is_within_the_duration() -> None:
    hour = 3_600_000
    entries = [_entry(WEB_A, 10 * hour), _entry(WEB_B, 5 * hour), _entry(API_B, 9 * hour)]
    found = sources(entries, now_ms=11 * hour, silent_for_s=3600)
    assert [(s.account, s.clusters, s.newest_ms, s.forwarding) for s in found] == [
        ("111111111111", 1, 10 * hour, True),
        ("222222222222", 2, 9 * hour, False),
    ]
    assert found[1].silent_s == 7200
    assert [s.forwarding for s in sources([_entry(WEB_A)], now_ms=0, silent_for_s=1)] == [False]  # no time at all


def test_the_catalogue_put_never_lowers_the_stored_time() -> None:
    ref = parse_cluster_arn(WEB_A)
    assert ref is not None
    request = catalog_put("cat", ref, "2026-11-29T10:00:00Z", 5)
    assert request["ConditionExpression"] == CATALOG_CONDITION
    assert "#t < :t" in CATALOG_CONDITION and request["ExpressionAttributeValues"][":t"] == {"N": "5"}
    assert (
        event_ms("2026-11-29T10:00:00Z") == 1_795_946_400_000
    )  # date -u -d 2026-11-29T10:00:00Z +%s and event_ms("soon") is None


def test_the_member_role_is_named_in_the_clusters_account_and_partition() -> None:
    assert member_role_arn("aws-cn", "111111111111", "ecs-state-member-read") == (
        "arn:aws-cn:iam::111111111111:role/ecs-state-member-read"
    )
    assert member_role_arn("aws", "1", "/team/reader") == "arn:aws:iam::1:role/team/reader"


def _item(cluster: Any, when: Any) -> dict[str, Any]:
    return {"clusterArn": {"S": cluster}, "event_time": {"S": when}}


def test_the_shards_memory_writes_a_cluster_at_most_once_a_minute_and_only_when_its_time_grew() -> None:
    sent: list[dict[str, Any]] = []

    def call(request: dict[str, Any], what: str) -> tuple[None, None]:  # stands in for the writer's request loop
        sent.append(request)
        return None, None

    def flush(now: float) -> list[str]:
        sent.clear()
        for job in catalog.jobs(now, call):
            job()
        return sorted(r["Item"]["newestEvent"]["S"] for r in sent)

    catalog = Catalog("cat")
    for item in (
        _item(WEB_A, "2026-11-29T10:00:02Z"),
        _item(WEB_A, "2026-11-29T10:00:01Z"),
        _item(WEB_B, "2026-11-29T10:00:00Z"),
        _item("not-a-cluster", "2026-11-29T10:00:00Z"),
        _item(API_B, "not a time"),
        {"clusterArn": {"S": WEB_A}},
        {"event_time": {"S": "2026-11-29T11:00:00Z"}},
    ):
        catalog.note(item)
    assert flush(100.0) == ["2026-11-29T10:00:00Z", "2026-11-29T10:00:02Z"]
    assert flush(101.0) == []  # nothing newer
    catalog.note(_item(WEB_A, "2026-11-29T10:00:03Z"))
    assert flush(159.9) == []  # newer, but within the minute
    assert flush(160.0) == ["2026-11-29T10:00:03Z"]
    catalog.note(_item(WEB_B, "2026-11-29T09:00:00Z"))  # older than what was written: nothing to do
    assert flush(1000.0) == []
