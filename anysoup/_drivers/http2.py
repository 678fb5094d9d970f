"""The HTTP/2 driver: many streams over one connection, h2 over an anyio byte stream.

Theory of operation (the design page, "HTTP/2: the multiplexed connection",
has the states and the cancellation table):

* **Tasks.** :meth:`HTTP2Connection.run` runs in the pool connection's task,
  under its cancel scope, and starts a task group of its own: the
  **reader** (the only code that reads the socket; it feeds h2 and hands
  each event to its :class:`~anysoup._drivers.http2_stream.H2Stream`), the
  **writer** (the only code that writes it) and the **watchdog** (stall
  deadlines of the streams, and a keepalive PING on a quiet connection).
  Request tasks never touch the socket: they call h2, which queues bytes
  synchronously, and *kick* the writer. A request task cancelled anywhere
  therefore never leaves half a frame on the wire; its stream's reset is one
  more frame queued for the writer, without waiting behind it.
* **Flow control.** The connection window is 15 MiB and each stream's
  6 MiB (libsoup's and Chromium's figures). They are credited back as the
  application consumes data (:meth:`HTTP2Connection.consumed`), so an
  unread stream holds at most its window in memory.
* **GOAWAY.** h2 moves its whole state machine to CLOSED when it *receives*
  GOAWAY, and would then refuse the frames of the streams the server still
  finishes. ``H2Client`` (``http2_client.py``) keeps the state it had: the
  driver itself refuses new streams from then on, streams above the
  last-stream-id fail as unprocessed (sent again elsewhere), the others
  finish, and the pool drains the connection (no new stream; closed when
  the last one ends).
* **Failures.** A lost connection, an h2 protocol error or a stalled write
  fails every open stream with an error naming the stream and the cause;
  the connection task then ends, and the pool counts the connection closed.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import TYPE_CHECKING

import anyio
import h2.events
import h2.exceptions
import h2.settings
from anyio.abc import ByteStream

from .._model.exceptions import (
    Error,
    NetworkError,
    ParsingError,
    TlsError,
)
from .._transport.io_errors import IO_ERRORS, describe_io_error
from .._transport.tls import alert_error
from .http1 import READ_SIZE, WRITE_SLICE, _tls_buffers
from .http2_client import new_client, read_more
from .http2_errors import StreamUnprocessed
from .http2_policy import error_name
from .http2_stream import CANCEL, H2Stream
from .owner import closed_by_pool

if TYPE_CHECKING:
    from .owner import MultiplexOwner

__all__ = ["HTTP2Connection"]

#: Never more streams on one connection than this, whatever the peer allows.
MAX_STREAMS_CAP = 1000
#: A connection with no open stream and nothing received this long gets a PING.
KEEPALIVE_IDLE = 30.0
#: How long a keepalive PING may go unanswered before the connection is dropped.
PING_TIMEOUT = 10.0
#: The reader stops reading while h2 holds more than this for the writer.
MAX_OUTBOUND = 1024 * 1024
_PING = b"anysoup!"
_monotonic = time.monotonic

_Settings = h2.settings.SettingCodes


class HTTP2Connection:
    """h2 driving one byte stream, shared by up to the peer's limit of streams.

    Args:
        stream: The connected TLS stream (ALPN chose ``h2``).
        owner: The pool connection: stall deadline, close reason, and the
            two calls that change what the pool may lend (the peer's stream
            limit, draining after GOAWAY).
        label: ``host:port``, for error messages.
        timeout: The stall timeout in seconds (0: none).
    """

    def __init__(
        self, stream: ByteStream, owner: MultiplexOwner, label: str, *, timeout: float
    ) -> None:
        self._stream = stream
        self._owner = owner
        self.label = label
        self.timeout = timeout
        self._h2 = new_client()
        self._streams: dict[int, H2Stream] = {}
        #: The server's GOAWAY: ``(last_stream_id, error_code)``, or None.
        self.goaway: tuple[int, int] | None = None
        # Why the connection can't carry streams any more, once it can't.
        self._failure: str | None = None
        self._kick_event: anyio.Event | None = None
        self._drained_event: anyio.Event | None = None
        self._writing = False
        # The socket or h2's state failed (no GOAWAY of ours can follow).
        self._broken = False
        self._scope: anyio.CancelScope | None = None
        self._last_received = _monotonic()
        self._ping_sent = math.inf

    # -- the connection's tasks -------------------------------------------------

    async def run(self) -> None:
        """Read, write and watch until the connection ends or is cancelled."""
        try:
            async with anyio.create_task_group() as group:
                self._scope = group.cancel_scope
                group.start_soon(self._write_loop, name=f"anysoup h2 writer {self.label}")
                group.start_soon(self._watch, name=f"anysoup h2 watchdog {self.label}")
                await self._read_loop()
                group.cancel_scope.cancel()
        finally:
            self._closed()

    async def _read_loop(self) -> None:
        receive = self._stream.receive
        conn = self._h2
        tls = _tls_buffers(self._stream)
        first = True
        while self._failure is None:
            if self._outbound() > MAX_OUTBOUND:
                # The writer is behind (a PING or SETTINGS flood answered, a
                # server that doesn't read): read no more until it catches up.
                await self._drained()
                continue
            try:
                data = await receive(READ_SIZE)
            except anyio.EndOfStream:
                data = b""
            except IO_ERRORS as exc:
                self._broken = True
                alert = alert_error(exc, self.label, identity=self._owner.plan.identity)
                self._lost(str(alert) if alert else self._describe(exc), alert=alert)
                return
            if not data:
                self._broken = True
                self._lost("the server closed the connection")
                return
            if first:
                first = False
                if data.startswith(b"HTTP/"):
                    # h2 would wait for a "frame" megabytes long, then report a close.
                    self._broken = True
                    self._lost(
                        "the server chose HTTP/2 by ALPN but answered in HTTP/1.1", parsing=True
                    )
                    return
            if tls is not None and tls[1].pending:
                data = read_more(tls[0], conn, data)
            self._last_received = _monotonic()
            try:
                events = conn.receive_data(data)
            except h2.exceptions.ProtocolError as exc:
                # Malformed frames, a header block over our limit, a
                # CONTINUATION flood: h2 queued its GOAWAY; the peer is not
                # speaking HTTP/2, which is a ParsingError for every stream.
                self._kick()  # h2's GOAWAY is queued (goodbye sends it, if not the writer)
                self._lost(f"the server broke HTTP/2: {exc}", parsing=True)
                return
            for event in events:
                self._dispatch(event)
            self._kick_if_pending()

    def _dispatch(self, event: h2.events.Event) -> None:
        """Hand one h2 event to its stream, or act on it for the connection."""
        events = h2.events
        sid = getattr(event, "stream_id", None)
        if sid:
            stream = self._streams.get(sid)
            if isinstance(event, events.DataReceived):
                flow = event.flow_controlled_length or 0
                if stream is not None:
                    stream.on_data(event.data or b"", flow)
                elif flow:  # a stream we gave up: credit the connection
                    self._h2.acknowledge_received_data(flow, sid)
            elif stream is None:
                pass  # a stream we gave up
            elif isinstance(
                event, (events.ResponseReceived, events.InformationalResponseReceived)
            ):
                stream.on_head(list(event.headers or ()))
            elif isinstance(event, events.StreamEnded):
                stream.on_end()
            elif isinstance(event, events.TrailersReceived):
                stream.on_trailers(list(event.headers or ()))
            elif isinstance(event, events.StreamReset):
                if event.remote_reset:
                    stream.on_reset(int(event.error_code or 0))
            elif isinstance(event, events.WindowUpdated):
                stream.wake()
        elif isinstance(event, events.WindowUpdated):  # the connection's window
            self._wake_all()
        elif isinstance(event, events.RemoteSettingsChanged):
            changed = event.changed_settings
            if _Settings.MAX_CONCURRENT_STREAMS in changed:
                limit = changed[_Settings.MAX_CONCURRENT_STREAMS].new_value
                self._owner.set_max_streams(min(int(limit), MAX_STREAMS_CAP))
            if _Settings.INITIAL_WINDOW_SIZE in changed:
                self._wake_all()
        elif isinstance(event, events.ConnectionTerminated):
            self._on_goaway(int(event.last_stream_id or 0), int(event.error_code or 0))
        elif isinstance(event, events.PingAckReceived):
            self._ping_sent = math.inf

    def _on_goaway(self, last_stream_id: int, code: int) -> None:
        """The server sends no more streams than ``last_stream_id`` to the application."""
        if self.goaway is None or last_stream_id < self.goaway[0]:
            self.goaway = (last_stream_id, code)
        for sid, stream in list(self._streams.items()):
            if sid > last_stream_id:
                cause = f"the server went away before processing it (GOAWAY {error_name(code)})"
                stream.fail(stream.lost(cause, unprocessed=not stream.received_any))
        self._owner.drain()

    async def _write_loop(self) -> None:
        conn = self._h2
        owner = self._owner
        send = self._stream.send
        while True:
            data = conn.data_to_send()
            if not data:
                self._writing = False
                drained, self._drained_event = self._drained_event, None
                if drained is not None:
                    drained.set()
                kick = self._kick_event = anyio.Event()
                await kick.wait()
                continue
            self._writing = True
            if self.timeout:
                owner.io_deadline = _monotonic() + self.timeout
            try:
                await send(data)
            except IO_ERRORS as exc:
                self._broken = True
                self._lost(self._describe(exc))
                assert self._scope is not None
                self._scope.cancel()
                return
            finally:
                owner.io_deadline = math.inf

    async def _watch(self) -> None:
        """Fail streams whose wait stalled; PING a quiet idle connection."""
        while True:
            # Looked at each time: the session's timeout may change meanwhile.
            await anyio.sleep(min(max(self.timeout / 4, 0.02), 1.0) if self.timeout else 1.0)
            now = _monotonic()
            if self.timeout:
                for stream in list(self._streams.values()):
                    if stream.deadline <= now:
                        stream.fail(stream.stalled(self.timeout))
            if self._ping_sent < math.inf:
                limit = min(self.timeout, PING_TIMEOUT) if self.timeout else PING_TIMEOUT
                if now - self._ping_sent > limit:
                    self._lost(f"no answer to a keepalive PING for {limit:g} s")
                    assert self._scope is not None
                    self._scope.cancel()
                    return
            elif not self._streams and now - self._last_received >= KEEPALIVE_IDLE:
                self._h2.ping(_PING)
                self._ping_sent = now
                self._kick()

    # -- used by request tasks --------------------------------------------------

    def open_stream(self, block: list[tuple[bytes, bytes]], *, end_stream: bool) -> H2Stream:
        """Send a request's header block on a new stream (queued for the writer).

        Raises:
            StreamUnprocessed: The connection takes no new stream (GOAWAY,
                failed, out of stream IDs, or at the peer's limit): the
                request was not sent, and may go on another connection.
            ValueError: h2 refused the header block (a bad field from the caller).
        """
        if self.goaway is not None or self._failure is not None:
            raise StreamUnprocessed(
                f"writing request to {self.label}: the HTTP/2 connection takes no new stream "
                f"({self._failure or 'the server sent GOAWAY'})"
            )
        conn = self._h2
        try:
            sid = conn.get_next_available_stream_id()
        except h2.exceptions.NoAvailableStreamIDError:
            self._owner.drain()
            raise StreamUnprocessed(
                f"writing request to {self.label}: the HTTP/2 connection ran out of stream IDs"
            ) from None
        try:
            conn.send_headers(sid, block, end_stream=end_stream)
        except h2.exceptions.TooManyStreamsError:
            raise StreamUnprocessed(
                f"writing request to {self.label}: the server's stream limit is reached"
            ) from None
        except h2.exceptions.ProtocolError as exc:
            raise ValueError(f"request to {self.label}: {exc}") from None
        stream = self._streams[sid] = H2Stream(self, sid)
        self._kick()
        return stream

    async def send_body(self, stream: H2Stream, data: bytes | memoryview, *, end: bool) -> bool:
        """Send ``data`` on ``stream`` as its window allows; end the stream if ``end``.

        Returns False, having stopped, when the server answered with a
        final response or closed the stream first (an early answer).
        """
        view = memoryview(data)
        conn = self._h2
        sid = stream.id
        queued = 0
        stream.phase = "writing request body"
        while True:
            stream._check()  # the connection failed: h2 would refuse, in its own words
            if _answered(stream):
                return False
            if not view:
                break
            window = conn.local_flow_control_window(sid)
            if window <= 0:
                if queued:
                    self._kick()
                    queued = 0
                await stream.wait()
                continue
            size = min(window, conn.max_outbound_frame_size, len(view))
            conn.send_data(sid, view[:size])
            view = view[size:]
            queued += size
            if queued >= WRITE_SLICE:
                await self.flush(stream)
                queued = 0
        if end:
            stream._check()
            conn.end_stream(sid)
        await self.flush(stream)
        return True

    async def flush(self, stream: H2Stream) -> None:
        """Wait until what is queued was written (the upload's backpressure)."""
        await self._drained()
        if self._failure is not None:
            stream.fail(stream.lost(self._failure))
        stream._check()

    def consumed(self, stream_id: int, flow: int) -> None:
        """The application took ``flow`` bytes of a stream: credit them to the peer."""
        if flow and self._failure is None:
            self._h2.acknowledge_received_data(flow, stream_id)
            self._kick_if_pending()

    def close_stream(self, stream: H2Stream, unread_flow: int) -> None:
        """The request task is done with ``stream``: reset it unless it ended cleanly."""
        if self._streams.pop(stream.id, None) is None:
            return
        if self._failure is not None:
            return
        conn = self._h2
        state = conn.streams.get(stream.id)
        try:
            if state is not None and not state.closed:
                conn.reset_stream(stream.id, CANCEL)
            if unread_flow:
                conn.acknowledge_received_data(unread_flow, stream.id)
        except h2.exceptions.ProtocolError:
            pass  # closed meanwhile, or the connection is going away: nothing to undo
        self._kick_if_pending()

    @property
    def accepts_streams(self) -> bool:
        """Whether a new stream may be opened (no GOAWAY, no failure)."""
        return self.goaway is None and self._failure is None

    @property
    def open_streams(self) -> int:
        """Streams whose request task has not closed them yet."""
        return len(self._streams)

    # -- internals --------------------------------------------------------------

    async def goodbye(self) -> None:
        """Send GOAWAY before the socket closes, unless a write is under way or failed.

        Our GOAWAY (no error), or h2's own after a protocol error, with what
        else h2 still holds. Courtesy only: the caller bounds it in time.
        """
        if self._writing or self._broken:
            return
        self._broken = True  # nothing more after the GOAWAY
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self._h2.close_connection()  # (refused once h2 sent its own GOAWAY)
        data = self._h2.data_to_send()
        if data:
            with contextlib.suppress(*IO_ERRORS):
                await self._stream.send(data)

    async def _drained(self) -> None:
        """Wait until the writer has written what h2 holds (or the connection failed)."""
        while self._failure is None and (self._writing or self._outbound()):
            self._kick()
            event = self._drained_event
            if event is None:
                event = self._drained_event = anyio.Event()
            await event.wait()

    def _outbound(self) -> int:
        """How many bytes h2 holds for the writer (its buffer, looked at, not taken).

        1 where h2 keeps them elsewhere than 4.x does: assume some, so the
        writer is always kicked.
        """
        data = getattr(self._h2, "_data_to_send", None)
        return 1 if data is None else len(data)

    def _kick(self) -> None:
        kick = self._kick_event
        if kick is not None:
            self._kick_event = None
            kick.set()

    def _kick_if_pending(self) -> None:
        if self._outbound():
            self._kick()

    def _wake_all(self) -> None:
        for stream in self._streams.values():
            stream.wake()

    def _lost(self, cause: str, *, parsing: bool = False, alert: TlsError | None = None) -> None:
        """The connection can't go on: fail every open stream with ``cause``.

        The pool is told at once (it lends no more streams of it), before the
        connection's task has ended. A TLS alert (TLS 1.3: the server refused
        our client certificate after the handshake) reaches each stream as a
        :class:`TlsError`, so that the core may ask for a certificate.
        """
        if self._failure is not None:
            return
        self._failure = cause
        for stream in list(self._streams.values()):
            error: Error = stream.lost(cause)
            if parsing:
                error = ParsingError(str(error))
            elif alert is not None:
                tls = TlsError(str(error), errors=alert.errors)
                tls._wants_client_certificate = alert._wants_client_certificate
                error = tls
            stream.fail(error)
        drained, self._drained_event = self._drained_event, None
        if drained is not None:
            drained.set()
        self._owner.drain()

    def _closed(self) -> None:
        """The connection's task ends: streams still open learn why."""
        reason = self._owner.close_reason
        if reason is None:
            self._lost("the connection was closed")
            return
        for stream in list(self._streams.values()):
            error = closed_by_pool(reason, stream._where(stream.phase), self.timeout)
            stream.fail(error or NetworkError(f"{stream._where(stream.phase)}: {reason}"))
        self._lost(f"the connection was closed ({reason})")

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, anyio.EndOfStream):
            return "the server closed the connection"
        return describe_io_error(exc)

    def __repr__(self) -> str:
        return f"<HTTP2Connection {self.label} streams={len(self._streams)} goaway={self.goaway}>"


def _answered(stream: H2Stream) -> bool:
    """Whether the server gave a final answer or closed the stream (stop uploading)."""
    if stream.ended or stream.reset_code is not None:
        return True
    return any(status >= 200 for status, _fields in stream.heads)
