"""reconcile's judgement, pure: what the ECS API reports (live) against what the table holds (stored), per ARN.

A finding's state (:class:`State`) is one of ``ok``, ``unversioned`` (the API reported no version), ``gone``
(stored in its final status, no longer listed live), or drift: ``missing`` (live, not stored), ``behind`` (stored
version lower: an event was lost or is late), ``ahead`` (stored version higher than live: the API lags),
``only-in-table`` (stored in a non-final status, not live), ``status-differs`` (same version, other status). A
state's value is what the report prints and the JSON's ``counts`` is keyed by. No I/O."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence

from processor.core.schema import INSTANCE, TASK
from processor.core.words import Word
from processor.ops.render import render_table

__all__ = ["INSTANCE", "TASK"]  # re-exported for reconcile: the kinds are defined in core/schema.py


class State(Word):
    """What one resource's two views say together; its value is the word the reports print."""

    OK = "ok"
    UNVERSIONED = "unversioned"
    GONE = "gone"
    MISSING = "missing"
    BEHIND = "behind"
    AHEAD = "ahead"
    ONLY_IN_TABLE = "only-in-table"
    STATUS_DIFFERS = "status-differs"

    @property
    def drift(self) -> bool:
        return self in DRIFT_STATES


DRIFT_STATES = (State.MISSING, State.BEHIND, State.AHEAD, State.ONLY_IN_TABLE, State.STATUS_DIFFERS)
ALL_STATES = tuple(State)

FINAL_STATUS: dict[str, str] = {TASK: "STOPPED", INSTANCE: "INACTIVE"}


@dataclass(frozen=True, slots=True)
class Seen:
    """One resource as one side reports it."""

    version: int | None
    status: str | None


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    arn: str
    state: State
    ecs_version: int | None = None
    table_version: int | None = None
    ecs_status: str | None = None
    table_status: str | None = None

    @property
    def drift(self) -> bool:
        return self.state.drift


def judge(kind: str, arn: str, live: Seen | None, stored: Seen | None) -> Finding:
    """The state of one resource from its ECS view and its table view (either may be absent, not both)."""

    def finding(state: State) -> Finding:
        return Finding(
            kind,
            arn,
            state,
            live.version if live else None,
            stored.version if stored else None,
            live.status if live else None,
            stored.status if stored else None,
        )

    if live is None and stored is None:
        raise ValueError(f"{arn}: seen on neither side")
    if stored is None:
        return finding(State.MISSING)
    if live is None:
        return finding(State.GONE if stored.status == FINAL_STATUS[kind] else State.ONLY_IN_TABLE)
    if live.version is None:
        return finding(State.UNVERSIONED if live.status == stored.status else State.STATUS_DIFFERS)
    if stored.version is None or stored.version < live.version:
        return finding(State.BEHIND)
    if stored.version > live.version:
        return finding(State.AHEAD)
    return finding(State.OK)


def compare(kind: str, live: Mapping[str, Seen], stored: Mapping[str, Seen]) -> list[Finding]:
    """Every resource on either side, judged; sorted by drift first, then state and ARN."""
    findings = [judge(kind, arn, live.get(arn), stored.get(arn)) for arn in set(live) | set(stored)]
    return sorted(findings, key=lambda f: (not f.drift, f.state, f.arn))


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    result = {state: 0 for state in ALL_STATES}
    for f in findings:
        result[f.state] += 1
    return {state.value: n for state, n in result.items() if n}


def report_json(cluster: str, findings: Sequence[Finding], show_all: bool) -> str:
    shown = [{**asdict(f), "state": f.state.value} for f in findings if show_all or f.state is not State.OK]
    return (
        json.dumps(
            {
                "cluster": cluster,
                "drift": any(f.drift for f in findings),
                "counts": counts(findings),
                "findings": shown,
            },
            indent=2,
        )
        + "\n"
    )


def report_table(cluster: str, findings: Sequence[Finding], show_all: bool) -> str:
    def text(value: Any) -> str:
        return "-" if value is None else str(value)

    rows = [
        [
            f.kind,
            f.state.value,
            f.arn,
            text(f.ecs_version),
            text(f.table_version),
            text(f.ecs_status),
            text(f.table_status),
        ]
        for f in findings
        if show_all or f.state is not State.OK
    ]
    summary = ", ".join(f"{n} {state}" for state, n in counts(findings).items()) or "nothing found"
    verdict = "DRIFT" if any(f.drift for f in findings) else "no drift"
    body = (
        render_table(("KIND", "STATE", "ARN", "ECS VERSION", "TABLE VERSION", "ECS STATUS", "TABLE STATUS"), rows)
        if rows
        else ""
    )
    return body + f"{cluster}: {verdict} ({summary})\n"


def _seen(version: Any, status: Any) -> Seen:
    return Seen(None if version is None else int(version), None if status is None else str(status))


def seen_from_ecs(resources: Iterable[Mapping[str, Any]], key: str, status_field: str) -> dict[str, Seen]:
    """DescribeTasks / DescribeContainerInstances entries -> {arn: Seen}."""
    return {r[key]: _seen(r.get("version"), r.get(status_field)) for r in resources}


def seen_from_items(items: Iterable[Mapping[str, Mapping[str, Any]]], key: str, status_field: str) -> dict[str, Seen]:
    """Low-level DynamoDB items (projected) -> {arn: Seen}."""
    result = {}
    for item in items:
        version = item.get("version", {}).get("N")
        status = item.get(status_field, {}).get("S")
        result[item[key]["S"]] = _seen(version, status)
    return result
