"""The scenario driver: ``ShardDaemon`` plays the KCL daemon for one shard in front of the real processor
process (MultiLang protocol over its stdin/stdout), restarting it from the last acknowledged checkpoint whenever it
exits or is killed, and reads the JSON logs each process wrote to its own stderr file.

Invariants: the daemon only ever resumes from a checkpoint it acknowledged (never past one it refused or never
answered); checkpoint hooks run before any answer, in order, and a kill (``kill_at``) happens after the hooks and
before the answer, so the processor never learns that checkpoint was taken. Every process started is recorded in
``starts`` with its exit code, whether it was killed and its stderr path.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from processor import logs
from processor.shard.flush_report import EVENT as FLUSH_EVENT
from processor.shard.flush_report import FlushReport, total
from workshop.testing.multilang_driver import Checkpoint, CheckpointHook, KinesisRecord, ProcessExited, ProcessorProcess

SHARD_ID = "shardId-000000000000"
Position = tuple[str, int]  # (sequence number, sub-sequence number)


class Killed(RuntimeError):
    """The driver SIGKILLed the processor (from a checkpoint hook, before answering the checkpoint)."""


@dataclass
class Start:
    """One processor process of a ``ShardDaemon`` run."""

    index: int
    resumed_after: Position | None
    stderr: Path
    started: float
    ended: float = 0.0
    exit_code: int | None = None
    killed: bool = False
    checkpoints: list[Checkpoint] = field(default_factory=list)


class ShardDaemon:
    """Plays the KCL daemon for one shard: ``initialize`` at the last acknowledged checkpoint, the records after it
    in batches, ``shutdownRequested`` at the end; a processor that exits (or that it kills) is replaced by a new one
    that reads the shard again from the last acknowledged checkpoint, as KCL does after a worker dies.

    ``hooks`` see every checkpoint request first (a hook returning an error name refuses the checkpoint; one
    raising stops the run); ``kill_at`` numbers checkpoint requests (1-based, over the whole run) at which the
    processor is SIGKILLed after the hooks ran and before any answer: between a flush and its checkpoint.

    Replacements get smaller batches (``restart_batch_size``, default half), as a real daemon may deliver
    differently after a restart: a replayed batch then holds only part of what was flushed, so for some ARNs an
    older version than the one stored, which only the conditional write keeps from going down."""

    def __init__(
        self,
        records: list[KinesisRecord],
        env: dict[str, str],
        workdir: Path,
        *,
        hooks: Iterable[CheckpointHook] = (),
        batch_size: int = 250,
        restart_batch_size: int | None = None,
        max_starts: int = 20,
        kill_at: Iterable[int] = (),
    ) -> None:
        self.records = records
        self.env = env
        self.workdir = workdir
        self.hooks = list(hooks)
        self.batch_size = batch_size
        self.restart_batch_size = restart_batch_size or max(1, batch_size // 2)
        self.max_starts = max_starts
        self.kill_at = set(kill_at)
        self.acknowledged: Position | None = None
        self.requests: list[tuple[float, Checkpoint]] = []  # every checkpoint request, with its monotonic time
        self.acks: list[tuple[float, Position]] = []
        self.kills: list[float] = []
        self.starts: list[Start] = []
        self.current: ProcessorProcess | None = None
        self.delivered = 0

    # --- running -----------------------------------------------------------------------------------------------

    def remaining(self) -> list[KinesisRecord]:
        if self.acknowledged is None:
            return self.records
        return [r for r in self.records if (r.sequence_number, r.sub_sequence_number) > self.acknowledged]

    def _on_checkpoint(self, cp: Checkpoint) -> str | None:
        self.requests.append((time.monotonic(), cp))
        for hook in self.hooks:
            error = hook(cp)
            if error:
                return error
        if len(self.requests) in self.kill_at:
            self.kill()
            raise Killed(f"SIGKILL at checkpoint request {len(self.requests)} ({cp.sequence_number})")
        if cp.sequence_number is not None:
            self.acknowledged = (cp.sequence_number, cp.sub_sequence_number or 0)
            self.acks.append((time.monotonic(), self.acknowledged))
        return None

    def kill(self) -> None:
        """SIGKILL the current processor (from a hook or another thread)."""
        process = self.current
        if process and process.proc and process.proc.poll() is None:
            process.proc.send_signal(signal.SIGKILL)
            process.proc.wait(30)
            self.kills.append(time.monotonic())
            self.starts[-1].killed = True

    def run(self) -> ShardDaemon:
        try:
            while True:
                if len(self.starts) >= self.max_starts:
                    raise AssertionError(
                        f"processor started {self.max_starts} times without finishing the shard; "
                        f"exit codes {[s.exit_code for s in self.starts]}"
                    )
                if self._run_once():
                    return self
        finally:
            if self.current:
                self.current.kill()

    def _run_once(self) -> bool:
        """One processor process; True when it reached the end of the shard and exited cleanly."""
        start = Start(
            len(self.starts), self.acknowledged, self.workdir / f"processor-{len(self.starts)}.stderr", time.monotonic()
        )
        self.starts.append(start)
        records = self.remaining()
        process = ProcessorProcess(
            env=self.env, on_checkpoint=self._on_checkpoint, stderr_path=start.stderr, checkpoints=start.checkpoints
        )
        self.current = process.start()
        try:
            process.initialize(SHARD_ID, self.acknowledged[0] if self.acknowledged else "TRIM_HORIZON")
            size = self.batch_size if start.index == 0 else self.restart_batch_size
            for i in range(0, len(records), size):
                batch = records[i : i + size]
                self.delivered += len(batch)
                process.process_records(batch)
            process.shutdown_requested()
            start.exit_code = process.close()
        except (ProcessExited, Killed, BrokenPipeError) as exc:
            start.exit_code = process.wait() if not isinstance(exc, ProcessExited) else exc.code
            return False
        finally:
            start.ended = time.monotonic()
            process.kill()
        if start.exit_code != 0:
            return False
        return not self.remaining() or self.acknowledged == _position(self.records[-1])

    # --- reading the processors' logs --------------------------------------------------------------------------

    def log_events(self, event: str) -> list[dict[str, Any]]:
        """Every stderr JSON log line with ``"event": event``, each tagged with ``start`` (process index)."""
        return [
            {**record, "start": start.index}
            for start in self.starts
            for record in logs.read_lines(start.stderr)
            if record.get("event") == event
        ]

    def flushes(self, start: int | None = None) -> list[FlushReport]:
        """The flush reports of every process started (``start``: only that one, by index)."""
        return [
            FlushReport.from_fields(record)
            for record in self.log_events(FLUSH_EVENT)
            if start is None or record["start"] == start
        ]

    def total(self, key: str) -> int:
        return total(self.flushes(), key)


def _position(record: KinesisRecord) -> Position:
    return (record.sequence_number, record.sub_sequence_number)
