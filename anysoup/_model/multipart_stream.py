"""``MultipartInputStream``: a multipart response read part by part, as it arrives.

Theory of operation: the reader owns the response body (an
:class:`InputStream`, or any anyio byte stream) and a
:class:`~anysoup._model.multipart_parse.MultipartScanner`. :meth:`next_part`
pulls scanner events, feeding it from the body when it needs data, until a
part starts; the part is an :class:`InputStream` whose source pulls the same
events until the part ends. One part is open at a time: asking for the next
part skips what is left of the current one, and closing a part early only
marks it done (the skip happens then). So memory stays bounded by the
scanner's (one network read and a few bytes held back), and a part of a
``multipart/x-mixed-replace`` stream, which never ends, is readable as soon
as its bytes come.

The reader's end (the close delimiter) reads the body to its end, which
gives the connection back; :meth:`aclose` closes the body at any time.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from .body import InputStream
from .exceptions import ParsingError
from .headers import MessageHeaders
from .multipart_parse import END, NEED_DATA, MultipartScanner, PartData, PartStart, boundary_of
from .public import public

if TYPE_CHECKING:
    from .message import Message

__all__ = ["MultipartInputStream"]

#: How much of the body one read asks for.
_READ_SIZE = 65536


class _PartSource:
    """The :class:`~anysoup._model.body.BodySource` of one part: the reader's events."""

    __slots__ = ("_ended", "_reader")

    def __init__(self, reader: MultipartInputStream) -> None:
        self._reader = reader
        self._ended = False

    async def receive_chunk(self) -> bytes | None:
        if self._ended:
            return None
        data = await self._reader._part_data(self)
        if data is None:
            self._ended = True
        return data

    async def close(self, *, drain: bool) -> None:
        # The rest of the part is skipped by the next next_part().
        self._ended = True

    def discard(self) -> None:
        self._ended = True


@public
class MultipartInputStream:
    """Reads a ``multipart/*`` response part by part (libsoup's ``SoupMultipartInputStream``).

    Wrap the body of a multipart response and ask for its parts::

        body = await session.send(msg)
        async with anysoup.MultipartInputStream(msg, body) as multipart:
            while (part := await multipart.next_part()) is not None:
                print(multipart.headers.get_one("Content-Range"))
                data = await part.read()

    or ``async for part in multipart``. Each part is an
    :class:`~anysoup.InputStream`; its headers are :attr:`headers` until the
    next :meth:`next_part`. It serves ``multipart/byteranges`` (RFC 9110
    §14.6), ``multipart/x-mixed-replace`` (a camera's stream of images,
    which never ends: each part is readable as it arrives), ``multipart/mixed``
    and the rest. Don't read ``body`` yourself once it is wrapped.

    Args:
        msg: The message whose response it is: its ``Content-Type`` gives
            the boundary.
        base_stream: The response body from :meth:`anysoup.Session.send`
            (or any anyio byte stream).

    Raises:
        ValueError: The response is not ``multipart/*`` with a boundary.
    """

    def __init__(self, msg: Message, base_stream: anyio.abc.ByteReceiveStream) -> None:
        found = boundary_of(msg.response_headers)
        if found is None:
            raise ValueError(
                f"MultipartInputStream: the response of {msg!r} is not multipart/* "
                "with a boundary (its Content-Type: "
                f"{msg.response_headers.get_one('Content-Type')!r})"
            )
        self._msg = msg
        self._base = base_stream
        self._scanner = MultipartScanner(found[1])
        self._headers: MessageHeaders | None = None
        self._part: _PartSource | None = None
        self._part_stream: InputStream | None = None
        self._done = False

    @property
    def message(self) -> Message:
        """The message whose response this is."""
        return self._msg

    @property
    def headers(self) -> MessageHeaders | None:
        """The current part's headers (empty if it has none); None before the first part."""
        return self._headers

    def get_headers(self) -> MessageHeaders | None:
        """Alias of :attr:`headers` (libsoup's ``soup_multipart_input_stream_get_headers``)."""
        return self._headers

    async def next_part(self) -> InputStream | None:
        """The next part's body, or None when there are no more parts.

        What is left of the current part is skipped (and the current part
        stream ends).

        Raises:
            anysoup.ParsingError: The body ended inside a part, or a part's
                headers were too long.
            anysoup.Error: Reading the response failed.
        """
        self._leave_part()
        if self._done:
            return None
        while True:
            event = await self._event()
            if isinstance(event, PartStart):
                self._headers = event.headers
                self._part = _PartSource(self)
                self._part_stream = InputStream(self._part)
                return self._part_stream
            if event is END:
                await self._end()
                return None

    def __aiter__(self) -> MultipartInputStream:
        return self

    async def __anext__(self) -> InputStream:
        part = await self.next_part()
        if part is None:
            raise StopAsyncIteration
        return part

    async def aclose(self) -> None:
        """Close the response body (and with it the current part)."""
        self._leave_part()
        self._done = True
        await self._base.aclose()

    async def __aenter__(self) -> MultipartInputStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- internals ---------------------------------------------------------------------

    def _leave_part(self) -> None:
        """The current part ends where it is; the scanner skips its rest."""
        part, stream = self._part, self._part_stream
        self._part = self._part_stream = None
        if part is not None:
            part._ended = True
        if stream is not None:
            stream._cut()

    async def _part_data(self, part: _PartSource) -> bytes | None:
        """The next piece of ``part``'s body, or None at its end."""
        if part is not self._part:
            return None
        event = await self._event()
        if isinstance(event, PartData):
            return event.data
        if event is END:  # the body ended where a part could (lenient)
            await self._end()
        return None  # PART_END

    async def _event(self) -> object:
        scanner = self._scanner
        while True:
            try:
                event = scanner.next_event()
            except ParsingError as exc:
                exc.message = self._msg
                self._done = True
                await self._base.aclose()
                raise
            if event is not NEED_DATA:
                return event
            try:
                data = await self._base.receive(_READ_SIZE)
            except anyio.EndOfStream:
                scanner.feed_eof()
            except BaseException:
                # The body closed itself (an InputStream does when a read fails).
                self._done = True
                raise
            else:
                scanner.feed(data)

    async def _end(self) -> None:
        """The close delimiter: close the body (a short epilogue is drained: reusable)."""
        self._done = True
        self._leave_part()
        await self._base.aclose()

    def __repr__(self) -> str:
        state = "done" if self._done else "open"
        return f"<anysoup.MultipartInputStream {self._msg!r} {state}>"
