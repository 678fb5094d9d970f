"""The clients under measurement: one adapter function per library.

An adapter is an async generator function registered with :func:`adapter`. It
gets ``limit``, the most connections its pool may open to the one host, opens
the library's session with that limit, yields a :class:`Client` offering the
operations it supports, and closes the session when the scenario is done. The
library is imported inside the function, so a missing package is reported as
``not installed`` for that client only.

The operations, each given a full URL:

* ``get(url)``: GET, read the whole (decoded) body, return its length; raise
  unless the status is 200.
* ``stream(url)``: GET, consume the body chunk by chunk without keeping it,
  return the number of bytes seen.
* ``ws_echo(url)``: an async context manager that opens a WebSocket and yields
  ``echo(text) -> str``, which sends one text message and returns the next.

To add a client, write one function here and decorate it.
"""

from __future__ import annotations

import contextlib
import zlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

Echo = Callable[[str], Awaitable[str]]
BOTH = ("asyncio", "trio")
HTTP_OPS = frozenset({"get", "stream"})


class BadResponse(Exception):
    """A response that isn't the one the scenario asked for."""


@dataclass
class Client:
    """What one adapter can do; an operation left None is unsupported."""

    get: Callable[[str], Awaitable[int]] | None = None
    stream: Callable[[str], Awaitable[int]] | None = None
    ws_echo: Callable[[str], AbstractAsyncContextManager[Echo]] | None = None


@dataclass(frozen=True)
class Adapter:
    """A registered client: how to open it, and where it can run."""

    name: str
    open: Callable[[int], AbstractAsyncContextManager[Client]]
    backends: tuple[str, ...]
    ops: frozenset[str]
    dists: tuple[str, ...]  # distributions whose versions go into each record
    doc: str


ADAPTERS: dict[str, Adapter] = {}


def adapter(
    name: str, *, backends: tuple[str, ...], ops: frozenset[str], dists: tuple[str, ...]
) -> Callable[[Callable[[int], AsyncIterator[Client]]], Callable[[int], AsyncIterator[Client]]]:
    """Register the decorated async generator function as the client ``name``."""

    def register(
        fn: Callable[[int], AsyncIterator[Client]],
    ) -> Callable[[int], AsyncIterator[Client]]:
        doc = (fn.__doc__ or "").strip().splitlines()[0]
        opener = contextlib.asynccontextmanager(fn)
        ADAPTERS[name] = Adapter(name, opener, backends, ops, dists, doc)
        return fn

    return register


def _expect(status: int, url: str) -> None:
    if status != 200:
        raise BadResponse(f"GET {url}: status {status}")


@adapter("anysoup", backends=BOTH, ops=HTTP_OPS | {"ws_echo"}, dists=("anysoup", "anyio"))
async def anysoup_client(limit: int) -> AsyncIterator[Client]:
    """anysoup.Session(max_conns=limit, max_conns_per_host=limit), default features."""
    import anysoup

    async with anysoup.Session(max_conns=limit, max_conns_per_host=limit) as session:

        async def get(url: str) -> int:
            msg = anysoup.Message("GET", url)
            body = await session.send_and_read(msg)
            _expect(msg.status, url)
            return len(body)

        async def stream(url: str) -> int:
            msg = anysoup.Message("GET", url)
            seen = 0
            async with session.send(msg) as body:
                _expect(msg.status, url)
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

        yield Client(get, stream, ws_echo)


@adapter("h11raw", backends=BOTH, ops=HTTP_OPS | {"ws_echo"}, dists=("h11", "wsproto", "anyio"))
async def h11raw_client(limit: int) -> AsyncIterator[Client]:
    """The floor: anyio TCP streams driving h11.Connection (wsproto for ws), a bare pool."""
    import anyio
    import h11

    free = anyio.Semaphore(limit)
    idle: list[tuple[Any, h11.Connection]] = []
    opened: list[Any] = []

    async def exchange(url: str, on_data: Callable[[bytes], object]) -> bool:
        """One GET on a pooled connection; -> whether the body is gzip-encoded."""
        parts = urlsplit(url)
        async with free:
            if idle:
                sock, conn = idle.pop()
            else:
                sock = await anyio.connect_tcp(parts.hostname or "", parts.port or 80)
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
        yield Client(get, stream, _wsproto_echo)
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


def _httpx_like(module_name: str) -> Callable[[int], AsyncIterator[Client]]:
    """An adapter for httpx or its API-compatible fork httpx2."""

    async def open_client(limit: int) -> AsyncIterator[Client]:
        import importlib

        httpx = importlib.import_module(module_name)
        limits = httpx.Limits(max_connections=limit, max_keepalive_connections=limit)
        async with httpx.AsyncClient(limits=limits, timeout=60.0, trust_env=False) as client:

            async def get(url: str) -> int:
                response = await client.get(url)
                _expect(response.status_code, url)
                return len(response.content)

            async def stream(url: str) -> int:
                seen = 0
                async with client.stream("GET", url) as response:
                    _expect(response.status_code, url)
                    async for chunk in response.aiter_bytes():
                        seen += len(chunk)
                return seen

            yield Client(get, stream)

    open_client.__doc__ = f"{module_name}.AsyncClient, Limits(max_connections=limit), no env."
    return open_client


httpx_client = adapter("httpx", backends=BOTH, ops=HTTP_OPS, dists=("httpx", "httpcore"))(
    _httpx_like("httpx")
)
httpx2_client = adapter("httpx2", backends=BOTH, ops=HTTP_OPS, dists=("httpx2", "httpcore2"))(
    _httpx_like("httpx2")
)


@adapter("aiohttp", backends=("asyncio",), ops=HTTP_OPS | {"ws_echo"}, dists=("aiohttp",))
async def aiohttp_client(limit: int) -> AsyncIterator[Client]:
    """aiohttp.ClientSession over TCPConnector(limit=limit, limit_per_host=limit)."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def get(url: str) -> int:
            async with session.get(url) as response:
                _expect(response.status, url)
                return len(await response.read())

        async def stream(url: str) -> int:
            seen = 0
            async with session.get(url) as response:
                _expect(response.status, url)
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

        yield Client(get, stream, ws_echo)
