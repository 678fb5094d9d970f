"""Mocked answers: :class:`Response`, and how one is played to a message.

Theory of operation: the router stands where the core send coroutine would
be, so it does what the core does to a message, minus the connection. It
frames the request as the core would (``Content-Length``, chunked, ``Host``
in the snapshot), reads a streamed request body (as writing it would), and
then plays the answer: ``starting``, ``wrote_headers``, ``wrote_body_data``,
``wrote_body``, the status and headers, ``got_headers``; the body follows
through an :class:`~anysoup.InputStream` whose source gives the mocked
pieces with ``got_body_data``, and whose end brings ``got_body`` and
``finished`` when the stream closes (DESIGN §6, "Order of message
signals"). Metrics get the same fields a network exchange fills, with no
name lookup or connect. Every stage outside the router (redirects, auth,
cookies, decoding, the Logger, a cache) sees this as any answer, and the
session unqueues the message when the stream is done, as always.

A declared ``Content-Length`` larger than the body given ends the stream
with :class:`~anysoup.IncompleteBody`, as a connection cut short would:
that is how a test scripts a truncated body.
"""

from __future__ import annotations

import http
import json as jsonlib
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import anyio.lowlevel

from .._model.body import InputStream, RequestBody
from .._model.enums import HTTPVersion
from .._model.exceptions import IncompleteBody
from .._model.headers import MessageHeaders
from .._model.signals import active
from .._model.uri import authority_form, host_header
from ._matching import UNSET, Request

if TYPE_CHECKING:
    from .._model.message import Message

__all__ = ["Response", "answer", "read_request"]

#: What a mocked body may be given as.
Content = bytes | Iterable[bytes] | AsyncIterable[bytes]
#: Methods that get ``Content-Length: 0`` when they have no body (RFC 9110 §8.6), as the core.
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: Statuses whose responses have no body (RFC 9110 §6.4.1).
_NO_BODY = frozenset({204, 304})
_VERSIONS = {HTTPVersion.HTTP_1_0: "1.0", HTTPVersion.HTTP_1_1: "1.1", HTTPVersion.HTTP_2_0: "2"}


class Response:
    """A mocked answer: status, headers and body.

    Give the body as one of ``content`` (bytes, or an iterable or async
    iterable of bytes pieces, sent as they come), ``text``, ``json`` or
    ``html``; the last three set ``Content-Type`` unless ``headers`` do.
    Framing is added as a server would: ``Content-Length`` for bytes,
    ``Transfer-Encoding: chunked`` for pieces, unless ``headers`` set one.
    A response is reused for every call of its route; a generator of pieces
    can be read only once (use a callable side effect to make one per call).

    Args:
        status: The status code, 200 to 599.
        headers: Response headers: a mapping or ``(name, value)`` pairs.
        content: The body as bytes or pieces.
        text: The body as text, UTF-8 encoded (``text/plain; charset=utf-8``).
        json: The body as an object to encode as JSON (``application/json``).
        html: The body as HTML text, UTF-8 encoded (``text/html; charset=utf-8``).
        reason: The reason phrase; by default the status's standard one.
        http_version: The version the answer claims (:class:`anysoup.HTTPVersion`).

    Raises:
        ValueError: A 1xx status (WebSocket handshakes, ``101``, can't be
            mocked), more than one body given, or a body with 204 or 304.
        TypeError: A body of the wrong type.
    """

    __slots__ = ("content", "headers", "http_version", "reason", "status")

    def __init__(
        self,
        status: int = 200,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        content: Content | None = None,
        text: str | None = None,
        json: Any = UNSET,
        html: str | None = None,
        reason: str | None = None,
        http_version: HTTPVersion = HTTPVersion.HTTP_1_1,
    ) -> None:
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            raise ValueError(f"status: {status!r} is not an HTTP status code")
        if status == 101:
            raise ValueError(
                "status: 101 Switching Protocols can't be mocked: anysoup.testing has no "
                "WebSocket mocks; pass the host through to a real server instead"
            )
        if status < 200:
            raise ValueError(f"status: {status} is informational, not a final response")
        #: The status code.
        self.status = status
        #: The reason phrase.
        self.reason = reason if reason is not None else _phrase(status)
        #: The HTTP version of the answer.
        self.http_version = HTTPVersion(http_version)
        #: The response headers (copied to each message answered).
        self.headers = MessageHeaders(headers)
        given = [content is not None, text is not None, json is not UNSET, html is not None]
        if sum(given) > 1:
            raise ValueError("give one of content, text, json and html")
        if text is not None:
            content = self._typed(text.encode(), "text/plain; charset=utf-8")
        elif html is not None:
            content = self._typed(html.encode(), "text/html; charset=utf-8")
        elif json is not UNSET:
            encoded = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":"))
            content = self._typed(encoded.encode(), "application/json")
        elif content is None:
            content = b""
        elif isinstance(content, (bytearray, memoryview)):
            content = bytes(content)
        elif isinstance(content, str):
            raise TypeError("content: str is not bytes; use text= or encode it")
        elif not isinstance(content, (bytes, Iterable, AsyncIterable)):
            raise TypeError(f"content: {type(content).__name__} is not bytes or pieces of bytes")
        if status in _NO_BODY and content != b"":
            raise ValueError(f"status: a {status} response has no body")
        #: The body: bytes, or pieces.
        self.content: Content = content
        self._frame()

    def _typed(self, data: bytes, content_type: str) -> bytes:
        if "Content-Type" not in self.headers:
            self.headers.append("Content-Type", content_type)
        return data

    def _frame(self) -> None:
        headers = self.headers
        if self.status in _NO_BODY or "Content-Length" in headers:
            return
        if "Transfer-Encoding" in headers:
            return
        if isinstance(self.content, bytes):
            headers.set_content_length(len(self.content))
        else:
            headers.append("Transfer-Encoding", "chunked")

    def __repr__(self) -> str:
        size = f"{len(self.content)} bytes" if isinstance(self.content, bytes) else "streamed"
        return f"<anysoup.testing.Response {self.status} {size}>"


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


