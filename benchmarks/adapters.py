"""The clients under measurement: one adapter function per library.

An adapter is an async generator function registered with :func:`adapter`. It
gets a :class:`Setup`: ``limit``, the most connections its pool may open to
the one host; ``protocol``, the HTTP version the scenario is about (``"2"``:
offer h2, ``"1.1"``: HTTP/1.1 only); ``ca_file``, the CA to trust when the
scenario is over TLS. It opens the library's session accordingly, yields a
:class:`Client` offering the operations it supports, and closes the session
when the scenario is done. The library is imported inside the function, so a
missing package is reported as ``not installed`` for that client only.

Each HTTP operation also notes the protocol version of its response in
``Client.protocols`` (the library's own object: an enum, a tuple, a string;
:func:`protocol_name` spells them alike), so a record says what was spoken
and a table never silently sets HTTP/1.1 beside HTTP/2.

The operations, each given a full URL:

* ``get(url)``: GET, read the whole (decoded) body, return its length; raise
  unless the status is 200.
* ``stream(url)``: GET, consume the body chunk by chunk without keeping it,
  return the number of bytes seen.
* ``ws_echo(url)``: an async context manager that opens a WebSocket and yields
  ``echo(text) -> str``, which sends one text message and returns the next.
* ``sync_get(url)``: a plain function doing ``get``'s work with the library's
  blocking client, called from plain threads (the ``blocking_*`` scenarios);
  the client is made on first use, so other scenarios don't pay for it.
  ``requests`` and ``urllib3``, which have nothing else, are in
  adapters_blocking.py.
* ``cached_get(url, hit)``: ``get``'s work through a session with an HTTP
  cache in memory (anysoup's ``Cache()``; httpx with hishel's RFC 9111 mode
  over SQLite ``:memory:``). With ``hit`` true it raises unless the library
  says the answer came from the cache without contacting the server, so a
  miss is never counted as a hit; ``hit=False`` is the warm-up miss that
  stores the entry. ``cached_get_disk`` is the same with the cache in a
  fresh temporary directory. The cached session is opened only when the
  scenario uses the operation (``Setup.op``).

To add a client, write one function here and decorate it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import ssl
import sys
import tempfile
import threading
import zlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

Echo = Callable[[str], Awaitable[str]]
#: ``cached_get(url, hit)`` and ``cached_get_disk(url, hit)``: see the module docstring.
CachedGet = Callable[[str, bool], Awaitable[int]]
BOTH = ("asyncio", "trio")
HTTP_OPS = frozenset({"get", "stream", "tls"})
CACHE_OPS = frozenset({"cached_get", "cached_get_disk"})


class BadResponse(Exception):
    """A response that isn't the one the scenario asked for."""


@dataclass(frozen=True)
class Setup:
    """How a scenario wants the client opened."""

    limit: int  # connections the pool may open to the host
    protocol: str = "1.1"  # "2": offer h2 (on https); "1.1": HTTP/1.1 only
    ca_file: str | None = None  # the CA to trust, for https URLs
    op: str = "get"  # the Client operation the scenario uses (a cached session only if asked)


@dataclass
class Client:
    """What one adapter can do; an operation left None is unsupported."""

    get: Callable[[str], Awaitable[int]] | None = None
    stream: Callable[[str], Awaitable[int]] | None = None
    ws_echo: Callable[[str], AbstractAsyncContextManager[Echo]] | None = None
    #: The protocol version of every response seen, as the library gives it.
    protocols: set[object] = field(default_factory=set)
    sync_get: Callable[[str], int] | None = None
    cached_get: CachedGet | None = None
    cached_get_disk: CachedGet | None = None


Opener = Callable[[Setup], AsyncIterator[Client]]


@dataclass(frozen=True)
class Adapter:
    """A registered client: how to open it, and where it can run."""

    name: str
    open: Callable[[Setup], AbstractAsyncContextManager[Client]]
    backends: tuple[str, ...]
    ops: frozenset[str]  # "get", "stream", "ws_echo"; "tls" and "h2" where it can
    dists: tuple[str, ...]  # distributions whose versions go into each record
    doc: str


ADAPTERS: dict[str, Adapter] = {}


