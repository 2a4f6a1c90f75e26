"""Synthetic ECS event producer: writes ECS events to a Kinesis stream the way an EventBridge rule does.

The records come from the pure generator :func:`processor.loadgen.fleet.generate` (a simulated ECS fleet with
duplicates, bounded reordering, poison and ignored records); this module is the Kinesis side: PutRecords-sized
batches, :class:`KinesisWriter` (``processor.kinesis_put``: retries only the failed entries),
:func:`ensure_stream`, pacing (:class:`Pacer`), progress, and :func:`produce`, which feeds a
:class:`processor.loadgen.ground_truth.GroundTruth` only with records Kinesis accepted.

``ecs-state produce`` (this module's :func:`register` / :func:`run`) and ``./scripts/produce`` drive it.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from dataclasses import asdict
from typing import Any, Callable, Iterable, Iterator, TextIO

from processor.errors import ProduceError
from processor.kinesis_limits import MAX_BATCH_BYTES, MAX_BATCH_RECORDS, MAX_RECORD_BYTES, size_batches
from processor.kinesis_limits import record_size as kinesis_record_size
from processor.kinesis_put import PutRefused, RecordPutter
from processor.loadgen.catalog import FORMATS
from processor.loadgen.fleet import generate
from processor.loadgen.ground_truth import GroundTruth
from processor.loadgen.records import Options, Record
from processor.retry import KINESIS, Backoff

# ------------------------------------------------------------------------------------------------ kinesis

PACING_SLACK_S = 0.05  # with --rate, records due within this much are sent together in one PutRecords


def record_size(rec: Record) -> int:
    """What a record counts against PutRecords' limits: data plus partition key bytes."""
    return kinesis_record_size(rec.data, rec.partition_key)


def batches(
    records: Iterable[Record], max_records: int = MAX_BATCH_RECORDS, max_bytes: int = MAX_BATCH_BYTES
) -> Iterator[list[Record]]:
    """Group records into PutRecords batches (order kept)."""
    return size_batches(records, record_size, max_records, max_bytes)


