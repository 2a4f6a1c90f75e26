"""A minimal HTTP/1.1 client connection and a pool of them: the transport under ``DynamoDBHttp``.

Why our own: on the writer's hot path a conditional ``PutItem`` is one small POST and one small JSON reply over a
kept-alive connection. urllib3 (and http.client under it) spend several times the CPU of the socket work on
generic request and header machinery (``./scripts/bench --profile-volume`` and docs/field-notes.md have the
figures); this module does only what a DynamoDB request needs.

Rules:
- A request is one ``sendall`` of the head and the body together (no Nagle / delayed-ACK stall, no
  ``Expect: 100-continue``). The caller's headers go as given; ``Content-Length`` is added here.
- A reply is read whole: status line, headers (names lower-cased), then a body framed by
  ``Transfer-Encoding: chunked``, by ``Content-Length``, or (neither) by the server closing the connection.
  Interim 1xx replies are skipped. Heads over ``MAX_HEAD`` bytes and malformed framing (a status line that is not
  ``HTTP/1.x NNN``, a ``Content-Length`` or chunk size that is not plain ASCII digits) are ``ProtocolError``; so
  is any other exception while reading a reply: whatever goes wrong here is never taken as the request's fault.
- A connection is kept for the next request unless the reply said ``Connection: close``, was HTTP/1.0 without
  ``keep-alive``, was framed by the close, or anything failed mid-way (then it is closed, never reused).
- Before an idle connection is reused it is polled (``poll``, not ``select``: descriptors past 1024 work): one the
  server closed (or that holds unread bytes) is dropped and another taken or opened, so a server's idle timeout
  never costs a failed request.
- Through a ``Proxy``: connections go to the proxy; for ``https`` each is a ``CONNECT host:port`` tunnel (TLS
  inside it, verified against the target's name, and kept alive like a direct connection); for ``http`` the
  caller writes the request line in absolute form and the pool keeps no connection (``keep_alive=False``: proxies
  such as tinyproxy close a client connection after each reply without saying so). A proxy that cannot be
  reached or refuses the tunnel is ``ConnectFailed`` (the request was not sent).
- Every socket operation has the pool's timeout: ``socket.timeout`` surfaces as ``ConnectTimeout`` (no request
  sent) or ``ReadTimeout`` (the request may have been applied). Failing to connect at all is
  ``ConnectFailed``; a TLS handshake failure is ``TlsFailed``; a reset or EOF mid-reply is ``ProtocolError``.
- TLS (``https``) verifies the server's certificate and host name against ``ca_file`` (else the system store).
- Thread-safe: connections are taken from and returned to a LIFO stack under a lock; at most ``maxsize`` idle
  connections are kept (more may be open while more threads are in requests).
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
from dataclasses import dataclass, field

MAX_HEAD = 64 * 1024
_CHUNK = 65536


class HttpError(OSError):
    """No usable reply (the base of this module's errors)."""


class ConnectFailed(HttpError):
    """No connection could be made: the request was not sent."""


class ConnectTimeout(ConnectFailed):
    """Connecting timed out: the request was not sent."""


class TlsFailed(ConnectFailed):
    """The TLS handshake failed (certificate, host name, protocol): the request was not sent."""


class ReadTimeout(HttpError):
    """Sending or waiting for the reply timed out: the request may have been applied."""


class ProtocolError(HttpError):
    """The connection broke or the reply was not HTTP: the request may have been applied."""


@dataclass(frozen=True)
class Proxy:
    """An http proxy: where to connect, and the headers it wants (``Proxy-Authorization``)."""

    host: str
    port: int
    headers: dict[str, str] = field(default_factory=dict)


_POLL_EVENTS = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP | select.POLLNVAL


def _is_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    headers: dict[str, str]  # names lower-cased
    data: bytes


class _Connection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def dropped(self) -> bool:
        """True when the server closed this idle connection (or sent something unasked)."""
        if self.buffer:
            return True
        try:
            poller = select.poll()
            poller.register(self.sock, _POLL_EVENTS)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True

    def _fill(self) -> bool:
        data = self.sock.recv(_CHUNK)
        self.buffer += data
        return bool(data)

    def _read_until(self, marker: bytes, limit: int) -> bytes:
        while True:
            end = self.buffer.find(marker)
            if end >= 0:
                line, self.buffer = self.buffer[:end], self.buffer[end + len(marker) :]
                return line
            if len(self.buffer) > limit:
                raise ProtocolError(f"reply head longer than {limit} bytes")
            if not self._fill():
                raise ProtocolError("connection closed before the reply was complete")

    def _read_exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            if not self._fill():
                raise ProtocolError(f"connection closed {n - len(self.buffer)} bytes before the end of the body")
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def _read_to_close(self) -> bytes:
        while self._fill():
            pass
        data, self.buffer = self.buffer, b""
        return data

    def _read_chunked(self) -> bytes:
        parts = []
        while True:
            size_line = self._read_until(b"\r\n", MAX_HEAD)
            digits = size_line.split(b";", 1)[0].strip()
            if not digits or digits.strip(b"0123456789abcdefABCDEF"):
                raise ProtocolError(f"bad chunk size {size_line[:40]!r}")
            size = int(digits, 16)
            if size == 0:
                while self._read_until(b"\r\n", MAX_HEAD):  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            parts.append(self._read_exactly(size))
            if self._read_exactly(2) != b"\r\n":
                raise ProtocolError("chunk not followed by CRLF")

    def read_head(self) -> tuple[str, int, dict[str, str]]:
        """One reply head: (HTTP version, status, headers with lower-cased names)."""
        status_line, _, fields = self._read_until(b"\r\n\r\n", MAX_HEAD).decode("latin-1").partition("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or parts[0] not in ("HTTP/1.0", "HTTP/1.1") or len(parts[1]) != 3 or not _is_digits(parts[1]):
            raise ProtocolError(f"not an HTTP reply: {status_line[:80]!r}")
        headers: dict[str, str] = {}
        for line in fields.split("\r\n") if fields else ():
            name, sep, value = line.partition(":")
            if not sep:
                raise ProtocolError(f"bad header line {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        return parts[0], int(parts[1]), headers

    def exchange(self, head: bytes, body: bytes) -> tuple[HttpReply, bool]:
        """Send one request, read its reply: (reply, whether the connection may be reused)."""
        self.sock.sendall(head + body)
        while True:
            version, status, headers = self.read_head()
            if status >= 200 or status == 101:
                break  # 1xx interim replies are skipped
        connection = headers.get("connection", "").lower()
        reusable = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            data = self._read_chunked()
        elif "content-length" in headers:
            if not _is_digits(headers["content-length"]):
                raise ProtocolError(f"bad Content-Length {headers['content-length']!r}")
            data = self._read_exactly(int(headers["content-length"]))
        elif status in (204, 304):
            data = b""
        else:
            data, reusable = self._read_to_close(), False
        return HttpReply(status, headers, data), reusable


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
        keep_alive: bool = True,
    ) -> None:
        self.host, self.port, self.timeout_s, self.maxsize = host, port, timeout_s, maxsize
        self.proxy, self.keep_alive = proxy, keep_alive
        self._tls: ssl.SSLContext | None = None
        if scheme == "https":
            self._tls = ssl.create_default_context(cafile=ca_file)
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self.num_connections = 0

    def _open(self) -> _Connection:
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
        return _Connection(sock)

    def _tunnel(self, sock: socket.socket, proxy: Proxy) -> None:
        """``CONNECT host:port`` through the proxy; ConnectFailed unless it answers 2xx."""
        authority = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        extra = "".join(f"{name}: {value}\r\n" for name, value in proxy.headers.items())
        sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{extra}\r\n".encode("latin-1"))
        raw = _Connection(sock)
        try:
            _, status, _ = raw.read_head()
        except ProtocolError as exc:
            raise ConnectFailed(f"proxy {proxy.host}:{proxy.port} gave no CONNECT reply: {exc}") from exc
        if not 200 <= status < 300 or raw.buffer:
            raise ConnectFailed(f"proxy {proxy.host}:{proxy.port} refused CONNECT {authority}: HTTP {status}")

    def _take(self) -> _Connection:
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                return self._open()
            if not connection.dropped():
                return connection
            connection.close()

    def request(self, head: bytes, body: bytes) -> HttpReply:
        """One request (``head``: request line and headers, without Content-Length or the blank line)."""
        connection = self._take()
        reusable = False
        try:
            reply, reusable = connection.exchange(head + b"Content-Length: %d\r\n\r\n" % len(body), body)
        except socket.timeout as exc:
            raise ReadTimeout(f"no reply from {self.host}:{self.port} within {self.timeout_s} s") from exc
        except HttpError:
            raise
        except Exception as exc:  # reset, broken pipe, TLS error mid-stream, or anything not anticipated
            raise ProtocolError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            if reusable and self.keep_alive:
                with self._lock:
                    keep = len(self._idle) < self.maxsize
                    if keep:
                        self._idle.append(connection)
                if not keep:
                    connection.close()
            else:
                connection.close()
        return reply

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
