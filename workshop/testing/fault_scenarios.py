"""Fault scenarios: the real processor process, driven by ``ShardDaemon`` (shard_daemon.py) through the MultiLang
protocol, with DynamoDB (moto) behind the fault proxy; each returns a ``Result`` (one table row).

a. throttling and 5xx through a whole stream; b. DynamoDB unavailable longer than the retry budget; c. the
processor SIGKILLed between a flush and its checkpoint, or mid-flush; f. the poison corpus (poison_cases.py).

Shared by tests/protocol/test_fault_injection.py (small volumes, many assertions) and ``python -m workshop
fault-scenarios`` (fault_report.py: bigger volumes, one table). Every scenario checks durability at every checkpoint
(``protocol_helpers.DurabilityCheck`` or ``watches.CorpusCheck``), watches stored versions
(``watches.VersionWatch``) and compares the final tables with the ground truth computed from the records:
``Result.lost`` and ``Result.regressed`` must be 0. A scenario that did not happen as described (the fault never hit
a flush, the processor was never killed) raises AssertionError rather than report a vacuous pass.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from processor.config import Settings
from workshop.testing.fault_proxy import FaultProxy, Rule
from workshop.testing.multilang_driver import CheckpointHook, KinesisRecord, records_from
from workshop.testing.poison_cases import IGNORED, STORED, corpus_records, observed_outcomes, poison_corpus
from workshop.testing.protocol_helpers import DurabilityCheck, env_for, expected_state, make_stream, stored_state
from workshop.testing.shard_daemon import ShardDaemon
from workshop.testing.watches import CorpusCheck, OnCheckpoint, VersionWatch


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
    skipped: int = 0  # of ``stale``: skipped without a request (the processor knew the stored version)
    catalogued: int = 0  # cluster catalogue puts (PutItems that are no state item)
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


def _result(
    fault: str,
    s: Settings,
    daemon: ShardDaemon,
    watch: VersionWatch,
    check: DurabilityCheck,
    started: float,
    recover_s: float | None,
    proxy: FaultProxy | None,
) -> Result:
    watch.observe()  # the final state counts too
    _, dead = stored_state(s)
    injected = {
        k: v for k, v in (proxy.counts() if proxy else {}).items() if k not in ("connections", "requests", "forwarded")
    }
    return Result(
        fault=fault,
        events=len(daemon.records),
        delivered=daemon.delivered,
        lost=lost_against_ground_truth(s, daemon.records),
        regressed=len(watch.regressions),
        dead_letters=len(dead),
        starts=len(daemon.starts),
        exit_codes=[st.exit_code for st in daemon.starts],
        writes=daemon.total("writes"),
        stale=daemon.total("stale"),
        skipped=daemon.total("skipped"),
        catalogued=daemon.total("catalogued"),
        retries=daemon.total("retries"),
        throttled=daemon.total("throttled"),
        injected=injected,
        run_s=round(time.monotonic() - started, 2),
        recover_s=None if recover_s is None else round(recover_s, 2),
        checkpoints_checked=check.checked,
        daemon=daemon,
        proxy=proxy,
        watch=watch,
    )


# --- a. throttling and 5xx through a whole stream ---------------------------------------------------------------


def throttled_stream(
    s: Settings,
    upstream: str,
    workdir: Path,
    *,
    arns: int = 200,
    versions: int = 12,
    seed: int = 11,
    throttle: float = 0.3,
    errors: float = 0.05,
    batch_size: int = 250,
) -> Result:
    """``throttle`` of all PutItems throttled (2/3 ProvisionedThroughputExceeded, 1/3 ThrottlingException) and
    ``errors`` answered 500 / 503, for the whole stream."""
    records = records_from(make_stream(seed, arns=arns, versions=versions))
    rules = shares(
        ("throttle", throttle * 2 / 3),
        ("throttling", throttle / 3),
        ("internal", errors / 2),
        ("unavailable", errors / 2),
    )
    started = time.monotonic()
    with FaultProxy(upstream, rules, seed=seed, record=True) as proxy:
        env = env_for(
            s,
            AWS_ENDPOINT_URL_DYNAMODB=proxy.endpoint,
            ECS_STATE_WRITE_MAX_ATTEMPTS="30",
            ECS_STATE_WRITE_RETRY_BUDGET_MILLIS="120000",
        )
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


def outage(
    s: Settings,
    upstream: str,
    workdir: Path,
    *,
    kind: str = "unavailable",
    arns: int = 60,
    versions: int = 8,
    seed: int = 12,
    fault_at_checkpoint: int = 2,
    fault_s: float = 2.5,
    budget_ms: int = 800,
    batch_size: int = 100,
    slow_timeout_ms: int = 1000,
) -> Result:
    """From the ``fault_at_checkpoint``-th checkpoint on, every DynamoDB request fails (``kind``: unavailable =
    503, internal = 500, reset, or slow = no reply before the client's timeout) for ``fault_s`` seconds, longer
    than the processor's retry budget: it must exit 3 without checkpointing, and its replacements (restarted at the
    last checkpoint) must end exact once the fault is gone.

    A slow fault runs the processor with a ``slow_timeout_ms`` client timeout (the default is 5 s) and holds each
    request 1.5 times that. The timeout counts against the retry budget, so it must stay well above the upstream's
    slowest honest reply: at 400 ms a loaded CI machine's moto made the first process exit before the fault."""
    records = records_from(make_stream(seed, arns=arns, versions=versions))
    hold_s = 1.5 * slow_timeout_ms / 1000 if kind == "slow" else 1.0
    rule = Rule(kind, stop_s=fault_s, delay_s=hold_s, then="drop", forward=False)
    started = time.monotonic()
    with FaultProxy(upstream, seed=seed) as proxy:
        timeout = {"ECS_STATE_WRITE_TIMEOUT_MILLIS": str(slow_timeout_ms)} if kind == "slow" else {}
        env = env_for(
            s, AWS_ENDPOINT_URL_DYNAMODB=proxy.endpoint, ECS_STATE_WRITE_RETRY_BUDGET_MILLIS=str(budget_ms), **timeout
        )
        check, watch = DurabilityCheck(s, records), VersionWatch(s)
        fault = OnCheckpoint(fault_at_checkpoint, lambda: proxy.set_rules([rule]))
        daemon = ShardDaemon(records, env, workdir, hooks=[check, watch, fault], batch_size=batch_size).run()
    assert fault.at is not None, "the stream ended before the fault was switched on: use more events"
    assert daemon.starts[0].ended > fault.at, (
        f"the first processor exited ({daemon.starts[0].exit_code}) before the fault was switched on: its own "
        f"requests failed past the {budget_ms} ms retry budget; see {daemon.starts[0].stderr}"
    )
    fault_end = fault.at + fault_s
    # Recovered: the first checkpoint request after the fault ended (the processor asks only once its flush is
    # durable; the request time leaves out the driver's own checks before it answers).
    after = [t for t, _ in daemon.requests if t > fault_end]
    assert after and daemon.starts[0].exit_code == 3, (
        "the stream ended before the fault hit a flush: use more events or smaller batches"
    )
    recover = after[0] - fault_end
    result = _result(
        f"b. DynamoDB {kind} for {fault_s:g} s > retry budget {budget_ms} ms",
        s,
        daemon,
        watch,
        check,
        started,
        recover,
        proxy,
    )
    result.extra.update(fault_start=fault.at, fault_end=fault_end)
    return result