class KinesisWriter:
    """The producer's side of ``processor.kinesis_put``: every record of a batch accepted, or ``ProduceError``."""

    def __init__(
        self,
        client: Any,
        stream: str,
        *,
        max_attempts: int = 12,
        backoff: Backoff = KINESIS,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.stream = stream
        self.endpoint = client.meta.endpoint_url
        self.putter = RecordPutter(client, stream, max_attempts, backoff, sleep, rng or random.Random())

    def put(self, batch: list[Record]) -> None:
        """Write one batch (<= 500 records, <= 5 MiB); returns when every record is accepted."""
        for rec in batch:
            if record_size(rec) > MAX_RECORD_BYTES:
                raise ProduceError(
                    f"a {rec.kind} record for {rec.partition_key!r} is {record_size(rec)} bytes, "
                    f"over Kinesis' {MAX_RECORD_BYTES}-byte record limit"
                )
        try:
            result = self.putter.put(batch)
        except PutRefused as exc:
            if exc.missing:
                raise ProduceError(
                    f"Kinesis stream {self.stream!r} does not exist at {self.endpoint}; create it "
                    f"(e.g. `ecs-state produce --create-shards 2 ...`) or pass the right --stream"
                ) from exc
            raise ProduceError(str(exc)) from exc
        if result.failing:
            raise ProduceError(
                f"{len(result.failing)} records still failing after {self.putter.max_attempts} "
                f"PutRecords attempts to {self.stream!r} (errors seen: {dict(self.putter.errors)}); "
                f"the stream may be overloaded: lower --rate or add shards"
            )


def ensure_stream(client: Any, stream: str, shards: int, deadline_s: float = 60.0) -> None:
    """Create ``stream`` with ``shards`` shards unless it exists, and wait until it is ACTIVE."""
    try:
        client.create_stream(StreamName=stream, ShardCount=shards)
    except client.exceptions.ResourceInUseException:
        pass
    end = time.monotonic() + deadline_s
    while True:
        status = client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"]
        if status == "ACTIVE":
            return
        if time.monotonic() > end:
            raise ProduceError(f"stream {stream!r} still {status} after {deadline_s:.0f}s")
        time.sleep(0.2)


# -------------------------------------------------------------------------------------------- pacing/progress


class Pacer:
    """When each record is due: ``rate`` records/s on average (0 = no pacing). ``bursty`` alternates seeded
    one-second bursts at 4x the rate (15 % of seconds) with quieter seconds, keeping the average."""

    def __init__(self, rate: float, bursty: bool = False, seed: int = 0) -> None:
        self.rate = rate
        self.bursty = bursty
        self.rng = random.Random(f"pacer:{seed}")
        self.due = 0.0  # seconds from start at which the next record is due
        self._second = -1
        self._factor = 1.0

    def next_due(self) -> float:
        if self.rate <= 0:
            return 0.0
        second = int(self.due)
        if self.bursty and second != self._second:
            self._second = second
            self._factor = 4.0 if self.rng.random() < 0.15 else self.rng.uniform(0.2, 0.74)  # mean 1.0
        due = self.due
        self.due += 1.0 / (self.rate * (self._factor if self.bursty else 1.0))
        return due


class Progress:
    """On a terminal, a tqdm bar (records, records/s, MB/s); otherwise a JSON log line every 5 s."""

    def __init__(
        self, total: int | None, duration: float | None, stream: TextIO | None = None, enabled: bool = True
    ) -> None:
        self.total = total
        self.duration = duration
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.monotonic()
        self.last = 0.0
        self.count = 0
        self.bytes = 0
        self.bar: Any = None
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=" records", file=self.stream, leave=True)

    def update(self, records: int, nbytes: int, force: bool = False) -> None:
        self.count += records
        self.bytes += nbytes
        now = time.monotonic()
        if self.bar is not None:
            self.bar.update(records)
            self.bar.set_postfix_str(f"{self.bytes / max(now - self.start, 1e-9) / 1e6:.2f} MB/s", refresh=False)
            return
        if not self.enabled or (not force and now - self.last < 5.0):
            return
        self.last = now
        elapsed = max(now - self.start, 1e-9)
        if self.total:
            frac = min(1.0, self.count / self.total)
        elif self.duration:
            frac = min(1.0, elapsed / self.duration)
        else:
            frac = 0.0
        from processor.logs import log

        log(
            "produce.progress",
            records=self.count,
            records_per_s=round(self.count / elapsed, 1),
            mb_per_s=round(self.bytes / elapsed / 1e6, 3),
            done=round(frac, 4),
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        else:
            self.update(0, 0, force=True)


# ------------------------------------------------------------------------------------------------ driver


def produce(
    records: Iterable[Record],
    sink: Callable[[list[Record]], None],
    *,
    events: int | None = None,
    duration: float | None = None,
    pacer: Pacer | None = None,
    progress: Progress | None = None,
    truth: GroundTruth | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> GroundTruth:
    """Send ``records`` in PutRecords-sized batches to ``sink`` until ``events`` records are sent or
    ``duration`` seconds pass; the truth is fed only with records the sink accepted (returned normally)."""
    truth = truth if truth is not None else GroundTruth()
    pacer = pacer or Pacer(0)
    start = clock()
    batch: list[Record] = []
    size = 0
    sent = 0

    def flush() -> None:
        nonlocal batch, size
        if not batch:
            return
        sink(batch)
        for rec in batch:
            truth.add(rec)
        if progress:
            progress.update(len(batch), size)
        batch, size = [], 0

    for rec in records:
        if events is not None and sent >= events:
            break
        now = clock() - start
        if duration is not None and now >= duration:
            break
        due = pacer.next_due()
        if duration is not None and due >= duration:
            break
        if due > now + PACING_SLACK_S:
            flush()  # send what is due (or nearly) before waiting for this record's turn
            now = clock() - start
            if due > now:
                sleep(due - now)
        n = record_size(rec)
        if batch and (len(batch) >= MAX_BATCH_RECORDS or size + n > MAX_BATCH_BYTES):
            flush()
        batch.append(rec)
        size += n
        sent += 1
    flush()
    return truth


# -------------------------------------------------------------------------------------------------- cli


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stream-name",
        dest="stream",
        default=None,
        help="Kinesis stream name (default: streamName of --properties / $ECS_STATE_PROPERTIES, else ecs-events)",
    )
    parser.add_argument("--stream", dest="stream", help=argparse.SUPPRESS)  # the old spelling, kept working
    parser.add_argument("--properties", default=None, help="KCL properties file to take streamName from")
    parser.add_argument(
        "--create-shards",
        type=int,
        default=0,
        metavar="N",
        help="create the stream with N shards if it does not exist, and wait until ACTIVE",
    )
    parser.add_argument("--clusters", type=int, default=2, help="clusters per account and region")
    parser.add_argument(
        "--accounts",
        type=int,
        default=1,
        metavar="N",
        help="spread the fleet over N accounts (123456789012 and the next numbers); cluster names repeat in each",
    )
    parser.add_argument(
        "--regions",
        default=None,
        metavar="R1,R2",
        help="the regions of every account (default: the command's region, AWS_REGION, else us-east-1)",
    )
    parser.add_argument("--instances", type=int, default=4, help="live container instances (0 = Fargate only)")
    parser.add_argument("--tasks", type=int, default=20, help="concurrent tasks")
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--events", type=int, default=None, help="records to send (default 1000)")
    amount.add_argument("--duration", type=float, default=None, metavar="S", help="send for S seconds")
    parser.add_argument("--rate", type=float, default=0.0, help="records/s (0 = as fast as possible)")
    parser.add_argument("--bursty", action="store_true", help="vary the rate in bursts around --rate")
    parser.add_argument("--duplicate-rate", type=float, default=0.0)
    parser.add_argument("--reorder-window", type=int, default=0, metavar="W")
    parser.add_argument("--poison-rate", type=float, default=0.0)
    parser.add_argument(
        "--ignored-rate",
        type=float,
        default=0.0,
        help="valid events of detail-types the processor ignores (ECS Service Action ...)",
    )
    parser.add_argument("--format", choices=FORMATS, default="json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--step-ms",
        type=int,
        default=40,
        help="mean simulated milliseconds between events (larger spreads the fleet's life over "
        "hours: start and stop times, stopped tasks by day)",
    )
    parser.add_argument("--truth", default=None, metavar="FILE", help="write the ground truth JSON here")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="generate without Kinesis (measures the pure generator; writes the truth)",
    )
    parser.add_argument("--no-progress", action="store_true")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "produce", help="write synthetic ECS events to a Kinesis stream", description=__doc__.split("\n\n")[0]
    )
    _add_arguments(parser)
    parser.set_defaults(func=run)