def adapter(
    name: str, *, backends: tuple[str, ...], ops: frozenset[str], dists: tuple[str, ...]
) -> Callable[[Opener], Opener]:
    """Register the decorated async generator function as the client ``name``."""

    def register(fn: Opener) -> Opener:
        doc = (fn.__doc__ or "").strip().splitlines()[0]
        opener = contextlib.asynccontextmanager(fn)
        ADAPTERS[name] = Adapter(name, opener, backends, ops, dists, doc)
        return fn

    return register


def protocol_name(version: object) -> str:
    """``"1.1"`` or ``"2"``, from any library's protocol version object."""
    value = getattr(version, "value", version)  # anysoup.HTTPVersion
    if isinstance(value, tuple):  # aiohttp's HttpVersion(major, minor)
        return ".".join(map(str, value))
    if isinstance(value, bytes):  # h11's b"1.1"
        value = value.decode()
    return str(value).removeprefix("HTTP/")  # httpx's "HTTP/2"


def tls_context(setup: Setup, alpn: list[str] | None = None) -> ssl.SSLContext:
    """A fresh client context trusting only the harness's CA (each client gets its own)."""
    context = ssl.create_default_context(cafile=setup.ca_file)
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


def _expect(status: int, url: str) -> None:
    if status != 200:
        raise BadResponse(f"GET {url}: status {status}")


class Lazy:
    """A blocking client made on first use (from any thread), closed at the end."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self.client: Any = None

    def get(self) -> Any:
        """The client, made now if it isn't yet."""
        if self.client is None:
            with self._lock:
                if self.client is None:
                    self.client = self._make()
        return self.client

    async def aclose(self) -> None:
        """Close the client if it was made (in a worker thread: it blocks)."""
        if self.client is not None:
            import anyio

            close = getattr(self.client, "close", None) or self.client.clear  # urllib3: clear
            await anyio.to_thread.run_sync(close)


def current_backend() -> str:
    """The backend the worker runs on (the blocking session's loop runs on the same)."""
    trio = sys.modules.get("trio")
    return "trio" if trio is not None and trio.lowlevel.in_trio_run() else "asyncio"


def _anysoup_options(setup: Setup) -> dict[str, Any]:
    import anysoup

    options: dict[str, Any] = {"max_conns": setup.limit, "max_conns_per_host": setup.limit}
    if setup.ca_file:
        options["tls_database"] = anysoup.TlsDatabase.from_file(setup.ca_file)
        if setup.protocol != "2":
            options["http2"] = False
    return options


def _anysoup_session(setup: Setup, **extra: Any) -> Any:
    """The Session for ``setup``: its default protocols, or HTTP/1.1 only over TLS.

    ``http2`` is passed only to force HTTP/1.1 (``http2=False``), and a tree
    whose Session doesn't know the argument yet, which speaks HTTP/1.1 on
    every connection anyway, is opened without it. ``extra`` goes to the
    Session too (``features=``).
    """
    import anysoup

    options = {**_anysoup_options(setup), **extra}
    try:
        return anysoup.Session(**options)
    except TypeError as exc:
        if "http2" not in str(exc):
            raise
        del options["http2"]
        return anysoup.Session(**options)


@contextlib.asynccontextmanager
async def _anysoup_cached(setup: Setup, protocols: set[object]) -> AsyncIterator[dict[str, Any]]:
    """``{setup.op: cached_get}`` on a Session of its own with a Cache, if the scenario uses one.

    ``anysoup.Cache()`` in memory for ``cached_get``, ``anysoup.Cache(dir)``
    on a fresh temporary directory for ``cached_get_disk``; nothing (``{}``)
    for the other scenarios. A hit is what ``msg.cache_result`` says is one.
    """
    if setup.op not in CACHE_OPS:
        yield {}
        return
    import anysoup

    if not hasattr(anysoup, "Cache"):  # an anysoup-base tree from before the cache
        raise ImportError("this anysoup has no Cache")
    with contextlib.ExitStack() as folders:
        cache_dir = None
        if setup.op == "cached_get_disk":
            cache_dir = folders.enter_context(tempfile.TemporaryDirectory(prefix="anysoup-cache-"))
        cache = anysoup.Cache(cache_dir)
        async with _anysoup_session(setup, features=[cache]) as session:

            async def cached_get(url: str, hit: bool) -> int:
                msg = anysoup.Message("GET", url)
                body = await session.send_and_read(msg)
                _expect(msg.status, url)
                if hit and msg.cache_result is not anysoup.CacheResult.HIT:
                    raise BadResponse(f"GET {url}: {msg.cache_result}, not a cache hit")
                if not hit:
                    await cache.flush()  # the entry complete (on disk) before the hits
                protocols.add(msg.http_version)
                return len(body)

            yield {setup.op: cached_get}


