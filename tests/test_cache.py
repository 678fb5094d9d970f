"""The Cache feature on a real loopback server: hits, validation, variants, invalidation.

The rules themselves are tested as tables in ``test_cache_rules.py`` and the
storage in ``test_cache_storage.py``; here a scripted h11 server answers as
each test needs, the cache's clock is the test's (no sleeps for freshness),
and every test checks what the server saw.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any

import anyio
import pytest
from servers import ReceivedRequest, ServerConnection, serve_http

import anysoup
from anysoup import Cache, CacheResult, CacheType

T0 = 1_800_000_000.0

Answer = tuple[int, list[tuple[str, str]], bytes]
Script = Callable[[ReceivedRequest], Answer]


class Clock:
    """The cache's wall clock, moved by the test; the scripted server's Date follows it."""

    current: Clock | None = None

    def __init__(self) -> None:
        self.now = T0
        Clock.current = self

    def __call__(self) -> float:
        return self.now


def _date() -> str:
    now = Clock.current.now if Clock.current is not None else T0
    return formatdate(now, usegmt=True)


def _cache(clock: Clock, *args: Any, **kwargs: Any) -> Cache:
    cache = Cache(*args, **kwargs)
    cache._clock = clock
    return cache


def _serve(scripts: dict[str, Script]) -> Any:
    async def handler(conn: ServerConnection, request: ReceivedRequest) -> None:
        path = request.target.split("?")[0]
        status, headers, body = scripts[path](request)
        await conn.respond(status, headers, body)

    return serve_http(handler)


def _fixed(headers: list[tuple[str, str]], body: bytes = b"hello", status: int = 200) -> Script:
    def script(request: ReceivedRequest) -> Answer:
        return status, [("Date", _date()), *headers], body

    return script


async def _get(
    session: anysoup.Session, url: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[anysoup.Message, bytes]:
    msg = anysoup.Message(method, url, headers=headers)
    body = await session.send_and_read(msg)
    return msg, body


async def test_fresh_answer_is_served_from_the_cache(leak_check: Any) -> None:
    clock = Clock()
    scripts = {"/a": _fixed([("Cache-Control", "max-age=60")])}
    async with (
        _serve(scripts) as server,
        anysoup.Session(features=[_cache(clock)]) as session,
    ):
        first, body = await _get(session, server.url_for("/a"))
        assert (body, first.cache_result) == (b"hello", CacheResult.MISS)
        clock.now += 30
        events: list[str] = []
        second = anysoup.Message("GET", server.url_for("/a"))
        for name in ("starting", "got_headers", "got_body", "finished", "wrote_headers"):
            getattr(second, name).connect(lambda msg, *a, n=name: events.append(n))
        assert await session.send_and_read(second) == b"hello"
        assert second.cache_result is CacheResult.HIT
        assert second.status == 200
        assert second.response_headers.get_one("Age") == "30"
        assert events == ["starting", "got_headers", "got_body", "finished"]
    await leak_check(session)
    assert len(server.requests) == 1


async def test_stale_answer_is_validated_and_a_304_serves_the_stored_body() -> None:
    clock = Clock()

    def script(request: ReceivedRequest) -> Answer:
        if request.header("if-none-match") == '"v1"':
            return 304, [("Date", _date()), ("ETag", '"v1"'), ("X-New", "yes")], b""
        headers = [("Date", _date()), ("ETag", '"v1"'), ("Cache-Control", "max-age=10")]
        return 200, [*headers, ("Content-Type", "text/plain")], b"stored body"

    async with (
        _serve({"/v": script}) as server,
        anysoup.Session(features=[_cache(clock)]) as session,
    ):
        await _get(session, server.url_for("/v"))
        clock.now += 60
        statuses: list[int] = []
        msg = anysoup.Message("GET", server.url_for("/v"))
        msg.got_headers.connect(lambda m: statuses.append(m.status))
        assert await session.send_and_read(msg) == b"stored body"
        assert msg.status == 200 and statuses == [200]  # never a 304 it didn't ask for
        assert msg.cache_result is CacheResult.REVALIDATED
        assert msg.response_headers.get_one("X-New") == "yes"
        assert msg.response_headers.get_one("Content-Type") == "text/plain"
        assert "If-None-Match" not in msg.request_headers  # ours, taken back
        # Freshened by the 304: served again without asking.
        again, body = await _get(session, server.url_for("/v"))
        assert (again.cache_result, body) == (CacheResult.HIT, b"stored body")
    assert [r.header("if-none-match") for r in server.requests] == [None, '"v1"']


async def test_own_validators_get_the_304() -> None:
    clock = Clock()

    def script(request: ReceivedRequest) -> Answer:
        if request.header("if-none-match") == '"e"':
            return 304, [("Date", _date()), ("ETag", '"e"')], b""
        return 200, [("Date", _date()), ("ETag", '"e"'), ("Cache-Control", "max-age=60")], b"x"

    async with (
        _serve({"/e": script}) as server,
        anysoup.Session(features=[_cache(clock)]) as session,
    ):
        await _get(session, server.url_for("/e"))
        msg, body = await _get(session, server.url_for("/e"), {"If-None-Match": '"e"'})
        assert (msg.status, body) == (304, b"")
    assert len(server.requests) == 2


async def test_no_store_is_never_stored_and_no_cache_always_revalidates() -> None:
    clock = Clock()
    scripts = {
        "/ns": _fixed([("Cache-Control", "no-store, max-age=60")]),
        "/nc": _fixed([("Cache-Control", "no-cache, max-age=60"), ("ETag", '"n"')]),
    }
    async with _serve(scripts) as server, anysoup.Session(features=[_cache(clock)]) as session:
        for _ in range(2):
            msg, _ = await _get(session, server.url_for("/ns"))
            assert msg.cache_result is CacheResult.MISS
        await _get(session, server.url_for("/nc"))
        msg, body = await _get(session, server.url_for("/nc"))
        assert body == b"hello"
    paths = [(r.target, r.header("if-none-match")) for r in server.requests]
    assert paths == [("/ns", None), ("/ns", None), ("/nc", None), ("/nc", '"n"')]


async def test_vary_keeps_one_variant_per_request_value() -> None:
    clock = Clock()

    def script(request: ReceivedRequest) -> Answer:
        lang = request.header("accept-language") or "none"
        headers = [("Date", _date()), ("Cache-Control", "max-age=60"), ("Vary", "Accept-Language")]
        return 200, headers, lang.encode()

    star = _fixed([("Vary", "*"), ("Cache-Control", "max-age=60")])
    async with (
        _serve({"/l": script, "/star": star}) as server,
        anysoup.Session(features=[_cache(clock)]) as session,
    ):
        for lang in ("fr", "de", "fr", "de"):
            _, body = await _get(session, server.url_for("/l"), {"Accept-Language": lang})
            assert body == lang.encode()
        _, body = await _get(session, server.url_for("/l"))
        assert body == b"none"
        for _ in range(2):
            msg, _ = await _get(session, server.url_for("/star"))
            assert msg.cache_result is CacheResult.MISS
    assert [r.target for r in server.requests] == ["/l", "/l", "/l", "/star", "/star"]


async def test_unsafe_method_invalidates_target_and_same_origin_location() -> None:
    clock = Clock()
    scripts = {
        "/item": _fixed([("Cache-Control", "max-age=600")]),
        "/other": _fixed([("Cache-Control", "max-age=600")]),
        "/post": _fixed([("Location", "/other")], b"done", 201),
    }
    async with _serve(scripts) as server, anysoup.Session(features=[_cache(clock)]) as session:
        await _get(session, server.url_for("/item"))
        await _get(session, server.url_for("/other"))
        await _get(session, server.url_for("/post"), method="POST")
        msg, _ = await _get(session, server.url_for("/other"))
        assert msg.cache_result is CacheResult.MISS
        msg, _ = await _get(session, server.url_for("/item"))
        assert msg.cache_result is CacheResult.HIT
        await _get(session, server.url_for("/item"), method="DELETE")
        msg, _ = await _get(session, server.url_for("/item"))
        assert msg.cache_result is CacheResult.MISS


async def test_stale_if_error_serves_the_stale_answer_when_the_server_is_down(
    tmp_path: Path,
) -> None:
    clock = Clock()
    headers = [("Cache-Control", "max-age=10, stale-if-error=600"), ("ETag", '"s"')]
    async with _serve({"/s": _fixed(headers, b"old")}) as server:
        url = server.url_for("/s")
        async with anysoup.Session(features=[_cache(clock, tmp_path)]) as session:
            await _get(session, url)
    clock.now += 100
    # The server is gone; a new session (and cache object) on the same directory.
    async with anysoup.Session(features=[_cache(clock, tmp_path)]) as session:
        msg, body = await _get(session, url)
        assert (body, msg.cache_result) == (b"old", CacheResult.STALE)
        clock.now += 1000  # past the window: the error goes through
        with pytest.raises(anysoup.ConnectError):
            await _get(session, url)


async def test_stale_if_error_on_a_5xx_answer() -> None:
    clock = Clock()
    state = {"down": False}

    def script(request: ReceivedRequest) -> Answer:
        if state["down"]:
            return 503, [("Date", _date())], b"down"
        return 200, [("Date", _date()), ("Cache-Control", "max-age=1, stale-if-error=60")], b"up"

    async with (
        _serve({"/f": script}) as server,
        anysoup.Session(features=[_cache(clock)]) as session,
    ):
        await _get(session, server.url_for("/f"))
        state["down"] = True
        clock.now += 10
        msg, body = await _get(session, server.url_for("/f"))
        assert (msg.status, body, msg.cache_result) == (200, b"up", CacheResult.STALE)


async def test_only_if_cached_without_an_entry_is_504() -> None:
    clock = Clock()
    async with (
        _serve({"/o": _fixed([("Cache-Control", "max-age=60")])}) as server,
        anysoup.Session(features=[_cache(clock)]) as session,
    ):
        headers = {"Cache-Control": "only-if-cached"}
        msg, body = await _get(session, server.url_for("/o"), headers)
        assert (msg.status, body, msg.cache_result) == (504, b"", CacheResult.MISS)
        await _get(session, server.url_for("/o"))
        msg, body = await _get(session, server.url_for("/o"), headers)
        assert (msg.status, body, msg.cache_result) == (200, b"hello", CacheResult.HIT)
    assert len(server.requests) == 1


async def test_range_bypasses_and_head_is_answered_from_get() -> None:
    clock = Clock()
    async with (
        _serve({"/r": _fixed([("Cache-Control", "max-age=60")], b"0123456789")}) as server,
        anysoup.Session(features=[_cache(clock)]) as session,
    ):
        await _get(session, server.url_for("/r"))
        msg, body = await _get(session, server.url_for("/r"), {"Range": "bytes=0-1"})
        assert msg.cache_result is CacheResult.NONE
        msg, body = await _get(session, server.url_for("/r"), method="HEAD")
        assert (msg.cache_result, body) == (CacheResult.HIT, b"")
        assert msg.response_headers.get_content_length() == 10
    assert [(r.method, r.header("range")) for r in server.requests] == [
        ("GET", None),
        ("GET", "bytes=0-1"),
    ]


async def test_stored_bytes_are_still_encoded_and_decoded_on_each_hit() -> None:
    clock = Clock()
    packed = gzip.compress(b"unpacked text" * 10)
    headers = [("Cache-Control", "max-age=60"), ("Content-Encoding", "gzip")]
    async with (
        _serve({"/z": _fixed(headers, packed)}) as server,
        anysoup.Session(features=[_cache(clock)]) as session,
    ):
        _, body = await _get(session, server.url_for("/z"))
        assert body == b"unpacked text" * 10
        msg, body = await _get(session, server.url_for("/z"))
        assert (msg.cache_result, body) == (CacheResult.HIT, b"unpacked text" * 10)
        raw = anysoup.Message("GET", server.url_for("/z"))
        raw.disable_feature(anysoup.ContentDecoder)
        assert await session.send_and_read(raw) == packed
        assert raw.cache_result is CacheResult.HIT


async def test_cookies_from_a_cached_answer_are_not_stored_twice() -> None:
    clock = Clock()
    headers = [("Cache-Control", "max-age=60"), ("Set-Cookie", "k=v; Max-Age=600")]
    async with _serve({"/c": _fixed(headers)}) as server:
        jar = anysoup.CookieJar()
        changes: list[object] = []
        jar.changed.connect(lambda j, old, new: changes.append(new))
        async with anysoup.Session(features=[_cache(clock), jar]) as session:
            await _get(session, server.url_for("/c"))
            assert len(changes) == 1
            for cookie in jar.all_cookies():
                jar.delete_cookie(cookie)
            msg, _ = await _get(session, server.url_for("/c"))
            assert msg.cache_result is CacheResult.HIT
            assert jar.all_cookies() == []  # the hit did not bring the cookie back


async def test_logger_marks_a_cached_answer() -> None:
    clock = Clock()
    lines: list[str] = []
    logger = anysoup.Logger(anysoup.LoggerLogLevel.HEADERS)
    logger.set_printer(lambda lg, level, direction, data: lines.append(f"{direction} {data}"))
    async with (
        _serve({"/g": _fixed([("Cache-Control", "max-age=60")])}) as server,
        anysoup.Session(features=[_cache(clock), logger]) as session,
    ):
        await _get(session, server.url_for("/g"))
        lines.clear()
        await _get(session, server.url_for("/g"))
    assert "< Soup-Debug-Cache: hit" in lines
    assert any(line.startswith("> GET /g HTTP/1.1") for line in lines)
    assert any("answered by the cache" in line for line in lines)


async def test_redirect_from_the_cache_is_followed() -> None:
    clock = Clock()
    scripts = {
        "/old": _fixed([("Location", "/new"), ("Cache-Control", "max-age=60")], b"", 301),
        "/new": _fixed([("Cache-Control", "max-age=60")], b"new place"),
    }
    async with _serve(scripts) as server, anysoup.Session(features=[_cache(clock)]) as session:
        await _get(session, server.url_for("/old"))
        msg, body = await _get(session, server.url_for("/old"))
        assert (body, msg.cache_result, msg.uri.path) == (b"new place", CacheResult.HIT, "/new")
    assert [r.target for r in server.requests] == ["/old", "/new"]


async def test_a_body_closed_early_is_not_stored() -> None:
    clock = Clock()
    async with (
        _serve({"/b": _fixed([("Cache-Control", "max-age=60")], b"x" * 200_000)}) as server,
        anysoup.Session(features=[_cache(clock)]) as session,
    ):
        async with session.send(anysoup.Message("GET", server.url_for("/b"))) as body:
            await body.receive(10)
        msg, body_bytes = await _get(session, server.url_for("/b"))
        assert (msg.cache_result, len(body_bytes)) == (CacheResult.MISS, 200_000)
        msg, _ = await _get(session, server.url_for("/b"))
        assert msg.cache_result is CacheResult.HIT


async def test_an_entry_over_a_tenth_of_max_size_is_not_stored() -> None:
    clock = Clock()
    scripts = {
        "/big": _fixed([("Cache-Control", "max-age=60")], b"x" * 2000),
        "/small": _fixed([("Cache-Control", "max-age=60")], b"x" * 50),
    }
    async with (
        _serve(scripts) as server,
        anysoup.Session(features=[_cache(clock, max_size=10_000)]) as session,
    ):
        for path, result in (("/big", CacheResult.MISS), ("/small", CacheResult.HIT)):
            await _get(session, server.url_for(path))
            msg, _ = await _get(session, server.url_for(path))
            assert msg.cache_result is result


async def test_shared_cache_keeps_private_answers_out() -> None:
    clock = Clock()
    scripts = {"/p": _fixed([("Cache-Control", "private, max-age=60")])}
    async with _serve(scripts) as server:
        for cache_type, result in (
            (CacheType.SHARED, CacheResult.MISS),
            (CacheType.SINGLE_USER, CacheResult.HIT),
        ):
            async with anysoup.Session(features=[_cache(clock, None, cache_type)]) as session:
                await _get(session, server.url_for("/p"))
                msg, _ = await _get(session, server.url_for("/p"))
                assert msg.cache_result is result


async def test_stale_while_revalidate_serves_then_validates_in_the_background() -> None:
    clock = Clock()
    seen = anyio.Event()

    def script(request: ReceivedRequest) -> Answer:
        headers = [
            ("Date", _date()),
            ("ETag", '"w"'),
            ("Cache-Control", "max-age=1, stale-while-revalidate=60"),
        ]
        if request.header("if-none-match") == '"w"':
            seen.set()
            return 304, headers, b""
        return 200, headers, b"swr"

    async with (
        _serve({"/w": script}) as server,
        anysoup.Session(features=[_cache(clock)]) as session,
    ):
        await _get(session, server.url_for("/w"))
        clock.now += 5
        msg, body = await _get(session, server.url_for("/w"))
        assert (body, msg.cache_result) == (b"swr", CacheResult.STALE)
        with anyio.fail_after(5):
            await seen.wait()
    assert [r.header("if-none-match") for r in server.requests] == [None, '"w"']


async def test_a_disk_cache_survives_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    async with (
        _serve({"/d": _fixed([("Cache-Control", "max-age=60")], b"on disk")}) as server,
        anysoup.Session(features=[_cache(clock, tmp_path / "c")]) as session,
    ):
        await _get(session, server.url_for("/d"))
        async with anysoup.Session(features=[_cache(clock, tmp_path / "c")]) as session:
            msg, body = await _get(session, server.url_for("/d"))
            assert (body, msg.cache_result) == (b"on disk", CacheResult.HIT)
    assert len(server.requests) == 1
    assert (tmp_path / "c").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("where", ["memory", "disk"])
async def test_cancelling_a_hit_or_a_teed_miss_leaves_nothing_behind(
    where: str, tmp_path: Path, leak_check: Any
) -> None:
    clock = Clock()
    body = b"y" * 300_000
    async with _serve({"/k": _fixed([("Cache-Control", "max-age=60")], body)}) as server:
        cache = _cache(clock, None if where == "memory" else tmp_path / "c")
        async with anysoup.Session(features=[cache]) as session:
            with anyio.CancelScope() as scope:
                async with session.send(anysoup.Message("GET", server.url_for("/k"))) as stream:
                    await stream.receive(1000)
                    scope.cancel()
                    await anyio.sleep(1)
            msg, got = await _get(session, server.url_for("/k"))
            assert (msg.cache_result, got) == (CacheResult.MISS, body)
            with anyio.CancelScope() as scope:
                async with session.send(anysoup.Message("GET", server.url_for("/k"))) as stream:
                    await stream.receive(1000)
                    scope.cancel()
                    await anyio.sleep(1)
            msg, got = await _get(session, server.url_for("/k"))
            assert (msg.cache_result, got) == (CacheResult.HIT, body)
            assert session.statistics().in_use == 0
        await leak_check(session)


async def test_feature_api() -> None:
    cache = Cache(max_size=1000)
    assert (cache.cache_dir, cache.cache_type, cache.max_size) == (
        None,
        CacheType.SINGLE_USER,
        1000,
    )
    cache.set_max_size(2000)
    assert cache.get_max_size() == 2000
    with pytest.raises(ValueError, match="max_size"):
        Cache(max_size=-1)
    await cache.clear()
    await cache.flush()
    await cache.dump()
    await cache.load()
    assert "in memory" in repr(cache)


# -- httpbin: a third-party server ------------------------------------------------


@pytest.fixture
def httpbin_url(httpbin: Any) -> str:
    return str(httpbin.url)


async def test_httpbin_cache_endpoints(httpbin_url: str, leak_check: Any) -> None:
    async with anysoup.Session(features=[Cache()]) as session:
        results = []
        for path in ("/cache/60", "/cache/60", "/cache", "/cache", "/etag/abc", "/etag/abc"):
            msg, _ = await _get(session, httpbin_url + path)
            results.append((path, msg.status, msg.cache_result))
        query = "/response-headers?Cache-Control=max-age%3D60&X-Thing=1"
        for _ in range(2):
            msg, body = await _get(session, httpbin_url + query)
            results.append(("query", msg.status, msg.cache_result))
        assert b"X-Thing" in body
    await leak_check(session)
    assert results == [
        ("/cache/60", 200, CacheResult.MISS),
        ("/cache/60", 200, CacheResult.HIT),
        ("/cache", 200, CacheResult.MISS),
        ("/cache", 200, CacheResult.REVALIDATED),  # no freshness: validated, httpbin says 304
        ("/etag/abc", 200, CacheResult.MISS),
        ("/etag/abc", 200, CacheResult.REVALIDATED),
        (
            "query",
            200,
            CacheResult.MISS,
        ),  # a query with explicit freshness is cached (not libsoup)
        ("query", 200, CacheResult.HIT),
    ]


# -- cancellation at every checkpoint of the cache's path --------------------------

#: Where a request through the cache can be cancelled: the storage's steps and
#: the message's signals, for a miss (stored), a hit and a validation.
CHECKPOINTS = {
    "miss": ["lookup", "begin", "write", "commit", "got_headers", "got_body", "finished"],
    "hit": [
        "lookup",
        "open_body",
        "read_chunk",
        "starting",
        "got_headers",
        "got_body",
        "finished",
    ],
    "validation": ["lookup", "update", "open_body", "read_chunk", "got_headers", "finished"],
}


class _Cancelling:
    """Cancels ``scope`` when the storage or a message reaches ``checkpoint``."""

    def __init__(self, storage: Any, checkpoint: str) -> None:
        self.scope = anyio.CancelScope()
        self.checkpoint = checkpoint
        self.armed = False
        self.hit = False
        for name in ("lookup", "open_body", "update", "begin"):
            setattr(storage, name, self._wrap(getattr(storage, name), name))

    def _fire(self, name: str) -> None:
        if self.armed and name == self.checkpoint:
            self.armed = False
            self.hit = True
            self.scope.cancel()

    def _wrap(self, method: Any, name: str) -> Any:
        if name == "begin":

            def begin(entry: Any) -> Any:
                self._fire(name)
                writer = method(entry)
                for step in ("write", "commit"):
                    setattr(writer, step, self._wrap(getattr(writer, step), step))
                return writer

            return begin

        async def wrapped(*args: Any) -> Any:
            self._fire(name)
            await anyio.lowlevel.checkpoint()
            result = await method(*args)
            if name == "open_body" and result is not None:
                result.read_chunk = self._wrap(result.read_chunk, "read_chunk")
            return result

        return wrapped

    def watch(self, msg: anysoup.Message) -> None:
        for name in ("starting", "got_headers", "got_body", "finished"):
            getattr(msg, name).connect(lambda m, *a, n=name: self._fire(n))


@pytest.mark.parametrize(
    ("kind", "checkpoint"),
    [(kind, point) for kind, points in CHECKPOINTS.items() for point in points],
)
async def test_cancel_at_every_checkpoint_of_the_cache(
    kind: str, checkpoint: str, tmp_path: Path, leak_check: Any
) -> None:
    clock = Clock()
    body = b"z" * 150_000

    def script(request: ReceivedRequest) -> Answer:
        headers = [("Date", _date()), ("ETag", '"c"'), ("Cache-Control", "max-age=10")]
        if request.header("if-none-match") == '"c"':
            return 304, headers, b""
        return 200, headers, body

    async with _serve({"/x": script}) as server:
        url = server.url_for("/x")
        cache = _cache(clock, tmp_path / "cache")
        async with anysoup.Session(features=[cache]) as session:
            if kind != "miss":
                await _get(session, url)
                if kind == "validation":
                    clock.now += 60
            canceller = _Cancelling(cache._storage, checkpoint)
            msg = anysoup.Message("GET", url)
            canceller.watch(msg)
            canceller.armed = True
            with canceller.scope:
                async with session.send(msg) as stream:
                    assert await stream.read() == body
            assert canceller.hit, f"never reached {checkpoint}"
            stats = session.statistics()
            assert (stats.in_use, stats.waiting, stats.connecting) == (0, 0, 0)
            again, got = await _get(session, url)  # nothing torn was stored
            assert (again.status, got) == (200, body)
            again, got = await _get(session, url)
            assert (again.cache_result, got) == (CacheResult.HIT, body)
        await leak_check(session)


async def test_two_sessions_on_one_directory_under_concurrency(tmp_path: Path) -> None:
    """hishel #432: "database is locked" under concurrency never reaches a caller."""
    clock = Clock()

    def script(request: ReceivedRequest) -> Answer:
        headers = [("Date", _date()), ("Cache-Control", "max-age=600")]
        return 200, headers, request.target.encode() * 100

    async with _serve({f"/{i}": script for i in range(40)}) as server:
        sessions = [
            anysoup.Session(features=[_cache(clock, tmp_path / "shared")], max_conns_per_host=8)
            for _ in range(2)
        ]
        results: list[tuple[int, CacheResult]] = []

        async def fetch(session: anysoup.Session, i: int) -> None:
            msg, body = await _get(session, server.url_for(f"/{i}"))
            assert body == f"/{i}".encode() * 100
            results.append((i, msg.cache_result))

        async with sessions[0] as first, sessions[1] as second, anyio.create_task_group() as tg:
            for i in range(40):
                tg.start_soon(fetch, first, i)
                tg.start_soon(fetch, second, i)
        assert len(results) == 80
        async with anysoup.Session(features=[_cache(clock, tmp_path / "shared")]) as third:
            for i in range(40):
                msg, _ = await _get(third, server.url_for(f"/{i}"))
                assert msg.cache_result is CacheResult.HIT


