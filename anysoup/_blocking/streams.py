"""The blocking objects a blocking session hands out: a response body and a WebSocket.

Each wraps its async counterpart, which lives on the session's loop thread,
and reaches it through the :class:`LoopThread`: one hop per call.
:class:`ResponseBody` keeps what a hop brought beyond the bytes asked for,
so reading in small or odd sizes, or line by line, costs a hop per 64 KiB,
not per call. Neither object may be used by two threads at once (as a
file object).

A body dropped unclosed is closed on the loop thread (never by blocking the
thread that happens to collect it) with a :class:`ResourceWarning`.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._model.enums import WebsocketCloseCode, WebsocketDataType

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from .._drivers.websocket import WebsocketConnection as AsyncWebsocketConnection
    from .._model.body import InputStream
    from .._model.cancellable import Cancellable
    from .loop import LoopThread

__all__ = ["ResponseBody", "WebsocketConnection"]

#: The most bytes one hop asks the async stream for.
CHUNK = 65536


class ResponseBody(io.BufferedIOBase):
    """A response body as a readable binary file (what :meth:`Session.send` returns).

    ``read``, ``read1``, ``readinto``, ``readline``, iteration by lines and
    ``with``. Reading to the end gives the connection back to the pool;
    closing early drains a small rest or closes the connection, as the
    async :class:`anysoup.InputStream`. The ``cancellable`` given to
    ``send`` also covers the reads.
    """

    def __init__(
        self, loop: LoopThread, stream: InputStream, cancellable: Cancellable | None
    ) -> None:
        super().__init__()
        self._loop = loop
        self._stream: InputStream | None = stream
        self._cancellable = cancellable
        self._buffer = b""
        self._eof = False

    # -- reading -----------------------------------------------------------------------

    def readable(self) -> bool:
        """True: a body is read."""
        return True

    def _fetch(self, size: int) -> bytes:
        """One hop: the next piece of at most ``size`` bytes (``b""`` at the end)."""
        stream = self._stream
        if stream is None:
            raise ValueError("I/O operation on a closed response body")
        if self._eof:
            return b""
        chunk = self._loop.call(_receive, stream, size, self._cancellable)
        if not chunk:
            self._eof = True
        return chunk

    def read(self, size: int | None = -1) -> bytes:
        """Read at most ``size`` bytes (all the rest with -1 or None); ``b""`` at the end."""
        if size is None or size < 0:
            body, self._buffer = self._buffer, b""
            if self._stream is None:
                raise ValueError("I/O operation on a closed response body")
            if not self._eof:
                body += self._loop.call(_read_all, self._stream, self._cancellable)
                self._eof = True
            return body
        buffer = self._buffer
        if not buffer:
            if size == 0:
                return b""
            buffer = self._fetch(max(size, CHUNK))
        self._buffer = buffer[size:]
        return buffer[:size]

    def read1(self, size: int = -1) -> bytes:
        """Read at most ``size`` bytes with at most one hop (-1: a piece of any size)."""
        buffer = self._buffer or self._fetch(CHUNK if size < 0 else max(size, CHUNK))
        if size < 0:
            self._buffer = b""
            return buffer
        self._buffer = buffer[size:]
        return buffer[:size]

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Read into a writable buffer; return the bytes read (0 at the end)."""
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def readinto1(self, buffer: WriteableBuffer) -> int:
        """As :meth:`readinto`, with at most one hop."""
        view = memoryview(buffer).cast("B")
        data = self.read1(len(view))
        view[: len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        """Read up to and including the next newline (at most ``size`` bytes)."""
        limit = -1 if size is None else size
        start = 0
        while True:
            end = self._buffer.find(b"\n", start)
            if end >= 0:
                end += 1
                break
            if 0 <= limit <= len(self._buffer) or self._eof:
                end = len(self._buffer)
                break
            start = len(self._buffer)
            self._buffer += self._fetch(CHUNK)
        if 0 <= limit < end:
            end = limit
        line, self._buffer = self._buffer[:end], self._buffer[end:]
        return line

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    # -- closing -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the body; the connection is drained (a small rest) or closed."""
        stream, self._stream = self._stream, None
        self._buffer = b""
        if stream is not None and not self._loop.running:
            stream._discard()  # the loop is gone: nothing to give back
        elif stream is not None:
            self._loop.call(stream.aclose)
        super().close()

    # io.IOBase's __enter__ and __exit__ (close()) serve as they are.

    def __del__(self) -> None:
        stream = getattr(self, "_stream", None)
        if stream is not None:
            self._stream = None
            # Whatever thread collects this, the stream is closed on its loop.
            self._loop.spawn(stream.aclose)
            warnings.warn(
                f"{self!r} was never closed; close response bodies or use 'with'",
                ResourceWarning,
                stacklevel=1,
                source=self,
            )
        io.BufferedIOBase.close(self)

    def __repr__(self) -> str:
        state = "closed" if self._stream is None else "at end" if self._eof else "open"
        return f"<anysoup.blocking.ResponseBody {state}>"


async def _receive(stream: InputStream, size: int, cancellable: Cancellable | None) -> bytes:
    if cancellable is None:
        return await stream.read(size)
    with cancellable._scope("reading the response body"):
        return await stream.read(size)


async def _read_all(stream: InputStream, cancellable: Cancellable | None) -> bytes:
    if cancellable is None:
        return await stream.read()
    with cancellable._scope("reading the response body"):
        return await stream.read()


class WebsocketConnection:
    """A blocking WebSocket (what :meth:`Session.websocket_connect` returns).

    The calls of :class:`anysoup.WebsocketConnection`, blocking: ``send_text``,
    ``send_binary``, ``send_message``, ``ping``, ``receive``, iteration and
    ``close``; a ``with`` block closes it (normally, or after an exception
    without waiting for the peer). Properties, their ``get_`` aliases and
    the signals are the async connection's (:attr:`async_connection`);
    signal handlers run on the session's loop thread.
    """

    def __init__(self, loop: LoopThread, ws: AsyncWebsocketConnection) -> None:
        self._loop = loop
        self._ws = ws

    @property
    def async_connection(self) -> AsyncWebsocketConnection:
        """The :class:`anysoup.WebsocketConnection` on the session's loop."""
        return self._ws

    def __getattr__(self, name: str) -> Any:
        # Properties, get_ aliases and signals: read from any thread.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._ws, name)

    def send_text(self, text: str) -> None:
        """Send a text message (raises as :meth:`anysoup.WebsocketConnection.send_text`)."""
        self._loop.call(self._ws.send_text, text)

    def send_binary(self, data: bytes | bytearray | memoryview) -> None:
        """Send a binary message."""
        self._loop.call(self._ws.send_binary, data)

    def send_message(
        self, type: WebsocketDataType, data: str | bytes | bytearray | memoryview
    ) -> None:
        """Send ``data`` as a text or a binary message."""
        self._loop.call(self._ws.send_message, type, data)

    def ping(self, data: bytes = b"") -> None:
        """Send a ping (the ``pong`` signal tells when it is answered)."""
        self._loop.call(self._ws.ping, data)

    def receive(self) -> str | bytes:
        """The next message: ``str`` for text, ``bytes`` for binary.

        Raises:
            WebsocketClosed: The connection is closed.
        """
        return self._loop.call(self._ws.receive)

    def __iter__(self) -> Iterator[str | bytes]:
        return self

    def __next__(self) -> str | bytes:
        try:
            return self._loop.call(self._ws.__anext__)
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self, code: int = WebsocketCloseCode.NORMAL, data: str = "") -> None:
        """Close with the closing handshake (at most 5 s waiting for the peer)."""
        self._loop.call(self._ws.close, code, data)

    def __enter__(self) -> WebsocketConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        elif self._loop.running:
            self._loop.call(self._ws._close_soon, WebsocketCloseCode.GOING_AWAY)

    def __repr__(self) -> str:
        return repr(self._ws).replace("anysoup.", "anysoup.blocking.", 1)
