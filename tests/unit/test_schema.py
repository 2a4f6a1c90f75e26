"""processor/core/schema.py: the one schema (tables, indexes, derived index keys), the item builder writing the
derived keys, the index-key guard, and the index write-cost calculator's rules (workshop/bench/index_cost.py)."""

from __future__ import annotations

import itertools

import pytest

from processor.config import Settings
from processor.core.events import Event
from processor.core.items import Unstorable, build_item, check_event
from processor.core.position import Position
from processor.core.schema import (
    CLUSTER_INDEX,
    CLUSTER_PARTS,
    INDEXES,
    STOPPED_INDEX,
    TASK,
    cluster_part,
    cluster_parts,
    index_attributes,
    table_specs,
)
from processor.errors import ConfigError
from processor.loadgen.fleet import generate
from processor.loadgen.records import Options
from workshop.bench.index_cost import Cost, charge, index_cost

CLUSTER = "arn:aws:ecs:us-east-1:123456789012:cluster/prod"
ARN = "arn:aws:ecs:us-east-1:123456789012:task/prod/0123456789abcdef"


def _event(**detail: object) -> Event:
    full = {"taskArn": ARN, "clusterArn": CLUSTER, "version": 3, **detail}
    return Event(TASK, "taskArn", ARN, 3, full, "0", "id-1", "2026-11-27T09:07:00Z")


def test_a_stopped_service_task_gets_all_three_derived_index_keys() -> None:
    derived = index_attributes(
        TASK,
        {
            "taskArn": ARN,
            "clusterArn": CLUSTER,
            "group": "service:web",
            "lastStatus": "STOPPED",
            "stoppedAt": "2026-11-27T09:07:00.000Z",
        },
    )
    assert derived == {
        "cluster_part": cluster_part(CLUSTER, ARN),
        "cluster_service": f"{CLUSTER}#service:web",
        "stopped_day": f"{CLUSTER}#2026-11-27",
    }
    assert derived["cluster_part"] in cluster_parts(CLUSTER) and len(cluster_parts(CLUSTER)) == CLUSTER_PARTS


def test_derived_keys_are_left_out_when_their_inputs_are_absent_or_not_strings() -> None:
    assert index_attributes(TASK, {"taskArn": ARN, "lastStatus": "RUNNING"}) == {}
    running = index_attributes(
        TASK,
        {
            "taskArn": ARN,
            "clusterArn": CLUSTER,
            "lastStatus": "RUNNING",
            "group": 5,
            "stoppedAt": "2026-11-27T09:07:00.000Z",
        },
    )
    assert set(running) == {"cluster_part"}
    assert "stopped_day" not in index_attributes(
        TASK, {"taskArn": ARN, "clusterArn": CLUSTER, "lastStatus": "STOPPED", "stoppedAt": "soon"}
    )
    assert index_attributes(TASK, {"taskArn": ARN, "clusterArn": "x" * 3000}) == {}  # over the key limit


def test_the_item_builder_writes_the_derived_keys_and_counts_their_bytes() -> None:
    event = _event(lastStatus="STOPPED", stoppedAt="2026-11-27T09:07:00.000Z", group="service:web")
    position = Position("shardId-000000000000", "1")
    checked = build_item(event, position, checked_size=check_event(event, position))
    walked = build_item(event, position)
    assert checked.attributes == walked.attributes and checked.size == walked.size
    assert walked.attributes["stopped_day"] == {"S": f"{CLUSTER}#2026-11-27"}
    without = build_item(_event(lastStatus="STOPPED", stoppedAt="2026-11-27T09:07:00.000Z"), position)
    assert walked.size - without.size == len("cluster_service") + len(f"{CLUSTER}#service:web") + len("group") + len(
        "service:web"
    )


def test_a_detail_field_named_like_a_derived_key_is_left_out() -> None:
    item = build_item(_event(lastStatus="RUNNING", cluster_part="mine"), Position("shardId-000000000000", "1"))
    assert item.attributes["cluster_part"] == {"S": cluster_part(CLUSTER, ARN)}


