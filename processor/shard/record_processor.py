"""The KCL adapter: an amazon_kclpy v3 record processor for one shard that performs the state machine's actions
and decides nothing. Started by ``shard/main.py``.

It turns the daemon's calls into events of the shard's state machine (``shard/machine.py``: every rule about
when to flush and where to checkpoint lives there) and performs the actions the machine answers, with no decision
of its own:
- ``initialize`` runs the start-up checks (``startup``: the tables, the metrics target) before any record; a
  configuration problem is one ``config_error`` line and exit 2 (``errors.exit_code_for``);
- every record's base64 text is decoded by :func:`record_data`, routed by ``route.admit`` (a dead letter is
  logged here) and delivered to the machine; the record is dropped from the call's list as soon as it is
  delivered, so a 10,000-record call does not hold its ~45 MB of base64 text until its last record;
- a ``Flush`` is ``Writer.write`` (transient DynamoDB failures are retried inside it, holding the lease, for as
  long as they last by default), then the flush log line (``shard/flush_report.py``, with the freshness of the
  records it covers: ``shard/freshness.py``) and its metrics; a flush that still fails past a finite
  ``writeRetryBudgetMillis`` ends in the machine's ``Stop``: the ``flush_failed`` line and exit 3, without
  checkpointing (the daemon then stops, and the shard is read again from its last checkpoint);
- a ``Checkpoint`` is ``checkpointer.checkpoint``, retried here while KCL reports throttling; its result goes
  back to the machine (ok, failed, or stopped: the lease is gone or the worker shuts down);
- the shard's heartbeat (``shard/heartbeat.py``) beats on every call, every DynamoDB request of a flush (the
  writer's, the prefetch's included) and every checkpoint attempt;
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
from processor.core.reducer import Batch
from processor.core.route import Candidate, admit
from processor.errors import EXIT_BUG, EXIT_WRITE_FAILED, ConfigError, EcsStateError, exit_code_for
from processor.logs import log_dead_letter, log_safely
from processor.retry import CHECKPOINT
from processor.shard.flush_report import EVENT as FLUSH_EVENT
from processor.shard.flush_report import FlushReport
from processor.shard.freshness import freshness
from processor.shard.heartbeat import ShardHeartbeat, heartbeat_dir
from processor.shard.machine import Action, Checkpoint, CheckpointResult, Flush, ShardMachine, Stop
from processor.shard.metrics import Metrics
from processor.shard.write_outcome import Outcome
from processor.shard.writer import Writer


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
        self.machine = ShardMachine(
            settings.max_pending_arns,
            settings.max_pending_bytes,
            settings.flush_interval_millis / 1000,
            settings.prefetch_behind_millis,
        )
        self._wall_ms = wall_ms

    # --- the daemon's calls -> the machine's events ----------------------------------------------------------

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
        self.machine.initialized(self._clock(), initialize_input.sequence_number)
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
        machine = self.machine
        checkpointer = process_records_input.checkpointer
        now, wall_ms = self._clock(), self._wall_ms()
        machine.call_started(now, process_records_input.millis_behind_latest)
        records = process_records_input.records
        for index, record in enumerate(records):
            records[index] = None  # its base64 text is freed once delivered (module docstring)
            position = Position(self.shard_id, record.sequence_number, record.sub_sequence_number or 0)
            entry = self._route(record_data(record), position, record.partition_key, record.timestamp_millis)
            delivered = machine.delivered(entry, position, now, wall_ms, record.timestamp_millis, len(record.data))
            self._perform(checkpointer, delivered)
        self._perform(checkpointer, machine.call_ended(self._clock()))
        machine.returned(self._clock())
        minute = int(self._wall_ms() // 60_000)
        if minute != self._emitted_minute:  # nothing flushed this minute: the shard's age alone
            self._emitted_minute = minute
            self.metrics.emit(self.shard_id, {"millis_behind_latest": machine.millis_behind_latest})

    def lease_lost(self, lease_lost_input: Any) -> None:
        dropped = self.machine.lease_lost()
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
        now = self._clock()
        ending = self.machine.shard_ended(now) if reason == "shard_end" else self.machine.shutdown_requested(now)
        self._perform(checkpointer, ending)
        self.heartbeat.stop()
        log_safely(reason, shard=self.shard_id)

    def _route(
        self, data: bytes, position: Position, partition_key: str, arrival_ms: int | None
    ) -> Candidate | DeadLetter | Ignored:
        entry = admit(data, position, partition_key, arrival_ms, self.settings.task_retention_hours)
        if isinstance(entry, DeadLetter):
            log_dead_letter(entry, self.settings.dead_letter_table)
        return entry

    # --- the machine's actions, performed --------------------------------------------------------------------

    def _perform(self, checkpointer: Any, action: Action | None) -> None:
        """Perform ``action`` and whatever the machine answers to its outcome, until it answers nothing."""
        while action is not None:
            if isinstance(action, Flush):
                action = self._flush(action)
            elif isinstance(action, Checkpoint):
                result = self._checkpoint(checkpointer, action.position)
                self.machine.checkpointed(action.position, result)
                action = None
            else:
                raise AssertionError(f"no action {action!r} outside a flush")

    def _flush(self, flush: Flush) -> Checkpoint | None:
        """Write the flush's batch and report it; exits the process without checkpointing when the machine says
        ``Stop`` (the writes failed past a finite retry budget)."""
        batch = flush.batch
        assert self._writer is not None, "flush before initialize"
        started = self._clock()
        outcome = self._writer.write(batch, prefetch=flush.prefetch)
        answer = self.machine.flushed(outcome.ok, started, self._clock())
        fresh = freshness(flush.arrivals, self._wall_ms()) if outcome.ok else (None, None)
        self._report(batch, outcome, flush.reason.value, fresh)
        if outcome.fallbacks:
            log_safely(
                "fallback",
                level="WARNING",
                shard=self.shard_id,
                resources=outcome.fallbacks,
                note="the newest version of these ARNs could not be stored (dead letters above); the newest "
                "storable version of the flush window was written instead",
            )
        if isinstance(answer, Stop):
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
        return answer

    def _checkpoint(self, checkpointer: Any, position: Position | None) -> CheckpointResult:
        """Checkpoint at ``position`` (None: SHARD_END), retrying while KCL reports throttling."""
        seq = position.sequence_number if position else None
        sub = position.sub_sequence_number if position else None
        for attempt in range(1, self.settings.checkpoint_max_attempts + 1):
            self.heartbeat.beat()
            try:
                checkpointer.checkpoint(seq, sub)
                return CheckpointResult.OK
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
                    log_safely(
                        "checkpoint_stopped",
                        level="WARNING",
                        shard=self.shard_id,
                        sequenceNumber=seq,
                        error=error,
                        note="lease lost or shutting down; no further checkpoints from this "
                        "processor (data already written stays written)",
                    )
                    return CheckpointResult.STOPPED
                log_safely(
                    "checkpoint_failed",
                    level="ERROR",
                    shard=self.shard_id,
                    sequenceNumber=seq,
                    error=error,
                    attempt=attempt,
                    note="data is durable; the next flush checkpoints further",
                )
                return CheckpointResult.FAILED
        return CheckpointResult.FAILED

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
            millis_behind_latest=self.machine.millis_behind_latest,
            freshness_p50_ms=fresh[0],
            freshness_p99_ms=fresh[1],
            skipped=outcome.skipped,
            catalogued=outcome.catalogued,
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
