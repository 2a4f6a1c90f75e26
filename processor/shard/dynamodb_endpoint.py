"""Where the thin DynamoDB client (``shard/dynamodb_http.py``) sends and how it signs, decided by botocore itself:
the region, the endpoint URL and signing scope of a ``PutItem`` as botocore's own client would send it (captured
through its ``before-send`` event, never sent), the proxy botocore would take for it (``HTTP(S)_PROXY`` /
``NO_PROXY``), and the CA bundle. Resolved once per process, at construction; a setting botocore cannot resolve
is a ``ConfigError`` naming what to fix.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urlsplit

import botocore.session
from botocore.config import Config
from botocore.httpsession import ProxyConfiguration
from botocore.utils import get_environ_proxies

from processor.errors import ConfigError
from processor.shard.http_connection import Proxy

SERVICE = "dynamodb"
_SCOPE = re.compile(r"Credential=[^/]*/\d{8}/([^/]+)/([^/]+)/aws4_request")


def resolve_region(session: botocore.session.Session, region: str | None = None) -> str:
    """The argument, else ``AWS_REGION``, else botocore's (``AWS_DEFAULT_REGION``, the profile's region)."""
    found = region or os.environ.get("AWS_REGION") or session.get_config_variable("region")
    if not found:
        raise ConfigError("DynamoDB: no region; set AWS_REGION (or AWS_DEFAULT_REGION, or the profile's region)")
    return str(found)


@dataclass(frozen=True)
class Resolved:
    """What botocore would do for a DynamoDB request: the URL it sends to, the region and service name it signs
    with, and the proxy it goes through (None: direct)."""

    url: str
    signing_region: str
    signing_name: str = SERVICE
    proxy_url: str | None = None
    proxy_headers: dict[str, str] = field(default_factory=dict)


class _Captured(Exception):
    def __init__(self, url: str, authorization: str) -> None:
        super().__init__(url)
        self.url, self.authorization = url, authorization


def resolve(session: botocore.session.Session, region: str, endpoint_url: str | None = None) -> Resolved:
    """Build a botocore DynamoDB client and capture the request it would send for a ``PutItem`` (module
    docstring): its URL and signing scope, and the proxy botocore would take for it. Nothing is sent."""
    how_to_fix = (
        "fix AWS_ENDPOINT_URL_DYNAMODB / AWS_ENDPOINT_URL / the profile's endpoint_url, AWS_REGION, "
        "AWS_USE_FIPS_ENDPOINT, AWS_USE_DUALSTACK_ENDPOINT, AWS_ACCOUNT_ID_ENDPOINT_MODE or unset them"
    )
    try:
        client = session.create_client(
            SERVICE, region_name=region, endpoint_url=endpoint_url, config=Config(retries={"total_max_attempts": 1})
        )
    except Exception as exc:  # NoRegionError, an invalid endpoint URL, a bad setting
        raise ConfigError(
            f"DynamoDB: botocore cannot build a client ({type(exc).__name__}: {exc}); {how_to_fix}"
        ) from exc

    def capture(request: Any, **_: Any) -> None:
        authorization = request.headers.get("Authorization", "")
        if isinstance(authorization, bytes):
            authorization = authorization.decode("latin-1")
        raise _Captured(request.url, str(authorization))

    client.meta.events.register_first("before-send.dynamodb.PutItem", capture)
    try:
        client.put_item(TableName="ecs-state-endpoint-probe", Item={})
    except _Captured as got:
        captured = got
    except Exception as exc:  # the ruleset refused the settings (e.g. an account ID required and none known)
        raise ConfigError(
            f"DynamoDB: botocore cannot resolve the endpoint ({type(exc).__name__}: {exc}); {how_to_fix}"
        ) from exc
    else:  # pragma: no cover - botocore sent nothing and raised nothing
        raise ConfigError("DynamoDB: botocore resolved no request to capture")
    finally:
        static_url = str(client.meta.endpoint_url)
        client.close()
    scope = _SCOPE.search(captured.authorization)
    if scope is None:
        raise ConfigError(
            f"DynamoDB: botocore signs without SigV4 here ({captured.authorization[:60]!r}); {how_to_fix}"
        )
    # botocore decides the proxy from the client's static endpoint URL, and picks it by the request's scheme
    proxies = ProxyConfiguration(proxies=get_environ_proxies(static_url))
    proxy_url = proxies.proxy_url_for(captured.url)
    headers = dict(proxies.proxy_headers_for(proxy_url)) if proxy_url else {}
    return Resolved(captured.url, scope.group(1), scope.group(2), proxy_url or None, headers)


def resolve_ca_bundle(session: botocore.session.Session, ca_bundle: str | None = None) -> str | None:
    """The argument, else ``AWS_CA_BUNDLE`` / the profile's ``ca_bundle``, else certifi's (botocore's default)."""
    found = ca_bundle or session.get_config_variable("ca_bundle")
    if found:
        return str(found)
    try:
        import certifi
    except ImportError:  # the system store (ssl's default certificates)
        return None
    return str(certifi.where())


def _proxy(proxy_url: str | None, headers: Mapping[str, str]) -> Proxy | None:
    if not proxy_url:
        return None
    try:
        url = urlsplit(proxy_url)
        host, port = url.hostname or "", url.port or 80
    except ValueError:
        host, port = "", 0
    if url.scheme != "http" or not host:
        raise ConfigError(
            f"proxy {proxy_url!r} (HTTPS_PROXY / HTTP_PROXY) is not an http:// proxy URL; the "
            f"DynamoDB client tunnels TLS through a plain http proxy only: use http://host:port, "
            f"or list the endpoint in NO_PROXY"
        )
    return Proxy(host, port, dict(headers))
