from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from processor.core.position import Position
from processor.core.reducer import Offered, Reducer
from processor.core.route import CANDIDATE_OVERHEAD, Candidate


def item(arn: str, version: int, tag: str = "", size: int = 0, kind: str = "task") -> Candidate:
    """A candidate whose bytes are ``tag`` padded to ``size`` counted bytes (Candidate.size adds its overhead)."""
    return Candidate(
        kind,
        "taskArn",
        arn,
        version,
        tag.encode().ljust(max(0, size - CANDIDATE_OVERHEAD), b"."),
        Position("shard-1", "0"),
        arn,
        None,
    )


def pos(n: int) -> Position:
    return Position("shard-1", f"{n:056d}")


def test_an_offer_says_whether_the_version_is_new_newer_a_duplicate_the_same_version_or_older() -> None:
    r = Reducer()
    assert r.offer(item("a", 2), pos(1)) == Offered.NEW
    assert r.offer(item("a", 3), pos(2)) == Offered.NEWER
    assert r.offer(item("a", 3), pos(3)) == Offered.DUPLICATE  # the same bytes again: dropped
    assert r.offer(item("a", 3, "other"), pos(4)) == Offered.SAME_VERSION  # the same version, other bytes: kept second
    assert r.offer(item("a", 1), pos(5)) == Offered.OLDER
    batch = r.drain()
    assert [[(c.version, c.data) for c in versions] for versions in batch.resources] == [
        [(3, b""), (3, b"other"), (2, b""), (1, b"")]
    ]  # newest first, arrival order among equal versions
    assert batch.first == pos(1) and batch.last == pos(5)
    assert (batch.counts.records, batch.counts.duplicates, batch.counts.superseded) == (5, 2, 2)
    assert not r.has_pending and r.drain().empty


def test_same_arn_in_two_kinds_is_two_entries() -> None:
    r = Reducer()
    r.offer(item("x", 1, kind="task"), pos(1))
    r.offer(item("x", 1, kind="instance"), pos(2))
    assert len(r.drain().resources) == 2


def test_ignored_and_dead_letters_advance_the_position() -> None:
    from processor.core.dead_letters import dead_letter

    r = Reducer()
    r.offer_ignored(pos(1))
    assert r.has_pending and r.drain().last == pos(1)
    r.offer_dead(dead_letter(b"x", pos(2), "pk", None, "bad-json", "x"))
    batch = r.drain()
    assert batch.last == pos(2) and len(batch.dead_letters) == 1 and batch.counts.dead_letters == 1


def test_full_by_entries_and_by_bytes() -> None:
    r = Reducer(max_entries=3, max_bytes=10_000)
    for n in range(2):
        r.offer(item(f"a{n}", 1), pos(n))
    assert not r.full
    r.offer(item("a2", 1), pos(3))
    assert r.full
    r = Reducer(max_entries=100, max_bytes=3000)
    r.offer(item("a", 1, size=1000), pos(1))
    r.offer(item("a", 2, size=1400), pos(2))  # every candidate's bytes count: the older one is a fallback
    assert r.pending_bytes == 2400 and not r.full
    r.offer(item("b", 1, tag="x"), pos(3))  # one byte of data still costs the candidate's overhead
    assert r.pending_bytes == 2400 + 1 + CANDIDATE_OVERHEAD and r.full


def test_clear_forgets_everything() -> None:
    r = Reducer()
    r.offer(item("a", 1), pos(1))
    r.clear()
    assert not r.has_pending and r.pending_arns == 0 and r.pending_bytes == 0


offers = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 12), st.booleans()), max_size=200)


def conditional_put(table: dict[str, int], history: list[tuple[str, int]], versions: list[Candidate]) -> None:
    """DynamoDB's conditional write as the writer issues it (the newest candidate): absent or stored version lower."""
    it = versions[0]
    if it.arn not in table or table[it.arn] < it.version:
        table[it.arn] = it.version
        history.append((it.arn, it.version))


def assert_highest_and_never_lowered(
    stream: list[tuple[int, int, bool]], table: dict[str, int], history: list[tuple[str, int]]
) -> None:
    """The table holds the highest version offered per ARN, and every stored version was higher than the last."""
    expected: dict[str, int] = {}
    for arn_no, version, _ in stream:
        expected[f"arn{arn_no}"] = max(expected.get(f"arn{arn_no}", -1), version)
    assert table == expected
    seen: dict[str, int] = {}
    for arn, version in history:
        assert version > seen.get(arn, -1)
        seen[arn] = version


@settings(max_examples=400, deadline=None)
@given(offers)
def test_flushes_leave_the_highest_version_per_arn_and_never_lower_one(stream: list[tuple[int, int, bool]]) -> None:
    r = Reducer(max_entries=4)
    table: dict[str, int] = {}
    history: list[tuple[str, int]] = []
    for n, (arn_no, version, flush_now) in enumerate(stream):
        r.offer(item(f"arn{arn_no}", version), pos(n))
        if flush_now or r.full:
            batch = r.drain()
            assert batch.last == pos(n)  # checkpoint position = the last record offered
            for it in batch.resources:
                conditional_put(table, history, it)
    for it in r.drain().resources:
        conditional_put(table, history, it)
    assert_highest_and_never_lowered(stream, table, history)


@settings(max_examples=300, deadline=None)
@given(offers, offers, st.lists(st.booleans(), max_size=400), st.integers(0, 200))
def test_two_processors_sharing_tables_overlap_safely(
    a: list[tuple[int, int, bool]], b: list[tuple[int, int, bool]], schedule: list[bool], overlap: int
) -> None:
    """A split shard's parent and child (or two workers around a lease hand-over) reprocess overlapping records
    into the same table, interleaved arbitrarily. Final state = highest version per ARN; nothing goes down."""
    b = a[len(a) - min(overlap, len(a)) :] + b  # the second processor re-reads the tail of the first one's records
    reducers = [Reducer(max_entries=3), Reducer(max_entries=3)]
    streams = [list(a), list(b)]
    table: dict[str, int] = {}
    history: list[tuple[str, int]] = []
    step = 0
    while streams[0] or streams[1]:
        who = 0 if (schedule[step % len(schedule)] if schedule else True) else 1
        if not streams[who]:
            who = 1 - who
        arn_no, version, flush_now = streams[who].pop(0)
        reducers[who].offer(item(f"arn{arn_no}", version), pos(step))
        if flush_now or reducers[who].full:
            for it in reducers[who].drain().resources:
                conditional_put(table, history, it)
        step += 1
    for r in reducers:
        for it in r.drain().resources:
            conditional_put(table, history, it)
    assert_highest_and_never_lowered(a + b, table, history)
