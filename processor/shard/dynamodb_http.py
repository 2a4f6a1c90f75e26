"""A thin DynamoDB client for the writer's hot path: JSON protocol 1.0 over kept-alive connections, SigV4-signed.

botocore spends most of a conditional ``PutItem``'s client CPU in its generic model machinery (serialising,
validating, parsing), and urllib3 most of what is left in its generic HTTP machinery; this client does only the
per-request work. It composes three parts, each readable and tested alone: where to send and how to sign,
decided by botocore (``shard/dynamodb_endpoint.py``); the pure signer (``shard/sigv4.py``); the socket pool
(``shard/http_connection.py``) over the sans-I/O reply reader (``shard/http_framing.py``).

Rules:
- The seam is one method: ``call(operation, request) -> Response`` (:class:`DynamoDBTransport`, as httpx's
  transport has one ``handle_request``). Requests and replies are DynamoDB JSON as on the wire (``{"S": ...}``,
  ``{"N": "12"}``...); ``bytes`` values are sent as base64 (``B``) and come back as base64 text. A request is a
  mapping (serialised once with :func:`serialise`) or ``bytes`` already serialised, so a retry loop resends the
  same body.
- Many requests of one operation can also go out together on the calling thread: :meth:`DynamoDBHttp.pipeline`
  (``shard/http_pipeline.py``: ``width`` in flight, replies gathered in rounds), each outcome a ``Response`` or
  the ``TransportError`` that ended it. :func:`pipeline` takes any transport: other than the thin client (the
  fakes), it calls ``call`` for each request in turn, so the writer's logic is the same on both.
- Every request is signed with the credentials current at that moment (``get_frozen_credentials()``: temporary
  credentials from the standard chain are refreshed before they expire).
- A reply, success or DynamoDB error, is a :class:`Response` (status, short error code, message, parsed body):
  DynamoDB errors never raise. A failed condition with ``ReturnValuesOnConditionCheckFailure=ALL_OLD`` carries
  the stored item in ``Response.item``.
- No usable reply (connection refused or reset, timeout, TLS failure, a reply failing its ``x-amz-crc32``
  check, a broken or unasked ``Content-Encoding``, a 200 that is not JSON, credentials that cannot be refreshed)
  raises :class:`TransportError` (:class:`TransportTimeout` for timeouts), an ``EcsStateError``: transient, the
  caller retries.
- It never retries and never classifies: the caller owns retries and backoff, and ``shard/failures.py`` (the one
  classifier) decides what a reply or an exception means.
- Settings come from botocore, resolved once at construction (``shard/dynamodb_endpoint.py`` says how): the URL,
  the signing region, the proxy (``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``NO_PROXY``), the CA bundle. TLS is always
  verified; a bundle that is missing, unreadable or not PEM, no region, no credentials, an endpoint that is not
  http(s) or a proxy URL that is not ``http://host[:port]`` is a ``ConfigError`` at construction; credentials
  that exist but fail to resolve then are a ``TransportError`` (transient: the processor exits without reading a
  record, and the daemon starts it again).
- Secrets are never shown: ``endpoint_url`` and ``proxy_url`` hold the URLs with any user-info redacted, and so
  does every message this client raises.
- ``Accept-Encoding: identity`` is sent; a reply encoded anyway with gzip or deflate is decoded after its CRC32
  check (DynamoDB's CRC32 covers the bytes on the wire).
- Thread-safe: one client per process, shared by the writer's threads; ``pool`` (the writer's concurrency)
  bounds the connections kept alive.
"""

from __future__ import annotations

import base64
import os
import ssl
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Mapping, Protocol

import botocore.session
import orjson

from processor.errors import ConfigError, EcsStateError
from processor.shard.dynamodb_endpoint import Endpoint, resolve, resolve_ca_bundle, resolve_region
from processor.shard.http_connection import (
    ConnectFailed,
    ConnectionPool,
    ConnectTimeout,
    HttpError,
    Proxy,
    ReadTimeout,
    Reply,
    TlsFailed,
    redact_url,
)
from processor.shard.http_framing import ProtocolError, decoded
from processor.shard.http_pipeline import pipeline as http_pipeline
from processor.shard.sigv4 import CONTENT_TYPE, SigV4Signer

