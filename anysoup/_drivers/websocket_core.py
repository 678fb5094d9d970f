"""The state a WebSocket's parts share, its write path and its keepalive.

:class:`WebsocketCore` is the base of :class:`~anysoup.WebsocketConnection`
(``websocket.py``: the program's side) through ``WebsocketReader``
(``websocket_reader.py``: the reader). It holds what both sides see (the
state, the close code, the failure, wsproto, the stream, the inbox) and the
one way frames go out.

Writes come from the program's tasks and from the reader (pongs, the close
reply); a lock keeps frames whole and in the order wsproto made them (the
order matters to permessage-deflate's shared window). A write cancelled
midway may have put part of a frame on the wire, so it closes the connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
from wsproto.connection import ConnectionState
from wsproto.events import Event, Ping
from wsproto.utilities import LocalProtocolError

from .._model.enums import WebsocketCloseCode, WebsocketState
from .._model.exceptions import WebsocketClosed, WebsocketError
from .._model.signals import active
from .._transport.io_errors import IO_ERRORS, describe_io_error
from .websocket_inbox import Inbox, Protocol

if TYPE_CHECKING:
    from anyio.abc import ByteStream, TaskGroup
    from yarl import URL

    from .._model.websocket_extension import WebsocketExtension
    from .owner import ConnectionOwner

__all__ = [
    "CLOSE_TIMEOUT",
    "DEFAULT_MAX_PAYLOAD",
    "GOODBYE_TIMEOUT",
    "READ_SIZE",
    "STAND_BY",
    "WebsocketCore",
    "code_text",
    "truncate",
]

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
NOBODY, TASK, CALLER = 0, 1, 2
_OPEN = WebsocketState.OPEN
_CLOSED = WebsocketState.CLOSED


class WebsocketCore:
    """What every part of a WebSocket client connection shares (see the module)."""

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
        self._owner = NOBODY
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

    def _update_limit(self) -> None:
        limits = [n for n in (self._max_payload, self._max_total) if n > 0]
        self._limit = min(limits) if limits else 0
        for extension in self._extensions:
            extension.max_message_size = self._limit

    # -- writing ---------------------------------------------------------------------------

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

    # -- how it ended ----------------------------------------------------------------------

    def _closed_error(self, phase: str) -> WebsocketClosed:
        code = self._close_code or WebsocketCloseCode.ABNORMAL
        reason = self._close_data
        if self._failure is not None:
            text = str(self._failure)
        elif self._state is _CLOSED:
            text = f"{phase}: the WebSocket to {self._label} is closed ({code_text(code)})"
        else:
            text = f"{phase}: the WebSocket to {self._label} is closing"
        error = WebsocketClosed(text, code=_code(code), reason=reason)
        error.__cause__ = self._failure
        return error

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

    # -- signals and keepalive -------------------------------------------------------------

    async def _emit(self, name: str, *args: object) -> None:
        signal = active(self, name)
        if signal is not None:
            await signal.emit(*args)

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


def _code(code: int) -> int:
    try:
        return WebsocketCloseCode(code)
    except ValueError:
        return code


def code_text(code: int) -> str:
    """``1002 PROTOCOL_ERROR`` for a known code, the number alone otherwise."""
    named = _code(code)
    return f"{code} {named.name}" if isinstance(named, WebsocketCloseCode) else str(code)


def truncate(reason: str) -> str:
    """A close reason that fits a control frame (123 bytes of UTF-8)."""
    data = reason.encode("utf-8")[:123]
    return data.decode("utf-8", "ignore")
