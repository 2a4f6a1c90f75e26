"""HTTP/1.1 reply framing without I/O: bytes go in, a whole reply (or "need more", or a protocol error) comes out.

Why its own module: framing is where an HTTP client goes wrong on odd input (a reply split anywhere, a chunk size
in hex, a connection closed early), and a reader that never touches a socket can be tested whole, byte by byte
and on garbage, in the unit layer. The socket pool (``shard/http_connection.py``) feeds it what ``recv`` returns.

Rules:
- :class:`ReplyReader` reads one reply: a status line ``HTTP/1.x NNN``, header lines ``name: value`` (names
  lower-cased, values stripped; a repeated name keeps its last value), then a body framed by
  ``Transfer-Encoding: chunked`` (sizes in hex, extensions and trailers skipped), by ``Content-Length`` (plain
  ASCII digits), or (neither) by the end of the stream; 204 and 304 have no body. Interim 1xx replies (not 101)
  are skipped. A reader made with ``body=False`` stops after the head (a ``CONNECT`` reply).
- :meth:`ReplyReader.feed` takes bytes; ``b""`` means the peer closed the stream. :meth:`ReplyReader.next_reply`
  returns the reply once it is complete, else :data:`NEED_DATA`. The result depends only on the bytes, never on
  how they were split.
- Anything that is not such a reply is :class:`ProtocolError` and nothing else, whatever the bytes: a head over
  ``MAX_HEAD`` bytes, a bad status line, header line, ``Content-Length`` or chunk size, a chunk not followed by
  CRLF, the stream ending before the reply does. After a protocol error the reader is spent.
- ``Reply.keep_alive`` says whether the connection may carry another request: not after ``Connection: close``, an
  HTTP/1.0 reply without ``keep-alive``, or a body framed by the close; bytes beyond the reply are left in
  ``extra`` (the pool closes such a connection: the server sent something unasked).
- :func:`decoded` undoes a ``Content-Encoding`` of gzip or deflate (a server may send one although we asked for
  identity); any other encoding, or a broken one, is a ``ProtocolError``.
"""

from __future__ import annotations

import zlib
from enum import Enum
from typing import NamedTuple

MAX_HEAD = 64 * 1024


class HttpError(OSError):
    """No usable reply (the base of the HTTP layer's errors)."""


class ProtocolError(HttpError):
    """The connection broke or the reply was not HTTP: the request may have been applied."""


class _Need(Enum):
    NEED_DATA = "need data"


NEED_DATA = _Need.NEED_DATA


class Reply(NamedTuple):
    """One reply: the status, the headers (lower-cased names), the body as it came on the wire (not decoded). A
    named tuple: the cheapest immutable record to build, once per request."""

    status: int
    headers: dict[str, str]
    data: bytes
    keep_alive: bool = True


# the reader's states (plain ints: compared on every reply, and an Enum member lookup costs more)
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _TRAILERS, _TO_CLOSE, _DONE = range(7)


def _is_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


_HEX = frozenset(b"0123456789abcdefABCDEF")


