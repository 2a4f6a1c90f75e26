"""The full poison corpus as scenario cases: every decoder-level case of ``poison_corpus.POISON`` plus what only
shows past the decoder (item building, DynamoDB's own limits, sizes) and inputs that must be stored or ignored;
the records that carry them (each case followed by a valid event); what became of each case, read back from the
tables; and the "bad input" table (docs/testing.md) built from those observations.

Invariants: each ``Case.expected`` is "stored", "ignored" or the dead letter's reasonCode; ARNs of stored cases
are unique (task numbers 90000+) and followers use task numbers 80000+, so no case's outcome can be mistaken for
another's; records alternate case, follower (case ``i`` at ``2 * i``).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import msgpack

from processor import aws
from processor.config import Settings
from processor.core.dead_letters import read_dead_letter_data
from processor.core.events import Event, decode
from processor.core.items import decompress_value
from workshop.testing.factories import as_json, as_msgpack, instance_event, task_arn, task_event
from workshop.testing.multilang_driver import KinesisRecord, records_from
from workshop.testing.poison_corpus import POISON
from workshop.testing.protocol_helpers import stored_state

STORED, IGNORED = "stored", "ignored"


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    expected: str  # "stored", "ignored" or the dead letter's reasonCode
    arn: str | None = None  # for stored cases: the ARN to find
    note: str = ""


def _task(n: int, **detail: Any) -> dict[str, Any]:
    return task_event(task_arn(n), 1, **detail)


def _deep(levels: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"leaf": 1}
    for _ in range(levels):
        doc = {"a": doc}
    return doc


def poison_corpus() -> list[Case]:
    """Every decoder-level case of ``poison_corpus.POISON`` (tests/unit/test_events.py), plus what only shows past
    the decoder (item building, DynamoDB's own limits, sizes) and inputs that must be stored or ignored. ARNs of
    stored cases are unique (task numbers 90000+)."""
    cases = [Case(f"decoder: {name}", data, code) for name, (data, code) in sorted(POISON.items())]
    random_hex = os.urandom(480_000).hex()  # hex of random bytes: zlib halves it, not more
    overrides = {
        "containerOverrides": [
            {"name": "web", "environment": [{"name": f"VAR_{i}", "value": "x" * 100} for i in range(4500)]}
        ]
    }
    metadata_clash = _task(90007)
    metadata_clash["detail"]["event_id"] = "from-detail"
    cases += [
        Case(
            "item over 400 KB that compresses",
            as_json(_task(90001, overrides=overrides)),
            STORED,
            task_arn(90001),
            "stored with compressed_attributes = {overrides}",
        ),
        Case("1 MB record that compresses", as_json(_task(90002, blob="y" * 1_000_000)), STORED, task_arn(90002)),
        Case("item over 400 KB that does not compress", as_json(_task(1, blob=random_hex)), "too-large"),
        Case("1 MB of garbage", b"{" + os.urandom(1_000_000), "bad-utf8", note="dead letter split into parts"),
        Case("number above 9.9E+125", as_json(_task(1)).replace(b'"cpu": "256"', b'"cpu": 1e200'), "unstorable"),
        Case("number below 1E-130", as_json(_task(1)).replace(b'"cpu": "256"', b'"cpu": 1e-200'), "unstorable"),
        Case("integer of 40 significant digits", as_json(_task(1, big=10**39 + 1)), "unstorable"),
        Case(
            "decimal of 39 significant digits",
            as_json(_task(1)).replace(b'"cpu": "256"', b'"cpu": 1.23456789012345678901234567890123456789'),
            "unstorable",
        ),
        Case("detail nested deeper than 32", as_json(_task(1, nest=_deep(40))), "unstorable"),
        Case("empty attribute name", as_json(_task(1, **{"": 1})), "unstorable"),
        Case("empty map key inside detail", as_json(_task(1, m={"": 1})), "unstorable"),
        Case(
            "lone UTF-16 surrogate in a string",
            b'{"source":"aws.ecs","detail-type":"ECS Task State Change","detail":{"taskArn":"x","version":1,'
            b'"s":"\\ud800"}}',
            "unstorable",
        ),
        Case(
            "ARN over DynamoDB's 2048-byte key limit",
            as_json(task_event("arn:" + "a" * 3000, 1)),
            "no-arn",
            note="rejected before any write; the raw record is kept",
        ),
        Case(
            "version as JSON exponent 1e3", as_json(_task(1)).replace(b'"version": 1', b'"version": 1e3'), "bad-version"
        ),
        Case("version 2**63", as_json(task_event(task_arn(1), 2**63)), "bad-version"),
        Case("JSON with trailing garbage", as_json(_task(1)) + b" trailing", "bad-json"),
        Case("msgpack map with integer keys", msgpack.packb({1: 2}), "bad-msgpack"),
        Case(
            "msgpack ext type at top level",
            msgpack.packb(msgpack.ExtType(5, b"xx")),
            "not-object",
            note="a msgpack ext value, not a map",
        ),
        Case("instance event with empty ARN", as_json(instance_event("", 1)), "no-arn"),
        Case("no detail-type", b'{"source":"aws.ecs","detail":{}}', "no-detail-type"),
        Case(
            "unknown detail-type", as_json({**_task(1), "detail-type": "ECS Service Deployment State Change"}), IGNORED
        ),
        Case("ECS Service Action", b'{"source":"aws.ecs","detail-type":"ECS Service Action","detail":{}}', IGNORED),
        Case("version 2**63-1", as_json(task_event(task_arn(90003), 2**63 - 1)), STORED, task_arn(90003)),
        Case("msgpack with binary field", as_msgpack(_task(90004, raw=b"\x00\xff")), STORED, task_arn(90004)),
        Case("NUL inside strings", as_json(_task(90005, note="a\x00b")), STORED, task_arn(90005)),
        Case(
            "empty string and empty list fields", as_json(_task(90006, empty="", nothing=[])), STORED, task_arn(90006)
        ),
        Case(
            "detail field named like metadata (event_id)",
            as_json(metadata_clash),
            STORED,
            task_arn(90007),
            "the envelope's id wins",
        ),
        Case(
            "unknown fields everywhere",
            as_json({**_task(90008, future={"x": [1, 2.5, None]}), "extra": 1}),
            STORED,
            task_arn(90008),
        ),
    ]
    return cases


def corpus_records(cases: list[Case]) -> tuple[list[KinesisRecord], list[KinesisRecord]]:
    """Each case followed by a valid event (task numbers 80000+): (all records, the followers)."""
    pairs: list[tuple[str, bytes]] = []
    for i, case in enumerate(cases):
        pairs.append((f"case-{i}", case.data))
        pairs.append((task_arn(80000 + i), as_json(task_event(task_arn(80000 + i), 1))))
    records = records_from(pairs)
    return records, records[1::2]


def observed_outcomes(s: Settings, cases: list[Case], records: list[KinesisRecord]) -> list[dict[str, Any]]:
    """What became of each case, read back from the tables."""
    state, dead = stored_state(s)
    ddb = aws.client("dynamodb")
    rows = []
    for i, case in enumerate(cases):
        record = records[2 * i]
        row: dict[str, Any] = {
            "case": case.name,
            "bytes": len(case.data),
            "expected": case.expected,
            "follower_applied": state.get(task_arn(80000 + i)) == 1,
            "note": case.note,
        }
        item = dead.get(record.sequence_number)
        if item is not None:
            parts = [d for key, d in dead.items() if key.startswith(record.sequence_number + "#part")]
            row.update(
                observed=item["reasonCode"]["S"],
                reason=item["reason"]["S"],
                dead_letter_items=1 + len(parts),
                data_encoding=item["dataEncoding"]["S"],
            )
            raw = read_dead_letter_data(_plain([item, *parts]))
            row["raw_bytes_kept"] = (
                raw == case.data and item["dataSha256"]["S"] == hashlib.sha256(case.data).hexdigest()
            )
        elif case.arn and case.arn in state:
            got = ddb.get_item(TableName=s.task_table, Key={"taskArn": {"S": case.arn}})["Item"]
            row.update(observed=STORED, compressed=sorted(got.get("compressed_attributes", {}).get("SS", [])))
            event = decode(case.data)
            assert isinstance(event, Event)
            row["round_trip"] = all(
                decompress_value(got[name]["B"]) == _plain_value(event.detail[name]) for name in row["compressed"]
            )
            row["event_id"] = got["event_id"]["S"]
        else:
            row["observed"] = IGNORED  # neither stored nor dead-lettered; the flush logs' ignored count confirms
        rows.append(row)
    return rows


def _plain(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Low-level attribute maps -> the plain values read_dead_letter_data takes."""
    return [{k: next(iter(v.values())) for k, v in item.items()} for item in items]


def _plain_value(value: Any) -> Any:
    """The decoded detail value as compress_value stores it (Decimal -> int/float)."""
    return msgpack.unpackb(
        msgpack.packb(value, default=lambda d: int(d) if d == d.to_integral_value() else float(d)), raw=False
    )


def poison_table_markdown(rows: list[dict[str, Any]]) -> str:
    """The "bad input" table (docs/testing.md), from observed outcomes."""
    lines = ["| input | bytes | outcome | reason (as stored) |", "|---|---:|---|---|"]
    for row in rows:
        outcome = row["observed"] if row["observed"] in (STORED, IGNORED) else f"dead letter `{row['observed']}`"
        reason = (row.get("reason") or row.get("note") or "").replace("|", "\\|")
        if row["observed"] == STORED and row.get("compressed"):
            reason = f"compressed_attributes = {', '.join(row['compressed'])}"
        if row.get("dead_letter_items", 1) > 1:
            reason += f" ({row['dead_letter_items']} dead-letter items)"
        lines.append(f"| {row['case']} | {row['bytes']} | {outcome} | {reason[:160]} |")
    return "\n".join(lines) + "\n"
