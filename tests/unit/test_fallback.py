"""No valid version is displaced by an invalid one: a property of the reducer and the writer together.

DynamoDB is played by ``FakeDynamoDB``, an in-memory table with the conditional put the writer issues (the real
one cannot run in a pure test; tests/integration/test_writer.py checks the same paths against moto). Each version
of a resource is either storable, refused by our builder's check when it is read (nested too deep), refused by DynamoDB
(``ValidationException``) or built into an item JSON cannot carry (a binary map key past a lenient builder: the
request's serialisation raises ``TypeError``, which is building the item, so the record's fault; an exception
from the client itself would be transient, never a dead letter). The fake speaks the thin client's interface
(``call(operation, body) -> Response``, ALL_OLD on a failed condition), so the writer's memory of stored versions
is in play: a version at or below one the writer knows to be stored is counted stale without a request, whatever
DynamoDB would have said of it.
"""

from __future__ import annotations

import base64
import json
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from processor.config import Settings
from processor.core.dead_letters import DeadLetter, read_dead_letter_data
from processor.core.items import Item
from processor.core.position import Position
from processor.core.reducer import Reducer
from processor.core.route import Candidate, admit, build
from processor.shard.dynamodb_http import Response
from processor.shard.writer import Writer
from workshop.testing.factories import as_json, task_arn, task_event

OK, BUILDER, REFUSED, RAISES = "ok", "builder", "refused", "raises"


class FakeDynamoDB:
    """Conditional puts into dicts; items carrying ``refuse`` / ``raises`` attributes are refused / raise."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, dict[str, Any]]] = {}

    def call(self, operation: str, body: bytes) -> Response:
        assert operation == "PutItem"  # the writer only puts
        request = json.loads(body)
        item = request["Item"]
        if "refuse" in item:
            return Response(400, "ValidationException", "refused", {})
        table = self.tables.setdefault(request["TableName"], {})
        key = item["taskArn"]["S"] if "taskArn" in item else item["sequenceNumber"]["S"]
        stored = table.get(key)
        if (
            "ConditionExpression" in request
            and stored is not None
            and "N" in stored.get("version", {})
            and int(stored["version"]["N"]) >= int(item["version"]["N"])
        ):
            old = {"Item": stored} if request.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" else {}
            return Response(400, "ConditionalCheckFailedException", "no", old)
        table[key] = {k: {"B": base64.b64decode(v["B"])} if "B" in v else v for k, v in item.items()}  # as sent
        return Response(200, "", "", {})


def lenient(candidate: Candidate, hours: int) -> Item | DeadLetter:
    """The builder, except that a version marked ``raises`` gets a binary map key JSON cannot carry."""
    item = build(candidate, hours)
    if isinstance(item, Item) and "raises" in item.attributes:
        return Item(
            item.kind,
            item.key_name,
            item.arn,
            item.version,
            {**item.attributes, "raises": {"M": {b"k": 1}}},
            item.size,
            item.position,
        )
    return item


def _data(arn_no: int, version: int, kind: str) -> bytes:
    extra: dict[str, Any] = {}
    if kind == BUILDER:
        deep: Any = 1
        for _ in range(40):
            deep = [deep]
        extra["nest"] = deep
    elif kind in (REFUSED, RAISES):
        extra["refuse" if kind == REFUSED else "raises"] = 1
    return as_json(task_event(task_arn(arn_no), version, **extra))


records = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 8), st.sampled_from([OK, OK, BUILDER, REFUSED, RAISES]), st.booleans()),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(records, st.randoms(use_true_random=False))
def test_what_is_written_is_the_highest_storable_version_and_nothing_is_lost(
    stream: list[tuple[int, int, str, bool]], rng: random.Random
) -> None:
    s = Settings(task_table="t", instance_table="i", dead_letter_table="d", write_concurrency=2)
    ddb = FakeDynamoDB()
    writer = Writer(s, ddb, sleep=lambda _: None, rng=random.Random(0), build_item=lenient)
    reducer = Reducer()
    # The first kind seen for an (ARN, version) is what the reducer keeps (later equal versions are duplicates).
    kinds: dict[tuple[int, int], str] = {}
    windows: list[list[tuple[int, int, str, str]]] = [[]]
    try:
        for n, (arn_no, version, kind, flush_after) in enumerate(stream):
            kind = kinds.setdefault((arn_no, version), kind)
            seq = f"{n:056d}"
            got = admit(_data(arn_no, version, kind), Position("shard-1", seq), task_arn(arn_no), None)
            if kind == BUILDER:  # found when the record is read: a dead letter at once, never a candidate
                assert isinstance(got, DeadLetter)
                reducer.offer_dead(got)
            else:
                assert isinstance(got, Candidate)
                reducer.offer(got, got.position)
            windows[-1].append((arn_no, version, kind, seq))
            if flush_after:
                assert writer.write(reducer.drain()).ok
                windows.append([])
        assert writer.write(reducer.drain()).ok
    finally:
        writer.close()
    state = {arn: int(item["version"]["N"]) for arn, item in ddb.tables.get("t", {}).items()}
    dead = ddb.tables.get("d", {})
    best: dict[int, int] = {}
    for window in windows:
        firsts: dict[tuple[int, int], str] = {}
        for arn_no, version, kind, seq in window:
            firsts.setdefault((arn_no, version), seq)  # the duplicate's first delivery is the candidate kept
        for arn_no in {a for a, _, _, _ in window}:
            versions = sorted({(v, k) for a, v, k, _ in window if a == arn_no}, reverse=True)
            storable = [v for v, k in versions if k == OK]
            top = storable[0] if storable else -1
            stored_before = best.get(arn_no, -1)  # what the writer may know is stored: at most this
            if storable:
                best[arn_no] = max(stored_before, top)
            for v, k in versions:  # every unstorable version above the one written (and above what was stored
                if v > top and v > stored_before:  # before: that one may be skipped as stale) is a dead letter
                    seq = firsts[(arn_no, v)]
                    assert seq in dead, (arn_no, v, k)
                    assert read_dead_letter_data(
                        [{k2: next(iter(v2.values())) for k2, v2 in dead[seq].items()}]
                    ) == _data(arn_no, v, k)
    assert state == {task_arn(a): v for a, v in best.items()}  # the highest storable version of all, per ARN
    everything = [r for w in windows for r in w]
    dead_versions = {(a, v) for a, v, _, seq in everything if seq in dead}
    for arn_no, version, _, _ in everything:  # nothing lost: each version stored, superseded by one, or dead
        assert version <= best.get(arn_no, -1) or (arn_no, version) in dead_versions
