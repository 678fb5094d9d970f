"""What a handler of :func:`h2_servers.serve_h2` answers through: one request stream.

Theory of operation: a :class:`ServerStream` is filled by its connection's
reader (body chunks, trailers, the client's reset) and drained by its handler
task. Flow control is honoured both ways (RFC 9113 §5.2): :meth:`ServerStream.send_data`
sends only what the client's stream and connection windows allow and waits for
WINDOW_UPDATE when they are used up, so a large body is never buffered beyond
them; the request body's window is handed back only as the handler reads it,
so a handler that does not read holds the client's upload (and
``hold_window`` gives back the connection's window but never the stream's).

Every send is an h2 call followed by handing h2's output to the connection's
writer, so frames leave in the order they were made. When ALPN did not pick
h2, :class:`Http1Stream` offers the same methods over h11 for the same handler.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import anyio
from servers import ServerConnection

if TYPE_CHECKING:
    from h2_connection import H2ServerConnection

__all__ = ["HeadersLike", "Http1Stream", "ServerStream", "StreamGone"]

HeadersLike = Iterable[tuple[str | bytes, str | bytes]]


class StreamGone(Exception):
    """The stream was reset or the connection closed under a handler; swallowed per stream."""


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


def _fields(headers: HeadersLike) -> list[tuple[bytes, bytes]]:
    return [(_bytes(name), _bytes(value)) for name, value in headers]


class _Request:
    """What a handler can ask of a request, over HTTP/2 and the HTTP/1.1 stand-in alike."""

    #: The request's fields in order, pseudo-header fields first, as bytes.
    request_headers: list[tuple[bytes, bytes]]

    def header(self, name: str | bytes) -> bytes | None:
        """The first value of ``name`` (lowercase, or a pseudo-header like ``:path``), or None."""
        wanted = _bytes(name).lower()
        return next((v for n, v in self.request_headers if n == wanted), None)

    @property
    def method(self) -> str:
        """The ``:method``, e.g. ``GET``."""
        return (self.header(b":method") or b"").decode("latin-1")

    @property
    def path(self) -> str:
        """The ``:path``, e.g. ``/a?b=1``."""
        return (self.header(b":path") or b"").decode("latin-1")


class ServerStream(_Request):
    """One request stream as a handler sees it, and what the server saw on it.

    Sends raise :class:`StreamGone` once the client reset the stream or the
    connection is closed; the handler task ends quietly then. A handler that
    returns before ending its response has the stream reset with
    INTERNAL_ERROR, as a server whose handler crashed would, unless it scripted
    the stream with :meth:`send_raw`.
    """

    def __init__(
        self, connection: H2ServerConnection, stream_id: int, headers: list[tuple[bytes, bytes]]
    ) -> None:
        self.connection = connection
        self.stream_id = stream_id
        self.request_headers = headers
        self.request_trailers: list[tuple[bytes, bytes]] = []
        #: Give back only the connection's window as the body is read, never
        #: the stream's: the client's upload on this stream stalls once the
        #: stream's initial window is used up, while other streams go on.
        self.hold_window = False
        self.data_received = 0  #: request body bytes received (read or not)
        self.data_sent = 0  #: response DATA payload bytes handed to h2, within the windows
        self.window_waits = 0  #: times :meth:`send_data` waited for a WINDOW_UPDATE
        self.reset_by_client: int | None = None  #: the client's RST_STREAM error code
        self.request_complete = False  #: the client ended its side (END_STREAM)
        self.response_ended = False  #: our side ended (END_STREAM or RST_STREAM sent)
        self.raw = False  #: the handler wrote raw frames on this stream
        self._chunks: deque[tuple[bytes, int]] = deque()
        self._arrived = anyio.Event()
        self._scope = anyio.CancelScope()

    # -- the request ---------------------------------------------------------

    async def receive_data(self) -> bytes:
        """The next chunk of the request body, ``b""`` at its end; its window is given back."""
        while not self._chunks:
            if self.request_complete or self.reset_by_client is not None:
                return b""
            await self._arrived.wait()
            self._arrived = anyio.Event()
        data, flow_length = self._chunks.popleft()
        self.connection._consumed(self, flow_length)
        return data

    async def read_body(self) -> bytes:
        """The whole request body, acknowledging flow control as it reads."""
        chunks = []
        while chunk := await self.receive_data():
            chunks.append(chunk)
        return b"".join(chunks)

    # -- the response --------------------------------------------------------

    async def send_informational(self, status: int = 103, headers: HeadersLike = ()) -> None:
        """Send a 1xx interim response."""
        await self._send_headers([(b":status", str(status).encode()), *_fields(headers)], False)

    async def send_headers(
        self, status: int = 200, headers: HeadersLike = (), end_stream: bool = False
    ) -> None:
        """Send the response's HEADERS; ``end_stream`` for a response without a body."""
        fields = [(b":status", str(status).encode()), *_fields(headers)]
        await self._send_headers(fields, end_stream)

    async def send_trailers(self, headers: HeadersLike) -> None:
        """End the response with a trailer section."""
        await self._send_headers(_fields(headers), True)

    async def send_data(self, data: bytes, end_stream: bool = False) -> None:
        """Send ``data`` in frames as the client's stream and connection windows allow.

        Waits for WINDOW_UPDATE (or a SETTINGS change) whenever the windows are
        used up, so a large body is never buffered beyond them.
        """
        conn = self.connection
        view = memoryview(data)
        while True:
            self._check()
            window = min(conn.h2.local_flow_control_window(self.stream_id), len(view))
            if window <= 0 and view:
                self.window_waits += 1
                conn.server._notify()
                await conn._window_opened()
                continue
            size = max(0, min(window, conn.h2.max_outbound_frame_size))  # 0: END_STREAM alone
            chunk, view = view[:size], view[size:]
            last = end_stream and not view
            conn.h2.send_data(self.stream_id, bytes(chunk), end_stream=last)
            self.data_sent += size
            conn.data_sent += size
            self.response_ended = last
            await conn._queue_output(backpressure=True)
            if not view:
                return

    async def reset(self, error_code: int) -> None:
        """Send RST_STREAM with ``error_code`` (e.g. ``ErrorCodes.REFUSED_STREAM``)."""
        self._check()
        self.connection.h2.reset_stream(self.stream_id, error_code)
        self.response_ended = True
        await self.connection._queue_output()

    async def send_raw(self, data: bytes) -> None:
        """Write raw frames meant for this stream; h2 does not see them (see :mod:`h2_scripts`)."""
        self.raw = True
        await self.connection.send_raw(data)

    # -- internals -----------------------------------------------------------

    def _check(self) -> None:
        if self.reset_by_client is not None:
            raise StreamGone(f"stream {self.stream_id} was reset by the client")
        if not self.connection.is_open:
            raise StreamGone(f"stream {self.stream_id}: the connection is closed")

    async def _send_headers(self, fields: list[tuple[bytes, bytes]], end_stream: bool) -> None:
        self._check()
        self.connection.h2.send_headers(self.stream_id, fields, end_stream=end_stream)
        self.response_ended = end_stream
        await self.connection._queue_output()

    def __repr__(self) -> str:
        return f"<ServerStream {self.stream_id} {self.method} {self.path}>"


