"""The sans-I/O reply reader (processor/shard/http_framing.py), whole, byte by byte and on garbage: every framing
a server may use (Content-Length, chunked with extensions and trailers, the close, interim 1xx, 204), the result
independent of how the bytes were split (property-based), and arbitrary bytes ending in a reply, "need more" or
ProtocolError, never anything else. No socket is opened."""

from __future__ import annotations

import gzip
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.shard.http_framing import MAX_HEAD, NEED_DATA, ProtocolError, Reply, ReplyReader, decoded


def read(*pieces: bytes, eof: bool = False, body: bool = True) -> Reply:
    """The reply the reader makes of these pieces, fed one after the other (then the close, if ``eof``)."""
    reader = ReplyReader(body=body)
    got: object = NEED_DATA
    for piece in [*pieces, *([b""] if eof else [])]:
        reader.feed(piece)
        got = reader.next_reply()
    assert isinstance(got, Reply), f"no reply: {got!r}"
    return got


def ok(body: bytes, *extra: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(h + b"\r\n" for h in extra)
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


CHUNKED = (
    b"HTTP/1.1 100 Continue\r\n\r\n"
    b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\nX-Amzn-RequestId: r1\r\n\r\n"
    b'4;ext=1\r\n{"a"\r\n3\r\n:1}\r\n0\r\nTrailer: x\r\n\r\n'
)

VALID = [
    ok(b'{"n":1}', b"X-Amzn-RequestId: r", b"x-amz-crc32: 123"),
    ok(b""),
    CHUNKED,
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbusy",
    b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
]


def test_a_content_length_reply_is_read_with_lower_cased_header_names() -> None:
    reply = read(ok(b'{"n":1}', b"X-Amzn-RequestId: r", b"Content-Type:  application/x-amz-json-1.0 "))
    assert (reply.status, reply.data, reply.keep_alive) == (200, b'{"n":1}', True)
    assert reply.headers["x-amzn-requestid"] == "r" and reply.headers["content-type"] == "application/x-amz-json-1.0"


def test_a_chunked_reply_after_an_interim_100_is_read_whole_with_extensions_and_trailers_skipped() -> None:
    reply = read(CHUNKED)
    assert (reply.status, reply.data, reply.headers["x-amzn-requestid"]) == (400, b'{"a":1}', "r1")


def test_chunk_sizes_are_hexadecimal_whatever_their_digits() -> None:
    sixteen = b"0123456789abcdef"
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n" + sixteen + b"\r\n0\r\n\r\n"
    assert read(raw).data == sixteen


def test_a_reply_without_length_is_framed_by_the_close_and_ends_the_connection() -> None:
    reader = ReplyReader()
    reader.feed(b'HTTP/1.1 200 OK\r\n\r\n{"to":')
    assert reader.next_reply() is NEED_DATA
    reader.feed(b'"close"}')
    assert reader.next_reply() is NEED_DATA  # more may come until the server closes
    reader.feed(b"")
    reply = reader.next_reply()
    assert isinstance(reply, Reply) and reply.data == b'{"to":"close"}' and not reply.keep_alive


@pytest.mark.parametrize(
    ("raw", "keep_alive"),
    [
        (ok(b"{}", b"Connection: close"), False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}", False),
        (b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\n{}", True),
        (b"HTTP/1.1 204 No Content\r\n\r\n", True),
    ],
)
def test_whether_the_connection_may_carry_another_request_follows_the_reply(raw: bytes, keep_alive: bool) -> None:
    assert read(raw).keep_alive is keep_alive


def test_bytes_beyond_the_reply_are_left_over_for_the_pool_to_see() -> None:
    reader = ReplyReader()
    reader.feed(ok(b"{}") + b"HTTP/1.1 200 OK\r\n")
    assert isinstance(reader.next_reply(), Reply) and reader.extra == b"HTTP/1.1 200 OK\r\n"


def test_a_connect_reply_is_read_up_to_its_head_only() -> None:
    reply = read(b"HTTP/1.1 200 Connection established\r\nProxy-Agent: tinyproxy\r\n\r\n", body=False)
    assert (reply.status, reply.data) == (200, b"")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP reply"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n{}", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n{}", "Content-Length"),
        ("HTTP/1.1 200 OK\r\nContent-Length: \u0662\r\n\r\n{}".encode(), "Content-Length"),  # int() takes it
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1_0\r\n\r\n{}", "Content-Length"),
        ("HTTP/1.1 \u00b200 OK\r\nContent-Length: 2\r\n\r\n{}".encode("latin-1"), "not an HTTP reply"),
        (b"HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\n{}", "not an HTTP reply"),
        (b"HTTP/1.1 OK\r\n\r\n", "not an HTTP reply"),
        (b"HTTP/2 200\r\n\r\n", "not an HTTP reply"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "bad header line"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n{}\r\n0\r\n\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\n{}\r\n0\r\n\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n", "not followed by CRLF"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * MAX_HEAD, "longer than"),
    ],
)
def test_malformed_framing_is_a_protocol_error_naming_what_is_wrong(raw: bytes, message: str) -> None:
    """(before: ``Content-Length: -5`` read as a 200 ``{}``, and a bad status line raised ValueError)"""
    reader = ReplyReader()
    reader.feed(raw)
    with pytest.raises(ProtocolError, match=message):
        reader.next_reply()
    with pytest.raises(ProtocolError):  # and the reader is spent
        reader.next_reply()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "closed before the reply was complete"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "closed before the reply was complete"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", "8 bytes before the end of the body"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{}", "closed before the reply was complete"),
    ],
)
def test_the_stream_ending_before_the_reply_does_is_a_protocol_error(raw: bytes, message: str) -> None:
    reader = ReplyReader()
    if raw:
        reader.feed(raw)
        assert reader.next_reply() is NEED_DATA
    reader.feed(b"")
    with pytest.raises(ProtocolError, match=message):
        reader.next_reply()


