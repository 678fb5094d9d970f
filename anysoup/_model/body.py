"""Request bodies and :class:`InputStream`, the response body stream."""

from __future__ import annotations

import io
import warnings
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any, Protocol

import anyio
from anyio.abc import ByteReceiveStream

from .exceptions import BodyTooLarge
from .uri import authority_form

__all__ = ["BodySource", "InputStream", "RequestBody", "RequestBodySource"]

#: What a request body may be given as.
RequestBodySource = (
    bytes | bytearray | memoryview | ByteReceiveStream | AsyncIterable[bytes] | Iterable[bytes]
)

#: How much of an unread body ``aclose`` reads to keep the connection (libsoup drains too).
DRAIN_LIMIT = 65536


class RequestBody:
    """A request body: bytes (replayable, sent with Content-Length) or a stream.

    A stream body is read once; a message with one can't be re-sent (no
    redirect replay, no stale-connection retry).
    """

    __slots__ = ("_consumed", "_source", "data", "length")

    def __init__(self, data: bytes | None, source: object, length: int | None) -> None:
        #: The body when it is bytes, else None.
        self.data = data
        #: The length when known (sent as Content-Length), else None (chunked).
        self.length = length
        self._source = source
        self._consumed = False

    @classmethod
    def make(cls, source: RequestBodySource, length: int | None = None) -> RequestBody:
        """Wrap any accepted body source.

        Raises:
            TypeError: ``source`` is not bytes, an (async) iterable of bytes or
                a byte stream.
            ValueError: ``length`` is negative, or differs from the length of bytes.
        """
        if length is not None and length < 0:
            raise ValueError(f"length: {length} is negative")
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            if length is not None and length != len(data):
                raise ValueError(f"length: {length} differs from the body's {len(data)} bytes")
            return cls(data, None, len(data))
        if isinstance(source, str):
            raise TypeError("body: str is not bytes; encode it first")
        if isinstance(source, Mapping):
            # Iterable, but of keys: a dict meant as a form or as JSON.
            raise TypeError(
                f"body: {type(source).__name__} is not {_ACCEPTED}; for a form use "
                "Message.new_from_encoded_form, for JSON encode it first"
            )
        if isinstance(source, AbstractSet):
            raise TypeError(f"body: {type(source).__name__} is not {_ACCEPTED} (it has no order)")
        if not isinstance(source, (ByteReceiveStream, AsyncIterable, Iterable)):
            raise TypeError(f"body: {type(source).__name__} is not {_ACCEPTED}")
        return cls(None, source, length)

    @property
    def replayable(self) -> bool:
        """Whether the body can be sent again (it is bytes)."""
        return self.data is not None

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """Yield the body's pieces; a stream body can be iterated only once."""
        if self.data is not None:
            if self.data:
                yield self.data
            return
        if self._consumed:
            raise RuntimeError("the request body stream was already sent once")
        self._consumed = True
        source = self._source
        if isinstance(source, ByteReceiveStream):
            while True:
                try:
                    chunk = await source.receive()
                except anyio.EndOfStream:
                    return
                yield chunk
        elif isinstance(source, AsyncIterable):
            iterator = aiter(source)
            try:
                async for chunk in iterator:
                    yield _piece(chunk)
            finally:
                # A body cut short (a failed write, an early answer, a
                # cancellation) closes the program's generator now, as its
                # own loop would have, not at garbage collection.
                aclose = getattr(iterator, "aclose", None)
                if aclose is not None:
                    await aclose()
        else:
            assert isinstance(source, Iterable)
            for chunk in source:
                yield _piece(chunk)

    def __repr__(self) -> str:
        size = f"{self.length} bytes" if self.length is not None else "streamed"
        return f"<RequestBody {size}>"


_ACCEPTED = "bytes, an (async) iterable of bytes or an anyio byte stream"


def _piece(chunk: object) -> bytes:
    """A piece of an iterable body, checked: ``bytes(5)`` would send five NULs."""
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, (bytearray, memoryview)):
        return bytes(chunk)
    raise TypeError(f"body: the iterable gave a {type(chunk).__name__}, not bytes")


