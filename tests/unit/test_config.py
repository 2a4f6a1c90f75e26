from __future__ import annotations

from pathlib import Path

import pytest

from processor.config import Settings, load_settings, parse_properties
from processor.errors import ConfigError


def test_defaults_with_no_file() -> None:
    assert load_settings(None, env={}) == Settings()
    assert Settings().task_table == "ECSTaskState" and Settings().instance_table == "ECSCtrInstanceState"
    assert Settings().dead_letter_table == "ECSEventDeadLetters"


def test_properties_file_then_environment(tmp_path: Path) -> None:
    props = tmp_path / "app.properties"
    props.write_text(
        "# KCL keys are ignored by us\nstreamName = s\nexecutableName=ecs-state-processor\n"
        "ecsState.taskTable = FileTasks\necsState.flushIntervalMillis: 2500\n"
        "ecsState.instanceTable  FileInstances\n"
    )
    s = load_settings(props, env={"ECS_STATE_TASK_TABLE": "EnvTasks"})
    assert (s.task_table, s.instance_table, s.flush_interval_millis) == ("EnvTasks", "FileInstances", 2500)


def test_properties_path_from_environment(tmp_path: Path) -> None:
    props = tmp_path / "p.properties"
    props.write_text("ecsState.deadLetterTable=DL\n")
    assert load_settings(None, env={"ECS_STATE_PROPERTIES": str(props)}).dead_letter_table == "DL"


def test_parse_properties_continuations_and_comments() -> None:
    text = "! bang comment\na = 1 \\\n    2\nb:x=y\n  c = spaced value  \n"
    assert parse_properties(text) == {"a": "1 2", "b": "x=y", "c": "spaced value"}


@pytest.mark.parametrize(
    "env,needle",
    [
        ({"ECS_STATE_WRITE_CONCURRENCY": "lots"}, "ECS_STATE_WRITE_CONCURRENCY"),
        ({"ECS_STATE_WRITE_CONCURRENCY": "0"}, "ecsState.writeConcurrency"),
        ({"ECS_STATE_METRICS": "cloud"}, "ecsState.metrics"),
        ({"ECS_STATE_TASK_TABLE": ""}, "ECS_STATE_TASK_TABLE"),
    ],
)
def test_bad_values_name_the_key(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_settings(None, env=env)


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--properties"):
        load_settings(tmp_path / "nope.properties", env={})


def test_a_misspelled_property_is_refused_with_the_closest_known_key(tmp_path: Path) -> None:
    props = tmp_path / "app.properties"
    props.write_text("streamName = s\necsState.taskTabel = Mine\n")
    with pytest.raises(ConfigError, match="unknown key ecsState.taskTabel; did you mean ecsState.taskTable"):
        load_settings(props, env={})


def test_a_misspelled_environment_variable_is_refused_but_the_tooling_variables_are_not() -> None:
    with pytest.raises(ConfigError, match="ECS_STATE_TASKTABLE; did you mean ECS_STATE_TASK_TABLE"):
        load_settings(None, env={"ECS_STATE_TASKTABLE": "x"})
    assert load_settings(None, env={"ECS_STATE_HOME": "/x", "ECS_STATE_KCL_JARS": "/j"}) == Settings()


def test_transient_failures_are_retried_for_ever_by_default_and_a_finite_budget_can_be_set() -> None:
    assert (Settings().write_retry_budget_millis, Settings().write_max_attempts) == (0, 0)
    s = load_settings(None, env={"ECS_STATE_WRITE_RETRY_BUDGET_MILLIS": "3000"})
    assert s.write_retry_budget_millis == 3000


@pytest.mark.parametrize(
    "env,needle",
    [
        ({"ECS_STATE_WRITE_RETRY_BUDGET_MILLIS": "-1"}, "ecsState.writeRetryBudgetMillis must be >= 0"),
        ({"ECS_STATE_WRITE_CONCURRENCY": "100000"}, "ecsState.writeConcurrency"),
        ({"ECS_STATE_MAX_PENDING_BYTES": "1000"}, "ecsState.maxPendingBytes"),
    ],
)
def test_out_of_range_values_name_the_key(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_settings(None, env=env)


def test_the_worker_images_own_variables_are_not_taken_for_misspelled_settings() -> None:
    """The image's entry point reads ECS_STATE_RENDERED_PROPERTIES / ECS_STATE_TEMPLATE in the same environment
    the processor then starts in (a worker from the image exited 2 before these were known)."""
    env = {"ECS_STATE_RENDERED_PROPERTIES": "/tmp/w.properties", "ECS_STATE_TEMPLATE": "/t.properties"}
    assert load_settings(None, env=env) == Settings()


def test_the_application_is_kcls_applicationname_from_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "w.properties"
    path.write_text("applicationName = ecs-state-replay\necsState.metrics = stderr\n")
    assert load_settings(path, env={}).application == "ecs-state-replay"
    assert load_settings(None, env={}).application == "ecs-state"
    path.write_text("ecsState.application = x\n")  # not an ecsState key of its own
    with pytest.raises(ConfigError, match="ecsState.application"):
        load_settings(path, env={})
