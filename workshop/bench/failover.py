"""Failover and a rolling deploy with the real KCL daemon, measured (a script that prints and saves figures, never
a test): ``python -m workshop.bench.failover --mode 3x|2x [--mode ...]``.

One run per mode (``3x``: KCL 3's own mode, ``CLIENT_VERSION_CONFIG_3X``, as production runs it; ``2x``:
``CLIENT_VERSION_CONFIG_COMPATIBLE_WITH_2X``), on the embedded local stack, with the e2e support
(``tests/e2e/e2e_support.py``) and the lease timings of ``properties/aws.properties`` (failoverTimeMillis 10 s,
leaseAssignmentIntervalMillis 5 s, shutdownGraceMillis 25 s, idleTimeBetweenReadsInMillis 1 s, flush interval
5 s). Records arrive at a steady ``--rate`` on a 4-shard stream the whole time:

1. two workers (as ``WorkerCount: 2``) share the shards; a baseline of ``--settle-s`` seconds;
2. **kill**: the worker holding the KCL 3 leader lock (``<app>-CoordinatorState``; ``--kill other``: the other
   one; in 2.x mode there is none and the first worker is killed) is SIGKILLed with its processors (a task that
   dies: out of memory, a host lost); ECS starts a replacement, modelled as a new worker started
   ``--replace-delay-s`` later;
3. **rolling deploy**: as ECS replaces every task of the service (minimumHealthyPercent 100, maximumPercent 200):
   two new workers start, ``--start-s`` later both old ones get SIGTERM, and any still alive after
   ``--stop-timeout-s`` (the task's stopTimeout) are SIGKILLed;
4. the feed ends, every shard is checkpointed at its last record and the tables equal the ground truth.

Figures per phase: per record, freshness = the first lease-table poll (every 0.5 s) whose checkpoint covers it minus
the instant PutRecords returned (an upper bound of arrival -> durable, like the volume bench's); p50 / p99 / max;
per shard, the longest time the checkpoint did not move while records of that shard were waiting (the processing
gap); the time from the kill / the SIGTERMs to every shard checkpointing again; how long the old workers took to
exit after SIGTERM. Saved to ``bench/failover.json`` (merged by mode) and ``bench/failover.md``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from e2e_support import COMPATIBLE_WITH_2X, Launcher, Scenario, checkpoints, leader, owners  # noqa: E402 (after sys.path names tests/e2e)

from processor.loadgen.producer import KinesisWriter  # noqa: E402 (after sys.path names tests/e2e)
from processor.loadgen.records import Options  # noqa: E402 (after sys.path names tests/e2e)
from processor.shard.freshness import percentile  # noqa: E402 (after sys.path names tests/e2e)
from workshop.local.stack import LocalStack  # noqa: E402 (after sys.path names tests/e2e)

MESSY: dict[str, Any] = {
    "clusters": 2,
    "instances": 6,
    "tasks": 40,
    "duplicate_rate": 0.05,
    "reorder_window": 20,
    "poison_rate": 0.01,
    "ignored_rate": 0.02,
}
#: The lease and retrieval timings of properties/aws.properties (production), over local.properties' short ones.
PRODUCTION_TIMINGS = {
    "failoverTimeMillis": "10000",
    "leaseAssignmentIntervalMillis": "5000",
    "shutdownGraceMillis": "25000",
    "idleTimeBetweenReadsInMillis": "1000",
}
SHARDS = 4
#: The baseline ends this long before the kill: a record put just before it waits for the failover.
BEFORE_KILL_S = 15.0


class TimedKinesis:
    """Passes PutRecords through, remembering when each accepted record's call returned: (shard, seq, instant)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.puts: list[tuple[str, int, float]] = []
        self._lock = threading.Lock()

    def put_records(self, **kwargs: Any) -> Any:
        response = self._client.put_records(**kwargs)
        now = time.time()
        with self._lock:
            self.puts.extend(
                (r["ShardId"], int(r["SequenceNumber"]), now) for r in response["Records"] if "SequenceNumber" in r
            )
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class Watcher:
    """Polls the lease table every ``interval_s``: (instant, shard -> checkpoint) while running."""

    def __init__(self, sc: Scenario, interval_s: float = 0.5) -> None:
        self.sc, self.interval_s = sc, interval_s
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.missed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-watcher", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                seen = checkpoints(self.sc.dynamodb, self.sc.application)
            except Exception as exc:  # noqa: BLE001 - one missed poll widens the bound a little, nothing more
                self.missed.append(repr(exc))
            else:
                self.samples.append((time.time(), {s: int(c) for s, c in seen.items() if c.isdigit()}))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> Watcher:  # noqa: PYI034
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def durable_times(
    puts: list[tuple[str, int, float]], samples: list[tuple[float, dict[str, int]]]
) -> list[tuple[float, float | None, str]]:
    """(put instant, durable instant or None, shard) per record: the first poll whose checkpoint covers it."""
    out = []
    for shard, seq, put in puts:
        done = next((t for t, cps in samples if t >= put and cps.get(shard, -1) >= seq), None)
        out.append((put, done, shard))
    return out


