"""Loopback servers for the test suite, run inside the test's own event loop.

Theory of operation: every server here lives in an anyio task group opened by
an async context manager, so it runs on whichever backend the test runs
(asyncio or trio), binds 127.0.0.1 on a free port (or, given ``unix_path``,
a Unix socket), and is gone when the ``async with`` block ends.

* :func:`serve_http` is a scripted HTTP/1.1 server built on h11. It parses
  each request, hands it to a handler that answers through a
  :class:`ServerConnection` (well-formed responses, 1xx, raw bytes, resets),
  and keeps the connection alive for the next request when both sides allow
  it (RFC 9112 §9.3).
* :func:`serve_raw` hands the handler the bare connection with no parsing, to
  script arbitrary bytes: garbage status lines, resets mid-headers, stalls.
* :func:`hanging_listener` is an address whose TCP connects never complete.
* :func:`serve_asgi` runs hypercorn, a real third-party server, for truth.

Peer misbehaviour (the client going away, resets, TLS failures, bad HTTP) is
swallowed per connection: it is usually what the test provokes. A bug in a
handler (an ``AssertionError``, an h11 ``LocalProtocolError``) propagates out
of the ``async with`` block and fails the test.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import select
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import parse_qs

import anyio
import anyio.abc
import anyio.lowlevel
import h11
import sniffio
from anyio.streams.buffered import BufferedByteStream
from anyio.streams.tls import TLSStream

HeadersLike = Iterable[tuple[str | bytes, str | bytes]]

#: Big enough for the oversized-header tests; h11's default is 16 KiB.
MAX_HEAD_SIZE = 1 << 20

#: How long a graceful close waits for the client's EOF before giving up.
CLOSE_LINGER = 1.0

#: What a misbehaving or departed client makes the server raise; swallowed
#: per connection because provoking it is usually the point of the test.
PEER_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # includes ssl.SSLError and ConnectionResetError
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    anyio.IncompleteRead,
    h11.RemoteProtocolError,
)


@dataclass
class ReceivedRequest:
    """One request as the server saw it.

    Header names are lowercased; values are decoded as latin-1, so any byte
    survives. With ``read_body=False`` the body is filled in by
    :meth:`ServerConnection.read_body`.
    """

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    connection: int = 0  #: index of the accepted connection, from 0
    http_version: str = "1.1"

    def header(self, name: str) -> str | None:
        """All values of ``name`` joined with ``", "``, or None if absent."""
        values = [v for n, v in self.headers if n == name.lower()]
        return ", ".join(values) if values else None


@dataclass(eq=False)
class Server:
    """A running test server and what it has seen so far."""

    host: str
    port: int
    scheme: str
    #: The Unix socket it listens on instead of TCP (then host is ``localhost``, port 0).
    unix_path: str | None = None
    requests: list[ReceivedRequest] = field(default_factory=list)
    connections: int = 0  #: connections accepted so far
    open_connections: int = 0  #: accepted and not yet closed by the server
    _changed: anyio.Event = field(default_factory=anyio.Event, repr=False)

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:41234``; ``http://localhost`` on a Unix socket."""
        if self.unix_path is not None:
            return f"{self.scheme}://{self.host}"
        return f"{self.scheme}://{self.host}:{self.port}"

    def url_for(self, path: str) -> str:
        """The absolute URL of ``path`` (which starts with ``/``) on this server."""
        return self.url + path

    async def wait_connections_closed(self) -> None:
        """Wait until the server has closed every connection it accepted."""
        while self.open_connections:
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()


