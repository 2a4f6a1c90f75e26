"""End to end: the real KCL MultiLangDaemon (``ecs-state run``) running our processor against the embedded local
stack (moto for DynamoDB, kinesis-mock for Kinesis), with events from the synthetic producer and its ground truth.

Every test has its own stream, applicationName and tables on one stack shared by the module, waits for states
with deadlines (never a fixed sleep), and on failure prints the tail of each daemon log and the processors'
log lines (tests/e2e/e2e_support.py).

Durations measured on 2 cores (KCL 3.1.3, kinesis-mock 0.6.2, moto 5.2.5; three runs on a quiet machine, one
shared with benchmarks at load 5-9 in brackets): a 149-188 s [215 s] (its fixture; writing the 20,000 records to
kinesis-mock alone takes 71-80 s [85-192 s]), d 112-125 s [149 s], b 62-78 s [100 s], c 60-70 s, e 72-79 s
[95 s], f 72-87 s [77 s], g 64-81 s [92 s], h (merge, measured once) see docs/testing.md; i 72 s (status, one run);
the whole file 11-11.5 min [13 min]. Each first start of a daemon costs 30-45 s (KCL waits 1-30 s at random while the
lease table is empty), each restart ~30 s (the dead worker's leases expire after failoverTimeMillis, then the next
lease-taking round picks them up).

Every test runs KCL 3's default mode (``clientVersionConfig`` unset), as production does: the 2.x-compatible mode
is a migration mode that turns itself into KCL 3's once every lease owner has written worker metrics for 10
minutes (docs/sizing.md, "Deploys and failover"). In KCL 3 mode lease assignment runs on a leader holding a
DynamoDB lock with a fixed two-minute lease: a worker that dies holding it (SIGKILL, or a processor failure)
stops every reassignment for about two and a half minutes, unless the worker that comes back has the same
``workerId`` (it finds the lock its own). So the restart tests (f, g) restart the same ``workerId``, as a
supervisor restarting the daemon in place does, and test b kills the worker that is not the leader; what a
leader's death costs is measured by ``python -m workshop.bench.failover`` (bench/failover.md), not here.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from e2e_support import ECS_STATE, SHARD_END, Feed, Launcher, Scenario, checkpoints, leader, leases, owners

from processor.loadgen.records import Options
from processor.shard.flush_report import EVENT as FLUSH_EVENT
from processor.shard.flush_report import FlushReport
from workshop.local.stack import LocalStack
from workshop.testing.fault_proxy import FaultProxy, Rule

pytestmark = pytest.mark.e2e

#: Waiting for KCL: the first start (random 1-30 s wait on an empty lease table, then lease sync) or a restart
#: that must first let the dead worker's leases expire.
START_S = 150
#: Realistic ECS traffic with everything the processor must survive.
MESSY = dict(
    clusters=2, instances=6, tasks=40, duplicate_rate=0.05, reorder_window=20, poison_rate=0.01, ignored_rate=0.02
)


#: For the 20,000-record stream: fewer polls of kinesis-mock at the tip of a long shard (each one walks the shard).
BIG_STREAM = {"idleTimeBetweenReadsInMillis": "1000"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(tmp_path_factory.mktemp("e2e-stack")) as local:
        yield local


def _scenario(stack: LocalStack, tmp_path: Path, name: str) -> Scenario:
    return Scenario(stack, name, tmp_path / name)


# ---- a. volume: duplicates, reordering, poison ---------------------------------------------------------------


@pytest.fixture(scope="module")
def bulk(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """20,000 messy events on 4 shards processed by one worker to the end (shared by tests a and d: the replay
    reads the same stream into the same tables)."""
    with _scenario(stack, tmp_path_factory.mktemp("e2e-bulk"), "bulk") as sc:
        sc.create_stream(4)
        feed = sc.feed(Options(seed=101, **MESSY))
        began = time.monotonic()
        # Written before the worker starts. kinesis-mock handles one request at a time, at a few hundred KB/s of
        # records either way; with the worker polling at the same time the writes took as long and the reading
        # still came after them (measured: 168 s + 101 s, against 85-192 s + 122 s one after the other).
        feed.send(20_000)
        sc.note(
            f"produced {feed.sent} records in {time.monotonic() - began:.0f}s "
            f"({feed.writer.putter.retried_records} retried)"
        )
        worker = sc.launcher("worker", sc.properties("worker", **BIG_STREAM))
        report = sc.wait_exact(feed, timeout_s=600, alive=[worker])
        final = sc.wait_checkpointed(feed, timeout_s=120, alive=[worker])
        worker.sigterm()  # no idle worker polling kinesis-mock while the other tests run
        worker.wait(120)
        yield {"scenario": sc, "feed": feed, "worker": worker, "report": report, "checkpoints": final}


def test_a_twenty_thousand_messy_events_on_four_shards_end_exact(bulk: dict[str, Any]) -> None:
    """Duplicates, bounded reordering, poison and ignored events: the state tables equal the ground truth and the
    dead-letter table holds exactly the poison records (one each). Every shard is checkpointed at its last record
    and the processors saw every record."""
    sc: Scenario = bulk["scenario"]
    feed: Feed = bulk["feed"]
    report = bulk["report"]
    worker: Launcher = bulk["worker"]
    totals = feed.truth_dict()["totals"]
    with sc:
        assert feed.sent == 20_000
        assert totals["duplicates"] > 500 and totals["poison"] > 100 and totals["ignored"] > 100, totals
        assert feed.out_of_order > 500, "the stream must really be reordered"
        assert report.ok, report.render()
        assert report.tasks.matched == totals["tasks"] and report.instances.matched == totals["instances"]
        dead = report.dead_letters
        assert dead.stored == dead.matched == totals["poison"] and not dead.repeated, report.render()
        assert set(bulk["checkpoints"]) == set(feed.last_sequence()) and len(feed.last_sequence()) == 4
        flushes = worker.flushes()
        seen = sum(f.records for f in flushes)
        assert seen >= feed.sent, f"processors saw {seen} of {feed.sent} records"
        assert sum(f.dead_letters for f in flushes) >= totals["poison"]
        assert {f.shard for f in flushes} == set(feed.last_sequence())
        print(
            f"a: {feed.sent} records, {seen} processed, {len(flushes)} flushes, "
            f"{sum(f.writes for f in flushes)} writes, {sum(f.stale for f in flushes)} stale; " + "; ".join(sc.notes)
        )


# ---- d. replay into the same tables --------------------------------------------------------------------------


def _versions(sc: Scenario) -> dict[tuple[str, str], dict[str, Any]]:
    """Every state item of the scenario's tables, keyed by (table, ARN)."""
    items: dict[tuple[str, str], dict[str, Any]] = {}
    for table, key in ((sc.settings.task_table, "taskArn"), (sc.settings.instance_table, "containerInstanceArn")):
        for page in sc.dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            for item in page["Items"]:
                items[(table, item[key]["S"])] = item
    return items


