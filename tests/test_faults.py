"""Faulty peers on loopback: every failure is a clear ``anysoup.Error``.

Each scripted server misbehaves in one documented way (DESIGN §4 invariant 5,
§6 "Errors for edge cases"). The client must raise the documented
:class:`anysoup.Error` subclass, with ``.message`` set and a text naming the
host and the phase, within a bounded time: never a hang, never a silently
short body, never a raw h11, ssl, OSError or anyio exception.

The second half covers the connection reuse rules: the stale keep-alive retry
(DESIGN §3), invariant 3 (a connection returns to the pool only at a clean
message boundary) and invariant 4 (no request is sent twice unless it is
idempotent).
"""

from __future__ import annotations

import builtins
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import h11
import pytest
from servers import ReceivedRequest, Server, ServerConnection, serve_http, serve_raw

import anysoup

#: No single fault test may take longer than this (the stall ones included).
BOUND = 5.0

RawHandler = Callable[[ServerConnection], Awaitable[None]]


# -- helpers -------------------------------------------------------------------


async def read_request_head(conn: ServerConnection) -> bytes:
    """Read the client's request head, so that closing does not become a reset."""
    return await conn.stream.receive_until(b"\r\n\r\n", 65536)


def label(server: Server) -> str:
    return f"{server.host}:{server.port}"


async def expect_error(
    session: anysoup.Session,
    url: str,
    error: type[anysoup.Error],
    *,
    phase: str,
    host: str,
    method: str = "GET",
    body: bytes | None = None,
) -> anysoup.Error:
    """Send ``method url`` and read its body; check the error raised."""
    msg = anysoup.Message(method, url, body=body)
    with anyio.fail_after(BOUND), pytest.raises(error) as info:
        await session.send_and_read(msg)
    exc = info.value
    check_error(exc, msg, phase=phase, host=host)
    return exc


def check_error(exc: BaseException, msg: anysoup.Message, *, phase: str, host: str) -> None:
    """The documented shape of an error: anysoup's, for ``msg``, naming host and phase."""
    assert isinstance(exc, anysoup.Error), repr(exc)
    assert not isinstance(exc, (h11.ProtocolError, anyio.BrokenResourceError)), repr(exc)
    assert exc.message is msg
    text = str(exc)
    assert host in text, text
    assert phase in text, text


def ok_handler(
    body: bytes = b"ok",
) -> Callable[[ServerConnection, ReceivedRequest], Awaitable[None]]:
    async def handler(conn: ServerConnection, request: ReceivedRequest) -> None:
        await conn.respond(200, [("Content-Type", "text/plain")], body)

    return handler


async def assert_pool_empty(session: anysoup.Session) -> None:
    """No connection is left borrowed or counted: the failed one was closed."""
    stats = session.statistics()
    assert stats.in_use == 0, stats
    assert stats.waiting == 0, stats


async def check_session_still_works(session: anysoup.Session) -> None:
    """A failed exchange leaves the pool usable: a good request succeeds afterwards."""
    async with serve_http(ok_handler(b"fine")) as good:
        msg = anysoup.Message("GET", good.url_for("/after"))
        with anyio.fail_after(BOUND):
            assert await session.send_and_read(msg) == b"fine"
        assert msg.status == 200


# -- invariant 5: bad input from the peer is a clear error ---------------------


def raw_reply(data: bytes, *, then: str = "close") -> RawHandler:
    """A raw server: read the request head, send ``data``, then close or reset."""

    async def handler(conn: ServerConnection) -> None:
        await read_request_head(conn)
        if data:
            await conn.send_raw(data)
        if then == "reset":
            await anyio.sleep(0.05)  # let the bytes leave before the RST
            await conn.reset()
        # "close": serve_raw closes gracefully when the handler returns

    return handler


HEAD_CL_100 = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
HEAD_CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
BIG_HEADERS = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"a" * 1000) for i in range(300))

