"""One message as one HTTP/2 stream: the core's exchange when ALPN chose ``h2``.

Theory of operation: the request task opens a stream on the connection
(its header block is queued for the connection's writer), sends the body
as the stream's window allows, and waits for the response head on its own
stream; the connection's reader task fills the stream. The returned
:class:`~anysoup.InputStream` reads the body from the stream and gives the
stream slot back to the pool at the end, or resets the stream when it is
closed early. Whatever interrupts the exchange (an error, a cancellation
anywhere), the ``except`` clause resets the stream synchronously: the
connection and its other streams go on.

Errors the core turns into another attempt: a stream the server never
processed (:class:`~anysoup._drivers.http2_errors.StreamUnprocessed`),
``HTTP_1_1_REQUIRED`` (:class:`~anysoup._drivers.http2_errors.Http11Required`)
and a 421 answer (:class:`~anysoup._drivers.http2_errors.Misdirected`). The
core imports this module with the first exchange on an HTTP/2 connection.
"""

from __future__ import annotations

import time
from contextlib import aclosing
from typing import TYPE_CHECKING

import anyio

from .._drivers.http1 import EXPECT_CONTINUE_DELAY, MAX_INFORMATIONAL
from .._drivers.http2_errors import Misdirected
from .._drivers.http2_policy import reason_phrase, request_block
from .._model.body import InputStream
from .._model.exceptions import Error, ParsingError
from .._model.headers import MessageHeaders
from .._model.signals import active
from .starting import begin_exchange, body_ended, emit, expects_continue, finish_body

if TYPE_CHECKING:
    from .._drivers.http2 import HTTP2Connection
    from .._drivers.http2_stream import H2Stream
    from .._model.body import RequestBody
    from .._model.message import Message
    from .._pool.pool import Connection, Pool

__all__ = ["exchange_h2"]


async def exchange_h2(
    pool: Pool,
    conn: Connection,
    msg: Message,
    headers: list[tuple[str, str]],
    *,
    retry_421: bool,
) -> InputStream:
    """Send ``msg`` on a new stream of ``conn``; return its body once the final head is in."""
    driver = conn.http2
    assert driver is not None
    driver.timeout = pool.timeout
    target = await begin_exchange(conn, msg)
    block = request_block(msg.method, "https", conn.plan.authority, target, headers)
    body = msg._body
    bodyless = body is None or body.length == 0
    stream = driver.open_stream(block, end_stream=bodyless)
    try:
        metrics = msg.metrics
        if metrics is not None:
            metrics.request_header_bytes_sent = sum(len(n) + len(v) for n, v in block)
        if msg._signals:
            await emit(msg, "wrote_headers")
        if body is None or bodyless:
            if msg._signals:
                await emit(msg, "wrote_body")
        elif not expects_continue(msg) or await _may_continue(stream, msg):
            await _upload(driver, stream, msg, body)
        status = await _final_head(stream, msg)
        if status == 421 and retry_421 and (body is None or body.replayable):
            raise Misdirected(f"{conn.plan.label}: 421 Misdirected Request", message=msg)  # noqa: TRY301
        if msg._signals and not (msg._validating and status == 304):
            await emit(msg, "got_headers")
    except BaseException as exc:
        stream.reset()
        if isinstance(exc, Error) and stream.received_any:
            exc._response_started = True
        raise
    return InputStream(_H2Body(pool, conn, stream, msg))


async def _may_continue(stream: H2Stream, msg: Message) -> bool:
    """After ``Expect: 100-continue``: whether to send the body (RFC 9110 §10.1.1).

    True on a 1xx (the message gets it and ``got_informational`` before the
    body goes, as on HTTP/1.1) or when the delay passes without an answer;
    False when a final answer came first (it stays queued for
    :func:`_final_head`).
    """
    with anyio.move_on_after(EXPECT_CONTINUE_DELAY):
        while not stream.heads:
            if stream.ended or stream.reset_code is not None:
                return False
            await stream.wait()
    if not stream.heads:
        return True
    status, fields = stream.heads[0]
    if status >= 200:
        return False
    stream.heads.popleft()
    _give_head(msg, status, fields)
    if msg._signals:
        await emit(msg, "got_informational")
    return True


