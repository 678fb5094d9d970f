"""Logger: libsoup's traffic log, to a printer or the stdlib logger ``anysoup``.

Theory of operation: the logger is the innermost stage of the chain (DESIGN
§1), so every attempt to send a message passes through it: each redirect hop
and auth retry calls :meth:`Logger.handle` again, and a re-send inside the
core (a stale keep-alive connection, a client certificate asked for late)
writes the request a second time. The request is therefore logged from the
message's ``wrote_headers`` / ``wrote_body`` signals, once the core has set
the framing headers, and shows what went on the wire; ``Host`` comes first
when the message has none, as the core sends it. On HTTP/2 the message says
so (``http_version``) from the start of its exchange: the request line reads
``HTTP/2`` and the headers are the fields the stream carried, without
``Host`` (sent as ``:authority``) or the connection-specific ones.

A block is printed, all at once, as soon as everything it shows is known:

* the request when it was written (at BODY level with a streamed body, once
  the body was written too);
* an interim (1xx) response when it arrives;
* the final response when its headers arrive, or at BODY level when its body
  was read to the end, closed, failed or garbage-collected. Body bytes are
  seen through an :class:`~anysoup.InputStream` filter, as they travel: before
  content decoding, which happens in an outer stage.

The lines are libsoup's (``soup-logger.c``); the notes in brackets (a failure,
a re-send, a body cut short) are anysoup's. Nothing is made per message when
the level is NONE and no filter is set, or when the output goes nowhere.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar
from weakref import WeakKeyDictionary

import anyio

from ..._model.enums import CacheResult, HTTPVersion, LoggerLogLevel
from ..._model.public import public
from ..._model.uri import host_header
from ..feature import CallNext, SessionFeature
from .lines_policy import (
    BODY,
    HEADERS,
    MINIMAL,
    NONE,
    SEPARATOR,
    VERSIONS,
    BodyText,
    Filter,
    Line,
    Printer,
    address_text,
    failure_note,
    header_lines,
    http2_fields,
    request_version,
)

if TYPE_CHECKING:
    from ..._model.body import BodySource, InputStream
    from ..._model.message import Message
    from ..._model.signals import Signal

__all__ = ["Logger"]

_stdlib = logging.getLogger("anysoup")
#: Answers the logger marks with a ``Soup-Debug-Cache`` line.
_FROM_CACHE = frozenset({CacheResult.HIT, CacheResult.STALE, CacheResult.REVALIDATED})

# -- the feature -----------------------------------------------------------------------


@public
class Logger(SessionFeature):
    """Logs the HTTP traffic of a session (libsoup's ``SoupLogger``).

    Output goes line by line to the printer set with :meth:`set_printer`, or
    else to the standard library logger ``anysoup`` at ``INFO`` (configure
    :mod:`logging` to see it). See :doc:`/logging` for the line format.

    Args:
        level: How much to log: the request and status lines (``MINIMAL``),
            plus headers (``HEADERS``), plus bodies (``BODY``).
        max_body_size: At BODY level, the most bytes of a body to show; -1
            shows all of it.
        redact: Hide the secrets in ``Authorization``, ``Proxy-Authorization``,
            ``Cookie`` and ``Set-Cookie`` values (libsoup shows them).

    Raises:
        ValueError: ``level`` is not a :class:`LoggerLogLevel` or
            ``max_body_size`` is below -1.
    """

    chain_position: ClassVar[int | None] = SessionFeature.POSITION_LOGGER

    def __init__(
        self,
        level: LoggerLogLevel = LoggerLogLevel.HEADERS,
        max_body_size: int = -1,
        *,
        redact: bool = True,
    ) -> None:
        self._level = _level("level", level)
        self._max_body_size = _body_size(max_body_size)
        self._redact = bool(redact)
        self._printer: Printer | None = None
        self._printer_data: tuple[Any, ...] = ()
        self._request_filter: Filter | None = None
        self._request_filter_data: tuple[Any, ...] = ()
        self._response_filter: Filter | None = None
        self._response_filter_data: tuple[Any, ...] = ()
        self._quiet = self._level is NONE
        # libsoup's counters: objects are numbered from 1 per kind, for this logger.
        self._ids: WeakKeyDictionary[object, int] = WeakKeyDictionary()
        self._counts: dict[type, int] = {}

    @classmethod
    def new(cls, level: LoggerLogLevel, max_body_size: int = -1) -> Logger:
        """A logger at ``level`` (``soup_logger_new``)."""
        return cls(level, max_body_size)

    # -- properties --------------------------------------------------------------------

    @property
    def level(self) -> LoggerLogLevel:
        """How much is logged when no filter decides otherwise."""
        return self._level

    @level.setter
    def level(self, value: LoggerLogLevel) -> None:
        self._level = _level("level", value)
        self._update_quiet()

    @property
    def max_body_size(self) -> int:
        """The most bytes of a body shown at BODY level; -1 for all."""
        return self._max_body_size

    @max_body_size.setter
    def max_body_size(self, value: int) -> None:
        self._max_body_size = _body_size(value)

    @property
    def redact(self) -> bool:
        """Whether credentials and cookie values are replaced by ``[redacted]``."""
        return self._redact

    @redact.setter
    def redact(self, value: bool) -> None:
        self._redact = bool(value)

    def get_level(self) -> LoggerLogLevel:
        """Alias of :attr:`level`."""
        return self._level

    def set_level(self, level: LoggerLogLevel) -> None:
        """Set :attr:`level`."""
        self.level = level

    def get_max_body_size(self) -> int:
        """Alias of :attr:`max_body_size`."""
        return self._max_body_size

    def set_max_body_size(self, max_body_size: int) -> None:
        """Set :attr:`max_body_size`."""
        self.max_body_size = max_body_size

    def get_redact(self) -> bool:
        """Alias of :attr:`redact`."""
        return self._redact

    def set_redact(self, redact: bool) -> None:
        """Set :attr:`redact`."""
        self.redact = redact

    # -- callbacks ---------------------------------------------------------------------

    def set_printer(self, printer: Printer | None, *user_data: Any) -> None:
        """Send lines to ``printer(logger, level, direction, data, *user_data)``.

        ``direction`` is ``">"`` (request), ``"<"`` (response) or ``" "`` (the
        empty line that ends a block); ``data`` is one line without its
        newline; ``level`` is the :class:`LoggerLogLevel` the line belongs to.
        The printer must not block: it runs on the event loop. None restores
        the stdlib logger.
        """
        self._printer = printer
        self._printer_data = user_data

    def set_request_filter(self, request_filter: Filter | None, *user_data: Any) -> None:
        """Choose the level per request: ``request_filter(logger, msg, *user_data)``.

        It is asked once per attempt to send (each redirect hop), before the
        request is written, and before a :class:`~anysoup.Retry` note, and
        returns a :class:`LoggerLogLevel`. A failure
        of the request is shown at this level. None removes the filter.
        """
        self._request_filter = request_filter
        self._request_filter_data = user_data
        self._update_quiet()

    def set_response_filter(self, response_filter: Filter | None, *user_data: Any) -> None:
        """Choose the level per response: ``response_filter(logger, msg, *user_data)``.

        It is asked when a response's headers are in (``msg.status`` and
        ``msg.response_headers`` show them), so it may pick BODY by content
        type. None removes the filter.
        """
        self._response_filter = response_filter
        self._response_filter_data = user_data
        self._update_quiet()

    def _update_quiet(self) -> None:
        self._quiet = (
            self._level is NONE and self._request_filter is None and self._response_filter is None
        )

    # -- the chain stage ---------------------------------------------------------------

    async def handle(self, msg: Message, call_next: CallNext) -> InputStream:
        """Log one attempt to send ``msg``: the request, the response, or the failure."""
        if self._quiet or (self._printer is None and not _stdlib.isEnabledFor(logging.INFO)):
            return await call_next(msg)
        level = self._request_level(msg)
        attempt = None
        if level is not NONE:
            attempt = _Attempt(self, msg, level)
        elif self._response_filter is None and self._level is NONE:
            return await call_next(msg)
        try:
            stream = await call_next(msg)
        except BaseException as exc:
            if attempt is not None:
                attempt.failed(exc)
            raise
        finally:
            if attempt is not None:
                attempt.disconnect()
        try:
            if attempt is not None:
                attempt.flush()
                if not attempt.written:  # the cache answered: nothing went out
                    attempt.not_sent("not sent: answered by the cache")
            self._response(msg, stream)
        except BaseException:
            # A printer or a filter failed: the caller never gets the stream,
            # so its connection must not wait for the garbage collector.
            await anyio.aclose_forcefully(stream)
            raise
        return stream

    def _request_level(self, msg: Message) -> LoggerLogLevel:
        request_filter = self._request_filter
        if request_filter is None:
            return self._level
        result = request_filter(self, msg, *self._request_filter_data)
        return _level("request filter result", result)

    def _log_note(self, msg: Message, note: str) -> None:
        """Print a note about ``msg`` from an outer stage (a retry), at the request's level."""
        if self._quiet or (self._printer is None and not _stdlib.isEnabledFor(logging.INFO)):
            return
        level = self._request_level(msg)
        if level is not NONE:
            self._print(self._note(msg, note), level)

    def _response(self, msg: Message, stream: InputStream) -> None:
        level = self._response_level(msg)
        if level is NONE:
            return
        head = self._response_head(msg, level)
        if level < BODY:
            self._print([*head, SEPARATOR], level)
            head = []
            body = None
        else:
            body = BodyText(self._max_body_size, msg.response_headers)
        stream._filter(lambda source: _ResponseBodyLog(source, self, msg, head, body, level))

    def _response_level(self, msg: Message) -> LoggerLogLevel:
        response_filter = self._response_filter
        if response_filter is None:
            return self._level
        result = response_filter(self, msg, *self._response_filter_data)
        return _level("response filter result", result)

    # -- blocks ------------------------------------------------------------------------

    def _request_head(
        self, msg: Message, connection: str, pairs: list[tuple[str, str]]
    ) -> list[Line]:
        target = "*" if msg._options_ping else (msg.uri.raw_path_qs or "/")
        session = self.session
        owners = [self._describe(session)] if session is not None else []
        owners.append(self._describe(msg))
        owners.append(connection)
        if msg._restarts:
            owners.append("restarted")
        return [
            (MINIMAL, ">", f"{msg.method} {target} HTTP/{request_version(msg.http_version)}"),
            (MINIMAL, ">", f"Soup-Debug-Timestamp: {int(time.time())}"),
            (MINIMAL, ">", f"Soup-Debug: {', '.join(owners)}"),
            *header_lines(">", pairs, self._redact),
        ]

    def _response_head(self, msg: Message, level: LoggerLogLevel) -> list[Line]:
        status = f"HTTP/{VERSIONS[msg.http_version]} {msg.status} {msg.reason_phrase}"
        lines = [
            (MINIMAL, "<", status.rstrip()),
            (MINIMAL, "<", f"Soup-Debug-Timestamp: {int(time.time())}"),
            (MINIMAL, "<", f"Soup-Debug: {self._describe(msg)}"),
        ]
        if msg.cache_result in _FROM_CACHE:
            lines.append((MINIMAL, "<", f"Soup-Debug-Cache: {msg.cache_result.value}"))
        if level >= HEADERS:
            lines += header_lines("<", list(msg.response_headers), self._redact)
        return lines

    def _note(self, msg: Message, note: str) -> list[Line]:
        """A response-side block holding a note instead of a status line."""
        return [
            (MINIMAL, "<", f"[{note}]"),
            (MINIMAL, "<", f"Soup-Debug-Timestamp: {int(time.time())}"),
            (MINIMAL, "<", f"Soup-Debug: {self._describe(msg)}"),
            SEPARATOR,
        ]

    def _describe(self, obj: object) -> str:
        """``Message 3 (0x7f…)``: the kind, this logger's number for it, its address."""
        number = self._ids.get(obj)
        if number is None:
            kind = type(obj)
            number = self._ids[obj] = self._counts[kind] = self._counts.get(kind, 0) + 1
        return f"{type(obj).__name__} {number} ({id(obj):#x})"

    def _print(self, lines: list[Line], level: LoggerLogLevel) -> None:
        """Print the lines of one block up to ``level``, all at once."""
        printer = self._printer
        if printer is None:
            for line_level, direction, data in lines:
                # The empty line that ends a block only matters in a plain text stream.
                if line_level <= level and (data or direction != " "):
                    _stdlib.info("%s %s", direction, data)
            return
        for line_level, direction, data in lines:
            if line_level <= level:
                printer(self, line_level, direction, data, *self._printer_data)

    def __repr__(self) -> str:
        return (
            f"<anysoup.Logger level={self._level.name} max_body_size={self._max_body_size}"
            f"{'' if self._redact else ' redact=False'}>"
        )


