"""WebSocket servers for the test suite.

* :func:`serve_ws` is a scripted server built on wsproto (the sans-IO peer of
  the client's own driver) over :func:`servers.serve_raw`, in the test's own
  event loop and backend. It answers the handshake (accepting or refusing,
  with a subprotocol and extensions of the test's choice) and hands the
  handler a :class:`WsPeer` that sends events or raw frames and reads events.
  Fault injection (deflate bombs, bad UTF-8, floods, a peer vanishing) lives
  here.
* :func:`websockets_server` runs the third-party ``websockets`` package's
  threaded server, for truth: echo, subprotocols, permessage-deflate, pings,
  close codes, as an independent implementation sees them.
* :class:`Watch` records a client WebSocket's ``error`` and ``closed`` signals.
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import anyio
from servers import PEER_ERRORS, Server, ServerConnection, serve_raw
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.extensions import Extension, PerMessageDeflate

if TYPE_CHECKING:
    from anysoup import WebsocketConnection, WebsocketError

__all__ = ["Watch", "WsPeer", "frame", "serve_ws", "websockets_server"]


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False) -> bytes:
    """A server frame (unmasked) with any bits, for scripting broken peers."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", first, size)
    elif size < 65536:
        head = struct.pack("!BBH", first, 126, size)
    else:
        head = struct.pack("!BBQ", first, 127, size)
    return head + payload


