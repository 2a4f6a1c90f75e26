"""``ecs-state status``'s pure part: KCL's lease table as one row per shard, and the liveness judgement.

KCL 3 keeps one item per shard in the table named by ``applicationName``: ``leaseKey`` (the shard id),
``leaseOwner`` (the worker id, absent while unassigned), ``leaseCounter`` (incremented by every renewal and every
take: KCL renews a held lease well within ``failoverTimeMillis``), ``checkpoint`` (a sequence number,
``TRIM_HORIZON``, ``LATEST``, or ``SHARD_END`` once the shard was read to its end) with
``checkpointSubSequenceNumber``, ``ownerSwitchesSinceCheckpoint`` and ``parentShardId`` (a string set).

The liveness rule (``--check``): one read cannot see a duration, so the command reads the table twice,
``failoverTimeMillis`` apart. A shard is STALLED when, across the two reads, it is not finished, its parents are
finished (or gone from the table: KCL deletes finished leases), and its ``leaseCounter`` did not change: no
worker renewed or took the lease for a whole failover time, so it had no live owner that long (a ``leaseOwner``
that does not renew is a dead worker). A shard waiting for its parents is not judged (KCL does not start it yet);
a shard seen in one read only is not judged either. No leases at all is also a failure (no worker ever ran, or
the name is wrong). No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from processor.core.words import Word
from processor.ops.render import render_table

SHARD_END = "SHARD_END"
DEFAULT_FAILOVER_MILLIS = 10_000


@dataclass(frozen=True, slots=True)
class Lease:
    shard_id: str
    owner: str | None
    counter: int
    checkpoint: str | None
    sub_sequence: int
    parents: tuple[str, ...]
    owner_switches: int

    @property
    def finished(self) -> bool:
        return self.checkpoint == SHARD_END


def _value(av: Mapping[str, Any] | None) -> Any:
    if not av:
        return None
    ((kind, raw),) = av.items()
    if kind == "N":
        return int(raw)
    if kind in ("SS", "NS", "L"):
        return raw
    if kind == "NULL":
        return None
    return raw


def lease_from_item(item: Mapping[str, Mapping[str, Any]]) -> Lease:
    """A low-level lease item -> Lease (unknown attributes are ignored, missing ones are empty)."""
    parents = _value(item.get("parentShardId")) or []
    return Lease(
        shard_id=str(_value(item.get("leaseKey"))),
        owner=_value(item.get("leaseOwner")) or None,
        counter=int(_value(item.get("leaseCounter")) or 0),
        checkpoint=_value(item.get("checkpoint")),
        sub_sequence=int(_value(item.get("checkpointSubSequenceNumber")) or 0),
        parents=tuple(sorted(str(p) for p in ([parents] if isinstance(parents, str) else parents))),
        owner_switches=int(_value(item.get("ownerSwitchesSinceCheckpoint")) or 0),
    )


def by_shard(leases: Iterable[Lease]) -> dict[str, Lease]:
    return {lease.shard_id: lease for lease in sorted(leases, key=lambda le: le.shard_id)}


class ShardState(Word):
    """What two reads of one shard's lease say; its value is the word the report prints."""

    FINISHED = "finished"
    PROCESSING = "processing"
    WAITING_FOR_PARENT = "waiting-for-parent"
    STALLED = "stalled"
    NEW = "new"


@dataclass(frozen=True, slots=True)
class Verdict:
    shard_id: str
    state: ShardState
    why: str = ""

    @property
    def bad(self) -> bool:
        return self.state is ShardState.STALLED


def _waiting(lease: Lease, table: Mapping[str, Lease]) -> bool:
    return any(p in table and not table[p].finished for p in lease.parents)


