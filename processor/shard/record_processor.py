"""The KCL adapter: an amazon_kclpy v3 record processor for one shard (started by ``shard/main.py``).

It decides *when* to flush and *where* to checkpoint, and holds no business rule of its own:
- ``initialize`` runs the start-up checks (``startup``: the tables, the metrics target) before any record; a
  configuration problem is one ``config_error`` line and exit 2 (``errors.exit_code_for``);
- every record goes through ``route.admit`` into the shard's ``Reducer`` (items are built at flush time); its
  base64 text is decoded by :func:`record_data` and the record is dropped from the call's list as soon as it is
  offered, so a 10,000-record call does not hold its ~45 MB of base64 text until its last record;
- a flush happens when the reducer is full (mid-batch if need be); at the end of a ``processRecords`` call when
  the window has no room left for another call like this one (reason ``room``: reading and parsing a call's line
  takes about twice its text, ``CALL_MEMORY_FACTOR``, and the pending bytes plus that stay within
  ``maxPendingBytes``: docs/sizing.md); and at the end of a call when ``shard/flush_schedule.py`` says it is
  due: early enough that the window's oldest record is durable about ``flushIntervalMillis`` after its arrival
  in Kinesis (KCL must call us on idle shards too: ``callProcessRecordsEvenForEmptyRecordList = true``); a
  checkpoint that failed after a flush is tried again at the end of a call once the interval has passed since
  that flush, with or without new records;
- the checkpoint goes to the last record the flush covered, and only after ``Writer.write`` reported every item
  and dead letter durable. Transient DynamoDB failures are retried inside the flush, holding the lease, for as
  long as they last (the default); only with a finite ``writeRetryBudgetMillis`` does a flush that still fails
  exit the process (code 3) without checkpointing: the daemon then stops, and the shard is read again from its
  last checkpoint.
- a flush covering a record delivered while the shard was catching up (``stored_versions.CatchUp``: started at
  TRIM_HORIZON / AT_TIMESTAMP until near the tip, or ``millisBehindLatest`` >= ``prefetchBehindMillis``) first
  reads the stored versions it does not remember (``Writer.write(..., prefetch=True)``): the decision follows the
  records' delivery, not the empty poll at the tip that may trigger the interval flush;
- every flush line carries the freshness of the records it covers (``shard/freshness.py``: arrival in Kinesis ->
  durable, p50 / p99); the arrivals are collected as records are offered and dropped with the pending state on a
  lease loss;
- metrics and log lines are side effects: a failure to write them is counted, never raised into the flush.
"""

from __future__ import annotations

import base64
import sys
import time
import traceback
from typing import Any, Callable

import pybase64
from amazon_kclpy.checkpoint_error import CheckpointError
from amazon_kclpy.v3 import processor as v3

from processor.config import Settings
from processor.core.dead_letters import DeadLetter
from processor.core.events import Ignored
from processor.core.position import Position
from processor.core.reducer import Batch, Reducer
from processor.core.route import admit
from processor.errors import EXIT_BUG, EXIT_WRITE_FAILED, ConfigError, EcsStateError, exit_code_for
from processor.logs import log_dead_letter, log_safely
from processor.retry import CHECKPOINT
from processor.shard.flush_report import EVENT as FLUSH_EVENT
from processor.shard.flush_report import FlushReport
from processor.shard.flush_schedule import FlushSchedule
from processor.shard.flush_window import FlushWindow
from processor.shard.freshness import freshness
from processor.shard.heartbeat import ShardHeartbeat, heartbeat_dir
from processor.shard.metrics import Metrics
from processor.shard.stored_versions import CatchUp
from processor.shard.writer import Outcome, Writer


def record_data(record: Any) -> bytes:
    """A record's bytes, as amazon_kclpy's ``binary_data`` gives them: its base64 ``data`` decoded with pybase64
    (SIMD: ~1 µs for a 4.4 KB record against ~9 for the standard library's decoder that ``binary_data`` uses);
    text the strict decoder refuses (never from the daemon, whose Java encoder writes canonical base64) goes to
    the standard library's lenient decoder, exactly as ``binary_data`` would."""
    data = record.data
    try:
        return pybase64.b64decode(data, validate=True)
    except ValueError:  # binascii.Error, or text that is not ASCII
        return base64.b64decode(data)


