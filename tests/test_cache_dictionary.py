"""The cache keeps compression dictionaries (RFC 9842) and offers them.

A hypercorn app serves a dictionary with ``Use-As-Dictionary`` (fresh for an
hour, optionally gzip-encoded) and ``/app/main.js`` as ``dcz`` when the
request offers that dictionary; every request's headers are recorded, so each
test checks what the cache offered as well as what was decoded.
"""

from __future__ import annotations

import gzip
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from servers import serve_asgi
from test_dictionary import AVAILABLE, BODY, DCZ_MAGIC, DICTIONARY, FRAME, SHA256

from anysoup import Cache, CacheResult, Message, Session

Seen = list[tuple[str, dict[str, str]]]
BOUND = 10.0


def make_app(seen: Seen) -> Callable[[Any, Any, Any], Awaitable[None]]:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        while (await receive()).get("more_body"):
            pass
        headers = {n.decode(): v.decode() for n, v in scope["headers"]}
        seen.append((scope["path"], headers))
        accept = [c.strip() for c in headers.get("accept-encoding", "").split(",")]
        offered = headers.get("available-dictionary") == AVAILABLE and "dcz" in accept
        fields: list[tuple[str, str]] = []
        if scope["path"] in ("/dict.js", "/dict.js.gz"):
            fields = [("use-as-dictionary", 'match="/app/*", id="v1"')]
            fields.append(("cache-control", "max-age=3600"))
            body = DICTIONARY
            if scope["path"].endswith(".gz"):
                fields.append(("content-encoding", "gzip"))
                body = gzip.compress(DICTIONARY)
        elif offered:
            fields = [("content-encoding", "dcz"), ("vary", "available-dictionary")]
            body = DCZ_MAGIC + SHA256 + FRAME
        else:
            body = BODY
        raw = [(n.encode(), v.encode()) for n, v in fields]
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    return app


@pytest.mark.parametrize("dictionary_path", ["/dict.js", "/dict.js.gz"])
async def test_a_stored_dictionary_is_offered_and_decodes(
    dictionary_path: str, tmp_path: Path, leak_check: Any
) -> None:
    seen: Seen = []
    async with serve_asgi(make_app(seen)) as base:
        async with Session(features=[Cache(tmp_path / "c")]) as session:
            with anyio.fail_after(BOUND):
                await session.send_and_read(Message("GET", f"{base}{dictionary_path}"))
                msg = Message("GET", f"{base}/app/main.js")
                assert await session.send_and_read(msg) == BODY
            assert msg.response_headers.get_one("Content-Encoding") == "dcz"
            assert msg.cache_result is CacheResult.MISS
            assert seen[-1][1].get("available-dictionary") == AVAILABLE
            assert seen[-1][1].get("dictionary-id") == '"v1"'
        await leak_check(session)
        # Another cache object on the directory (a restart) offers it too.
        async with Session(features=[Cache(tmp_path / "c")]) as session:
            with anyio.fail_after(BOUND):
                other = Message("GET", f"{base}/app/other.js")
                assert await session.send_and_read(other) == BODY
            assert seen[-1][1].get("available-dictionary") == AVAILABLE
            assert other.response_headers.get_one("Content-Encoding") == "dcz"


async def test_no_dictionary_is_offered_outside_its_pattern_or_once_stale() -> None:
    seen: Seen = []
    now = [1_900_000_000.0]
    cache = Cache()
    cache._clock = lambda: now[0]
    async with serve_asgi(make_app(seen)) as base, Session(features=[cache]) as session:
        with anyio.fail_after(BOUND):
            await session.send_and_read(Message("GET", f"{base}/dict.js"))
            await session.send_and_read(Message("GET", f"{base}/elsewhere.js"))
            assert "available-dictionary" not in seen[-1][1]
            now[0] += 7200  # the dictionary's response is stale: not usable (RFC 9842 §2.2.1)
            assert await session.send_and_read(Message("GET", f"{base}/app/x.js")) == BODY
            assert "available-dictionary" not in seen[-1][1]