def test_gzip_and_deflate_bodies_are_decoded_and_any_other_encoding_is_a_protocol_error() -> None:
    body = b'{"Table":{}}'
    assert decoded(read(ok(gzip.compress(body), b"Content-Encoding: gzip"))) == body
    assert decoded(read(ok(zlib.compress(body), b"Content-Encoding: deflate"))) == body
    assert decoded(read(ok(body))) == body
    with pytest.raises(ProtocolError, match="encoding we did not ask for"):
        decoded(read(ok(body, b"Content-Encoding: br")))
    with pytest.raises(ProtocolError, match="gzip encoding is broken"):
        decoded(read(ok(b"not gzip", b"Content-Encoding: gzip")))


def test_a_reply_fed_one_byte_at_a_time_is_the_reply_fed_whole() -> None:
    for raw in VALID:
        whole = read(raw, eof=True)
        reader = ReplyReader()
        got: object = NEED_DATA
        for k in range(len(raw)):
            assert got is NEED_DATA, f"a reply before its last byte: {raw!r}"
            reader.feed(raw[k : k + 1])
            got = reader.next_reply()
        if got is NEED_DATA:  # only a reply framed by the close waits for it
            reader.feed(b"")
            got = reader.next_reply()
        assert got == whole


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.sampled_from(VALID), cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_any_split_of_a_valid_reply_gives_the_same_reply(raw: bytes, cuts: list[int]) -> None:
    points = sorted({min(c, len(raw)) for c in cuts})
    pieces = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)]) if b > a]
    assert read(*pieces, eof=True) == read(raw, eof=True)


_PIECES = st.sampled_from(
    [
        b"HTTP/1.1 ",
        b"HTTP/1.0 ",
        b"200 OK\r\n",
        b"100 Continue\r\n\r\n",
        b"Content-Length: ",
        b"Transfer-Encoding: chunked\r\n",
        b"Connection: close\r\n",
        b"\r\n",
        b"\r\n\r\n",
        b"0\r\n",
        b"ff;x\r\n",
        b"12",
        b"{}",
        b":",
        b"\x00\xff",
    ]
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chunks=st.lists(st.one_of(st.binary(max_size=64), st.lists(_PIECES, max_size=8).map(b"".join)), max_size=10),
    eof=st.booleans(),
)
def test_arbitrary_bytes_end_in_a_reply_need_data_or_a_protocol_error_and_nothing_else(
    chunks: list[bytes], eof: bool
) -> None:
    reader = ReplyReader()
    for chunk in [*chunks, *([b""] if eof else [])]:
        reader.feed(chunk)
        try:
            got = reader.next_reply()
        except ProtocolError:
            return
        assert got is NEED_DATA or isinstance(got, Reply)
        if isinstance(got, Reply):
            assert isinstance(got.status, int) and 100 <= got.status <= 999 and isinstance(got.data, bytes)
            return
    if eof:
        pytest.fail("after the close the reader must end in a reply or a protocol error")
