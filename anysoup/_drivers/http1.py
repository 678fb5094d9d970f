"""The HTTP/1.1 driver: one exchange at a time, h11 over an anyio byte stream.

The drivers and the transport are the only code that awaits a stream. Every
failure leaves as an :class:`anysoup.Error` naming the phase, the host and the
cause; h11's ``RemoteProtocolError`` (the peer broke HTTP) is wrapped, its
``LocalProtocolError`` (we broke HTTP: a bug) is not.

The I/O stall timeout is not a cancel scope per read: before each read or
write the driver stores a deadline on its connection record, and the pool's
sweeper closes the socket of a connection whose deadline passed (see
``docs/design.rst``). A read or write that then fails is reported as a
:class:`anysoup.TimeoutError`.
"""

from __future__ import annotations

import math
import ssl
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import anyio
import h11
from anyio.abc import ByteStream

from .._model.exceptions import (
    EncodingError,
    Error,
    IncompleteBody,
    NetworkError,
    ParsingError,
    TlsError,
)
from .._transport.io_errors import IO_ERRORS, describe_io_error
from .._transport.tls import alert_error
from .owner import closed_by_pool

if TYPE_CHECKING:
    from .owner import ConnectionOwner

__all__ = ["HTTP1Connection"]

#: Bytes asked of the socket per read.
READ_SIZE = 65536
#: libsoup's cap on a response header block (DESIGN §6).
MAX_HEADER_BLOCK = 256 * 1024
#: At most this many 1xx responses before the final one (DESIGN §6).
MAX_INFORMATIONAL = 10
#: A bytes body goes out in slices of this size: the most a stream's send may
#: copy into its own buffer at once (asyncio's transport does, when the kernel
#: won't take it all), and how often an early answer is looked for.
WRITE_SLICE = 256 * 1024
#: How long to wait for "100 Continue" before sending the body anyway (RFC 9110 §10.1.1).
EXPECT_CONTINUE_DELAY = 1.0

_NEED_DATA = h11.NEED_DATA
_Data = h11.Data
_EndOfMessage = h11.EndOfMessage
_Response = h11.Response
_InformationalResponse = h11.InformationalResponse
_monotonic = time.monotonic
_INF = math.inf


