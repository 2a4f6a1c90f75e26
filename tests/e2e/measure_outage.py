"""Measure (a script, not a test): recovery after a DynamoDB outage with the real KCL daemon, which must not
restart. The processors reach DynamoDB through the fault proxy, which answers every PutItem with 503 for
``--outage-s``; records keep arriving meanwhile. Printed: whether the worker restarted (Java pids), the
processors' exits, ``write_retrying`` lines, and the time from DynamoDB answering again to the next checkpoint
of each shard; then that the tables end exact.

    PYTHONPATH=. ECS_STATE_KINESIS_MOCK=... .venv/bin/python tests/e2e/measure_outage.py --outage-s 300
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_support import Scenario, checkpoints  # noqa: E402

from processor.loadgen.records import Options  # noqa: E402
from workshop.local.stack import LocalStack  # noqa: E402
from workshop.testing.fault_proxy import FaultProxy, Rule  # noqa: E402

MESSY = dict(
    clusters=2, instances=6, tasks=40, duplicate_rate=0.05, reorder_window=20, poison_rate=0.01, ignored_rate=0.02
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage-s", type=float, default=60.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="outage-"))
    with (
        LocalStack(work / "stack") as stack,
        FaultProxy(stack.dynamodb_endpoint) as proxy,
        Scenario(stack, "outage", work / "scenario") as sc,
    ):
        sc.create_stream(2)
        feed = sc.feed(Options(seed=909, **MESSY))
        feed.send(300)
        worker = sc.launcher("worker", sc.properties("worker"), env={"AWS_ENDPOINT_URL_DYNAMODB": proxy.endpoint})
        before = sc.wait_checkpointed(feed, timeout_s=180, alive=[worker])
        pids = worker.java_pids()
        proxy.set_rules([Rule(kind="unavailable", operations=frozenset({"PutItem"}))])
        began = time.monotonic()
        feed.send_in_background(int(args.outage_s * 5) + 200, rate=5)
        while time.monotonic() - began < args.outage_s:
            assert worker.alive(), "the worker exited during the outage"
            time.sleep(1)
        during = checkpoints(sc.dynamodb, sc.application)
        proxy.clear()
        lifted = time.monotonic()
        recovered: dict[str, float] = {}
        while len(recovered) < len(before) and time.monotonic() - lifted < 300:
            now = checkpoints(sc.dynamodb, sc.application)
            for shard, seq in now.items():
                if shard not in recovered and seq != during.get(shard):
                    recovered[shard] = round(time.monotonic() - lifted, 2)
            time.sleep(0.1)
        feed.join()
        sc.wait_checkpointed(feed, timeout_s=180, alive=[worker])
        report = sc.wait_exact(feed, 120, alive=[worker])
        result = {
            "outage_s": args.outage_s,
            "records_sent": feed.sent,
            "injected_503": proxy.injected("unavailable"),
            "checkpoints_unchanged_during_outage": during == before,
            "worker_restarted": worker.java_pids() != pids,
            "worker_alive": worker.alive(),
            "processor_exits": [e for e in worker.events("flush_failed")],
            "write_retrying_lines": len(worker.events("write_retrying")),
            "recovery_s_to_next_checkpoint": recovered,
            "exact": report is not None,
        }
        print(json.dumps(result, indent=1))
        worker.sigterm()
        worker.wait(120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
