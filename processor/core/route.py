"""Routing one record: bytes -> the state item it yields, the dead letter it becomes, or Ignored. Pure.

This is the only place that decides a record's fate; it never raises, whatever the bytes: a record that cannot be
decoded, validated or built becomes a dead letter holding its original bytes and a reason code."""

from __future__ import annotations

from processor.core.dead_letters import DeadLetter, dead_letter
from processor.core.events import Event, Ignored, decode
from processor.core.items import Item, Unstorable, build_item
from processor.core.position import Position


def route(data: bytes, position: Position, partition_key: str, arrival_ms: int | None,
          task_retention_hours: int = 0) -> Item | DeadLetter | Ignored:
    """One record -> the state item it yields, the dead letter it becomes, or ``Ignored``. Never raises."""
    decoded = decode(data)
    if isinstance(decoded, Event):
        try:
            return build_item(decoded, position, task_retention_hours)
        except Unstorable as exc:
            code, reason = exc.code, str(exc)
        except Exception as exc:  # defensive: a record must never stop the shard
            code, reason = "unstorable", f"{type(exc).__name__}: {exc}"
    elif isinstance(decoded, Ignored):
        return decoded
    else:
        code, reason = decoded.code, decoded.reason
    return dead_letter(data, position, partition_key, arrival_ms, code, reason)