# (id, bytes the server sends, then close/reset, error type, phase in the message)
BAD_INPUT = [
    (
        "truncated-content-length",
        HEAD_CL_100 + b"x" * 10,
        "close",
        anysoup.IncompleteBody,
        "reading response body",
    ),
    (
        "truncated-content-length-reset",
        HEAD_CL_100 + b"x" * 10,
        "reset",
        anysoup.NetworkError,
        "reading response body",
    ),
    (
        "chunked-bad-chunk-size",
        HEAD_CHUNKED + b"5\r\nhello\r\nzz\r\nmore\r\n0\r\n\r\n",
        "close",
        anysoup.IncompleteBody,
        "reading response body",
    ),
    (
        "chunked-cut-mid-chunk",
        HEAD_CHUNKED + b"a\r\nhello",
        "close",
        anysoup.IncompleteBody,
        "reading response body",
    ),
    (
        "chunked-missing-last-chunk",
        HEAD_CHUNKED + b"5\r\nhello\r\n",
        "close",
        anysoup.IncompleteBody,
        "reading response body",
    ),
    (
        "reset-mid-headers",
        b"HTTP/1.1 200 OK\r\nContent-Le",
        "reset",
        anysoup.NetworkError,
        "reading response headers",
    ),
    (
        "closed-mid-headers",
        b"HTTP/1.1 200 OK\r\nContent-Le",
        "close",
        anysoup.NetworkError,
        "reading response headers",
    ),
    (
        "closed-no-response",
        b"",
        "close",
        anysoup.NetworkError,
        "reading response headers",
    ),
    (
        "reset-no-response",
        b"",
        "reset",
        anysoup.NetworkError,
        "reading response headers",
    ),
    (
        "garbage-status-line",
        b"GARBAGE\r\n\r\n",
        "close",
        anysoup.ParsingError,
        "reading response headers",
    ),
    (
        "non-numeric-status",
        b"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n",
        "close",
        anysoup.ParsingError,
        "reading response headers",
    ),
    (
        "header-without-colon",
        b"HTTP/1.1 200 OK\r\nNoColonHere\r\nContent-Length: 0\r\n\r\n",
        "close",
        anysoup.ParsingError,
        "reading response headers",
    ),
    (
        "non-http-banner",
        b"SSH-2.0-OpenSSH_9.6\r\n",
        "close",
        anysoup.ParsingError,
        "reading response headers",
    ),
    (
        "oversized-header-block",
        b"HTTP/1.1 200 OK\r\n" + BIG_HEADERS + b"Content-Length: 0\r\n\r\n",
        "close",
        anysoup.ParsingError,
        "reading response headers",
    ),
]


@pytest.mark.parametrize(
    ("data", "then", "error", "phase"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_INPUT],
)
async def test_invariant5_bad_input_is_a_clear_error(
    data: bytes, then: str, error: type[anysoup.Error], phase: str, leak_check
) -> None:
    async with serve_raw(raw_reply(data, then=then)) as server:
        async with anysoup.Session() as session:
            exc = await expect_error(
                session, server.url_for("/fault"), error, phase=phase, host=label(server)
            )
            if error is anysoup.NetworkError and "headers" in phase:
                # Cut short before any response: not a parsing or body error.
                assert type(exc) is anysoup.NetworkError, repr(exc)
            await assert_pool_empty(session)
            await check_session_still_works(session)
        await leak_check(session)


async def test_truncated_body_is_never_a_silent_short_read(leak_check) -> None:
    """Reading chunk by chunk: the data arrives, then IncompleteBody, never EOF."""
    async with serve_raw(raw_reply(HEAD_CL_100 + b"x" * 10)) as server:
        async with anysoup.Session() as session:
            msg = anysoup.Message("GET", server.url_for("/short"))
            received = b""
            with anyio.fail_after(BOUND):
                body = await session.send(msg)
                assert msg.status == 200
                with pytest.raises(anysoup.IncompleteBody) as info:
                    async with body:
                        async for chunk in body:
                            received += chunk
            assert received == b"x" * 10
            check_error(info.value, msg, phase="reading response body", host=label(server))
            assert msg.response_headers.get_content_length() == 100
        await leak_check(session)


async def test_header_block_under_the_limit_is_accepted(leak_check) -> None:
    """About 200 KiB of headers is within libsoup's 256 KiB cap."""
    filler = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"a" * 1000) for i in range(200))
    data = b"HTTP/1.1 200 OK\r\n" + filler + b"Content-Length: 2\r\n\r\nok"
    async with serve_raw(raw_reply(data)) as server:
        async with anysoup.Session() as session:
            msg = anysoup.Message("GET", server.url_for("/big-head"))
            with anyio.fail_after(BOUND):
                assert await session.send_and_read(msg) == b"ok"
            assert msg.response_headers.get_one("X-Filler-199") == "a" * 1000
        await leak_check(session)