@adapter(
    "anysoup",
    backends=BOTH,
    ops=HTTP_OPS | CACHE_OPS | {"h2", "ws_echo", "sync_get"},
    dists=("anysoup", "anyio", "h2"),
)
async def anysoup_client(setup: Setup) -> AsyncIterator[Client]:
    """anysoup.Session(max_conns=limit, max_conns_per_host=limit), default features.

    Over TLS it trusts the harness's CA (``tls_database``); in the HTTP/1.1
    scenarios it gets ``http2=False``, in the HTTP/2 ones its default.
    ``sync_get``: an ``anysoup.blocking.Session`` with the same settings, its
    loop on the worker's backend. ``cached_get``: a second Session with
    ``features=[anysoup.Cache()]`` (``cached_get_disk``: on a temporary directory).
    """
    import anysoup

    protocols: set[object] = set()
    backend = current_backend()
    blocking = Lazy(
        lambda: importlib.import_module("anysoup.blocking").Session(
            backend=backend, **_anysoup_options(setup)
        )
    )

    def sync_get(url: str) -> int:
        msg = anysoup.Message("GET", url)
        body = blocking.get().send_and_read(msg)
        _expect(msg.status, url)
        protocols.add(msg.http_version)
        return len(body)

    async with _anysoup_session(setup) as session, _anysoup_cached(setup, protocols) as cached:

        async def get(url: str) -> int:
            msg = anysoup.Message("GET", url)
            body = await session.send_and_read(msg)
            _expect(msg.status, url)
            protocols.add(msg.http_version)
            return len(body)

        async def stream(url: str) -> int:
            msg = anysoup.Message("GET", url)
            seen = 0
            async with session.send(msg) as body:
                _expect(msg.status, url)
                protocols.add(msg.http_version)
                async for chunk in body:
                    seen += len(chunk)
            return seen

        @contextlib.asynccontextmanager
        async def ws_echo(url: str) -> AsyncIterator[Echo]:
            async with session.websocket_connect(anysoup.Message("GET", url)) as ws:

                async def echo(text: str) -> str:
                    await ws.send_text(text)
                    reply = await ws.receive()
                    return reply if isinstance(reply, str) else reply.decode()

                yield echo

        try:
            yield Client(get, stream, ws_echo, protocols, sync_get, **cached)
        finally:
            await blocking.aclose()


#: A second anysoup, for a same-run A/B: the tree at this path (a checkout of
#: an earlier commit) is imported by the ``anysoup-base`` workers instead of
#: the installed one (worker.py puts it first on ``sys.path``).
BASE_TREE_VARIABLE = "ANYSOUP_BASE_TREE"
if os.environ.get(BASE_TREE_VARIABLE):
    adapter(
        "anysoup-base",
        backends=BOTH,
        ops=HTTP_OPS | CACHE_OPS | {"ws_echo"},
        dists=("anyio",),
    )(anysoup_client)


