"""The writer against DynamoDB's refusals where moto is lenient (``workshop/testing/strict_dynamodb.py`` in front of
moto over HTTP): a refusal about the table (a team's index of another type, another key schema) never turns a
valid record into a dead letter and fails the flush (nothing checkpointed); a refusal of one item for what it holds
dead-letters that record with its bytes and the older valid version is written."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cfn_template import fresh_tables

from processor import aws
from processor.config import Settings
from processor.core.dead_letters import DeadLetter, read_dead_letter_data
from processor.core.items import Item
from processor.core.position import Position
from processor.core.reducer import Batch, Counts
from processor.core.route import Candidate, admit, build
from processor.shard.dynamodb_http import DynamoDBHttp
from processor.shard.writer import Writer
from workshop.testing.factories import as_json, task_arn, task_event
from workshop.testing.strict_dynamodb import Index, StrictDynamoDB, Table, refusal

POS = Position("shardId-000000000000", "1" * 56)


@pytest.fixture()
def settings(moto_server: Any, request: pytest.FixtureRequest) -> Settings:
    return fresh_tables(request, write_max_attempts=3)


def _strict(settings: Settings, *team_indexes: Index) -> StrictDynamoDB:
    """The thin client to moto behind DynamoDB's rules for the task table as moto describes it, plus a team's
    own indexes (moto keeps them but checks none of their types)."""
    described = aws.client("dynamodb").describe_table(TableName=settings.task_table)["Table"]
    table = Table.from_description(described)
    tables = {settings.task_table: Table(table.keys, table.indexes + team_indexes)}
    return StrictDynamoDB(DynamoDBHttp.from_environment(pool=4, timeout_s=5.0), tables)


def _candidate(n: int, version: int, seq: int, **detail: Any) -> Candidate:
    got = admit(
        as_json(task_event(task_arn(n), version, **detail)), Position(POS.shard_id, f"{seq:056d}"), task_arn(n), 7
    )
    assert isinstance(got, Candidate)
    return got


def _write(settings: Settings, client: Any, resources: list[list[Candidate]], **kw: Any) -> Any:
    writer = Writer(settings, client, sleep=lambda _: None, **kw)
    try:
        return writer.write(Batch(resources, [], POS, Counts()))
    finally:
        writer.close()


def _stored(settings: Settings, n: int) -> int | None:
    got = aws.client("dynamodb").get_item(TableName=settings.task_table, Key={"taskArn": {"S": task_arn(n)}})
    return int(got["Item"]["version"]["N"]) if "Item" in got else None


def _dead_letters(settings: Settings) -> list[dict[str, Any]]:
    return aws.client("dynamodb").scan(TableName=settings.dead_letter_table)["Items"]


def test_a_teams_index_of_another_type_fails_the_flush_naming_the_fix_and_dead_letters_nothing(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    client = _strict(settings, Index("by-cpu", (("cpu", "N"),)))  # ECS sends cpu as a string: "256"
    out = _write(settings, client, [[_candidate(1, 2, 2, cpu="256")], [_candidate(2, 1, 3, cpu="512")]])
    assert not out.ok and out.dead_letters == 0 and _dead_letters(settings) == []
    assert _stored(settings, 1) is None and _stored(settings, 2) is None
    assert client.refusals[0].startswith("One or more parameter values were invalid: Type mismatch for Index Key cpu")
    retrying = [json.loads(line) for line in capsys.readouterr().err.splitlines() if "write_retrying" in line]
    assert retrying and "IndexName: by-cpu" in retrying[0]["cause"] and "delete or change that index" in str(retrying)


def test_a_table_with_another_key_schema_fails_the_flush_and_dead_letters_nothing(settings: Settings) -> None:
    plain = DynamoDBHttp.from_environment(pool=4, timeout_s=5.0)
    client = StrictDynamoDB(plain, {settings.task_table: Table((("id", "S"),))})
    out = _write(settings, client, [[_candidate(1, 2, 2)]])
    assert not out.ok and out.dead_letters == 0 and _dead_letters(settings) == []
    assert client.refusals[0] == "One or more parameter values were invalid: Missing the key id in the item"


def test_an_empty_value_for_a_teams_index_key_dead_letters_that_record_and_writes_the_older_version(
    settings: Settings,
) -> None:
    client = _strict(settings, Index("by-group", (("group", "S"),)))
    newest, older = _candidate(1, 3, 3, group=""), _candidate(1, 2, 2, group="service:web")
    out = _write(settings, client, [[newest, older]])
    assert out.ok and (out.written, out.dead_letters, out.fallbacks) == (1, 1, 1)
    assert _stored(settings, 1) == 2
    (dead,) = _dead_letters(settings)
    assert dead["reasonCode"] == {"S": "refused"} and "IndexKey: group" in dead["reason"]["S"]
    assert read_dead_letter_data([{k: next(iter(v.values())) for k, v in dead.items()}]) == newest.data


@pytest.mark.parametrize(
    "attribute,message",
    [
        ({"N": "1" * 39}, "Attempting to store more than 38 significant digits in a Number"),
        ({"N": "1E+126"}, "Number overflow. Attempting to store a number with magnitude larger than supported range"),
        ({"N": "1E-131"}, "Number underflow. Attempting to store a number with magnitude smaller than supported range"),
        ({"S": "x" * (401 * 1024)}, "Item size has exceeded the maximum allowed size"),
    ],
)
def test_dynamodb_refusing_an_item_for_what_it_holds_dead_letters_that_record_and_writes_the_older_version(
    settings: Settings, attribute: dict[str, str], message: str
) -> None:
    newest, older = _candidate(1, 3, 3), _candidate(1, 2, 2)

    def lenient(candidate: Candidate, hours: int) -> Item | DeadLetter:
        """Our builder would refuse these values first; this one lets them through to reach DynamoDB's rules."""
        item = build(candidate, hours)
        assert isinstance(item, Item)
        if candidate is not newest:
            return item
        attributes = {**item.attributes, "odd": attribute}
        return Item(item.kind, item.key_name, item.arn, item.version, attributes, item.size, item.position)

    client = _strict(settings)
    out = _write(settings, client, [[newest, older]], build_item=lenient)
    assert out.ok and (out.written, out.dead_letters) == (1, 1) and client.refusals == [message]
    assert _stored(settings, 1) == 2
    (dead,) = _dead_letters(settings)
    assert message in dead["reason"]["S"]


