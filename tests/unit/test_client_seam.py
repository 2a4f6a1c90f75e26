"""Generative tests at the client seam (``DynamoDBTransport``): exceptions of arbitrary types and arbitrary garbage
replies, injected into the writer's puts, the catch-up prefetch's reads and the start-up check's DescribeTable,
never make a valid record a dead letter, and a flush reported ok has made every resource durable at its newest
version (so the record processor, which checkpoints only after an ok flush, never passes non-durable data).
DynamoDB is ``workshop/testing/fake_dynamodb.py``: in memory, faults injected before a request is applied. Also
the writer's unit tests of the one classifier's two sides: what the client raises is transient, what the
serialiser refuses in the item we built is the record's."""

from __future__ import annotations

import base64
import json
import random
import ssl
from typing import Any, Callable

import orjson
import pytest
from botocore.exceptions import ClientError, CredentialRetrievalError, NoCredentialsError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.config import Settings
from processor.core.dead_letters import DeadLetter
from processor.core.items import Item
from processor.core.position import Position
from processor.core.reducer import Batch, Counts
from processor.core.route import Candidate, admit, build
from processor.errors import ConfigError
from processor.shard import writer as writer_module
from processor.shard.dynamodb_http import Response, TransportError
from processor.shard.failures import CONFIG_CODES, RECORD_CODES
from processor.shard.table_check import table_problems
from processor.shard.writer import Writer
from workshop.testing.factories import as_json, task_arn, task_event
from workshop.testing.fake_dynamodb import FakeDynamoDB

SETTINGS = Settings(task_table="tasks", instance_table="instances", dead_letter_table="dead", write_concurrency=3)
SHARD = "shardId-000000000007"


class Surprise(Exception):
    """An exception type nobody anticipated."""


EXCEPTIONS: list[Callable[[], BaseException]] = [
    lambda: ValueError("invalid literal for int() with base 10: '<html>'"),
    lambda: TypeError("'NoneType' object is not subscriptable"),
    lambda: KeyError("AccessKeyId"),
    lambda: AttributeError("'str' object has no attribute 'get'"),
    lambda: RuntimeError("?"),
    lambda: ZeroDivisionError("division by zero"),
    lambda: RecursionError("maximum recursion depth exceeded"),
    lambda: UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
    lambda: json.JSONDecodeError("Expecting value", "<html>proxy error</html>", 0),
    lambda: orjson.JSONDecodeError("unexpected character", "{", 0),
    lambda: ClientError({"Error": {"Code": "InvalidIdentityToken", "Message": "m"}}, "AssumeRoleWithWebIdentity"),
    lambda: CredentialRetrievalError(provider="custom-process", error_msg="exit status 1"),
    lambda: NoCredentialsError(),
    lambda: ConfigError("a setting read late"),
    lambda: TransportError("PutItem", "cannot connect"),
    lambda: ConnectionResetError(104, "reset"),
    lambda: ssl.SSLError("tls"),
    lambda: Surprise("nobody anticipated this"),
]
GARBAGE_CODES = st.one_of(
    st.sampled_from(
        [
            "",
            "InternalServerError",
            "ServiceUnavailable",
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
            "SomethingNew",
            "HTTP502",
            "TransactionConflictException",
            "RequestLimitExceeded",
        ]
    ),
    st.text(max_size=30),
).filter(lambda c: c not in RECORD_CODES and c not in CONFIG_CODES and c != "ConditionalCheckFailedException")
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def garbage_reply(draw: st.DrawFn, ok_allowed: bool) -> Response:
    statuses = st.integers(100, 599) if ok_allowed else st.integers(100, 599).filter(lambda s: s != 200)
    body = draw(st.dictionaries(st.text(max_size=12), JSON, max_size=4))
    return Response(draw(statuses), draw(GARBAGE_CODES), draw(st.text(max_size=20)), body)


@st.composite
def fault_plans(draw: st.DrawFn) -> dict[int, BaseException | Response]:
    """Faults for some of the first requests (by request number): an exception, or a garbage reply."""
    plan: dict[int, BaseException | Response] = {}
    for n in draw(st.lists(st.integers(1, 30), max_size=15, unique=True)):
        if draw(st.booleans()):
            plan[n] = draw(st.sampled_from(EXCEPTIONS))()
        else:
            plan[n] = draw(garbage_reply(ok_allowed=True))
    return plan