class BodySource(Protocol):
    """What an :class:`InputStream` reads from: one exchange on a connection.

    Features may stack filters on it (:meth:`InputStream._filter`): a filter
    is a BodySource holding the one below, transforming ``receive_chunk`` and
    passing ``close`` and ``discard`` down. Closing never goes through a
    filter's transformation: draining reads the raw rest. Each piece is
    bounded (a network read, or a decoder's step): ``read()`` and a size
    limit rely on it.
    """

    async def receive_chunk(self) -> bytes | None:
        """The next piece of the body (never empty), or None at its end (then it is done)."""

    async def close(self, *, drain: bool) -> None:
        """Give the connection back: drain a bounded rest first if ``drain``."""

    def discard(self) -> None:
        """Drop the connection without awaiting (garbage collection)."""


class StreamOwner(Protocol):
    """Who hears when a body stream is done: the session, to unqueue the message."""

    async def _stream_done(self, msg: Any) -> None:
        """The body was read to the end, closed, or failed."""

    def _stream_discarded(self, msg: Any) -> None:
        """The stream was garbage-collected unclosed (nothing may be awaited)."""


class InputStream(ByteReceiveStream):
    """The body of a response: an anyio byte stream with ``read()``.

    Reading it to the end gives its connection back to the pool; closing it
    early drains a small rest (so the connection can be reused) or closes the
    connection. Use it as an async context manager or close it; a stream left
    open and garbage-collected gives a :class:`ResourceWarning`.
    """

    __slots__ = (
        "_buffer",
        "_closed",
        "_eof",
        "_limit",
        "_msg",
        "_owner",
        "_pulled",
        "_source",
        "_source_ended",
    )

    def __init__(self, source: BodySource) -> None:
        self._source: BodySource | None = source
        self._buffer = b""
        self._eof = False
        self._closed = False
        # The source returned its end while peeking: report it once the buffer is read.
        self._source_ended = False
        self._owner: StreamOwner | None = None
        self._msg: Any = None
        # Bytes taken from the source so far, and the most allowed (_limit_size).
        self._pulled = 0
        self._limit: tuple[int, str] | None = None

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Return the next piece of the body, at most ``max_bytes`` long.

        Raises:
            anyio.EndOfStream: The whole body was read.
            anyio.ClosedResourceError: The stream was closed.
            anysoup.Error: The connection failed (``NetworkError``,
                ``IncompleteBody``, ``TimeoutError``, …).
        """
        buffer = self._buffer
        if buffer:
            if len(buffer) <= max_bytes:
                self._buffer = b""
                return buffer
            self._buffer = buffer[max_bytes:]
            return buffer[:max_bytes]
        if self._closed:
            raise anyio.ClosedResourceError
        if self._eof:
            raise anyio.EndOfStream
        chunk = await self._pull()
        if chunk is None:
            self._eof = True
            await self._done(drain=False)
            raise anyio.EndOfStream
        if len(chunk) > max_bytes:
            self._buffer = chunk[max_bytes:]
            return chunk[:max_bytes]
        return chunk

    async def read(self, n: int = -1) -> bytes:
        """Read at most ``n`` bytes (everything with ``n < 0``); ``b""`` at the end."""
        if n == 0:
            return b""
        if n > 0:
            try:
                return await self.receive(n)
            except anyio.EndOfStream:
                return b""
        if self._closed:
            raise anyio.ClosedResourceError
        body, self._buffer = self._buffer, b""
        if self._source is None or self._eof:
            return body
        # The pieces go into one buffer grown in place, whose bytes getvalue()
        # hands over without a copy: the peak is the body plus a piece, where
        # a list joined at the end held it twice. A body that comes in one
        # piece is returned as it is.
        sink: io.BytesIO | None = None
        while (chunk := await self._pull()) is not None:
            if not body:
                body = chunk
            elif sink is None:
                sink = io.BytesIO()
                sink.write(body)
                sink.write(chunk)
            else:
                sink.write(chunk)
        self._eof = True
        await self._done(drain=False)
        return body if sink is None else sink.getvalue()

    async def _pull(self) -> bytes | None:
        """The source's next piece (None at its end), counted against the size limit.

        If it fails, the stream is done (its connection closed, not drained)
        before the error goes on.
        """
        if self._source_ended:
            return None
        assert self._source is not None
        try:
            chunk = await self._source.receive_chunk()
        except BaseException:
            await self._fail()
            raise
        if chunk is not None:
            self._pulled += len(chunk)
            if self._limit is not None and self._pulled > self._limit[0]:
                error = self._too_large(None)
                await self._fail()
                raise error
        return chunk

    async def _fail(self) -> None:
        """Reading failed: the stream is closed, its connection too (never drained)."""
        self._closed = True
        self._buffer = b""
        await self._done(drain=False)

    async def _limit_size(self, max_size: int, name: str = "max_size") -> None:
        """Refuse a body longer than ``max_size`` bytes with :class:`BodyTooLarge`.

        At once when its declared length or what was already read says so;
        else the read that passes the limit raises, having taken at most one
        piece past it. ``name`` is the limit's name in the error's text.
        """
        self._limit = (max_size, name)
        declared = _declared_length(self._msg)
        if self._pulled > max_size or (declared is not None and declared > max_size):
            error = self._too_large(declared)
            await self._fail()
            raise error

    def _too_large(self, declared: int | None) -> BodyTooLarge:
        assert self._limit is not None
        max_size, name = self._limit
        msg = self._msg
        where = "" if msg is None else f" from {authority_form(msg.uri)}"
        size = f"its Content-Length, {declared} bytes," if declared is not None else "it"
        text = f"reading the response body{where}: {size} is over {name} ({max_size} bytes)"
        return BodyTooLarge(text, message=msg)

    async def aclose(self) -> None:
        """Close the stream; an unread rest is drained (bounded) or the connection closed."""
        if self._closed:
            return
        self._closed = True
        self._buffer = b""
        await self._done(drain=not self._eof)

    def _filter(self, make: Callable[[BodySource], BodySource]) -> None:
        """Stack a filter on the source (content decoding, logging): ``make(source)``.

        Raises:
            RuntimeError: Reading has begun (a filter must see the whole body).
        """
        if self._source is None or self._buffer or self._eof or self._closed:
            raise RuntimeError("a filter must be added before the body is read")
        self._source = make(self._source)

    async def _peek(self, size: int) -> bytes:
        """Read ahead until ``size`` bytes are buffered or the body ends; return them.

        The bytes stay buffered for the reader. Reaching the end here does not
        finish the stream: that happens when the reader reaches it.
        """
        while len(self._buffer) < size and not self._source_ended:
            if self._source is None:
                break
            chunk = await self._pull()
            if chunk is None:
                self._source_ended = True
            else:
                self._buffer += chunk
        return self._buffer[:size]

    def _discard(self) -> None:
        """Drop the body and its connection at once (a stage failing while it holds one)."""
        source, self._source = self._source, None
        self._closed = True
        self._buffer = b""
        if source is not None:
            source.discard()

    def _cut(self) -> None:
        """End the stream where it is: unread bytes are dropped and reads see its end.

        For a part of a multipart body once its reader moved on to the next
        part (which skips the rest): not an error, and nothing to close.
        """
        self._source = None
        self._buffer = b""
        self._eof = True

    def set_owner(self, owner: StreamOwner, msg: Any) -> None:
        """Tell ``owner`` about ``msg`` once this stream is done (or discarded)."""
        self._owner = owner
        self._msg = msg

    async def _done(self, *, drain: bool) -> None:
        source, self._source = self._source, None
        if source is None:
            return
        try:
            await source.close(drain=drain)
        finally:
            owner, self._owner = self._owner, None
            if owner is not None:
                await owner._stream_done(self._msg)

    def __del__(self) -> None:
        source = getattr(self, "_source", None)
        if source is not None:
            self._source = None
            source.discard()
            owner, self._owner = self._owner, None
            if owner is not None:
                owner._stream_discarded(self._msg)
            warnings.warn(
                f"{self!r} was never closed; close response bodies or use 'async with'",
                ResourceWarning,
                stacklevel=1,
                source=self,
            )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "at end" if self._eof else "open"
        return f"<anysoup.InputStream {state}>"


def _declared_length(msg: Any) -> int | None:
    """The length of ``msg``'s response body as read, if its headers tell it.

    That is its Content-Length, unless no body comes (a HEAD, 1xx, 204 or
    304: RFC 9110 §8.6) or a content coding may change the length.
    """
    if msg is None or msg.method == "HEAD" or msg.status < 200 or msg.status in (204, 304):
        return None
    headers = msg.response_headers
    if headers.get_list("Content-Encoding") not in (None, "", "identity"):
        return None
    length: int | None = headers.get_content_length()
    return length