def phase_figures(
    records: list[tuple[float, float | None, str]],
    samples: list[tuple[float, dict[str, int]]],
    start: float,
    end: float,
) -> dict[str, Any]:
    """Freshness of the records put in [start, end) and, per shard, the longest stretch in [start, end) during
    which its checkpoint did not move while one of its records was waiting."""
    ages = sorted(d - p for p, d, _ in records if start <= p < end and d is not None)
    lost = sum(1 for p, d, _ in records if start <= p < end and d is None)
    gaps: dict[str, float] = {}
    for shard in sorted({shard for _, _, shard in records}):
        puts = sorted(p for p, _, s in records if s == shard)
        moves = [start] + [
            t
            for (t, cps), (_, prev) in zip(samples[1:], samples)
            if start < t <= end and cps.get(shard) != prev.get(shard)
        ]
        longest = 0.0
        for before, after in itertools.pairwise(moves):
            if any(before < p < after for p in puts):  # records of the shard waited across this stretch
                longest = max(longest, after - before)
        gaps[shard] = round(longest, 1)

    def pct(q: float) -> float | None:
        return round(percentile(ages, q), 1) if ages else None

    return {
        "records": len(ages),
        "not_durable": lost,
        "freshness_s": {"p50": pct(0.5), "p99": pct(0.99), "max": round(ages[-1], 1) if ages else None},
        "longest_gap_s_per_shard": gaps,
        "longest_gap_s": max(gaps.values(), default=None),
    }


def first_advance_after(
    samples: list[tuple[float, dict[str, int]]], at: float, shards: set[str]
) -> dict[str, float | None]:
    """Per shard, seconds from ``at`` to the first poll whose checkpoint differs from the last one before ``at``."""
    before = next((cps for t, cps in reversed(samples) if t < at), {})
    out: dict[str, float | None] = {}
    for shard in sorted(shards):
        t = next((t for t, cps in samples if t >= at and cps.get(shard) != before.get(shard)), None)
        out[shard] = round(t - at, 1) if t is not None else None
    return out


def stop_like_ecs(workers: list[Launcher], stop_timeout_s: float) -> dict[str, Any]:
    """SIGTERM every worker at once, SIGKILL what is still alive after the stop timeout; exit times."""
    began = time.time()
    for w in workers:
        w.sigterm()
    exits: dict[str, Any] = {}
    for w in workers:
        try:
            code = w.wait(max(0.1, began + stop_timeout_s - time.time()))
            exits[w.name] = {"code": code, "exit_s": round(time.time() - began, 1), "killed": False}
        except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired: the stop timeout passed
            w.stop()
            exits[w.name] = {"code": None, "exit_s": round(time.time() - began, 1), "killed": True}
    return exits


