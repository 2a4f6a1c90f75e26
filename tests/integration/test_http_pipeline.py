"""Many requests on one thread (processor/shard/http_pipeline.py) against a loopback echo server made here: each
request's reply carries its own body back, so every outcome can be matched to its request whatever order the
replies come in. Bodies steer the server: ``drop`` closes the connection without a reply, ``silent`` never
answers, ``slow`` answers after a pause. Over plain TCP and over TLS (a self-signed certificate made here)."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from processor.shard.http_connection import ConnectionPool, ProtocolError, ReadTimeout
from processor.shard.http_framing import HttpError, Reply
from processor.shard.http_pipeline import pipeline
from workshop.testing.http_requests import LoopbackServer, read_request
from workshop.testing.tls import self_signed

HEAD = b"POST / HTTP/1.1\r\nHost: test\r\n"


class Echo(LoopbackServer):
    """Answers each request with its body; counts the most requests in flight at once."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.in_flight = 0
        self.most_in_flight = 0
        self._count = threading.Lock()
        super().__init__(tls)

    def serve(self, sock: socket.socket) -> None:
        buffer = b""
        while (request := read_request(sock, buffer)) is not None:
            _, body, buffer = request
            with self._count:
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
            if body == b"drop":
                return
            if body == b"silent":
                time.sleep(30)
                return
            if body == b"slow":
                time.sleep(0.2)
            with self._count:
                self.in_flight -= 1
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
            sock.sendall(body)  # head and body in two segments, as waitress sends them


@pytest.fixture
def servers() -> Iterator[list[Echo]]:
    made: list[Echo] = []
    yield made
    for server in made:
        server.server.close()


def run(pool: ConnectionPool, bodies: list[bytes], width: int) -> dict[int, Reply | HttpError]:
    requests = iter(enumerate(bodies))
    outcomes: dict[int, Reply | HttpError] = {}

    def next_request() -> tuple[int, bytes, bytes] | None:
        got = next(requests, None)
        if got is None:
            return None
        n, body = got
        return n, HEAD, body

    def on_reply(token: object, outcome: Reply | HttpError) -> None:
        assert isinstance(token, int) and token not in outcomes
        outcomes[token] = outcome

    pipeline(pool, next_request, on_reply, width)
    return outcomes


def test_every_request_gets_its_own_reply_with_at_most_width_in_flight(servers: list[Echo]) -> None:
    servers.append(echo := Echo())
    pool = ConnectionPool("http", "127.0.0.1", echo.port, timeout_s=5, maxsize=4)
    bodies = [b"request %d" % n + (b"x" * n * 97) for n in range(60)]
    bodies[7] = bodies[23] = b"slow"  # replies come out of order
    outcomes = run(pool, bodies, width=4)
    assert sorted(outcomes) == list(range(60))
    for n, body in enumerate(bodies):
        reply = outcomes[n]
        assert isinstance(reply, Reply) and reply.status == 200 and reply.data == body
    assert echo.most_in_flight <= 4 and echo.connections <= 4  # kept alive and reused
    assert pool.reply_seconds > 0  # the rounds have a reply time to go by


def test_a_dropped_connection_and_a_silent_server_fail_only_their_own_requests(servers: list[Echo]) -> None:
    servers.append(echo := Echo())
    pool = ConnectionPool("http", "127.0.0.1", echo.port, timeout_s=0.5, maxsize=3)
    bodies = [b"a", b"drop", b"b", b"silent", b"c", b"d"]
    outcomes = run(pool, bodies, width=3)
    assert isinstance(outcomes[1], ProtocolError)
    assert isinstance(outcomes[3], ReadTimeout)
    for n in (0, 2, 4, 5):
        reply = outcomes[n]
        assert isinstance(reply, Reply) and reply.data == bodies[n]
    assert echo.connections <= 3 + 1  # kept alive: at most the dropped one needed replacing


def test_a_callback_that_raises_goes_up_and_closes_the_connections_in_flight(servers: list[Echo]) -> None:
    servers.append(echo := Echo())
    pool = ConnectionPool("http", "127.0.0.1", echo.port, timeout_s=5, maxsize=4)
    bodies = iter([b"first", b"slow", b"slow", b"slow"])

    def next_request() -> tuple[int, bytes, bytes] | None:
        body = next(bodies, None)
        return None if body is None else (0, HEAD, body)

    def on_reply(token: object, outcome: Reply | HttpError) -> None:
        raise RuntimeError("a bug in the caller")

    with pytest.raises(RuntimeError, match="a bug"):
        pipeline(pool, next_request, on_reply, 4)
    deadline = time.monotonic() + 5
    while echo.closed < 3:  # the three slow requests' connections: closed by us, not kept
        assert time.monotonic() < deadline, f"the server saw {echo.closed} connections closed, not 3"
        time.sleep(0.01)


def test_over_tls_replies_spanning_several_records_each_match_their_request(
    servers: list[Echo], tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    servers.append(echo := Echo(tls=server_tls))
    pool = ConnectionPool("https", "localhost", echo.port, timeout_s=5, maxsize=3, ca_file=str(cert))
    bodies = [b"tls %d " % n + b"y" * (n * 1501) for n in range(24)]  # some replies span TLS records
    outcomes = run(pool, bodies, width=3)
    for n, body in enumerate(bodies):
        reply = outcomes[n]
        assert isinstance(reply, Reply) and reply.data == body
    assert echo.connections <= 3
