"""Reading multipart bodies: a sans-IO scanner for ``multipart/*`` (RFC 2046 §5.1).

Theory of operation
-------------------
:class:`MultipartScanner` is fed the body's bytes as they come and hands out
events, as h11 does for HTTP: :class:`PartStart` (a part's headers),
:class:`PartData` (a piece of its body), :data:`PART_END`, :data:`END` (the
close delimiter: no more parts) and :data:`NEED_DATA`. The async reader
(``multipart_stream.py``) and :meth:`Multipart.new_from_message
<anysoup.Multipart.new_from_message>` both drive it.

The body is ``preamble (delimiter headers blank-line body)* close-delimiter
epilogue``, where a delimiter is ``--boundary`` at the start of a line and
the close delimiter has ``--`` after it. The scanner is lenient where
servers are (as libsoup's ``SoupMultipartInputStream``): bare LF line ends,
transport padding after a delimiter, a missing CRLF before the first one.

Memory is bounded whatever the body: the preamble and epilogue are dropped
as they pass, a part's headers may take at most ``max_header_size`` bytes,
and a part's body goes out as it arrives, holding back only the few bytes
that could be the start of the next delimiter. So a part is readable before
the next one arrives, which ``multipart/x-mixed-replace`` (a stream that
never ends) needs. A part with a ``Content-Length`` is handed out without
holding anything back and ends after that many bytes, without waiting for
the delimiter that follows it; whatever precedes the next delimiter is then
dropped.

This is a policy module: no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .exceptions import ParsingError
from .headers import MessageHeaders

__all__ = [
    "END",
    "NEED_DATA",
    "PART_END",
    "MultipartScanner",
    "PartData",
    "PartStart",
    "boundary_of",
    "parse_part_headers",
]

#: The largest piece of a part's body handed out at once.
MAX_PIECE = 65536
#: A part's header block may not be longer (libsoup reads them into 8 KiB lines).
MAX_HEADER_SIZE = 65536
#: Transport padding allowed after a delimiter, before its line end.
MAX_PADDING = 1024


class _Marker(enum.Enum):
    NEED_DATA = "need data"
    PART_END = "part end"
    END = "end"


#: Feed more bytes (or the end), then ask again.
NEED_DATA = _Marker.NEED_DATA
#: The current part's body is complete.
PART_END = _Marker.PART_END
#: The close delimiter (or the end of a body without one): no more parts.
END = _Marker.END


@dataclass(frozen=True)
class PartStart:
    """A part begins; its headers (empty when it has none)."""

    headers: MessageHeaders


@dataclass(frozen=True)
class PartData:
    """A piece of the current part's body (never empty)."""

    data: bytes


Event = PartStart | PartData | _Marker


class _State(enum.Enum):
    SEEK = "seek"  # looking for a delimiter: the preamble, or after a part
    HEADERS = "headers"
    BODY = "body"
    DONE = "done"  # after the close delimiter: the epilogue is dropped


def boundary_of(headers: MessageHeaders) -> tuple[str, str] | None:
    """``(mime_type, boundary)`` of a ``multipart/*`` body with a boundary, else None."""
    content_type = headers.get_content_type()
    if content_type is None:
        return None
    mime_type, params = content_type
    boundary = params.get("boundary")
    if not mime_type.lower().startswith("multipart/") or not boundary:
        return None
    return mime_type, boundary


def parse_part_headers(block: bytes) -> MessageHeaders:
    """A part's header lines as headers: UTF-8 (RFC 7578 §5.1) or else Latin-1.

    Folded lines are joined; a line that is not ``name: value`` or that
    :class:`MessageHeaders` refuses is skipped, as a lenient reader does.
    """
    lines: list[str] = []
    for raw in block.split(b"\n"):
        line = raw.rstrip(b"\r")
        if not line:
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            text = line.decode("latin-1")
        if text[0] in " \t" and lines:
            lines[-1] += " " + text.strip()
        else:
            lines.append(text)
    headers = MessageHeaders()
    for text in lines:
        name, colon, value = text.partition(":")
        if not colon:
            continue
        try:
            headers.append(name.strip(), value.strip())
        except (ValueError, TypeError):
            continue
    return headers


