"""Where the thin DynamoDB client (``shard/dynamodb_http.py``) sends and how it signs, decided by botocore itself:
the region, the endpoint URL and signing scope of a ``PutItem`` as botocore's own client would send it (captured
through its ``before-send`` event, never sent), the proxy botocore would take for it (``HTTP(S)_PROXY`` /
``NO_PROXY``), and the CA bundle. Resolved once per process, at construction; a setting botocore cannot resolve
is a ``ConfigError`` naming what to fix, with any user-info of a URL it quotes redacted.

:class:`Endpoint` is the resolved URL taken apart once (scheme, host, port, the ``Host`` header, the path as sent
and as SigV4 canonicalises it); a URL that is not http(s) with a host is a ``ConfigError``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import botocore.session
from botocore.config import Config
from botocore.httpsession import ProxyConfiguration
from botocore.utils import get_environ_proxies, normalize_url_path

from processor.errors import ConfigError
from processor.shard.http_connection import Proxy, redact_url
from processor.shard.sigv4 import SERVICE

_SCOPE = re.compile(r"Credential=[^/]*/\d{8}/([^/]+)/([^/]+)/aws4_request")


def resolve_region(session: botocore.session.Session, region: str | None = None) -> str:
    """The argument, else ``AWS_REGION``, else botocore's (``AWS_DEFAULT_REGION``, the profile's region)."""
    found = region or os.environ.get("AWS_REGION") or session.get_config_variable("region")
    if not found:
        raise ConfigError("DynamoDB: no region; set AWS_REGION (or AWS_DEFAULT_REGION, or the profile's region)")
    return str(found)


@dataclass(frozen=True)
class Endpoint:
    """An http(s) endpoint URL taken apart: where to connect, the ``Host`` header, the path as sent and as SigV4
    canonicalises it."""

    scheme: str
    host: str
    port: int
    host_header: str
    path: str
    canonical_path: str

    @classmethod
    def from_url(cls, url: str) -> Endpoint:
        try:
            parts = urlsplit(url)
            scheme, host, explicit_port = parts.scheme, (parts.hostname or "").lower(), parts.port
        except ValueError:
            scheme, host, explicit_port = "", "", None
        if scheme not in ("http", "https") or not host:
            raise ConfigError(
                f"DynamoDB endpoint {redact_url(url)!r} is not an http(s) URL; fix "
                f"AWS_ENDPOINT_URL_DYNAMODB / AWS_ENDPOINT_URL or unset them"
            )
        default_port = 443 if scheme == "https" else 80
        port = explicit_port or default_port
        shown = f"[{host}]" if ":" in host else host
        path = parts.path or "/"
        return cls(
            scheme,
            host,
            port,
            shown if port == default_port else f"{shown}:{port}",
            path,
            quote(normalize_url_path(path), safe="/~"),  # as botocore's SigV4Auth canonicalises it
        )


@dataclass(frozen=True)
class Resolved:
    """What botocore would do for a DynamoDB request: the URL it sends to, the region it signs for, and the proxy
    it goes through (None: direct)."""

    url: str
    signing_region: str
    proxy: Proxy | None = None


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
            f"DynamoDB: botocore cannot build a client ({type(exc).__name__}: {redact_url(str(exc))}); {how_to_fix}"
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
            f"DynamoDB: botocore cannot resolve the endpoint ({type(exc).__name__}: {redact_url(str(exc))}); "
            f"{how_to_fix}"
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
    return Resolved(captured.url, scope.group(1), _proxy_for(static_url, captured.url))


def _proxy_for(static_url: str, url: str) -> Proxy | None:
    """The proxy botocore would take for ``url``: it reads the environment for the client's static endpoint URL
    and picks by the request's scheme. A proxy URL that does not parse is a ``ConfigError`` naming the variable."""
    variable = "HTTPS_PROXY" if url.lower().startswith("https:") else "HTTP_PROXY"
    try:
        proxies = ProxyConfiguration(proxies=get_environ_proxies(static_url))
        proxy_url = proxies.proxy_url_for(url)
        headers = dict(proxies.proxy_headers_for(proxy_url)) if proxy_url else {}
    except Exception as exc:  # botocore parsing a malformed proxy URL (a bad port, an unclosed bracket...)
        raise ConfigError(
            f"the proxy in {variable} is not a valid URL ({type(exc).__name__}); "
            f"use http://host:port, or list the endpoint in NO_PROXY"
        ) from None
    return Proxy.from_url(proxy_url, variable, headers)


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