@adapter("h11raw", backends=BOTH, ops=HTTP_OPS | {"ws_echo"}, dists=("h11", "wsproto", "anyio"))
async def h11raw_client(setup: Setup) -> AsyncIterator[Client]:
    """The floor: anyio TCP streams driving h11.Connection (wsproto for ws), a bare pool.

    Over TLS, anyio's TLS stream with ALPN ``http/1.1``: HTTP/1.1 only.
    """
    import anyio
    import h11

    free = anyio.Semaphore(setup.limit)
    idle: list[tuple[Any, h11.Connection]] = []
    opened: list[Any] = []
    protocols: set[object] = set()
    tls = tls_context(setup, ["http/1.1"]) if setup.ca_file else None

    async def exchange(url: str, on_data: Callable[[bytes], object]) -> bool:
        """One GET on a pooled connection; -> whether the body is gzip-encoded."""
        parts = urlsplit(url)
        async with free:
            if idle:
                sock, conn = idle.pop()
            else:
                host, port = parts.hostname or "", parts.port or 80
                if parts.scheme == "https":
                    sock = await anyio.connect_tcp(host, port, ssl_context=tls, tls=True)
                else:
                    sock = await anyio.connect_tcp(host, port)
                conn = h11.Connection(h11.CLIENT)
                opened.append(sock)
            headers = [("Host", parts.netloc), ("Accept-Encoding", "gzip")]
            await sock.send(
                conn.send(h11.Request(method="GET", target=parts.path, headers=headers))
                + conn.send(h11.EndOfMessage())
            )
            gzipped = False
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await sock.receive(65536))
                elif isinstance(event, h11.Data):
                    on_data(event.data)
                elif isinstance(event, h11.Response):
                    _expect(event.status_code, url)
                    protocols.add(event.http_version)
                    gzipped = (b"content-encoding", b"gzip") in event.headers
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:
                    raise BadResponse(f"GET {url}: unexpected {event!r}")
            conn.start_next_cycle()
            idle.append((sock, conn))  # only at a clean message boundary
            return gzipped

    async def get(url: str) -> int:
        chunks: list[bytes] = []
        if await exchange(url, chunks.append):
            return len(zlib.decompress(b"".join(chunks), wbits=31))
        return sum(map(len, chunks))

    async def stream(url: str) -> int:
        sizes: list[int] = []
        await exchange(url, lambda data: sizes.append(len(data)))
        return sum(sizes)

    try:
        yield Client(get, stream, _wsproto_echo, protocols)
    finally:
        for sock in opened:
            await anyio.aclose_forcefully(sock)


@contextlib.asynccontextmanager
async def _wsproto_echo(url: str) -> AsyncIterator[Echo]:
    """The h11raw client's WebSocket: wsproto over one anyio TCP stream."""
    import anyio
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

    parts = urlsplit(url)
    ws = WSConnection(ConnectionType.CLIENT)
    pending: deque[object] = deque()
    async with await anyio.connect_tcp(parts.hostname or "", parts.port or 80) as sock:

        async def next_event() -> object:
            while not pending:
                ws.receive_data(await sock.receive(65536))
                pending.extend(ws.events())
            return pending.popleft()

        await sock.send(ws.send(Request(host=parts.netloc, target=parts.path)))
        if not isinstance(reply := await next_event(), AcceptConnection):
            raise BadResponse(f"{url}: handshake refused: {reply!r}")

        async def echo(text: str) -> str:
            await sock.send(ws.send(TextMessage(data=text)))
            pieces: list[str] = []
            while True:
                event = await next_event()
                if not isinstance(event, TextMessage):
                    raise BadResponse(f"{url}: unexpected {event!r}")
                pieces.append(event.data)
                if event.message_finished:
                    return "".join(pieces)

        yield echo
        await sock.send(ws.send(CloseConnection(code=1000)))


@contextlib.asynccontextmanager
async def _hishel_cached(
    setup: Setup, options: dict[str, Any], protocols: set[object]
) -> AsyncIterator[dict[str, Any]]:
    """``{setup.op: cached_get}`` on hishel's ``AsyncCacheClient``, if the scenario uses one.

    hishel 2's RFC 9111 mode (``rfc=True``; its default ignores the headers
    and keeps everything) over its SQLite storage, the only one it has
    besides Redis: an ``anysqlite`` connection to ``:memory:`` for
    ``cached_get``, a database file in a temporary directory for
    ``cached_get_disk``. A hit is a response whose ``extensions["caching"]``
    (a ``CacheStatus`` dict) says ``from_cache`` and not ``revalidated``.
    """
    if setup.op not in CACHE_OPS:
        yield {}
        return
    import anysqlite
    from hishel import AsyncSqliteStorage
    from hishel.httpx import AsyncCacheClient

    with contextlib.ExitStack() as folders:
        if setup.op == "cached_get_disk":
            folder = folders.enter_context(tempfile.TemporaryDirectory(prefix="hishel-cache-"))
            storage = AsyncSqliteStorage(database_path=os.path.join(folder, "cache.db"))
        else:
            connection = await anysqlite.connect(":memory:", isolation_level=None)
            storage = AsyncSqliteStorage(connection=connection)
        async with AsyncCacheClient(storage=storage, rfc=True, **options) as client:

            async def cached_get(url: str, hit: bool) -> int:
                response = await client.get(url)
                _expect(response.status_code, url)
                status = response.extensions.get("caching") or {}  # a CacheStatus (TypedDict)
                if hit and not (status.get("from_cache") and not status.get("revalidated")):
                    raise BadResponse(f"GET {url}: {status}, not a cache hit")
                protocols.add(response.http_version)
                return len(response.content)

            yield {setup.op: cached_get}