def deflate(data: bytes) -> bytes:
    """``data`` compressed as one permessage-deflate message (RFC 7692 §7.2.1)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


class WsPeer:
    """The server side of one WebSocket connection, for a scripted test."""

    def __init__(self, conn: ServerConnection, ws: WSConnection, request: Request) -> None:
        self.conn = conn
        self.ws = ws
        #: The handshake request as wsproto read it.
        self.request = request
        self._pending: list[Event] = []

    async def send(self, event: Event) -> None:
        """Send a wsproto event."""
        await self.conn.stream.send(self.ws.send(event))

    async def send_text(self, text: str) -> None:
        await self.send(TextMessage(data=text))

    async def send_bytes(self, data: bytes) -> None:
        await self.send(BytesMessage(data=data))

    async def send_raw(self, data: bytes) -> None:
        """Send bytes as they are (hand-made frames)."""
        await self.conn.stream.send(data)

    async def next_event(self) -> Event | None:
        """The next event from the client; None when it hung up."""
        while not self._pending:
            self._pending.extend(self.ws.events())
            if self._pending:
                break
            try:
                data = await self.conn.stream.receive()
            except PEER_ERRORS:
                return None
            self.ws.receive_data(data)
        return self._pending.pop(0)

    async def next_message(self) -> str | bytes | None:
        """The next whole message (pings answered by wsproto's peer are skipped)."""
        parts: list[Any] = []
        while True:
            event = await self.next_event()
            if event is None or isinstance(event, CloseConnection):
                if isinstance(event, CloseConnection):
                    self._pending.insert(0, event)
                return None
            if isinstance(event, Ping):
                await self.send(event.response())
                continue
            if isinstance(event, (TextMessage, BytesMessage)):
                parts.append(event.data)
                if event.message_finished:
                    if isinstance(parts[0], str):
                        return "".join(parts)
                    return b"".join(bytes(p) for p in parts)

    async def echo(self) -> CloseConnection | None:
        """Echo messages until the client closes; answer its close; return it."""
        while True:
            message = await self.next_message()
            if message is None:
                event = await self.next_event()
                if isinstance(event, CloseConnection):
                    await self.send(event.response())
                    return event
                return None
            if isinstance(message, str):
                await self.send_text(message)
            else:
                await self.send_bytes(message)

    async def wait_close(self) -> CloseConnection | None:
        """Skip messages until the client's close frame; answer it; return it."""
        while True:
            event = await self.next_event()
            if event is None:
                return None
            if isinstance(event, CloseConnection):
                if self.ws.state.name == "REMOTE_CLOSING":
                    await self.send(event.response())
                return event


WsHandler = Callable[[WsPeer], Awaitable[None]]


@asynccontextmanager
async def serve_ws(
    handler: WsHandler,
    *,
    subprotocol: str | None = None,
    extensions: Callable[[], Sequence[Extension]] | None = None,
    reject: tuple[int, bytes] | None = None,
    handshake: Callable[[ServerConnection, bytes], Awaitable[None]] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    unix_path: str | None = None,
) -> AsyncIterator[Server]:
    """Serve WebSockets with wsproto; ``server.url`` is ``ws://`` (or ``wss://``).

    Args:
        handler: Runs each accepted connection (``WsPeer``).
        subprotocol: The subprotocol to accept (it must have been offered).
        extensions: Makes the extensions the server may accept (default:
            wsproto's permessage-deflate); ``lambda: []`` accepts none.
        reject: ``(status, body)`` to refuse every handshake with.
        handshake: Scripts the answer to the raw request head instead.
        ssl_context: Serve wss.
        unix_path: Listen on a Unix socket.
    """

    async def run(conn: ServerConnection) -> None:
        head = await conn.stream.receive_until(b"\r\n\r\n", 65536)
        if handshake is not None:
            await handshake(conn, head)
            return
        ws = WSConnection(ConnectionType.SERVER)
        ws.receive_data(head + b"\r\n\r\n")
        request = next(iter(ws.events()))
        assert isinstance(request, Request), request
        if reject is not None:
            status, body = reject
            await conn.stream.send(
                ws.send(
                    RejectConnection(
                        status_code=status,
                        headers=[(b"content-length", str(len(body)).encode())],
                        has_body=True,
                    )
                )
                + ws.send(RejectData(data=body))
            )
            return
        chosen = extensions() if extensions is not None else [PerMessageDeflate()]
        await conn.stream.send(
            ws.send(AcceptConnection(subprotocol=subprotocol, extensions=list(chosen)))
        )
        await handler(WsPeer(conn, ws, request))

    async with serve_raw(run, ssl_context=ssl_context, unix_path=unix_path) as server:
        server.scheme = "wss" if ssl_context is not None else "ws"
        yield server


# -- the client side ----------------------------------------------------------------


class Watch:
    """The ``error`` and ``closed`` signals of one client WebSocket."""

    def __init__(self, ws: WebsocketConnection) -> None:
        self.errors: list[WebsocketError] = []
        self.closed = anyio.Event()
        ws.error.connect(lambda ws, error: self.errors.append(error))
        ws.closed.connect(lambda ws: self.closed.set())

    async def wait_closed(self, bound: float = 5.0) -> None:
        with anyio.fail_after(bound):
            await self.closed.wait()


# -- the websockets package, in a thread -------------------------------------------


def _route(connection: Any) -> None:
    """One connection of the third-party server; the path chooses the behaviour."""
    parts = urlsplit(connection.request.path)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    path = parts.path
    if path == "/echo":
        for message in connection:
            connection.send(message)
    elif path == "/protocol":
        connection.send(connection.subprotocol or "")
        for _ in connection:
            pass
    elif path == "/headers":
        for name, value in connection.request.headers.raw_items():
            connection.send(f"{name}: {value}")
        connection.send("")
        for _ in connection:
            pass
    elif path == "/big":
        connection.send(b"x" * int(query["n"]))
        for _ in connection:
            pass
    elif path == "/fragments":
        connection.send([query.get("text", "fragmented ") * 4 for _ in range(int(query["n"]))])
        for _ in connection:
            pass
    elif path == "/close":
        connection.recv()
        connection.close(int(query["code"]), query.get("reason", ""))
    elif path == "/vanish":
        connection.recv()
        # Half a frame, then the TCP connection goes without a close frame.
        # shutdown() sends the FIN now: close() alone only drops this thread's
        # descriptor, and while the library's reader thread sits in recv() on
        # the socket (websockets < 17 reads that way) the kernel keeps the
        # connection established and the client, rightly, waits for ever.
        connection.socket.sendall(b"\x81\x7e\x10\x00abc")
        connection.socket.shutdown(socket.SHUT_RDWR)
        connection.socket.close()
    elif path == "/ping":
        connection.recv()
        pong = connection.ping(b"server-ping")
        pong.wait(5)
        connection.send("pong seen")
        for _ in connection:
            pass
    else:
        connection.close(4004, f"no route {path}")


@contextmanager
def websockets_server(**options: Any) -> Iterator[str]:
    """Run ``websockets.sync.server.serve`` in a thread; yield its ``ws://`` base URL.

    ``options`` go to ``serve`` (``subprotocols``, ``compression``, ``ssl``, …).
    """
    from websockets.sync.server import serve

    options.setdefault("ping_interval", None)
    server = serve(_route, "127.0.0.1", 0, **options)
    thread = threading.Thread(target=server.serve_forever, name="websockets server", daemon=True)
    thread.start()
    scheme = "wss" if options.get("ssl") is not None else "ws"
    try:
        yield f"{scheme}://127.0.0.1:{server.socket.getsockname()[1]}"
    finally:
        server.shutdown()
        thread.join(10)