class HTTP1Connection:
    """h11 driving one byte stream; lent to one message at a time by the pool.

    Args:
        stream: The connected (and, for https, TLS-wrapped) stream.
        owner: The pool connection, whose ``io_deadline`` and close reason
            the driver uses.
        label: ``host:port``, for error messages.
    """

    __slots__ = (
        "_ambiguous",
        "_h11",
        "_head_bytes",
        "_owner",
        "_reading_until",
        "_stream",
        "_tls",
        "_writing_until",
        "label",
        "not_reused",
        "received_any",
        "timeout",
    )

    def __init__(self, stream: ByteStream, owner: ConnectionOwner, label: str) -> None:
        self._stream = stream
        self._owner = owner
        # Looked up once: finish() checks them after every response.
        self._tls = _tls_buffers(stream)
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BLOCK)
        self.label = label
        #: The stall timeout in seconds (0: none).
        self.timeout = 0.0
        #: Whether any byte of the current response arrived (no retry after that).
        self.received_any = False
        # Bytes read since the request started (bounds the header check's work).
        self._head_bytes = 0
        # The response framed its body two ways (RFC 9112 §6.3).
        self._ambiguous = False
        # The stall deadlines of a read and a write under way (inf: none). While
        # a request body goes out, a read may wait for an early answer at the
        # same time; the owner's deadline is the nearer one.
        self._reading_until = self._writing_until = _INF
        #: Why :meth:`finish` refused a connection both sides meant to keep, or None.
        self.not_reused: str | None = None

    # -- writing -------------------------------------------------------------

    def start_request(self, method: str, target: str, headers: list[tuple[str, str]]) -> bytes:
        """Start an exchange; return the request line and headers to write."""
        self.received_any = False
        self._head_bytes = 0
        self._ambiguous = False
        self.not_reused = None
        fields: list[tuple[str, str]] | list[tuple[bytes, bytes]] = headers
        if not all(value.isascii() for _name, value in headers):
            # h11 encodes str as ASCII; values are octets (RFC 9110 §5.5), one
            # character per byte, which MessageHeaders checked when they were set.
            fields = [(n.encode("ascii"), v.encode("latin-1")) for n, v in headers]
        try:
            return self._h11.send(h11.Request(method=method, target=target, headers=fields))
        except h11.LocalProtocolError as exc:
            if self._h11.our_state is h11.IDLE:
                # Bad header names or values from the caller, not an h11 misuse.
                raise ValueError(f"request to {self.label}: {exc}") from None
            raise

    def body_data(self, data: bytes) -> bytes:
        """Frame a piece of request body."""
        try:
            return self._h11.send(h11.Data(data=data))
        except h11.LocalProtocolError as exc:
            raise self._body_lied(exc) from None

    def end_of_body(self) -> bytes:
        """Frame the end of the request body."""
        try:
            return self._h11.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            raise self._body_lied(exc) from None

    def _body_lied(self, exc: h11.LocalProtocolError) -> Error:
        """A body whose declared length (``set_request_body(length=…)``) was not its size.

        Only the program's stream can cause this (h11 counts the bytes against
        ``Content-Length``): the request can't be completed, and the caller
        closes the connection. Any other h11 refusal is an anysoup bug.
        """
        text = str(exc)
        if "declared Content-Length" not in text:
            raise exc
        size = "more" if text.startswith("Too much") else "fewer"
        return Error(
            f"writing request body to {self.label}: the body gave {size} bytes than the "
            "length declared for it (Content-Length)"
        )

    async def write(self, data: bytes | memoryview, phase: str) -> None:
        """Write ``data``; ``phase`` names what is written in errors."""
        owner = self._owner
        if self.timeout:
            self._writing_until = _monotonic() + self.timeout
            owner.io_deadline = min(self._writing_until, self._reading_until)
        try:
            await self._stream.send(data)  # type: ignore[arg-type]  # any buffer will do
        except IO_ERRORS as exc:
            raise self._io_error(phase, exc) from exc
        finally:
            self._writing_until = _INF
            owner.io_deadline = self._reading_until

    def body_slices(self, data: bytes) -> Iterator[memoryview]:
        """Frame a whole bytes body as slices of itself, without copying it.

        h11's ``send`` joins what it frames into one new bytes object; its
        passthrough form hands the data back as given, so a large body is
        written a slice at a time and is never copied whole.
        """
        view = memoryview(data)
        send = self._h11.send_with_data_passthrough
        for start in range(0, len(view), WRITE_SLICE):
            try:
                # h11 hands any bytes-like data through as it is.
                piece = view[start : start + WRITE_SLICE]
                pieces = send(h11.Data(data=piece)) or ()  # type: ignore[arg-type]
            except h11.LocalProtocolError as exc:
                raise self._body_lied(exc) from None
            for framed in pieces:
                yield framed if isinstance(framed, memoryview) else memoryview(framed)

    # -- reading -------------------------------------------------------------

    async def _fill(self, phase: str) -> None:
        owner = self._owner
        if self.timeout:
            self._reading_until = _monotonic() + self.timeout
            owner.io_deadline = min(self._writing_until, self._reading_until)
        try:
            data = await self._stream.receive(READ_SIZE)
        except anyio.EndOfStream:
            data = b""
        except IO_ERRORS as exc:
            raise self._io_error(phase, exc) from exc
        finally:
            self._reading_until = _INF
            owner.io_deadline = self._writing_until
        if data:
            self.received_any = True
            self._head_bytes += len(data)
        self._h11.receive_data(data)

    async def receive_head(self) -> h11.Response | h11.InformationalResponse:
        """Read the next response head: a 1xx or the final response."""
        next_event = self._h11.next_event
        while True:
            try:
                event = next_event()
            except h11.RemoteProtocolError as exc:
                raise self._protocol_error("reading response headers", exc) from exc
            if event is _NEED_DATA:
                await self._fill("reading response headers")
                continue
            if type(event) is _Response or type(event) is _InformationalResponse:
                # h11 bounds only an *incomplete* head: one that completes in
                # the read that crosses the cap would get through. Only a head
                # that came with that many bytes can be that large.
                if self._head_bytes > MAX_HEADER_BLOCK and _head_size(event) > MAX_HEADER_BLOCK:
                    raise ParsingError(
                        f"reading response headers from {self.label}: the header block is "
                        f"larger than {MAX_HEADER_BLOCK // 1024} KiB"
                    )
                if type(event) is _Response and _framed_twice(event):
                    self._ambiguous = True
                return event
            raise ParsingError(f"reading response headers from {self.label}: unexpected {event!r}")

    async def receive_chunk(self) -> bytes | None:
        """The next piece of the response body, or None at its end."""
        next_event = self._h11.next_event
        while True:
            try:
                event = next_event()
            except h11.RemoteProtocolError as exc:
                raise self._protocol_error("reading response body", exc) from exc
            kind = type(event)
            if kind is _Data:
                return bytes(event.data)  # type: ignore[union-attr]
            if kind is _EndOfMessage:
                return None
            if event is _NEED_DATA:
                await self._fill("reading response body")
                continue
            raise NetworkError(f"reading response body from {self.label}: unexpected {event!r}")

    async def wait_continue(self) -> h11.Response | h11.InformationalResponse | None:
        """After ``Expect: 100-continue``: wait for a response head or a short delay.

        Returns the head that arrived (a 1xx: send the body; a final response:
        don't), or None when the delay passed first (send the body anyway).
        """
        with anyio.move_on_after(EXPECT_CONTINUE_DELAY):
            return await self.receive_head()
        return None

    # -- state ---------------------------------------------------------------

    @property
    def switched(self) -> bool:
        """Whether the server agreed to switch protocols (101 to our Upgrade)."""
        return self._h11.their_state is h11.SWITCHED_PROTOCOL

    def take_trailing_data(self) -> bytes:
        """After a switch: the bytes read past the 101 answer (the new protocol's)."""
        data, _closed = self._h11.trailing_data
        return bytes(data)

    def finish(self) -> bool:
        """End the exchange; return whether the connection can carry another.

        Only at a clean message boundary (DESIGN §4 invariant 3): both sides
        done, and nothing of the server's read or buffered beyond the end of
        the response. Bytes there would be taken for the answer to the next
        request (response desync), so they close the connection, as does a
        response framed two ways (RFC 9112 §6.3: "ought to be handled as an
        error"; its body was read by Transfer-Encoding, which overrides).
        Either reason is kept in :attr:`not_reused`.
        """
        conn = self._h11
        if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
            return False
        extra = len(conn.trailing_data[0])
        tls = self._tls
        if tls is not None:
            ssl_object, incoming = tls
            extra += ssl_object.pending()  # decrypted, never read
            if not extra and incoming.pending:  # read from the socket, still encrypted
                self.not_reused = "bytes past the end of the response"
                return False
        if extra:
            self.not_reused = f"{extra} bytes past the end of the response"
            return False
        if self._ambiguous:
            self.not_reused = "the response had both Content-Length and Transfer-Encoding"
            return False
        conn.start_next_cycle()
        return True

    # -- errors --------------------------------------------------------------

    def _io_error(self, phase: str, exc: BaseException) -> Error | TlsError:
        where = f"{phase} {'to' if phase.startswith('writing') else 'from'} {self.label}"
        closed = closed_by_pool(self._owner.close_reason, where, self.timeout)
        if closed is not None:
            return closed
        alert = alert_error(exc, self.label, identity=self._owner.plan.identity)
        if alert is not None:
            return alert
        if isinstance(exc, anyio.EndOfStream) or (
            isinstance(exc, ssl.SSLError) and "EOF" in str(exc)
        ):
            cause = "the server closed the connection"
        else:
            cause = describe_io_error(exc)
        return NetworkError(f"{where}: {cause}")

    def _protocol_error(self, phase: str, exc: h11.RemoteProtocolError) -> Error:
        text = str(exc)
        where = f"{phase} from {self.label}"
        if "body" in phase:
            return IncompleteBody(f"{where}: {text}")
        if "ConnectionClosed" in text or not self.received_any:
            return NetworkError(f"{where}: the server closed the connection without a response")
        if text == "peer unexpectedly closed connection" and _http_prefix(
            self._h11.trailing_data[0]
        ):
            # Closed in the middle of a well-begun head: cut short, not malformed.
            return NetworkError(f"{where}: the server closed the connection mid-headers")
        if "Transfer-Encoding" in text:
            return EncodingError(f"{where}: {text}")
        return ParsingError(f"{where}: malformed response: {text}")

    def __repr__(self) -> str:
        return (
            f"<HTTP1Connection {self.label} ours={self._h11.our_state} "
            f"theirs={self._h11.their_state}>"
        )


