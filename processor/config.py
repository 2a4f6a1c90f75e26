"""The one settings object, built once from the KCL ``.properties`` file and the environment.

The properties file that drives the KCL MultiLangDaemon also carries the processor's own keys (prefix
``ecsState.``); the daemon ignores keys it does not know. Environment variables ``ECS_STATE_<KEY>`` (upper
snake case) override the file; with no file at all the defaults work. DynamoDB's endpoint and region are
deliberately *not* settings here: boto3 reads ``AWS_ENDPOINT_URL_DYNAMODB`` and ``AWS_REGION`` itself.

Configuration errors are found here, once, at start: a value that is not an integer or out of range, and an
unknown ``ecsState.*`` key in the file or ``ECS_STATE_*`` variable in the environment (a misspelling would
otherwise silently fall back to a default, such as a default table name that may be a real table); the message
names the key and suggests the closest known one. ``0`` for ``writeRetryBudgetMillis`` / ``writeMaxAttempts``
means "retry transient failures for ever, holding the lease" (the default).

A few settings are KCL's own keys read from the same file (``KCL_KEYS``: ``applicationName``, which the metrics
carry as their ``Application`` dimension); they have no ``ecsState.`` key or ``ECS_STATE_`` variable of their own.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from processor.core.reducer import MAX_PENDING_ARNS, MAX_PENDING_BYTES
from processor.core.schema import CATALOG, INDEX_NAMES, Index, catalog_table_spec, kinds, select_indexes, table_specs
from processor.errors import ConfigError

PREFIX = "ecsState."
PROPERTIES_ENV = "ECS_STATE_PROPERTIES"
ENV_PREFIX = "ECS_STATE_"
#: ``ECS_STATE_*`` variables that are not settings of this object but are read elsewhere (the tooling and the
#: launcher); anything else with the prefix is a misspelled setting.
OTHER_ENV = frozenset(
    {
        PROPERTIES_ENV,
        "ECS_STATE_HOME",
        "ECS_STATE_KCL_JARS",
        "ECS_STATE_KINESIS_MOCK",
        # the worker image's entry point (deploy/image/ecs-state-worker) and its tests (tests/image)
        "ECS_STATE_TEMPLATE",
        "ECS_STATE_RENDERED_PROPERTIES",
        "ECS_STATE_TEST_IMAGE",
        "ECS_STATE_IMAGE_TESTS",
        "ECS_STATE_HEARTBEAT_DIR",  # the liveness files (processor/shard/heartbeat.py)
    }
)


@dataclass(frozen=True)
class Settings:
    task_table: str = "ECSTaskState"
    instance_table: str = "ECSCtrInstanceState"
    dead_letter_table: str = "ECSEventDeadLetters"
    #: one item per cluster the processor has seen (``shard/catalog.py``): ``ecs-state clusters`` / ``sources``
    catalog_table: str = "ECSClusterCatalog"
    #: the read-only role of a member account that ``reconcile`` assumes for another account's cluster
    member_read_role: str = "ecs-state-member-read"
    flush_interval_millis: int = 5000
    max_pending_arns: int = MAX_PENDING_ARNS
    max_pending_bytes: int = MAX_PENDING_BYTES
    write_concurrency: int = 16
    write_max_attempts: int = 0  # 0: no limit
    write_retry_budget_millis: int = 0  # 0: retry transient failures for ever (holding the lease)
    write_timeout_millis: int = 5000
    checkpoint_max_attempts: int = 8
    task_retention_hours: int = 0
    stored_versions_capacity: int = 100_000  # (table, ARN) -> stored version entries remembered per shard
    prefetch_behind_millis: int = 60_000  # catching up (prefetch stored versions) this far behind the tip
    metrics: str = "none"
    log_level: str = "INFO"
    #: the read indexes `ecs-state setup` adds and the start-up check expects: all, none, or a comma list of names
    read_indexes: str = "all"
    application: str = "ecs-state"  # KCL's applicationName (KCL_KEYS): the metrics' Application dimension

    def __post_init__(self) -> None:
        if self.flush_interval_millis < 0:
            raise ConfigError(f"{property_key('flush_interval_millis')} must be >= 0 (0 flushes after every batch)")
        for name in (
            "max_pending_arns",
            "max_pending_bytes",
            "write_concurrency",
            "write_timeout_millis",
            "checkpoint_max_attempts",
            "stored_versions_capacity",
            "prefetch_behind_millis",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{property_key(name)} must be a positive integer, got {getattr(self, name)}")
        for name in ("write_max_attempts", "write_retry_budget_millis"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{property_key(name)} must be >= 0 (0: retry for ever), got {getattr(self, name)}")
        if self.write_concurrency > 256:
            raise ConfigError(
                f"{property_key('write_concurrency')} = {self.write_concurrency} is more than 256 "
                f"concurrent requests per shard; use 1..256"
            )
        if self.max_pending_bytes < 1024 * 1024:
            raise ConfigError(
                f"{property_key('max_pending_bytes')} = {self.max_pending_bytes} is below 1 MiB: one "
                f"record can be 1 MiB; use at least 1048576"
            )
        if self.stored_versions_capacity > 10_000_000:
            raise ConfigError(
                f"{property_key('stored_versions_capacity')} = {self.stored_versions_capacity} is more "
                f"than 10000000 entries (~350 bytes each) per shard; use 1..10000000"
            )
        if self.task_retention_hours < 0:
            raise ConfigError(f"{property_key('task_retention_hours')} must be >= 0 (0 turns expiry off)")
        unknown = [name for name in self.index_names() or () if name not in INDEX_NAMES]
        if unknown:
            raise ConfigError(
                f"{property_key('read_indexes')} names unknown index(es) {', '.join(unknown)}; use all, "
                f"none, or a comma list of {', '.join(INDEX_NAMES)}"
            )
        if not (self.metrics in ("none", "stderr") or self.metrics.startswith("file:")):
            raise ConfigError(f"{property_key('metrics')} must be none, stderr or file:PATH, got {self.metrics!r}")

    def index_names(self) -> tuple[str, ...] | None:
        """The read indexes chosen by ``read_indexes`` (``None``: all)."""
        if self.read_indexes.strip() == "all":
            return None
        if self.read_indexes.strip() == "none":
            return ()
        return tuple(name.strip() for name in self.read_indexes.split(",") if name.strip())

    def indexes(self) -> tuple[Index, ...]:
        return select_indexes(self.index_names())

    def tables(self) -> list[tuple[str, dict[str, Any]]]:
        """(kind, CreateTable request) of every table the processor writes: tasks, container instances, dead
        letters, the cluster catalogue. What ``ecs-state setup`` creates and the start-up check expects."""
        specs = table_specs(self.task_table, self.instance_table, self.dead_letter_table, self.indexes())
        return [*zip(kinds(), specs), (CATALOG, catalog_table_spec(self.catalog_table))]


#: settings read from a KCL key of the properties file (not ``ecsState.*``; no ``ECS_STATE_*`` variable)
KCL_KEYS = {"application": "applicationName"}


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.capitalize() for part in rest)


def property_key(field_name: str) -> str:
    """``task_table`` -> ``ecsState.taskTable``."""
    return PREFIX + _camel(field_name)


def env_key(field_name: str) -> str:
    """``task_table`` -> ``ECS_STATE_TASK_TABLE``."""
    return ENV_PREFIX + field_name.upper()


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    return f"; did you mean {close[0]}?" if close else f"; known keys: {', '.join(sorted(known))}"


def unknown_keys(props: Mapping[str, str], env: Mapping[str, str], source: str) -> list[str]:
    """One message per ``ecsState.*`` key of ``props`` or ``ECS_STATE_*`` variable of ``env`` that is not a
    setting, each with the closest known name."""
    names = [f.name for f in fields(Settings) if f.name not in KCL_KEYS]
    known_props = [property_key(n) for n in names]
    known_env = [env_key(n) for n in names]
    problems = [
        f"{source}: unknown key {key}{_suggest(key, known_props)}"
        for key in sorted(props)
        if key.startswith(PREFIX) and key not in known_props
    ]
    problems += [
        f"environment: unknown variable {key}{_suggest(key, known_env)}"
        for key in sorted(env)
        if key.startswith(ENV_PREFIX) and key not in known_env and key not in OTHER_ENV
    ]
    return problems


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
        raise ConfigError(
            f"cannot read properties file {path}: {exc.strerror}; pass an existing file "
            f"with --properties or {PROPERTIES_ENV}"
        ) from exc


def load_settings(
    properties_path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Build the settings: defaults < properties file < ``ECS_STATE_*`` environment variables.

    ``properties_path`` falls back to ``$ECS_STATE_PROPERTIES``; no file at all means defaults.
    """
    env = os.environ if env is None else env
    path = properties_path or env.get(PROPERTIES_ENV) or None
    props = read_properties(path) if path else {}
    unknown = unknown_keys(props, env, str(path))
    if unknown:
        raise ConfigError("; ".join(unknown))
    values: dict[str, object] = {}
    for f in fields(Settings):
        source, raw = None, None
        if f.name in KCL_KEYS:
            if props.get(KCL_KEYS[f.name], "").strip():
                values[f.name] = props[KCL_KEYS[f.name]].strip()
            continue
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


def stream_from_properties(
    properties_path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> str | None:
    """The stream the workers read, from their properties file (``properties_path``, else
    ``$ECS_STATE_PROPERTIES``): the name in ``streamArn`` (which KCL takes over ``streamName`` when both are set),
    else ``streamName``; None without a file or either key."""
    env = os.environ if env is None else env
    path = properties_path or env.get(PROPERTIES_ENV) or None
    if not path:
        return None
    props = read_properties(path)
    arn = props.get("streamArn", "")
    if arn:
        return arn.rsplit("/", 1)[-1]
    return props.get("streamName") or None