def informational_handler(count: int):
    async def handler(conn: ServerConnection, request: ReceivedRequest) -> None:
        for _ in range(count):
            await conn.send_informational(103, [("Link", "</style.css>; rel=preload")])
        await conn.respond(200, [], b"final")

    return handler


async def test_ten_informational_responses_are_allowed(leak_check) -> None:
    async with serve_http(informational_handler(10)) as server:
        async with anysoup.Session() as session:
            msg = anysoup.Message("GET", server.url_for("/hints"))
            seen: list[int] = []
            msg.got_informational.connect(lambda m: seen.append(m.status))
            with anyio.fail_after(BOUND):
                assert await session.send_and_read(msg) == b"final"
            assert seen == [103] * 10
            assert msg.status == 200
        await leak_check(session)


async def test_more_than_ten_informational_responses_is_parsing_error(leak_check) -> None:
    async with serve_http(informational_handler(11)) as server:
        async with anysoup.Session() as session:
            exc = await expect_error(
                session,
                server.url_for("/hints"),
                anysoup.ParsingError,
                phase="reading response headers",
                host=label(server),
            )
            assert "informational" in str(exc)
            assert exc.code is anysoup.SessionErrorCode.PARSING
            await assert_pool_empty(session)
        await leak_check(session)


# -- stalls: the I/O timeout ---------------------------------------------------


async def test_stall_waiting_for_headers_times_out(leak_check) -> None:
    async def stall(conn: ServerConnection) -> None:
        await read_request_head(conn)
        await anyio.sleep(30)

    async with serve_raw(stall) as server:
        async with anysoup.Session(timeout=0.5) as session:
            start = time.monotonic()
            exc = await expect_error(
                session,
                server.url_for("/slow"),
                anysoup.TimeoutError,
                phase="reading response headers",
                host=label(server),
            )
            elapsed = time.monotonic() - start
            assert 0.4 <= elapsed < 2.5, elapsed
            assert isinstance(exc, builtins.TimeoutError)
            assert "0.5 s" in str(exc)
            await assert_pool_empty(session)
        await leak_check(session)


async def test_stall_mid_body_times_out(leak_check) -> None:
    async def stall(conn: ServerConnection) -> None:
        await read_request_head(conn)
        await conn.send_raw(HEAD_CL_100 + b"x" * 10)
        await anyio.sleep(30)

    async with serve_raw(stall) as server:
        async with anysoup.Session(timeout=0.5) as session:
            msg = anysoup.Message("GET", server.url_for("/slow-body"))
            with anyio.fail_after(BOUND):
                body = await session.send(msg)
                assert msg.status == 200
                start = time.monotonic()
                with pytest.raises(anysoup.TimeoutError) as info:
                    async with body:
                        await body.read()
                elapsed = time.monotonic() - start
            assert 0.4 <= elapsed < 2.5, elapsed
            assert isinstance(info.value, builtins.TimeoutError)
            check_error(info.value, msg, phase="reading response body", host=label(server))
            await assert_pool_empty(session)
        await leak_check(session)


# -- connecting ----------------------------------------------------------------


async def test_connection_refused_is_connect_error(leak_check) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port any more.
    async with anysoup.Session() as session:
        exc = await expect_error(
            session,
            f"http://127.0.0.1:{port}/",
            anysoup.ConnectError,
            phase="connect",
            host=f"127.0.0.1:{port}",
        )
        assert "refused" in str(exc)
        assert session.statistics().connections == 0
    await leak_check(session)


async def test_unresolvable_host_is_connect_error(leak_check) -> None:
    async with anysoup.Session() as session:
        exc = await expect_error(
            session,
            "http://nonexistent.invalid/",
            anysoup.ConnectError,
            phase="resolve",
            host="nonexistent.invalid",
        )
        assert exc.message is not None
        assert session.statistics().connections == 0
    await leak_check(session)


# -- the stale keep-alive retry (DESIGN §3) ------------------------------------


def race_closing_handler(*, answer_first_only_overall: bool = False):
    """Answer the first request of each connection; on a kept-alive connection,
    close without answering when the next request arrives (the idle-close race).

    With ``answer_first_only_overall``, only the very first request of the
    server is answered: every later one, on any connection, is dropped.
    """
    per_connection: dict[int, int] = {}
    answered = 0

    async def handler(conn: ServerConnection, request: ReceivedRequest) -> None:
        nonlocal answered
        count = per_connection.get(conn.index, 0)
        per_connection[conn.index] = count + 1
        if count == 0 and not (answer_first_only_overall and answered):
            answered += 1
            await conn.respond(200, [], f"{request.method} {request.target}".encode())
        else:
            await conn.close()

    return handler