def _fault(plan: dict[int, BaseException | Response]) -> Callable[[str, int], BaseException | Response | None]:
    def fault(operation: str, n: int) -> BaseException | Response | None:
        got = plan.get(n)
        if isinstance(got, Response) and got.status == 200 and operation == "PutItem":
            return Response(503, "", "garbage", got.body)  # a 200 to a put is DynamoDB saying it applied
        return got

    return fault


def candidate(n: int, version: int, seq: int) -> Candidate:
    got = admit(as_json(task_event(task_arn(n), version)), Position(SHARD, f"{seq:056d}"), task_arn(n), 7)
    assert isinstance(got, Candidate)
    return got


@st.composite
def batches(draw: st.DrawFn) -> tuple[Batch, dict[str, int], dict[str, int]]:
    """A batch of valid candidates (newest first per resource), the versions stored before, the newest sent."""
    resources, stored_before, newest, seq = [], {}, {}, 1
    for n in range(draw(st.integers(1, 6))):
        versions = sorted(draw(st.lists(st.integers(1, 50), min_size=1, max_size=3, unique=True)), reverse=True)
        group = []
        for version in versions:
            group.append(candidate(n, version, seq))
            seq += 1
        resources.append(group)
        newest[task_arn(n)] = versions[0]
        if draw(st.booleans()):
            stored_before[task_arn(n)] = draw(st.integers(0, 60))
    return Batch(resources, [], Position(SHARD, f"{seq:056d}"), Counts()), stored_before, newest


def _fake(plan: dict[int, BaseException | Response], stored: dict[str, int]) -> FakeDynamoDB:
    fake = FakeDynamoDB.for_settings(
        SETTINGS.task_table, SETTINGS.instance_table, SETTINGS.dead_letter_table, fault=_fault(plan)
    )
    for arn, version in stored.items():
        fake.items["tasks"][(arn,)] = {"taskArn": {"S": arn}, "version": {"N": str(version)}}
    return fake


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(), fault_plans(), st.booleans())
def test_injected_exceptions_and_garbage_never_dead_letter_a_valid_record_and_an_ok_flush_is_durable(
    drawn: tuple[Batch, dict[str, int], dict[str, int]], plan: dict[int, BaseException | Response], prefetch: bool
) -> None:
    batch, stored_before, newest = drawn
    fake = _fake(plan, stored_before)
    writer = Writer(SETTINGS, fake, sleep=lambda _: None, rng=random.Random(1), shard_id=SHARD)
    try:
        out = writer.write(batch, prefetch=prefetch)
    finally:
        writer.close()
    assert out.dead_letters == 0 and "dead" not in fake.tables_written
    assert out.ok  # every fault was finite: retried until it passed
    for arn, version in newest.items():
        assert fake.version("tasks", arn) == max(version, stored_before.get(arn, 0))


@settings(max_examples=60, deadline=None)
@given(
    batches(),
    st.sampled_from(EXCEPTIONS + [lambda: Response(500, "InternalServerError", "m", {})]),
    st.integers(1, 4),
    st.booleans(),
)
def test_a_fault_that_outlasts_a_finite_budget_fails_the_flush_and_still_dead_letters_nothing(
    drawn: tuple[Batch, dict[str, int], dict[str, int]], make: Callable[[], Any], max_attempts: int, prefetch: bool
) -> None:
    """Whatever keeps failing: the flush is not ok (the caller must not checkpoint) unless every resource is
    durable at its newest version; nothing becomes a dead letter."""
    batch, stored_before, newest = drawn
    fake = _fake({}, stored_before)
    fake.fault = lambda operation, n: make()
    limited = Settings(
        task_table="tasks", instance_table="instances", dead_letter_table="dead", write_max_attempts=max_attempts
    )
    writer = Writer(limited, fake, sleep=lambda _: None, shard_id=SHARD)
    try:
        out = writer.write(batch, prefetch=prefetch)
    finally:
        writer.close()
    assert out.dead_letters == 0 and "dead" not in fake.tables_written
    durable = all(fake.version("tasks", arn) == max(v, stored_before.get(arn, 0)) for arn, v in newest.items())
    assert durable or not out.ok