def test_every_item_our_builder_makes_for_a_valid_task_passes_dynamodbs_rules(settings: Settings) -> None:
    described = aws.client("dynamodb").describe_table(TableName=settings.task_table)["Table"]
    table = Table.from_description(described)
    for n, detail in enumerate([{}, {"cpu": "256", "memory": "512"}, {"group": "service:web", "blob": "y" * 300_000}]):
        item = build(_candidate(n, 1, n + 1, **detail))
        assert isinstance(item, Item) and refusal(table, item.attributes) is None


# -- through the real ShardProcessor (in-process, the KCL messages as amazon_kclpy dispatches them) ----------------


class Checkpoints:
    """KCL's checkpointer as the processor sees it: every sequence number it was asked to checkpoint."""

    def __init__(self) -> None:
        self.sequence_numbers: list[str | None] = []

    def checkpoint(self, sequence_number: str | None = None, sub_sequence_number: int | None = None) -> None:
        self.sequence_numbers.append(sequence_number)


def _run_shard(settings: Settings, client: StrictDynamoDB, records: list[bytes]) -> tuple[Checkpoints, int | None]:
    """Initialize, one processRecords call with ``records``, shutdownRequested (flush, then checkpoint): the
    checkpoints asked for and the exit code, if the processor exited."""
    from amazon_kclpy.messages import InitializeInput, ProcessRecordsInput, Record, ShutdownRequestedInput

    from processor.shard.record_processor import ShardProcessor

    checkpoints = Checkpoints()
    processor = ShardProcessor(
        settings, lambda shard_id: Writer(settings, client, sleep=lambda _: None, shard_id=shard_id)
    )
    kcl_records = [
        Record(
            {
                "sequenceNumber": f"{n + 1:056d}",
                "subSequenceNumber": 0,
                "approximateArrivalTimestamp": 1_800_000_000_000,
                "partitionKey": "pk",
                "action": "record",
                "data": base64.b64encode(data).decode("ascii"),
            }
        )
        for n, data in enumerate(records)
    ]
    try:
        InitializeInput(
            {"shardId": POS.shard_id, "sequenceNumber": "LATEST", "subSequenceNumber": 0, "action": "initialize"}
        ).dispatch(checkpoints, processor)
        ProcessRecordsInput({"records": kcl_records, "millisBehindLatest": 0, "action": "processRecords"}).dispatch(
            checkpoints, processor
        )
        ShutdownRequestedInput({"action": "shutdownRequested"}).dispatch(checkpoints, processor)
    except SystemExit as exc:
        return checkpoints, int(exc.code or 0)
    return checkpoints, None


def test_through_the_processor_a_teams_index_of_another_type_stops_the_shard_without_checkpoint(
    settings: Settings,
) -> None:
    client = _strict(settings, Index("by-cpu", (("cpu", "N"),)))
    data = as_json(task_event(task_arn(1), 1, cpu="256"))
    checkpoints, exit_code = _run_shard(settings, client, [data])
    assert exit_code == 3 and checkpoints.sequence_numbers == []  # write budget spent: exit, nothing checkpointed
    assert _dead_letters(settings) == [] and _stored(settings, 1) is None


def test_through_the_processor_an_item_dynamodb_refuses_is_a_durable_dead_letter_and_the_shard_moves_on(
    settings: Settings,
) -> None:
    client = _strict(settings, Index("by-group", (("group", "S"),)))
    refused_data = as_json(task_event(task_arn(1), 1, group=""))
    checkpoints, exit_code = _run_shard(settings, client, [refused_data, as_json(task_event(task_arn(2), 1))])
    assert exit_code is None and checkpoints.sequence_numbers[-1] == f"{2:056d}"
    (dead,) = _dead_letters(settings)
    assert read_dead_letter_data([{k: next(iter(v.values())) for k, v in dead.items()}]) == refused_data
    assert _stored(settings, 1) is None and _stored(settings, 2) == 1
