"""Drive an ``ecs-state-processor`` process through the MultiLang protocol the way the KCL daemon does.

For tests and the benchmark only (production runs under the real daemon, ``ecs-state run``). It writes
``initialize`` / ``processRecords`` / ``shardEnded`` / ``shutdownRequested`` / ``leaseLost`` lines, answers the
processor's ``checkpoint`` requests (calling ``on_checkpoint`` first, so a test can check durability at that
instant, and optionally replying with an error such as ``ThrottlingException``), and insists that every
non-blank line on the processor's stdout is a protocol message.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from workshop.errors import DriverProtocolError


@dataclass(frozen=True)
class KinesisRecord:
    data: bytes
    partition_key: str
    sequence_number: str
    sub_sequence_number: int = 0
    arrival_ms: int = 0

    def to_message(self) -> dict[str, object]:
        return {
            "action": "record",
            "data": base64.b64encode(self.data).decode("ascii"),
            "partitionKey": self.partition_key,
            "sequenceNumber": self.sequence_number,
            "subSequenceNumber": self.sub_sequence_number,
            "approximateArrivalTimestamp": self.arrival_ms or int(time.time() * 1000),
        }


@dataclass
class Checkpoint:
    action_for: str
    sequence_number: str | None
    sub_sequence_number: int | None
    error: str | None


CheckpointHook = Callable[[Checkpoint], str | None]


@dataclass
class ProcessorProcess:
    """One spawned processor. ``on_checkpoint`` may return an error name to send back instead of success."""

    argv: list[str] = field(default_factory=lambda: [sys.executable, "-m", "processor.shard.main"])
    env: dict[str, str] | None = None
    on_checkpoint: CheckpointHook | None = None
    stderr_path: Path | None = None
    checkpoints: list[Checkpoint] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "ProcessorProcess":
        err = open(self.stderr_path, "ab") if self.stderr_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env={**os.environ, **(self.env or {})}
        )
        return self

    # --- protocol ---------------------------------------------------------------------------------------------

    def _send(self, message: dict[str, object]) -> None:
        assert self.proc and self.proc.stdin
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def _read_message(self) -> dict[str, object] | None:
        """Next protocol message, or None at EOF. Blank lines are allowed (amazon_kclpy writes them around
        each message); anything else that is not a protocol message is a DriverProtocolError."""
        assert self.proc and self.proc.stdout
        while True:
            raw = self.proc.stdout.readline()
            if not raw:
                return None
            line = raw.strip()
            if not line:
                continue
            try:
                message = json.loads(line)
            except ValueError:
                raise DriverProtocolError(f"non-protocol line on the processor's stdout: {line[:200]!r}") from None
            if not isinstance(message, dict) or message.get("action") not in ("status", "checkpoint"):
                raise DriverProtocolError(f"unexpected message on the processor's stdout: {line[:200]!r}")
            return message

    def _exchange(self, message: dict[str, object]) -> None:
        """Send an action and serve checkpoint requests until its status arrives."""
        action = str(message["action"])
        self._send(message)
        while True:
            reply = self._read_message()
            if reply is None:
                raise ProcessExited(self.wait(), action)
            if reply["action"] == "status":
                if reply.get("responseFor") != action:
                    raise DriverProtocolError(f"status for {reply.get('responseFor')!r} while waiting for {action!r}")
                return
            seq = reply.get("sequenceNumber")
            sub = reply.get("subSequenceNumber")
            cp = Checkpoint(action, seq if seq is None else str(seq), None if sub is None else int(str(sub)), None)
            cp.error = self.on_checkpoint(cp) if self.on_checkpoint else None
            self.checkpoints.append(cp)
            self._send({"action": "checkpoint", "sequenceNumber": seq, "subSequenceNumber": sub, "error": cp.error})

    def initialize(self, shard_id: str, sequence_number: str = "TRIM_HORIZON") -> None:
        self._exchange(
            {"action": "initialize", "shardId": shard_id, "sequenceNumber": sequence_number, "subSequenceNumber": 0}
        )

    def process_records(self, records: Iterable[KinesisRecord], millis_behind_latest: int = 0) -> None:
        self._exchange(
            {
                "action": "processRecords",
                "millisBehindLatest": millis_behind_latest,
                "records": [r.to_message() for r in records],
            }
        )

    def shard_ended(self) -> None:
        self._exchange({"action": "shardEnded"})

    def shutdown_requested(self) -> None:
        self._exchange({"action": "shutdownRequested"})

    def lease_lost(self) -> None:
        self._exchange({"action": "leaseLost"})

    def close(self, timeout: float = 30) -> int:
        """Close stdin (what the daemon does after a shutdown) and return the exit code."""
        assert self.proc and self.proc.stdin
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        leftover = self._read_message()
        if leftover is not None:
            raise DriverProtocolError(f"message after the last action: {leftover}")
        return self.wait(timeout)

    def wait(self, timeout: float = 30) -> int:
        assert self.proc
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class ProcessExited(RuntimeError):
    def __init__(self, code: int, action: str) -> None:
        super().__init__(f"processor exited with code {code} while handling {action}")
        self.code = code
        self.action = action


def records_from(payloads: Iterable[tuple[str, bytes]], start: int = 1) -> list[KinesisRecord]:
    """Number (partition_key, data) pairs with increasing, fixed-width sequence numbers."""
    return [KinesisRecord(data, key, f"{start + i:056d}") for i, (key, data) in enumerate(payloads)]


def run_shard(
    process: ProcessorProcess, shard_id: str, records: list[KinesisRecord], batch_size: int = 500, end: str = "shutdown"
) -> int:
    """Feed ``records`` in batches of ``batch_size``, then end the shard (``shutdown``, ``shard_end``,
    ``lease_lost``) and return the exit code."""
    process.initialize(shard_id)
    for i in range(0, len(records), batch_size):
        process.process_records(records[i : i + batch_size])
    {"shutdown": process.shutdown_requested, "shard_end": process.shard_ended, "lease_lost": process.lease_lost}[end]()
    return process.close()
