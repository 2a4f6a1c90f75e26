"""Loopback HTTP/1.1 servers for the tests and the client benchmark: the one accept loop and the one request
reader that the scripted, echo and canned servers share.

Rules: a request is a head ending in a blank line and a body of ``Content-Length`` bytes (what the thin client
sends: never chunked); bytes beyond it stay for the next request on the same connection.
"""

from __future__ import annotations

import socket
import ssl
import threading


def read_request(sock: socket.socket, buffer: bytes) -> tuple[bytes, bytes, bytes] | None:
    """The next request on ``sock``: (head without the blank line, body, the bytes that came beyond it), reading
    more after what ``buffer`` already holds; None when the peer closed the connection before a whole head."""
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            return None
        buffer += data
    head, _, buffer = buffer.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(buffer) < length:
        data = sock.recv(65536)
        if not data:
            return None
        buffer += data
    return head, buffer[:length], buffer[length:]


class LoopbackServer:
    """Accepts connections on 127.0.0.1 (TLS with ``tls``), each served on its own thread by :meth:`serve`;
    counts the connections opened and closed. A subclass sets its own attributes before calling ``__init__``
    (the accepting thread starts there)."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.connections = 0
        self.closed = 0
        self._lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def serve(self, sock: socket.socket) -> None:
        """Answer one connection's requests (``read_request`` reads them); return to close it."""
        raise NotImplementedError

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.server.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._connection, args=(sock,), daemon=True).start()

    def _connection(self, sock: socket.socket) -> None:
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
            self.serve(sock)
        except (OSError, ssl.SSLError):
            return
        finally:
            sock.close()
            with self._lock:
                self.closed += 1
