"""Liveness files for a container health check: cheap to write, cheap to probe (a ``stat`` per file, never an
AWS call).

``ECS_STATE_HEARTBEAT_DIR`` (the worker image sets it) names a folder; unset, nothing is written and there is
nothing to probe. In it:

- ``worker``: touched by ``ecs-state run`` every ``WORKER_BEAT_S`` while its KCL daemon process runs; the shard
  files are cleared whenever it (re)starts the daemon, so a killed processor leaves nothing behind.
- ``shard-<shardId>``: touched by that shard's processor at most once every ``SHARD_BEAT_S``: on every
  ``processRecords`` call (KCL calls it every ``idleTimeBetweenReadsInMillis`` even with no records, with
  ``callProcessRecordsEvenForEmptyRecordList = true``), on every DynamoDB request of a flush (the writes and the
  stored-versions prefetch, retries included) and on every checkpoint attempt, so no phase of a call goes longer
  than one request (``writeTimeoutMillis``) or one backoff without a beat; removed when the processor gives the
  shard up (lease lost, shard end, shutdown).

``judge`` (the probe): healthy when the ``worker`` file is younger than ``stale_s`` and so is every shard file.
No shard file is a worker holding no lease (a standby, or idle before its first lease): healthy. A flush that
retries DynamoDB for a long time stays healthy on purpose: retrying while holding the lease is the designed
answer to a transient failure, and replacing the task would not end the outage (the ``WriteRetryingFor`` alarm
tells of it). Unhealthy means a stuck process: a daemon that stopped calling its processors, a processor that
stopped returning, or a worker whose daemon is gone.

Writing never raises into the record path: a failure is logged once and the beats stop (the probe then reports
the worker unhealthy, which is what a worker that cannot write its own files is).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from processor.shard.metrics import log_safely

HEARTBEAT_ENV = "ECS_STATE_HEARTBEAT_DIR"
WORKER_FILE = "worker"
SHARD_PREFIX = "shard-"
SHARD_BEAT_S = 1.0
WORKER_BEAT_S = 10.0
DEFAULT_STALE_S = 90.0


def heartbeat_dir(env: Mapping[str, str] | None = None) -> Path | None:
    value = (os.environ if env is None else env).get(HEARTBEAT_ENV, "").strip()
    return Path(value) if value else None


class ShardHeartbeat:
    """One shard processor's file; ``beat`` is cheap enough for every call (one clock read when throttled) and
    safe from the writer's threads (a lost race touches the file twice)."""

    def __init__(self, folder: Path | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.folder = folder
        self.shard_id: str | None = None
        self._clock = clock
        self._last = float("-inf")
        self._broken = folder is None

    def start(self, shard_id: str) -> None:
        self.shard_id = shard_id
        self._last = float("-inf")
        if self.folder is not None and not self._broken:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
            except OSError:
                pass  # the touch below fails and says so
        self.beat()

    @property
    def path(self) -> Path | None:
        if self.folder is None or self.shard_id is None:
            return None
        return self.folder / f"{SHARD_PREFIX}{self.shard_id}"

    def beat(self) -> None:
        path = self.path
        if self._broken or path is None:
            return
        now = self._clock()
        if now - self._last < SHARD_BEAT_S:
            return
        self._last = now
        try:
            path.touch()
        except OSError as exc:
            self._broken = True
            log_safely(
                "heartbeat_failed",
                level="WARNING",
                shard=self.shard_id,
                path=str(path),
                error=f"{exc.strerror or exc}",
                note="no more heartbeats from this processor; the container "
                "health check will report the worker unhealthy",
            )

    def stop(self) -> None:
        """The processor gave the shard up: no file, so the probe does not wait for it."""
        path = self.path
        if path is not None:
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass
        self.shard_id = None


def touch_worker(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / WORKER_FILE).touch()


def clear_shards(folder: Path) -> None:
    """Remove every shard file (the daemon is about to start: none of its processors exists yet)."""
    if folder.is_dir():
        for path in folder.glob(f"{SHARD_PREFIX}*"):
            path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    reason: str


def judge(ages: Mapping[str, float | None], stale_s: float = DEFAULT_STALE_S) -> Verdict:
    """Pure: ``ages`` maps file name -> seconds since it was touched (None: the worker file is missing)."""
    worker = ages.get(WORKER_FILE)
    if worker is None:
        return Verdict(
            False, f"no {WORKER_FILE} heartbeat: ecs-state run is not running, or runs without {HEARTBEAT_ENV}"
        )
    if worker > stale_s:
        return Verdict(
            False, f"the worker's heartbeat is {worker:.0f} s old (> {stale_s:.0f} s): its KCL daemon is not running"
        )
    stale = sorted(
        (name.removeprefix(SHARD_PREFIX), age)
        for name, age in ages.items()
        if name.startswith(SHARD_PREFIX) and age is not None and age > stale_s
    )
    if stale:
        shown = ", ".join(f"{shard} {age:.0f} s" for shard, age in stale[:5])
        return Verdict(False, f"{len(stale)} shard processor(s) silent for more than {stale_s:.0f} s: {shown}")
    shards = sum(1 for name in ages if name.startswith(SHARD_PREFIX))
    return Verdict(True, f"worker alive; {shards} shard processor(s) processing or idle")


def read_ages(folder: Path, now: float | None = None) -> dict[str, float | None]:
    """Seconds since each file of ``folder`` was touched (one stat each); the worker file is always present as a
    key (None when missing). A file removed while listing is skipped."""
    now = time.time() if now is None else now
    ages: dict[str, float | None] = {WORKER_FILE: None}
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return ages
    for entry in entries:
        if entry.name == WORKER_FILE or entry.name.startswith(SHARD_PREFIX):
            try:
                ages[entry.name] = max(0.0, now - entry.stat().st_mtime)
            except OSError:
                continue
    return ages
