"""The environment of anything pointed at the local emulators: dummy credentials, one region, the endpoints, and
nothing that could reach a real account (profiles, session tokens, role and container credential variables are
removed). Written once; the stack, the demo, the benchmark, the fault scenarios and the tests all use it."""

from __future__ import annotations

import os
from typing import Any, Mapping

from botocore.config import Config

REGION = "us-east-1"
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
#: variables that would point boto3 or the Java SDK at a real account or another endpoint
SCRUBBED = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
)
#: dummy credentials and the region, for ``os.environ.update`` in a test session or a scenario runner
LOCAL_ENV = {**DUMMY_CREDENTIALS, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}


def local_env(
    base: Mapping[str, str] | None = None,
    *,
    dynamodb: str | None = None,
    kinesis: str | None = None,
    region: str = REGION,
    drop_settings: bool = False,
) -> dict[str, str]:
    """``base`` (default: this process's environment) with the scrubbed variables removed, dummy credentials,
    ``region``, and the given endpoints as ``AWS_ENDPOINT_URL_DYNAMODB`` / ``_KINESIS``. ``drop_settings`` also
    removes every ``ECS_STATE_*`` variable (a child that must run on its own settings only)."""
    env = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if k not in SCRUBBED and not (drop_settings and k.startswith("ECS_STATE_"))
    }
    env.update(DUMMY_CREDENTIALS)
    env.update({"AWS_REGION": region, "AWS_DEFAULT_REGION": region, "AWS_EC2_METADATA_DISABLED": "true"})
    if dynamodb:
        env["AWS_ENDPOINT_URL_DYNAMODB"] = dynamodb
    if kinesis:
        env["AWS_ENDPOINT_URL_KINESIS"] = kinesis
    return env


def local_client(service: str, endpoint: str, region: str = REGION, **config: Any) -> Any:
    """A boto3 client for ``service`` at a local ``endpoint`` with the dummy credentials (nothing else read)."""
    import boto3

    return boto3.session.Session().client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(**{"retries": {"mode": "standard", "total_max_attempts": 5}, **config}),
    )
