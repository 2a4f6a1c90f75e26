"""A pool of kept-alive HTTP/1.1 connections to one host, direct or through an http proxy: the sockets under the
DynamoDB client (``shard/dynamodb_http.py``). Framing is ``shard/http_framing.py``'s; this module owns the sockets.

Why our own: on the writer's hot path a conditional ``PutItem`` is one small POST and one small JSON reply over a
kept-alive connection. urllib3 (and http.client under it) spend several times the CPU of the socket work on
generic request and header machinery (``./scripts/bench --profile-volume`` and docs/field-notes.md have the
figures); this module does only what a DynamoDB request needs.

Rules:
- A request is one ``sendall`` of the head and the body together (no Nagle / delayed-ACK stall, no
  ``Expect: 100-continue``). The caller's headers go as given; ``Content-Length`` is added here. The reply is
  read by a fresh ``ReplyReader`` fed from ``recv``; whatever the bytes, a bad reply is ``ProtocolError``, and
  so is any other exception while reading it: whatever goes wrong here is never taken as the request's fault.
- A connection is kept for the next request only if the reply allows it (``Reply.keep_alive``), nothing came
  beyond the reply, and nothing failed mid-way (then it is closed, never reused).
- Before an idle connection is reused it is polled (``poll``, not ``select``: descriptors past 1024 work): one the
  server closed (or that sent something unasked) is dropped and another taken or opened, so a server's idle
  timeout never costs a failed request.
- Proxies are owned here: :meth:`Proxy.from_url` parses the proxy URL botocore chose (``HTTP(S)_PROXY``); one
  that is not ``http://[user:password@]host[:port][/]`` (another scheme, which botocore turns into
  ``http://socks5://...``, a bad port, a path) is a ``ConfigError`` naming the variable, never a traceback. Its user and
  password go as ``Proxy-Authorization: Basic`` and are never shown: :func:`redact_url` hides the user-info of
  any URL in what is logged, raised or printed. Connections go to the proxy; for ``https`` each is a
  ``CONNECT host:port`` tunnel (TLS inside it, verified against the target's name, kept alive like a direct
  connection); for ``http`` the request line goes in absolute form with ``Connection: close`` and no connection
  is kept (proxies such as tinyproxy close a client connection after each reply without saying so). A proxy
  that cannot be reached or refuses the tunnel is ``ConnectFailed`` (the request was not sent).
- Every socket operation has the pool's timeout: ``socket.timeout`` surfaces as ``ConnectTimeout`` (no request
  sent) or ``ReadTimeout`` (the request may have been applied). Failing to connect at all is
  ``ConnectFailed``; a TLS handshake failure is ``TlsFailed``; a reset or EOF mid-reply is ``ProtocolError``.
- TLS (``https``) verifies the server's certificate and host name against ``ca_file`` (else the system store).
- Thread-safe: connections are taken from and returned to a LIFO stack under a lock; at most ``maxsize`` idle
  connections are kept (more may be open while more threads are in requests).
"""

from __future__ import annotations

import re
import select
import socket
import ssl
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from processor.errors import ConfigError
from processor.shard.http_framing import HttpError, ProtocolError, Reply, ReplyReader

__all__ = [
    "ConnectFailed",
    "Connection",
    "ConnectTimeout",
    "ConnectionPool",
    "HttpError",
    "ProtocolError",
    "Proxy",
    "ReadTimeout",
    "Reply",
    "TlsFailed",
    "framed",
    "redact_url",
]

_CHUNK = 65536
_NEWEST_WEIGHT = 0.2  # of the newest reply time in the running average
_USER_INFO = re.compile(r"//[^\s]*@")


def redact_url(url: str) -> str:
    """``url`` with any user-info (``user:password@``) replaced by ``***@``; safe on text that does not parse
    (everything from ``//`` to the last ``@`` before a blank goes)."""
    return _USER_INFO.sub("//***@", url)


class ConnectFailed(HttpError):
    """No connection could be made: the request was not sent."""


class ConnectTimeout(ConnectFailed):
    """Connecting timed out: the request was not sent."""


class TlsFailed(ConnectFailed):
    """The TLS handshake failed (certificate, host name, protocol): the request was not sent."""


class ReadTimeout(HttpError):
    """Sending or waiting for the reply timed out: the request may have been applied."""


@dataclass(frozen=True)
class Proxy:
    """An http proxy: where to connect, and the headers it wants (``Proxy-Authorization``, never shown)."""

    host: str
    port: int
    headers: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_url(cls, url: str | None, variable: str, headers: dict[str, str] | None = None) -> Proxy | None:
        """The proxy of ``url`` (None: direct) with the headers botocore derived for it (its user and password
        as ``Proxy-Authorization``); ``variable`` names where the URL came from, for the error."""
        if not url:
            return None
        try:
            parts = urlsplit(url)
            host, port = parts.hostname or "", parts.port or 80
        except ValueError as exc:  # a bad port, an unclosed IPv6 bracket...
            raise ConfigError(
                f"proxy {redact_url(url)!r} ({variable}) is not a valid URL ({redact_url(str(exc))}); "
                f"use http://host:port, or list the endpoint in NO_PROXY"
            ) from None
        if parts.scheme != "http" or not host or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigError(
                f"proxy {redact_url(url)!r} ({variable}) is not an http:// proxy URL; the DynamoDB client "
                f"tunnels TLS through a plain http proxy only: use http://host:port, or list the endpoint in NO_PROXY"
            )
        return cls(host, port, dict(headers or {}))


_POLL_EVENTS = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP | select.POLLNVAL


def framed(head: bytes, body: bytes) -> bytes:
    """A whole request: ``head`` (request line and headers, without Content-Length or the blank line), the
    ``Content-Length`` of ``body``, the blank line, ``body``."""
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