async def test_request_directives_and_disabling_the_cache() -> None:
    clock = Clock()

    def script(request: ReceivedRequest) -> Answer:
        headers = [("Date", _date()), ("ETag", '"r"'), ("Cache-Control", "max-age=100")]
        if request.header("if-none-match") == '"r"':
            return 304, headers, b""
        return 200, headers, b"body"

    async with (
        _serve({"/d": script}) as server,
        anysoup.Session(features=[_cache(clock)]) as session,
    ):
        url = server.url_for("/d")
        await _get(session, url)
        expected = [
            ({}, CacheResult.HIT),
            ({"Cache-Control": "max-age=10"}, CacheResult.REVALIDATED),
            ({"Cache-Control": "min-fresh=80"}, CacheResult.REVALIDATED),
            ({"Cache-Control": "no-cache"}, CacheResult.REVALIDATED),
            ({"Pragma": "no-cache"}, CacheResult.REVALIDATED),
        ]
        for headers, result in expected:
            clock.now += 50  # half its lifetime: fresh, unless the request asks for more
            msg, body = await _get(session, url, headers)
            assert (msg.cache_result, body) == (result, b"body"), headers
        clock.now += 150  # stale by 50 s now (each validation made it new again)
        msg, body = await _get(session, url, {"Cache-Control": "max-stale=100"})
        assert (msg.cache_result, body) == (CacheResult.STALE, b"body")
        msg = anysoup.Message("GET", url)
        msg.disable_feature(Cache)
        assert await session.send_and_read(msg) == b"body"
        assert msg.cache_result is CacheResult.NONE
    validations = [r.header("if-none-match") for r in server.requests]
    assert validations == [None, '"r"', '"r"', '"r"', '"r"', None]


