"""Ready-made handlers, connection scripts and raw frames for :func:`h2_servers.serve_h2`.

Theory of operation: a test composes a server from small pieces instead of
writing a handler each time. *Handlers* answer one stream (:func:`respond`,
:func:`echo`, :func:`huge_download`, :func:`stall_upload`, :func:`reset_with`,
:func:`header_bomb_handler`) and combine with :func:`route` (by path) and
:func:`gated` (wait for the test's go). *Connection scripts* are
``on_connection`` coroutines for connection-level faults
(:func:`goaway_after`, :func:`ping_flood_after`). The *frame builders*
(:func:`header_block`, :func:`header_bomb`, :func:`continuation_flood`) make
bytes for :meth:`ServerStream.send_raw`, which h2 would refuse to produce.

Raw header blocks are HPACK-encoded with a fresh encoder whose every field is
"never indexed" (RFC 7541 §6.2.3): the client's dynamic table is left as the
connection's own h2 encoder believes it to be, so the connection stays usable.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import anyio
from h2.errors import ErrorCodes
from h2_servers import ConnectionScript, H2ServerConnection, Handler, HeadersLike, ServerStream
from hpack import Encoder
from hyperframe.frame import ContinuationFrame, HeadersFrame

__all__ = [
    "continuation_flood",
    "echo",
    "gated",
    "goaway_after",
    "header_block",
    "header_bomb",
    "header_bomb_handler",
    "http_1_1_required",
    "huge_download",
    "misdirected",
    "ping_flood_after",
    "refuse",
    "reset_with",
    "respond",
    "route",
    "stall_upload",
]

#: The largest frame payload a client allows unless it says otherwise (RFC 9113 §6.5.2).
DEFAULT_MAX_FRAME_SIZE = 16384

#: One block of zero bytes, reused for every frame of a large download.
_ZEROS = bytes(DEFAULT_MAX_FRAME_SIZE)


# -- handlers -----------------------------------------------------------------


def respond(status: int = 200, body: bytes = b"", headers: HeadersLike = ()) -> Handler:
    """A handler that reads the request body, then answers with this response."""
    fields = [*headers, ("content-length", str(len(body)))]

    async def handler(stream: ServerStream) -> None:
        await stream.read_body()
        await stream.send_headers(status, fields, end_stream=not body)
        if body:
            await stream.send_data(body, end_stream=True)

    return handler


async def echo(stream: ServerStream) -> None:
    """Answer with the request body, naming the method, path and stream in headers."""
    body = await stream.read_body()
    fields = [
        ("x-method", stream.method),
        ("x-path", stream.path),
        ("x-stream-id", str(getattr(stream, "stream_id", 0))),
        ("content-length", str(len(body))),
    ]
    await stream.send_headers(200, fields, end_stream=not body)
    if body:
        await stream.send_data(body, end_stream=True)


def huge_download(total: int, *, frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> Handler:
    """A handler streaming ``total`` zero bytes, ``frame_size`` at a time, as the windows allow.

    Nothing is buffered beyond the client's windows: ``stream.data_sent`` is
    what was sent so far, for comparison with ``conn.window_granted(...)``.
    """
    block = _ZEROS if frame_size == len(_ZEROS) else bytes(frame_size)

    async def handler(stream: ServerStream) -> None:
        await stream.read_body()
        await stream.send_headers(200, [("content-length", str(total))], end_stream=not total)
        left = total
        while left:
            size = min(left, frame_size)
            left -= size
            await stream.send_data(block[:size] if size < frame_size else block, not left)

    return handler


async def stall_upload(stream: ServerStream) -> None:
    """Read the request body but never reopen the stream's window, and never answer.

    The client's upload stalls once the stream's initial window is used up
    (``stream.data_received`` says how far it got); the connection window is
    given back, so other streams go on. Set a small window with
    ``settings={SettingCodes.INITIAL_WINDOW_SIZE: n}``.
    """
    stream.hold_window = True
    while await stream.receive_data():
        pass
    await anyio.sleep_forever()


def reset_with(error_code: int, *, after_headers: bool = False) -> Handler:
    """A handler that resets its stream at once (or after a 200's HEADERS) with ``error_code``."""

    async def handler(stream: ServerStream) -> None:
        if after_headers:
            await stream.send_headers(200)
        await stream.reset(error_code)

    return handler


def refuse() -> Handler:
    """Reset with REFUSED_STREAM: the request was not processed and may be retried."""
    return reset_with(ErrorCodes.REFUSED_STREAM)


def http_1_1_required() -> Handler:
    """Reset with HTTP_1_1_REQUIRED (0xd): the client should retry over HTTP/1.1."""
    return reset_with(ErrorCodes.HTTP_1_1_REQUIRED)


def misdirected(body: bytes = b"misdirected") -> Handler:
    """Answer 421 Misdirected Request (RFC 9110 §15.5.20)."""
    return respond(421, body, [("content-type", "text/plain")])


def header_bomb_handler(size: int = 1 << 20) -> Handler:
    """Answer with a header block of ``size`` bytes in HEADERS and CONTINUATION frames.

    The handler then waits for the client to reset the stream or leave.
    """

    async def handler(stream: ServerStream) -> None:
        frame_size = stream.connection.h2.max_outbound_frame_size
        await stream.send_raw(header_bomb(stream.stream_id, size, max_frame_size=frame_size))
        await anyio.sleep_forever()

    return handler


def route(routes: Mapping[str, Handler], default: Handler | None = None) -> Handler:
    """Dispatch on the path without its query: one server, one behaviour per path.

    Unknown paths get ``default``, or a 404.
    """
    fallback = default or respond(404, b"not found")

    async def handler(stream: ServerStream) -> None:
        await routes.get(stream.path.partition("?")[0], fallback)(stream)

    return handler


def gated(gate: anyio.Event, handler: Handler) -> Handler:
    """``handler``, started only once the test sets ``gate``: streams stay open meanwhile."""

    async def wait_then(stream: ServerStream) -> None:
        await gate.wait()
        await handler(stream)

    return wait_then


# -- connection scripts -------------------------------------------------------


def goaway_after(
    streams: int = 1,
    *,
    error_code: int = 0,
    last_stream_id: int | None = None,
    close: bool = False,
) -> ConnectionScript:
    """Send GOAWAY once the client has opened ``streams`` streams.

    With the defaults it is graceful: the streams finish, then the connection
    closes. ``last_stream_id`` lower than the streams already open tells the
    client those were not processed; ``close`` drops the connection at once.
    """

    async def script(conn: H2ServerConnection) -> None:
        await conn.wait_until(lambda: conn.streams_opened >= streams)
        await conn.goaway(error_code, last_stream_id)
        if close:
            await conn.close()

    return script


def ping_flood_after(count: int, streams: int = 0) -> ConnectionScript:
    """Send ``count`` PINGs at once when the client has opened ``streams`` streams."""

    async def script(conn: H2ServerConnection) -> None:
        await conn.wait_until(lambda: conn.streams_opened >= streams)
        await conn.ping_flood(count)

    return script


# -- raw frames ---------------------------------------------------------------


def header_block(
    stream_id: int,
    headers: HeadersLike,
    *,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    end_stream: bool = False,
    huffman: bool = False,
) -> bytes:
    """``headers`` as one HEADERS frame and as many CONTINUATION frames as they need."""
    encoder = Encoder()
    block = encoder.encode([(n, v, True) for n, v in headers], huffman=huffman)
    pieces = [block[i : i + max_frame_size] for i in range(0, len(block), max_frame_size)]
    return _frames(stream_id, pieces or [b""], end_stream=end_stream, end_headers=True)


def header_bomb(
    stream_id: int,
    size: int = 1 << 20,
    *,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    field_size: int = 4096,
) -> bytes:
    """A valid 200 response head whose block is ``size`` bytes or more, in many frames.

    The fields are ``x-bomb-N: aaaa…`` of ``field_size`` bytes each, without
    Huffman coding, so the bytes on the wire are as large as the decoded list.
    """
    count = math.ceil(size / field_size)
    fields: list[tuple[str | bytes, str | bytes]] = [(":status", "200")]
    fields += [(f"x-bomb-{i}", "a" * field_size) for i in range(count)]
    return header_block(stream_id, fields, max_frame_size=max_frame_size)


def continuation_flood(
    stream_id: int, count: int, *, payload: bytes = b"", end_headers: bool = False
) -> bytes:
    """HEADERS (a bare ``:status 200``) without END_HEADERS, then ``count`` CONTINUATION frames.

    Each CONTINUATION carries ``payload`` (empty by default: the flood costs
    the client frames, not bytes). With ``end_headers`` the last one ends the
    block, and then ``payload`` must be a valid HPACK fragment (or empty).
    """
    status = Encoder().encode([(":status", "200", True)], huffman=False)
    return _frames(
        stream_id, [status] + [payload] * count, end_stream=False, end_headers=end_headers
    )


def _frames(
    stream_id: int, pieces: Iterable[bytes], *, end_stream: bool, end_headers: bool
) -> bytes:
    out = []
    pieces = list(pieces)
    for index, piece in enumerate(pieces):
        frame: HeadersFrame | ContinuationFrame
        if index == 0:
            frame = HeadersFrame(stream_id, piece)
            if end_stream:
                frame.flags.add("END_STREAM")
        else:
            frame = ContinuationFrame(stream_id, piece)
        if end_headers and index == len(pieces) - 1:
            frame.flags.add("END_HEADERS")
        out.append(frame.serialize())
    return b"".join(out)