def run_mode(mode: str, args: argparse.Namespace, work: Path, say: Any) -> dict[str, Any]:
    extra = {"clientVersionConfig": COMPATIBLE_WITH_2X} if mode == "2x" else {}
    with LocalStack(work / "stack") as stack, Scenario(stack, f"fo{mode}", work / mode) as sc:
        sc.create_stream(SHARDS)
        shards = sc.shard_ids()
        feed = sc.feed(Options(seed=1212, **MESSY))
        timed = TimedKinesis(feed.kinesis)
        feed.writer = KinesisWriter(timed, sc.stream)
        feed.send(200)

        def worker(name: str) -> Launcher:
            return sc.launcher(
                name, sc.properties(name, workerId=name, flush_interval_millis=5000, **PRODUCTION_TIMINGS, **extra)
            )

        t0 = time.time()
        a, b = worker("a"), worker("b")
        sc.wait(
            "every shard checkpointed past TRIM_HORIZON",
            lambda: (
                set(checkpoints(sc.dynamodb, sc.application)) == shards
                and all(c.isdigit() for c in checkpoints(sc.dynamodb, sc.application).values())
            ),
            300,
            alive=[a, b],
        )
        started_s = round(time.time() - t0, 1)
        say(
            f"  [{mode}] two workers processing {started_s} s after start; owners {owners(sc.dynamodb, sc.application)}"
        )
        total = int(args.rate * (args.settle_s * 2 + args.replace_delay_s + 200))
        feed.send_in_background(total, rate=args.rate)
        result: dict[str, Any] = {"mode": mode, "start_s": started_s, "rate": args.rate}
        with Watcher(sc) as watch:
            time.sleep(args.settle_s)  # a baseline of steady processing (a measurement window, not a wait)
            base_end = time.time()
            chief = leader(sc.dynamodb, sc.application)
            leader_worker = b if chief == "b" else a
            victim = leader_worker if args.kill == "leader" else (a if leader_worker is b else b)
            survivor = b if victim is a else a
            held = sorted(s for s, o in owners(sc.dynamodb, sc.application).items() if o == victim.name)
            say(f"  [{mode}] SIGKILL worker {victim.name} (leader lock: {chief}), holding {held}")
            killed = time.time()
            victim.kill_daemon()
            victim.wait(60)
            time.sleep(args.replace_delay_s)  # ECS notices the stopped task and starts a replacement
            c = worker("c")
            sc.wait(
                "every shard checkpointing again after the kill",
                lambda: all(v is not None for v in first_advance_after(watch.samples, killed, shards).values()) or None,
                600,
                alive=[survivor, c],
            )
            kill_advance = first_advance_after(watch.samples, killed, shards)
            say(f"  [{mode}] after the kill, first checkpoint per shard (s): {kill_advance}")
            sc.wait(
                "the replacement holds a lease",
                lambda: "c" in set(owners(sc.dynamodb, sc.application).values()),
                600,
                alive=[survivor, c],
            )
            c_lease_s = round(time.time() - killed, 1)
            time.sleep(args.settle_s)  # steady again before the deploy (a measurement window)
            kill_end = time.time()
            say(f"  [{mode}] rolling deploy: new workers d, e; SIGTERM to {survivor.name}, c {args.start_s} s later")
            chief_before_deploy = leader(sc.dynamodb, sc.application)
            started_new = time.time()
            # records keep coming through the deploy, however long the kill phase took
            feed.send_in_background(int(args.rate * (args.start_s + args.stop_timeout_s + 180)), rate=args.rate)
            d, e = worker("d"), worker("e")
            time.sleep(args.start_s)  # ECS waits for the new tasks to run before stopping the old ones
            deploy = time.time()
            exits = stop_like_ecs([survivor, c], args.stop_timeout_s)
            say(f"  [{mode}] old workers exited: {exits}")
            new = (d, e)

            def resumed() -> dict[str, float | None]:
                """Per shard, seconds from the SIGTERMs to the first checkpoint after a new worker initialised it (or
                after the SIGTERMs, if it did before): the old owner's shutdown checkpoint does not count."""
                out: dict[str, float | None] = {}
                for shard in sorted(shards):
                    inits = [line["ts"] for w in new for line in w.initialized(since=started_new).get(shard, [])]
                    if not inits:
                        out[shard] = None
                        continue
                    since = max(min(inits), deploy)
                    took = first_advance_after(watch.samples, since, {shard})[shard]
                    out[shard] = None if took is None else round(since + took - deploy, 1)
                return out

            sc.wait(
                "every shard checkpointed by a new worker after the deploy",
                lambda: all(v is not None for v in resumed().values()) or None,
                600,
                alive=[d, e],
            )
            deploy_advance = resumed()
            say(f"  [{mode}] after the SIGTERMs, first checkpoint by a new worker per shard (s): {deploy_advance}")
            feed.join()
            sc.wait_checkpointed(feed, timeout_s=600, alive=[d, e])
            end = time.time() + 1
            time.sleep(1)
        report = sc.wait_exact(feed, 120, alive=[d, e])
        records = durable_times(timed.puts, watch.samples)
        result.update(
            {
                "leader_killed": chief == victim.name,
                "killed": victim.name,
                "killed_held": held,
                "baseline": phase_figures(records, watch.samples, t0 + started_s, base_end - BEFORE_KILL_S),
                "kill": {
                    **phase_figures(records, watch.samples, base_end, kill_end),
                    "first_checkpoint_s": kill_advance,
                    "replacement_first_lease_s": c_lease_s,
                    "replace_delay_s": args.replace_delay_s,
                },
                "deploy": {
                    **phase_figures(records, watch.samples, kill_end, end),
                    "first_checkpoint_s": deploy_advance,
                    "leader_before": chief_before_deploy,
                    "old_worker_exits": exits,
                    "start_s": args.start_s,
                    "stop_timeout_s": args.stop_timeout_s,
                },
                "records_sent": feed.sent,
                "exact": report.ok,
                "notes": sc.notes,
            }
        )
        for w in (d, e):
            w.sigterm()
        for w in (d, e):
            w.wait(120)
        return result