def test_d_replay_by_a_second_application_changes_nothing(bulk: dict[str, Any]) -> None:
    """A second applicationName reads the same stream from TRIM_HORIZON into the same tables: no stored version
    goes down (snapshot before, compare after: every version >= before), every replayed write is rejected as
    stale or equal by the conditional put, and the tables still equal the ground truth."""
    sc: Scenario = bulk["scenario"]
    feed: Feed = bulk["feed"]
    with sc:
        before = _versions(sc)
        replay_app = f"{sc.name}-replay"
        replayer = sc.launcher("replayer", sc.properties("replayer", application=replay_app, **BIG_STREAM))
        sc.wait_checkpointed(feed, application=replay_app, timeout_s=START_S + 300, alive=[replayer])
        sc.wait_flushed(replayer, feed)
        after = _versions(sc)
        assert before.keys() == after.keys()
        lower = [
            (key, before[key]["version"], after[key]["version"])
            for key in before
            if int(after[key]["version"]["N"]) < int(before[key]["version"]["N"])
        ]
        assert not lower, f"versions went down: {lower[:5]}"
        changed = [key for key in before if before[key] != after[key]]
        flushes = replayer.flushes()
        writes = sum(f.writes for f in flushes)
        stale = sum(f.stale for f in flushes)
        seen = sum(f.records for f in flushes)
        print(
            f"d: replay of {seen} records: {writes} writes accepted, {stale} rejected as stale or equal "
            f"(accepted ratio {writes / max(1, writes + stale):.4f}); {len(changed)} items changed; "
            + "; ".join(sc.notes)
        )
        assert seen >= feed.sent
        assert stale > 0 and writes == 0, f"{writes} replayed writes were accepted"
        assert not changed, f"items changed by the replay: {changed[:5]}"
        report = sc.report(feed.truth_dict())
        assert report.ok, report.render()


