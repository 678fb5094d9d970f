"""The WebSocket driver: wsproto over a connection taken out of the pool.

Theory of operation
-------------------

``Session.websocket_connect`` sends the handshake through the session like
any message (redirects, authentication, cookies apply). When the 101 answer
is right, the connection is *detached* from the pool (it stops counting
against the limits) and its task, still in the session's task group, runs
:meth:`WebsocketConnection._run`: the reader. So the WebSocket's background
work has the owner every connection has, and closing the session ends it.

The reader alone reads the socket. It answers pings and close frames
whether or not the program is receiving, and puts each complete message in
a bounded queue; when the queue is full it stops reading, and TCP pushes back
on the peer (memory stays bounded). When a ``message`` signal handler is
connected, messages go to the handlers instead of the queue, as in libsoup.

Writes come from the program's tasks and from the reader (pongs, the close
reply); a lock keeps frames whole and in the order wsproto made them (the
order matters to permessage-deflate's shared window). A write cancelled
midway may have put part of a frame on the wire, so it closes the connection.

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

``close()`` sends a close frame and waits, at most ``CLOSE_TIMEOUT`` (5 s), for
the peer's close frame and for the peer to end the TCP connection (RFC 6455
§7.1.1: the server closes first); then the socket is closed in any case.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
from wsproto.connection import ConnectionState, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError

from .._model.arguments import seconds as check_seconds
from .._model.enums import WebsocketCloseCode, WebsocketDataType, WebsocketState
from .._model.exceptions import WebsocketClosed, WebsocketError
from .._model.signals import SignalDescriptor, active
from .._transport.io_errors import IO_ERRORS, describe_io_error
from .websocket_inbox import ORDER_GRACE, End, Failure, Inbox, Protocol

if TYPE_CHECKING:
    from anyio.abc import ByteStream, TaskGroup
    from yarl import URL

    from .._model.websocket_extension import WebsocketExtension
    from .owner import ConnectionOwner

__all__ = ["CLOSE_TIMEOUT", "ORDER_GRACE", "WebsocketConnection"]

#: Seconds ``close()`` waits for the closing handshake and the server's hang-up.
CLOSE_TIMEOUT = 5.0
#: Complete messages the reader holds for ``receive()`` before it stops reading.
QUEUE_SIZE = 16
#: libsoup's default limit on an incoming message (bytes after decompression).
DEFAULT_MAX_PAYLOAD = 128 * 1024
#: Bytes asked of the socket per read.
READ_SIZE = 65536
#: How long a close frame may take to go out when leaving without waiting for
#: the peer (an exception, a cancellation, the session closing).
GOODBYE_TIMEOUT = 1.0
#: How long the reader task stands by while ``receive()`` calls read for themselves.
STAND_BY = 0.1
#: Who reads the socket.
_NOBODY, _TASK, _CALLER = 0, 1, 2
#: Close codes after which iteration simply ends (a close frame without a
#: code, 1005, is a clean close too).
_NORMAL_CODES = frozenset({1000, 1001, 1005})
#: Codes a program may send (RFC 6455 §7.4.1 and §7.4.2).
_SENDABLE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011})
_OPEN = WebsocketState.OPEN
_CLOSING = WebsocketState.CLOSING
_CLOSED = WebsocketState.CLOSED


class WebsocketConnection:
    """A WebSocket client connection (libsoup's ``SoupWebsocketConnection``).

    Made by :meth:`anysoup.Session.websocket_connect`. Send with
    :meth:`send_text`, :meth:`send_binary` or :meth:`send_message`; receive
    with :meth:`receive` or ``async for message in ws`` (``str`` for text,
    ``bytes`` for binary), or connect a ``message`` handler. Pings are
    answered for you, also while the program is not receiving.

    Signals (handlers get the connection first): ``message(ws, type, data)``
    (a :class:`anysoup.WebsocketDataType` and ``str`` or ``bytes``; while a
    handler is connected, messages go to the handlers, not to
    :meth:`receive`), ``closing(ws)``, ``closed(ws)``, ``error(ws, error)``
    and ``pong(ws, data)``.
    """

    message: SignalDescriptor[WebsocketConnection] = SignalDescriptor(
        "``(ws, type, data)``: a message arrived (it goes to the handlers, not to receive())."
    )
    closing: SignalDescriptor[WebsocketConnection] = SignalDescriptor(
        "``(ws)``: the closing handshake began, from either side."
    )
    closed: SignalDescriptor[WebsocketConnection] = SignalDescriptor(
        "``(ws)``: the connection is closed."
    )
    error: SignalDescriptor[WebsocketConnection] = SignalDescriptor(
        "``(ws, error)``: the connection failed (a protocol error, a message too big, I/O)."
    )
    pong: SignalDescriptor[WebsocketConnection] = SignalDescriptor(
        "``(ws, data)``: a pong arrived."
    )

    def __init__(
        self,
        *,
        uri: URL,
        origin: str | None,
        protocol: str | None,
        extensions: list[WebsocketExtension],
        label: str,
    ) -> None:
        self._signals: dict[str, object] | None = None
        self._uri = uri
        self._origin = origin
        self._protocol = protocol
        self._extensions = extensions
        self._label = label
        self._state = _OPEN
        self._close_code = 0
        self._close_data = ""
        # Why the connection failed, when it did (for receive() and the error signal).
        self._failure: WebsocketError | None = None
        self._max_payload = DEFAULT_MAX_PAYLOAD
        self._max_total = 0
        self._limit = DEFAULT_MAX_PAYLOAD
        self._keepalive_interval = 0.0
        self._pong_timeout = 0.0
        self._conn: ConnectionOwner | None = None
        self._stream: ByteStream | None = None
        self._proto: Protocol | None = None
        # One write at a time; waiting writers wait for _write_done.
        self._writing = False
        self._write_done: anyio.Event | None = None
        self._inbox = Inbox(QUEUE_SIZE)
        # Who reads the socket now: the reader task, a receive() call, or nobody.
        self._owner = _NOBODY
        # receive() calls so far, and as the reader task last saw them.
        self._activity = 0
        self._seen = 0
        # The reader task's read, which a receive() call may cancel to read itself.
        self._read_scope: anyio.CancelScope | None = None
        # Reading is over: whether the closing handshake completed.
        self._ended: bool | None = None
        # Bytes wsproto holds that were not parsed into events yet.
        self._unparsed = False
        # The reader must read from now on (closing); set with _wake.
        self._take_over = False
        self._wake = anyio.Event()
        self._task_group: TaskGroup | None = None
        self._pinging = False
        self._pong_wanted: bytes | None = None
        self._pong_seen: anyio.Event | None = None
        self._done = anyio.Event()
        self._update_limit()

    # -- set-up (by the session) ------------------------------------------------

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

    # -- properties ---------------------------------------------------------------

    @property
    def state(self) -> WebsocketState:
        """OPEN, CLOSING or CLOSED."""
        return self._state

    @property
    def close_code(self) -> int:
        """The close code; 0 while open.

        The code of the peer's close frame, or the one sent when this side
        failed the connection or left ``async with`` by an exception (1001),
        or 1006 when it ended without a close frame.
        """
        return self._close_code

    @property
    def close_data(self) -> str:
        """The close reason that goes with :attr:`close_code` ("" while open)."""
        return self._close_data

    @property
    def protocol(self) -> str | None:
        """The subprotocol the server chose, or None."""
        return self._protocol

    @property
    def origin(self) -> str | None:
        """The Origin sent with the handshake, or None."""
        return self._origin

    @property
    def uri(self) -> URL:
        """The URI of the handshake (after redirects)."""
        return self._uri

    @property
    def extensions(self) -> list[WebsocketExtension]:
        """The extensions the server accepted, configured (e.g. permessage-deflate)."""
        return list(self._extensions)

    @property
    def keepalive_interval(self) -> float:
        """Seconds between keepalive pings; 0 (the default) sends none."""
        return self._keepalive_interval

    @keepalive_interval.setter
    def keepalive_interval(self, seconds: float) -> None:
        self._keepalive_interval = check_seconds("keepalive_interval", seconds)
        self._start_pinger()

    @property
    def keepalive_pong_timeout(self) -> float:
        """Seconds a keepalive ping may go unanswered before the connection fails.

        0 (the default) doesn't wait for pongs.
        """
        return self._pong_timeout

    @keepalive_pong_timeout.setter
    def keepalive_pong_timeout(self, seconds: float) -> None:
        self._pong_timeout = check_seconds("keepalive_pong_timeout", seconds)

    @property
    def max_incoming_payload_size(self) -> int:
        """The largest incoming message in bytes (128 KiB by default, 0 for no limit).

        Counted after decompression, all fragments together. A bigger
        message fails the connection with close code 1009.
        """
        return self._max_payload

    @max_incoming_payload_size.setter
    def max_incoming_payload_size(self, size: int) -> None:
        self._max_payload = _size("max_incoming_payload_size", size)
        self._update_limit()

    @property
    def max_total_message_size(self) -> int:
        """A second cap on a whole incoming message (libsoup has both limits).

        0, the default, leaves :attr:`max_incoming_payload_size` alone in
        charge; when both are set, the smaller applies.
        """
        return self._max_total

    @max_total_message_size.setter
    def max_total_message_size(self, size: int) -> None:
        self._max_total = _size("max_total_message_size", size)
        self._update_limit()

    def _update_limit(self) -> None:
        limits = [n for n in (self._max_payload, self._max_total) if n > 0]
        self._limit = min(limits) if limits else 0
        for extension in self._extensions:
            extension.max_message_size = self._limit

    # libsoup's accessor names.
    def get_state(self) -> WebsocketState:
        """Alias of :attr:`state`."""
        return self._state

    def get_close_code(self) -> int:
        """Alias of :attr:`close_code`."""
        return self._close_code

    def get_close_data(self) -> str:
        """Alias of :attr:`close_data`."""
        return self._close_data

    def get_protocol(self) -> str | None:
        """Alias of :attr:`protocol`."""
        return self._protocol

    def get_origin(self) -> str | None:
        """Alias of :attr:`origin`."""
        return self._origin

    def get_uri(self) -> URL:
        """Alias of :attr:`uri`."""
        return self._uri

    def get_extensions(self) -> list[WebsocketExtension]:
        """Alias of :attr:`extensions`."""
        return self.extensions

    # -- sending ------------------------------------------------------------------

    async def send_text(self, text: str) -> None:
        """Send a text message.

        Raises:
            WebsocketClosed: The connection is closing or closed.
            WebsocketError: The connection failed while sending.
        """
        if type(text) is not str and not isinstance(text, str):
            raise TypeError(f"send_text: {type(text).__name__} is not str")
        await self._send(TextMessage(data=text))

    async def send_binary(self, data: bytes | bytearray | memoryview) -> None:
        """Send a binary message (raises as :meth:`send_text`)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"send_binary: {type(data).__name__} is not bytes")
        await self._send(BytesMessage(data=bytes(data)))

    async def send_message(
        self, type: WebsocketDataType, data: str | bytes | bytearray | memoryview
    ) -> None:
        """Send ``data`` as a text or a binary message (raises as :meth:`send_text`).

        For TEXT, bytes are decoded as UTF-8 (``UnicodeDecodeError`` if they aren't).
        """
        if type is WebsocketDataType.TEXT:
            if not isinstance(data, str):
                data = bytes(data).decode("utf-8")
            await self.send_text(data)
        elif type is WebsocketDataType.BINARY:
            if isinstance(data, str):
                data = data.encode("utf-8")
            await self.send_binary(data)
        else:
            raise ValueError(f"send_message: {type!r} is not a WebsocketDataType")

    async def ping(self, data: bytes = b"") -> None:
        """Send a ping (at most 125 bytes); the ``pong`` signal tells when it is answered."""
        if len(data) > 125:
            raise ValueError("ping: the payload is longer than 125 bytes")
        await self._send(Ping(payload=bytes(data)))

    async def _send(self, event: Event) -> None:
        if self._state is not _OPEN:
            raise self._closed_error("sending")
        await self._write(event, "sending")

    async def _write(self, event: Event | list[Event], phase: str) -> None:
        """Frame ``event`` (or several, in one write) and write it; on failure close."""
        proto = self._proto
        stream = self._stream
        assert proto is not None and stream is not None
        while self._writing:  # another task is writing: frames must not interleave
            if self._write_done is None:
                self._write_done = anyio.Event()
            await self._write_done.wait()
        if proto.state is ConnectionState.CLOSED:
            raise self._closed_error(phase)
        try:
            if isinstance(event, list):
                data = b"".join([proto.send(one) for one in event])
            else:
                data = proto.send(event)
        except LocalProtocolError:  # closing meanwhile: no data frame may follow
            raise self._closed_error(phase) from None
        self._writing = True
        try:
            await stream.send(data)
        except IO_ERRORS as exc:
            error = WebsocketError(f"{phase} to {self._label}: {describe_io_error(exc)}")
            self._fail_now(error)
            raise error from exc
        except BaseException:
            # Cancelled midway: part of a frame may be on the wire.
            self._fail_now(WebsocketError(f"{phase} to {self._label}: a write was interrupted"))
            raise
        finally:
            self._writing = False
            done = self._write_done
            if done is not None:
                self._write_done = None
                done.set()

    def _fail_now(self, error: WebsocketError) -> None:
        """Fail the connection from any task, without awaiting: the reader cleans up."""
        if self._failure is None and self._state is not _CLOSED:
            self._failure = error
        self._state = _CLOSED
        if not self._close_code:
            self._close_code = WebsocketCloseCode.ABNORMAL
            self._close_data = str(error)
        if self._conn is not None:
            self._conn.close()

    # -- receiving ------------------------------------------------------------------

    async def receive(self) -> str | bytes:
        """The next message: ``str`` for text, ``bytes`` for binary.

        Messages that arrived before the close are still given. A failure
        (a protocol error, a message too big) or the peer's close that comes
        behind messages not received yet takes effect when this call reaches
        it (or after a grace of 1 s if the program doesn't read): until then
        the connection stays open and the program can answer them.

        Raises:
            WebsocketClosed: The connection is closed (``code`` and ``reason``
                tell how).
        """
        try:
            return await self._next()
        except anyio.EndOfStream:
            # The failure, if any, is the cause ("from None" would drop it).
            raise self._closed_error("receiving") from self._failure

    def __aiter__(self) -> WebsocketConnection:
        return self

    async def __anext__(self) -> str | bytes:
        """The next message; iteration ends on a normal close (1000, 1001, or no code)."""
        try:
            return await self._next()
        except anyio.EndOfStream:
            if self._failure is None and self._close_code in _NORMAL_CODES:
                raise StopAsyncIteration from None
            raise self._closed_error("receiving") from self._failure

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
            if owner == _NOBODY and self._ended is None and self._proto is not None:
                await self._read_for_caller()
            else:
                if owner == _TASK and self._read_scope is not None:
                    self._read_scope.cancel()  # it steps aside; this caller reads next
                await inbox.wait()

    async def _read_for_caller(self) -> None:
        proto, stream = self._proto, self._stream
        assert proto is not None and stream is not None
        self._owner = _CALLER
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
            self._owner = _NOBODY
            self._inbox.notify()
        if ended is not None:
            self._ended = ended
            self._wake.set()

    def _closed_error(self, phase: str) -> WebsocketClosed:
        code = self._close_code or WebsocketCloseCode.ABNORMAL
        reason = self._close_data
        if self._failure is not None:
            text = str(self._failure)
        elif self._state is _CLOSED:
            text = f"{phase}: the WebSocket to {self._label} is closed ({_code_text(code)})"
        else:
            text = f"{phase}: the WebSocket to {self._label} is closing"
        error = WebsocketClosed(text, code=_code(code), reason=reason)
        error.__cause__ = self._failure
        return error

    # -- closing --------------------------------------------------------------------

    async def close(self, code: int = WebsocketCloseCode.NORMAL, data: str = "") -> None:
        """Close with the closing handshake; returns once the connection is closed.

        Waits at most ``CLOSE_TIMEOUT`` (5) seconds for the peer's answer,
        then closes the socket regardless. Closing a closed connection does
        nothing. If the peer's close frame or a failure has already arrived
        behind messages not received yet, closing acts on that instead (the
        peer's close is answered; a failure sends its own close code).

        Args:
            code: 1000 (normal), another code of RFC 6455 §7.4.1 that may be
                sent, or an application code from 3000 to 4999.
            data: The reason, at most 123 bytes of UTF-8.

        Raises:
            ValueError: A code that may not be sent, or a reason too long.
        """
        if not (code in _SENDABLE_CODES or 3000 <= code <= 4999):
            raise ValueError(f"close: {code} is not a close code that may be sent")
        if len(data.encode("utf-8")) > 123:
            raise ValueError("close: the reason is longer than 123 bytes")
        try:
            if self._state is _OPEN and self._inbox.end is not None:
                # The peer's close or a failure is already read, behind messages
                # not received: it is settled now, in place of a close of ours
                # (after a bad frame no answer from the peer could be read).
                self._take_over = True
                self._wake.set()
            elif self._state is _OPEN:
                self._state = _CLOSING
                self._close_code, self._close_data = code, data  # until the peer's answer
                self._take_over = True  # the reader task reads the answer, promptly
                self._wake.set()
                with contextlib.suppress(WebsocketError):  # failed: it is closing anyway
                    await self._write(CloseConnection(code=code, reason=data), "closing")
                await self._emit("closing")
            await self._wait_closed(CLOSE_TIMEOUT)
        except BaseException:
            # Cancelled (or a closing handler failed): closed all the same, at
            # once (trio's rule for aclose), else it would stay CLOSING, its
            # socket open, until the session ends. The reader cleans up.
            if self._conn is not None and not self._done.is_set():
                self._conn.close()
            raise

    async def _wait_closed(self, seconds: float) -> None:
        with anyio.move_on_after(seconds):
            await self._done.wait()
        if not self._done.is_set():
            if self._conn is not None:
                self._conn.close()
            await self._done.wait()

    async def _close_soon(self, code: int) -> None:
        """Leave after an exception or a cancellation, without waiting for the peer.

        Sends a close frame (bounded, shielded), then closes the socket.
        """
        with anyio.CancelScope(shield=True):
            if self._state is _OPEN:
                self._state = _CLOSING
                with anyio.move_on_after(GOODBYE_TIMEOUT), contextlib.suppress(WebsocketError):
                    await self._write(CloseConnection(code=code), "closing")
                if self._state is not _CLOSED:
                    # Closed by this side, with this code, whether or not the
                    # peer's answer happened to be read before the socket went.
                    self._state = _CLOSED
                    self._close_code, self._close_data = code, ""
            if self._conn is not None:
                self._conn.close()
            with anyio.move_on_after(CLOSE_TIMEOUT):
                await self._done.wait()

    # -- the reader (the connection's task) ---------------------------------------------

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
            if not self._take_over and (self._owner != _NOBODY or self._activity != self._seen):
                self._seen = self._activity
                with anyio.move_on_after(STAND_BY):
                    await self._wake.wait()
                continue
            if self._owner != _NOBODY:
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
            self._owner = _TASK
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
                self._owner = _NOBODY
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
            self._failure = WebsocketError(f"{reason}; closing with {_code_text(code)}")
        if self._state is not _CLOSED:
            self._close_code, self._close_data = code, reason
        self._state = _CLOSED
        proto = self._proto
        assert proto is not None
        if proto.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            with anyio.move_on_after(CLOSE_TIMEOUT):
                try:
                    frame = CloseConnection(code=code, reason=_truncate(reason))
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

    async def _await_hang_up(self) -> None:
        """After the closing handshake: let the server close the TCP connection first."""
        stream = self._stream
        assert stream is not None
        with anyio.move_on_after(CLOSE_TIMEOUT):
            try:
                while await stream.receive(READ_SIZE):
                    pass
            except (anyio.EndOfStream, *IO_ERRORS):
                pass

    def _lost(self, error: WebsocketError | None) -> None:
        """The connection ended before the closing handshake completed (code 1006).

        A failure is recorded when it was open (or ``error`` tells one); after
        this side sent its close frame, a silent hang-up is no failure.
        """
        if self._state is _CLOSED:
            return
        if self._failure is None and (error is not None or self._state is _OPEN):
            self._failure = error or WebsocketError(
                f"reading from {self._label}: the server closed the connection "
                "without a close frame"
            )
        self._state = _CLOSED
        self._close_code = WebsocketCloseCode.ABNORMAL
        self._close_data = ""

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
            with anyio.move_on_after(CLOSE_TIMEOUT):
                if self._failure is not None:
                    await self._emit("error", self._failure)
                await self._emit("closed")

    # -- keepalive ------------------------------------------------------------------

    def _start_pinger(self) -> None:
        if self._keepalive_interval > 0 and not self._pinging and self._task_group is not None:
            self._pinging = True
            self._task_group.start_soon(
                self._keepalive, name=f"anysoup ws keepalive {self._label}"
            )

    async def _keepalive(self) -> None:
        sent = 0
        try:
            while self._keepalive_interval > 0 and self._state is _OPEN:
                await anyio.sleep(self._keepalive_interval)
                if self._keepalive_interval <= 0 or self._state is not _OPEN:
                    return
                sent += 1
                payload = b"anysoup-%d" % sent
                self._pong_wanted = payload
                seen = self._pong_seen = anyio.Event()
                await self._write(Ping(payload=payload), "sending a keepalive ping")
                timeout = self._pong_timeout
                if timeout > 0:
                    with anyio.move_on_after(timeout):
                        await seen.wait()
                    if not seen.is_set() and self._state is _OPEN:
                        error = WebsocketError(
                            f"keepalive: no pong from {self._label} within {timeout:g} s"
                        )
                        self._fail_now(error)
                        return
        except WebsocketError:
            return
        finally:
            self._pinging = False

    # -- signals ----------------------------------------------------------------------

    async def _emit(self, name: str, *args: object) -> None:
        signal = active(self, name)
        if signal is not None:
            await signal.emit(*args)

    def __repr__(self) -> str:
        state = self._state.name.lower()
        code = f" {self._close_code}" if self._close_code else ""
        return f"<anysoup.WebsocketConnection {self._uri} {state}{code}>"


def _code(code: int) -> int:
    try:
        return WebsocketCloseCode(code)
    except ValueError:
        return code


def _code_text(code: int) -> str:
    named = _code(code)
    return f"{code} {named.name}" if isinstance(named, WebsocketCloseCode) else str(code)


def _truncate(reason: str) -> str:
    """A close reason that fits a control frame (123 bytes of UTF-8)."""
    data = reason.encode("utf-8")[:123]
    return data.decode("utf-8", "ignore")


def _size(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name}: {value!r} is not an int")
    if value < 0:
        raise ValueError(f"{name}: {value} is negative")
    return value


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
