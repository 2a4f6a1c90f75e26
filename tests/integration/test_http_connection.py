"""The socket pool (processor/shard/http_connection.py) against a scripted loopback server that answers each
request with given bytes (what moto never produces: chunked bodies, interim 1xx, Connection: close, idle
connections closed by the server), and against a TLS server with a self-signed certificate made here. The framing
itself, byte by byte and on garbage, is tested without sockets in tests/unit/test_http_framing.py."""

from __future__ import annotations

import resource
import socket
import ssl
import time
from pathlib import Path
from typing import Iterator

import pytest

from processor.shard.http_connection import ConnectionPool, ProtocolError, ReadTimeout, TlsFailed
from workshop.testing.http_requests import LoopbackServer, read_request
from workshop.testing.tls import self_signed

HEAD = b"POST / HTTP/1.1\r\nHost: test\r\n"


class Scripted(LoopbackServer):
    """Answers the n-th request (over all connections) with ``replies[n]`` (bytes), or closes the connection when
    that is ``None``. ``close_after`` closes a connection after that many replies."""

    def __init__(self, replies: list[bytes | None], close_after: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self.replies, self.close_after = replies, close_after
        self.requests: list[bytes] = []
        super().__init__(tls)

    def serve(self, sock: socket.socket) -> None:
        served, buffer = 0, b""
        while (request := read_request(sock, buffer)) is not None:
            head, body, buffer = request
            self.requests.append(head + b"\r\n\r\n" + body)
            reply = self.replies[len(self.requests) - 1]
            if reply is None:
                return
            sock.sendall(reply)
            served += 1
            if self.close_after and served >= self.close_after:
                return

    def wait_closed(self, n: int, timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.closed < n:
            assert time.monotonic() < deadline, f"the server closed {self.closed} connections, not {n}"
            time.sleep(0.01)

    def pool(
        self, scheme: str = "http", host: str = "127.0.0.1", timeout_s: float = 2.0, ca_file: str | None = None
    ) -> ConnectionPool:
        return ConnectionPool(scheme, host, self.port, timeout_s=timeout_s, ca_file=ca_file)

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def scripted() -> Iterator[list[Scripted]]:
    made: list[Scripted] = []
    yield made
    for server in made:
        server.close()


def ok(body: bytes, *extra: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\n" + b"".join(h + b"\r\n" for h in extra) + b"Content-Length: %d\r\n\r\n" % len(body) + body
    )


def test_a_kept_alive_connection_carries_many_requests_with_content_length_added(scripted: list[Scripted]) -> None:
    server = Scripted([ok(b'{"n":%d}' % i, b"X-Amzn-RequestId: r") for i in range(3)])
    scripted.append(server)
    pool = server.pool()
    replies = [pool.request(HEAD, b'{"i":%d}' % i) for i in range(3)]
    assert [r.data for r in replies] == [b'{"n":0}', b'{"n":1}', b'{"n":2}']
    assert replies[0].status == 200 and replies[0].headers["x-amzn-requestid"] == "r"
    assert server.connections == 1 and pool.num_connections == 1
    assert server.requests[1].endswith(b'Content-Length: 7\r\n\r\n{"i":1}')


def test_a_chunked_reply_after_an_interim_100_is_read_whole(scripted: list[Scripted]) -> None:
    chunked = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;ext=1\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\nTrailer: x\r\n\r\n"
    )
    server = Scripted([chunked, ok(b"{}")])
    scripted.append(server)
    pool = server.pool()
    reply = pool.request(HEAD, b"{}")
    assert (reply.status, reply.data) == (400, b'{"a":1}')
    assert pool.request(HEAD, b"{}").data == b"{}"  # the framing left nothing behind on the connection
    assert server.connections == 1


def test_connection_close_and_a_reply_framed_by_the_close_are_never_reused(scripted: list[Scripted]) -> None:
    server = Scripted(
        [ok(b"{}", b"Connection: close"), b"HTTP/1.1 200 OK\r\n\r\n{\"to\":\"close\"}", ok(b"{}")], close_after=1
    )
    scripted.append(server)
    pool = server.pool()
    assert pool.request(HEAD, b"{}").data == b"{}"
    assert pool.request(HEAD, b"{}").data == b'{"to":"close"}'
    assert pool.request(HEAD, b"{}").data == b"{}"
    assert pool.num_connections == 3


def test_an_idle_connection_the_server_closed_is_replaced_without_a_failed_request(scripted: list[Scripted]) -> None:
    server = Scripted([ok(b"{}"), ok(b"{}")], close_after=1)  # the server closes each connection after a reply
    scripted.append(server)
    pool = server.pool()
    assert pool.request(HEAD, b"{}").status == 200
    server.wait_closed(1)
    assert pool.request(HEAD, b"{}").status == 200
    assert pool.num_connections == 2


def test_a_connection_dropped_mid_request_or_a_silent_server_raise_and_are_not_reused(scripted: list[Scripted]) -> None:
    server = Scripted([None, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", ok(b"{}")], close_after=1)
    scripted.append(server)
    pool = server.pool(timeout_s=0.5)
    with pytest.raises(ProtocolError, match="closed before the reply"):
        pool.request(HEAD, b"{}")
    with pytest.raises(ProtocolError, match="8 bytes before the end"):
        pool.request(HEAD, b"{}")
    assert pool.request(HEAD, b"{}").status == 200
    silent = Scripted([b""])  # reads the request, answers nothing, keeps the connection open
    scripted.append(silent)
    with pytest.raises(ReadTimeout):
        silent.pool(timeout_s=0.3).request(HEAD, b"{}")


def test_a_connection_that_sent_more_than_the_reply_is_not_reused(scripted: list[Scripted]) -> None:
    server = Scripted([ok(b"{}") + b"HTTP/1.1 200 OK\r\n", ok(b"{}")])
    scripted.append(server)
    pool = server.pool()
    assert pool.request(HEAD, b"{}").data == b"{}"
    assert pool.request(HEAD, b"{}").data == b"{}"
    assert pool.num_connections == 2


def test_a_reply_that_is_not_http_is_a_protocol_error_from_the_pool(scripted: list[Scripted]) -> None:
    """(every malformed framing, byte by byte and on garbage: tests/unit/test_http_framing.py)"""
    server = Scripted([b"SSH-2.0-OpenSSH\r\n\r\n"])
    scripted.append(server)
    with pytest.raises(ProtocolError, match="not an HTTP reply"):
        server.pool().request(HEAD, b"{}")


def test_idle_connections_are_checked_with_poll_past_descriptor_1024(scripted: list[Scripted]) -> None:
    """select() cannot watch a descriptor past 1023 (ValueError, and every idle connection looked dropped)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(2048, hard), hard))
    filler = [open("/dev/null", "rb") for _ in range(1100)]  # noqa: SIM115 - held open on purpose
    try:
        assert filler[-1].fileno() > 1024
        server = Scripted([ok(b"{}"), ok(b"{}"), ok(b"{}"), ok(b"{}")], close_after=3)
        scripted.append(server)
        pool = server.pool()
        assert [pool.request(HEAD, b"{}").status for _ in range(3)] == [200, 200, 200]
        assert pool.num_connections == 1  # the idle connection (descriptor > 1024) was checked and reused
        server.wait_closed(1)
        assert pool.request(HEAD, b"{}").status == 200  # ... and seen closed by the server, then replaced
        assert pool.num_connections == 2
    finally:
        for f in filler:
            f.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_tls_verifies_the_certificate_and_the_host_name(scripted: list[Scripted], tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = Scripted([ok(b'{"tls":1}'), ok(b"{}")], tls=context)
    scripted.append(server)
    assert server.pool("https", "localhost", ca_file=str(cert)).request(HEAD, b"{}").data == b'{"tls":1}'
    with pytest.raises(TlsFailed):  # not signed by anything in the system store
        server.pool("https", "localhost").request(HEAD, b"{}")
    with pytest.raises(TlsFailed, match="match"):  # the certificate names localhost, not 127.0.0.1
        server.pool("https", "127.0.0.1", ca_file=str(cert)).request(HEAD, b"{}")
