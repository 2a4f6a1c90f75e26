"""``ecs-state run``'s preflight runs the processor's own start-up checks (settings, metrics target, tables) before
Java starts, against moto over HTTP."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

from processor.config import Settings
from processor.ops.setup_tables import ensure_tables
from processor.worker.preflight import check_processor


def _props(tmp_path: Path, s: Settings, **extra: str) -> Path:
    path = tmp_path / "p.properties"
    lines = [
        f"ecsState.taskTable = {s.task_table}",
        f"ecsState.instanceTable = {s.instance_table}",
        f"ecsState.deadLetterTable = {s.dead_letter_table}",
        f"ecsState.catalogTable = {s.catalog_table}",
        *(f"{k} = {v}" for k, v in extra.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _settings() -> Settings:
    n = random.randrange(10**6)
    return Settings(
        task_table=f"pf-t-{n}", instance_table=f"pf-i-{n}", dead_letter_table=f"pf-d-{n}", catalog_table=f"pf-c-{n}"
    )


def test_preflight_passes_for_the_tables_setup_makes(moto_server: Any, tmp_path: Path) -> None:
    s = _settings()
    ensure_tables(s)
    assert check_processor(_props(tmp_path, s), dict(os.environ)) == []


def test_preflight_names_each_missing_table_and_the_fix(moto_server: Any, tmp_path: Path) -> None:
    s = _settings()
    problems = check_processor(_props(tmp_path, s), dict(os.environ))
    assert len(problems) == 4 and all("does not exist" in p and "ecs-state setup" in p for p in problems)


def test_preflight_refuses_a_misspelled_key_and_an_unopenable_metrics_file(moto_server: Any, tmp_path: Path) -> None:
    s = _settings()
    ensure_tables(s)
    [problem] = check_processor(_props(tmp_path, s, **{"ecsState.flushIntervalMilis": "1"}), dict(os.environ))
    assert "did you mean ecsState.flushIntervalMillis" in problem
    [problem] = check_processor(
        _props(tmp_path, s, **{"ecsState.metrics": f"file:{tmp_path}/none/x"}), dict(os.environ)
    )
    assert "ecsState.metrics" in problem


def test_preflight_reports_a_dynamodb_that_does_not_answer(moto_server: Any, tmp_path: Path) -> None:
    env = {**os.environ, "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9"}
    [problem] = check_processor(_props(tmp_path, _settings()), env, budget_ms=500)
    assert "DynamoDB does not answer" in problem