def _httpx_like(module_name: str, hishel: bool = False) -> Opener:
    """An adapter for httpx or its API-compatible fork httpx2; ``hishel``: cached_get too."""

    async def open_client(setup: Setup) -> AsyncIterator[Client]:
        import importlib

        httpx = importlib.import_module(module_name)
        limits = httpx.Limits(max_connections=setup.limit, max_keepalive_connections=setup.limit)
        options: dict[str, Any] = {"limits": limits, "timeout": 60.0, "trust_env": False}
        if setup.ca_file:
            options["verify"] = tls_context(setup)  # httpcore sets its ALPN on it
        if setup.protocol == "2":
            options["http2"] = True  # needs the h2 package
        protocols: set[object] = set()
        blocking = Lazy(lambda: httpx.Client(**options))

        def sync_get(url: str) -> int:
            response = blocking.get().get(url)
            _expect(response.status_code, url)
            protocols.add(response.http_version)
            return len(response.content)

        cache = _hishel_cached(setup, options, protocols) if hishel else contextlib.nullcontext({})
        async with httpx.AsyncClient(**options) as client, cache as cached:

            async def get(url: str) -> int:
                response = await client.get(url)
                _expect(response.status_code, url)
                protocols.add(response.http_version)
                return len(response.content)

            async def stream(url: str) -> int:
                seen = 0
                async with client.stream("GET", url) as response:
                    _expect(response.status_code, url)
                    protocols.add(response.http_version)
                    async for chunk in response.aiter_bytes():
                        seen += len(chunk)
                return seen

            try:
                yield Client(get, stream, protocols=protocols, sync_get=sync_get, **cached)
            finally:
                await blocking.aclose()

    open_client.__doc__ = (
        f"{module_name}.AsyncClient, Limits(max_connections=limit), no env; http2=True for h2"
        f" (sync_get: {module_name}.Client, the same options"
        + ("; cached_get: hishel.httpx.AsyncCacheClient, rfc=True)." if hishel else ").")
    )
    return open_client


# cached_get through hishel, when it is installed (benchmarks/requirements.txt pins it).
_HISHEL = importlib.util.find_spec("hishel") is not None
httpx_client = adapter(
    "httpx",
    backends=BOTH,
    ops=HTTP_OPS | {"h2", "sync_get"} | (CACHE_OPS if _HISHEL else frozenset()),
    dists=("httpx", "httpcore", "h2", *(("hishel", "anysqlite") if _HISHEL else ())),
)(_httpx_like("httpx", hishel=_HISHEL))
httpx2_client = adapter(
    "httpx2", backends=BOTH, ops=HTTP_OPS | {"h2"}, dists=("httpx2", "httpcore2", "h2")
)(_httpx_like("httpx2"))


@adapter("aiohttp", backends=("asyncio",), ops=HTTP_OPS | {"ws_echo"}, dists=("aiohttp",))
async def aiohttp_client(setup: Setup) -> AsyncIterator[Client]:
    """aiohttp.ClientSession over TCPConnector(limit=limit, limit_per_host=limit)."""
    import aiohttp

    limit = setup.limit
    tls = tls_context(setup) if setup.ca_file else True  # True: aiohttp's own default
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, ssl=tls)
    protocols: set[object] = set()
    async with aiohttp.ClientSession(connector=connector) as session:

        async def get(url: str) -> int:
            async with session.get(url) as response:
                _expect(response.status, url)
                protocols.add(response.version)
                return len(await response.read())

        async def stream(url: str) -> int:
            seen = 0
            async with session.get(url) as response:
                _expect(response.status, url)
                protocols.add(response.version)
                async for chunk in response.content.iter_any():
                    seen += len(chunk)
            return seen

        @contextlib.asynccontextmanager
        async def ws_echo(url: str) -> AsyncIterator[Echo]:
            async with session.ws_connect(url, compress=0, max_msg_size=0) as ws:

                async def echo(text: str) -> str:
                    await ws.send_str(text)
                    return str(await ws.receive_str())

                yield echo

        yield Client(get, stream, ws_echo, protocols)


# The clients that only block (requests, urllib3) register themselves there.
import adapters_blocking  # noqa: E402, F401