__all__ = [
    "CONTENT_TYPE",
    "TARGET_PREFIX",
    "DynamoDBHttp",
    "DynamoDBTransport",
    "Response",
    "TransportError",
    "TransportTimeout",
    "pipeline",
    "serialise",
]

TARGET_PREFIX = "DynamoDB_20120810."


class TransportError(EcsStateError):
    """No usable reply from DynamoDB (transient: retry)."""

    def __init__(self, operation: str, reason: str) -> None:
        super().__init__(f"DynamoDB {operation}: {reason}")
        self.operation = operation
        self.reason = reason


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
    """The seam between the shard runtime and DynamoDB, one method as httpx's ``BaseTransport``: ``DynamoDBHttp``
    in production, a handler in tests (``workshop/testing/fake_dynamodb.py``). A reply, success or DynamoDB error,
    is a ``Response``; anything else raises (and whatever it raises is transient to the one classifier)."""

    def call(self, operation: str, request: Mapping[str, Any] | bytes) -> Response: ...


def pipeline(
    client: DynamoDBTransport,
    operation: str,
    next_request: Callable[[], tuple[Hashable, bytes] | None],
    on_reply: Callable[[Hashable, Response | Exception], None],
    width: int,
) -> None:
    """``DynamoDBHttp.pipeline`` on the thin client; on any other transport (the fakes), each request in turn
    through ``call``, any exception handed to ``on_reply`` as the outcome."""
    if isinstance(client, DynamoDBHttp):
        client.pipeline(operation, next_request, on_reply, width)
        return
    while (request := next_request()) is not None:
        token, body = request
        outcome: Response | Exception
        try:
            outcome = client.call(operation, body)
        except Exception as exc:  # handed over: the caller classifies it
            outcome = exc
        on_reply(token, outcome)


def _transport_error(operation: str, exc: HttpError, endpoint_url: str) -> TransportError:
    """What the HTTP layer's failure means to the caller: transient, a timeout told apart."""
    if isinstance(exc, (ConnectTimeout, ReadTimeout)):
        return TransportTimeout(operation, f"timed out ({exc})")
    if isinstance(exc, TlsFailed):
        return TransportError(operation, f"TLS failure with {endpoint_url}: {exc}")
    if isinstance(exc, ConnectFailed):
        return TransportError(operation, f"cannot connect to {endpoint_url}: {exc}")
    return TransportError(operation, f"{type(exc).__name__}: {exc}")


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