async def _upload(
    driver: HTTP2Connection, stream: H2Stream, msg: Message, body: RequestBody
) -> None:
    """Send the body; stop quietly when the server answered first (an early answer)."""
    if body.data is not None:
        if not await driver.send_body(stream, body.data, end=True):
            return
        sent = len(body.data)
        signal = active(msg, "wrote_body_data")
        if signal is not None and body.data:
            await signal.emit(body.data)
    else:
        sent = 0
        async with aclosing(body.chunks()) as chunks:
            async for chunk in chunks:
                if not chunk:
                    continue
                sent += len(chunk)
                if body.length is not None and sent > body.length:
                    raise _body_lied(driver, "more")
                if not await driver.send_body(stream, chunk, end=False):
                    return
                signal = active(msg, "wrote_body_data")
                if signal is not None:
                    await signal.emit(chunk)
        if body.length is not None and sent < body.length:
            raise _body_lied(driver, "fewer")
        if not await driver.send_body(stream, b"", end=True):
            return
    if msg.metrics is not None:
        msg.metrics.request_body_size = msg.metrics.request_body_bytes_sent = sent
    if msg._signals:
        await emit(msg, "wrote_body")


def _body_lied(driver: HTTP2Connection, size: str) -> Error:
    return Error(
        f"writing request body to {driver.label}: the body gave {size} bytes than the "
        "length declared for it (Content-Length)"
    )


async def _final_head(stream: H2Stream, msg: Message) -> int:
    """Read heads up to the final one, giving the message each (1xx included)."""
    informational = 0
    while True:
        status, fields = await stream.receive_head()
        _give_head(msg, status, fields)
        if status >= 200:
            return status
        informational += 1
        if informational > MAX_INFORMATIONAL:
            raise ParsingError(
                f"reading response headers from {stream!r}: more than "
                f"{MAX_INFORMATIONAL} informational responses",
                message=msg,
            )
        if msg._signals:
            await emit(msg, "got_informational")


def _give_head(msg: Message, status: int, fields: list[tuple[bytes, bytes]]) -> None:
    """Set a response head (1xx or final) on the message, and its metrics."""
    metrics = msg.metrics
    if metrics is not None and not metrics.response_start:
        metrics.response_start = time.monotonic()
    msg.status = status
    msg.reason_phrase = reason_phrase(status)
    msg.response_headers = MessageHeaders._from_pairs(fields)
    if metrics is not None:
        metrics.response_header_bytes_received += sum(len(n) + len(v) for n, v in fields) + 10


class _H2Body:
    """The body source of an :class:`InputStream`: one response on one stream."""

    __slots__ = ("_conn", "_ended", "_msg", "_pool", "_received", "_stream")

    def __init__(self, pool: Pool, conn: Connection, stream: H2Stream, msg: Message) -> None:
        self._pool = pool
        self._conn = conn
        self._stream: H2Stream | None = stream
        self._msg = msg
        self._received = 0
        # The body ended; got_body and finished are due when the stream closes.
        self._ended = False

    async def receive_chunk(self) -> bytes | None:
        stream = self._stream
        if stream is None:
            raise anyio.ClosedResourceError
        msg = self._msg
        try:
            chunk = await stream.receive_chunk()
        except Error as exc:
            if exc.message is None:
                exc.message = msg
            raise
        if chunk is None:
            self.discard()
            body_ended(msg, self._received)
            self._ended = True  # got_body and finished wait for close()
            return None
        self._received += len(chunk)
        signal = active(msg, "got_body_data")
        if signal is not None:
            await signal.emit(chunk)
        return chunk

    async def close(self, *, drain: bool) -> None:
        msg = self._msg
        if self._stream is None:
            if self._ended:
                self._ended = False
                await finish_body(msg)
            return
        # Nothing to drain: a reset frees the stream and keeps the connection.
        self.discard()
        if msg._signals:
            await emit(msg, "finished")

    def discard(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.reset()
            self._pool.release(self._conn, reusable=True)
