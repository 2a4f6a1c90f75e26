"""boto3 clients built one way. Endpoint, region and credentials come only from boto3's standard settings
(``AWS_ENDPOINT_URL_DYNAMODB``, ``AWS_ENDPOINT_URL_KINESIS``, ``AWS_REGION``...), so an emulator needs no code
path of its own."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config


def client(service: str, *, pool: int = 10, timeout: float = 10.0, botocore_retries: int = 3,
           validate: bool = True) -> Any:
    """A low-level client with a connection pool of ``pool`` and the given botocore retry attempts
    (``botocore_retries=1`` turns botocore's own retries off for callers that retry themselves;
    ``validate=False`` skips client-side parameter validation on hot paths whose requests we build)."""
    config = Config(
        max_pool_connections=pool,
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"mode": "standard", "total_max_attempts": botocore_retries},
        tcp_keepalive=True,
        parameter_validation=validate,
    )
    return boto3.session.Session().client(service, config=config)