def _head_size(head: h11.Response | h11.InformationalResponse) -> int:
    """The size of a response head on the wire (a lower bound: h11 strips spaces)."""
    size = 17 + len(head.reason)  # "HTTP/1.1 200 " + reason + CRLF + final CRLF
    for name, value in head.headers.raw_items():
        size += len(name) + len(value) + 4
    return size


def _framed_twice(head: h11.Response) -> bool:
    """Whether a response carries both Content-Length and Transfer-Encoding."""
    seen = 0
    for name, _value in head.headers:
        if name == b"transfer-encoding":
            seen |= 1
        elif name == b"content-length":
            seen |= 2
    return seen == 3


def _tls_buffers(stream: object) -> tuple[ssl.SSLObject, ssl.MemoryBIO] | None:
    """The TLS layer's own buffers under ``stream``, or None for a plain stream.

    The TLS stream may read past a response into them, where looking at the
    socket can't see the bytes. anyio's ``TLSStream`` keeps an ``ssl``
    ``SSLObject`` (decrypted bytes: ``pending()``) and the ``MemoryBIO`` of
    what came from the socket (``pending``); these are its private names,
    so anything else counts as holding nothing.
    """
    ssl_object = getattr(stream, "_ssl_object", None)
    incoming = getattr(stream, "_read_bio", None)
    if isinstance(ssl_object, ssl.SSLObject) and isinstance(incoming, ssl.MemoryBIO):
        return ssl_object, incoming
    return None


def _http_prefix(data: bytes) -> bool:
    """Whether ``data`` begins like an HTTP response (a head cut short, not garbage)."""
    start = data.lstrip(b"\r\n")[:5]
    return bool(start) and b"HTTP/".startswith(start)
