"""The cache never holds a body in memory: big answers stream through it and from it.

Measured as the process's resident memory (``/proc/self/statm``) while the
body is read, against what it was before: a body that were buffered would
show as its size.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from servers import ReceivedRequest, ServerConnection, serve_http

import anysoup
from anysoup import Cache, CacheResult

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="Linux only")

MiB = 1 << 20
PIECE = b"m" * MiB
#: How much resident memory may grow while a body streams.
SLACK = 48 * MiB


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _server(size: int, headers: list[tuple[str, str]]) -> Any:
    async def handler(conn: ServerConnection, request: ReceivedRequest) -> None:
        fields = [*headers, ("Content-Length", str(size))]
        await conn.send_head(200, fields)
        if request.method != "HEAD":
            for _ in range(size // MiB):
                await conn.send_data(PIECE)
        await conn.end()

    return serve_http(handler)


async def _stream(session: anysoup.Session, url: str) -> tuple[anysoup.Message, int, int]:
    """Read the body; return the message, its length and the peak growth of memory."""
    msg = anysoup.Message("GET", url)
    base = peak = _rss()
    total = 0
    async with session.send(msg) as body:
        async for piece in body:
            total += len(piece)
            if total % (16 * MiB) < len(piece):
                peak = max(peak, _rss())
    return msg, total, max(peak, _rss()) - base


async def test_a_1_gib_no_store_answer_streams_with_flat_memory(tmp_path: Path) -> None:
    size = 1024 * MiB
    async with (
        _server(size, [("Cache-Control", "no-store")]) as server,
        anysoup.Session(features=[Cache(tmp_path / "c")]) as session,
    ):
        msg, total, growth = await _stream(session, server.url_for("/huge"))
    assert (total, msg.cache_result) == (size, CacheResult.MISS)
    assert growth < SLACK, f"memory grew by {growth / MiB:.0f} MiB"
    assert not [p for p in (tmp_path / "c").rglob("*") if p.is_file() and p.stat().st_size > MiB]


async def test_an_answer_over_the_entry_cap_is_never_buffered(tmp_path: Path) -> None:
    """Cacheable but over a tenth of max_size, with its length unknown until the end."""
    size = 256 * MiB

    async def handler(conn: ServerConnection, request: ReceivedRequest) -> None:
        await conn.send_head(200, [("Cache-Control", "max-age=60")])  # chunked
        for _ in range(size // MiB):
            await conn.send_data(PIECE)
        await conn.end()

    async with (
        serve_http(handler) as server,
        anysoup.Session(features=[Cache(max_size=100 * MiB)]) as session,
    ):
        _, total, growth = await _stream(session, server.url_for("/grows"))
        assert total == size
        assert growth < SLACK, f"memory grew by {growth / MiB:.0f} MiB"
        again = anysoup.Message("GET", server.url_for("/grows"))
        async with session.send(again) as body:
            await body.receive(10)
        assert again.cache_result is CacheResult.MISS


async def test_a_cached_64_mib_body_streams_from_disk_with_flat_memory(tmp_path: Path) -> None:
    size = 64 * MiB
    cache_dir = tmp_path / "c"
    async with _server(size, [("Cache-Control", "max-age=600")]) as server:
        async with anysoup.Session(features=[Cache(cache_dir, max_size=1024 * MiB)]) as session:
            msg, total, growth = await _stream(session, server.url_for("/big"))
            assert (total, msg.cache_result) == (size, CacheResult.MISS)
            assert growth < SLACK, f"storing: memory grew by {growth / MiB:.0f} MiB"
        async with anysoup.Session(features=[Cache(cache_dir, max_size=1024 * MiB)]) as session:
            msg, total, growth = await _stream(session, server.url_for("/big"))
            assert (total, msg.cache_result) == (size, CacheResult.HIT)
            assert growth < SLACK, f"serving: memory grew by {growth / MiB:.0f} MiB"
    assert len(server.requests) == 1
