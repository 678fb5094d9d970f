"""A scripted HTTP/2 server over TLS for the test suite, run in the test's own event loop.

Theory of operation: :func:`serve_h2` binds 127.0.0.1 on a free port and, like
the servers in :mod:`servers`, lives in an anyio task group on the test's
backend. Each accepted connection is wrapped in TLS with the ALPN list the test
chose; if ``h2`` was negotiated it becomes an :class:`H2ServerConnection`
(:mod:`h2_connection`), which calls the handler once per stream with a
:class:`ServerStream` (:mod:`h2_streams`); otherwise the same handler is served
HTTP/1.1 through h11 with an :class:`Http1Stream`, so a test can check the
client's fallback. Ready-made handlers and fault scripts are in :mod:`h2_scripts`.

Everything a test needs is importable from here. Peer misbehaviour (the client
leaving, resets, TLS or HTTP/2 errors) ends the stream or connection quietly:
provoking it is usually the point of the test. A bug in a handler propagates
out of the ``async with`` block.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import anyio
import anyio.abc
import h2.config
from anyio.streams.buffered import BufferedByteStream
from anyio.streams.tls import TLSAttribute, TLSStream
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from h2_connection import ConnectionScript, H2ServerConnection, Handler
from h2_streams import HeadersLike, Http1Stream, ServerStream, StreamGone
from servers import PEER_ERRORS, Server, ServerConnection

__all__ = [
    "ConnectionScript",
    "ErrorCodes",
    "H2Server",
    "H2ServerConnection",
    "Handler",
    "HeadersLike",
    "Http1Stream",
    "ServerStream",
    "SettingCodes",
    "StreamGone",
    "serve_h2",
]


@dataclass(eq=False)
class H2Server:
    """A running :func:`serve_h2` server and what it has seen so far."""

    host: str
    port: int
    #: The HTTP/2 connections, in accept order.
    connections: list[H2ServerConnection] = field(default_factory=list)
    accepted: int = 0  #: TCP connections accepted, whatever came of them
    open_connections: int = 0  #: accepted and not yet closed by the server
    #: The HTTP/1.1 side (ALPN did not pick h2): its ``requests`` and ``connections``.
    http1: Server = field(default_factory=lambda: Server("127.0.0.1", 0, "https"))
    _changed: anyio.Event = field(default_factory=anyio.Event, repr=False)

    @property
    def url(self) -> str:
        """The base URL, ``https://127.0.0.1:PORT``."""
        return f"https://{self.host}:{self.port}"

    def url_for(self, path: str) -> str:
        """The absolute URL of ``path`` (which starts with ``/``)."""
        return self.url + path

    async def wait_until(self, predicate: Callable[[], object]) -> None:
        """Wait until ``predicate()`` is true; it is checked after every event any connection saw.

        Bound it with ``anyio.fail_after``.
        """
        while not predicate():
            await self._changed.wait()

    async def wait_connections_closed(self) -> None:
        """Wait until the server has closed every connection it accepted."""
        await self.wait_until(lambda: not self.open_connections)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()


@asynccontextmanager
async def serve_h2(
    handler: Handler,
    ssl_context: ssl.SSLContext,
    *,
    settings: Mapping[Any, int] | None = None,
    alpn: Iterable[str] = ("h2",),
    on_connection: ConnectionScript | None = None,
    h2_config: Mapping[str, Any] | None = None,
) -> AsyncIterator[H2Server]:
    """Serve HTTP/2 over TLS on 127.0.0.1, calling ``handler`` for each stream.

    Args:
        handler: Answers one request stream (see :class:`ServerStream`); it
            runs concurrently with the connection's other streams.
        ssl_context: A server-side context; its ALPN list is set to ``alpn``.
        settings: SETTINGS to advertise (``SettingCodes`` keys), e.g.
            ``{SettingCodes.MAX_CONCURRENT_STREAMS: 1}`` or a small
            ``INITIAL_WINDOW_SIZE``; they apply once the client acknowledges them.
        alpn: The protocols offered; when the handshake does not pick ``h2``
            the connection is served HTTP/1.1 with the same handler, given an
            :class:`Http1Stream` (requests in ``server.http1.requests``).
        on_connection: Runs once per HTTP/2 connection, beside its streams, to
            script connection-level faults (GOAWAY, PING floods, closing).
        h2_config: More ``H2Configuration`` arguments, e.g.
            ``{"validate_inbound_headers": False}``.
    """
    ssl_context.set_alpn_protocols(list(alpn))
    multi = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    listener = cast(anyio.abc.SocketListener, multi.listeners[0])
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    server = H2Server("127.0.0.1", port, http1=Server("127.0.0.1", port, "https"))
    config_args = {"client_side": False, "header_encoding": None, **(h2_config or {})}

    async def serve_one(transport: anyio.abc.SocketStream) -> None:
        try:
            stream = await TLSStream.wrap(
                transport, server_side=True, ssl_context=ssl_context, standard_compatible=False
            )
            if stream.extra(TLSAttribute.alpn_protocol) == "h2":
                conn = H2ServerConnection(
                    server,
                    stream,
                    len(server.connections),
                    handler,
                    h2.config.H2Configuration(**config_args),
                )
                server.connections.append(conn)
                await conn._serve(settings or {}, on_connection)
            else:
                await _serve_http1(server, stream, handler)
        except PEER_ERRORS:
            pass
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.aclose_forcefully(transport)
            server.open_connections -= 1
            server._notify()

    async with listener, anyio.create_task_group() as tg:

        async def accept_forever() -> None:
            while True:
                transport = await listener.accept()
                server.accepted += 1
                server.open_connections += 1
                tg.start_soon(serve_one, transport)

        tg.start_soon(accept_forever)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()


async def _serve_http1(server: H2Server, stream: TLSStream, handler: Handler) -> None:
    """Answer HTTP/1.1 requests with the HTTP/2 handler, while both sides keep the connection."""
    server.http1.connections += 1
    conn = ServerConnection(BufferedByteStream(stream), server.http1.connections - 1, server.http1)
    while (request := await conn.next_request()) is not None:
        h1 = Http1Stream(conn, request)
        await handler(h1)  # type: ignore[arg-type]
        if not h1.response_ended:
            break
    await conn.close()