class ServerConnection:
    """One accepted connection, handed to handlers.

    ``stream`` is the raw (or TLS) byte stream with a read buffer, for
    scripting bytes directly (``receive``, ``receive_until``, ``send``).
    """

    def __init__(self, stream: BufferedByteStream, index: int, server: Server) -> None:
        self.stream = stream
        self.index = index
        self._server = server
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_SIZE)
        self._request: ReceivedRequest | None = None
        self._body_read = False
        self._switched = False
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once :meth:`close` or :meth:`reset` has been called."""
        return self._closed

    # -- h11 answers ---------------------------------------------------------

    async def respond(
        self,
        status: int = 200,
        headers: HeadersLike = (),
        body: bytes = b"",
        *,
        chunked: bool = False,
        reason: bytes = b"",
    ) -> None:
        """Send a whole response, framed by Content-Length unless ``chunked``.

        Framing headers given by the caller are kept as they are. For a HEAD
        request the body is left out but still counted in Content-Length.
        """
        fields = list(headers)
        names = {_lower(name) for name, _ in fields}
        method = self._request.method if self._request else "GET"
        if method == "CONNECT" and 200 <= status < 300:
            # RFC 9110 §9.3.6: a 2xx to CONNECT has no framing and starts the tunnel.
            await self.send_head(status, fields, reason=reason)
            return
        if chunked:
            if b"transfer-encoding" not in names:
                fields.append((b"transfer-encoding", b"chunked"))
        elif not names & {b"content-length", b"transfer-encoding"} and status not in (204, 304):
            # RFC 9110 §8.6: no Content-Length in a 204, and a 304's describes
            # the selected representation, so leave both to the caller.
            fields.append((b"content-length", str(len(body)).encode()))
        await self.send_head(status, fields, reason=reason)
        if body and method != "HEAD":
            await self.send_data(body)
        await self.end()

    async def send_head(
        self, status: int = 200, headers: HeadersLike = (), *, reason: bytes = b""
    ) -> None:
        """Send the status line and headers; h11 picks chunked if no framing is given."""
        await self._send(h11.Response(status_code=status, headers=list(headers), reason=reason))

    async def send_data(self, data: bytes) -> None:
        """Send part of the response body."""
        await self._send(h11.Data(data=data))

    async def end(self, trailers: HeadersLike = ()) -> None:
        """Finish the response body, with optional trailer fields."""
        await self._send(h11.EndOfMessage(headers=list(trailers)))

    async def send_informational(self, status: int = 100, headers: HeadersLike = ()) -> None:
        """Send a 1xx interim response."""
        await self._send(h11.InformationalResponse(status_code=status, headers=list(headers)))

    async def read_body(self) -> bytes:
        """Read the rest of the request body (for ``read_body=False`` handlers)."""
        assert self._request is not None, "read_body() needs a parsed request"
        if not self._body_read:
            chunks = []
            while not isinstance(event := await self._next_event(), h11.EndOfMessage):
                if isinstance(event, h11.ConnectionClosed):
                    raise anyio.IncompleteRead
                assert isinstance(event, h11.Data), event
                chunks.append(event.data)
            self._request.body = b"".join(chunks)
            self._body_read = True
        return self._request.body

    async def next_request(self) -> ReceivedRequest | None:
        """Read the next request head on this connection, for handlers that loop themselves.

        Returns None when the client closed, or when the previous exchange did
        not end cleanly with keep-alive on both sides (RFC 9112 §9.3). Safe to
        cancel while it waits, e.g. to close a connection left idle too long.
        """
        states = (self._h11.our_state, self._h11.their_state)
        if states == (h11.DONE, h11.DONE) and not self._closed:
            self._h11.start_next_cycle()
        elif states != (h11.IDLE, h11.IDLE) or self._closed:
            return None
        return await self._receive_request()

    # -- raw control ---------------------------------------------------------

    async def send_raw(self, data: bytes) -> None:
        """Send bytes as they are, bypassing h11; the connection then ends after the handler."""
        await self.stream.send(data)

    async def close(self) -> None:
        """Close gracefully: FIN (or TLS close_notify), then wait briefly for the client's EOF.

        Waiting matters: closing a socket with unread incoming data makes
        Linux send RST, which can destroy the response before the client
        reads it.
        """
        if self._closed:
            return
        self._closed = True
        transport = self.stream.receive_stream
        try:
            with anyio.move_on_after(CLOSE_LINGER):
                if isinstance(transport, TLSStream):
                    await transport.unwrap()
                else:
                    await self.stream.send_eof()
                    while True:
                        await self.stream.receive()
        except PEER_ERRORS:
            pass
        finally:
            await _aclose_transport(transport)

    async def reset(self) -> None:
        """Close abortively: SO_LINGER 0 makes the kernel send RST, not FIN."""
        if self._closed:
            return
        self._closed = True
        sock = self.stream.extra(anyio.abc.SocketAttribute.raw_socket)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await _aclose_transport(self.stream.receive_stream)

    # -- internals -----------------------------------------------------------

    async def _send(self, event: h11.Event) -> None:
        data = self._h11.send(event)
        if data:
            await self.stream.send(data)
        if self._h11.our_state is h11.SWITCHED_PROTOCOL and not self._switched:
            # After CONNECT or 101 the bytes h11 holds belong to the new
            # protocol: hand them back to the raw stream.
            self._switched = True
            self.stream.feed_data(self._h11.trailing_data[0])

    async def _next_event(self) -> Any:
        while (event := self._h11.next_event()) is h11.NEED_DATA:
            try:
                data = await self.stream.receive()
            except anyio.EndOfStream:
                data = b""
            self._h11.receive_data(data)
        return event

    async def _receive_request(self) -> ReceivedRequest | None:
        event = await self._next_event()
        if isinstance(event, h11.ConnectionClosed):
            return None
        assert isinstance(event, h11.Request), event
        self._request = ReceivedRequest(
            method=event.method.decode("ascii"),
            target=event.target.decode("latin-1"),
            headers=[(n.decode("latin-1"), v.decode("latin-1")) for n, v in event.headers],
            connection=self.index,
            http_version=event.http_version.decode("ascii"),
        )
        self._body_read = False
        self._server.requests.append(self._request)
        return self._request

    def _start_next_cycle(self) -> bool:
        """Get ready for the next request if both sides finished cleanly (see next_request)."""
        if self._closed or (self._h11.our_state, self._h11.their_state) != (h11.DONE, h11.DONE):
            return False
        self._h11.start_next_cycle()
        return True


Handler = Callable[[ServerConnection, ReceivedRequest], Awaitable[None]]
RawHandler = Callable[[ServerConnection], Awaitable[None]]


@asynccontextmanager
async def serve_http(
    handler: Handler,
    *,
    ssl_context: ssl.SSLContext | None = None,
    read_body: bool = True,
    on_connect: RawHandler | None = None,
    unix_path: str | None = None,
) -> AsyncIterator[Server]:
    """Serve HTTP/1.1 through h11, calling ``handler`` for each request.

    Args:
        handler: Answers one request; when it returns after a complete
            exchange that both sides allow to persist, the next request on the
            connection is read. Otherwise the connection is closed gracefully.
        ssl_context: Serve HTTPS with this server-side context.
        read_body: Read the body before calling the handler. With False the
            handler gets the request right after its head and may send 100
            Continue before ``await conn.read_body()``; a handler that leaves
            the body unread ends the connection.
        on_connect: Called once per connection before the first request; it
            may close or reset the connection.
        unix_path: Listen on a new Unix socket at this path instead of TCP.
    """

    async def run(conn: ServerConnection) -> None:
        while (request := await conn.next_request()) is not None:
            if read_body:
                await conn.read_body()
            await handler(conn, request)

    async with _serve(run, ssl_context, on_connect, unix_path) as server:
        yield server


@asynccontextmanager
async def serve_raw(
    handler: RawHandler,
    *,
    ssl_context: ssl.SSLContext | None = None,
    unix_path: str | None = None,
) -> AsyncIterator[Server]:
    """Serve raw connections: ``handler`` scripts every byte (after TLS, if any).

    The connection is closed gracefully when the handler returns. Read the
    request head first (``await conn.stream.receive_until(b"\\r\\n\\r\\n",
    65536)``) so that closing does not turn into a reset. A handler may also
    speak HTTP through h11 with :meth:`ServerConnection.next_request`,
    ``read_body`` and ``respond``. With ``unix_path`` it listens on a new Unix
    socket at that path instead of TCP.
    """
    async with _serve(handler, ssl_context, None, unix_path) as server:
        yield server


@asynccontextmanager
async def _serve(
    run: RawHandler,
    ssl_context: ssl.SSLContext | None,
    on_connect: RawHandler | None,
    unix_path: str | None = None,
) -> AsyncIterator[Server]:
    scheme = "https" if ssl_context else "http"
    listener: anyio.abc.SocketListener
    if unix_path is not None:
        listener = await anyio.create_unix_listener(unix_path)
        server = Server("localhost", 0, scheme, unix_path=unix_path)
    else:
        multi = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        (listener,) = multi.listeners
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        server = Server("127.0.0.1", port, scheme)
    async with listener:

        async def serve_one(stream: anyio.abc.ByteStream, index: int) -> None:
            try:
                if ssl_context is not None:
                    stream = await TLSStream.wrap(
                        stream,
                        server_side=True,
                        ssl_context=ssl_context,
                        standard_compatible=False,
                    )
                conn = ServerConnection(BufferedByteStream(stream), index, server)
                if on_connect is not None:
                    await on_connect(conn)
                if not conn.closed:
                    await run(conn)
                await conn.close()
            except PEER_ERRORS:
                pass
            finally:
                await _aclose_transport(stream)
                server.open_connections -= 1
                server._notify()

        async with anyio.create_task_group() as tg:

            async def accept_forever() -> None:
                while True:
                    stream = await listener.accept()
                    server.connections += 1
                    server.open_connections += 1
                    tg.start_soon(serve_one, stream, server.connections - 1)

            tg.start_soon(accept_forever)
            try:
                yield server
            finally:
                tg.cancel_scope.cancel()


async def _aclose_transport(stream: anyio.abc.AnyByteReceiveStream) -> None:
    """Close the socket under ``stream`` now, skipping any TLS closing handshake."""
    if isinstance(stream, TLSStream):
        stream = stream.transport_stream
    # Shielded so that the close completes (and the caller's bookkeeping runs)
    # even when the server is being cancelled: on trio an outer cancellation
    # would otherwise escape aclose_forcefully's own cancel scope.
    with anyio.CancelScope(shield=True):
        await anyio.aclose_forcefully(stream)


def _lower(name: str | bytes) -> bytes:
    return (name if isinstance(name, bytes) else name.encode("ascii")).lower()


# -- what this process has open -----------------------------------------------


def open_sockets() -> set[str]:
    """The sockets this process has open, as ``/proc/self/fd`` names them."""
    names = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the directory's own fd, closed while listing
            continue
        if target.startswith("socket:"):
            names.add(f"{fd} {target}")
    return names


def sockets_to(port: int) -> int:
    """How many TCP sockets of this process are connected or connecting to ``port``.

    Linux only: the process's socket inodes (``/proc/self/fd``) matched
    against the kernel's tables, so a client's socket counts from its SYN
    on, and the server's side of the same connection (whose *local* port is
    ``port``) doesn't.
    """
    inodes = {name.split("socket:[", 1)[1].rstrip("]") for name in open_sockets()}
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)  # the column names
            for line in lines:
                fields = line.split()
                remote, inode = fields[2], fields[9]
                if int(remote.rsplit(":", 1)[1], 16) == port and inode in inodes:
                    count += 1
    return count


# -- a listener whose connects never complete ----------------------------------


@asynccontextmanager
async def hanging_listener(
    host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[tuple[str, int]]:
    """Yield ``(host, port)`` of a loopback listener whose TCP connects hang.

    ``host`` may be any loopback address (Linux routes all of 127.0.0.0/8 to
    ``lo``) and ``port`` a fixed one, e.g. another server's port on 127.0.0.2,
    for a name that resolves to a hanging address and a good one.

    The listener never accepts and has a backlog of 0, which Linux rounds up
    to one queued connection; once a dummy client fills that slot, Linux drops
    every further SYN, so the next connect stays in SYN-SENT and retries
    (1 s, 3 s, 7 s, ...) instead of failing. This works on loopback without
    root or packet filters.
    """
    with ExitStack() as stack:
        listener = stack.enter_context(socket.socket())
        listener.bind((host, port))
        listener.listen(0)
        address = listener.getsockname()
        queued = 0
        for _ in range(16):
            dummy = stack.enter_context(socket.socket())
            dummy.setblocking(False)
            if dummy.connect_ex(address) not in (0, errno.EINPROGRESS):
                raise OSError("hanging_listener: unexpected connect failure")
            await anyio.sleep(0.05)  # a loopback handshake takes microseconds
            _, writable, _ = select.select([], [dummy], [], 0)
            if writable:
                queued += 1
            elif queued:  # stuck behind a completed one: the queue is full
                break
        else:
            raise RuntimeError("hanging_listener: the accept queue never filled up")
        yield address[0], address[1]


# -- hypercorn, a real third-party server --------------------------------------


class CertFiles(NamedTuple):
    """PEM files for servers that take paths (see the ``tls_cert_files`` fixture)."""

    certfile: str  #: the leaf, then the rest of the chain
    keyfile: str


ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


@asynccontextmanager
async def serve_asgi(
    app: ASGIApp,
    *,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    unix_path: str | None = None,
) -> AsyncIterator[str]:
    """Serve ``app`` with hypercorn on the current backend; yield its base URL.

    The listening socket is created and bound here, so the port is known and
    connections are accepted (queued by the kernel) as soon as the URL is
    yielded. Hypercorn gets a duplicate of it and closes that itself. With
    ``unix_path`` it is a new Unix socket at that path, and the URL is
    ``http://localhost`` (``https`` with a certificate): connect it with
    ``remote_connectable=UnixSocketAddress(unix_path)``.

    Close clients before leaving the block: on trio, hypercorn's socket sends
    are shielded, so a response stuck on a client that stopped reading (but
    stays connected) would stall the shutdown until the test times out.
    """
    from hypercorn.config import Config

    if sniffio.current_async_library() == "trio":
        from hypercorn.trio import serve
    else:
        from hypercorn.asyncio import serve

    config = Config()
    # A Logger object is used as it is, instead of a fresh stderr handler
    # bound to whatever sys.stderr pytest had installed at the time.
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = CLOSE_LINGER
    scheme = "http"
    if ssl_certfile is not None:
        config.certfile, config.keyfile, scheme = ssl_certfile, ssl_keyfile, "https"
    family = socket.AF_INET if unix_path is None else socket.AF_UNIX
    with socket.socket(family) as sock:
        sock.bind(("127.0.0.1", 0) if unix_path is None else unix_path)
        sock.listen(128)
        authority = "localhost" if unix_path is not None else f"127.0.0.1:{sock.getsockname()[1]}"
        config.bind = [f"fd://{os.dup(sock.fileno())}"]
        stopping, stopped = anyio.Event(), anyio.Event()

        async def run() -> None:
            try:
                with _quiet_tls_shutdown():
                    await serve(app, config, shutdown_trigger=stopping.wait, mode="asgi")
            except ssl.SSLError as exc:
                if not _late_data(exc):
                    raise
            finally:
                stopped.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            try:
                yield f"{scheme}://{authority}"
            finally:
                # Shut down gracefully even when the test failed or was
                # cancelled: cancelling hypercorn's asyncio worker leaves its
                # lifespan task pending ("Task was destroyed but it is pending").
                stopping.set()
                with anyio.move_on_after(5, shield=True):
                    await stopped.wait()
                tg.cancel_scope.cancel()


def _late_data(exc: BaseException | None) -> bool:
    """A TLS shutdown that met data the client wrote before it saw our close_notify.

    TLS 1.3 lets a peer go on writing after the other side's close_notify (a
    client's HTTP/2 GOAWAY on its way); asyncio's SSL shutdown on the server
    calls that an error. It is the server's own closing, not the client's fault.
    """
    return isinstance(exc, ssl.SSLError) and "APPLICATION_DATA_AFTER_CLOSE_NOTIFY" in str(exc)


@contextlib.contextmanager
def _quiet_tls_shutdown() -> Iterator[None]:
    """On asyncio, drop :func:`_late_data` errors of hypercorn's connection tasks.

    They reach the loop's exception handler, where anyio's test runner would
    fail the test with them; anything else goes on to that handler.
    """
    if sniffio.current_async_library() != "asyncio":
        yield
        return
    import asyncio

    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if _late_data(context.get("exception")):
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    try:
        yield
    finally:
        loop.set_exception_handler(previous)


async def echo_app(scope: Any, receive: Any, send: Any) -> None:
    """A small ASGI app for interop tests.

    * ``GET /hello``: 200, ``hello``
    * ``/echo``: the request body, with ``x-method`` and the request's content type
    * ``/headers``: the request headers as a JSON object (repeats joined by ``, ``)
    * ``/status/{code}``: an empty response with that status
    * ``/stream?n=N&size=S``: N chunks of S bytes, chunked
    * ``/bytes/{n}``: n bytes, ``0x00..0xff`` repeating
    """
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path: str = scope["path"]
    headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in scope["headers"]]

    async def reply(status: int, data: bytes, extra: list[tuple[bytes, bytes]]) -> None:
        length = [(b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": length + extra})
        await send({"type": "http.response.body", "body": data})

    if path == "/hello":
        await reply(200, b"hello", [(b"content-type", b"text/plain")])
    elif path == "/echo":
        extra = [(b"x-method", scope["method"].encode())]
        extra += [(n, v) for n, v in scope["headers"] if n == b"content-type"]
        await reply(200, body, extra)
    elif path == "/headers":
        joined: dict[str, str] = {}
        for name, value in headers:
            joined[name] = f"{joined[name]}, {value}" if name in joined else value
        await reply(200, json.dumps(joined).encode(), [(b"content-type", b"application/json")])
    elif path.startswith("/status/"):
        await reply(int(path.removeprefix("/status/")), b"", [])
    elif path.startswith("/bytes/"):
        await reply(200, bytes(i % 256 for i in range(int(path.removeprefix("/bytes/")))), [])
    elif path == "/stream":
        query = parse_qs(scope["query_string"].decode("latin-1"))
        count, size = int(query.get("n", ["10"])[0]), int(query.get("size", ["1024"])[0])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        async with anyio.create_task_group() as tg:
            # Hypercorn ignores sends after the client left, without yielding
            # on asyncio: watch for the disconnect, checkpoint to let it in.
            tg.start_soon(_cancel_on_disconnect, receive, tg.cancel_scope)
            for _ in range(count):
                await send({"type": "http.response.body", "body": b"x" * size, "more_body": True})
                await anyio.lowlevel.checkpoint()
            await send({"type": "http.response.body", "body": b""})
            tg.cancel_scope.cancel()
    else:
        await reply(404, b"not found", [(b"content-type", b"text/plain")])


async def _cancel_on_disconnect(receive: Any, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()
