"""One HTTP/2 stream as its request task sees it.

Theory of operation: the connection's reader task is the only code that
reads the socket; it hands each event of a stream to that stream's
``on_*`` method, which stores it and wakes the request task if it waits.
The request task owns the stream: it sends the request through it, waits
for the response head, reads the body a chunk at a time, and closes it in
its clean-up (:meth:`H2Stream.reset`, synchronous, so it works wherever a
cancellation lands).

Flow control: what arrived and was not read stays here, at most the
stream's window (the server may send no more). Each chunk the request task
takes is credited back to the peer (``acknowledge_received_data``, by its
flow-controlled length, padding included), so WINDOW_UPDATE follows
consumption, not arrival. A stream closed before its end credits the
connection window with whatever it still held, so an abandoned download
can't starve its neighbours.
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import TYPE_CHECKING

import anyio

from .._model.exceptions import (
    Error,
    IncompleteBody,
    NetworkError,
    ParsingError,
    TimeoutError,
)
from .http2_errors import Http11Required, StreamUnprocessed
from .http2_policy import HTTP_1_1_REQUIRED, REFUSED_STREAM, error_name, split_status

if TYPE_CHECKING:
    from .http2 import HTTP2Connection

__all__ = ["H2Stream"]

#: The error code of a reset we send when the request task gives up (RFC 9113 §7).
CANCEL = 0x8
#: The most one ``receive_chunk`` joins of what arrived (servers send 8-16 KiB frames).
JOIN_LIMIT = 256 * 1024
#: Credit consumed data back in steps of this much (and whenever the reader waits).
CREDIT_STEP = 512 * 1024
_monotonic = time.monotonic


class H2Stream:
    """A request's stream on an :class:`~anysoup._drivers.http2.HTTP2Connection`."""

    __slots__ = (
        "_chunks",
        "_conn",
        "_uncredited",
        "_unread_flow",
        "_wake",
        "deadline",
        "ended",
        "failure",
        "heads",
        "id",
        "phase",
        "received_any",
        "reset_code",
        "trailers",
    )

    def __init__(self, conn: HTTP2Connection, stream_id: int) -> None:
        self._conn = conn
        #: The stream identifier (odd: opened by us).
        self.id = stream_id
        #: Response heads not yet taken: ``(status, fields)``.
        self.heads: deque[tuple[int, list[tuple[bytes, bytes]]]] = deque()
        # Body data not yet read, with each piece's flow-controlled length.
        self._chunks: deque[tuple[bytes, int]] = deque()
        self._unread_flow = 0
        # Read by the application, not yet credited back to the peer.
        self._uncredited = 0
        #: The server ended the stream (END_STREAM).
        self.ended = False
        #: The error code of the server's RST_STREAM, if it reset the stream.
        self.reset_code: int | None = None
        #: The trailer fields, if the response had any.
        self.trailers: list[tuple[bytes, bytes]] = []
        #: Whether any frame of the response arrived (the request was seen).
        self.received_any = False
        #: Why the stream can't go on (the connection failed, a stall), or None.
        self.failure: Error | None = None
        #: What the request task is doing, for error messages.
        self.phase = "writing request"
        #: While the request task waits: when the wait stalls out (inf: none).
        self.deadline = math.inf
        self._wake: anyio.Event | None = None

    # -- events, from the reader task ------------------------------------------

    def on_head(self, headers: list[tuple[bytes, bytes]]) -> None:
        """A response head (1xx or final) arrived."""
        self.received_any = True
        try:
            self.heads.append(split_status(headers))
        except ValueError as exc:
            self.fail(
                ParsingError(
                    f"{self._where('reading response headers')}: malformed response: {exc}"
                )
            )
            return
        self._notify()

    def on_data(self, data: bytes, flow: int) -> None:
        """A DATA frame arrived (``flow``: its flow-controlled length)."""
        self.received_any = True
        if data:
            self._chunks.append((data, flow))
            self._unread_flow += flow
            self._notify()
        elif flow:  # padding only: nothing to read, credit it now
            self._conn.consumed(self.id, flow)

    def on_trailers(self, headers: list[tuple[bytes, bytes]]) -> None:
        """The trailer fields arrived (the stream ends with them)."""
        self.trailers = headers

    def on_end(self) -> None:
        """The server ended its side of the stream."""
        self.ended = True
        self._notify()

    def on_reset(self, code: int) -> None:
        """The server reset the stream."""
        self.reset_code = int(code)
        self._notify()

    def fail(self, error: Error) -> None:
        """The stream can't go on (the connection failed, or its wait stalled)."""
        if self.failure is None:
            self.failure = error
        self._notify()

    def _notify(self) -> None:
        wake = self._wake
        if wake is not None:
            self._wake = None
            wake.set()

    # -- the request task ------------------------------------------------------

    async def wait(self) -> None:
        """Wait for the next event of this stream (or of the window it sends into)."""
        self._check()
        if self._uncredited:  # the server may be waiting for it
            self._credit()
        wake = self._wake = anyio.Event()
        timeout = self._conn.timeout
        if timeout:
            self.deadline = _monotonic() + timeout
        try:
            await wake.wait()
        finally:
            self.deadline = math.inf
            if self._wake is wake:
                self._wake = None

    def wake(self) -> None:
        """Wake the request task if it waits (the send window grew)."""
        self._notify()

    async def receive_head(self) -> tuple[int, list[tuple[bytes, bytes]]]:
        """The next response head: ``(status, fields)``, a 1xx or the final one."""
        self.phase = "reading response headers"
        while not self.heads:
            if self.reset_code is not None or self.ended:
                self._raise_reset("reading response headers")
            await self.wait()
        return self.heads.popleft()

    async def receive_chunk(self) -> bytes | None:
        """What arrived of the response body (up to ``JOIN_LIMIT``), or None at its end.

        The frames that arrived since the last call are joined: a server's
        8 KiB DATA frames would otherwise cost a trip through every layer
        above each.
        """
        chunks = self._chunks
        if not chunks:
            self.phase = "reading response body"
            while not chunks:
                if self.ended:
                    if self._uncredited:
                        self._credit()
                    return None
                if self.reset_code is not None:
                    self._raise_reset("reading response body")
                await self.wait()
        data, flow = chunks.popleft()
        if chunks and len(data) < JOIN_LIMIT:
            pieces = [data]
            size = len(data)
            while chunks and size < JOIN_LIMIT:
                piece, piece_flow = chunks.popleft()
                pieces.append(piece)
                size += len(piece)
                flow += piece_flow
            data = b"".join(pieces)
        self._unread_flow -= flow
        self._uncredited += flow
        if self._uncredited >= CREDIT_STEP:
            self._credit()
        return data

    def _credit(self) -> None:
        flow, self._uncredited = self._uncredited, 0
        self._conn.consumed(self.id, flow)

    def reset(self) -> None:
        """Give up the stream (RST_STREAM CANCEL unless it ended); credit what it held.

        Synchronous and idempotent: the request task's clean-up calls it
        wherever it was cancelled, and the connection sends the reset
        without the task waiting for the writer.
        """
        flow, self._unread_flow = self._unread_flow, 0
        flow += self._uncredited
        self._uncredited = 0
        self._chunks.clear()
        self._conn.close_stream(self, flow)

    # -- errors ----------------------------------------------------------------

    def _check(self) -> None:
        failure = self.failure
        if failure is not None:
            raise failure

    def _where(self, phase: str) -> str:
        to = "to" if phase.startswith("writing") else "from"
        return f"{phase} {to} {self._conn.label} (HTTP/2 stream {self.id})"

    def _raise_reset(self, phase: str) -> None:
        code = self.reset_code
        if code is None:  # ended without a final head
            raise ParsingError(f"{self._where(phase)}: the stream ended without a response")
        if code == REFUSED_STREAM:
            raise StreamUnprocessed(f"{self._where(phase)}: the server refused the stream")
        if code == HTTP_1_1_REQUIRED:
            raise Http11Required(f"{self._where(phase)}: the server requires HTTP/1.1")
        cls = IncompleteBody if "body" in phase else NetworkError
        raise cls(f"{self._where(phase)}: the server reset the stream ({error_name(code)})")

    def stalled(self, timeout: float) -> TimeoutError:
        """The error of a wait that made no progress for ``timeout`` seconds."""
        return TimeoutError(f"{self._where(self.phase)}: no progress for {timeout:g} s")

    def lost(self, cause: str, *, unprocessed: bool = False) -> Error:
        """The error of this stream when its connection went away for ``cause``."""
        cls = StreamUnprocessed if unprocessed else NetworkError
        if not unprocessed and "body" in self.phase:
            cls = IncompleteBody
        return cls(f"{self._where(self.phase)}: {cause}")

    def __repr__(self) -> str:
        return f"<H2Stream {self._conn.label} #{self.id} {self.phase}>"