class _Attempt:
    """The request side of one pass through the logger, hooked on the message's signals.

    The core may write the request more than once in one pass (a re-send on
    a new connection): each write is logged, the previous one with a note.
    """

    __slots__ = (
        "_body",
        "_continue",
        "_handlers",
        "_head",
        "_level",
        "_logger",
        "_msg",
        "_new_connection",
        "_streamed",
        "logged",
        "written",
    )

    def __init__(self, logger: Logger, msg: Message, level: LoggerLogLevel) -> None:
        self._logger = logger
        self._msg = msg
        self._level = level
        body = msg._body
        has_body = body is not None and body.length != 0
        self._streamed = has_body and body is not None and body.data is None
        self._continue = has_body and msg.request_headers.header_contains("Expect", "100-continue")
        self._new_connection = False
        self._head: list[Line] | None = None  # written, not yet printed (waits for the body)
        self._body: BodyText | None = None
        #: The current write of the request was printed / written.
        self.logged = self.written = False
        handlers: list[tuple[Signal, Callable[..., None]]] = [
            (msg.network_event, self._on_network_event),
            (msg.wrote_headers, self._on_wrote_headers),
            (msg.got_informational, self._on_got_informational),
        ]
        if self._continue or (self._streamed and level >= BODY):
            handlers.append((msg.wrote_body, self._on_wrote_body))
        if self._streamed and level >= BODY:
            handlers.append((msg.wrote_body_data, self._on_wrote_body_data))
        self._handlers = [(signal, signal.connect(handler)) for signal, handler in handlers]

    def disconnect(self) -> None:
        for signal, handler_id in self._handlers:
            signal.disconnect(handler_id)

    def _print(self, lines: list[Line]) -> None:
        self._logger._print(lines, self._level)

    # -- signal handlers ---------------------------------------------------------------

    def _on_network_event(self, msg: Message, event: object, connection: object) -> None:
        self._new_connection = True

    def _on_wrote_headers(self, msg: Message) -> None:
        if self.written:  # the core writes again: the last write got no response
            self.flush()
            self._print(self._logger._note(msg, "no response; the request is sent again"))
        self.written = True
        self.logged = False
        kind = "new" if self._new_connection else "reused"
        self._new_connection = False
        connection = f"{kind} connection to {address_text(msg.remote_address)}"
        self._begin(connection)

    def _begin(self, connection: str) -> None:
        msg = self._msg
        head = self._logger._request_head(msg, connection, self._wire_headers())
        level = self._level
        body = msg._body
        if level >= BODY and body is not None and body.length != 0:
            self._body = BodyText(self._logger._max_body_size, msg.request_headers)
            if body.data is not None:
                self._body.feed(body.data)
            if self._streamed and not self._continue:
                self._head = head  # printed with the body once it is written
                return
            if not self._continue:
                head += self._body.lines(">", complete=True)
        self._print([*head, SEPARATOR])
        self.logged = True

    def _wire_headers(self) -> list[tuple[str, str]]:
        msg = self._msg
        headers = msg.request_headers
        pairs = list(headers)
        if msg.http_version is HTTPVersion.HTTP_2_0:
            # No Host: it went as ``:authority``; libsoup removes it from the
            # message on HTTP/2 (soup_message_update_request_host_if_needed).
            return http2_fields(pairs)
        if "Host" not in headers:  # the core sends it first (core._wire_headers)
            pairs.insert(0, ("Host", host_header(msg.uri)))
        return pairs

    def _on_wrote_body_data(self, msg: Message, chunk: bytes) -> None:
        if self._body is not None and msg._body is not None and msg._body.data is None:
            self._body.feed(chunk)

    def _on_wrote_body(self, msg: Message) -> None:
        if self._head is not None:
            self.flush(complete=True)
        elif self._continue and self.logged:
            lines: list[Line] = [(MINIMAL, ">", "[Now sending request body...]")]
            if self._body is not None:
                lines += self._body.lines(">", complete=True)[1:]  # no blank line after the note
            self._print([*lines, SEPARATOR])

    def _on_got_informational(self, msg: Message) -> None:
        self.flush()
        logger = self._logger
        level = logger._response_level(msg)
        if level is not NONE:
            logger._print([*logger._response_head(msg, level), SEPARATOR], level)

    # -- the end of the pass -----------------------------------------------------------

    def flush(self, *, complete: bool = False) -> None:
        """Print a request still waiting for its body, with what was written of it."""
        head, self._head = self._head, None
        if head is None:
            return
        if self._body is not None:
            head += self._body.lines(">", complete=complete)
        self._print([*head, SEPARATOR])
        self.logged = True

    def not_sent(self, why: str) -> None:
        """The pass ended without a write (a cached answer): show the request as it stood."""
        self._body = None
        self._streamed = self._continue = False
        self._begin(why)

    def failed(self, exc: BaseException) -> None:
        """The pass ended in ``exc``: show the request if it never was, then why."""
        self.disconnect()
        self._handlers = []
        self.flush()
        if not self.written:
            self._body = None
            self._streamed = self._continue = False
            self._begin("not sent")
        note = failure_note(exc, anyio.get_cancelled_exc_class())
        self._print(self._logger._note(self._msg, f"request {note}"))