async def test_an_unusable_directory_means_no_cache_not_failed_requests(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    async with (
        _serve({"/u": _fixed([("Cache-Control", "max-age=60")])}) as server,
        anysoup.Session(features=[_cache(clock, blocker)]) as session,
    ):
        for _ in range(3):
            msg, body = await _get(session, server.url_for("/u"))
            assert (msg.status, body, msg.cache_result) == (200, b"hello", CacheResult.NONE)
    assert len(server.requests) == 3
    warnings = [r for r in caplog.records if r.name == "anysoup.cache"]
    assert len(warnings) == 1, warnings  # once, not once per request


async def test_an_upgrade_request_never_uses_the_cache() -> None:
    clock = Clock()
    async with (
        _serve({"/ws": _fixed([("Cache-Control", "max-age=60")])}) as server,
        anysoup.Session(features=[_cache(clock)]) as session,
    ):
        await _get(session, server.url_for("/ws"))
        headers = {"Upgrade": "websocket", "Connection": "Upgrade"}
        msg, _ = await _get(session, server.url_for("/ws"), headers)
        assert msg.cache_result is CacheResult.NONE
    assert len(server.requests) == 2


async def test_each_retry_passes_through_the_cache() -> None:
    """Retry sits outside the cache: a retried 503 is never stored, the 200 after it is."""
    clock = Clock()
    answers = iter([503, 200])

    def script(request: ReceivedRequest) -> Answer:
        status = next(answers)
        return status, [("Date", _date()), ("Cache-Control", "max-age=60")], b"%d" % status

    retry = anysoup.Retry(total=2)

    async def no_wait(seconds: float) -> None:
        pass

    retry._sleep = no_wait  # type: ignore[method-assign]
    async with (
        _serve({"/r": script}) as server,
        anysoup.Session(features=[_cache(clock), retry]) as session,
    ):
        msg, body = await _get(session, server.url_for("/r"))
        assert (msg.status, body, msg.cache_result) == (200, b"200", CacheResult.MISS)
        msg, body = await _get(session, server.url_for("/r"))
        assert (msg.status, body, msg.cache_result) == (200, b"200", CacheResult.HIT)
    assert len(server.requests) == 2


async def test_mocked_answers_are_cached_like_network_ones() -> None:
    """The testing router stands inside the cache: its answers are stored and served."""
    from anysoup.testing import MockRouter

    clock = Clock()
    with MockRouter() as router:
        route = router.get("https://api.example.org/item")
        route.respond(headers={"Cache-Control": "max-age=60"}, json={"id": 1})
        async with anysoup.Session(features=[_cache(clock)]) as session:
            for result in (CacheResult.MISS, CacheResult.HIT):
                msg, body = await _get(session, "https://api.example.org/item")
                assert (body, msg.cache_result) == (b'{"id":1}', result)
    assert route.call_count == 1
