"""CPU per record of the processor's core path, in this process (a script, not a test; figures, no assertions).

``python -m workshop.bench.core_cpu [--records N] [--window W]``: N records from the synthetic fleet (duplicates,
reordering, poison, ignored types) go through what the processor does with each record before any I/O: route it
(``admit``: decode and validate), offer it to the reducer, and every W records drain the reducer and build the
item of each resource's newest candidate (what the writer builds at flush time, on its pool). Reported: CPU
(``time.process_time``) per record, best of three rounds, and how many items were built.
"""

from __future__ import annotations

import argparse
import time

from processor.core.dead_letters import DeadLetter
from processor.core.events import Ignored
from processor.core.position import Position
from processor.core.reducer import Reducer
from processor.core.route import admit, build
from processor.loadgen.fleet import generate
from processor.loadgen.records import Options

FLEET = Options(
    seed=7,
    clusters=2,
    instances=6,
    tasks=40,
    duplicate_rate=0.05,
    reorder_window=20,
    poison_rate=0.01,
    ignored_rate=0.02,
)


def records(n: int) -> list[tuple[str, bytes]]:
    out = []
    for record in generate(FLEET):
        out.append((record.partition_key, record.data))
        if len(out) >= n:
            break
    return out


def one_round(stream: list[tuple[str, bytes]], window: int) -> tuple[float, int]:
    reducer, built = Reducer(), 0
    started = time.process_time()
    for n, (partition_key, data) in enumerate(stream):
        position = Position("shardId-000000000000", f"{n:056d}")
        entry = admit(data, position, partition_key, 1)
        if isinstance(entry, Ignored):
            reducer.offer_ignored(position)
        elif isinstance(entry, DeadLetter):
            reducer.offer_dead(entry)
        else:
            reducer.offer(entry, position)
        if n % window == window - 1 or n == len(stream) - 1:
            for versions in reducer.drain().resources:
                build(versions[0])
                built += 1
    return (time.process_time() - started) / len(stream) * 1e6, built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--window", type=int, default=100, help="records per flush window")
    args = parser.parse_args(argv)
    stream = records(args.records)
    best = min(one_round(stream, args.window) for _ in range(3))
    print(
        f"{len(stream)} records, window {args.window}: {best[0]:.1f} us/record CPU (best of 3), {best[1]} items built"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