def options_from_args(args: argparse.Namespace) -> Options:
    return Options(
        clusters=args.clusters,
        instances=args.instances,
        tasks=args.tasks,
        duplicate_rate=args.duplicate_rate,
        reorder_window=args.reorder_window,
        poison_rate=args.poison_rate,
        ignored_rate=args.ignored_rate,
        format=args.format,
        seed=args.seed,
        step_ms=args.step_ms,
        region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        accounts=getattr(args, "accounts", 1),
        regions=tuple(r.strip() for r in (getattr(args, "regions", None) or "").split(",") if r.strip()),
    )


def stream_name(args: argparse.Namespace, env: Any = os.environ) -> str:
    """--stream-name, else the stream of the properties file (--properties or $ECS_STATE_PROPERTIES), else
    ``ecs-events`` (the local stack's)."""
    from processor.config import stream_from_properties

    return str(args.stream or stream_from_properties(args.properties, env) or "ecs-events")


def run(args: argparse.Namespace) -> int:
    from processor.errors import ConfigError
    from processor.logs import log

    try:
        options = options_from_args(args)
        args.stream = stream_name(args)
    except (ValueError, ConfigError) as exc:
        log("produce.bad-arguments", level="ERROR", error=str(exc))
        return 2
    events = args.events if args.events is not None or args.duration is not None else 1000
    if args.rate < 0:
        log("produce.bad-arguments", level="ERROR", error=f"--rate must be >= 0, got {args.rate}")
        return 2
    truth = GroundTruth(
        meta={
            "stream": args.stream,
            "options": asdict(options),
            "events": events,
            "duration": args.duration,
            "rate": args.rate,
            "bursty": args.bursty,
        }
    )
    progress = Progress(events, args.duration, enabled=not args.no_progress)
    if args.dry_run:

        def sink(batch: list[Record]) -> None:
            return None

        writer = None
    else:
        from processor.aws import client as aws_client

        kinesis = aws_client("kinesis", pool=4)
        if args.create_shards:
            ensure_stream(kinesis, args.stream, args.create_shards)
        writer = KinesisWriter(kinesis, args.stream, rng=random.Random(f"backoff:{args.seed}"))
        sink = writer.put
    start = time.monotonic()
    code = 0
    try:
        produce(
            generate(options),
            sink,
            events=events,
            duration=args.duration,
            pacer=Pacer(args.rate, args.bursty, args.seed),
            progress=progress,
            truth=truth,
        )
    except KeyboardInterrupt:
        log("produce.interrupted", level="WARNING", sent=truth.totals["records"])
        code = 130
    except ProduceError as exc:
        log("produce.failed", level="ERROR", error=str(exc), sent=truth.totals["records"])
        code = 1
    finally:
        progress.close()
        if args.truth:
            truth.save(args.truth)
    seconds = time.monotonic() - start
    totals = truth.to_dict()["totals"]
    log(
        "produce.done",
        stream=args.stream,
        seconds=round(seconds, 3),
        records_per_s=round(totals["records"] / seconds, 1) if seconds > 0 else None,
        avg_bytes=round(totals["bytes"] / totals["records"], 1) if totals["records"] else 0,
        put_calls=writer.putter.calls if writer else 0,
        retried_records=writer.putter.retried_records if writer else 0,
        truth=args.truth,
        **{k: v for k, v in totals.items() if k != "bytes"},
        bytes=totals["bytes"],
    )
    return code
