"""Request bodies: early answers while a body goes out, and bodies sent without copies.

A server may answer before the request body is complete (RFC 9110 §15.5.14:
a 413, or a 401 to a request it won't read) and then close, or just stop
reading. The client returns that answer instead of a broken pipe or a
timeout, as curl and httpcore do; the connection is then not reused. And a
``bytes`` body goes out in slices of itself, never copied whole.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import pytest
from servers import ServerConnection, serve_raw

import anysoup

LeakCheck = Callable[[anysoup.Session], Awaitable[None]]
BOUND = 10.0
MiB = 1024 * 1024


def early_answer(status: int, *, close: bool) -> Callable[[ServerConnection], Awaitable[None]]:
    """Answer ``status`` as soon as the head is in, without reading the body.

    With ``close`` the server then closes (the client's writes fail); without
    it the server keeps the connection open and reads nothing more (the
    client's writes stall once the socket buffers are full).
    """

    async def handler(conn: ServerConnection) -> None:
        await conn.stream.receive_until(b"\r\n\r\n", 65536)
        reason = {401: b"Unauthorized", 413: b"Content Too Large"}[status]
        body = b"no, thanks"
        await conn.send_raw(
            b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (status, reason, len(body), body)
        )
        if not close:
            await anyio.sleep(BOUND)

    return handler


async def stream_of(size: int, piece: int = 64 * 1024) -> AsyncIterator[bytes]:
    block = b"s" * piece
    for _ in range(size // piece):
        yield block


@pytest.mark.parametrize("close", [True, False], ids=["then closes", "then stops reading"])
@pytest.mark.parametrize("kind", ["bytes", "stream"])
@pytest.mark.parametrize("status", [413, 401])
async def test_an_answer_before_the_body_is_done_is_returned(
    status: int, kind: str, close: bool, leak_check: LeakCheck
) -> None:
    size = 32 * MiB  # far more than the socket buffers hold
    async with serve_raw(early_answer(status, close=close)) as server:
        async with anysoup.Session(timeout=BOUND) as session:
            msg = anysoup.Message("POST", server.url_for("/upload"))
            if kind == "bytes":
                msg.set_request_body("application/octet-stream", b"b" * size)
            else:
                msg.set_request_body("application/octet-stream", stream_of(size))
            with anyio.fail_after(BOUND / 2):
                body = await session.send_and_read(msg)
            assert (msg.status, body) == (status, b"no, thanks")
            stats = session.statistics()
            assert (stats.in_use, stats.idle) == (0, 0), stats  # not kept for reuse
        await leak_check(session)


async def test_a_small_body_refused_at_once(leak_check: LeakCheck) -> None:
    async with serve_raw(early_answer(413, close=True)) as server:
        async with anysoup.Session() as session:
            msg = anysoup.Message("POST", server.url_for("/"), body=b"small")
            with anyio.fail_after(BOUND):
                assert await session.send_and_read(msg) == b"no, thanks"
            assert msg.status == 413
        await leak_check(session)


async def test_a_failed_upload_without_an_answer_is_still_an_error(
    leak_check: LeakCheck,
) -> None:
    async def hang_up(conn: ServerConnection) -> None:
        await conn.stream.receive_until(b"\r\n\r\n", 65536)
        await conn.reset()

    async with serve_raw(hang_up) as server:
        async with anysoup.Session() as session:
            msg = anysoup.Message("POST", server.url_for("/"))
            msg.set_request_body("application/octet-stream", b"b" * (16 * MiB))
            with anyio.fail_after(BOUND), pytest.raises(anysoup.NetworkError) as info:
                await session.send_and_read(msg)
            text = str(info.value)
            assert f"127.0.0.1:{server.port}" in text and "writing request" in text, text
        await leak_check(session)


def discarding_server(size: int) -> Callable[[ServerConnection], Awaitable[None]]:
    """Read the head and ``size`` bytes of body without keeping them, then answer."""

    async def handler(conn: ServerConnection) -> None:
        await conn.stream.receive_until(b"\r\n\r\n", 65536)
        left = size
        while left > 0:
            left -= len(await conn.stream.receive(min(left, 65536)))
        await conn.send_raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    return handler


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_bytes_body_is_not_copied(
    scheme: str,
    tls_server_context: object,
    tls_ca_pem: bytes,
    leak_check: LeakCheck,
) -> None:
    size = 64 * MiB
    body = b"u" * size
    context = tls_server_context if scheme == "https" else None
    async with serve_raw(discarding_server(size), ssl_context=context) as server:  # type: ignore[arg-type]
        database = anysoup.TlsDatabase.from_pem(tls_ca_pem)
        async with anysoup.Session(tls_database=database) as session:
            msg = anysoup.Message("POST", server.url_for("/"))
            msg.set_request_body("application/octet-stream", body)
            tracemalloc.start()
            try:
                with anyio.fail_after(BOUND * 3):
                    assert await session.send_and_read(msg) == b"ok"
                _now, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        await leak_check(session)
    # What sending allocated beside the body: slices in flight, not a copy.
    assert peak < size // 5, f"{peak / MiB:.1f} MiB allocated to send {size // MiB} MiB"


async def test_the_programs_body_generator_is_closed_when_the_upload_stops(
    leak_check: LeakCheck,
) -> None:
    closed: list[bool] = []

    async def body() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"g" * 65536
        finally:
            closed.append(True)

    async with serve_raw(early_answer(413, close=False)) as server:
        async with anysoup.Session() as session:
            msg = anysoup.Message("POST", server.url_for("/"))
            msg.set_request_body("application/octet-stream", body())
            with anyio.fail_after(BOUND):
                assert await session.send_and_read(msg) == b"no, thanks"
            assert closed == [True]  # now, not when it is garbage-collected
        await leak_check(session)