async def read_request(msg: Message) -> Request:
    """Frame ``msg``'s request as the core would and take its snapshot.

    A streamed body is read here (the router is where it would be written)
    and put back as a one-piece stream, so a pass-through can still send it
    once, chunked, and a re-send still finds it not replayable.
    """
    headers = msg.request_headers
    body = msg._body
    content = b""
    if body is not None:
        if body.length is not None:
            headers.set_content_length(body.length)
            if "Transfer-Encoding" in headers:
                headers.remove("Transfer-Encoding")
        else:
            headers.remove("Content-Length")
            headers.replace("Transfer-Encoding", "chunked")
        if body.data is not None:
            content = body.data
        else:
            pieces = [chunk async for chunk in body.chunks()]
            content = b"".join(pieces)
            msg._body = RequestBody.make(pieces, body.length)
    elif (
        msg.method in _BODY_METHODS
        and "Content-Length" not in headers
        and "Transfer-Encoding" not in headers
    ):
        headers.set_content_length(0)
    snapshot = headers.copy()
    if "Host" not in snapshot:
        snapshot = MessageHeaders([("Host", host_header(msg.uri)), *snapshot])
    return Request(msg.method, msg.uri, snapshot, content)


async def answer(msg: Message, response: Response, request: Request) -> InputStream:
    """Play ``response`` to ``msg`` as an exchange would; return the body stream."""
    metrics = msg.metrics
    msg.http_version = response.http_version
    msg._proxy = None  # no proxy answered
    msg._connection_note = None
    await _emit(msg, "starting")
    if metrics is not None:
        metrics.request_start = time.monotonic()
        version = _VERSIONS[response.http_version]
        line = f"{msg.method} {msg.uri.raw_path_qs or '/'} HTTP/{version}\r\n"
        metrics.request_header_bytes_sent = (
            len(line) + 2 + sum(len(name) + len(value) + 4 for name, value in request.headers)
        )
        metrics.request_body_size = metrics.request_body_bytes_sent = len(request.content)
    body = msg._body
    if body is not None and body.data is None:
        body._consumed = True  # it was "written": a re-send can't send it again
    await _emit(msg, "wrote_headers")
    if request.content:
        await _emit(msg, "wrote_body_data", request.content)
    await _emit(msg, "wrote_body")
    msg.status = response.status
    msg.reason_phrase = response.reason
    msg.response_headers = response.headers.copy()
    if metrics is not None:
        metrics.response_start = time.monotonic()
        metrics.response_header_bytes_received += (
            sum(len(n) + len(v) + 4 for n, v in response.headers) + 15 + len(response.reason)
        )
    await _emit(msg, "got_headers")
    without_body = msg.method == "HEAD" or response.status in _NO_BODY
    return InputStream(_MockedBody(msg, b"" if without_body else response.content))


async def _emit(msg: Message, name: str, *args: object) -> None:
    signal = active(msg, name)
    if signal is not None:
        await signal.emit(*args)


class _MockedBody:
    """The body source of a mocked answer: its pieces, then its end."""

    __slots__ = ("_declared", "_ended", "_msg", "_pieces", "_received")

    def __init__(self, msg: Message, content: Content) -> None:
        self._msg = msg
        self._pieces: Iterator[bytes] | AsyncIterator[bytes] | None
        if isinstance(content, bytes):
            self._pieces = iter((content,) if content else ())
        elif isinstance(content, AsyncIterable):
            self._pieces = aiter(content)
        else:
            self._pieces = iter(content)
        self._declared = msg.response_headers.get_content_length() if content else None
        self._received = 0
        # The body ended; got_body and finished wait for close(), as on a connection.
        self._ended = False

    async def receive_chunk(self) -> bytes | None:
        await anyio.lowlevel.checkpoint()  # a read is a checkpoint, as on the network
        chunk = await self._next()
        msg = self._msg
        if chunk is None:
            if self._declared is not None and self._received < self._declared:
                raise IncompleteBody(
                    f"reading the response body from {authority_form(msg.uri)}: the mocked "
                    f"body ended after {self._received} of its {self._declared} bytes "
                    "(Content-Length)",
                    message=msg,
                )
            if msg.metrics is not None:
                msg.metrics.response_end = time.monotonic()
                msg.metrics.response_body_size = self._received
                msg.metrics.response_body_bytes_received = self._received
            self._ended = True
            return None
        self._received += len(chunk)
        await _emit(msg, "got_body_data", chunk)
        return chunk

    async def _next(self) -> bytes | None:
        pieces = self._pieces
        while pieces is not None:
            if isinstance(pieces, AsyncIterator):
                try:
                    chunk: object = await anext(pieces)
                except StopAsyncIteration:
                    break
            else:
                chunk = next(pieces, None)
                if chunk is None:
                    break
            if not isinstance(chunk, (bytes, bytearray, memoryview)):
                raise TypeError(f"content: a piece is a {type(chunk).__name__}, not bytes")
            if chunk:
                return bytes(chunk)
        self._pieces = None
        return None

    async def close(self, *, drain: bool) -> None:
        pieces, self._pieces = self._pieces, None
        aclose = getattr(pieces, "aclose", None)
        if aclose is not None:  # a generator of pieces stopped early: close it now
            await aclose()
        if self._ended:
            self._ended = False
            await _emit(self._msg, "got_body")
        await _emit(self._msg, "finished")

    def discard(self) -> None:
        self._pieces = None
