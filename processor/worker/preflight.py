"""Everything ``ecs-state run`` checks before Java starts; each problem is one line naming the key and the fix.
First the worker extra (amazon-kclpy): without it nothing else is checked, and the one line says what to install.

Java, the KCL jars, the properties file, its required keys, the processor executable on the daemon's PATH, the
local endpoints (a TCP connect), and then what each processor checks in ``initialize``, with the same code: its
settings (unknown or misspelled ``ecsState.*`` keys and ``ECS_STATE_*`` variables, out-of-range values), the
metrics target, and the three tables (``shard/table_check.py``: DescribeTable against ``table_specs``). All
problems are reported at once (``LaunchError``, one per line).

Transient at start is transient: throttling, 5xx, network failures, credentials that fail to resolve or refresh,
and an EC2 metadata service that does not answer (botocore reports that as no credentials at all; it is named as
what it is) are retried with the one backoff policy (``processor/retry.py``) for up to ``STARTUP_WAIT_S``, one log
line a minute, the worker's heartbeat touched while waiting; configuration problems are reported at once."""

from __future__ import annotations

import http.client
import os
import random
import shutil
import socket
import time
from pathlib import Path
from typing import Callable, Mapping
from urllib.parse import urlsplit

from processor import logs
from processor.config import load_settings, read_properties
from processor.errors import ConfigError, LaunchError, WriteFailed, worker_extra_missing
from processor.retry import DYNAMODB, EveryMinute
from processor.shard.dynamodb_http import DynamoDBHttp
from processor.shard.failures import classify
from processor.shard.heartbeat import heartbeat_dir, touch_worker
from processor.shard.metrics import Metrics
from processor.shard.table_check import table_problems
from processor.worker.launcher import daemon_env, find_jars, find_java

ENDPOINT_KEYS = ("kinesisEndpoint", "dynamoDBEndpoint")
#: how long ``ecs-state run`` keeps retrying DynamoDB at start before it gives up (exit 2; docs/cli.md): long
#: enough for a throttling burst, a regional blip or a credential endpoint to come back
STARTUP_WAIT_S = 900.0
#: what botocore raises for a profile or credential file that cannot be used: configuration at start
_CONFIG_CAUSES = frozenset(
    {"ProfileNotFound", "PartialCredentialsError", "InvalidConfigError", "InvalidIMDSEndpointError"}
)


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


def on_ec2() -> bool:
    """This machine is an EC2 instance (its firmware says so; readable in containers too)."""
    for path, mark in (
        ("/sys/devices/virtual/dmi/id/sys_vendor", "Amazon EC2"),
        ("/sys/devices/virtual/dmi/id/board_asset_tag", "i-"),
        ("/sys/hypervisor/uuid", "ec2"),
    ):
        try:
            if Path(path).read_text(encoding="ascii", errors="replace").strip().startswith(mark):
                return True
        except OSError:
            continue
    return False


def metadata_silence(env: Mapping[str, str], timeout_s: float = 1.0) -> str | None:
    """Why the credential chain found nothing, when the reason is that the EC2 instance metadata service did not
    answer in time (botocore then reports no credentials at all): a transient cause, or None (the service is
    disabled, answers, cannot be reached, or this is not EC2 and no metadata endpoint is configured)."""
    if env.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
        return None
    custom = env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT")
    if not custom and not on_ec2():
        return None
    url = custom or "http://169.254.169.254"
    try:
        host, port = endpoint_address(url)
    except ValueError:
        return None
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request("PUT", "/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        conn.getresponse().read()
        return None  # it answers: the credentials are missing for another reason (no role): configuration
    except TimeoutError:
        return f"the EC2 instance metadata service ({url}) did not answer within {timeout_s:g} s"
    except OSError:
        return None
    finally:
        conn.close()


def _startup_config(exc: BaseException) -> str | None:
    """The configuration problem ``exc`` is at start (one line), or None when it is transient: our own
    ``ConfigError`` (no region, a bad endpoint URL or CA bundle, no credentials), a profile or credential file that
    cannot be used. Everything else is transient, as the one classifier (``shard/failures.py``) says."""
    if isinstance(exc, ConfigError):
        return str(exc)
    cause = exc.__cause__
    if cause is not None and type(cause).__name__ in _CONFIG_CAUSES:
        return f"{exc}; fix the profile (--profile / AWS_PROFILE) or the credential files"
    return None


def check_processor(
    properties: Path,
    child_env: Mapping[str, str],
    wait_s: float = STARTUP_WAIT_S,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> list[str]:
    """What every processor checks at ``initialize``, checked once before Java starts (the same functions): its
    settings, the metrics target, the tables. DynamoDB is reached the way the processors reach it (their
    environment's endpoint and region). Transient failures (throttling, 5xx, network, credentials that fail to
    resolve or refresh, a silent metadata service) are retried with the one backoff policy for up to ``wait_s``,
    one log line a minute, touching the worker's heartbeat while waiting; configuration problems return at once."""
    try:
        settings = load_settings(properties, env=child_env)
    except ConfigError as exc:
        return [str(exc)]
    problems = [p for p in [Metrics(settings.metrics).check()] if p]
    region = child_env.get("AWS_REGION") or child_env.get("AWS_DEFAULT_REGION")
    endpoint = child_env.get("AWS_ENDPOINT_URL_DYNAMODB") or child_env.get("AWS_ENDPOINT_URL")
    deadline, attempt, gate = clock() + wait_s, 0, EveryMinute(clock=clock)
    beats = heartbeat_dir(child_env)

    def beat() -> None:
        if beats is not None:
            try:
                touch_worker(beats)
            except OSError:
                pass

    while True:
        attempt += 1
        try:
            probe = load_settings(properties, env={**child_env, "ECS_STATE_WRITE_RETRY_BUDGET_MILLIS": "0"})
            with DynamoDBHttp.from_environment(region=region, endpoint_url=endpoint, pool=1, timeout_s=5.0) as client:
                return problems + table_problems(
                    probe, client, sleep=sleep, clock=clock, rng=rng, gate=gate, on_retry=beat, deadline=deadline
                )
        except WriteFailed as exc:
            cause = str(exc)
        except Exception as exc:  # whatever the type: configuration only when proven (_startup_config)
            # botocore reports a metadata service that timed out as no credentials at all
            silent = metadata_silence(child_env) if "no AWS credentials" in str(exc) else None
            config = None if silent else _startup_config(exc)
            if config is not None:
                return problems + [config]
            cause = silent or classify(exc).text
        if clock() >= deadline:
            return problems + [
                f"DynamoDB could not be reached for the start-up check of the tables in {wait_s:g} s ({cause}); "
                f"check AWS_ENDPOINT_URL_DYNAMODB / the region, that DynamoDB is reachable (proxies: HTTPS_PROXY / "
                f"NO_PROXY) and the worker's credentials"
            ]
        if gate.due():
            logs.log(
                "startup_retrying",
                level="WARNING",
                cause=cause,
                attempt=attempt,
                deadline_s=round(deadline - clock()),
                action="retrying the start-up check of the tables; check DynamoDB's endpoint and availability, "
                "proxies (HTTPS_PROXY / NO_PROXY) and the worker's credentials (instance or task role)",
            )
        beat()
        sleep(DYNAMODB.delay(attempt, rng))


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