def count_restarts(msg: anysoup.Message) -> list[int]:
    restarts: list[int] = []
    msg.restarted.connect(lambda m: restarts.append(1))
    return restarts


def seen(server: Server) -> list[tuple[str, str, int]]:
    return [(r.method, r.target, r.connection) for r in server.requests]


async def test_stale_keepalive_race_get_retried_once_on_new_connection(leak_check) -> None:
    async with serve_http(race_closing_handler()) as server:
        async with anysoup.Session() as session:
            with anyio.fail_after(BOUND):
                first = anysoup.Message("GET", server.url_for("/1"))
                assert await session.send_and_read(first) == b"GET /1"
                msg = anysoup.Message("GET", server.url_for("/2"))
                restarts = count_restarts(msg)
                assert await session.send_and_read(msg) == b"GET /2"
            assert msg.status == 200
            assert len(restarts) == 1
            assert seen(server) == [("GET", "/1", 0), ("GET", "/2", 0), ("GET", "/2", 1)]
            assert server.connections == 2
        await leak_check(session)


async def test_stale_keepalive_race_idempotent_post_is_not_resent(leak_check) -> None:
    async with serve_http(race_closing_handler()) as server:
        async with anysoup.Session() as session:
            with anyio.fail_after(BOUND):
                first = anysoup.Message("GET", server.url_for("/1"))
                assert await session.send_and_read(first) == b"GET /1"
            msg = anysoup.Message("POST", server.url_for("/2"), body=b"payload")
            msg.add_flags(anysoup.MessageFlags.IDEMPOTENT)
            restarts = count_restarts(msg)
            with anyio.fail_after(BOUND), pytest.raises(anysoup.NetworkError) as info:
                await session.send_and_read(msg)
            check_error(info.value, msg, phase="reading response headers", host=label(server))
            assert restarts == []
            # IDEMPOTENT let it reuse the connection; it was received once, never twice.
            assert seen(server) == [("GET", "/1", 0), ("POST", "/2", 0)]
            assert server.requests[1].body == b"payload"
            await check_session_still_works(session)
        await leak_check(session)


def idle_closing_server(idle: float) -> RawHandler:
    """Serve keep-alive HTTP/1.1, closing a connection idle for ``idle`` seconds."""

    async def handler(conn: ServerConnection) -> None:
        while True:
            request = None
            with anyio.move_on_after(idle):
                request = await conn._receive_request()
            if request is None:
                return  # idle too long, or the client closed: serve_raw closes
            await conn.read_body()
            await conn.respond(200, [], f"{request.method} {request.target}".encode())
            if not conn._start_next_cycle():
                return

    return handler


async def test_server_closing_idle_connection_get_succeeds(leak_check) -> None:
    async with serve_raw(idle_closing_server(1.0)) as server:
        async with anysoup.Session() as session:
            with anyio.fail_after(BOUND):
                first = anysoup.Message("GET", server.url_for("/1"))
                assert await session.send_and_read(first) == b"GET /1"
                await anyio.sleep(1.6)
                msg = anysoup.Message("GET", server.url_for("/2"))
                restarts = count_restarts(msg)
                assert await session.send_and_read(msg) == b"GET /2"
            assert len(restarts) <= 1
            assert [(m, t) for m, t, _ in seen(server)].count(("GET", "/2")) == 1
            assert seen(server)[-1] == ("GET", "/2", 1)
        await leak_check(session)


async def test_server_closing_idle_connection_post_sent_once(leak_check) -> None:
    async with serve_raw(idle_closing_server(1.0)) as server:
        async with anysoup.Session() as session:
            with anyio.fail_after(BOUND):
                first = anysoup.Message("GET", server.url_for("/1"))
                assert await session.send_and_read(first) == b"GET /1"
                await anyio.sleep(1.6)
                msg = anysoup.Message("POST", server.url_for("/2"), body=b"data")
                assert await session.send_and_read(msg) == b"POST /2"
            posts = [r for r in server.requests if r.method == "POST"]
            assert len(posts) == 1
            assert posts[0].body == b"data"
        await leak_check(session)


# -- invariant 3: a connection returns to the pool only at a message boundary --


