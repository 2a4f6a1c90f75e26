"""The decoder-level poison corpus: record bytes -> the dead-letter reason code docs/design.md documents."""

from __future__ import annotations

import msgpack

from workshop.testing.factories import as_json, as_msgpack, task_arn, task_event


def _with_version(version: object) -> bytes:
    raw = task_event(task_arn(1), 1)
    raw["detail"]["version"] = version
    return as_json(raw)


POISON = {
    "truncated": (as_json(task_event(task_arn(1), 1))[:-5], "bad-json"),
    "invalid utf-8": (b'{"source": "aws.ecs\xff"}', "bad-utf8"),
    "array": (b"[1, 2]", "not-object"),
    "number": (b"42", "not-object"),
    "null": (b"null", "not-object"),
    "string": (b'"hello"', "not-object"),
    "empty": (b"", "empty"),
    "whitespace": (b"  \n ", "empty"),
    "bom": (b"\xef\xbb\xbf" + as_json(task_event(task_arn(1), 1)), "bad-json"),
    "nan": (_with_version(1).replace(b'"cpu": "256"', b'"cpu": NaN'), "bad-json"),
    "deep nesting": (b"[" * 100_000 + b"]" * 100_000, "too-deep"),
    "no detail": (b'{"source":"aws.ecs","detail-type":"ECS Task State Change"}', "no-detail"),
    "detail not object": (b'{"source":"aws.ecs","detail-type":"ECS Task State Change","detail":[]}', "no-detail"),
    "wrong source": (as_json({**task_event(task_arn(1), 1), "source": "aws.ec2"}), "wrong-source"),
    "no source": (b'{"detail-type":"ECS Task State Change"}', "wrong-source"),
    "detail-type not string": (b'{"source":"aws.ecs","detail-type":5}', "no-detail-type"),
    "version string": (_with_version("7"), "bad-version"),
    "version float": (_with_version(7.0), "bad-version"),
    "version bool": (_with_version(True), "bad-version"),
    "version negative": (_with_version(-1), "bad-version"),
    "version beyond 64 bits": (_with_version(2**64), "bad-version"),
    "version missing": (as_json({**task_event(task_arn(1), 1), "detail": {"taskArn": task_arn(1)}}), "bad-version"),
    "empty arn": (as_json(task_event("", 1)), "no-arn"),
    "arn not string": (as_json({**task_event(task_arn(1), 1), "detail": {"taskArn": 5, "version": 1}}), "no-arn"),
    "duplicate keys": (b'{"source":"aws.ecs","source":"aws.ecs","detail-type":"X"}', "duplicate-key"),
    "nested duplicate keys": (b'{"source":"aws.ecs","detail-type":"X","detail":{"a":1,"a":2}}', "duplicate-key"),
    "msgpack garbage": (b"\x85\xc1\xc1\xc1", "bad-msgpack"),
    "msgpack truncated": (as_msgpack(task_event(task_arn(1), 1))[:-3], "bad-msgpack"),
    "msgpack trailing data": (as_msgpack(task_event(task_arn(1), 1)) + b"\x01", "bad-msgpack"),
    "msgpack array": (msgpack.packb([1, 2]), "not-object"),
    "msgpack version float": (
        as_msgpack({**task_event(task_arn(1), 1), "detail": {"taskArn": task_arn(1), "version": 1.0}}),
        "bad-version",
    ),
}

POISON["arn over 2048 bytes"] = (as_json(task_event("arn:" + "x" * 2100, 1)), "no-arn")
POISON["msgpack ext at top level"] = (msgpack.packb(msgpack.ExtType(5, b"xx")), "not-object")


def _msgpack_envelope_with_deep(field: str, depth: int) -> bytes:
    """A valid task event in msgpack whose envelope ``field`` is an array nested ``depth`` deep (msgpack unpacks up to
    1024 levels; turning 1000 of them into text exhausted the interpreter's stack)."""
    event = task_event(task_arn(1), 1)
    event[field] = "\x00deep\x00"
    return as_msgpack(event).replace(msgpack.packb("\x00deep\x00"), b"\x91" * depth + b"\xc0")


POISON["envelope version nested 1000 deep"] = (_msgpack_envelope_with_deep("version", 1000), "bad-envelope")
POISON["envelope time nested 1010 deep"] = (_msgpack_envelope_with_deep("time", 1010), "bad-envelope")
POISON["envelope id an object"] = (as_json({**task_event(task_arn(1), 1), "id": {"a": [1, 2]}}), "bad-envelope")
POISON["envelope version a number"] = (as_json({**task_event(task_arn(1), 1), "version": 0}), "bad-envelope")
