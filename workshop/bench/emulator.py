"""The benchmark's side of the emulator: where contenders' children point, their tables, and the check of them.

* :func:`child_env`: this process's environment pointed at the emulator only (dummy credentials, no profile or
  token, every ``ECS_STATE_*`` setting dropped and the properties file disabled), plus what the caller adds; a
  child never reaches a real AWS account.
* :func:`fresh_tables`: every contender gets its own new tables (``bench-<run>-<contender>-...``) on the same
  DynamoDB, so no contender sees another's writes.
* :func:`check_tables`: a contender's tables against the ground truth; stale = ARNs missing or stored at a lower
  version than the truth (:mod:`processor.loadgen.verify`).
"""

from __future__ import annotations

from typing import Any

from processor.config import Settings


def child_env(endpoint: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment pointed at the emulator only (dummy credentials, no profile or token)."""
    from workshop.local.env import local_env

    return {**local_env(dynamodb=endpoint, drop_settings=True), "ECS_STATE_PROPERTIES": "", **(extra or {})}


def fresh_tables(client: Any, contender: str, run_id: str) -> Settings:
    from processor.ops.setup_tables import ensure_tables

    name = f"bench-{run_id}-{contender}"
    settings = Settings(
        task_table=f"{name}-tasks", instance_table=f"{name}-instances", dead_letter_table=f"{name}-dead-letters"
    )
    ensure_tables(settings, client)
    return settings


def check_tables(client: Any, settings: Settings, truth: dict[str, Any], dead_letters: bool) -> dict[str, Any]:
    """Compare a contender's tables with the truth: stale = ARNs missing or stored at a lower version."""
    from processor.loadgen.verify import compare, read_tables

    tasks, instances, dead = read_tables(settings, client)
    report = compare(truth, tasks, instances, dead)
    out: dict[str, Any] = {
        "matched": 0,
        "stale": 0,
        "missing": 0,
        "regressed": 0,
        "unexpected": 0,
        "status_mismatch": 0,
        "stale_examples": [],
    }
    for diff in (report.tasks, report.instances):
        out["matched"] += diff.matched
        out["missing"] += len(diff.missing)
        out["regressed"] += len(diff.regressed)
        out["unexpected"] += len(diff.unexpected)
        out["status_mismatch"] += len(diff.status_mismatch)
        out["stale_examples"] += (diff.regressed + diff.missing)[:3]
    out["stale"] = out["missing"] + out["regressed"]
    out["expected_arns"] = report.tasks.expected + report.instances.expected
    if dead_letters:
        dl = report.dead_letters
        out["dead_letters"] = {
            "ok": dl.ok,
            "expected": dl.expected,
            "stored": dl.stored,
            "missing": len(dl.missing),
            "unexpected": len(dl.unexpected),
        }
    return out
