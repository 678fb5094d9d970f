"""HTTP/2 faults, against the scripted server of ``h2_servers`` (h2 on the server side).

Stream limits (SETTINGS_MAX_CONCURRENT_STREAMS 1 and 2), GOAWAY mid-flight
(graceful, below open streams, with an error), resets of one stream among
others (REFUSED_STREAM, HTTP_1_1_REQUIRED, others), 421, a window that never
opens, a 1 GiB download with the reader paused, a header-list bomb, a
CONTINUATION flood, a PING flood, and a connection dropped with streams open.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from h2_scripts import (
    continuation_flood,
    echo,
    gated,
    goaway_after,
    header_bomb_handler,
    huge_download,
    misdirected,
    ping_flood_after,
    refuse,
    reset_with,
    respond,
    route,
    stall_upload,
)
from h2_servers import ErrorCodes, H2Server, ServerStream, SettingCodes, serve_h2
from h2_session import h2
from h2_streams import Http1Stream

import anysoup
from anysoup import HTTPVersion, Message, Session, TlsDatabase

LeakCheck = Callable[[Session], Awaitable[None]]


@pytest.fixture
def database(tls_ca_pem: bytes) -> TlsDatabase:
    return TlsDatabase.from_pem(tls_ca_pem)


async def get(session: Session, url: str) -> tuple[Message, bytes]:
    msg = Message("GET", url)
    return msg, await session.send_and_read(msg)


hello = respond(200, b"hello", [("content-type", "text/plain")])


# -- stream limits -------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 2])
async def test_peer_stream_limit_is_never_exceeded(
    limit: int, tls_server_context, database, leak_check: LeakCheck
) -> None:
    settings = {SettingCodes.MAX_CONCURRENT_STREAMS: limit}
    async with h2(
        echo, tls_server_context, database, settings=settings, session={"max_conns_per_host": 1}
    ) as (server, session):
        # The first request learns the limit (SETTINGS come with the first answer).
        await get(session, server.url_for("/first"))

        async def one(index: int) -> None:
            msg = Message("POST", server.url_for(f"/{index}"))
            msg.set_request_body_from_bytes("text/plain", b"%d" % index)
            assert await session.send_and_read(msg) == b"%d" % index

        async with anyio.create_task_group() as group:
            for index in range(20):
                group.start_soon(one, index)
        (conn,) = server.connections
        assert conn.max_concurrent_streams_seen <= limit
        assert conn.refused_streams == []
        assert conn.streams_opened == 21
    await leak_check(session)


# -- GOAWAY --------------------------------------------------------------------


async def test_graceful_goaway_lets_open_streams_finish(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    gate = anyio.Event()
    async with h2(
        gated(gate, hello), tls_server_context, database, on_connection=goaway_after(3)
    ) as (server, session):
        results: list[tuple[int, HTTPVersion]] = []

        async def one(path: str) -> None:
            msg, body = await get(session, server.url_for(path))
            assert body == b"hello"
            results.append((msg.status, msg.http_version))

        async with anyio.create_task_group() as group:
            for index in range(3):
                group.start_soon(one, f"/{index}")
            first = await _first_connection(server)
            await first.wait_until(lambda: first.goaway_sent is not None)
            await anyio.sleep(0.05)  # the client reads the GOAWAY while its streams are open
            assert session.statistics().draining == 1
            gate.set()
        assert results == [(200, HTTPVersion.HTTP_2_0)] * 3
        # The next request goes on a new connection.
        await get(session, server.url_for("/after"))
        assert server.accepted == 2
        await server.wait_until(lambda: session.statistics().draining == 0)
    await leak_check(session)


async def test_streams_above_last_stream_id_are_sent_again(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    """GOAWAY naming stream 1 as the last: streams 3 and 5 go again on a new connection."""
    gate = anyio.Event()
    script = goaway_after(3, last_stream_id=1)
    async with h2(gated(gate, echo), tls_server_context, database, on_connection=script) as (
        server,
        session,
    ):
        bodies: list[bytes] = []

        async def one(index: int) -> None:
            msg = Message("POST", server.url_for(f"/{index}"))  # not idempotent: still safe
            msg.set_request_body_from_bytes("text/plain", b"body %d" % index)
            bodies.append(await session.send_and_read(msg))

        async with anyio.create_task_group() as group:
            for index in range(3):
                group.start_soon(one, index)
                await anyio.sleep(0.02)  # streams 1, 3, 5 in this order
            first = await _first_connection(server)
            await first.wait_until(lambda: first.goaway_sent is not None)
            await anyio.sleep(0.05)
            gate.set()
        assert sorted(bodies) == [b"body 0", b"body 1", b"body 2"]
        assert server.accepted == 2
        assert server.connections[1].streams_opened == 2
    await leak_check(session)


async def test_goaway_with_an_error_fails_open_streams_by_name(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    gate = anyio.Event()
    goaway = goaway_after(1, error_code=ErrorCodes.INTERNAL_ERROR, close=True)

    async def script(conn: Any) -> None:
        if len(conn.server.connections) == 1:  # the first connection only
            await goaway(conn)

    async with h2(gated(gate, hello), tls_server_context, database, on_connection=script) as (
        server,
        session,
    ):
        msg = Message("POST", server.url_for("/once"))  # not retried: POST on a used connection
        msg.set_request_body_from_bytes("text/plain", b"x")
        with pytest.raises(anysoup.NetworkError) as caught:
            await session.send_and_read(msg)
        text = str(caught.value)
        assert f"127.0.0.1:{server.port}" in text and "HTTP/2 stream 1" in text
        assert caught.value.message is msg
        # The session goes on with a new connection.
        gate.set()
        assert (await get(session, server.url_for("/next")))[1] == b"hello"
    await leak_check(session)


async def test_connection_lost_fails_every_open_stream(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    async def drop(stream: ServerStream) -> None:
        await stream.read_body()
        if stream.path == "/drop":
            await stream.connection.wait_until(lambda: stream.connection.streams_opened >= 3)
            await stream.connection.abort()
        else:
            await anyio.sleep_forever()

    async with h2(drop, tls_server_context, database) as (server, session):
        errors: list[BaseException] = []

        async def one(path: str) -> None:
            msg = Message("POST", server.url_for(path))
            msg.set_request_body_from_bytes("text/plain", b"x")
            try:
                await session.send_and_read(msg)
            except anysoup.NetworkError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as group:
            for path in ("/a", "/b", "/drop"):
                group.start_soon(one, path)
                await anyio.sleep(0.02)
        assert len(errors) == 3
        assert sorted(str(e).split("stream ")[1][0] for e in errors) == ["1", "3", "5"]
        stats = session.statistics()
        assert (stats.connections, stats.streams) == (0, 0)
    await leak_check(session)


async def test_idempotent_request_is_retried_after_a_lost_connection(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    """A GET on a reused connection that dies before any answer goes again (DESIGN §3)."""

    async def handler(stream: ServerStream) -> None:
        if stream.path == "/die" and len(stream.connection.server.connections) == 1:
            await stream.connection.abort()
        await hello(stream)

    async with h2(handler, tls_server_context, database) as (server, session):
        await get(session, server.url_for("/warm"))
        msg, body = await get(session, server.url_for("/die"))
        assert (msg.status, body) == (200, b"hello")
        assert server.accepted == 2
    await leak_check(session)


# -- resets, HTTP_1_1_REQUIRED, 421 --------------------------------------------


async def test_reset_of_one_stream_leaves_the_others(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    handler = route({"/reset": reset_with(ErrorCodes.INTERNAL_ERROR, after_headers=True)}, hello)
    async with h2(handler, tls_server_context, database) as (server, session):
        outcomes: dict[str, object] = {}

        async def one(path: str) -> None:
            try:
                outcomes[path] = (await get(session, server.url_for(path)))[1]
            except anysoup.Error as exc:
                outcomes[path] = exc

        async with anyio.create_task_group() as group:
            for path in ("/a", "/reset", "/b"):
                group.start_soon(one, path)
        assert outcomes["/a"] == outcomes["/b"] == b"hello"
        error = outcomes["/reset"]
        assert isinstance(error, anysoup.IncompleteBody)
        assert "INTERNAL_ERROR" in str(error)
        assert server.accepted == 1
    await leak_check(session)


async def test_refused_stream_is_sent_again(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    refused = 0

    async def handler(stream: ServerStream) -> None:
        nonlocal refused
        if refused < 2:
            refused += 1
            await refuse()(stream)
        else:
            await hello(stream)

    async with h2(handler, tls_server_context, database) as (server, session):
        msg = Message("POST", server.url_for("/x"))
        msg.set_request_body_from_bytes("text/plain", b"x")
        assert await session.send_and_read(msg) == b"hello"
        assert server.connections[0].streams_opened == 3
        assert msg._restarts == 0  # not a re-send: the server never processed it
    await leak_check(session)


async def test_http_1_1_required_resends_over_http1(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    async def handler(stream: Any) -> None:
        if isinstance(stream, Http1Stream):
            await hello(stream)
        else:
            await reset_with(0xD)(stream)

    tls_server_context.set_alpn_protocols(["h2", "http/1.1"])
    async with h2(handler, tls_server_context, database, alpn=("h2", "http/1.1")) as (
        server,
        session,
    ):
        msg, body = await get(session, server.url_for("/legacy"))
        assert (msg.status, body) == (200, b"hello")
        assert msg.http_version is HTTPVersion.HTTP_1_1
        assert msg.force_http1
        assert len(server.http1.requests) == 1
    await leak_check(session)


async def test_421_is_sent_again_once_on_a_new_connection(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    async def handler(stream: ServerStream) -> None:
        if len(stream.connection.server.connections) == 1:
            await misdirected()(stream)
        else:
            await hello(stream)

    async with h2(handler, tls_server_context, database) as (server, session):
        msg, body = await get(session, server.url_for("/x"))
        assert (msg.status, body) == (200, b"hello")
        assert server.accepted == 2
    async with h2(misdirected(), tls_server_context, database) as (server, session):
        msg, body = await get(session, server.url_for("/x"))
        assert (msg.status, body) == (421, b"misdirected")  # once: then the answer stands
        assert server.accepted == 2
    await leak_check(session)


# -- flow control --------------------------------------------------------------


async def test_window_that_never_opens_times_out_that_request_only(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    handler = route({"/stall": stall_upload}, hello)
    settings = {SettingCodes.INITIAL_WINDOW_SIZE: 1000}
    async with h2(
        handler, tls_server_context, database, settings=settings, session={"timeout": 0.5}
    ) as (server, session):
        await get(session, server.url_for("/warm"))  # the small window is in force
        stalled = Message("POST", server.url_for("/stall"))
        stalled.set_request_body_from_bytes("application/octet-stream", b"x" * 100_000)
        outcome: dict[str, object] = {}

        async def upload() -> None:
            try:
                await session.send_and_read(stalled)
            except anysoup.TimeoutError as exc:
                outcome["error"] = exc

        async with anyio.create_task_group() as group:
            group.start_soon(upload)
            for _ in range(5):  # the others go on meanwhile
                assert (await get(session, server.url_for("/ok")))[1] == b"hello"
        assert "no progress for 0.5 s" in str(outcome["error"])
        assert "HTTP/2 stream" in str(outcome["error"])
        assert server.accepted == 1
        assert (await get(session, server.url_for("/after")))[1] == b"hello"
    await leak_check(session)


async def test_paused_reader_holds_at_most_its_window(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    """A 1 GiB download with the reader paused: the server may send only the stream window."""
    gib = 1 << 30
    handler = route({"/huge": huge_download(gib)}, hello)
    async with h2(handler, tls_server_context, database) as (server, session):
        body = await session.send(Message("GET", server.url_for("/huge")))
        assert len(await body.read(1000)) == 1000
        conn = server.connections[0]
        stream = conn.streams[1]
        await anyio.sleep(0.5)  # the reader pauses; the server sends what it may
        window = 6 * 1024 * 1024
        assert stream.data_sent <= conn.window_granted(stream.stream_id) <= window + 1 << 20
        assert stream.data_sent < 8 * 1024 * 1024
        # Another stream still gets through: the connection window is not exhausted.
        assert (await get(session, server.url_for("/other")))[1] == b"hello"
        await body.aclose()
        await conn.wait_until(lambda: any(sid == 1 for sid, _ in conn.resets_received))
        assert (1, ErrorCodes.CANCEL) in conn.resets_received
    await leak_check(session)


async def test_reading_the_body_credits_the_window(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    size = 20 * 1024 * 1024  # beyond both windows: it arrives only as it is read
    async with h2(huge_download(size), tls_server_context, database) as (server, session):
        body = await session.send_and_read(Message("GET", server.url_for("/big")))
        assert len(body) == size
        conn = server.connections[0]
        assert conn.window_updates  # credit came back as the body was read
        assert session.statistics().streams == 0
    await leak_check(session)


# -- hostile servers -----------------------------------------------------------


async def test_header_list_bomb_is_refused(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    async with h2(header_bomb_handler(1 << 20), tls_server_context, database) as (
        server,
        session,
    ):
        with pytest.raises(anysoup.ParsingError, match="HTTP/2 stream 1"):
            await get(session, server.url_for("/bomb"))
    await leak_check(session)


async def test_continuation_flood_is_refused(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    async def handler(stream: ServerStream) -> None:
        await stream.send_raw(continuation_flood(stream.stream_id, 10_000))
        await anyio.sleep_forever()

    async with h2(handler, tls_server_context, database) as (server, session):
        with pytest.raises(anysoup.ParsingError, match=r"(?i)continuation"):
            await get(session, server.url_for("/flood"))
    await leak_check(session)


async def test_ping_flood_is_answered_without_failing(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    gate = anyio.Event()
    script = ping_flood_after(20_000, streams=1)
    async with h2(gated(gate, hello), tls_server_context, database, on_connection=script) as (
        server,
        session,
    ):
        async with anyio.create_task_group() as group:
            group.start_soon(get, session, server.url_for("/slow"))
            conn = await _first_connection(server)
            await conn.wait_until(lambda: conn.ping_acks_received >= 20_000)
            gate.set()
        assert conn.ping_acks_received == 20_000
    await leak_check(session)


async def _first_connection(server: H2Server) -> Any:
    await server.wait_until(lambda: server.connections)
    return server.connections[0]


# -- keepalive -------------------------------------------------------------------


async def test_quiet_connection_gets_a_keepalive_ping(
    tls_server_context, database, leak_check: LeakCheck, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("anysoup._drivers.http2.KEEPALIVE_IDLE", 0.2)
    async with h2(hello, tls_server_context, database, session={"timeout": 0.4}) as (
        server,
        session,
    ):
        await get(session, server.url_for("/a"))
        conn = server.connections[0]
        await conn.wait_until(lambda: conn.pings_received)
        assert conn.pings_received[0] == b"anysoup!"
        await anyio.sleep(0.3)  # answered: the connection stays
        await get(session, server.url_for("/b"))
        assert server.accepted == 1
    await leak_check(session)


async def test_unanswered_keepalive_ping_drops_the_connection(
    tls_server_context, database, leak_check: LeakCheck, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("anysoup._drivers.http2.KEEPALIVE_IDLE", 0.2)
    async with h2(hello, tls_server_context, database, session={"timeout": 0.4}) as (
        server,
        session,
    ):
        await get(session, server.url_for("/a"))
        conn = server.connections[0]
        conn.mute = True  # the server goes silent
        await conn.wait_until(lambda: conn.pings_received)
        with anyio.fail_after(3):
            while session.statistics().connections:  # noqa: ASYNC110  (no change event)
                await anyio.sleep(0.05)
        # The next request doesn't meet the dead connection.
        assert (await get(session, server.url_for("/b")))[1] == b"hello"
        assert server.accepted == 2
    await leak_check(session)


# -- DATA frames: padding, interleaving, many per read -----------------------------


async def test_padded_and_interleaved_data_frames(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    """Padded frames count their padding against the window; frames of two streams
    interleave; runs of small frames arrive in one read. The bodies come out exact."""

    async def handler(stream: ServerStream) -> None:
        await stream.read_body()
        conn = stream.connection
        sid = stream.stream_id
        await stream.send_headers(200, [("content-length", str(64 * 3000))])
        for index in range(64):
            piece = bytes([65 + index % 26]) * 3000
            conn.h2.send_data(sid, piece, pad_length=(index % 3) * 40 or None)
            conn._wake_writer()
            if index % 8 == 7:
                await anyio.sleep(0.001)  # let the other stream's frames in between
        conn.h2.end_stream(sid)
        conn._wake_writer()
        stream.response_ended = True
        await conn.flush()

    expected = b"".join(bytes([65 + i % 26]) * 3000 for i in range(64))
    async with h2(handler, tls_server_context, database) as (server, session):
        bodies: list[bytes] = []

        async def one(path: str) -> None:
            bodies.append((await get(session, server.url_for(path)))[1])

        async with anyio.create_task_group() as group:
            for path in ("/a", "/b", "/c"):
                group.start_soon(one, path)
        assert bodies == [expected] * 3
        assert server.accepted == 1
        assert session.statistics().streams == 0
    await leak_check(session)


async def test_closing_the_session_says_goaway(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    async with serve_h2(hello, tls_server_context) as server:
        async with Session(tls_database=database) as session:
            await get(session, server.url_for("/a"))
            conn = server.connections[0]
        await conn.wait_until(lambda: conn.goaway_received is not None)
        assert conn.goaway_received is not None
        assert conn.goaway_received.error_code == ErrorCodes.NO_ERROR
    await leak_check(session)


async def test_refused_stream_with_a_stream_body_half_sent_is_not_sent_again(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    """The server never processed it, but the program's stream can't be read twice."""

    async def handler(stream: ServerStream) -> None:
        await stream.receive_data()  # some of the body arrived
        await stream.reset(ErrorCodes.REFUSED_STREAM)

    async def chunks() -> Any:
        for _ in range(50):
            yield b"x" * 10_000
            await anyio.sleep(0.005)

    async with h2(handler, tls_server_context, database) as (server, session):
        msg = Message("POST", server.url_for("/up"))
        msg.set_request_body("application/octet-stream", chunks())
        with pytest.raises(anysoup.NetworkError, match="refused the stream"):
            await session.send_and_read(msg)
        assert server.connections[0].streams_opened == 1
    await leak_check(session)


# -- servers that say h2 and don't speak it ----------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",  # HTTP/1.1 after choosing h2
        b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00",  # WINDOW_UPDATE before SETTINGS
        b"",  # closes at once
    ],
    ids=["http1-bytes", "no-settings-first", "silent-close"],
)
async def test_server_that_chose_h2_and_does_not_speak_it(
    reply: bytes, tls_server_context, database, leak_check: LeakCheck
) -> None:
    from servers import ServerConnection, serve_raw

    async def handler(conn: ServerConnection) -> None:
        with anyio.move_on_after(1):
            await conn.stream.receive(65536)  # the client's preface and request
        if reply:
            await conn.send_raw(reply)

    tls_server_context.set_alpn_protocols(["h2"])
    async with serve_raw(handler, ssl_context=tls_server_context) as server:
        async with Session(tls_database=database) as session:
            with anyio.fail_after(5), pytest.raises(anysoup.Error) as caught:
                await get(session, server.url_for("/"))
            text = str(caught.value)
            assert f"127.0.0.1:{server.port}" in text and "HTTP/2 stream 1" in text
            assert isinstance(caught.value, (anysoup.ParsingError, anysoup.NetworkError))
            if reply.startswith(b"HTTP/"):
                assert isinstance(caught.value, anysoup.ParsingError)
                assert "answered in HTTP/1.1" in text
        await leak_check(session)