class Http1Stream(_Request):
    """The HTTP/1.1 stand-in for :class:`ServerStream` when ALPN did not pick h2.

    ``connection`` is the :class:`servers.ServerConnection`; ``reset`` resets TCP.
    """

    def __init__(self, connection: ServerConnection, request: Any) -> None:
        self.connection = connection
        self.request_headers = [
            (b":method", request.method.encode()),
            (b":path", request.target.encode("latin-1")),
            (b":scheme", b"https"),
            *[(n.encode("latin-1"), v.encode("latin-1")) for n, v in request.headers],
        ]
        self.response_ended = False

    async def read_body(self) -> bytes:
        """The whole request body."""
        return await self.connection.read_body()

    async def send_headers(
        self, status: int = 200, headers: HeadersLike = (), end_stream: bool = False
    ) -> None:
        """Send the status line and fields; h11 chunks the body when no length is given."""
        fields = _fields(headers)
        if end_stream and not any(n.lower() == b"content-length" for n, _ in fields):
            fields.append((b"content-length", b"0"))
        await self.connection.send_head(status, fields)
        if end_stream:
            await self._end()

    async def send_data(self, data: bytes, end_stream: bool = False) -> None:
        """Send part of the body."""
        await self.connection.send_data(data)
        if end_stream:
            await self._end()

    async def send_trailers(self, headers: HeadersLike) -> None:
        """End a chunked body with trailer fields."""
        await self._end(_fields(headers))

    async def reset(self, error_code: int = 0) -> None:
        """Reset the TCP connection (HTTP/1.1 has no stream to reset)."""
        await self.connection.reset()
        self.response_ended = True

    async def _end(self, trailers: list[tuple[bytes, bytes]] | None = None) -> None:
        await self.connection.end(trailers or [])
        self.response_ended = True