def render(results: dict[str, Any]) -> str:
    lines = [
        "### Failover and a rolling deploy, real KCL 3.1.3 daemon, local stack",
        "",
        (
            "4 shards, records at a steady rate, lease timings of properties/aws.properties (failoverTimeMillis "
            "10 s, leaseAssignmentIntervalMillis 5 s, shutdownGraceMillis 25 s), flush interval 5 s. Freshness = "
            "put -> the lease-table poll (0.5 s) whose checkpoint covers the record; gap = the longest time a "
            "shard's checkpoint did not move while its records waited. Command: "
            "`python -m workshop.bench.failover`."
        ),
        "",
        "| mode | phase | freshness p50 / p99 / max s | longest gap s | all shards checkpointing again after s "
        "| notes |",
        "|---|---|---:|---:|---:|---|",
    ]
    for mode, r in sorted(results.items()):
        for phase in ("baseline", "kill", "deploy"):
            f = r[phase]
            fr = f["freshness_s"]
            again = max((v for v in f.get("first_checkpoint_s", {}).values() if v is not None), default=None)
            note = ""
            if phase == "kill":
                note = (
                    f"SIGKILL {r['killed']} ({'leader' if r['leader_killed'] else 'not the leader'}); "
                    f"replacement started {f['replace_delay_s']} s later, first lease after "
                    f"{f['replacement_first_lease_s']} s"
                )
            elif phase == "deploy":
                note = (
                    f"new workers {f['start_s']} s before SIGTERM to both old ones; exits "
                    + ", ".join(
                        f"{k} {v['exit_s']} s{' (SIGKILL)' if v['killed'] else ''}"
                        for k, v in f["old_worker_exits"].items()
                    )
                    + f" (stop timeout {f['stop_timeout_s']} s)"
                )
            elif phase == "baseline":
                note = f"first start: every shard checkpointed {r['start_s']} s after start"
            lines.append(
                f"| {mode} | {phase} | {fr['p50']} / {fr['p99']} / {fr['max']} | {f['longest_gap_s']} | "
                f"{again if again is not None else ''} | {note} |"
            )
    lines += [
        "",
        "Exact at the end: "
        + ", ".join(f"{m} {r['exact']} ({r['records_sent']} records)" for m, r in sorted(results.items()))
        + ".",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", action="append", choices=("3x", "2x"))
    parser.add_argument(
        "--kill",
        choices=("leader", "other"),
        default="leader",
        help="SIGKILL the worker holding the KCL 3 leader lock (the worst case) or the other one",
    )
    parser.add_argument("--label", default="", help="saved under MODE-LABEL (default: MODE)")
    parser.add_argument("--rate", type=float, default=10.0, help="records/s into the stream")
    parser.add_argument("--settle-s", type=float, default=40.0)
    parser.add_argument("--replace-delay-s", type=float, default=10.0)
    parser.add_argument("--start-s", type=float, default=30.0)
    parser.add_argument("--stop-timeout-s", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="failover-"))
    saved = args.out / "failover.json"
    results = json.loads(saved.read_text()) if saved.exists() else {}
    for mode in args.mode or ["3x", "2x"]:
        print(f"mode {mode} (work {work}) ...", flush=True)
        key = f"{mode}-{args.label}" if args.label else mode
        results[key] = run_mode(mode, args, work, lambda s: print(s, flush=True))
        saved.write_text(json.dumps(results, indent=1) + "\n")
        (args.out / "failover.md").write_text(render(results))
    print(render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
