"""``python -m workshop index-cost``: the write units each read index adds per event, on a generated lifecycle
stream (the synthetic fleet, duplicates and reordering included). Prints and saves ``bench/index-cost.json`` and
``bench/index-cost.md``.

The calculator (``index_cost``) is pure: it applies the stream to a model of the tables the way the processor
does (an event is written only when its ``version`` is above the stored one; duplicates and older versions write
nothing), builds each written item with the processor's own item builder (``core/items.py``, derived index keys
included), and charges, per index of ``core/schema.py``, what DynamoDB charges a global secondary index
(on-demand, one write request unit per 1 KB of index entry; the entries here are far below 1 KB):
- the item enters the index (all its key attributes now present): 1 (a put);
- it leaves the index (a key attribute now absent): 1 (a delete);
- it stays, and a key attribute changed: 2 (a delete and a put);
- it stays with the same keys, and a projected attribute changed: 1; nothing it projects changed: 0.
The table's own write is ``ceil(item size / 1 KB)``. The processor coalesces the versions of a flush window
(one put for the newest), so its table writes per event are fewer than here: these are per-event upper bounds,
and the ratio index/table is what an index costs relative to the table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from processor.core.events import Event, decode
from processor.core.items import build_item
from processor.core.position import Position
from processor.core.schema import INDEXES, TABLE_KEYS, TASK, Index
from processor.loadgen.fleet import generate
from processor.loadgen.records import Options, Record

#: the stream measured: the demo's fleet shape, with EventBridge's duplicates and reordering
FLEET = Options(seed=11, clusters=3, instances=12, tasks=150, duplicate_rate=0.05, reorder_window=20, step_ms=10_000)
EVENTS = 50_000
#: designs measured for comparison, not created: the index of earlier versions (keyed on the cluster alone, a hot
#: partition) and the cluster listing with ``lastStatus`` as a range key instead of projected
ALTERNATIVES: tuple[Index, ...] = (
    Index("(earlier) clusterArn-lastStatus-index", TASK, "clusterArn", "lastStatus", (), "comparison"),
    Index("(alternative) cluster-index, lastStatus range key", TASK, "cluster_part", "lastStatus", (), "comparison"),
)


@dataclass
class Cost:
    """What one index (or the table) was charged."""

    writes: int = 0  # write request units
    puts: int = 0
    deletes: int = 0
    updates: int = 0  # same keys, projected attribute changed


@dataclass
class Result:
    events: int = 0  # versioned events read (task and instance, duplicates included)
    table_puts: int = 0  # events that raised a stored version
    table_units: int = 0
    indexes: dict[str, Cost] = field(default_factory=dict)


def _view(index: Index, attributes: dict[str, Any]) -> tuple[tuple[Any, ...], tuple[Any, ...]] | None:
    """The index entry of an item (keys, projected attributes), ``None`` when the item is not in the index."""
    if any(key not in attributes for key in index.keys):
        return None
    return (tuple(repr(attributes[k]) for k in index.keys), tuple(repr(attributes.get(name)) for name in index.include))


def charge(index: Index, before: dict[str, Any] | None, after: dict[str, Any], cost: Cost) -> None:
    """Charge ``cost`` for one item going from ``before`` (absent: ``None``) to ``after`` (pure)."""
    old = _view(index, before) if before is not None else None
    new = _view(index, after)
    if old is None and new is None:
        return
    if old is None:
        cost.puts += 1
        cost.writes += 1
    elif new is None:
        cost.deletes += 1
        cost.writes += 1
    elif old[0] != new[0]:
        cost.deletes += 1
        cost.puts += 1
        cost.writes += 2
    elif old[1] != new[1]:
        cost.updates += 1
        cost.writes += 1


def index_cost(records: Iterable[Record], indexes: tuple[Index, ...] = INDEXES) -> Result:
    """Apply ``records`` to a model of the tables and charge every index (pure)."""
    result = Result(indexes={index.name: Cost() for index in indexes})
    stored: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
    for n, record in enumerate(records):
        if record.kind not in ("task", "instance"):
            continue
        event = decode(record.data)
        if not isinstance(event, Event):
            continue
        result.events += 1
        key = (event.kind, event.arn)
        previous = stored.get(key)
        if previous is not None and previous[0] >= event.version:
            continue  # the conditional put refuses it: no write at all
        item = build_item(event, Position("shardId-000000000000", str(n)))
        result.table_puts += 1
        result.table_units += math.ceil(item.size / 1024)
        for index in indexes:
            if TABLE_KEYS[index.kind] == event.key_name:
                charge(index, previous[1] if previous else None, item.attributes, result.indexes[index.name])
        stored[key] = (event.version, item.attributes)
    return result


def report(result: Result, options: Options) -> dict[str, Any]:
    per_event = max(1, result.events)
    rows = {
        name: {
            "units": cost.writes,
            "per_event": round(cost.writes / per_event, 4),
            "per_table_put": round(cost.writes / max(1, result.table_puts), 4),
            "vs_table_units_pct": round(100 * cost.writes / max(1, result.table_units), 1),
            "puts": cost.puts,
            "deletes": cost.deletes,
            "updates": cost.updates,
        }
        for name, cost in result.indexes.items()
    }
    total = sum(cost.writes for name, cost in result.indexes.items() if name in {i.name for i in INDEXES})
    return {
        "events": result.events,
        "table_puts": result.table_puts,
        "table_units": result.table_units,
        "table_units_per_event": round(result.table_units / per_event, 4),
        "indexes": rows,
        "all_indexes_per_event": round(total / per_event, 4),
        "all_indexes_vs_table_pct": round(100 * total / max(1, result.table_units), 1),
        "fleet": {
            "seed": options.seed,
            "clusters": options.clusters,
            "instances": options.instances,
            "tasks": options.tasks,
            "duplicate_rate": options.duplicate_rate,
            "reorder_window": options.reorder_window,
        },
    }


def render_markdown(doc: dict[str, Any]) -> str:
    lines = [
        f"# Index write cost ({doc['events']} versioned events of the synthetic fleet)",
        "",
        (
            f"Table: {doc['table_puts']} puts that raised a version, {doc['table_units']} write units "
            f"({doc['table_units_per_event']} per event)."
        ),
        "",
        "| index | write units | per event | per table put | vs table units | puts | deletes | updates |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in doc["indexes"].items():
        lines.append(
            f"| {name} | {row['units']} | {row['per_event']} | {row['per_table_put']} | "
            f"{row['vs_table_units_pct']} % | {row['puts']} | {row['deletes']} | {row['updates']} |"
        )
    lines += [
        "",
        (
            f"All indexes `ecs-state setup` creates: {doc['all_indexes_per_event']} write units per event, "
            f"{doc['all_indexes_vs_table_pct']} % of the table's own. Rows in parentheses are designs measured "
            f"for comparison, not created. Leave an index out with `ecsState.readIndexes`."
        ),
        "",
    ]
    return "\n".join(lines)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "index-cost",
        help="write units each read index adds per event (pure model)",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--events", type=int, default=EVENTS)
    parser.add_argument("--out", type=Path, default=Path("bench"), help="folder for index-cost.json / .md")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = index_cost(itertools.islice(generate(FLEET), args.events), INDEXES + ALTERNATIVES)
    doc = report(result, FLEET)
    text = render_markdown(doc)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "index-cost.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    (args.out / "index-cost.md").write_text(text, encoding="utf-8")
    return 0
