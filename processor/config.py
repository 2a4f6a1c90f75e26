"""The one settings object, built once from the KCL ``.properties`` file and the environment.

The properties file that drives the KCL MultiLangDaemon also carries the processor's own keys (prefix
``ecsState.``); the daemon ignores keys it does not know. Environment variables ``ECS_STATE_<KEY>`` (upper
snake case) override the file; with no file at all the defaults work. DynamoDB's endpoint and region are
deliberately *not* settings here: boto3 reads ``AWS_ENDPOINT_URL_DYNAMODB`` and ``AWS_REGION`` itself.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Mapping

from processor.errors import ConfigError

PREFIX = "ecsState."
PROPERTIES_ENV = "ECS_STATE_PROPERTIES"



@dataclass(frozen=True)
class Settings:
    task_table: str = "ECSTaskState"
    instance_table: str = "ECSCtrInstanceState"
    dead_letter_table: str = "ECSEventDeadLetters"
    flush_interval_millis: int = 5000
    max_pending_arns: int = 10_000
    max_pending_bytes: int = 64 * 1024 * 1024
    write_concurrency: int = 16
    write_max_attempts: int = 10
    write_retry_budget_millis: int = 60_000
    write_timeout_millis: int = 5000
    checkpoint_max_attempts: int = 8
    task_retention_hours: int = 0
    metrics: str = "none"
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if self.flush_interval_millis < 0:
            raise ConfigError(f"{property_key('flush_interval_millis')} must be >= 0 (0 flushes after every batch)")
        for name in ("max_pending_arns", "max_pending_bytes", "write_concurrency",
                     "write_max_attempts", "write_retry_budget_millis", "write_timeout_millis",
                     "checkpoint_max_attempts"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{property_key(name)} must be a positive integer, got {getattr(self, name)}")
        if self.task_retention_hours < 0:
            raise ConfigError(f"{property_key('task_retention_hours')} must be >= 0 (0 turns expiry off)")
        if not (self.metrics in ("none", "stderr") or self.metrics.startswith("file:")):
            raise ConfigError(f"{property_key('metrics')} must be none, stderr or file:PATH, got {self.metrics!r}")


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.capitalize() for part in rest)


def property_key(field_name: str) -> str:
    """``task_table`` -> ``ecsState.taskTable``."""
    return PREFIX + _camel(field_name)


def env_key(field_name: str) -> str:
    """``task_table`` -> ``ECS_STATE_TASK_TABLE``."""
    return "ECS_STATE_" + field_name.upper()


def parse_properties(text: str) -> dict[str, str]:
    """Parse Java ``.properties`` text: ``key = value`` / ``key: value`` / ``key value``, ``#``/``!`` comments,
    backslash line continuations. Enough of the format for what KCL's files use."""
    result: dict[str, str] = {}
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.lstrip()
        if not pending and (not line or line[0] in "#!"):
            continue
        if line.endswith("\\") and not line.endswith("\\\\"):
            pending += line[:-1]
            continue
        logical.append(pending + line)
        pending = ""
    if pending:
        logical.append(pending)
    for line in logical:
        match = re.match(r"((?:\\.|[^=:\s])+)\s*[=:\s]\s*(.*)$", line)
        if match:
            result[match.group(1).replace("\\", "")] = match.group(2).strip()
        else:
            result[line.strip()] = ""
    return result


def read_properties(path: str | os.PathLike[str]) -> dict[str, str]:
    try:
        return parse_properties(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read properties file {path}: {exc.strerror}; pass an existing file "
                          f"with --properties or {PROPERTIES_ENV}") from exc


def load_settings(properties_path: str | os.PathLike[str] | None = None,
                  env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings: defaults < properties file < ``ECS_STATE_*`` environment variables.

    ``properties_path`` falls back to ``$ECS_STATE_PROPERTIES``; no file at all means defaults.
    """
    env = os.environ if env is None else env
    path = properties_path or env.get(PROPERTIES_ENV) or None
    props = read_properties(path) if path else {}
    values: dict[str, object] = {}
    for f in fields(Settings):
        source, raw = None, None
        if property_key(f.name) in props:
            source, raw = f"{path}: {property_key(f.name)}", props[property_key(f.name)]
        if env_key(f.name) in env:
            source, raw = f"environment {env_key(f.name)}", env[env_key(f.name)]
        if raw is None:
            continue
        if f.default.__class__ is int:
            try:
                values[f.name] = int(raw.replace("_", ""))
            except ValueError:
                raise ConfigError(f"{source} = {raw!r} is not an integer; fix that value") from None
        else:
            if not raw:
                raise ConfigError(f"{source} is empty; give it a value or remove it to use the default")
            values[f.name] = raw
    return Settings(**values)  # type: ignore[arg-type]