# --- c. the processor killed between a flush and its checkpoint --------------------------------------------------


def killed(
    s: Settings,
    workdir: Path,
    *,
    arns: int = 60,
    versions: int = 8,
    seed: int = 13,
    kill_at: int = 3,
    batch_size: int = 100,
    upstream: str | None = None,
    mid_flush: bool = False,
) -> Result:
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
        daemon = ShardDaemon(
            records, env, workdir, hooks=hooks, kill_at=() if mid_flush else (kill_at,), batch_size=batch_size
        )
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
    later = [
        t
        for t, cp in daemon.requests
        if t > kill_time
        and cp.sequence_number is not None
        and (not before or (cp.sequence_number, cp.sub_sequence_number or 0) > before[-1])
    ]
    what = "mid-flush" if mid_flush else "between flush and checkpoint"
    return _result(
        f"c. SIGKILL {what}", s, daemon, watch, check, started, (later[0] - kill_time) if later else None, proxy
    )


# --- f. the poison corpus ------------------------------------------------------------------------------------------


def poison(
    s: Settings, workdir: Path, *, batch_size: int = 16, repeat: int = 1, watch_every_checkpoint: bool = True
) -> Result:
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
    result = Result(
        fault=f"f. poison corpus ({len(poison_corpus())} kinds)",
        events=len(records),
        delivered=daemon.delivered,
        lost=len(wrong),
        regressed=len(watch.regressions),
        dead_letters=sum(1 for r in rows if r["observed"] not in (STORED, IGNORED)),
        starts=len(daemon.starts),
        exit_codes=[st.exit_code for st in daemon.starts],
        writes=daemon.total("writes"),
        stale=daemon.total("stale"),
        retries=daemon.total("retries"),
        throttled=daemon.total("throttled"),
        injected={},
        run_s=round(time.monotonic() - started, 2),
        recover_s=None,
        checkpoints_checked=check.checked,
        daemon=daemon,
        watch=watch,
    )
    result.extra.update(rows=rows, ignored_logged=daemon.total("ignored"), dead_letter_items=len(dead))
    return result