class MultipartScanner:
    """Splits a ``multipart/*`` body into parts (see the module docstring).

    Args:
        boundary: The ``boundary`` parameter of the body's ``Content-Type``.
        max_header_size: The longest header block a part may have.
    """

    def __init__(self, boundary: str, *, max_header_size: int = MAX_HEADER_SIZE) -> None:
        self._delimiter = b"--" + boundary.encode("utf-8")
        self._marker = b"\n" + self._delimiter
        self._max_header_size = max_header_size
        self._buffer = bytearray()
        self._eof = False
        self._state = _State.SEEK
        # Whether the buffer's first byte starts a line (for a delimiter there).
        self._line_start = True
        # What is left of the current part's declared Content-Length, if it has one.
        self._remaining: int | None = None
        # Nothing of the current part's body was handed out yet.
        self._fresh = False
        self._end_pending = False

    @property
    def done(self) -> bool:
        """Whether the close delimiter (or the end of the body) was reached."""
        return self._state is _State.DONE

    def feed(self, data: bytes) -> None:
        """Add bytes of the body."""
        if self._state is not _State.DONE:
            self._buffer += data

    def feed_eof(self) -> None:
        """The body ended."""
        self._eof = True

    def next_event(self) -> Event:
        """The next event; :data:`NEED_DATA` when more bytes (or the end) must be fed.

        Raises:
            anysoup.ParsingError: The body ended inside a part, or a part's
                headers are too long.
        """
        if self._end_pending:
            self._end_pending = False
            return PART_END
        state = self._state
        if state is _State.SEEK:
            return self._seek()
        if state is _State.HEADERS:
            return self._headers()
        if state is _State.BODY:
            return self._body()
        self._buffer.clear()
        return END

    # -- the states ----------------------------------------------------------------

    def _seek(self) -> Event:
        buf, delimiter = self._buffer, self._delimiter
        start = 0
        while (found := buf.find(delimiter, start)) >= 0:
            if (found == 0 and self._line_start) or (found > 0 and buf[found - 1] == 0x0A):
                after = found + len(delimiter)
                if len(buf) < after + 2 and not self._eof:
                    return self._keep_from(found)
                if buf[after : after + 2] == b"--":
                    return self._finish()
                line_end = buf.find(b"\n", after)
                if line_end < 0:
                    if self._eof or len(buf) - after > MAX_PADDING:
                        return self._finish()
                    return self._keep_from(found)
                if not buf[after:line_end].strip(b" \t\r"):  # transport padding only
                    del buf[: line_end + 1]
                    self._state = _State.HEADERS
                    return self._headers()
            start = found + 1
        if self._eof:
            return self._finish()
        keep = len(delimiter)
        if len(buf) > keep:
            self._line_start = buf[-keep - 1] == 0x0A
            del buf[:-keep]
        return NEED_DATA

    def _keep_from(self, index: int) -> Event:
        del self._buffer[:index]
        self._line_start = True
        return NEED_DATA

    def _finish(self) -> Event:
        self._state = _State.DONE
        self._buffer.clear()
        return END

    def _headers(self) -> Event:
        buf = self._buffer
        if buf[:1] == b"\n" or buf[:2] == b"\r\n":  # a part with no headers
            del buf[: 1 if buf[:1] == b"\n" else 2]
            return self._start(MessageHeaders())
        ends = [i for i in (buf.find(b"\n\r\n"), buf.find(b"\n\n")) if i >= 0]
        if not ends:
            if len(buf) > self._max_header_size:
                raise ParsingError(
                    f"multipart body: a part's headers are over {self._max_header_size} bytes"
                )
            if self._eof:
                raise ParsingError("multipart body: it ended inside a part's headers")
            return NEED_DATA
        end = min(ends)
        block = bytes(buf[:end])
        del buf[: end + (3 if buf[end + 1 : end + 2] == b"\r" else 2)]
        return self._start(parse_part_headers(block))

    def _start(self, headers: MessageHeaders) -> Event:
        self._state = _State.BODY
        self._remaining = headers.get_content_length()
        self._fresh = True
        return PartStart(headers)

    def _body(self) -> Event:
        buf = self._buffer
        if self._remaining is not None:
            return self._counted()
        if self._fresh:
            # The delimiter right after the blank line: an empty part.
            if buf.startswith(self._delimiter):
                return self._part_done()
            if self._delimiter.startswith(buf) and not self._eof:
                return NEED_DATA
        found = buf.find(self._marker)
        if found >= 0:
            end = found - 1 if found > 0 and buf[found - 1] == 0x0D else found
            data = bytes(buf[:end])
            del buf[: found + 1]
            event = self._part_done()
            if data:
                self._end_pending = True
                return PartData(data)
            return event
        if self._eof:
            raise ParsingError("multipart body: it ended inside a part (no closing boundary)")
        # Hold back what could begin the next delimiter (with its CR).
        size = min(len(buf) - len(self._marker), MAX_PIECE)
        if size <= 0:
            return NEED_DATA
        return self._hand_out(size)

    def _counted(self) -> Event:
        assert self._remaining is not None
        if self._remaining == 0:
            return self._part_done()
        if not self._buffer:
            if self._eof:
                raise ParsingError("multipart body: a part is shorter than its Content-Length")
            return NEED_DATA
        size = min(len(self._buffer), self._remaining, MAX_PIECE)
        self._remaining -= size
        return self._hand_out(size)

    def _hand_out(self, size: int) -> Event:
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        self._fresh = False
        return PartData(data)

    def _part_done(self) -> Event:
        self._state = _State.SEEK
        self._line_start = True
        self._remaining = None
        self._fresh = False
        return PART_END
