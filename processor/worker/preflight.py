"""Everything ``ecs-state run`` checks before Java starts; each problem is one line naming the key and the fix.
First the worker extra (amazon-kclpy): without it nothing else is checked, and the one line says what to install.

Java, the KCL jars, the properties file, its required keys, the processor executable on the daemon's PATH, the
local endpoints (a TCP connect), and then what each processor checks in ``initialize``, with the same code: its
settings (unknown or misspelled ``ecsState.*`` keys and ``ECS_STATE_*`` variables, out-of-range values), the
metrics target, and the three tables (``shard/table_check.py``: DescribeTable against ``table_specs``). All
problems are reported at once (``LaunchError``, one per line)."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

from processor.config import load_settings, read_properties
from processor.errors import ConfigError, LaunchError, WriteFailed, worker_extra_missing
from processor.shard.dynamodb_http import DynamoDBHttp
from processor.shard.metrics import Metrics
from processor.shard.table_check import table_problems
from processor.worker.launcher import daemon_env, find_jars, find_java

ENDPOINT_KEYS = ("kinesisEndpoint", "dynamoDBEndpoint")


def check_required(props: Mapping[str, str], source: str) -> list[str]:
    """One message per missing required key (empty counts as missing)."""
    problems = []
    if not props.get("executableName"):
        problems.append(
            f"{source}: executableName is missing; set it to the processor command, "
            f"e.g. executableName = ecs-state-processor"
        )
    if not (props.get("streamName") or props.get("streamArn")):
        problems.append(f"{source}: neither streamName nor streamArn is set; name the Kinesis stream to read")
    if not props.get("applicationName"):
        problems.append(
            f"{source}: applicationName is missing; set it (it names the KCL lease table, "
            f"so every worker of one application must use the same name)"
        )
    if not props.get("AwsCredentialsProvider"):
        problems.append(
            f"{source}: AwsCredentialsProvider is missing (the daemon refuses to start without it); "
            f"set AwsCredentialsProvider = DefaultCredentialsProvider"
        )
    return problems


def check_executable(props: Mapping[str, str], source: str, path: str | None) -> list[str]:
    """The first word of executableName must be a runnable file (the daemon splits the value on spaces and
    starts it with the PATH it was given)."""
    command = props.get("executableName", "").split()
    if not command:
        return []
    program = command[0]
    if os.sep in program:
        if not (os.path.isfile(program) and os.access(program, os.X_OK)):
            return [
                f"{source}: executableName {program} is not an executable file; fix the path "
                f"(relative paths count from the current folder)"
            ]
        return []
    if shutil.which(program, path=path) is None:
        return [
            f"{source}: executableName {program} is not on PATH; install the project (scripts/bootstrap) "
            f"or give an absolute path"
        ]
    return []


def endpoint_address(url: str) -> tuple[str, int]:
    """(host, port) of an endpoint URL; ValueError when it is not ``http(s)://host[:port]``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http:// or https:// URL")
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def check_endpoints(props: Mapping[str, str], source: str, timeout_s: float = 2.0) -> list[str]:
    """TCP-connect to ``kinesisEndpoint`` / ``dynamoDBEndpoint`` when set (unset means AWS itself: skipped)."""
    problems = []
    for key in ENDPOINT_KEYS:
        url = props.get(key)
        if not url:
            continue
        try:
            host, port = endpoint_address(url)
        except ValueError as exc:
            problems.append(f"{source}: {key} = {url} is {exc}; write it like http://127.0.0.1:4568")
            continue
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            problems.append(
                f"{source}: {key} = {url} does not answer ({reason}); start the local stack "
                f"(python -m workshop stack --dir DIR, then run with DIR/properties/local.properties) "
                f"or fix the endpoint"
            )
    return problems


def check_processor(properties: Path, child_env: Mapping[str, str], budget_ms: int = 10_000) -> list[str]:
    """What every processor checks at ``initialize``, checked once before Java starts (the same functions): its
    settings, the metrics target, the tables. DynamoDB is reached the way the processors reach it (their
    environment's endpoint and region); transient failures are retried for at most ``budget_ms``."""
    try:
        settings = load_settings(properties, env=child_env)
    except ConfigError as exc:
        return [str(exc)]
    problems = [p for p in [Metrics(settings.metrics).check()] if p]
    region = child_env.get("AWS_REGION") or child_env.get("AWS_DEFAULT_REGION")
    endpoint = child_env.get("AWS_ENDPOINT_URL_DYNAMODB") or child_env.get("AWS_ENDPOINT_URL")
    try:
        probe = load_settings(properties, env={**child_env, "ECS_STATE_WRITE_RETRY_BUDGET_MILLIS": str(budget_ms)})
        with DynamoDBHttp.from_environment(region=region, endpoint_url=endpoint, pool=1, timeout_s=5.0) as client:
            problems += table_problems(probe, client)
    except WriteFailed as exc:
        problems.append(
            f"DynamoDB does not answer ({exc}); check AWS_ENDPOINT_URL_DYNAMODB / the region and "
            f"that DynamoDB is reachable"
        )
    except Exception as exc:  # no region, no credentials, a bad endpoint URL
        problems.append(
            f"cannot check the tables: {type(exc).__name__}: {exc}; check the region "
            f"(regionName / AWS_REGION), the credentials and AWS_ENDPOINT_URL_DYNAMODB"
        )
    return problems


def check_region(props: Mapping[str, str], source: str, child_env: Mapping[str, str]) -> list[str]:
    """The daemon reads the stream and its leases in ``regionName``; the processors write in the environment's
    region (``--region`` / ``AWS_REGION`` ... exported by the CLI): they must be the same region."""
    wanted, region = props.get("regionName"), child_env.get("AWS_REGION") or child_env.get("AWS_DEFAULT_REGION")
    if wanted and region and region != wanted:
        return [
            (
                f"{source}: regionName = {wanted}, but the region of this command is {region} (--region / "
                f"AWS_REGION / AWS_DEFAULT_REGION): the daemon would read the stream in {wanted} and the processors "
                f"write in {region}; make them the same"
            )
        ]
    return []


def preflight(
    properties: Path, jars_override: str | None, env: Mapping[str, str], bin_dir: Path | None
) -> tuple[str, Path, dict[str, str], dict[str, str]]:
    """Everything checked before Java starts: (java, jars, properties, child env); LaunchError with all
    problems, one per line, otherwise."""
    missing = worker_extra_missing()  # the processors need amazon-kclpy too, whichever jars the daemon gets
    if missing:
        raise LaunchError(missing)
    problems: list[str] = []
    java = jars = None
    try:
        java = find_java(env)
    except LaunchError as exc:
        problems.append(str(exc))
    try:
        jars = find_jars(jars_override, env)
    except LaunchError as exc:
        problems.append(str(exc))
    if not properties.is_file():
        problems.append(
            f"properties file {properties} does not exist; pass --properties FILE "
            f"(properties/local.properties rendered by `python -m workshop stack`, or properties/aws.properties)"
        )
        raise LaunchError("\n".join(problems))
    props = read_properties(properties)
    child_env = daemon_env(props, properties, env, bin_dir)
    source = str(properties)
    problems += check_required(props, source)
    problems += check_region(props, source, child_env)
    problems += check_executable(props, source, child_env.get("PATH"))
    problems += check_endpoints(props, source)
    if not problems:  # only when the endpoints answer: the table check would just time out otherwise
        problems += check_processor(properties, child_env)
    if problems or java is None or jars is None:
        raise LaunchError("\n".join(problems))
    return java, jars, props, child_env