class ReplyReader:
    """Reads one HTTP/1.1 reply from bytes fed to it (see the module docstring)."""

    __slots__ = (
        "_body",
        "_buffer",
        "_closed",
        "_state",
        "_scanned",
        "_status",
        "_headers",
        "_keep_alive",
        "_remaining",
        "_parts",
        "_reply",
    )

    def __init__(self, *, body: bool = True) -> None:
        self._body = body
        self._buffer = b""
        self._closed = False
        self._state = _HEAD
        self._scanned = 0  # how far the buffer was searched for the end of the head
        self._status = 0
        self._headers: dict[str, str] = {}
        self._keep_alive = True
        self._remaining = 0
        self._parts: list[bytes] = []  # a chunked body's chunks
        self._reply: Reply | None = None

    def feed(self, data: bytes) -> None:
        """Bytes read from the stream; ``b""`` when the peer closed it."""
        if data:
            self._buffer += data
        else:
            self._closed = True

    @property
    def extra(self) -> bytes:
        """Bytes received beyond the reply (none on a healthy connection)."""
        return self._buffer

    def next_reply(self) -> Reply | _Need:
        """The reply once complete, else ``NEED_DATA``; ``ProtocolError`` if the bytes are not a reply."""
        try:
            return self._advance()
        except ProtocolError:
            self._state, self._buffer = _DONE, b""
            raise
        except Exception as exc:  # never anything but the protocol error, whatever the bytes
            self._state, self._buffer = _DONE, b""
            raise ProtocolError(f"unreadable reply: {type(exc).__name__}: {exc}") from exc

    # -- the state machine ------------------------------------------------------------------------------------

    def _advance(self) -> Reply | _Need:
        while True:
            state = self._state
            if state == _HEAD:
                if not self._read_head():
                    return self._need()
            elif state == _LENGTH:
                if len(self._buffer) < self._remaining:
                    return self._need(f"{self._remaining - len(self._buffer)} bytes before the end of the body")
                self._finish(self._buffer[: self._remaining])
                self._buffer = self._buffer[self._remaining :]
            elif state == _DONE:
                if self._reply is None:
                    raise ProtocolError("the reader is spent")
                return self._reply
            elif state == _CHUNK_SIZE:
                line = self._line()
                if line is None:
                    return self._need()
                digits = line.split(b";", 1)[0].strip()
                if not digits or not _HEX.issuperset(digits):
                    raise ProtocolError(f"bad chunk size {line[:40]!r}")
                self._remaining = int(digits, 16)
                self._state = _CHUNK_DATA if self._remaining else _TRAILERS
            elif state == _CHUNK_DATA:
                if len(self._buffer) < self._remaining + 2:
                    return self._need()
                if self._buffer[self._remaining : self._remaining + 2] != b"\r\n":
                    raise ProtocolError("chunk not followed by CRLF")
                self._parts.append(self._buffer[: self._remaining])
                self._buffer = self._buffer[self._remaining + 2 :]
                self._state = _CHUNK_SIZE
            elif state == _TRAILERS:
                line = self._line()
                if line is None:
                    return self._need()
                if not line:  # the empty line after the trailers
                    self._finish(b"".join(self._parts))
            else:  # TO_CLOSE
                if not self._closed:
                    return NEED_DATA
                self._keep_alive = False
                self._finish(self._buffer)
                self._buffer = b""

    def _need(self, what: str = "") -> _Need:
        if self._closed:
            missing = f" ({what})" if what else ""
            raise ProtocolError(f"connection closed before the reply was complete{missing}")
        return NEED_DATA

    def _line(self) -> bytes | None:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD:
                raise ProtocolError(f"chunk line longer than {MAX_HEAD} bytes")
            return None
        line, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
        return line

    def _read_head(self) -> bool:
        scanned = self._scanned
        end = self._buffer.find(b"\r\n\r\n", scanned - 3 if scanned > 3 else 0)
        if end < 0:
            self._scanned = len(self._buffer)
            if len(self._buffer) > MAX_HEAD:
                raise ProtocolError(f"reply head longer than {MAX_HEAD} bytes")
            return False
        if end > MAX_HEAD:
            raise ProtocolError(f"reply head longer than {MAX_HEAD} bytes")
        head, self._buffer = self._buffer[:end].decode("latin-1"), self._buffer[end + 4 :]
        self._scanned = 0
        status_line, _, fields = head.partition("\r\n")
        parts = status_line.split(" ", 2)
        if (
            len(parts) < 2
            or parts[0] not in ("HTTP/1.0", "HTTP/1.1")
            or len(parts[1]) != 3
            or not (parts[1].isascii() and parts[1].isdigit())
        ):
            raise ProtocolError(f"not an HTTP reply: {status_line[:80]!r}")
        headers: dict[str, str] = {}
        for line in fields.split("\r\n") if fields else ():
            name, sep, value = line.partition(":")
            if not sep:
                raise ProtocolError(f"bad header line {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        status = int(parts[1])
        if status < 200 and status != 101:
            return True  # an interim reply: the real one follows
        connection = headers.get("connection", "").lower()
        self._status, self._headers = status, headers
        self._keep_alive = "close" not in connection and (parts[0] != "HTTP/1.0" or "keep-alive" in connection)
        if not self._body:
            self._finish(b"")
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._state = _CHUNK_SIZE
        elif "content-length" in headers:
            if not _is_digits(headers["content-length"]):
                raise ProtocolError(f"bad Content-Length {headers['content-length'][:40]!r}")
            self._remaining, self._state = int(headers["content-length"]), _LENGTH
        elif status in (204, 304):
            self._finish(b"")
        else:
            self._state = _TO_CLOSE
        return True

    def _finish(self, data: bytes) -> None:
        self._state = _DONE
        self._reply = Reply(self._status, self._headers, data, self._keep_alive)


def decoded(reply: Reply) -> bytes:
    """The body with its ``Content-Encoding`` (gzip, deflate) undone; ``ProtocolError`` for any other or a broken
    one."""
    encoding = reply.headers.get("content-encoding", "identity").lower()
    if encoding == "identity":
        return reply.data
    if encoding not in ("gzip", "deflate"):
        raise ProtocolError(f"reply in an encoding we did not ask for: {encoding[:40]!r}")
    try:
        return zlib.decompress(reply.data, 47 if encoding == "gzip" else 15)
    except zlib.error as exc:
        raise ProtocolError(f"reply's {encoding} encoding is broken: {exc}") from exc