class DynamoDBHttp:
    """A DynamoDB client for JSON requests: endpoint -> signer -> pool; the module docstring states its rules.
    Build one per process with :meth:`from_environment` (construction resolves settings through botocore,
    ~0.1 s) and share it."""

    def __init__(
        self,
        region: str,
        endpoint_url: str,
        *,
        session: botocore.session.Session | None = None,
        pool: int = 16,
        timeout_s: float = 10.0,
        ca_bundle: str | None = None,
        proxy: Proxy | None = None,
    ) -> None:
        """``region`` is the region requests are signed for; ``endpoint_url`` the URL they are sent to
        (:meth:`from_environment` takes both from botocore)."""
        self.region = region
        self.endpoint_url = redact_url(endpoint_url)
        self.ca_bundle = ca_bundle
        shown = f"[{proxy.host}]" if proxy is not None and ":" in proxy.host else proxy.host if proxy else ""
        self.proxy_url = f"http://{shown}:{proxy.port}" if proxy is not None else None  # never its user-info
        self.session = session or botocore.session.get_session()
        credentials = self.session.get_credentials()
        if credentials is None:
            raise ConfigError(
                "DynamoDB: no AWS credentials in the standard chain (environment, shared files, "
                "container or instance role, SSO...); give the worker credentials"
            )
        self._credentials = credentials
        endpoint = Endpoint.from_url(endpoint_url)
        if (
            endpoint.scheme == "https"
            and ca_bundle
            and not (os.path.isfile(ca_bundle) and os.access(ca_bundle, os.R_OK))
        ):
            raise ConfigError(
                f"CA bundle {ca_bundle!r} (AWS_CA_BUNDLE / the profile's ca_bundle) is missing or "
                f"unreadable; point it at a readable PEM file or unset it"
            )
        try:
            self._http = ConnectionPool(
                endpoint.scheme,
                endpoint.host,
                endpoint.port,
                timeout_s=timeout_s,
                maxsize=pool,
                ca_file=ca_bundle,
                proxy=proxy,
            )
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"CA bundle {ca_bundle!r} (AWS_CA_BUNDLE / the profile's ca_bundle) cannot be "
                f"loaded ({exc}); point it at a readable PEM file or unset it"
            ) from exc
        self.signer = SigV4Signer(region, endpoint.host_header, endpoint.canonical_path)
        self.request_target = self._http.request_target(endpoint.host_header, endpoint.path)
        self._head = f"POST {self.request_target} HTTP/1.1\r\nAccept-Encoding: identity\r\n{self._http.head_lines}"

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
            reason = f"resolving AWS credentials failed: {type(exc).__name__}: {redact_url(str(exc))}"
            raise TransportError("start", reason) from exc
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
            proxy=found.proxy,
        )

    def describe(self) -> str:
        """One line for people: where requests go and how (no secrets)."""
        return (
            f"endpoint {self.endpoint_url} signed for {self.region}; proxy {self.proxy_url or 'none'}; "
            f"CA bundle {self.ca_bundle or 'system'}"
        )

    # -- the seam ---------------------------------------------------------------------------------------------

    def call(self, operation: str, request: Mapping[str, Any] | bytes) -> Response:
        """Any DynamoDB operation by name (``PutItem``, ``BatchGetItem``...), signed with the current credentials."""
        body = request if isinstance(request, bytes) else serialise(request)
        try:
            reply = self._http.request(self._signed_head(operation, body), body)
        except HttpError as exc:
            raise _transport_error(operation, exc, self.endpoint_url) from exc
        return self._response(operation, reply)

    def pipeline(
        self,
        operation: str,
        next_request: Callable[[], tuple[Hashable, bytes] | None],
        on_reply: Callable[[Hashable, Response | Exception], None],
        width: int,
    ) -> None:
        """Many requests of one operation on this thread, ``width`` at a time (``shard/http_pipeline.py``):
        ``next_request`` gives ``(token, body)`` or None; ``on_reply`` gets each token's ``Response``, or the
        ``TransportError`` that ended it, in the order replies come."""

        def signed() -> tuple[Hashable, bytes, bytes] | None:
            while (request := next_request()) is not None:
                token, body = request
                try:
                    head = self._signed_head(operation, body)
                except Exception as exc:  # whatever it is (credentials that fail to refresh): the caller's to judge
                    on_reply(token, exc)
                    continue
                return token, head, body
            return None

        def replied(token: Hashable, outcome: Reply | HttpError) -> None:
            if isinstance(outcome, HttpError):
                on_reply(token, _transport_error(operation, outcome, self.endpoint_url))
                return
            response: Response | Exception
            try:
                response = self._response(operation, outcome)
            except Exception as exc:  # a reply we cannot use is never the request's fault: the caller retries it
                response = exc
            on_reply(token, response)

        http_pipeline(self._http, signed, replied, width)

    def _signed_head(self, operation: str, body: bytes) -> bytes:
        """The request line and headers of ``operation`` with ``body``, signed now (without Content-Length)."""
        headers = self.sign(TARGET_PREFIX + operation, body)
        return (self._head + "".join([f"{name}: {value}\r\n" for name, value in headers.items()])).encode("latin-1")

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
        """The headers of a request to ``target`` with ``body``, signed with the credentials current now."""
        try:
            creds = self._credentials.get_frozen_credentials()
        except Exception as exc:  # whatever the provider raises (ClientError, JSONDecodeError...): transient
            raise TransportError(
                target.rsplit(".", 1)[-1],
                f"refreshing AWS credentials failed: {type(exc).__name__}: {redact_url(str(exc))}",
            ) from exc
        return self.signer.sign(target, body, creds, amz_date)

    def _response(self, operation: str, reply: Reply) -> Response:
        crc = reply.headers.get("x-amz-crc32")
        if crc is not None and crc.isascii() and crc.isdigit() and zlib.crc32(reply.data) != int(crc):
            raise TransportError(operation, f"reply of {len(reply.data)} bytes failed its CRC32 check (garbled)")
        data = reply.data
        if "content-encoding" in reply.headers:  # sent although we asked for identity: decode, never mistake it
            try:
                data = decoded(reply)
            except ProtocolError as exc:
                raise TransportError(operation, str(exc)) from exc
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