def judge(first: Mapping[str, Lease], second: Mapping[str, Lease], window_millis: int) -> list[Verdict]:
    """The verdict of every shard in the second read, from two reads ``window_millis`` apart."""
    verdicts = []
    for shard, lease in second.items():
        before = first.get(shard)
        if lease.finished:
            verdicts.append(Verdict(shard, ShardState.FINISHED))
        elif _waiting(lease, second):
            verdicts.append(Verdict(shard, ShardState.WAITING_FOR_PARENT))
        elif before is None:
            verdicts.append(Verdict(shard, ShardState.NEW, "seen in the second read only"))
        elif before.counter == lease.counter:
            owner = f"owner {lease.owner} did not renew it" if lease.owner else "it had no owner"
            verdicts.append(
                Verdict(
                    shard,
                    ShardState.STALLED,
                    f"leaseCounter stayed {lease.counter} for {window_millis} ms (failoverTimeMillis): {owner}",
                )
            )
        else:
            verdicts.append(Verdict(shard, ShardState.PROCESSING))
    return verdicts


def problems(verdicts: Sequence[Verdict], leases: Mapping[str, Lease], table: str) -> list[str]:
    """One line per reason for a failed check (empty: healthy)."""
    if not leases:
        return [
            f"lease table {table} has no leases: no worker has synced the shards yet (or applicationName is "
            f"not the one the workers use)"
        ]
    return [f"{v.shard_id}: STALLED: {v.why}" for v in verdicts if v.bad]


COLUMNS = ("SHARD", "OWNER", "CHECKPOINT", "PARENTS", "OWNER SWITCHES", "LEASE COUNTER", "FINISHED")


def rows(leases: Mapping[str, Lease]) -> list[list[str]]:
    def checkpoint(lease: Lease) -> str:
        if lease.checkpoint is None:
            return "-"
        return f"{lease.checkpoint}:{lease.sub_sequence}" if lease.sub_sequence else str(lease.checkpoint)

    return [
        [
            le.shard_id,
            le.owner or "-",
            checkpoint(le),
            ",".join(le.parents) or "-",
            str(le.owner_switches),
            str(le.counter),
            "yes" if le.finished else "no",
        ]
        for le in leases.values()
    ]


def render_status(table: str, leases: Mapping[str, Lease], verdicts: Sequence[Verdict] | None = None) -> str:
    """The table of leases; with ``verdicts`` (``--check``) a STATE column and the verdict line."""
    body = rows(leases)
    heads: tuple[str, ...] = COLUMNS
    if verdicts is not None:
        states = {v.shard_id: v.state.value for v in verdicts}
        heads = (*COLUMNS, "STATE")
        body = [[*row, states.get(row[0], "-")] for row in body]
    out = render_table(heads, body) if body else ""
    owners = {le.owner for le in leases.values() if le.owner}
    out += (
        f"{table}: {len(leases)} leases, {sum(le.finished for le in leases.values())} finished, "
        f"{len(owners)} workers holding leases\n"
    )
    if verdicts is not None:
        found = problems(verdicts, leases, table)
        out += "".join(line + "\n" for line in found) or "check: every unfinished shard has a live owner\n"
    return out


def to_dict(table: str, leases: Mapping[str, Lease], verdicts: Sequence[Verdict] | None) -> dict[str, Any]:
    states = {v.shard_id: (v.state.value, v.why) for v in verdicts or ()}
    return {
        "leaseTable": table,
        "healthy": None if verdicts is None else not problems(verdicts, leases, table),
        "problems": [] if verdicts is None else problems(verdicts, leases, table),
        "shards": [
            {
                "shardId": le.shard_id,
                "leaseOwner": le.owner,
                "checkpoint": le.checkpoint,
                "checkpointSubSequenceNumber": le.sub_sequence,
                "parentShardIds": list(le.parents),
                "ownerSwitchesSinceCheckpoint": le.owner_switches,
                "leaseCounter": le.counter,
                "finished": le.finished,
                **({"state": states[le.shard_id][0]} if le.shard_id in states else {}),
            }
            for le in leases.values()
        ],
    }