class _ResponseBodyLog:
    """A body source filter: at the end of the body, what the response block still owes.

    At BODY level it collects the bytes read and prints the whole block; at
    every level it adds a note when the connection was not kept for the next
    request for a reason the program should know (bytes past the response).
    """

    __slots__ = ("_body", "_head", "_level", "_logger", "_msg", "_source")

    def __init__(
        self,
        source: BodySource,
        logger: Logger,
        msg: Message,
        head: list[Line],
        body: BodyText | None,
        level: LoggerLogLevel,
    ) -> None:
        self._source = source
        self._logger = logger
        self._msg = msg
        self._head: list[Line] | None = head
        self._body = body
        self._level = level

    async def receive_chunk(self) -> bytes | None:
        try:
            chunk = await self._source.receive_chunk()
        except BaseException as exc:
            self._finish(failure_note(exc, anyio.get_cancelled_exc_class()))
            raise
        if chunk is None:
            self._finish(None)
        elif self._body is not None:
            self._body.feed(chunk)
        return chunk

    async def close(self, *, drain: bool) -> None:
        try:
            await self._source.close(drain=drain)
        finally:
            self._finish(f"closed before the end, {self._size} bytes read")

    def discard(self) -> None:
        self._source.discard()
        self._finish(f"never closed, {self._size} bytes read")

    @property
    def _size(self) -> int:
        return self._body.size if self._body is not None else 0

    def _finish(self, note: str | None) -> None:
        head, self._head = self._head, None
        if head is None:
            return
        body = self._body
        if body is not None:
            lines = head + body.lines("<", complete=note is None)
            if note is not None:
                if not body.size:
                    lines.append((BODY, "<", ""))
                lines.append((BODY, "<", f"[{note}]"))
            self._logger._print([*lines, SEPARATOR], BODY)
        connection_note = self._msg._connection_note
        if connection_note is not None:
            self._logger._print(self._logger._note(self._msg, connection_note), self._level)


def _level(what: str, value: object) -> LoggerLogLevel:
    if isinstance(value, LoggerLogLevel):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        with contextlib.suppress(ValueError):
            return LoggerLogLevel(value)
    raise ValueError(f"{what}: {value!r} is not a LoggerLogLevel")


def _body_size(value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < -1:
        raise ValueError(f"max_body_size: {value!r} is not -1 (no limit) or a size in bytes")
    return value
