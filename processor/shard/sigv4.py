"""AWS Signature Version 4 for DynamoDB's JSON protocol, as a pure computation: request in, headers out.

Why our own: botocore's ``SigV4Auth`` builds a generic canonical request (every header, query string, URL parsing)
for every call; a DynamoDB request is always a ``POST`` of one body to one path with the same five headers, so
most of that work is done once here, at construction. The differential tests hold it to botocore's signature
for the same request, credentials and clock.

Rules:
- :meth:`SigV4Signer.sign` returns the headers to send (``Host``, ``Content-Type``, ``X-Amz-Date``,
  ``X-Amz-Target``, ``Authorization`` and, with temporary credentials, ``X-Amz-Security-Token``), signed exactly
  as ``SigV4Auth`` signs them: the same signed headers in the same order, the same canonical request.
- The signing key is derived once per (secret key, UTC day) and cached: new credentials or a new day derive it
  again, so rotated credentials sign the very next request. Replacing the cache is one assignment: safe to share
  between threads (two threads may both derive the same key once).
- No sockets, no clock but ``time.time`` when no date is given (formatted once per second), no credential lookup:
  the caller passes the credentials current at that moment.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Protocol

CONTENT_TYPE = "application/x-amz-json-1.0"
ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "dynamodb"


class FrozenCredentials(Protocol):
    """What botocore's ``get_frozen_credentials()`` returns (a ``ReadOnlyCredentials``)."""

    @property
    def access_key(self) -> str: ...

    @property
    def secret_key(self) -> str: ...

    @property
    def token(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class _DayKey:
    secret: str
    date: str
    key: bytes


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


class SigV4Signer:
    """Signs requests to one endpoint for one region. ``host_header`` is the ``Host`` header as sent (port only
    when not the scheme's default); ``canonical_path`` the URL path as SigV4 canonicalises it."""

    def __init__(self, region: str, host_header: str, canonical_path: str = "/", service: str = SERVICE) -> None:
        self.region = region
        self.host_header = host_header
        self.service = service
        self._path = canonical_path
        self._scope_tail = f"/{region}/{service}/aws4_request"
        self._day_key: _DayKey | None = None
        self._stamp: tuple[int, str] = (-1, "")

    def _now(self) -> str:
        """``YYYYMMDDTHHMMSSZ`` of this second, formatted once per second (one tuple swap: thread-safe)."""
        second = int(time.time())
        stamp = self._stamp
        if stamp[0] != second:
            self._stamp = stamp = (second, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second)))
        return stamp[1]

    def day_key(self, secret_key: str, date: str) -> bytes:
        """The signing key of a UTC day (``YYYYMMDD``), derived once per secret and day."""
        cached = self._day_key
        if cached is None or cached.date != date or cached.secret != secret_key:
            key = _hmac(("AWS4" + secret_key).encode(), date)
            for part in (self.region, self.service, "aws4_request"):
                key = _hmac(key, part)
            self._day_key = cached = _DayKey(secret_key, date, key)
        return cached.key

    def sign(
        self, target: str, body: bytes, credentials: FrozenCredentials, amz_date: str | None = None
    ) -> dict[str, str]:
        """The headers of a request to ``target`` (``DynamoDB_20120810.PutItem``...) with ``body``; ``amz_date``
        (``YYYYMMDDTHHMMSSZ``) defaults to now."""
        if amz_date is None:
            amz_date = self._now()
        date = amz_date[:8]
        key = self.day_key(credentials.secret_key, date)
        token = credentials.token
        head = f"content-type:{CONTENT_TYPE}\nhost:{self.host_header}\nx-amz-date:{amz_date}\n"
        if token:
            canonical_headers = f"{head}x-amz-security-token:{token}\nx-amz-target:{target}\n"
            signed = "content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
        else:
            canonical_headers = f"{head}x-amz-target:{target}\n"
            signed = "content-type;host;x-amz-date;x-amz-target"
        canonical = f"POST\n{self._path}\n\n{canonical_headers}\n{signed}\n{hashlib.sha256(body).hexdigest()}"
        scope = date + self._scope_tail
        to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.digest(key, to_sign.encode(), "sha256").hex()  # the one-shot digest: no HMAC object
        headers = {
            "Host": self.host_header,
            "Content-Type": CONTENT_TYPE,
            "X-Amz-Date": amz_date,
            "X-Amz-Target": target,
            "Authorization": f"{ALGORITHM} Credential={credentials.access_key}/{scope}, SignedHeaders={signed}, "
            f"Signature={signature}",
        }
        if token:
            headers["X-Amz-Security-Token"] = token
        return headers
