"""Poison records: the bad inputs the generator mixes into the stream, each of which a correct processor must
dead-letter. :func:`poison_kinds` lists the kinds for a wire format, :func:`make_poison` builds one record's
bytes and :func:`poison_key` its partition key.

Rules: pure; all randomness comes from the ``rng`` passed in. Kinds built from a real event start from a copy
of an event already sent (``template``, never modified), so a processor that wrongly accepted one of those would
not change the state tables; the version kinds (negative, beyond 64 bits...) would, on purpose.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

import msgpack

from processor.loadgen.catalog import TASK_TYPE
from processor.loadgen.records import encode
from processor.loadgen.values import random_uuid

# Every kind must end in the dead-letter table. Their order matters: the generator picks one by index.
POISON_KINDS_COMMON = (
    "truncated",
    "invalid-utf8",
    "trailing-data",
    "array",
    "number",
    "string",
    "null",
    "boolean",
    "empty",
    "wrong-source",
    "no-detail",
    "detail-not-object",
    "version-string",
    "version-float",
    "version-negative",
    "version-huge",
    "version-nan",
    "version-bool",
    "version-missing",
    "empty-arn",
    "missing-arn",
    "msgpack-garbage",
    "deep-nesting",
    "bom",
    "duplicate-keys",
)
POISON_KINDS_JSON_ONLY = ("lone-surrogate", "whitespace")


def poison_kinds(fmt: str) -> tuple[str, ...]:
    """The poison kinds the generator draws from for one wire format."""
    return POISON_KINDS_COMMON + (POISON_KINDS_JSON_ONLY if fmt == "json" else ())


def poison_key(rng: random.Random, template: dict[str, Any] | None) -> str:
    """A poison record's partition key: a real ARN, an event-id-like UUID or an arbitrary key."""
    roll = rng.random()
    if template is not None and roll < 0.4:
        return str(template["resources"][0])  # a real ARN: the bad record must not touch that ARN's state
    if roll < 0.7:
        return random_uuid(rng)  # EventBridge's default partition key is the event id
    return f"poison-{rng.randrange(10**6)}"


def _arn_field(event: dict[str, Any]) -> str:
    return "taskArn" if event["detail-type"] == TASK_TYPE else "containerInstanceArn"


def make_poison(kind: str, rng: random.Random, template: dict[str, Any], fmt: str) -> bytes:
    """Bytes of one bad record of ``kind``, built (where it makes sense) from ``template``, a copy of a valid
    event already sent. Pure; ``template`` is not modified."""
    ev = json.loads(json.dumps(template))  # deep copy of plain data
    detail = ev["detail"]
    version = detail["version"]
    arn_field = _arn_field(ev)

    def enc(obj: Any) -> bytes:
        return encode(obj, fmt)

    if kind == "truncated":
        data = enc(ev)
        return data[: rng.randrange(1, len(data) - 1)]
    if kind == "invalid-utf8":
        marker = "\u00e9" * 6
        detail["group" if "group" in detail else "ec2InstanceId"] = marker
        data = enc(ev)
        bad = rng.choice((b"\xff\xfe\xfd\xfc\xfb\xfa", b"\xc3\x28\xa0\xa1\xe2\x28", b"\xed\xa0\x80\xed\xbf\xbf"))
        return data.replace(marker.encode("utf-8"), bad + bad, 1)
    if kind == "lone-surrogate":  # JSON only: a valid escape that decodes to a str UTF-8 cannot encode
        data = enc(ev)
        return data.replace(b'"detail":{', b'"detail":{"note":"bad \\ud800 surrogate",', 1)
    if kind == "trailing-data":
        return enc(ev) + rng.choice((b"}", b" x", b"\n{}", b"\x00"))
    if kind == "array":
        return enc([ev])
    if kind == "number":
        return enc(rng.choice((rng.randrange(-(10**6), 10**6), rng.random() * 1000)))
    if kind == "string":
        return enc(rng.choice(("ECS Task State Change", "", "{\"version\":\"0\"}")))
    if kind == "null":
        return enc(None)
    if kind == "boolean":
        return enc(rng.random() < 0.5)
    if kind == "empty":
        return b""
    if kind == "whitespace":
        return rng.choice((b" ", b"\n", b"\r\n\t  "))
    if kind == "wrong-source":
        ev["source"] = rng.choice(("aws.ec2", "custom.ecs-replay", "aws.ecs.fake", ""))
        return enc(ev)
    if kind == "no-detail":
        del ev["detail"]
        return enc(ev)
    if kind == "detail-not-object":
        ev["detail"] = rng.choice(([detail], json.dumps(detail), 7))
        return enc(ev)
    if kind.startswith("version-"):
        what = kind.removeprefix("version-")
        if what == "missing":
            del detail["version"]
        elif what == "string":
            detail["version"] = str(version)
        elif what == "float":
            detail["version"] = version + 0.25
        elif what == "negative":
            detail["version"] = -version
        elif what == "huge":
            # beyond 64 bits in JSON; msgpack integers stop at 2**64-1, so there: beyond a signed 64-bit long
            detail["version"] = (2**64 if fmt == "json" else 2**63) + version
        elif what == "nan":
            if fmt == "json":
                return re.sub(rb'"version":%d(?=[,}])' % version, b'"version":NaN', enc(ev), count=1)
            detail["version"] = float("nan")
        elif what == "bool":
            detail["version"] = True
        else:  # pragma: no cover - a programming error
            raise ValueError(kind)
        return enc(ev)
    if kind == "empty-arn":
        detail[arn_field] = ""
        ev["resources"] = [""]
        return enc(ev)
    if kind == "missing-arn":
        del detail[arn_field]
        return enc(ev)
    if kind == "msgpack-garbage":
        head = rng.choice((b"\x85", b"\xde\x00\x09", b"\x8f\xa7version"))
        return head + rng.randbytes(rng.randint(8, 300))
    if kind == "deep-nesting":
        depth = 100_000
        if fmt == "json":
            return enc(ev).replace(b'"detail":{', b'"detail":{"nested":' + b"[" * depth + b"]" * depth + b",", 1)
        return b"\x81\xa6detail" + b"\x91" * depth + b"\xc0"
    if kind == "bom":
        return b"\xef\xbb\xbf" + enc(ev)
    if kind == "duplicate-keys":  # the last value is the real one, so a last-wins parser sees a valid event
        bogus = version + 1_000_000
        if fmt == "json":
            return enc(ev).replace(b'"detail":{', b'"detail":{"version":%d,' % bogus, 1)
        packer = msgpack.Packer(use_bin_type=True)
        out = [packer.pack_map_header(len(ev))]
        for key, value in ev.items():
            out.append(packer.pack(key))
            if key != "detail":
                out.append(packer.pack(value))
                continue
            out.append(packer.pack_map_header(len(value) + 1))
            out.append(packer.pack("version") + packer.pack(bogus))
            for k2, v2 in value.items():
                out.append(packer.pack(k2) + packer.pack(v2))
        return b"".join(out)
    raise ValueError(f"unknown poison kind {kind!r}")
