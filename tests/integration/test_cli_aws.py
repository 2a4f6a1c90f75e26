"""The CLI follows AWS conventions, run as a user runs it (``python -m processor``, a process of its own) against the
moto server: the region from ``--region``, ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile, then ``regionName`` of
the properties file; ``--profile``; every failure a user can cause is one line on stderr and exit 2, never a
traceback; ``--version``; one flag name for one thing (``--shard``, ``--stream-name``) with the old spellings kept;
``redrive`` takes the stream from the properties file."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any

import boto3
import pytest

import processor
from workshop.local.env import local_env

REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")


def cli_env(moto: Any, tmp_path: Path, **extra: str | None) -> dict[str, str]:
    """A user's environment pointed at moto (DynamoDB, STS, Kinesis), with no region unless given, and AWS config
    files of the test's own (so a profile on this machine cannot leak in)."""
    env = local_env(dynamodb=moto.endpoint, kinesis=moto.endpoint)
    for name in (*REGION_VARIABLES, "AWS_PROFILE", "AWS_ENDPOINT_URL", "ECS_STATE_PROPERTIES"):
        env.pop(name, None)
    env["AWS_ENDPOINT_URL_STS"] = moto.endpoint
    env["AWS_CONFIG_FILE"] = str(tmp_path / "aws-config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "aws-credentials")
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def ecs_state(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "processor", *argv], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The failure's stderr, checked to be one line without a traceback, and exit 2."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def ops_profile(tmp_path: Path, region: str) -> None:
    """A profile ``ops`` with that region and moto's dummy keys (an explicit profile takes its own keys, not the
    environment's)."""
    (tmp_path / "aws-config").write_text(f"[profile ops]\nregion = {region}\n", encoding="utf-8")
    (tmp_path / "aws-credentials").write_text(
        "[ops]\naws_access_key_id = testing\naws_secret_access_key = testing\n", encoding="utf-8"
    )


def properties_file(tmp_path: Path, **keys: str) -> str:
    path = tmp_path / f"{uuid.uuid4().hex[:6]}.properties"
    path.write_text("".join(f"{k} = {v}\n" for k, v in keys.items()), encoding="utf-8")
    return str(path)


def table_names(moto: Any, region: str) -> set[str]:
    ddb = boto3.client("dynamodb", region_name=region, endpoint_url=moto.endpoint)
    return set(ddb.list_tables()["TableNames"])


def tables(prefix: str) -> dict[str, str]:
    return {
        "ecsState.taskTable": f"{prefix}-tasks",
        "ecsState.instanceTable": f"{prefix}-instances",
        "ecsState.deadLetterTable": f"{prefix}-dead-letters",
        "ecsState.catalogTable": f"{prefix}-catalog",
    }


def test_aws_region_alone_is_enough_for_tasks_as_for_the_aws_cli(moto_server: Any, tmp_path: Path) -> None:
    prefix = f"cli-{uuid.uuid4().hex[:6]}"
    props = properties_file(tmp_path, **tables(prefix))
    env = cli_env(moto_server, tmp_path, AWS_REGION="eu-west-1")
    setup = ecs_state(env, "setup", "--properties", props)
    assert setup.returncode == 0, setup.stderr
    assert f"{prefix}-tasks" in table_names(moto_server, "eu-west-1")
    result = ecs_state(env, "tasks", "--cluster", "prod", "--properties", props, "--output", "json")
    assert result.returncode == 0, result.stderr
    assert "region" not in result.stderr.lower()
    assert json.loads(result.stdout) == []


def test_the_region_is_taken_in_the_aws_cli_order_then_from_the_properties(moto_server: Any, tmp_path: Path) -> None:
    ops_profile(tmp_path, "ap-south-1")
    cases = [  # (flag, AWS_REGION, AWS_DEFAULT_REGION, profile, regionName) -> where the tables land
        (("--region", "eu-north-1"), "eu-west-1", "eu-west-2", "ops", None, "eu-north-1"),
        ((), "eu-west-1", "eu-west-2", "ops", None, "eu-west-1"),
        ((), None, "eu-west-2", "ops", None, "eu-west-2"),
        ((), None, None, "ops", None, "ap-south-1"),
        ((), None, None, None, "sa-east-1", "sa-east-1"),
        ((), "sa-east-1", None, "ops", "sa-east-1", "sa-east-1"),  # the same region from both: fine
    ]
    for flag, aws_region, default_region, profile, region_name, expected in cases:
        prefix = f"order-{uuid.uuid4().hex[:6]}"
        named = {"regionName": region_name} if region_name else {}
        props = properties_file(tmp_path, **named, **tables(prefix))
        env = cli_env(
            moto_server, tmp_path, AWS_REGION=aws_region, AWS_DEFAULT_REGION=default_region, AWS_PROFILE=profile
        )
        result = ecs_state(env, "setup", "--properties", props, *flag)
        assert result.returncode == 0, (expected, result.stderr)
        where = {
            region
            for region in ("eu-north-1", "eu-west-1", "eu-west-2", "ap-south-1", "sa-east-1")
            if f"{prefix}-tasks" in table_names(moto_server, region)
        }
        assert where == {expected}, (flag, aws_region, default_region, profile, region_name)


def test_a_properties_file_whose_region_is_not_the_commands_is_refused_in_one_line(
    moto_server: Any, tmp_path: Path
) -> None:
    """The tables are where the workers write (regionName): a read or operator command given the workers'
    properties file and another region (flag, environment or profile) is refused, as ``run`` refuses it."""
    ops_profile(tmp_path, "ap-south-1")
    props = properties_file(tmp_path, regionName="sa-east-1", **tables(f"clash-{uuid.uuid4().hex[:6]}"))
    for extra, argv in (
        ({"AWS_REGION": "eu-west-1"}, ["tasks", "--cluster", "prod", "--properties", props]),
        ({}, ["--region", "eu-north-1", "stopped", "--cluster", "prod", "--properties", props]),
        ({"AWS_PROFILE": "ops"}, ["clusters", "--properties", props]),
        ({"AWS_REGION": "eu-west-1", "ECS_STATE_PROPERTIES": props}, ["sources"]),
    ):
        line = one_line_error(ecs_state(cli_env(moto_server, tmp_path, **extra), *argv))
        assert "regionName = sa-east-1" in line and "--region sa-east-1" in line, line


def test_region_and_profile_can_come_before_or_after_the_command(moto_server: Any, tmp_path: Path) -> None:
    ops_profile(tmp_path, "ca-central-1")
    for argv in (["--profile", "ops", "setup"], ["setup", "--profile", "ops"]):
        prefix = f"pos-{uuid.uuid4().hex[:6]}"
        props = properties_file(tmp_path, **tables(prefix))
        result = ecs_state(cli_env(moto_server, tmp_path), *argv, "--properties", props)
        assert result.returncode == 0, result.stderr
        assert f"{prefix}-tasks" in table_names(moto_server, "ca-central-1")


def test_no_region_anywhere_is_one_line_naming_the_fix(moto_server: Any, tmp_path: Path) -> None:
    line = one_line_error(ecs_state(cli_env(moto_server, tmp_path), "setup"))
    assert "--region" in line and "AWS_REGION" in line and "regionName" in line


def test_an_unreachable_endpoint_is_one_line_and_exit_2_not_a_traceback(moto_server: Any, tmp_path: Path) -> None:
    env = cli_env(moto_server, tmp_path, AWS_REGION="eu-west-1", AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:9")
    line = one_line_error(ecs_state(env, "setup"))
    assert line.startswith("ecs-state setup: cannot reach AWS") and "127.0.0.1:9" in line


def test_a_missing_profile_is_one_line(moto_server: Any, tmp_path: Path) -> None:
    line = one_line_error(
        ecs_state(
            cli_env(moto_server, tmp_path, AWS_REGION="eu-west-1"), "tasks", "--cluster", "prod", "--profile", "nope"
        )
    )
    assert "'nope'" in line and "--profile" in line


def test_no_credentials_is_one_line(moto_server: Any, tmp_path: Path) -> None:
    env = cli_env(
        moto_server,
        tmp_path,
        AWS_REGION="eu-west-1",
        AWS_ACCESS_KEY_ID=None,
        AWS_SECRET_ACCESS_KEY=None,
        AWS_SESSION_TOKEN=None,
    )
    line = one_line_error(ecs_state(env, "setup"))
    assert "credentials" in line


def test_a_missing_table_is_one_line(moto_server: Any, tmp_path: Path) -> None:
    props = properties_file(tmp_path, **tables(f"absent-{uuid.uuid4().hex[:6]}"))
    env = cli_env(moto_server, tmp_path, AWS_REGION="eu-west-1")
    line = one_line_error(
        ecs_state(env, "status", "--properties", properties_file(tmp_path, applicationName="no-such-app"))
    )
    assert "no-such-app" in line
    line = one_line_error(
        ecs_state(env, "redrive", "dead-letters", "--stream-name", "s", "--dry-run", "--properties", props)
    )
    assert "not found in eu-west-1" in line and "--properties" in line


def test_version_is_the_package_version(tmp_path: Path, moto_server: Any) -> None:
    result = ecs_state(cli_env(moto_server, tmp_path), "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"ecs-state {processor.__version__}" == f"ecs-state {version('ecs-state')}"


def test_redrive_takes_the_stream_from_the_properties_and_the_shard_as_dead_letters_does(
    moto_server: Any, tmp_path: Path
) -> None:
    prefix = f"rd-{uuid.uuid4().hex[:6]}"
    stream = f"{prefix}-stream"
    env = cli_env(moto_server, tmp_path, AWS_REGION="eu-west-1")
    kinesis = boto3.client("kinesis", region_name="eu-west-1", endpoint_url=moto_server.endpoint)
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    props = properties_file(tmp_path, streamName=stream, **tables(prefix))
    assert ecs_state(env, "setup", "--properties", props).returncode == 0
    for shard_flag in ("--shard", "--shard-id"):
        result = ecs_state(
            env, "redrive", "dead-letters", "--properties", props, shard_flag, "shardId-1", "--output", "json"
        )
        assert result.returncode == 0, result.stderr
    arn_props = properties_file(
        tmp_path, streamArn=f"arn:aws:kinesis:eu-west-1:123456789012:stream/{stream}", **tables(prefix)
    )
    assert ecs_state(env, "redrive", "dead-letters", "--properties", arn_props).returncode == 0
    line = one_line_error(
        ecs_state(env, "redrive", "dead-letters", "--properties", properties_file(tmp_path, **tables(prefix)))
    )
    assert "--stream-name" in line


@pytest.mark.parametrize("argv", [["produce", "--help"], ["redrive", "dead-letters", "--help"]])
def test_old_flag_spellings_work_but_are_not_advertised(argv: list[str], tmp_path: Path, moto_server: Any) -> None:
    result = ecs_state(cli_env(moto_server, tmp_path), *argv)
    assert result.returncode == 0
    assert "--stream-name" in result.stdout
    assert "--shard-id" not in result.stdout and "--stream " not in result.stdout
