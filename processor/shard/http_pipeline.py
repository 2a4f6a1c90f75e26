"""Many requests on one thread, over the pool's kept-alive connections at once, their replies gathered in rounds.

Why: on a virtual machine, what a put costs the processor is mostly waking up. A thread that blocks on one reply
and wakes for it pays for the idle vCPU's wake-up each time (docs/field-notes.md: measured here, the first
sign after a 9 ms sleep costs ~100 µs of CPU against ~9 µs warm), and a pool of threads each waiting on its own
reply wakes once per reply, or more (the reply's head and body in two segments, the GIL handed over). One thread
that sends up to ``width`` requests, sleeps a while, and then takes every reply that has come in wakes once for
many replies.

Rules:
- :func:`pipeline` pulls requests from ``next_request`` (``(token, head, body)`` as ``ConnectionPool.request``
  takes them, Content-Length added here; or None when there are no more)
  while fewer than ``width`` are in flight, and hands each outcome to ``on_reply(token, outcome)``: the
  :class:`~processor.shard.http_framing.Reply`, or the ``HttpError`` that ended the request (``ReadTimeout``
  past the pool's timeout, ``ProtocolError`` for a reset or a bad reply, ``ConnectFailed`` / ``ConnectTimeout``
  / ``TlsFailed`` when no connection could be had). It returns once nothing is left to send or to read.
- Rounds: after sending, the loop sleeps half the recent reply time (an average over the last replies, capped at
  ``MAX_ROUND_S``), then takes whatever is ready; when nothing is, it waits for the first reply. One wake-up
  serves about half the requests in flight, and a reply waits at most that long beyond its arrival (a quarter
  of the reply time on average): against a server that answers in 5 ms, 16 connections still carry ~2,500 puts
  a second, more than a shard brings even in a replay (Kinesis takes at most 1,000 records a second into a shard
  and gives a reader at most 2 MB a second); against a saturated server (moto) requests stay queued while the
  loop sleeps, and no throughput is lost. The first requests,
  with no reply time known yet, are not delayed.
- Connections come from and go back to the pool under its rules (``ConnectionPool.take`` / ``give_back``): one is
  kept only when its reply allows it and nothing came beyond the reply; a connection whose request failed is
  closed, never reused; so is every connection still in flight when a callback raises (a bug: the exception
  goes up to the caller, and whatever those requests did is not known).
- Sockets keep the pool's timeout: a send blocks at most that long (requests are small: the kernel takes them
  at once), a readable socket is read without waiting (TLS: a partial record is completed within the timeout,
  and decrypted bytes already buffered are read before waiting again).
- Single-threaded and pure of policy: it never retries, classifies or reorders; the caller decides what a reply
  means (``shard/writer.py`` stops sending at the first sign of trouble).
"""

from __future__ import annotations

import selectors
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Callable, Hashable

from processor.shard.http_connection import Connection, ConnectionPool, ReadTimeout, framed
from processor.shard.http_framing import HttpError, ProtocolError, Reply, ReplyReader

#: The longest a round sleeps before taking the replies that came in.
MAX_ROUND_S = 0.1
#: The share of the recent reply time a round sleeps.
ROUND_SHARE = 1 / 2
_CHUNK = 65536

Token = Hashable
Outcome = Reply | HttpError


@dataclass
class _InFlight:
    token: Token
    connection: Connection
    reader: ReplyReader
    sent_at: float
    deadline: float


def pipeline(
    pool: ConnectionPool,
    next_request: Callable[[], tuple[Token, bytes, bytes] | None],
    on_reply: Callable[[Token, Outcome], None],
    width: int,
) -> None:
    """Send what ``next_request`` gives, ``width`` at a time, and give every outcome to ``on_reply`` (module
    docstring)."""
    selector = selectors.DefaultSelector()
    flying: dict[int, _InFlight] = {}
    exhausted = False
    try:
        while True:
            while not exhausted and len(flying) < width:
                request = next_request()
                if request is None:
                    exhausted = True
                    break
                token, head, body = request
                started = _send(pool, token, framed(head, body), on_reply)
                if started is not None:
                    flying[started.connection.sock.fileno()] = started
                    selector.register(started.connection.sock, selectors.EVENT_READ)
            if not flying:
                return
            earliest = min(f.deadline for f in flying.values())
            _wait_for_round(pool, earliest)
            timeout = max(0.0, earliest - time.monotonic())
            for key, _ in selector.select(timeout):
                fileno = key.fd
                reading = flying[fileno]
                outcome = _read(reading)
                if outcome is None:
                    continue
                del flying[fileno]
                selector.unregister(reading.connection.sock)
                _settle(pool, reading, outcome)
                on_reply(reading.token, outcome)
            now = time.monotonic()
            for fileno, late in list(flying.items()):
                if late.deadline <= now:
                    del flying[fileno]
                    selector.unregister(late.connection.sock)
                    late.connection.close()
                    on_reply(
                        late.token, ReadTimeout(f"no reply from {pool.host}:{pool.port} within {pool.timeout_s} s")
                    )
    finally:
        for left in flying.values():
            left.connection.close()
        selector.close()


def _send(
    pool: ConnectionPool, token: Token, data: bytes, on_reply: Callable[[Token, Outcome], None]
) -> _InFlight | None:
    try:
        connection = pool.take()
    except HttpError as exc:  # no connection: the request was not sent
        on_reply(token, exc)
        return None
    try:
        connection.sock.sendall(data)
    except socket.timeout:
        connection.close()
        on_reply(token, ReadTimeout(f"sending to {pool.host}:{pool.port} timed out after {pool.timeout_s} s"))
        return None
    except Exception as exc:  # reset, broken pipe, TLS error: never the request's fault
        connection.close()
        on_reply(token, ProtocolError(f"{type(exc).__name__}: {exc}"))
        return None
    now = time.monotonic()
    return _InFlight(token, connection, ReplyReader(), now, now + pool.timeout_s)


def _wait_for_round(pool: ConnectionPool, earliest: float) -> None:
    """Sleep a share of the recent reply time (never past ``earliest``, the first deadline), so replies gather."""
    pause = min(MAX_ROUND_S, pool.reply_seconds * ROUND_SHARE)
    if pause <= 0:
        return
    time.sleep(max(0.0, min(pause, earliest - time.monotonic())))


def _read(reading: _InFlight) -> Outcome | None:
    """What a readable socket holds: the reply once complete, an error, or None (more to come)."""
    sock = reading.connection.sock
    try:
        while True:
            reading.reader.feed(sock.recv(_CHUNK))
            reply = reading.reader.next_reply()
            if isinstance(reply, Reply):
                return reply
            if not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                return None
    except socket.timeout:
        return ReadTimeout(f"reply cut short: nothing more within the timeout ({type(sock).__name__})")
    except HttpError as exc:
        return exc
    except Exception as exc:  # reset, TLS error mid-stream, or anything not anticipated
        return ProtocolError(f"{type(exc).__name__}: {exc}")


def _settle(pool: ConnectionPool, done: _InFlight, outcome: Outcome) -> None:
    """Give the connection back (or close it) and note the reply time."""
    if isinstance(outcome, Reply):
        pool.note_reply_time(time.monotonic() - done.sent_at)
        pool.give_back(done.connection, outcome.keep_alive and not done.reader.extra)
    else:
        done.connection.close()