@settings(max_examples=100, deadline=None)
@given(fault_plans())
def test_the_start_up_check_retries_any_exception_or_garbage_and_finds_no_problem_in_good_tables(
    plan: dict[int, BaseException | Response],
) -> None:
    fake = _fake(plan, {})
    assert table_problems(SETTINGS, fake, sleep=lambda _: None) == []
    assert len(fake.requests) >= 3


# -- the writer's unit tests of the classifier's two sides -----------------------------------------------------


def test_an_exception_from_the_client_is_retried_never_the_records_fault(capsys: Any) -> None:
    raised = iter([ValueError("garbage from a credential helper"), Surprise("?")])
    fake = _fake({}, {})
    fake.fault = lambda operation, n: next(raised, None)
    writer = Writer(SETTINGS, fake, sleep=lambda _: None, shard_id=SHARD)
    out = writer.write(Batch([[candidate(1, 3, 1)]], [], Position(SHARD, "1" * 56), Counts()))
    writer.close()
    assert out.ok and (out.written, out.dead_letters, out.retries) == (1, 0, 2)
    assert fake.version("tasks", task_arn(1)) == 3
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    retrying = [line for line in logged if line.get("event") == "write_retrying"]
    assert len(retrying) == 1 and "ValueError" in retrying[0]["cause"]  # once a minute, naming the cause


def test_after_a_throttled_first_attempt_the_pipeline_sends_nothing_more(monkeypatch: Any) -> None:
    """The first attempts go out through the pipeline; after a throttle it stops, and the throttled put and every
    resource not yet sent go to the threaded path, whose requests each back off on their own failures."""
    sent_by_pipeline: list[object] = []
    real_pipeline = writer_module.pipeline

    def counting(client: Any, operation: str, next_request: Any, on_reply: Any, width: int) -> None:
        def counted() -> Any:
            request = next_request()
            if request is not None:
                sent_by_pipeline.append(request[0])
            return request

        real_pipeline(client, operation, counted, on_reply, width)

    monkeypatch.setattr(writer_module, "pipeline", counting)
    fake = _fake({}, {})
    fake.fault = lambda operation, n: Response(400, "ThrottlingException", "slow down", {}) if n == 1 else None
    writer = Writer(SETTINGS, fake, sleep=lambda _: None, shard_id=SHARD)
    resources = [[candidate(n, 3, n)] for n in range(1, 9)]
    out = writer.write(Batch(resources, [], Position(SHARD, "9" * 56), Counts()))
    writer.close()
    assert out.ok and (out.written, out.requests, out.retries, out.throttled) == (8, 9, 1, 1)
    assert len(sent_by_pipeline) == 1  # the throttle was met: the other seven went by the retry path


def test_an_item_the_serialiser_refuses_is_a_bug_that_fails_the_flush_and_dead_letters_nothing() -> None:
    newest, older = candidate(2, 5, 2), candidate(2, 4, 1)

    def lenient(c: Candidate, hours: int) -> Item | DeadLetter:
        item = build(c, hours)
        assert isinstance(item, Item)
        if c is newest:  # a binary map key: JSON cannot carry it, so building the request fails
            return Item(
                item.kind,
                item.key_name,
                item.arn,
                item.version,
                {**item.attributes, "x": {"M": {b"k": 1}}},
                item.size,
                item.position,
            )
        return item

    fake = _fake({}, {})
    writer = Writer(SETTINGS, fake, sleep=lambda _: None, build_item=lenient, shard_id=SHARD)
    out = writer.write(Batch([[newest, older]], [], Position(SHARD, "1" * 56), Counts()))
    writer.close()
    assert not out.ok and (out.written, out.dead_letters) == (0, 0) and "TypeError" in out.failed[0]
    assert fake.version("tasks", task_arn(2)) is None and fake.items["dead"] == {}