@pytest.mark.parametrize("field", ["containerInstanceArn", "stoppedAt", "lastStatus", "clusterArn"])
def test_a_detail_field_that_keys_an_index_must_be_a_non_empty_string(field: str) -> None:
    with pytest.raises(Unstorable, match=f"index key {field}"):
        check_event(_event(**{field: 12}), Position("shardId-000000000000", "1"))


def test_the_specs_define_exactly_the_attributes_their_keys_use() -> None:
    for spec in table_specs("t", "i", "d"):
        used = {k["AttributeName"] for k in spec["KeySchema"]}
        used |= {k["AttributeName"] for i in spec.get("GlobalSecondaryIndexes", []) for k in i["KeySchema"]}
        assert {a["AttributeName"] for a in spec["AttributeDefinitions"]} == used
    assert all(index.hash_key != "clusterArn" for index in INDEXES)  # no index keyed on the cluster alone


def test_read_indexes_setting_chooses_the_indexes_and_refuses_unknown_names() -> None:
    assert Settings().indexes() == INDEXES
    assert Settings(read_indexes="none").indexes() == ()
    assert Settings(read_indexes="stopped-index, cluster-index").indexes() == (CLUSTER_INDEX, STOPPED_INDEX)
    task_spec = table_specs("t", "i", "d", Settings(read_indexes="none").indexes())[0]
    assert "GlobalSecondaryIndexes" not in task_spec
    with pytest.raises(ConfigError, match="ecsState.readIndexes names unknown index"):
        Settings(read_indexes="cluster-idx")


def test_an_index_is_charged_a_put_to_enter_a_delete_to_leave_two_for_a_key_change_one_for_a_projection() -> None:
    cost = Cost()
    charge(STOPPED_INDEX, None, {"taskArn": 1}, cost)  # not in the index: free
    assert cost.writes == 0
    charge(STOPPED_INDEX, {"taskArn": 1}, {"stopped_day": "d", "stoppedAt": "t", "group": "g"}, cost)
    assert (cost.writes, cost.puts) == (1, 1)
    charge(
        STOPPED_INDEX,
        {"stopped_day": "d", "stoppedAt": "t", "group": "g"},
        {"stopped_day": "d", "stoppedAt": "t", "group": "h", "other": 1},
        cost,
    )
    assert (cost.writes, cost.updates) == (2, 1)
    charge(STOPPED_INDEX, {"stopped_day": "d", "stoppedAt": "t"}, {"stopped_day": "d", "stoppedAt": "u"}, cost)
    assert cost.writes == 4
    charge(STOPPED_INDEX, {"stopped_day": "d", "stoppedAt": "u"}, {"x": 1}, cost)
    assert (cost.writes, cost.deletes) == (5, 2)


def test_the_calculator_charges_nothing_for_duplicates_and_older_versions() -> None:
    records = list(itertools.islice(generate(Options(seed=3, tasks=10, instances=2)), 300))
    once = index_cost(records)
    twice = index_cost([r for record in records for r in (record, record)])
    assert twice.events == 2 * once.events
    assert (twice.table_puts, twice.indexes) == (once.table_puts, once.indexes)
    assert once.indexes["stopped-index"].writes == once.indexes["stopped-index"].puts > 0


def test_the_tables_of_the_settings_are_the_three_of_the_schema_and_the_catalogue_keyed_on_the_cluster_arn() -> None:
    settings = Settings(catalog_table="cat")
    tables = settings.tables()
    assert [kind for kind, _ in tables] == ["task", "instance", "dead-letter", "catalog"]
    assert [spec for _, spec in tables[:3]] == table_specs(
        settings.task_table, settings.instance_table, settings.dead_letter_table
    )
    assert tables[3][1] == {
        "TableName": "cat",
        "KeySchema": [{"AttributeName": "clusterArn", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "clusterArn", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
