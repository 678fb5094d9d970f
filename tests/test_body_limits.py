"""``send_and_read(max_size=…)`` and the memory a whole body costs.

A body over ``max_size`` raises :class:`anysoup.BodyTooLarge` as soon as the
decoded body passes the limit, or before any of it is read when its
Content-Length says so; the connection is then closed, never reused, and the
session goes on. A body read whole costs about its own size, plain or
decoded, not twice. The servers are the scripted h11 ones of ``servers.py``
on loopback, on both backends; ``leak_check`` makes sure each session left
nothing behind.
"""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable

import anyio
import brotli
import pytest
import zstandard
from servers import ReceivedRequest, ServerConnection, serve_http

from anysoup import BodyTooLarge, ContentSniffer, Error, Message, Session

LeakCheck = Callable[[Session], Awaitable[None]]
Handler = Callable[[ServerConnection, ReceivedRequest], Awaitable[None]]

#: No test here may take longer than this.
BOUND = 10.0
#: Bytes h11's client asks of the socket per read: the most a limit may overshoot.
ONE_READ = 65536
#: Text that compresses like a web page, 16 MiB of it.
_WORDS = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
BIG = (_WORDS * ((16 << 20) // len(_WORDS) + 1))[: 16 << 20]

ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "identity": lambda data: data,
    "gzip": gzip.compress,
    "br": lambda data: bytes(brotli.compress(data, quality=5)),
    "zstd": zstandard.ZstdCompressor(level=3).compress,
}


def answer(body: bytes, coding: str = "identity", *, chunked: bool = False) -> Handler:
    """Answer every request with ``body`` (already encoded), in 64 KiB pieces."""
    fields = [("Content-Type", "application/octet-stream")]
    if coding != "identity":
        fields.append(("Content-Encoding", coding))
    if not chunked:
        fields.append(("Content-Length", str(len(body))))

    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        await conn.send_head(200, fields)
        if req.method != "HEAD":
            for i in range(0, len(body), ONE_READ):
                await conn.send_data(body[i : i + ONE_READ])
        await conn.end()

    return handler


def counting(msg: Message) -> list[int]:
    """Count the bytes of body that came off the wire for ``msg`` (before decoding)."""
    seen = [0]

    def got(msg: Message, chunk: bytes) -> None:
        seen[0] += len(chunk)

    msg.got_body_data.connect(got)
    return seen


async def refused(session: Session, url: str, max_size: int) -> tuple[Message, BodyTooLarge]:
    """GET ``url`` with ``max_size``: it must raise BodyTooLarge for that message."""
    msg = Message("GET", url)
    with anyio.fail_after(BOUND), pytest.raises(BodyTooLarge) as info:
        await session.send_and_read(msg, max_size=max_size)
    assert info.value.message is msg
    assert isinstance(info.value, Error)
    return msg, info.value


async def goes_on(session: Session, url: str) -> None:
    """The session is consistent after a refusal: nothing in use, the next request works."""
    stats = session.statistics()
    assert (stats.in_use, stats.idle) == (0, 0), stats  # the connection was closed
    with anyio.fail_after(BOUND):
        assert await session.send_and_read(Message("GET", url), max_size=1 << 30)


# -- the limit -------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
async def test_a_body_of_exactly_max_size_is_read(chunked: bool, leak_check: LeakCheck) -> None:
    body = BIG[:200_000]
    async with serve_http(answer(body, chunked=chunked)) as server:
        async with Session() as session:
            with anyio.fail_after(BOUND):
                for _ in range(2):
                    msg = Message("GET", server.url_for("/"))
                    assert await session.send_and_read(msg, max_size=len(body)) == body
        await leak_check(session)
    assert server.connections == 1  # a body within the limit leaves the connection reusable


async def test_content_length_over_max_size_is_refused_before_reading(
    leak_check: LeakCheck,
) -> None:
    # The server sends the head and then nothing: reading any body would hang.
    async def head_only(conn: ServerConnection, req: ReceivedRequest) -> None:
        if req.target == "/next":
            await conn.respond(200, [], b"next")
            return
        await conn.send_head(200, [("Content-Length", str(100 << 20))])
        await anyio.sleep_forever()

    async with serve_http(head_only) as server:
        async with Session() as session:
            msg, error = await refused(session, server.url_for("/"), 1 << 20)
            assert str(error) == (
                f"reading the response body from 127.0.0.1:{server.port}: its Content-Length, "
                f"{100 << 20} bytes, is over max_size ({1 << 20} bytes)"
            )
            assert msg.status == 200
            await goes_on(session, server.url_for("/next"))
        await leak_check(session)
    assert server.connections == 2


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
async def test_over_max_size_stops_within_one_read(chunked: bool, leak_check: LeakCheck) -> None:
    limit = 1 << 20
    async with serve_http(answer(BIG, chunked=chunked)) as server:
        async with Session() as session:
            msg = Message("GET", server.url_for("/"))
            seen = counting(msg)
            with anyio.fail_after(BOUND), pytest.raises(BodyTooLarge) as info:
                await session.send_and_read(msg, max_size=limit)
            assert info.value.message is msg
            if chunked:
                assert limit < seen[0] <= limit + ONE_READ, seen
                assert str(info.value).endswith(f": it is over max_size ({limit} bytes)")
            else:
                assert seen[0] == 0, seen  # Content-Length told: nothing was read
                assert "its Content-Length" in str(info.value)
            await goes_on(session, server.url_for("/"))
        await leak_check(session)


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
async def test_the_decoded_size_counts(coding: str, leak_check: LeakCheck) -> None:
    limit = 1 << 20
    encoded = ENCODERS[coding](BIG)
    assert len(encoded) < limit  # the wire carries less than the limit
    async with serve_http(answer(encoded, coding)) as server:
        async with Session() as session:
            _, error = await refused(session, server.url_for("/"), limit)
            assert str(error) == (
                f"reading the response body from 127.0.0.1:{server.port}: "
                f"it is over max_size ({limit} bytes)"
            )
            await goes_on(session, server.url_for("/"))
        await leak_check(session)


def nested_gzip_bomb(gib: int) -> bytes:
    """``gzip(gzip(zeros))``: ``gib`` GiB of zeros in a few KiB.

    After a full flush, deflate starts afresh and byte-aligned: each MiB of
    zeros compresses to the same bytes, so the inner stream is one piece
    repeated, which the outer gzip squeezes in turn.
    """
    inner = zlib.compressobj(9, zlib.DEFLATED, 31)
    outer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    out = [outer.compress(inner.compress(block) + inner.flush(zlib.Z_FULL_FLUSH))]
    piece = inner.compress(block) + inner.flush(zlib.Z_FULL_FLUSH)
    out += [outer.compress(piece) for _ in range(gib * 1024 - 1)]
    out += [outer.compress(inner.flush()), outer.flush()]
    return b"".join(out)


async def test_nested_gzip_bomb_fails_fast_at_low_memory(leak_check: LeakCheck) -> None:
    bomb = nested_gzip_bomb(1)  # 1 GiB decoded
    assert len(bomb) < 4096
    limit = 1 << 20
    async with serve_http(answer(bomb, "gzip, gzip")) as server:
        async with Session() as session:
            tracemalloc.start()
            try:
                with anyio.fail_after(2):
                    await refused(session, server.url_for("/"), limit)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            stats = session.statistics()
            assert (stats.in_use, stats.idle) == (0, 0), stats
        await leak_check(session)
    assert peak < 4 * limit, f"peak {peak} bytes for a limit of {limit}"


async def test_what_the_sniffer_read_counts(leak_check: LeakCheck) -> None:
    # ContentSniffer reads ahead (512 bytes) before send() returns: a smaller
    # limit is passed already when send_and_read sets it.
    async with serve_http(answer(BIG[:2000], chunked=True)) as server:
        async with Session(features=[ContentSniffer()]) as session:
            await refused(session, server.url_for("/"), 100)
            await goes_on(session, server.url_for("/"))
        await leak_check(session)


async def test_responses_without_a_body_pass_any_limit(leak_check: LeakCheck) -> None:
    async def no_body(conn: ServerConnection, req: ReceivedRequest) -> None:
        if req.target == "/204":
            await conn.respond(204)
        else:
            await conn.respond(200, [("Content-Length", "1000")], b"x" * 1000)

    async with serve_http(no_body) as server:
        async with Session() as session:
            with anyio.fail_after(BOUND):
                head = Message("HEAD", server.url_for("/"))  # Content-Length 1000, no body
                assert await session.send_and_read(head, max_size=0) == b""
                empty = Message("GET", server.url_for("/204"))
                assert await session.send_and_read(empty, max_size=0) == b""
            await refused(session, server.url_for("/"), 0)
        await leak_check(session)


async def test_cancelled_while_reading_under_a_limit(leak_check: LeakCheck) -> None:
    # Half the body, then a stall: the caller's deadline cancels the read.
    async def stall(conn: ServerConnection, req: ReceivedRequest) -> None:
        if req.target == "/next":
            await conn.respond(200, [], b"next")
            return
        await conn.send_head(200, [("Content-Length", str(len(BIG)))])
        await conn.send_data(BIG[: 1 << 20])
        await anyio.sleep_forever()

    async with serve_http(stall) as server:
        async with Session() as session:
            with anyio.move_on_after(0.5) as scope:
                await session.send_and_read(Message("GET", server.url_for("/")), max_size=1 << 30)
            assert scope.cancelled_caught
            await goes_on(session, server.url_for("/next"))
        await leak_check(session)


@pytest.mark.parametrize("value", [-1, 1.5, "10", True])
async def test_max_size_must_be_a_number_of_bytes(value: object) -> None:
    async with Session() as session:
        msg = Message("GET", "http://127.0.0.1:9/")
        with pytest.raises(ValueError, match=r"max_size: .* is not a number of bytes >= 0"):
            await session.send_and_read(msg, max_size=value)  # type: ignore[arg-type]


# -- memory ----------------------------------------------------------------------------


@pytest.mark.parametrize("coding", ["identity", "gzip", "br", "zstd"])
async def test_a_body_read_whole_costs_about_its_size(coding: str, leak_check: LeakCheck) -> None:
    # Pieces joined at the end held the body twice (three times for gzip, whose
    # input was joined too); grown in place, the body costs its size plus the
    # buffer's growth step (1/8) and a piece.
    encoded = ENCODERS[coding](BIG)
    async with serve_http(answer(encoded, coding)) as server:
        async with Session() as session:
            with anyio.fail_after(BOUND):
                await session.send_and_read(Message("GET", server.url_for("/")))  # warm up
                tracemalloc.start()
                try:
                    base = tracemalloc.get_traced_memory()[0]
                    body = await session.send_and_read(Message("GET", server.url_for("/")))
                    peak = tracemalloc.get_traced_memory()[1] - base
                finally:
                    tracemalloc.stop()
        await leak_check(session)
    size = len(body)
    assert body == BIG
    assert peak < 1.15 * size + ONE_READ * 4, f"peak {peak / size:.2f}x the body"