# -- nothing but a proven refusal is the record's fault; a dead letter counts once durable ---------------------


@pytest.mark.parametrize("bug", [KeyError("containers"), MemoryError(), Surprise("nobody anticipated this")])
def test_an_exception_from_the_item_builder_fails_the_flush_and_dead_letters_nothing(bug: BaseException) -> None:
    """The builder is the writer's seam (``build_item=``); one that raises stands in for a bug or an exhausted
    process, which no real input produces on purpose."""

    def broken(c: Candidate, hours: int) -> Item | DeadLetter:
        raise bug

    fake = _fake({}, {})
    writer = Writer(SETTINGS, fake, sleep=lambda _: None, build_item=broken, shard_id=SHARD)
    out = writer.write(Batch([[candidate(1, 2, 2), candidate(1, 1, 1)]], [], Position(SHARD, "2" * 56), Counts()))
    writer.close()
    assert not out.ok and type(bug).__name__ in out.failed[0]
    assert out.dead_letters == 0 and fake.items["dead"] == {} and fake.items["tasks"] == {}


def test_a_dead_letter_neither_stored_nor_kept_in_its_plain_form_fails_the_flush() -> None:
    """Both puts to the dead-letter table get an answer the writer does not expect for a plain put (a failed
    condition: real DynamoDB cannot send it for a put without a condition, hence the fake). The dead letter is not
    durable, so the flush must fail; it used to be counted as stored and checkpointed past."""
    fake = _fake({}, {})
    condition_failed = Response(400, "ConditionalCheckFailedException", "The conditional request failed", {})
    fake.fault = lambda operation, n: condition_failed if fake.tables_written[n - 1] == "dead" else None  # all puts
    bad = admit(b"{not json", Position(SHARD, "3" * 56), "pk", None)
    assert isinstance(bad, DeadLetter)
    writer = Writer(SETTINGS, fake, sleep=lambda _: None, shard_id=SHARD)
    out = writer.write(Batch([[candidate(1, 2, 2)]], [bad], Position(SHARD, "3" * 56), Counts()))
    writer.close()
    assert not out.ok and out.dead_letters == 0 and "nor its plain copy" in out.failed[0]
    assert fake.tables_written.count("dead") == 2 and fake.items["dead"] == {}
    assert fake.version("tasks", task_arn(1)) == 2  # the rest of the flush is written all the same


def test_a_dead_letter_refused_by_dynamodb_is_kept_in_its_plain_form_with_the_bytes() -> None:
    fake = _fake({}, {})
    too_large = Response(400, "ValidationException", "Item size has exceeded the maximum allowed size", {})
    fake.fault = lambda operation, n: too_large if n == 1 else None
    bad = admit(b"{not json", Position(SHARD, "3" * 56), "pk", None)
    assert isinstance(bad, DeadLetter)
    writer = Writer(SETTINGS, fake, sleep=lambda _: None, shard_id=SHARD)
    out = writer.write(Batch([], [bad], Position(SHARD, "3" * 56), Counts()))
    writer.close()
    (kept,) = fake.items["dead"].values()
    assert out.ok and out.dead_letters == 1 and kept["reasonCode"] == {"S": "dead-letter-refused"}
    assert base64.b64decode(kept["data"]["B"]) == b"{not json"  # the fake keeps what was sent: base64


def test_a_builder_bug_inside_the_core_goes_up_instead_of_becoming_a_dead_letter(monkeypatch: Any) -> None:
    """The item builder is replaced by one that raises: a stand-in for a bug, which no input can produce."""
    import processor.core.route as route

    def buggy(*args: Any, **kwargs: Any) -> Item:
        raise KeyError("lastStatus")

    monkeypatch.setattr(route, "build_item", buggy)
    monkeypatch.setattr(route, "check_event", buggy)
    data = as_json(task_event(task_arn(1), 1))
    with pytest.raises(KeyError):
        admit(data, Position(SHARD, "1" * 56), "pk", None)
    monkeypatch.undo()
    good = candidate(1, 1, 1)
    monkeypatch.setattr(route, "build_item", buggy)
    with pytest.raises(KeyError):
        build(good)