# ---- b. two workers, one killed --------------------------------------------------------------------------------


def test_b_second_worker_takes_over_the_leases_of_a_killed_one(stack: LocalStack, tmp_path: Path) -> None:
    """Two daemons (workers ``worker-a`` and ``worker-b``, one applicationName) share 4 shards; the one not holding
    KCL 3's leader lock (module docstring: the leader's death holds every reassignment back for about two and a
    half minutes) is SIGKILLed with its processors while records keep coming. The other takes over its leases,
    starting each at the checkpoint the killed one left (or a later one of its own, when the lease was being
    handed over at the kill), and the final state equals the ground truth."""
    with _scenario(stack, tmp_path, "failover") as sc:
        sc.create_stream(4)
        shards = sc.shard_ids()
        feed = sc.feed(Options(seed=202, **MESSY))
        feed.send(400)
        workers = {name: sc.launcher(name, sc.properties(name, workerId=name)) for name in ("worker-a", "worker-b")}
        everyone = list(workers.values())

        def both_hold_leases() -> dict[str, Any] | None:
            held = owners(sc.dynamodb, sc.application)
            return held if set(held) == shards and set(held.values()) == set(workers) else None

        sc.wait("both workers hold leases", both_hold_leases, START_S + 60, alive=everyone)
        sc.wait(
            "every shard checkpointed past TRIM_HORIZON",
            lambda: all(c.isdigit() for c in checkpoints(sc.dynamodb, sc.application).values()),
            60,
            alive=everyone,
        )
        chief = sc.wait("a leader", lambda: leader(sc.dynamodb, sc.application), 60, alive=everyone)
        name = next(n for n in workers if n != chief)
        a, b = workers[name], workers[chief]
        sent_before = feed.sent
        feed.send_in_background(1200, rate=40)
        sc.wait("some of the new records written", lambda: feed.sent >= sent_before + 200, 60)
        # Read right before the kill: lease balancing may have moved a lease since both held some.
        victim = sorted(shard for shard, owner in owners(sc.dynamodb, sc.application).items() if owner == name)
        killed_at = time.time()
        a.kill_daemon()
        a.wait(60)
        at_kill = checkpoints(sc.dynamodb, sc.application)  # after the exit: no checkpoint of the killed one in flight
        assert victim, f"{name} held no lease when it was killed"
        sc.note(
            f"killed {name} (not the leader) holding {victim} at {feed.sent} records sent; checkpoints then {at_kill}"
        )
        sc.wait(
            f"{chief} holds every lease",
            lambda: set(owners(sc.dynamodb, sc.application).values()) == {chief},
            120,
            alive=[b],
        )
        feed.join()
        sc.wait_checkpointed(feed, timeout_s=120, alive=[b])
        sc.wait_exact(feed, 60, alive=[b])
        sc.wait_flushed(b, feed)  # the survivor's initialize lines came before these
        taken = b.initialized(since=killed_at)
        assert set(victim) <= set(taken), f"{chief} initialised {sorted(taken)} after the kill"
        for shard in victim:
            # At the killed worker's checkpoint, or later: KCL 3's leader may have been handing the lease over
            # (its old owner, the survivor, flushes and checkpoints it on shutdownRequested) when the kill came.
            assert int(taken[shard][0]["sequenceNumber"]) >= int(at_kill[shard]), shard
        print("b: " + "; ".join(sc.notes))


# ---- c. a shard split mid-stream -------------------------------------------------------------------------------


