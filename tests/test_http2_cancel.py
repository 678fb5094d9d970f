"""Cancellation at every checkpoint of an HTTP/2 exchange, with the leak check after each.

The HTTP/2 rows of ``test_cancellation.py``: a request is cancelled while it
waits for a stream slot, while it waits for the first connection's ALPN
answer, with its head sent, with its body half sent, with the response head
received, and with the body half read; by a cancel scope, a
:class:`~anysoup.Cancellable` and :meth:`Session.abort`. After each, the
stream was reset (RST_STREAM CANCEL, where it was opened), no stream or
slot is left counted, the connection still serves the next request, and the
session closes without a task or socket left.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from h2_scripts import respond, route, stall_upload
from h2_servers import ErrorCodes, H2Server, ServerStream, SettingCodes, serve_h2

import anysoup
from anysoup import Cancellable, Message, PoolStatistics, Session, TlsDatabase

LeakCheck = Callable[[Session], Awaitable[None]]
HALF = 50_000


async def hold_head(stream: ServerStream) -> None:
    """Read the request, never answer."""
    await stream.read_body()
    await anyio.sleep_forever()


async def head_only(stream: ServerStream) -> None:
    """Answer the head, never the body."""
    await stream.read_body()
    await stream.send_headers(200, [("content-length", "100000")])
    await anyio.sleep_forever()


async def half_body(stream: ServerStream) -> None:
    await stream.read_body()
    await stream.send_headers(200, [("content-length", str(2 * HALF))])
    await stream.send_data(b"h" * HALF)
    await anyio.sleep_forever()


HANDLER = route(
    {
        "/hold-head": hold_head,
        "/half-upload": stall_upload,
        "/head-only": head_only,
        "/half-body": half_body,
    },
    respond(200, b"hello"),
)


@pytest.fixture
def database(tls_ca_pem: bytes) -> TlsDatabase:
    return TlsDatabase.from_pem(tls_ca_pem)


@asynccontextmanager
async def h2_env(
    context: ssl.SSLContext, database: TlsDatabase, settings: dict[Any, int] | None = None
) -> AsyncIterator[tuple[H2Server, Session]]:
    server_settings = {SettingCodes.INITIAL_WINDOW_SIZE: 10_000, **(settings or {})}
    async with (
        serve_h2(HANDLER, context, settings=server_settings) as server,
        Session(tls_database=database, max_conns_per_host=1) as session,
    ):
        with anyio.fail_after(10):
            # One exchange first: the connection is up and its SETTINGS known.
            await session.send_and_read(Message("GET", server.url_for("/warm")))
            yield server, session


def upload(server: H2Server, path: str) -> Message:
    msg = Message("POST", server.url_for(path))
    msg.set_request_body_from_bytes("application/octet-stream", b"u" * (4 * HALF))
    return msg


async def until(predicate: Callable[[], object]) -> None:
    with anyio.fail_after(5):
        while not predicate():  # noqa: ASYNC110  (the counters have no change event)
            await anyio.sleep(0.01)


async def check_recovers(server: H2Server, session: Session, stream_id: int | None) -> None:
    """The stream was reset; nothing stays counted; the same connection serves on."""
    conn = server.connections[0]
    if stream_id is not None:
        await conn.wait_until(lambda: (stream_id, ErrorCodes.CANCEL) in conn.resets_received)
    stats = session.statistics()
    assert stats.streams == 0 and stats.waiting == 0, stats
    assert stats == PoolStatistics(1, 0, 1, 0, 0), stats
    assert await session.send_and_read(Message("GET", server.url_for("/next"))) == b"hello"
    assert server.accepted == 1


# -- each checkpoint, by a cancel scope ------------------------------------------


def _next_stream_id(server: H2Server) -> int:
    return max(server.connections[0].stream_ids) + 2


async def _waiting_for_head(server: H2Server, session: Session) -> int:
    sid = _next_stream_id(server)
    msg = Message("GET", server.url_for("/hold-head"))
    with anyio.move_on_after(0.3) as scope:
        await session.send(msg)
    assert scope.cancelled_caught
    return sid


async def _body_half_sent(server: H2Server, session: Session) -> int:
    sid = _next_stream_id(server)
    msg = upload(server, "/half-upload")
    conn = server.connections[0]
    async with anyio.create_task_group() as group:
        group.start_soon(session.send_and_read, msg)
        await conn.wait_until(lambda: sid in conn.streams and conn.streams[sid].data_received)
        await anyio.sleep(0.05)  # blocked on the stream's window
        assert session.statistics().streams == 1
        group.cancel_scope.cancel()
    return sid


async def _head_received(server: H2Server, session: Session) -> int:
    sid = _next_stream_id(server)
    body = await session.send(Message("GET", server.url_for("/head-only")))
    assert session.statistics().streams == 1  # the body holds its stream
    with anyio.move_on_after(0.2) as scope:
        await body.read(10)
    assert scope.cancelled_caught  # a cancelled read ends the body: its stream is reset
    await body.aclose()
    return sid


async def _body_half_read(server: H2Server, session: Session) -> int:
    sid = _next_stream_id(server)
    body = await session.send(Message("GET", server.url_for("/half-body")))
    got = b""
    with anyio.move_on_after(0.3) as scope:
        while chunk := await body.read(1 << 20):
            got += chunk
    assert scope.cancelled_caught and len(got) == HALF
    del body  # dropped unclosed: the garbage collector's discard resets the stream
    return sid


CHECKPOINTS: dict[str, Callable[[H2Server, Session], Awaitable[int]]] = {
    "waiting for the head": _waiting_for_head,
    "body half sent": _body_half_sent,
    "head received": _head_received,
    "body half read": _body_half_read,
}


@pytest.mark.parametrize("checkpoint", list(CHECKPOINTS))
async def test_cancel_at_checkpoint(
    checkpoint: str, tls_server_context, database, leak_check: LeakCheck
) -> None:
    async with h2_env(tls_server_context, database) as (server, session):
        stream_id = await CHECKPOINTS[checkpoint](server, session)
        await check_recovers(server, session, stream_id)
    await leak_check(session)


async def test_every_checkpoint_in_one_session(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    """The checkpoints one after the other on one connection: nothing accumulates."""
    async with h2_env(tls_server_context, database) as (server, session):
        for run in CHECKPOINTS.values():
            stream_id = await run(server, session)
            await check_recovers(server, session, stream_id)
    await leak_check(session)


async def test_cancel_while_waiting_for_a_stream_slot(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    limit = {SettingCodes.MAX_CONCURRENT_STREAMS: 1}
    async with h2_env(tls_server_context, database, limit) as (server, session):
        busy = await session.send(Message("GET", server.url_for("/head-only")))
        with anyio.move_on_after(0.2) as scope:
            await session.send(Message("GET", server.url_for("/waits")))
        assert scope.cancelled_caught
        stats = session.statistics()
        assert (stats.streams, stats.waiting) == (1, 0)
        await busy.aclose()
        await check_recovers(server, session, 3)
        assert server.connections[0].streams_opened == 3  # warm, busy, next: never /waits
    await leak_check(session)


async def test_cancel_while_waiting_for_the_first_connections_alpn(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    release = anyio.Event()

    async def slow_resolver(host: str, port: int) -> list[str]:
        await release.wait()
        return ["127.0.0.1"]

    async with (
        serve_h2(HANDLER, tls_server_context) as server,
        Session(tls_database=database, max_conns_per_host=4) as session,
    ):
        session._pool.resolver = slow_resolver
        url = server.url_for("/x").replace("127.0.0.1", "localhost")
        async with anyio.create_task_group() as group:
            group.start_soon(session.send_and_read, Message("GET", url))
            await until(lambda: session.statistics().connecting == 1)
            with anyio.move_on_after(0.1):
                await session.send_and_read(Message("GET", url))  # waits for the ALPN answer
            stats = session.statistics()
            assert (stats.connecting, stats.waiting) == (1, 0), stats
            release.set()
        assert server.accepted == 1
        assert session.statistics().streams == 0
    await leak_check(session)


# -- Cancellable and abort() -----------------------------------------------------


async def test_cancellable_resets_only_its_stream(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    async with h2_env(tls_server_context, database) as (server, session):
        cancellable = Cancellable()
        outcome: dict[str, object] = {}

        async def cancelled() -> None:
            try:
                await session.send_and_read(
                    Message("GET", server.url_for("/half-body")), cancellable=cancellable
                )
            except anysoup.RequestCancelled as exc:
                outcome["error"] = exc

        async with anyio.create_task_group() as group:
            group.start_soon(cancelled)
            conn = server.connections[0]
            await conn.wait_until(lambda: 3 in conn.streams and conn.streams[3].data_sent)
            other = await session.send(Message("GET", server.url_for("/head-only")))
            cancellable.cancel()
        assert isinstance(outcome["error"], anysoup.RequestCancelled)
        assert session.statistics().streams == 1  # the other stream is untouched
        await other.aclose()
        await check_recovers(server, session, 3)
    await leak_check(session)


async def test_abort_fails_every_open_stream(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    async with h2_env(tls_server_context, database) as (server, session):
        errors: list[BaseException] = []

        async def one(path: str) -> None:
            try:
                await session.send_and_read(Message("GET", server.url_for(path)))
            except anysoup.RequestCancelled as exc:
                errors.append(exc)

        async with anyio.create_task_group() as group:
            for path in ("/hold-head", "/half-body", "/head-only"):
                group.start_soon(one, path)
            await until(lambda: session.statistics().streams == 3)
            session.abort()
        assert len(errors) == 3
        assert all("aborted" in str(e) for e in errors)
        assert session.statistics() == PoolStatistics(0, 0, 0, 0, 0)
        assert await session.send_and_read(Message("GET", server.url_for("/after"))) == b"hello"
    await leak_check(session)