class Connection:
    """One socket to the host (or through the proxy to it)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._poller: select.poll | None = None  # made at the first idle check, then kept

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def dropped(self) -> bool:
        """True when the server closed this idle connection (or sent something unasked)."""
        try:
            if self._poller is None:
                self._poller = select.poll()
                self._poller.register(self.sock, _POLL_EVENTS)
            return bool(self._poller.poll(0))
        except (OSError, ValueError):
            return True

    def exchange(self, request: bytes, *, body: bool = True) -> tuple[Reply, bytes]:
        """Send one request, read its reply: (reply, any bytes that came beyond it)."""
        self.sock.sendall(request)
        reader = ReplyReader(body=body)
        while True:
            reader.feed(self.sock.recv(_CHUNK))
            reply = reader.next_reply()
            if isinstance(reply, Reply):
                return reply, reader.extra


class ConnectionPool:
    """Kept-alive connections to one host (see the module docstring)."""

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int,
        *,
        timeout_s: float,
        maxsize: int = 16,
        ca_file: str | None = None,
        proxy: Proxy | None = None,
    ) -> None:
        self.host, self.port, self.timeout_s, self.maxsize = host, port, timeout_s, maxsize
        self.proxy = proxy
        # through an http proxy, plain http goes in absolute form, one connection per request
        self.absolute_form = proxy is not None and scheme == "http"
        self.keep_alive = not self.absolute_form
        self.head_lines = (
            "".join(f"{k}: {v}\r\n" for k, v in proxy.headers.items()) + "Connection: close\r\n"
            if proxy is not None and self.absolute_form
            else ""
        )
        self._tls: ssl.SSLContext | None = None
        if scheme == "https":
            self._tls = ssl.create_default_context(cafile=ca_file)
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        self.num_connections = 0
        self.reply_seconds = 0.0  # a running average of the time replies took (``http_pipeline``'s rounds)

    def _open(self) -> Connection:
        peer = (self.proxy.host, self.proxy.port) if self.proxy else (self.host, self.port)
        via = f" through the proxy {peer[0]}:{peer[1]}" if self.proxy else ""
        try:
            sock = socket.create_connection(peer, timeout=self.timeout_s)
        except socket.timeout as exc:
            raise ConnectTimeout(f"connecting to {peer[0]}:{peer[1]} timed out after {self.timeout_s} s{via}") from exc
        except OSError as exc:
            raise ConnectFailed(
                f"cannot connect to {peer[0]}:{peer[1]}{' (proxy)' if self.proxy else ''}: {exc}"
            ) from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if self.proxy is not None and self._tls is not None:
                self._tunnel(sock, self.proxy)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        except ssl.SSLError as exc:
            sock.close()
            raise TlsFailed(f"TLS with {self.host}:{self.port} failed: {exc}") from exc
        except socket.timeout as exc:
            sock.close()
            raise ConnectTimeout(f"TLS handshake with {self.host}:{self.port} timed out") from exc
        except ConnectFailed:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            raise ConnectFailed(f"connection to {self.host}:{self.port}{via} failed: {exc}") from exc
        with self._lock:
            self.num_connections += 1
        return Connection(sock)

    def request_target(self, host_header: str, path: str) -> str:
        """What the request line names: the path, or the absolute URL when a proxy forwards plain http."""
        return f"http://{host_header}{path}" if self.absolute_form else path

    def _tunnel(self, sock: socket.socket, proxy: Proxy) -> None:
        """``CONNECT host:port`` through the proxy; ConnectFailed unless it answers 2xx."""
        authority = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        lines = "".join(f"{name}: {value}\r\n" for name, value in proxy.headers.items())
        request = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{lines}\r\n".encode("latin-1")
        try:
            reply, extra = Connection(sock).exchange(request, body=False)
        except ProtocolError as exc:
            raise ConnectFailed(f"proxy {proxy.host}:{proxy.port} gave no CONNECT reply: {exc}") from exc
        if not 200 <= reply.status < 300 or extra:
            raise ConnectFailed(f"proxy {proxy.host}:{proxy.port} refused CONNECT {authority}: HTTP {reply.status}")

    def take(self) -> Connection:
        """An idle connection still open, else a new one (``ConnectFailed``, ``ConnectTimeout``, ``TlsFailed``)."""
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                return self._open()
            if not connection.dropped():
                return connection
            connection.close()

    def request(self, head: bytes, body: bytes) -> Reply:
        """One request (``head``: request line and headers, without Content-Length or the blank line)."""
        connection = self.take()
        reusable = False
        try:
            reply, extra = connection.exchange(framed(head, body))
            reusable = reply.keep_alive and not extra
        except socket.timeout as exc:
            raise ReadTimeout(f"no reply from {self.host}:{self.port} within {self.timeout_s} s") from exc
        except HttpError:
            raise
        except Exception as exc:  # reset, broken pipe, TLS error mid-stream, or anything not anticipated
            raise ProtocolError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            self.give_back(connection, reusable)
        return reply

    def give_back(self, connection: Connection, reusable: bool) -> None:
        """Keep ``connection`` for the next request when its reply allowed it (``reusable``) and the pool keeps
        connections, else close it."""
        keep = False
        if reusable and self.keep_alive:
            with self._lock:
                keep = len(self._idle) < self.maxsize
                if keep:
                    self._idle.append(connection)
        if not keep:
            connection.close()

    def note_reply_time(self, seconds: float) -> None:
        """Fold one reply's time into the running average (a racy update is harmless: it is a hint)."""
        self.reply_seconds += (seconds - self.reply_seconds) * _NEWEST_WEIGHT

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