def test_c_split_shard_mid_stream_parent_ends_children_processed(stack: LocalStack, tmp_path: Path) -> None:
    """kinesis-mock splits shard 0 of 2 while records are being written and read: the parent is read to its end
    and checkpointed at SHARD_END, its two children are processed (after the parent, as KCL orders them), and the
    final state is exact."""
    with _scenario(stack, tmp_path, "split") as sc:
        sc.create_stream(2)
        parent = "shardId-000000000000"
        feed = sc.feed(Options(seed=303, **MESSY))
        feed.send(400)
        worker = sc.launcher("worker", sc.properties("worker"))
        sc.wait(
            "the parent checkpointed past TRIM_HORIZON",
            lambda: checkpoints(sc.dynamodb, sc.application).get(parent, "").isdigit(),
            START_S,
            alive=[worker],
        )
        sent_before = feed.sent
        feed.send_in_background(800, rate=40)
        sc.wait("records flowing", lambda: feed.sent >= sent_before + 200, 60, alive=[worker])
        [shard] = [s for s in sc.shards() if s["ShardId"] == parent]
        low, high = int(shard["HashKeyRange"]["StartingHashKey"]), int(shard["HashKeyRange"]["EndingHashKey"])
        at_split = checkpoints(sc.dynamodb, sc.application)
        sc.kinesis.split_shard(StreamName=sc.stream, ShardToSplit=parent, NewStartingHashKey=str((low + high) // 2))
        sc.wait_stream_active()
        children = {s["ShardId"] for s in sc.shards() if s.get("ParentShardId") == parent}
        sc.note(f"split {parent} into {sorted(children)} at {feed.sent} records sent")
        feed.join()
        assert len(children) == 2 and children <= set(feed.last_sequence()), "records must reach the children"
        assert int(feed.last_sequence()[parent]) > int(at_split[parent]), "the parent must be split mid-stream"

        def ended_and_children_done() -> dict[str, str] | None:
            have = checkpoints(sc.dynamodb, sc.application)
            want = {**feed.last_sequence(), parent: SHARD_END}
            return have if all(have.get(s) == v for s, v in want.items()) else None

        sc.wait(
            "parent at SHARD_END, every other shard at its last record", ended_and_children_done, 180, alive=[worker]
        )
        sc.wait_exact(feed, 60, alive=[worker])
        sc.wait_flushed(worker, feed)  # the parent's last record included
        sc.wait("the parent's processor logged shard_end", lambda: worker.events("shard_end", parent), 30)
        assert children <= set(worker.initialized())
        lease = leases(sc.dynamodb, sc.application)
        assert all(parent in str(lease[c].get("parentShardId")) for c in children), lease
        print("c: " + "; ".join(sc.notes))


# ---- h. two shards merged mid-stream ----------------------------------------------------------------------------


def test_h_merge_of_two_shards_mid_stream_parents_end_then_the_child_is_processed(
    stack: LocalStack, tmp_path: Path
) -> None:
    """kinesis-mock merges the two shards of a stream while records are being written and read: both parents are
    read to their ends and checkpointed at SHARD_END, the child is initialised only after both parents' processors
    ended, it is processed to its last record, and the final state is exact."""
    with _scenario(stack, tmp_path, "merge") as sc:
        sc.create_stream(2)
        parents = ("shardId-000000000000", "shardId-000000000001")
        feed = sc.feed(Options(seed=808, **MESSY))
        feed.send(400)
        worker = sc.launcher("worker", sc.properties("worker"))
        sc.wait(
            "both parents checkpointed past TRIM_HORIZON",
            lambda: all(checkpoints(sc.dynamodb, sc.application).get(p, "").isdigit() for p in parents),
            START_S,
            alive=[worker],
        )
        sent_before = feed.sent
        feed.send_in_background(800, rate=40)
        sc.wait("records flowing", lambda: feed.sent >= sent_before + 200, 60, alive=[worker])
        at_merge = checkpoints(sc.dynamodb, sc.application)
        sc.kinesis.merge_shards(StreamName=sc.stream, ShardToMerge=parents[0], AdjacentShardToMerge=parents[1])
        sc.wait_stream_active()
        [child] = [
            s["ShardId"]
            for s in sc.shards()
            if {s.get("ParentShardId"), s.get("AdjacentParentShardId")} == set(parents)
        ]
        sc.note(f"merged {parents} into {child} at {feed.sent} records sent")
        feed.join()
        last = feed.last_sequence()
        assert child in last, "records must reach the child"
        assert all(int(last[p]) > int(at_merge[p]) for p in parents), "the parents must be merged mid-stream"

        def ended_and_child_done() -> dict[str, str] | None:
            have = checkpoints(sc.dynamodb, sc.application)
            want = {**feed.last_sequence(), **{p: SHARD_END for p in parents}}
            return have if all(have.get(s) == v for s, v in want.items()) else None

        sc.wait("both parents at SHARD_END, the child at its last record", ended_and_child_done, 180, alive=[worker])
        sc.wait_exact(feed, 60, alive=[worker])
        sc.wait_flushed(worker, feed)  # the parents' last records included
        ends = sc.wait(
            "both parents' processors logged shard_end",
            lambda: [e for p in parents for e in worker.events("shard_end", p)] or None,
            30,
        )
        assert {e["shard"] for e in ends} == set(parents)
        first_child_init = min(line["ts"] for line in worker.initialized()[child])
        assert first_child_init >= max(e["ts"] for e in ends), "the child started before a parent had ended"
        lease = leases(sc.dynamodb, sc.application)
        assert all(p in str(lease[child].get("parentShardId")) for p in parents), lease
        print("h: " + "; ".join(sc.notes))


# ---- e. SIGTERM: final flush and checkpoint; a restart resumes there ------------------------------------------


def test_e_sigterm_flushes_and_checkpoints_and_restart_reprocesses_nothing(stack: LocalStack, tmp_path: Path) -> None:
    """SIGTERM to ``ecs-state run``: every processor flushes (flush line with reason "shutdown") and checkpoints,
    and the lease table's checkpoint equals the last record delivered to that shard (the flush's
    lastSequenceNumber: every delivered record is offered to the reducer). The first daemon has no interval
    flush at all (flushIntervalMillis = 10 min), so the shutdown flush is the only one and certainly has records.
    A restarted daemon's processors start at exactly those checkpoints and process exactly the records after them
    (per shard, the flushed record counts equal the records written after the checkpoint). A daemon stopped by
    SIGTERM lets go of KCL 3's leader lock, so the second one, with a new workerId, is not held back by it."""
    with _scenario(stack, tmp_path, "sigterm") as sc:
        sc.create_stream(4)
        feed = sc.feed(Options(seed=505, **MESSY))
        feed.send(1200)
        shards = set(feed.last_sequence())
        first = sc.launcher("first", sc.properties("first", flush_interval_millis=600_000))
        # The records were written before the start and fit into one GetRecords (maxRecords 1000): after a few
        # processRecords calls every shard has been given all of its records.
        sc.wait(
            "every shard initialised and given records",
            lambda: set(first.initialized()) == shards and all(first.process_records_calls(s) >= 3 for s in shards),
            START_S,
            alive=[first],
        )
        first.sigterm()
        code = first.wait(120)
        assert code == 128 + signal.SIGTERM
        stored = checkpoints(sc.dynamodb, sc.application)
        for shard in sorted(shards):
            flushes = first.flushes(shard)
            assert [f.reason for f in flushes] == ["shutdown"], flushes
            assert first.events("shutdown", shard)
            assert stored[shard] == flushes[0].last_sequence_number == feed.last_sequence()[shard], shard
        sc.wait_exact(feed, 10)  # everything checkpointed is in the tables

        feed.send(1200)  # while no worker runs
        restart_at = time.time()
        second = sc.launcher("second", sc.properties("second"))
        sc.wait_checkpointed(feed, timeout_s=START_S + 60, alive=[second])
        sc.wait_exact(feed, 60, alive=[second])
        sc.wait_flushed(second, feed)
        for shard in sorted(shards):
            # KCL 3's leader may hand a lease over again just after the restart (the stopped worker's metrics
            # still look fresh for a moment): the shard is then initialised more than once, and each initialize
            # must start exactly where the processor before it flushed and checkpointed (nothing skipped, nothing
            # read twice); the first one at the first daemon's checkpoint.
            timeline = sorted(
                (line for line in second.events("initialize", shard) + second.events(FLUSH_EVENT, shard)),
                key=lambda line: line["ts"],
            )
            expected = stored[shard]
            starts = 0
            for line in (line for line in timeline if line["ts"] >= restart_at):
                if line["event"] == "initialize":
                    assert line["sequenceNumber"] == expected, (shard, line, timeline)
                    starts += 1
                else:
                    expected = FlushReport.from_fields(line).last_sequence_number or expected
            assert starts >= 1, shard
            flushes = second.flushes(shard)
            assert all(int(f.last_sequence_number or 0) > int(stored[shard]) for f in flushes), shard
            assert sum(f.records for f in flushes) == feed.count_after(shard, stored[shard]), shard
        print("e: " + "; ".join(sc.notes))


# ---- f. the daemon SIGKILLed and restarted (issue 5d) ----------------------------------------------------------


def test_f_daemon_sigkilled_mid_stream_and_restarted_ends_exact(stack: LocalStack, tmp_path: Path) -> None:
    """The KCL daemon (Java and its processors) is SIGKILLed while records are flowing: whatever was flushed but
    not checkpointed, or delivered but not flushed, is read again by a new ``ecs-state run`` from the last
    checkpoints, and the tables end exactly at the ground truth. The new daemon has the killed one's workerId, as
    when a supervisor restarts it in place (module docstring: with another one it would wait for the dead
    leader's lock)."""
    with _scenario(stack, tmp_path, "sigkill") as sc:
        sc.create_stream(4)
        shards = sc.shard_ids()
        feed = sc.feed(Options(seed=606, **MESSY))
        feed.send(400)
        props = sc.properties("worker", workerId="worker-f")
        first = sc.launcher("first", props)
        sc.wait(
            "every shard checkpointed past TRIM_HORIZON",
            lambda: (
                all(c.isdigit() for c in checkpoints(sc.dynamodb, sc.application).values())
                and set(checkpoints(sc.dynamodb, sc.application)) == shards
            ),
            START_S,
            alive=[first],
        )
        sent_before = feed.sent
        feed.send_in_background(1200, rate=40)
        sc.wait(
            "new records flushed",
            lambda: bool(first.flushes(since=time.time() - 2)) and feed.sent > sent_before + 100,
            60,
            alive=[first],
        )
        first.kill_daemon()
        code = first.wait(60)
        at_kill = checkpoints(sc.dynamodb, sc.application)  # after the exit: no checkpoint in flight
        assert code != 0
        sc.note(f"killed at {feed.sent} records sent; checkpoints {at_kill}")
        restart_at = time.time()
        second = sc.launcher("second", props)
        feed.join()
        sc.wait_checkpointed(feed, timeout_s=START_S + 60, alive=[second])
        sc.wait_exact(feed, 60, alive=[second])
        sc.wait_flushed(second, feed)
        init = second.initialized(since=restart_at)
        assert {shard: lines[0]["sequenceNumber"] for shard, lines in init.items()} == at_kill
        print("f: " + "; ".join(sc.notes))


# ---- g. DynamoDB unavailable beyond the retry budget (issue 5b) ------------------------------------------------


def test_g_dynamodb_outage_exits_the_processor_and_the_restart_resumes_from_the_checkpoint(
    stack: LocalStack, tmp_path: Path
) -> None:
    """The processors reach DynamoDB through the fault proxy (``AWS_ENDPOINT_URL_DYNAMODB``, which ``ecs-state
    run`` passes on; the daemon's own lease calls use ``dynamoDBEndpoint`` and go straight to moto). Every request
    fails with 503 for longer than the retry budget (3 s here): the processor exits 3 without checkpointing, the
    daemon exits, ``ecs-state run --restart-on-failure`` starts it again, the fault is lifted after that first
    exit, and the shard is read again from its last checkpoint and ends exact. The restarted daemon keeps its
    workerId (module docstring); shutdownGraceMillis 5 s so the daemon gives up on the dead child sooner."""
    with _scenario(stack, tmp_path, "outage") as sc, FaultProxy(stack.dynamodb_endpoint) as proxy:
        sc.create_stream(2)
        feed = sc.feed(Options(seed=707, **MESSY))
        feed.send(300)
        props = sc.properties("worker", workerId="worker-g", shutdownGraceMillis="5000")
        env = {"AWS_ENDPOINT_URL_DYNAMODB": proxy.endpoint, "ECS_STATE_WRITE_RETRY_BUDGET_MILLIS": "3000"}
        worker = sc.launcher("worker", props, env=env, restart_on_failure=True)
        before = sc.wait_checkpointed(feed, timeout_s=START_S, alive=[worker])
        proxy.set_rules([Rule(kind="unavailable")])
        feed.send(300)
        [exited] = sc.wait(
            "the daemon exited after a processor gave up",
            lambda: [e for e in worker.events("daemon.exited") if e["code"] != 0],
            120,
            alive=[worker],
        )
        proxy.clear()
        at_failure = checkpoints(sc.dynamodb, sc.application)
        sc.note(f"daemon exited {exited['code']} after {exited['seconds']}s; fault lifted")
        assert at_failure == before, "nothing may be checkpointed past writes DynamoDB did not take"
        assert worker.events("flush_failed")
        assert "Child process exited with value: 3" in worker.daemon_text()
        assert proxy.injected("unavailable") > 0
        # Only the processors' (and the launcher's preflight's) calls go through the proxy: DescribeTable at start.
        assert set(proxy.counts_by_operation()) <= {"PutItem", "DescribeTable"}
        sc.wait_checkpointed(feed, timeout_s=START_S + 60, alive=[worker])
        sc.wait_exact(feed, 60, alive=[worker])
        sc.wait_flushed(worker, feed)
        assert len(worker.java_pids()) == 2, "one restart"
        init = worker.initialized(since=exited["ts"])
        assert {shard: lines[0]["sequenceNumber"] for shard, lines in init.items()} == at_failure
        print("g: " + "; ".join(sc.notes))


# ---- h. ecs-state status on the lease table the real daemon writes (issue 12) ----------------------------------


def _status(sc: Scenario, properties: Path, *args: str) -> tuple[int, str]:
    done = subprocess.run(
        [str(ECS_STATE), "status", "--properties", str(properties), *args],
        env=sc.stack.child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout + done.stderr


def test_i_status_shows_the_daemons_leases_and_check_fails_once_the_worker_is_dead(
    stack: LocalStack, tmp_path: Path
) -> None:
    """``ecs-state status`` reads the lease table KCL 3 created: a row per shard with the worker as owner and the
    checkpoint KCL stored; ``--check`` passes while the worker renews its leases and fails after the worker is
    SIGKILLed (its leases keep the dead owner, and their counters stop for failoverTimeMillis)."""
    with _scenario(stack, tmp_path, "status") as sc:
        sc.create_stream(2)
        shards = sc.shard_ids()
        sc.feed(Options(seed=808, **MESSY)).send(100)
        props = sc.properties("worker", workerId="worker-h")
        worker = sc.launcher("worker", props)
        sc.wait(
            "both shards owned by worker-h and checkpointed",
            lambda: (
                set(owners(sc.dynamodb, sc.application).items()) == {(s, "worker-h") for s in shards}
                and all(c.isdigit() for c in checkpoints(sc.dynamodb, sc.application).values())
            ),
            START_S,
            alive=[worker],
        )
        code, out = _status(sc, props, "--output", "json")
        assert code == 0, out
        report = json.loads(out)
        stored = checkpoints(sc.dynamodb, sc.application)
        assert report["leaseTable"] == sc.application
        assert {
            (r["shardId"], r["leaseOwner"], r["finished"], tuple(r["parentShardIds"])) for r in report["shards"]
        } == {(s, "worker-h", False, ()) for s in shards}
        assert all(r["checkpoint"] == stored[r["shardId"]] or r["checkpoint"].isdigit() for r in report["shards"])

        code, out = _status(sc, props, "--check")
        assert code == 0 and "check: every unfinished shard has a live owner" in out, out
        assert sum(line.startswith("shardId-") and line.split()[-1] == "processing" for line in out.splitlines()) == 2

        worker.kill_daemon()
        worker.wait(60)
        code, out = _status(sc, props, "--check")
        assert code == 1, out
        assert sum("STALLED" in line and "owner worker-h did not renew it" in line for line in out.splitlines()) == 2
        print("h: " + "; ".join(sc.notes))
