"""A thin DynamoDB client for the writer's hot path: JSON protocol 1.0 over kept-alive connections, SigV4-signed.

botocore spends most of a conditional ``PutItem``'s client CPU in its generic model machinery (serialising,
validating, parsing), and urllib3 most of what is left in its generic HTTP machinery; this client does only the
per-request work itself, over the minimal HTTP/1.1 connections of ``shard/http_connection.py``. Everything hard
and rarely run stays botocore's: the credential chain, the region, the endpoint and the CA bundle, resolved once
at construction.

Rules:
- Requests and replies are DynamoDB JSON as on the wire (``{"S": ...}``, ``{"N": "12"}``...); ``bytes`` values
  are sent as base64 (``B``) and come back as base64 text. A request is a mapping (serialised once with
  :func:`serialise`) or ``bytes`` already serialised, so a retry loop resends the same body.
- Every request is signed with the credentials current at that moment (``get_frozen_credentials()``: temporary
  credentials from the standard chain are refreshed before they expire). The SigV4 signing key is derived once
  per (secret key, UTC day) and cached; the signature is computed per request, exactly as botocore's
  ``SigV4Auth`` computes it (same signed headers, same canonical request).
- A reply, success or DynamoDB error, is a :class:`Response` (status, short error code, message, parsed body):
  DynamoDB errors never raise. A failed condition with ``ReturnValuesOnConditionCheckFailure=ALL_OLD`` carries
  the stored item in ``Response.item``.
- No usable reply (connection refused or reset, timeout, TLS failure, a reply failing its ``x-amz-crc32``
  check or a 200 that is not JSON, credentials that cannot be refreshed) raises :class:`TransportError`
  (:class:`TransportTimeout` for timeouts), an ``EcsStateError``: transient, the caller retries.
  ``maybe_applied`` is false only when the request cannot have reached DynamoDB (no connection was made).
- It never retries and never classifies: the caller owns retries and backoff, and ``shard/failures.py`` (the one
  classifier) decides what a reply or an exception means.
- Settings come from botocore itself, resolved once at construction by building a real botocore DynamoDB client
  and capturing (its ``before-send`` event; nothing is sent) the prepared request of a ``PutItem``: the URL it
  would send to (endpoint ruleset: ``AWS_ENDPOINT_URL_DYNAMODB`` / ``AWS_ENDPOINT_URL`` / the shared config's
  ``services`` section unless ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS``, FIPS, dual-stack, account-ID endpoints,
  FIPS pseudo-regions) and the region and service it signs with (its ``Authorization`` credential scope). Region:
  the argument, else ``AWS_REGION``, else botocore's (``AWS_DEFAULT_REGION``, the profile). The endpoint of every
  operation is the one resolved for ``PutItem`` on a table given by name (a table ARN as a table name is not
  used to pick an endpoint).
- Proxies as botocore decides them (``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``NO_PROXY``, matched against the endpoint):
  https goes through a ``CONNECT`` tunnel (kept alive), http in absolute form with ``Connection: close`` (one
  connection per request: many proxies close client connections unannounced); a proxy URL's user and password
  are sent as ``Proxy-Authorization: Basic``. A proxy reached over TLS (an ``https://`` proxy URL) is refused at
  construction (``ConfigError``, naming the variable).
- TLS is always verified (certificate and host name), against ``AWS_CA_BUNDLE`` / the profile's ``ca_bundle`` if
  set, else certifi's bundle (what botocore uses); a bundle that is missing, unreadable or not PEM is a
  ``ConfigError`` at construction. No region, no credentials, or an endpoint botocore cannot resolve to an http(s)
  URL is a ``ConfigError`` at construction; credentials that exist but fail to resolve then are a
  ``TransportError`` (transient: the processor exits without reading a record, and the daemon starts it again).
- ``Accept-Encoding: identity`` is sent; a reply encoded anyway with gzip or deflate is decoded after its CRC32
  check (DynamoDB's CRC32 covers the bytes on the wire).
- Thread-safe: one client per process, shared by the writer's threads; ``pool`` (the writer's concurrency)
  bounds the connections kept alive. :class:`DynamoDBTransport` is the typed seam the writer, the prefetch and
  the start-up check take (a fake in tests satisfies it too).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import ssl
import time
import zlib
from dataclasses import dataclass
from typing import Any, Mapping, Protocol
from urllib.parse import quote, urlsplit

import botocore.session
import orjson
from botocore.utils import normalize_url_path

from processor.errors import ConfigError, EcsStateError
from processor.shard.dynamodb_endpoint import SERVICE, _proxy, resolve, resolve_ca_bundle, resolve_region
from processor.shard.http_connection import (
    ConnectFailed,
    ConnectionPool,
    ConnectTimeout,
    HttpError,
    HttpReply,
    ReadTimeout,
    TlsFailed,
)

CONTENT_TYPE = "application/x-amz-json-1.0"
TARGET_PREFIX = "DynamoDB_20120810."
ALGORITHM = "AWS4-HMAC-SHA256"


class TransportError(EcsStateError):
    """No usable reply from DynamoDB (transient: retry). ``maybe_applied`` is false only when no connection was
    made, so the request cannot have reached DynamoDB."""

    def __init__(self, operation: str, reason: str, *, maybe_applied: bool = True) -> None:
        super().__init__(f"DynamoDB {operation}: {reason}")
        self.operation = operation
        self.reason = reason
        self.maybe_applied = maybe_applied


class TransportTimeout(TransportError):
    """Connecting or reading timed out."""


@dataclass(frozen=True, slots=True)
class Response:
    """DynamoDB's reply. ``code`` is the short error code (``__type`` after ``#``), "" on success; ``body`` is the
    parsed JSON reply (empty when the reply was not JSON, e.g. a load balancer's 5xx page). What an error means
    is ``shard/failures.py``'s to say."""

    status: int
    code: str
    message: str
    body: dict[str, Any]
    request_id: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def condition_failed(self) -> bool:
        return self.code == "ConditionalCheckFailedException"

    @property
    def item(self) -> dict[str, Any] | None:
        """GetItem's item, ``ReturnValues=ALL_OLD``'s, or the stored one on a failed condition with
        ``ReturnValuesOnConditionCheckFailure=ALL_OLD``."""
        item = self.body.get("Item") or self.body.get("Attributes")
        return item if isinstance(item, dict) else None

    def describe(self) -> str:
        """One line for logs and error messages: ``Code: message (HTTP n)``."""
        return f"{self.code or 'OK'}: {self.message} (HTTP {self.status})"


class DynamoDBTransport(Protocol):
    """The seam between the shard runtime and DynamoDB (as httpx's ``BaseTransport``): ``DynamoDBHttp`` in
    production, a fake in tests. A reply, success or DynamoDB error, is a ``Response``; anything else raises
    (and whatever it raises is transient to the one classifier)."""

    def put_item(self, request: Mapping[str, Any] | bytes) -> Response: ...

    def batch_get_item(self, request: Mapping[str, Any] | bytes) -> Response: ...

    def describe_table(self, name: str) -> Response: ...

    def call(self, operation: str, request: Mapping[str, Any] | bytes) -> Response: ...


@dataclass(frozen=True, slots=True)
class _SigningKey:
    secret: str
    date: str
    key: bytes


def _bytes_as_base64(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not DynamoDB JSON (numbers go as {{'N': '<text>'}})")


def serialise(request: Mapping[str, Any]) -> bytes:
    """A request mapping as the JSON body DynamoDB takes (UTF-8, compact; ``bytes`` values as base64). orjson:
    a fifth of ``json.dumps``'s CPU for a 3.5 KB item. It refuses what JSON cannot carry exactly (a lone
    surrogate, a non-string map key, an integer beyond 64 bits) with ``TypeError``; the builder never hands it
    one (every number goes as ``{"N": text}``, every name and string is checked)."""
    try:
        return orjson.dumps(request, default=_bytes_as_base64)
    except orjson.JSONEncodeError as exc:
        raise TypeError(f"request is not DynamoDB JSON: {exc}") from None


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


class DynamoDBHttp:
    """A DynamoDB client for JSON requests; the module docstring states its rules. Build one per process with
    :meth:`from_environment` (construction resolves settings through botocore, ~0.1 s) and share it."""

    def __init__(
        self,
        region: str,
        endpoint_url: str,
        *,
        session: botocore.session.Session | None = None,
        pool: int = 16,
        timeout_s: float = 10.0,
        ca_bundle: str | None = None,
        proxy_url: str | None = None,
        proxy_headers: Mapping[str, str] | None = None,
    ) -> None:
        """``region`` is the region requests are signed for; ``endpoint_url`` the URL they are sent to
        (:meth:`from_environment` takes both from botocore)."""
        self.region = region
        self.endpoint_url = endpoint_url
        self.ca_bundle = ca_bundle
        self.proxy_url = proxy_url
        self.session = session or botocore.session.get_session()
        credentials = self.session.get_credentials()
        if credentials is None:
            raise ConfigError(
                "DynamoDB: no AWS credentials in the standard chain (environment, shared files, "
                "container or instance role, SSO...); give the worker credentials"
            )
        self._credentials = credentials
        try:
            url = urlsplit(endpoint_url)
            scheme, host, explicit_port = url.scheme, (url.hostname or "").lower(), url.port
        except ValueError:
            scheme, host, explicit_port = "", "", None
        if scheme not in ("http", "https") or not host:
            raise ConfigError(
                f"DynamoDB endpoint {endpoint_url!r} is not an http(s) URL; fix "
                f"AWS_ENDPOINT_URL_DYNAMODB / AWS_ENDPOINT_URL or unset them"
            )
        default_port = 443 if scheme == "https" else 80
        port = explicit_port or default_port
        shown = f"[{host}]" if ":" in host else host
        self._host_header = shown if port == default_port else f"{shown}:{port}"
        request_path = url.path or "/"
        self._path = quote(normalize_url_path(request_path), safe="/~")  # the canonical path, as SigV4Auth's
        proxy = _proxy(proxy_url, proxy_headers or {})
        # through an http proxy, plain http goes in absolute form; https goes through a CONNECT tunnel
        absolute = proxy is not None and scheme == "http"
        target = f"http://{self._host_header}{request_path}" if absolute else request_path
        extra = (
            "".join(f"{k}: {v}\r\n" for k, v in proxy.headers.items()) + "Connection: close\r\n"
            if proxy and absolute
            else ""
        )
        self.request_target = target  # what the request line names: the path, or the absolute URL via a proxy
        self._head = f"POST {target} HTTP/1.1\r\nAccept-Encoding: identity\r\n{extra}"
        self._scope_tail = f"/{region}/{SERVICE}/aws4_request"
        self._signing_key: _SigningKey | None = None
        if scheme == "https" and ca_bundle and not (os.path.isfile(ca_bundle) and os.access(ca_bundle, os.R_OK)):
            raise ConfigError(
                f"CA bundle {ca_bundle!r} (AWS_CA_BUNDLE / the profile's ca_bundle) is missing or "
                f"unreadable; point it at a readable PEM file or unset it"
            )
        try:
            self._http = ConnectionPool(
                scheme,
                host,
                port,
                timeout_s=timeout_s,
                maxsize=pool,
                ca_file=ca_bundle,
                proxy=proxy,
                keep_alive=not absolute,
            )
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"CA bundle {ca_bundle!r} (AWS_CA_BUNDLE / the profile's ca_bundle) cannot be "
                f"loaded ({exc}); point it at a readable PEM file or unset it"
            ) from exc

    @classmethod
    def from_environment(
        cls,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        session: botocore.session.Session | None = None,
        ca_bundle: str | None = None,
        pool: int = 16,
        timeout_s: float = 10.0,
    ) -> DynamoDBHttp:
        """Region, endpoint, proxy and CA bundle resolved by botocore (see the module docstring)."""
        session = session or botocore.session.get_session()
        try:  # resolving the endpoint signs a probe: credentials that fail now are transient, not configuration
            credentials = session.get_credentials()
            if credentials is not None:
                credentials.get_frozen_credentials()
        except Exception as exc:
            raise TransportError(
                "start", f"resolving AWS credentials failed: {type(exc).__name__}: {exc}", maybe_applied=False
            ) from exc
        if credentials is None:
            raise ConfigError(
                "DynamoDB: no AWS credentials in the standard chain (environment, shared files, "
                "container or instance role, SSO...); give the worker credentials"
            )
        found = resolve(session, resolve_region(session, region), endpoint_url)
        return cls(
            found.signing_region,
            found.url,
            session=session,
            pool=pool,
            timeout_s=timeout_s,
            ca_bundle=resolve_ca_bundle(session, ca_bundle),
            proxy_url=found.proxy_url,
            proxy_headers=found.proxy_headers,
        )

    # -- operations -------------------------------------------------------------------------------------------

    def put_item(self, request: Mapping[str, Any] | bytes) -> Response:
        """PutItem; ``request`` as the API takes it (``TableName``, ``Item``, ``ConditionExpression``...)."""
        return self.call("PutItem", request)

    def batch_get_item(self, request: Mapping[str, Any] | bytes) -> Response:
        """BatchGetItem; ``request`` holds ``RequestItems``; ``UnprocessedKeys`` in the body are the caller's."""
        return self.call("BatchGetItem", request)

    def describe_table(self, name: str) -> Response:
        return self.call("DescribeTable", {"TableName": name})

    def call(self, operation: str, request: Mapping[str, Any] | bytes) -> Response:
        """Any DynamoDB operation by name, signed with the current credentials."""
        body = request if isinstance(request, bytes) else serialise(request)
        headers = self.sign(TARGET_PREFIX + operation, body)
        head = self._head + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        try:
            reply = self._http.request(head.encode("latin-1"), body)
        except (ConnectTimeout, ReadTimeout) as exc:
            raise TransportTimeout(operation, f"timed out ({exc})", maybe_applied=isinstance(exc, ReadTimeout)) from exc
        except TlsFailed as exc:
            raise TransportError(
                operation, f"TLS failure with {self.endpoint_url}: {exc}", maybe_applied=False
            ) from exc
        except ConnectFailed as exc:
            raise TransportError(
                operation, f"cannot connect to {self.endpoint_url}: {exc}", maybe_applied=False
            ) from exc
        except HttpError as exc:
            raise TransportError(operation, f"{type(exc).__name__}: {exc}") from exc
        return self._response(operation, reply)

    @property
    def connections_opened(self) -> int:
        """Connections this client has opened so far (a kept-alive pool stops growing)."""
        return int(self._http.num_connections)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DynamoDBHttp:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- signing and replies ----------------------------------------------------------------------------------

    def sign(self, target: str, body: bytes, amz_date: str | None = None) -> dict[str, str]:
        """The headers of a request to ``target`` with ``body``, signed as botocore's ``SigV4Auth`` signs it."""
        try:
            creds = self._credentials.get_frozen_credentials()
        except Exception as exc:  # whatever the provider raises (ClientError, JSONDecodeError...): transient
            raise TransportError(
                target.rsplit(".", 1)[-1],
                f"refreshing AWS credentials failed: {type(exc).__name__}: {exc}",
                maybe_applied=False,
            ) from exc
        if amz_date is None:
            amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        date = amz_date[:8]
        cached = self._signing_key
        if cached is None or cached.date != date or cached.secret != creds.secret_key:
            key = _hmac(("AWS4" + creds.secret_key).encode(), date)
            for part in (self.region, SERVICE, "aws4_request"):
                key = _hmac(key, part)
            self._signing_key = cached = _SigningKey(creds.secret_key, date, key)
        token = creds.token
        head = f"content-type:{CONTENT_TYPE}\nhost:{self._host_header}\nx-amz-date:{amz_date}\n"
        if token:
            canonical_headers = f"{head}x-amz-security-token:{token}\nx-amz-target:{target}\n"
            signed = "content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
        else:
            canonical_headers = f"{head}x-amz-target:{target}\n"
            signed = "content-type;host;x-amz-date;x-amz-target"
        canonical = f"POST\n{self._path}\n\n{canonical_headers}\n{signed}\n{hashlib.sha256(body).hexdigest()}"
        scope = date + self._scope_tail
        to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(cached.key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers = {
            "Host": self._host_header,
            "Content-Type": CONTENT_TYPE,
            "X-Amz-Date": amz_date,
            "X-Amz-Target": target,
            "Authorization": f"{ALGORITHM} Credential={creds.access_key}/{scope}, SignedHeaders={signed}, "
            f"Signature={signature}",
        }
        if token:
            headers["X-Amz-Security-Token"] = token
        return headers

    def _response(self, operation: str, reply: HttpReply) -> Response:
        data = reply.data
        crc = reply.headers.get("x-amz-crc32")
        if crc is not None and crc.isascii() and crc.isdigit() and zlib.crc32(data) != int(crc):
            raise TransportError(operation, f"reply of {len(data)} bytes failed its CRC32 check (garbled)")
        encoding = reply.headers.get("content-encoding", "identity").lower()
        if encoding in ("gzip", "deflate"):  # sent although we asked for identity: decode, never mistake it
            try:
                data = zlib.decompress(data, 47 if encoding == "gzip" else 15)
            except zlib.error as exc:
                raise TransportError(operation, f"reply's {encoding} encoding is broken: {exc}") from exc
        elif encoding != "identity":
            raise TransportError(operation, f"reply in an encoding we did not ask for: {encoding!r}")
        request_id = reply.headers.get("x-amzn-requestid", "")
        try:
            body = orjson.loads(data) if data else {}
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            if reply.status == 200:
                raise TransportError(operation, f"HTTP 200 with a reply that is not a JSON object: {data[:200]!r}")
            return Response(reply.status, f"HTTP{reply.status}", data[:500].decode("utf-8", "replace"), {}, request_id)
        if reply.status == 200:
            return Response(200, "", "", body, request_id)
        raw = body.get("__type") or reply.headers.get("x-amzn-errortype", "") or f"HTTP{reply.status}"
        code = str(raw).rsplit("#", 1)[-1].split(":", 1)[0]
        message = body.get("message") or body.get("Message") or ""
        return Response(reply.status, code, str(message), body, request_id)
