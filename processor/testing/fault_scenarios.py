"""Fault scenarios: the real processor process, driven through the MultiLang protocol by a driver that plays the
KCL daemon for one shard (it restarts the processor from the last acknowledged checkpoint whenever it exits or
is killed), with DynamoDB (moto) behind the fault proxy.

Shared by tests/test_fault_injection.py (small volumes, many assertions) and scripts/faults.py (bigger volumes,
one table). Ground truth and durability checks come from tests/protocol_helpers.py.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import msgpack

from processor import aws, logs
from processor.config import Settings
from processor.core.dead_letters import read_dead_letter_data
from processor.core.events import Event, decode
from processor.core.items import decompress_value
from processor.ops.setup_tables import ensure_tables
from processor.shard.flush_report import EVENT as FLUSH_EVENT
from processor.shard.flush_report import FlushReport, total
from processor.testing.factories import (
    as_json,
    as_msgpack,
    instance_event,
    task_arn,
    task_event,
)
from processor.testing.fault_proxy import FaultProxy, Rule
from processor.testing.multilang_driver import (
    Checkpoint,
    CheckpointHook,
    KinesisRecord,
    ProcessExited,
    ProcessorProcess,
    records_from,
)
from processor.testing.poison_corpus import POISON
from processor.testing.protocol_helpers import (
    DurabilityCheck,
    env_for,
    expected_state,
    make_stream,
    stored_state,
)

SHARD_ID = "shardId-000000000000"
Position = tuple[str, int]  # (sequence number, sub-sequence number)


def unique_settings(prefix: str) -> Settings:
    """Fresh table names (the moto server is shared), tables created."""
    suffix = f"{prefix}-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    s = Settings(task_table=f"t-{suffix}", instance_table=f"i-{suffix}", dead_letter_table=f"d-{suffix}")
    ensure_tables(s)
    return s


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

    def __init__(self, records: list[KinesisRecord], env: dict[str, str], workdir: Path, *,
                 hooks: Iterable[CheckpointHook] = (), batch_size: int = 250, restart_batch_size: int | None = None,
                 max_starts: int = 20, kill_at: Iterable[int] = ()) -> None:
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
                    raise AssertionError(f"processor started {self.max_starts} times without finishing the shard; "
                                         f"exit codes {[s.exit_code for s in self.starts]}")
                if self._run_once():
                    return self
        finally:
            if self.current:
                self.current.kill()

    def _run_once(self) -> bool:
        """One processor process; True when it reached the end of the shard and exited cleanly."""
        start = Start(len(self.starts), self.acknowledged, self.workdir / f"processor-{len(self.starts)}.stderr",
                      time.monotonic())
        self.starts.append(start)
        records = self.remaining()
        process = ProcessorProcess(env=self.env, on_checkpoint=self._on_checkpoint, stderr_path=start.stderr,
                                   checkpoints=start.checkpoints)
        self.current = process.start()
        try:
            process.initialize(SHARD_ID, self.acknowledged[0] if self.acknowledged else "TRIM_HORIZON")
            size = self.batch_size if start.index == 0 else self.restart_batch_size
            for i in range(0, len(records), size):
                batch = records[i:i + size]
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
        return [{**record, "start": start.index} for start in self.starts
                for record in logs.read_lines(start.stderr) if record.get("event") == event]

    def flushes(self, start: int | None = None) -> list[FlushReport]:
        """The flush reports of every process started (``start``: only that one, by index)."""
        return [FlushReport.from_fields(record) for record in self.log_events(FLUSH_EVENT)
                if start is None or record["start"] == start]

    def total(self, key: str) -> int:
        return total(self.flushes(), key)


def _position(record: KinesisRecord) -> Position:
    return (record.sequence_number, record.sub_sequence_number)


class VersionWatch:
    """Checkpoint hook: scans the state tables at every checkpoint and records any ARN whose stored version went
    down since the previous scan (it never should: every write is conditional on a lower stored version)."""

    def __init__(self, s: Settings) -> None:
        self.s = s
        self.seen: dict[str, int] = {}
        self.regressions: list[tuple[str, int, int]] = []
        self.scans = 0

    def observe(self) -> None:
        state, _ = stored_state(self.s)
        for arn, version in state.items():
            if version < self.seen.get(arn, -1):
                self.regressions.append((arn, self.seen[arn], version))
            self.seen[arn] = max(version, self.seen.get(arn, -1))
        missing = set(self.seen) - set(state)
        self.regressions += [(arn, self.seen[arn], -1) for arn in missing]  # a deleted item is a regression too
        self.scans += 1

    def __call__(self, cp: Checkpoint) -> None:
        self.observe()
        return None


class OnCheckpoint:
    """Checkpoint hook that runs ``action`` once, at the n-th checkpoint request (before answering it)."""

    def __init__(self, n: int, action: Callable[[], None]) -> None:
        self.n, self.action, self.count = n, action, 0
        self.at: float | None = None

    def __call__(self, cp: Checkpoint) -> None:
        self.count += 1
        if self.count == self.n:
            self.at = time.monotonic()
            self.action()
        return None


def shares(*pairs: tuple[str, float], operations: frozenset[str] = frozenset({"PutItem"})) -> list[Rule]:
    """Rules that fault given shares of all requests, exclusively: ``shares(("throttle", .3), ("internal", .05))``
    throttles 30% and fails 5% with a 500 (the proxy tries rules in order, so later probabilities are scaled)."""
    rules, left = [], 1.0
    for kind, share in pairs:
        rules.append(Rule(kind, probability=min(1.0, share / left), operations=operations))
        left -= share
    return rules


# --- results -------------------------------------------------------------------------------------------------------

@dataclass
class Result:
    fault: str
    events: int
    delivered: int
    lost: int
    regressed: int
    dead_letters: int
    starts: int
    exit_codes: list[int | None]
    writes: int
    stale: int
    retries: int
    throttled: int
    injected: dict[str, int]
    run_s: float
    recover_s: float | None
    checkpoints_checked: int
    command: str = ""
    daemon: ShardDaemon | None = field(default=None, repr=False)
    proxy: FaultProxy | None = field(default=None, repr=False)
    watch: VersionWatch | None = field(default=None, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        skip = {"daemon", "proxy", "watch"}
        return {k: v for k, v in self.__dict__.items() if k not in skip}


def lost_against_ground_truth(s: Settings, records: list[KinesisRecord]) -> int:
    """Events whose newest version per ARN is not stored, plus poison records without a dead letter."""
    best, poison = expected_state(records)
    state, dead = stored_state(s)
    return sum(1 for arn, v in best.items() if state.get(arn, -1) != v) + len(poison - set(dead))


def _result(fault: str, s: Settings, daemon: ShardDaemon, watch: VersionWatch, check: DurabilityCheck,
            started: float, recover_s: float | None, proxy: FaultProxy | None) -> Result:
    watch.observe()  # the final state counts too
    _, dead = stored_state(s)
    injected = {k: v for k, v in (proxy.counts() if proxy else {}).items()
                if k not in ("connections", "requests", "forwarded")}
    return Result(fault=fault, events=len(daemon.records), delivered=daemon.delivered,
                  lost=lost_against_ground_truth(s, daemon.records), regressed=len(watch.regressions),
                  dead_letters=len(dead), starts=len(daemon.starts),
                  exit_codes=[st.exit_code for st in daemon.starts], writes=daemon.total("writes"),
                  stale=daemon.total("stale"), retries=daemon.total("retries"),
                  throttled=daemon.total("throttled"), injected=injected,
                  run_s=round(time.monotonic() - started, 2),
                  recover_s=None if recover_s is None else round(recover_s, 2), checkpoints_checked=check.checked,
                  daemon=daemon, proxy=proxy, watch=watch)


# --- a. throttling and 5xx through a whole stream ---------------------------------------------------------------

def throttled_stream(s: Settings, upstream: str, workdir: Path, *, arns: int = 200, versions: int = 12,
                     seed: int = 11, throttle: float = 0.3, errors: float = 0.05, batch_size: int = 250) -> Result:
    """``throttle`` of all PutItems throttled (2/3 ProvisionedThroughputExceeded, 1/3 ThrottlingException) and
    ``errors`` answered 500 / 503, for the whole stream."""
    records = records_from(make_stream(seed, arns=arns, versions=versions))
    rules = shares(("throttle", throttle * 2 / 3), ("throttling", throttle / 3), ("internal", errors / 2),
                   ("unavailable", errors / 2))
    started = time.monotonic()
    with FaultProxy(upstream, rules, seed=seed, record=True) as proxy:
        env = env_for(s, AWS_ENDPOINT_URL_DYNAMODB=proxy.endpoint, ECS_STATE_WRITE_MAX_ATTEMPTS="30",
                      ECS_STATE_WRITE_RETRY_BUDGET_MILLIS="120000")
        check, watch = DurabilityCheck(s, records), VersionWatch(s)
        daemon = ShardDaemon(records, env, workdir, hooks=[check, watch], batch_size=batch_size).run()
    result = _result("a. 30% PutItem throttled + 5% 5xx, whole stream", s, daemon, watch, check, started, None, proxy)
    result.extra["backoff"] = backoff_by_streak(proxy)
    return result


def backoff_by_streak(proxy: FaultProxy) -> dict[int, dict[str, float]]:
    """From the proxy's history: for retries of the same request (same body), the mean gap between a faulted
    attempt and the next attempt, by how many faults in a row preceded it. Backoff makes it grow with the streak."""
    by_digest: dict[str, list[Any]] = {}
    for exchange in proxy.history:
        by_digest.setdefault(exchange.digest, []).append(exchange)
    gaps: dict[int, list[float]] = {}
    for attempts in by_digest.values():
        streak = 0
        for earlier, later in zip(attempts, attempts[1:]):
            streak = streak + 1 if earlier.outcome != "forwarded" else 0
            if streak:
                gaps.setdefault(min(streak, 4), []).append(later.started - earlier.started)
    return {k: {"n": len(v), "mean_ms": round(1000 * sum(v) / len(v), 1)} for k, v in sorted(gaps.items())}


# --- b. DynamoDB unavailable longer than the retry budget --------------------------------------------------------

def outage(s: Settings, upstream: str, workdir: Path, *, kind: str = "unavailable", arns: int = 60,
           versions: int = 8, seed: int = 12, fault_at_checkpoint: int = 2, fault_s: float = 2.5,
           budget_ms: int = 800, batch_size: int = 100) -> Result:
    """From the ``fault_at_checkpoint``-th checkpoint on, every DynamoDB request fails (``kind``: unavailable =
    503, internal = 500, reset, or slow = no reply before the client's timeout) for ``fault_s`` seconds, longer
    than the processor's retry budget: it must exit 3 without checkpointing, and its replacements (restarted at the
    last checkpoint) must end exact once the fault is gone."""
    records = records_from(make_stream(seed, arns=arns, versions=versions))
    rule = Rule(kind, stop_s=fault_s, delay_s=1.0, then="drop", forward=False)
    started = time.monotonic()
    with FaultProxy(upstream, seed=seed) as proxy:
        # A slow fault holds each request 1 s: past a 400 ms client timeout (only then; the default is 5 s).
        timeout = {"ECS_STATE_WRITE_TIMEOUT_MILLIS": "400"} if kind == "slow" else {}
        env = env_for(s, AWS_ENDPOINT_URL_DYNAMODB=proxy.endpoint, ECS_STATE_WRITE_RETRY_BUDGET_MILLIS=str(budget_ms),
                      **timeout)
        check, watch = DurabilityCheck(s, records), VersionWatch(s)
        fault = OnCheckpoint(fault_at_checkpoint, lambda: proxy.set_rules([rule]))
        daemon = ShardDaemon(records, env, workdir, hooks=[check, watch, fault], batch_size=batch_size).run()
    assert fault.at is not None, "the stream ended before the fault was switched on: use more events"
    fault_end = fault.at + fault_s
    # Recovered: the first checkpoint request after the fault ended (the processor asks only once its flush is
    # durable; the request time leaves out the driver's own checks before it answers).
    after = [t for t, _ in daemon.requests if t > fault_end]
    assert after and daemon.starts[0].exit_code == 3, \
        "the stream ended before the fault hit a flush: use more events or smaller batches"
    recover = after[0] - fault_end
    result = _result(f"b. DynamoDB {kind} for {fault_s:g} s > retry budget {budget_ms} ms", s, daemon, watch,
                     check, started, recover, proxy)
    result.extra.update(fault_start=fault.at, fault_end=fault_end)
    return result


# --- c. the processor killed between a flush and its checkpoint --------------------------------------------------

def killed(s: Settings, workdir: Path, *, arns: int = 60, versions: int = 8, seed: int = 13, kill_at: int = 3,
           batch_size: int = 100, upstream: str | None = None, mid_flush: bool = False) -> Result:
    """SIGKILL the processor at the ``kill_at``-th checkpoint request, after its flush and before the answer.

    With ``mid_flush`` (needs ``upstream``, the proxy goes in front of it): at the ``kill_at - 1``-th checkpoint
    the proxy starts holding half the PutItems for 30 s after forwarding them (they take effect; their replies do
    not come), and the processor is killed as soon as a few are held: in the middle of its next flush.
    Either way the replacement re-reads from the last acknowledged checkpoint, and re-applied writes must be
    rejected as stale."""
    records = records_from(make_stream(seed, arns=arns, versions=versions))
    started = time.monotonic()
    proxy = FaultProxy(upstream, seed=seed).start() if upstream else None
    hold = Rule("slow", probability=0.5, operations=frozenset({"PutItem"}), delay_s=30, forward=True)
    try:
        env = env_for(s, **({"AWS_ENDPOINT_URL_DYNAMODB": proxy.endpoint} if proxy else {}))
        check, watch = DurabilityCheck(s, records), VersionWatch(s)
        hooks: list[CheckpointHook] = [check, watch]
        if mid_flush:
            assert proxy, "mid_flush needs the proxy (upstream)"
            hooks.append(OnCheckpoint(kill_at - 1, lambda: proxy.set_rules([hold])))
        daemon = ShardDaemon(records, env, workdir, hooks=hooks, kill_at=() if mid_flush else (kill_at,),
                             batch_size=batch_size)
        done = threading.Event()

        def kill_when_held() -> None:
            while not done.wait(0.005):
                if proxy and proxy.counts().get("slow", 0) >= 3:
                    daemon.kill()
                    proxy.clear()
                    return

        if mid_flush:
            threading.Thread(target=kill_when_held, daemon=True, name="killer").start()
        try:
            daemon.run()
        finally:
            done.set()
    finally:
        if proxy:
            proxy.stop()
    assert daemon.kills, "the processor was never killed: the scenario did not happen"
    kill_time = daemon.kills[0]
    before = [pos for t, pos in daemon.acks if t < kill_time]
    # Recovered: the first checkpoint request after the kill that goes past the last one acknowledged before it.
    later = [t for t, cp in daemon.requests if t > kill_time and cp.sequence_number is not None
             and (not before or (cp.sequence_number, cp.sub_sequence_number or 0) > before[-1])]
    what = "mid-flush" if mid_flush else "between flush and checkpoint"
    return _result(f"c. SIGKILL {what}", s, daemon, watch, check, started, (later[0] - kill_time) if later else None,
                   proxy)


# --- f. the poison corpus ------------------------------------------------------------------------------------------

STORED, IGNORED = "stored", "ignored"


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    expected: str  # "stored", "ignored" or the dead letter's reasonCode
    arn: str | None = None  # for stored cases: the ARN to find
    note: str = ""


def _task(n: int, **detail: Any) -> dict[str, Any]:
    return task_event(task_arn(n), 1, **detail)


def _deep(levels: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"leaf": 1}
    for _ in range(levels):
        doc = {"a": doc}
    return doc


def poison_corpus() -> list[Case]:
    """Every decoder-level case of tests/test_events.py's POISON, plus what only shows past the decoder (item
    building, DynamoDB's own limits, sizes) and inputs that must be stored or ignored. ARNs of stored cases are
    unique (task numbers 90000+)."""
    cases = [Case(f"decoder: {name}", data, code) for name, (data, code) in sorted(POISON.items())]
    random_hex = os.urandom(480_000).hex()  # hex of random bytes: zlib halves it, not more
    overrides = {"containerOverrides": [{"name": "web", "environment": [
        {"name": f"VAR_{i}", "value": "x" * 100} for i in range(4500)]}]}
    metadata_clash = _task(90007)
    metadata_clash["detail"]["event_id"] = "from-detail"
    cases += [
        Case("item over 400 KB that compresses", as_json(_task(90001, overrides=overrides)), STORED,
             task_arn(90001), "stored with compressed_attributes = {overrides}"),
        Case("1 MB record that compresses", as_json(_task(90002, blob="y" * 1_000_000)), STORED, task_arn(90002)),
        Case("item over 400 KB that does not compress", as_json(_task(1, blob=random_hex)), "too-large"),
        Case("1 MB of garbage", b"{" + os.urandom(1_000_000), "bad-utf8", note="dead letter split into parts"),
        Case("number above 9.9E+125", as_json(_task(1)).replace(b'"cpu": "256"', b'"cpu": 1e200'), "unstorable"),
        Case("number below 1E-130", as_json(_task(1)).replace(b'"cpu": "256"', b'"cpu": 1e-200'), "unstorable"),
        Case("integer of 40 digits", as_json(_task(1, big=10**39)), "unstorable"),
        Case("decimal of 39 significant digits",
             as_json(_task(1)).replace(b'"cpu": "256"', b'"cpu": 1.23456789012345678901234567890123456789'),
             "unstorable"),
        Case("detail nested deeper than 32", as_json(_task(1, nest=_deep(40))), "unstorable"),
        Case("empty attribute name", as_json(_task(1, **{"": 1})), "unstorable"),
        Case("empty map key inside detail", as_json(_task(1, m={"": 1})), "unstorable"),
        Case("lone UTF-16 surrogate in a string",
             b'{"source":"aws.ecs","detail-type":"ECS Task State Change","detail":{"taskArn":"x","version":1,'
             b'"s":"\\ud800"}}', "unstorable"),
        Case("ARN over DynamoDB's 2048-byte key limit", as_json(task_event("arn:" + "a" * 3000, 1)), "no-arn",
             note="rejected before any write; the raw record is kept"),
        Case("version as JSON exponent 1e3", as_json(_task(1)).replace(b'"version": 1', b'"version": 1e3'),
             "bad-version"),
        Case("version 2**63", as_json(task_event(task_arn(1), 2**63)), "bad-version"),
        Case("JSON with trailing garbage", as_json(_task(1)) + b" trailing", "bad-json"),
        Case("msgpack map with integer keys", msgpack.packb({1: 2}), "bad-msgpack"),
        Case("msgpack ext type at top level", msgpack.packb(msgpack.ExtType(5, b"xx")), "not-object",
             note="a msgpack ext value, not a map"),
        Case("instance event with empty ARN", as_json(instance_event("", 1)), "no-arn"),
        Case("no detail-type", b'{"source":"aws.ecs","detail":{}}', "no-detail-type"),
        Case("unknown detail-type", as_json({**_task(1), "detail-type": "ECS Service Deployment State Change"}),
             IGNORED),
        Case("ECS Service Action", b'{"source":"aws.ecs","detail-type":"ECS Service Action","detail":{}}', IGNORED),
        Case("version 2**63-1", as_json(task_event(task_arn(90003), 2**63 - 1)), STORED, task_arn(90003)),
        Case("msgpack with binary field", as_msgpack(_task(90004, raw=b"\x00\xff")), STORED, task_arn(90004)),
        Case("NUL inside strings", as_json(_task(90005, note="a\x00b")), STORED, task_arn(90005)),
        Case("empty string and empty list fields", as_json(_task(90006, empty="", nothing=[])), STORED,
             task_arn(90006)),
        Case("detail field named like metadata (event_id)", as_json(metadata_clash), STORED, task_arn(90007),
             "the envelope's id wins"),
        Case("unknown fields everywhere", as_json({**_task(90008, future={"x": [1, 2.5, None]}), "extra": 1}),
             STORED, task_arn(90008)),
    ]
    return cases


def corpus_records(cases: list[Case]) -> tuple[list[KinesisRecord], list[KinesisRecord]]:
    """Each case followed by a valid event (task numbers 80000+): (all records, the followers)."""
    pairs: list[tuple[str, bytes]] = []
    for i, case in enumerate(cases):
        pairs.append((f"case-{i}", case.data))
        pairs.append((task_arn(80000 + i), as_json(task_event(task_arn(80000 + i), 1))))
    records = records_from(pairs)
    return records, records[1::2]


class CorpusCheck:
    """Checkpoint hook: at a checkpoint, every case and follower at or before it has its expected durable outcome
    (the corpus's own ground truth: expected_state() would count unstorable events as state)."""

    def __init__(self, s: Settings, cases: list[Case], records: list[KinesisRecord]) -> None:
        self.s, self.cases, self.records, self.checked = s, cases, records, 0

    def __call__(self, cp: Checkpoint) -> None:
        def covered(record: KinesisRecord) -> bool:
            return cp.sequence_number is None or record.sequence_number <= cp.sequence_number

        state, dead = stored_state(self.s)
        for i, case in enumerate(self.cases):
            record, follower = self.records[2 * i], self.records[2 * i + 1]
            if not covered(record):
                break
            if case.expected == STORED:
                assert case.arn in state, f"checkpoint {cp.sequence_number} before {case.name} was stored"
            elif case.expected != IGNORED:
                assert record.sequence_number in dead, \
                    f"checkpoint {cp.sequence_number} before {case.name}'s dead letter was durable"
            if covered(follower):
                assert task_arn(80000 + i) in state, \
                    f"checkpoint {cp.sequence_number} before the event after {case.name} was stored"
        self.checked += 1
        return None


def observed_outcomes(s: Settings, cases: list[Case], records: list[KinesisRecord]) -> list[dict[str, Any]]:
    """What became of each case, read back from the tables."""
    state, dead = stored_state(s)
    ddb = aws.client("dynamodb")
    rows = []
    for i, case in enumerate(cases):
        record = records[2 * i]
        row: dict[str, Any] = {"case": case.name, "bytes": len(case.data), "expected": case.expected,
                               "follower_applied": state.get(task_arn(80000 + i)) == 1, "note": case.note}
        item = dead.get(record.sequence_number)
        if item is not None:
            parts = [d for key, d in dead.items() if key.startswith(record.sequence_number + "#part")]
            row.update(observed=item["reasonCode"]["S"], reason=item["reason"]["S"],
                       dead_letter_items=1 + len(parts), data_encoding=item["dataEncoding"]["S"])
            raw = read_dead_letter_data(_plain([item, *parts]))
            row["raw_bytes_kept"] = (raw == case.data
                                     and item["dataSha256"]["S"] == hashlib.sha256(case.data).hexdigest())
        elif case.arn and case.arn in state:
            got = ddb.get_item(TableName=s.task_table, Key={"taskArn": {"S": case.arn}})["Item"]
            row.update(observed=STORED, compressed=sorted(got.get("compressed_attributes", {}).get("SS", [])))
            event = decode(case.data)
            assert isinstance(event, Event)
            row["round_trip"] = all(decompress_value(got[name]["B"]) == _plain_value(event.detail[name])
                                    for name in row["compressed"])
            row["event_id"] = got["event_id"]["S"]
        else:
            row["observed"] = IGNORED  # neither stored nor dead-lettered; the flush logs' ignored count confirms
        rows.append(row)
    return rows


def _plain(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Low-level attribute maps -> the plain values read_dead_letter_data takes."""
    return [{k: next(iter(v.values())) for k, v in item.items()} for item in items]


def _plain_value(value: Any) -> Any:
    """The decoded detail value as compress_value stores it (Decimal -> int/float)."""
    return msgpack.unpackb(msgpack.packb(value, default=lambda d: int(d) if d == d.to_integral_value() else float(d)),
                           raw=False)


def poison(s: Settings, workdir: Path, *, batch_size: int = 16, repeat: int = 1,
           watch_every_checkpoint: bool = True) -> Result:
    """The corpus (``repeat`` times) through the processor process. The corpus holds multi-megabyte items, so
    scanning at every checkpoint for version regressions is optional (the final state is always scanned)."""
    cases = poison_corpus() * repeat
    records, _ = corpus_records(cases)
    started = time.monotonic()
    check, watch = CorpusCheck(s, cases, records), VersionWatch(s)
    hooks: list[CheckpointHook] = [check, watch] if watch_every_checkpoint else [check]
    daemon = ShardDaemon(records, env_for(s), workdir, hooks=hooks, batch_size=batch_size).run()
    rows = observed_outcomes(s, cases, records)
    watch.observe()
    _, dead = stored_state(s)
    wrong = [r for r in rows if r["observed"] != r["expected"] or not r["follower_applied"]]
    result = Result(fault=f"f. poison corpus ({len(poison_corpus())} kinds)", events=len(records),
                    delivered=daemon.delivered, lost=len(wrong), regressed=len(watch.regressions),
                    dead_letters=sum(1 for r in rows if r["observed"] not in (STORED, IGNORED)), starts=len(daemon.starts),
                    exit_codes=[st.exit_code for st in daemon.starts], writes=daemon.total("writes"),
                    stale=daemon.total("stale"), retries=daemon.total("retries"), throttled=daemon.total("throttled"),
                    injected={}, run_s=round(time.monotonic() - started, 2), recover_s=None,
                    checkpoints_checked=check.checked, daemon=daemon, watch=watch)
    result.extra.update(rows=rows, ignored_logged=daemon.total("ignored"), dead_letter_items=len(dead))
    return result


def poison_table_markdown(rows: list[dict[str, Any]]) -> str:
    """The README's "bad input" table, from observed outcomes."""
    lines = ["| input | bytes | outcome | reason (as stored) |", "|---|---:|---|---|"]
    for row in rows:
        outcome = row["observed"] if row["observed"] in (STORED, IGNORED) else f"dead letter `{row['observed']}`"
        reason = (row.get("reason") or row.get("note") or "").replace("|", "\\|")
        if row["observed"] == STORED and row.get("compressed"):
            reason = f"compressed_attributes = {', '.join(row['compressed'])}"
        if row.get("dead_letter_items", 1) > 1:
            reason += f" ({row['dead_letter_items']} dead-letter items)"
        lines.append(f"| {row['case']} | {row['bytes']} | {outcome} | {reason[:160]} |")
    return "\n".join(lines) + "\n"
