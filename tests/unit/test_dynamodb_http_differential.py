"""Differential: over a few hundred generated settings (regions of every partition incl. FIPS pseudo-regions; FIPS,
dual-stack, custom and VPC endpoint URLs with paths, ignore-configured endpoints, account IDs and account-ID
endpoint modes, session tokens), the thin client sends what a botocore DynamoDB client sends for the same
operation, credentials and clock: the same host, the same path and the same ``Authorization`` header. Settings
botocore refuses are refused by the thin client too (``ConfigError``). botocore's request is captured with its
``before-send`` event (nothing is sent); the clock is frozen by signing ours at botocore's ``X-Amz-Date``. No
socket is opened."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import botocore.session
import pytest
from botocore.auth import _host_from_url
from botocore.config import Config

from processor.errors import ConfigError
from processor.shard import dynamodb_http as ddb

SEED = 20261204
CASES = 300
REGIONS = [
    "us-east-1",
    "eu-west-1",
    "ap-southeast-2",
    "ca-central-1",
    "cn-north-1",
    "cn-northwest-1",
    "us-gov-west-1",
    "us-gov-east-1",
    "us-iso-east-1",
    "us-isob-east-1",
    "eu-isoe-west-1",
    "us-east-1-fips",
    "fips-us-east-1",
    "us-gov-west-1-fips",
    "fips-us-gov-west-1",
    "fips-ca-central-1",
    "us-west-2-fips",
]
ENDPOINTS = [
    None,
    "https://vpce-0a1b2c3d-abcdefgh.dynamodb.us-east-1.vpce.amazonaws.com",
    "https://ddb.internal.example:8443/prefix/ddb",
    "http://127.0.0.1:8000",
    "http://localhost:4566/",
    "https://gateway.example/a%20b/v1/",
]
OPERATIONS = {
    "PutItem": {
        "TableName": "tasks",
        "Item": {"taskArn": {"S": "arn:aws:ecs:x:1:task/c/é"}, "version": {"N": "7"}},
        "ConditionExpression": "attribute_not_exists(#k)",
        "ExpressionAttributeNames": {"#k": "taskArn"},
    },
    "BatchGetItem": {"RequestItems": {"tasks": {"Keys": [{"taskArn": {"S": "arn:1"}}]}}},
    "DescribeTable": {"TableName": "tasks"},
}
ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_CA_BUNDLE",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_ACCOUNT_ID",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "NO_PROXY",
    "no_proxy",
)


@dataclass(frozen=True)
class Setting:
    env: dict[str, str]
    endpoint_arg: str | None
    operation: str


def settings() -> list[Setting]:
    rng = random.Random(SEED)
    out = []
    for _ in range(CASES):
        env = {
            "AWS_DEFAULT_REGION": rng.choice(REGIONS),
            "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        }
        if rng.random() < 0.5:
            env["AWS_SESSION_TOKEN"] = "FwoGZXIvYXdzEJr//////////wEaDH+token/with=chars"
        for name in ("AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT"):
            if rng.random() < 0.35:
                env[name] = rng.choice(["true", "false"])
        where = rng.random()
        endpoint = rng.choice(ENDPOINTS[1:])
        endpoint_arg = None
        if where < 0.2:
            env["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
        elif where < 0.3:
            env["AWS_ENDPOINT_URL"] = endpoint
        elif where < 0.4:
            endpoint_arg = endpoint
        if rng.random() < 0.25:
            env["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"] = "true"
        if rng.random() < 0.4:
            env["AWS_ACCOUNT_ID"] = rng.choice(["123456789012", "000000000001"])
        if rng.random() < 0.4:
            env["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = rng.choice(["preferred", "required", "disabled"])
        out.append(Setting(env, endpoint_arg, rng.choice(sorted(OPERATIONS))))
    return out


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


class _Sent(Exception):
    pass


_LOADER = botocore.session.get_session().get_component("data_loader")


def session() -> botocore.session.Session:
    """A new session (it reads the environment afresh) sharing one loader, so the service model and endpoint
    ruleset are parsed once for the whole file."""
    fresh = botocore.session.get_session()
    fresh.register_component("data_loader", _LOADER)
    return fresh


def botocore_request(setting: Setting) -> Any:
    """The request a botocore DynamoDB client sends for the setting's operation (captured, not sent), or the
    exception botocore raises for these settings."""
    try:
        client = session().create_client(
            "dynamodb", endpoint_url=setting.endpoint_arg, config=Config(retries={"total_max_attempts": 1})
        )
    except Exception as exc:
        return exc

    def capture(request: Any, **_: Any) -> None:
        raise _Sent(request)

    client.meta.events.register_first(f"before-send.dynamodb.{setting.operation}", capture)
    method = getattr(client, botocore.xform_name(setting.operation))
    try:
        method(**OPERATIONS[setting.operation])
    except _Sent as sent:
        return sent.args[0]
    except Exception as exc:
        return exc
    finally:
        client.close()
    raise AssertionError("botocore sent nothing")  # pragma: no cover


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@pytest.mark.parametrize("setting", settings(), ids=lambda s: f"{s.operation}-{s.env['AWS_DEFAULT_REGION']}")
def test_host_path_and_signature_equal_botocores_for_the_same_operation_credentials_and_clock(
    isolated: pytest.MonkeyPatch, setting: Setting
) -> None:
    for name, value in setting.env.items():
        isolated.setenv(name, value)
    expected = botocore_request(setting)
    if isinstance(expected, Exception):
        with pytest.raises(ConfigError):
            ddb.DynamoDBHttp.from_environment(endpoint_url=setting.endpoint_arg, session=session())
        return
    client = ddb.DynamoDBHttp.from_environment(endpoint_url=setting.endpoint_arg, session=session())
    ours = client.sign(
        ddb.TARGET_PREFIX + setting.operation, expected.body, amz_date=_text(expected.headers["X-Amz-Date"])
    )
    url = urlsplit(expected.url)
    assert ours["Host"] == _host_from_url(expected.url)
    assert client.request_target == url.path
    assert ours["Authorization"] == _text(expected.headers["Authorization"])
    assert ours.get("X-Amz-Security-Token") == (
        _text(expected.headers["X-Amz-Security-Token"]) if "X-Amz-Security-Token" in expected.headers else None
    )


def test_the_generated_settings_cover_every_kind_of_endpoint(isolated: pytest.MonkeyPatch) -> None:
    """The generator reaches cn, gov, iso and FIPS hosts, dual-stack, account-ID endpoints, custom endpoints with
    paths, and settings botocore refuses (so the differential above compares what it claims to)."""
    hosts, refused = set(), 0
    for setting in settings():
        with isolated.context() as env:
            for name, value in setting.env.items():
                env.setenv(name, value)
            got = botocore_request(setting)
        if isinstance(got, Exception):
            refused += 1
        else:
            hosts.add(urlsplit(got.url).netloc + urlsplit(got.url).path)
    joined = " ".join(sorted(hosts))
    for part in (
        ".amazonaws.com.cn",
        "us-gov-west-1",
        "dynamodb-fips.",
        "c2s.ic.gov",
        "sc2s.sgov.gov",
        ".api.aws",
        "123456789012.ddb.",
        "vpce",
        "/prefix/ddb",
        "/a%20b/v1/",
    ):
        assert part in joined, part
    assert refused > 5