#: Reading a call's line takes about twice its text (the line, and the pieces it is joined from), then the line
#: and its parsed records live together: the memory a call needs, per byte of its records' base64 text.
CALL_MEMORY_FACTOR = 2
#: A record's JSON framing in the call's line beside its base64 data (keys, partition key, sequence number).
RECORD_FRAMING_BYTES = 200

RETRY_CHECKPOINT = frozenset({"ThrottlingException", "KinesisClientLibDependencyException"})
STOP_CHECKPOINTING = frozenset({"ShutdownException", "InvalidStateException"})


class ShardProcessor(v3.RecordProcessorBase):
    """One shard's processor (the daemon starts one process per shard lease)."""

    def __init__(
        self,
        settings: Settings,
        writer_factory: Callable[[str], Writer],
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall_ms: Callable[[], float] = lambda: time.time() * 1000,
        startup: Callable[[Writer], list[str]] | None = None,
        heartbeat: ShardHeartbeat | None = None,
    ) -> None:
        self.settings = settings
        self._writer_factory = writer_factory
        self._startup = startup
        self._writer: Writer | None = None
        self.metrics = metrics or Metrics(settings.metrics, settings.application)
        self.heartbeat = heartbeat or ShardHeartbeat(heartbeat_dir(), clock)
        self._emitted_minute = -1  # the wall-clock minute of the last EMF document (at least one a minute)
        self._clock = clock
        self._sleep = sleep
        self.shard_id = "?"
        self.window = FlushWindow(
            Reducer(settings.max_pending_arns, settings.max_pending_bytes),
            FlushSchedule(settings.flush_interval_millis / 1000),
        )
        self._last_flush = clock()
        self._checkpointing = True
        self._durable: Position | None = None  # flushed (durable) but not yet checkpointed
        self._millis_behind: int | None = None
        self.catch_up = CatchUp(settings.prefetch_behind_millis)
        self._wall_ms = wall_ms

    # --- lifecycle -------------------------------------------------------------------------------------------

    def initialize(self, initialize_input: Any) -> None:
        self.shard_id = initialize_input.shard_id
        self._guarded(self._initialize, initialize_input)

    def _initialize(self, initialize_input: Any) -> None:
        self._writer = self._writer_factory(self.shard_id)
        self._writer.observe(self.metrics, self.heartbeat.beat)
        problems = self._startup(self._writer) if self._startup else []
        problem = self.metrics.check()
        problems += [problem] if problem else []
        if problems:
            raise ConfigError("; ".join(problems))
        self._last_flush = self._clock()
        self.catch_up.on_initialize(initialize_input.sequence_number)
        self.heartbeat.start(self.shard_id)
        log_safely(
            "initialize",
            shard=self.shard_id,
            sequenceNumber=initialize_input.sequence_number,
            subSequenceNumber=initialize_input.sub_sequence_number,
        )

    def process_records(self, process_records_input: Any) -> None:
        self._guarded(self._process_records, process_records_input)

    def _process_records(self, process_records_input: Any) -> None:
        self.heartbeat.beat()
        self._millis_behind = process_records_input.millis_behind_latest
        self.catch_up.on_records(self._millis_behind)
        checkpointer = process_records_input.checkpointer
        now, wall_ms = self._clock(), self._wall_ms()
        window = self.window
        window.schedule.call_started(now)
        records = process_records_input.records
        call_bytes = 0
        for index, record in enumerate(records):
            records[index] = None  # its base64 text is freed once offered (module docstring)
            call_bytes += len(record.data) + RECORD_FRAMING_BYTES
            window.delivered(now, wall_ms, record.timestamp_millis, self.catch_up.active)
            self.offer(
                record_data(record),
                record.sequence_number,
                record.sub_sequence_number or 0,
                record.partition_key,
                record.timestamp_millis,
            )
            if window.reducer.full:
                self.flush_and_checkpoint(checkpointer, "full")
        now = self._clock()
        if window.schedule.due(now) or (
            self._durable is not None and now - self._last_flush >= self.settings.flush_interval_millis / 1000
        ):
            self.flush_and_checkpoint(checkpointer, "interval")
        elif window.reducer.pending_bytes and (
            window.reducer.pending_bytes + CALL_MEMORY_FACTOR * call_bytes > self.settings.max_pending_bytes
        ):
            self.flush_and_checkpoint(checkpointer, "room")
        window.schedule.call_ended(self._clock())
        minute = int(self._wall_ms() // 60_000)
        if minute != self._emitted_minute:  # nothing flushed this minute: the shard's age alone
            self._emitted_minute = minute
            self.metrics.emit(self.shard_id, {"millis_behind_latest": self._millis_behind})

    def lease_lost(self, lease_lost_input: Any) -> None:
        dropped = self.window.drop()
        self._checkpointing = False
        self.heartbeat.stop()
        log_safely(
            "lease_lost",
            shard=self.shard_id,
            dropped_pending_arns=dropped,
            note="pending state dropped; the new owner re-reads from the last checkpoint",
        )

    def shard_ended(self, shard_ended_input: Any) -> None:
        self._guarded(self._end, shard_ended_input.checkpointer, "shard_end")

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        self._guarded(self._end, shutdown_requested_input.checkpointer, "shutdown")

    def _end(self, checkpointer: Any, reason: str) -> None:
        self.flush(reason)
        if reason == "shard_end":
            # No argument: checkpoint at SHARD_END, which lets KCL start the child shards.
            self.checkpoint(checkpointer, None, force=True)
        elif self._durable is not None:
            self.checkpoint(checkpointer, self._durable)
        self.heartbeat.stop()
        log_safely(reason, shard=self.shard_id)

    # --- the pipeline ----------------------------------------------------------------------------------------

    def offer(
        self, data: bytes, sequence_number: str, sub_sequence_number: int, partition_key: str, arrival_ms: int | None
    ) -> None:
        position = Position(self.shard_id, sequence_number, sub_sequence_number)
        entry = admit(data, position, partition_key, arrival_ms, self.settings.task_retention_hours)
        if isinstance(entry, Ignored):
            self.window.reducer.offer_ignored(position)
        elif isinstance(entry, DeadLetter):
            log_dead_letter(entry, self.settings.dead_letter_table)
            self.window.reducer.offer_dead(entry)
        else:
            self.window.reducer.offer(entry, position)

    def flush(self, reason: str) -> Position | None:
        """Write everything pending; returns the position now safe to checkpoint (None if nothing was pending).
        Exits the process without checkpointing when the writes fail past a finite retry budget."""
        started = self._last_flush = self._clock()
        if not self.window.reducer.has_pending:
            return None
        taken = self.window.take(self.catch_up.active)
        batch = taken.batch
        assert self._writer is not None, "flush before initialize"
        outcome = self._writer.write(batch, prefetch=taken.prefetch)
        self.window.schedule.flushed(started, self._clock())
        fresh = freshness(taken.arrivals, self._wall_ms()) if outcome.ok else (None, None)
        self._report(batch, outcome, reason, fresh)
        if outcome.fallbacks:
            log_safely(
                "fallback",
                level="WARNING",
                shard=self.shard_id,
                resources=outcome.fallbacks,
                note="the newest version of these ARNs could not be stored (dead letters above); the newest "
                "storable version of the flush window was written instead",
            )
        if not outcome.ok:
            first = batch.resources[0][0].arn if batch.resources else None
            log_safely(
                "flush_failed",
                level="ERROR",
                shard=self.shard_id,
                lastSequenceNumber=batch.last.sequence_number if batch.last else None,
                failures=len(outcome.failed),
                examples=outcome.failed[:3],
                firstArn=first,
                action="not checkpointing; exiting so KCL re-reads this shard from its last checkpoint. "
                "Check DynamoDB availability, throttling and the worker's IAM permissions.",
            )
            raise SystemExit(EXIT_WRITE_FAILED)
        self._durable = batch.last
        return batch.last

    def flush_and_checkpoint(self, checkpointer: Any, reason: str) -> None:
        self.flush(reason)
        if self._durable is not None:
            self.checkpoint(checkpointer, self._durable)

    def checkpoint(self, checkpointer: Any, position: Position | None, force: bool = False) -> bool:
        """Checkpoint at ``position`` (None: at the end of what was delivered / SHARD_END), retrying throttling."""
        if not self._checkpointing and not force:
            return False
        seq = position.sequence_number if position else None
        sub = position.sub_sequence_number if position else None
        for attempt in range(1, self.settings.checkpoint_max_attempts + 1):
            try:
                checkpointer.checkpoint(seq, sub)
                if position == self._durable:
                    self._durable = None
                return True
            except CheckpointError as exc:
                error = exc.value
                if error in RETRY_CHECKPOINT and attempt < self.settings.checkpoint_max_attempts:
                    delay = CHECKPOINT.delay(attempt)
                    log_safely(
                        "checkpoint_retry",
                        level="WARNING",
                        shard=self.shard_id,
                        sequenceNumber=seq,
                        error=error,
                        attempt=attempt,
                        delay_s=round(delay, 3),
                    )
                    self._sleep(delay)
                    continue
                if error in STOP_CHECKPOINTING:
                    self._checkpointing = False
                    log_safely(
                        "checkpoint_stopped",
                        level="WARNING",
                        shard=self.shard_id,
                        sequenceNumber=seq,
                        error=error,
                        note="lease lost or shutting down; no further checkpoints from this "
                        "processor (data already written stays written)",
                    )
                    return False
                log_safely(
                    "checkpoint_failed",
                    level="ERROR",
                    shard=self.shard_id,
                    sequenceNumber=seq,
                    error=error,
                    attempt=attempt,
                    note="data is durable; the next flush checkpoints further",
                )
                return False
        return False

    def _report(self, batch: Batch, outcome: Outcome, reason: str, fresh: tuple[float | None, float | None]) -> None:
        counts = batch.counts
        report = FlushReport(
            shard=self.shard_id,
            reason=reason,
            first_sequence_number=batch.first.sequence_number if batch.first else None,
            last_sequence_number=batch.last.sequence_number if batch.last else None,
            records=counts.records,
            distinct_arns=len(batch.resources),
            writes=outcome.written,
            stale=outcome.stale,
            ignored=counts.ignored,
            dead_letters=outcome.dead_letters,
            duplicates=counts.duplicates,
            superseded=counts.superseded,
            requests=outcome.requests,
            retries=outcome.retries,
            throttled=outcome.throttled,
            flush_ms=round(outcome.millis, 1),
            millis_behind_latest=self._millis_behind,
            freshness_p50_ms=fresh[0],
            freshness_p99_ms=fresh[1],
            skipped=outcome.skipped,
        )
        log_safely(FLUSH_EVENT, **report.fields())
        self.metrics.emit(self.shard_id, report.stats())  # never raises
        self._emitted_minute = int(self._wall_ms() // 60_000)

    def _guarded(self, fn: Callable[..., None], *args: Any) -> None:
        """amazon_kclpy swallows exceptions and reports success; a bug here must instead stop the process so
        nothing is checkpointed past records that were not applied."""
        try:
            fn(*args)
        except SystemExit:
            raise
        except EcsStateError as exc:  # a configuration error found at start, or a finite retry budget spent
            event = "config_error" if isinstance(exc, ConfigError) else "startup_failed"
            log_safely(
                event,
                level="ERROR",
                shard=self.shard_id,
                error=str(exc),
                action="exiting before any record was processed; fix the named setting or table",
            )
            raise SystemExit(exit_code_for(exc)) from exc
        except Exception as exc:
            log_safely(
                "processor_bug",
                level="ERROR",
                shard=self.shard_id,
                error=f"{type(exc).__name__}: {exc}",
                action="exiting without checkpoint; KCL re-reads from the last checkpoint",
            )
            traceback.print_exc(file=sys.stderr)
            raise SystemExit(EXIT_BUG) from exc