def sized_handler(sizes: dict[str, int]):
    async def handler(conn: ServerConnection, request: ReceivedRequest) -> None:
        await conn.respond(200, [], b"z" * sizes.get(request.target, 2))

    return handler


async def test_invariant3_early_close_with_large_rest_closes_connection(leak_check) -> None:
    async with serve_http(sized_handler({"/big": 4 << 20})) as server:
        async with anysoup.Session() as session:
            with anyio.fail_after(BOUND):
                async with session.send(anysoup.Message("GET", server.url_for("/big"))) as body:
                    assert len(await body.read(100)) <= 100
                # Not drainable within the bound: the connection is closed, not pooled.
                assert session.statistics().connections == 0
                msg = anysoup.Message("GET", server.url_for("/next"))
                assert await session.send_and_read(msg) == b"zz"
            assert server.connections == 2
            assert seen(server) == [("GET", "/big", 0), ("GET", "/next", 1)]
        await leak_check(session)


async def test_invariant3_early_close_with_small_rest_drains_and_reuses(leak_check) -> None:
    async with serve_http(sized_handler({"/small": 8192})) as server:
        async with anysoup.Session() as session:
            with anyio.fail_after(BOUND):
                async with session.send(anysoup.Message("GET", server.url_for("/small"))) as body:
                    assert await body.read(100) == b"z" * 100
                stats = session.statistics()
                assert (stats.connections, stats.idle, stats.in_use) == (1, 1, 0), stats
                msg = anysoup.Message("GET", server.url_for("/next"))
                assert await session.send_and_read(msg) == b"zz"
            assert server.connections == 1
            assert seen(server) == [("GET", "/small", 0), ("GET", "/next", 0)]
        await leak_check(session)


async def test_invariant3_open_body_keeps_its_connection_from_others(leak_check) -> None:
    async with serve_http(sized_handler({"/a": 1000})) as server:
        async with anysoup.Session() as session:
            with anyio.fail_after(BOUND):
                async with session.send(anysoup.Message("GET", server.url_for("/a"))) as body:
                    # The first body is unread: a second request can't use its connection.
                    other = anysoup.Message("GET", server.url_for("/b"))
                    assert await session.send_and_read(other) == b"zz"
                    assert await body.read() == b"z" * 1000
            assert server.connections == 2
            assert seen(server) == [("GET", "/a", 0), ("GET", "/b", 1)]
        await leak_check(session)


async def test_invariant3_failed_exchange_connection_is_not_reused(leak_check) -> None:
    async def handler(conn: ServerConnection, request: ReceivedRequest) -> None:
        if request.target == "/cut":
            await conn.send_head(200, [("Content-Length", "100")])
            await conn.send_data(b"x" * 10)
            await conn.close()
        else:
            await conn.respond(200, [], b"ok")

    async with serve_http(handler) as server:
        async with anysoup.Session() as session:
            await expect_error(
                session,
                server.url_for("/cut"),
                anysoup.IncompleteBody,
                phase="reading response body",
                host=label(server),
            )
            assert session.statistics().connections == 0
            with anyio.fail_after(BOUND):
                assert await session.send_and_read(anysoup.Message("GET", server.url)) == b"ok"
            assert server.connections == 2
        await leak_check(session)


async def test_invariant3_connection_close_response_is_not_reused(leak_check) -> None:
    async def handler(conn: ServerConnection, request: ReceivedRequest) -> None:
        headers = [("Connection", "close")] if request.target == "/last" else []
        await conn.respond(200, headers, b"ok")

    async with serve_http(handler) as server:
        async with anysoup.Session() as session:
            with anyio.fail_after(BOUND):
                for path in ("/last", "/next"):
                    msg = anysoup.Message("GET", server.url_for(path))
                    assert await session.send_and_read(msg) == b"ok"
            assert seen(server) == [("GET", "/last", 0), ("GET", "/next", 1)]
        await leak_check(session)


