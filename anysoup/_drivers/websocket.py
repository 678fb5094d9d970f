"""The WebSocket driver: wsproto over a connection taken out of the pool.

Theory of operation
-------------------

``Session.websocket_connect`` sends the handshake through the session like
any message (redirects, authentication, cookies apply). When the 101 answer
is right, the connection is *detached* from the pool (it stops counting
against the limits) and its task, still in the session's task group, runs
the reader (``WebsocketReader._run``). So the WebSocket's background work
has the owner every connection has, and closing the session ends it.

The class is built in three layers, a module each: ``websocket_core``
(shared state, the write path, keepalive), ``websocket_reader`` (reading,
answering pings and closes, failing the connection, the order in which it
ends) and this one (the public API: properties, sending, ``receive()``,
closing). ``websocket_inbox`` holds the queue between the reader and
``receive()``.

``close()`` sends a close frame and waits, at most ``CLOSE_TIMEOUT`` (5 s), for
the peer's close frame and for the peer to end the TCP connection (RFC 6455
§7.1.1: the server closes first); then the socket is closed in any case.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import anyio
from wsproto.events import BytesMessage, CloseConnection, Event, Ping, TextMessage

from .._model.arguments import seconds as check_seconds
from .._model.enums import WebsocketCloseCode, WebsocketDataType, WebsocketState
from .._model.exceptions import WebsocketError
from .._model.public import public
from .._model.signals import SignalDescriptor
from . import websocket_core as core
from .websocket_core import GOODBYE_TIMEOUT
from .websocket_reader import WebsocketReader

if TYPE_CHECKING:
    from yarl import URL

    from .._model.websocket_extension import WebsocketExtension

__all__ = ["WebsocketConnection"]

#: Close codes after which iteration simply ends (a close frame without a
#: code, 1005, is a clean close too).
_NORMAL_CODES = frozenset({1000, 1001, 1005})
#: Codes a program may send (RFC 6455 §7.4.1 and §7.4.2).
_SENDABLE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011})
_OPEN = WebsocketState.OPEN
_CLOSING = WebsocketState.CLOSING
_CLOSED = WebsocketState.CLOSED


@public
class WebsocketConnection(WebsocketReader):
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

    # -- properties ------------------------------------------------------------------------

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

    # -- sending ---------------------------------------------------------------------------

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

    # -- receiving -------------------------------------------------------------------------

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

    # -- closing ---------------------------------------------------------------------------

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
            await self._wait_closed(core.CLOSE_TIMEOUT)
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
            with anyio.move_on_after(core.CLOSE_TIMEOUT):
                await self._done.wait()

    def __repr__(self) -> str:
        state = self._state.name.lower()
        code = f" {self._close_code}" if self._close_code else ""
        return f"<anysoup.WebsocketConnection {self._uri} {state}{code}>"


def _size(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name}: {value!r} is not an int")
    if value < 0:
        raise ValueError(f"{name}: {value} is negative")
    return value
