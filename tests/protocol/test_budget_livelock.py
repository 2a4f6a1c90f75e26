"""Regression test (found by fault injection): the write retry budget used to be wall time since the flush
began, so a flush that needs longer than the budget at the table's current throughput could never finish under
sustained partial throttling: the processor exited 3, the replacement replayed the same flush, and the shard never
checkpointed again, though DynamoDB answered 70% of requests. The budget is now per request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workshop.testing.factories import as_json, task_arn, task_event
from workshop.testing.fault_proxy import FaultProxy, Rule
from workshop.testing.multilang_driver import records_from
from workshop.testing.protocol_helpers import env_for, expected_state, stored_state, unique_settings
from workshop.testing.shard_daemon import ShardDaemon


def test_a_big_flush_under_sustained_partial_throttling_makes_progress(moto_server: Any, tmp_path: Path) -> None:
    s = unique_settings("livelock")
    # One batch, 800 distinct ARNs: one flush of 800 PutItems (~2-3 s on moto), budget 1.5 s.
    records = records_from([(task_arn(n), as_json(task_event(task_arn(n), 1))) for n in range(800)])
    with FaultProxy(
        moto_server.endpoint, [Rule("throttle", probability=0.3, operations=frozenset({"PutItem"}))], seed=1
    ) as proxy:
        env = env_for(
            s,
            AWS_ENDPOINT_URL_DYNAMODB=proxy.endpoint,
            ECS_STATE_WRITE_RETRY_BUDGET_MILLIS="1500",
            ECS_STATE_WRITE_MAX_ATTEMPTS="30",
        )
        daemon = ShardDaemon(records, env, tmp_path, batch_size=800, restart_batch_size=800, max_starts=4)
        daemon.run()  # used to fail: "processor started 4 times without finishing the shard; exit codes [3, 3, 3, 3]"
    assert stored_state(s)[0] == expected_state(records)[0]