async def test_invariant3_http10_response_is_not_reused(leak_check) -> None:
    async def handler(conn: ServerConnection) -> None:
        await read_request_head(conn)
        await conn.send_raw(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
        # Keep the socket open: the client must still not send a second request on it.
        with anyio.move_on_after(2):
            data = await conn.stream.receive()
            raise AssertionError(f"a request arrived on an HTTP/1.0 connection: {data!r}")

    async with serve_raw(handler) as server:
        async with anysoup.Session() as session:
            with anyio.fail_after(BOUND):
                for path in ("/1", "/2"):
                    msg = anysoup.Message("GET", server.url_for(path))
                    assert await session.send_and_read(msg) == b"ok"
                    assert msg.http_version is anysoup.HTTPVersion.HTTP_1_0
            assert server.connections == 2
        await leak_check(session)


# -- invariant 4: no request is sent twice unless it is idempotent --------------


async def test_invariant4_post_uses_a_new_connection_and_is_sent_once(leak_check) -> None:
    async def echo(conn: ServerConnection, request: ReceivedRequest) -> None:
        await conn.respond(200, [], request.body)

    async with serve_http(echo) as server:
        async with anysoup.Session() as session:
            with anyio.fail_after(BOUND):
                assert await session.send_and_read(anysoup.Message("GET", server.url)) == b""
                msg = anysoup.Message("POST", server.url_for("/p"), body=b"once")
                assert await session.send_and_read(msg) == b"once"
            # A plain POST never rides a kept-alive connection (no stale-connection risk).
            assert seen(server) == [("GET", "/", 0), ("POST", "/p", 1)]
        await leak_check(session)


async def test_invariant4_idempotent_post_on_stale_connection_sent_once(leak_check) -> None:
    async with serve_http(race_closing_handler()) as server:
        async with anysoup.Session() as session:
            with anyio.fail_after(BOUND):
                assert await session.send_and_read(anysoup.Message("GET", server.url)) == b"GET /"
            msg = anysoup.Message("POST", server.url_for("/p"), body=b"once")
            msg.add_flags(anysoup.MessageFlags.IDEMPOTENT)
            with anyio.fail_after(BOUND), pytest.raises(anysoup.NetworkError):
                await session.send_and_read(msg)
            assert [r.method for r in server.requests].count("POST") == 1
        await leak_check(session)


async def test_invariant4_streamed_put_on_stale_connection_sent_once(leak_check) -> None:
    async def stream() -> AsyncIterator[bytes]:
        yield b"part1-"
        yield b"part2"

    async with serve_http(race_closing_handler()) as server:
        async with anysoup.Session() as session:
            with anyio.fail_after(BOUND):
                assert await session.send_and_read(anysoup.Message("GET", server.url)) == b"GET /"
            msg = anysoup.Message("PUT", server.url_for("/p"), body=stream())
            restarts = count_restarts(msg)
            with anyio.fail_after(BOUND), pytest.raises(anysoup.NetworkError) as info:
                await session.send_and_read(msg)
            check_error(info.value, msg, phase="reading response headers", host=label(server))
            # PUT may be retried, but a streamed body can't be replayed.
            assert restarts == []
            assert seen(server) == [("GET", "/", 0), ("PUT", "/p", 0)]
            assert server.requests[1].body == b"part1-part2"
        await leak_check(session)


async def test_invariant4_get_is_retried_at_most_once(leak_check) -> None:
    async with serve_http(race_closing_handler(answer_first_only_overall=True)) as server:
        async with anysoup.Session() as session:
            with anyio.fail_after(BOUND):
                assert await session.send_and_read(anysoup.Message("GET", server.url)) == b"GET /"
            msg = anysoup.Message("GET", server.url_for("/again"))
            restarts = count_restarts(msg)
            with anyio.fail_after(BOUND), pytest.raises(anysoup.NetworkError) as info:
                await session.send_and_read(msg)
            check_error(info.value, msg, phase="reading response headers", host=label(server))
            assert len(restarts) == 1
            # Once on the stale connection, once on a fresh one, then the error.
            assert seen(server) == [("GET", "/", 0), ("GET", "/again", 0), ("GET", "/again", 1)]
        await leak_check(session)


async def test_invariant4_timeout_on_reused_connection_is_not_retried(leak_check) -> None:
    async def handler(conn: ServerConnection, request: ReceivedRequest) -> None:
        if request.target == "/slow":
            await anyio.sleep(30)
        await conn.respond(200, [], b"ok")

    async with serve_http(handler) as server:
        async with anysoup.Session(timeout=0.5) as session:
            with anyio.fail_after(BOUND):
                assert await session.send_and_read(anysoup.Message("GET", server.url)) == b"ok"
            exc = await expect_error(
                session,
                server.url_for("/slow"),
                anysoup.TimeoutError,
                phase="reading response headers",
                host=label(server),
            )
            assert isinstance(exc, builtins.TimeoutError)
            assert seen(server) == [("GET", "/", 0), ("GET", "/slow", 0)]
        await leak_check(session)
