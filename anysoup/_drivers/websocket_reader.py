"""The WebSocket reader: the connection's task, and ``receive()`` reading for itself.

Theory of operation
-------------------

The reader alone reads the socket. It answers pings and close frames
whether or not the program is receiving, and puts each complete message in
a bounded queue; when the queue is full it stops reading, and TCP pushes back
on the peer (memory stays bounded). When a ``message`` signal handler is
connected, messages go to the handlers instead of the queue, as in libsoup.

"The reader" is a role: the connection's task plays it, except while the
program waits in ``receive()`` with nothing queued; then that call reads
for itself (no task switch per message) and the task stands by, taking
over again once nobody has received for :data:`STAND_BY` seconds, or at once
when the program closes.

Sizes are bounded after decompression: an incoming message larger than the
limit fails the connection with close code 1009; the deflate extension stops
inflating as soon as a message passes the limit (a deflate bomb costs at most
the limit in memory). Text that isn't UTF-8 closes with 1007, a protocol
error with 1002 (wsproto finds both).

What ends the connection (those failures, or the peer's close frame) keeps
its place in message order: when it comes behind messages the program has
not received yet, it waits there until the program's ``receive()`` reaches
it, at most ``ORDER_GRACE`` (1 s), and the program may answer those messages
meanwhile (``websocket_inbox`` tells how).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
from wsproto.connection import ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Event, Ping, Pong, TextMessage
from wsproto.utilities import LocalProtocolError

from .._model.enums import WebsocketCloseCode, WebsocketDataType, WebsocketState
from .._model.exceptions import WebsocketClosed, WebsocketError
from .._model.signals import active
from .._transport.io_errors import IO_ERRORS, describe_io_error
from . import websocket_core as core
from .websocket_core import (
    CALLER,
    GOODBYE_TIMEOUT,
    NOBODY,
    READ_SIZE,
    STAND_BY,
    TASK,
    WebsocketCore,
    code_text,
    truncate,
)
from .websocket_inbox import End, Failure, Protocol

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from anyio.abc import ByteStream

    from .owner import ConnectionOwner

__all__ = ["WebsocketReader"]

_OPEN = WebsocketState.OPEN
_CLOSING = WebsocketState.CLOSING
_CLOSED = WebsocketState.CLOSED


class WebsocketReader(WebsocketCore):
    """The reading side of :class:`~anysoup.WebsocketConnection` (see the module)."""

    # -- set-up (by the session) -----------------------------------------------------------

    def _attach(
        self, conn: ConnectionOwner, trailing: bytes
    ) -> tuple[Callable[[], Awaitable[None]], Callable[[], None]]:
        """Take over ``conn`` (detached from the pool).

        Returns the job its task runs (the reader) and what to call instead
        if the task ends before the job starts.
        """
        assert conn.stream is not None
        self._conn = conn
        self._stream = conn.stream
        self._proto = Protocol(ConnectionType.CLIENT, list(self._extensions), trailing)
        self._unparsed = bool(trailing)
        return self._run, self._abandon

    # -- receive(), reading for itself when nobody else does -------------------------------

    async def _next(self) -> str | bytes:
        """The next message: queued by whoever read it, or read now by this caller.

        When nobody is reading, the caller reads for itself (no task switch
        per message); a reader task in the middle of a read steps aside.
        """
        inbox = self._inbox
        inbox.answering = False  # done with the last message: an end behind it is due
        if inbox.items:
            await anyio.lowlevel.checkpoint_if_cancelled()
            return inbox.pop()
        while True:
            if inbox.items:
                return inbox.pop()
            if inbox.closed:
                raise anyio.EndOfStream
            self._activity += 1
            owner = self._owner
            if owner == NOBODY and self._ended is None and self._proto is not None:
                await self._read_for_caller()
            else:
                if owner == TASK and self._read_scope is not None:
                    self._read_scope.cancel()  # it steps aside; this caller reads next
                await inbox.wait()

    async def _read_for_caller(self) -> None:
        proto, stream = self._proto, self._stream
        assert proto is not None and stream is not None
        self._owner = CALLER
        try:
            pending = self._unparsed or self._inbox.end is not None
            ended = await self._handle_events(proto) if pending else None
            if ended is None and not self._inbox.items and self._inbox.end is None:
                data = await self._receive_some(stream)
                if data is None:
                    ended = False
                else:
                    proto.receive_data(data)
                    ended = await self._handle_events(proto)
        except Exception as exc:  # a failing handler (or a bug): fail the WebSocket
            self._lost(WebsocketError(f"the WebSocket to {self._label} failed: {exc!r}"))
            ended = False
        finally:
            self._owner = NOBODY
            self._inbox.notify()
        if ended is not None:
            self._ended = ended
            self._wake.set()

    # -- the reader (the connection's task) ------------------------------------------------

    async def _run(self) -> None:
        try:
            async with anyio.create_task_group() as task_group:
                self._task_group = task_group
                self._start_pinger()
                if await self._read():
                    await self._await_hang_up()
                task_group.cancel_scope.cancel()
        except Exception as exc:  # a bug: fail the WebSocket, never the session
            self._lost(WebsocketError(f"the WebSocket to {self._label} failed: {exc!r}"))
        finally:
            self._task_group = None
            if self._conn is not None and self._conn.close_reason == "session closed":
                await self._say_goodbye()
            await self._finish()

    def _abandon(self) -> None:
        """The connection closed before the reader ever ran (the session closed)."""
        self._lost(WebsocketError(f"the WebSocket to {self._label}: the session closed"))
        self._inbox.close()
        self._done.set()

    async def _read(self) -> bool:
        """Read until the connection ends; return whether the closing handshake completed.

        While ``receive()`` calls read for themselves, this task stands by,
        looking again every :data:`STAND_BY` seconds; it reads again once no
        call has received for that long (to answer pings and closes), or at
        once when the program closes.
        """
        proto = self._proto
        stream = self._stream
        inbox = self._inbox
        assert proto is not None and stream is not None
        while True:
            ended = self._ended
            if ended is not None:
                return ended
            if not self._take_over and (self._owner != NOBODY or self._activity != self._seen):
                self._seen = self._activity
                with anyio.move_on_after(STAND_BY):
                    await self._wake.wait()
                continue
            if self._owner != NOBODY:
                # Closing, but a receive() call is still reading: it reads the
                # peer's answer itself; look again when it lets go.
                await inbox.wait()
                continue
            if inbox.end is not None and not self._end_reached():
                # The end waits for the program to receive up to it: a receive()
                # call settles it, close() wakes this task, or the grace runs out.
                with anyio.move_on_after(inbox.deadline - anyio.current_time()):
                    await self._wake.wait()
                continue
            if inbox.full() and self._state is _OPEN and inbox.end is None:
                await inbox.wait()  # backpressure: no reading until the program takes some
                continue
            self._owner = TASK
            try:
                ended = await self._handle_events(proto)
                if (
                    ended is None
                    and inbox.end is None
                    and not (inbox.full() and self._state is _OPEN)
                ):
                    data: bytes | None = b""
                    with anyio.CancelScope() as scope:
                        self._read_scope = scope
                        data = await self._receive_some(stream)
                    self._read_scope = None
                    if data is None:
                        ended = False
                    elif data:
                        proto.receive_data(data)
                        # Parsed by whoever reads next: a receive() call that
                        # takes over must not go to the socket past them.
                        self._unparsed = True
            finally:
                self._owner = NOBODY
                inbox.notify()
            if ended is not None:
                self._ended = ended

    async def _receive_some(self, stream: ByteStream) -> bytes | None:
        """Bytes from the socket, or None when the connection ended (then noted)."""
        try:
            return await stream.receive(READ_SIZE)
        except anyio.EndOfStream:
            self._lost(None)
        except IO_ERRORS as exc:
            self._lost(WebsocketError(f"reading from {self._label}: {describe_io_error(exc)}"))
        return None

    # -- what was read ---------------------------------------------------------------------

    async def _handle_events(self, proto: Protocol) -> bool | None:
        """Act on the events of what was read; True/False when reading is over.

        Stops early, leaving the rest parsed later, when the inbox is full,
        and at what ends the connection while that waits its turn (then
        nothing past it is parsed; see ``websocket_inbox``).
        """
        inbox = self._inbox
        if inbox.end is not None:
            return await self._settle() if self._end_reached() else None
        # Until every event is handled (a cancelled handler or write leaves some).
        self._unparsed = True
        # The pongs owed for the pings of this read, written together (a ping
        # flood costs one write per read, not one per ping).
        pongs: list[Event] = []
        for event in proto.events():
            kind = type(event)
            if kind is Ping:
                if proto.state is ConnectionState.OPEN:
                    pongs.append(event.response())  # type: ignore[attr-defined]
                continue
            if pongs:
                await self._answer_pings(pongs)
                pongs = []
            if kind is TextMessage or kind is BytesMessage:
                failure = await self._on_data(event)  # type: ignore[arg-type]
                if failure is not None:
                    return await self._end_in_order(failure)
                if inbox.full() and self._state is _OPEN:
                    return None  # the rest waits in wsproto's buffer
            elif kind is CloseConnection:  # the peer's close, or a protocol error
                return await self._end_in_order(event)  # type: ignore[arg-type]
            elif kind is Pong:
                payload = bytes(event.payload)  # type: ignore[attr-defined]
                if payload == self._pong_wanted and self._pong_seen is not None:
                    self._pong_seen.set()
                await self._emit("pong", payload)
        if pongs:
            await self._answer_pings(pongs)
        self._unparsed = False
        return None

    async def _answer_pings(self, pongs: list[Event]) -> None:
        # Closing meanwhile (our close frame went out): no pong may follow it.
        with contextlib.suppress(WebsocketClosed):
            await self._write(pongs, "answering pings")

    _parts: list[Any] | None = None

    _size = 0

    async def _on_data(self, event: TextMessage | BytesMessage) -> Failure | None:
        """Take a piece of a message; return the failure it makes, if any."""
        data: Any = event.data
        limit = self._limit
        if limit:
            size = self._size + (
                len(data) if type(data) is not str or data.isascii() else len(data.encode())
            )
            if size > limit:
                self._size = 0
                self._parts = None
                reason = f"a message from {self._label} is larger than {limit} bytes"
                return WebsocketCloseCode.TOO_BIG, reason
            self._size = size
        if not event.message_finished:
            if self._parts is None:
                self._parts = []
            self._parts.append(data)
            return None
        if self._parts is not None:
            self._parts.append(data)
            parts, self._parts = self._parts, None
            data = "".join(parts) if type(data) is str else b"".join(parts)
        self._size = 0
        if type(data) is bytearray:
            data = bytes(data)
        if self._state is not _OPEN:
            return None  # closing: what arrives after our close frame is dropped
        signal = active(self, "message")
        if signal is None:
            self._inbox.put(data)  # there is room: readers stop when it is full
            return None
        kind = WebsocketDataType.TEXT if type(data) is str else WebsocketDataType.BINARY
        try:
            await signal.emit(kind, data)
        except Exception as exc:
            return WebsocketCloseCode.SERVER_ERROR, f"a message handler failed: {exc!r}"
        return None

    # -- the end, in message order ---------------------------------------------------------

    async def _end_in_order(self, end: End) -> bool | None:
        """The connection ends here: at once, or once the program has come this far.

        Returns as :meth:`_handle_events` (None while the end is held).
        """
        proto = self._proto
        assert proto is not None
        self._inbox.hold(end)
        if isinstance(end, CloseConnection) and proto.state is ConnectionState.REMOTE_CLOSING:
            proto.deferring = True  # the program may still send until it is settled
        return await self._settle() if self._end_reached() else None

    def _end_reached(self) -> bool:
        """Whether the held end is due (the program came to it, closes, or the grace is over)."""
        return self._take_over or self._state is not _OPEN or self._inbox.reached()

    async def _settle(self) -> bool:
        """Act on the held end: answer the peer's close, or fail the connection."""
        inbox, proto = self._inbox, self._proto
        assert inbox.end is not None and proto is not None
        end, inbox.end = inbox.end, None
        proto.deferring = False
        if isinstance(end, CloseConnection):
            return await self._on_close(end)
        await self._fail(*end)
        return False

    async def _fail(self, code: int, reason: str) -> None:
        """Fail the connection from the reader: a close frame with ``code``, then hang up."""
        if self._failure is None:
            self._failure = WebsocketError(f"{reason}; closing with {code_text(code)}")
        if self._state is not _CLOSED:
            self._close_code, self._close_data = code, reason
        self._state = _CLOSED
        proto = self._proto
        assert proto is not None
        if proto.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            with anyio.move_on_after(core.CLOSE_TIMEOUT):
                try:
                    frame = CloseConnection(code=code, reason=truncate(reason))
                    await self._write(frame, "closing")
                except WebsocketError:
                    pass

    async def _on_close(self, event: CloseConnection) -> bool:
        proto = self._proto
        assert proto is not None
        state = proto.state
        code, reason = event.code, event.reason or ""
        if state is ConnectionState.REMOTE_CLOSING:
            # The peer began the closing handshake: answer it.
            self._close_code, self._close_data = code, reason
            was_open = self._state is _OPEN
            self._state = _CLOSING
            if was_open:
                await self._emit("closing")
            try:
                # Shielded (briefly): a receive() cancelled just now must not
                # turn the peer's orderly close into a failed connection.
                with anyio.CancelScope(shield=True), anyio.move_on_after(GOODBYE_TIMEOUT):
                    await self._write(event.response(), "answering a close")
            except WebsocketError:
                return False
            self._state = _CLOSED  # the closing handshake is complete
            return True
        if state is ConnectionState.CLOSED:  # the peer answered our close frame
            self._close_code, self._close_data = code, reason
            self._state = _CLOSED
            return True
        # wsproto found a protocol error (its state didn't move): fail the connection.
        await self._fail(code, f"{reason} (from {self._label})")
        return False

    # -- after reading ---------------------------------------------------------------------

    async def _await_hang_up(self) -> None:
        """After the closing handshake: let the server close the TCP connection first."""
        stream = self._stream
        assert stream is not None
        with anyio.move_on_after(core.CLOSE_TIMEOUT):
            try:
                while await stream.receive(READ_SIZE):
                    pass
            except (anyio.EndOfStream, *IO_ERRORS):
                pass

    async def _say_goodbye(self) -> None:
        """The session closes: a best-effort 1001 before the socket goes."""
        if self._state is _CLOSED:
            return
        self._state = _CLOSED
        self._close_code = WebsocketCloseCode.GOING_AWAY
        self._close_data = "the session closed"
        with anyio.CancelScope(shield=True), anyio.move_on_after(GOODBYE_TIMEOUT):
            proto, stream = self._proto, self._stream
            if (
                proto is not None
                and stream is not None
                and (proto.state is ConnectionState.OPEN or proto.deferring)
            ):
                try:
                    await stream.send(proto.send(CloseConnection(code=1001)))
                except (*IO_ERRORS, LocalProtocolError):
                    pass

    async def _finish(self) -> None:
        """The reader ends: close the socket, end receive(), tell the handlers."""
        self._lost(None)
        self._inbox.close()
        with anyio.CancelScope(shield=True):
            if self._stream is not None:
                await anyio.aclose_forcefully(self._stream)
            self._done.set()
            with anyio.move_on_after(core.CLOSE_TIMEOUT):
                if self._failure is not None:
                    await self._emit("error", self._failure)
                await self._emit("closed")
