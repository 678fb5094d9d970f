"""Response desync: bytes past a response never become the next response.

A keep-alive connection may carry the next request only at a clean message
boundary (DESIGN §4 invariant 3): nothing of the server's buffered beyond
the end of the response, and framing that meant one thing (RFC 9112 §6.3:
a response with both Content-Length and Transfer-Encoding "ought to be
handled as an error"). Otherwise the connection is closed, and the Logger
says why. Each server below answers the first request on its first
connection with a response followed by bytes of its own; a second request
that were sent on that connection would read them as its answer
("INJECTED"), while a fresh connection answers "fresh".
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import Server, ServerConnection, serve_raw

import anysoup

LeakCheck = Callable[[anysoup.Session], Awaitable[None]]
BOUND = 5.0
INJECTED = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nINJECTED"
FRESH = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh"


def poisoner(first: bytes, *, later: bytes = b"") -> Callable[[ServerConnection], Awaitable[None]]:
    """First connection: ``first`` in one write (then ``later``), and INJECTED to any reuse."""

    async def handler(conn: ServerConnection) -> None:
        await conn.stream.receive_until(b"\r\n\r\n", 65536)
        if conn.index > 0:
            await conn.send_raw(FRESH)
            return
        await conn.send_raw(first)
        if later:
            await anyio.sleep(0.05)
            await conn.send_raw(later)
        # A client that (wrongly) reuses the connection sends its next request
        # here; answer it too, so the bug shows as a wrong body, not a hang.
        with anyio.move_on_after(BOUND):
            await conn.stream.receive_until(b"\r\n\r\n", 65536)
            await conn.send_raw(INJECTED)

    return handler


async def two_requests(
    session: anysoup.Session, server: Server, method: str = "GET"
) -> tuple[anysoup.Message, bytes, bytes]:
    first = anysoup.Message(method, server.url_for("/first"))
    with anyio.fail_after(BOUND):
        body = await session.send_and_read(first)
        second = await session.send_and_read(anysoup.Message("GET", server.url_for("/second")))
    return first, body, second


CASES = {
    "bytes after a Content-Length body": (
        "GET",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" + INJECTED,
        b"hello",
    ),
    "bytes after a chunked body": (
        "GET",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + INJECTED,
        b"hello",
    ),
    "a body to HEAD": (
        "HEAD",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" + INJECTED,
        b"",
    ),
    "bytes after a 204": ("GET", b"HTTP/1.1 204 No Content\r\n\r\n" + INJECTED, b""),
    "bytes after a 304": ("GET", b"HTTP/1.1 304 Not Modified\r\n\r\n" + INJECTED, b""),
    "Content-Length and Transfer-Encoding": (
        "GET",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n",
        b"hello",
    ),
    "a lone CRLF after the body": (
        "GET",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello\r\n",
        b"hello",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_bytes_past_the_response_close_the_connection(
    case: str, leak_check: LeakCheck
) -> None:
    method, first, expected = CASES[case]
    async with serve_raw(poisoner(first)) as server:
        async with anysoup.Session() as session:
            msg, body, second = await two_requests(session, server, method)
            assert (msg.status, body) == (int(first[9:12]), expected)
            assert second == b"fresh"
            assert server.connections == 2
        await leak_check(session)


async def test_bytes_arriving_after_the_response_close_the_connection(
    leak_check: LeakCheck,
) -> None:
    # Not in the same read: the pool's look at the idle socket finds them.
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    async with serve_raw(poisoner(first, later=INJECTED)) as server:
        async with anysoup.Session() as session:
            first_msg = anysoup.Message("GET", server.url_for("/first"))
            with anyio.fail_after(BOUND):
                assert await session.send_and_read(first_msg) == b"hello"
                await anyio.sleep(0.2)
                second = await session.send_and_read(
                    anysoup.Message("GET", server.url_for("/second"))
                )
            assert second == b"fresh"
        await leak_check(session)


def record_sized_response() -> bytes:
    """A response of exactly one full TLS record (16 KiB of plaintext)."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"
    size = 16384 - len(head % 16384)
    response = head % size + b"r" * size
    assert len(response) == 16384
    return response


@pytest.mark.parametrize(
    ("first", "second", "connections"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" + INJECTED, b"fresh", 2),
        # One write, two TLS records: the response fills the first, so the
        # injection arrives with it but is still encrypted when the response
        # is complete, where looking at the socket can't see it.
        (record_sized_response() + INJECTED, b"fresh", 2),
        # TLS 1.3 session tickets read with the first response are not extra bytes.
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"INJECTED", 1),
    ],
    ids=["in the same record", "in the next record", "a clean response keeps the connection"],
)
async def test_over_tls(
    first: bytes,
    second: bytes,
    connections: int,
    tls_server_context: ssl.SSLContext,
    tls_ca_pem: bytes,
    leak_check: LeakCheck,
) -> None:
    async with serve_raw(poisoner(first), ssl_context=tls_server_context) as server:
        database = anysoup.TlsDatabase.from_pem(tls_ca_pem)
        async with anysoup.Session(tls_database=database) as session:
            _msg, _body, answer = await two_requests(session, server)
            assert answer == second
            assert server.connections == connections
        await leak_check(session)


async def test_a_clean_response_keeps_the_connection() -> None:
    # The rule costs nothing to well-behaved servers: one connection for both.
    clean = poisoner(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    async with serve_raw(clean) as server, anysoup.Session() as session:
        _msg, body, second = await two_requests(session, server)
    assert (body, second) == (b"hello", b"INJECTED")  # the reuse answer: reused
    assert server.connections == 1


async def test_the_logger_says_why_the_connection_was_closed() -> None:
    lines: list[str] = []
    logger = anysoup.Logger(anysoup.LoggerLogLevel.HEADERS)
    logger.set_printer(
        lambda _logger, _level, direction, data: lines.append(f"{direction} {data}")
    )
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" + INJECTED
    async with serve_raw(poisoner(first)) as server, anysoup.Session(features=[logger]) as session:
        await two_requests(session, server)
    notes = [line for line in lines if "not reused" in line]
    assert notes == [
        f"< [connection to {server.host}:{server.port} not reused: "
        f"{len(INJECTED)} bytes past the end of the response]"
    ], lines


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(junk=st.binary(min_size=1, max_size=300))
async def test_no_bytes_after_a_response_reach_the_next_request(junk: bytes) -> None:
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" + junk
    async with serve_raw(poisoner(first)) as server, anysoup.Session() as session:
        _msg, body, second = await two_requests(session, server)
    assert (body, second) == (b"hello", b"fresh")
