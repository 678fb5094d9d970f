"""Blocking calls: :class:`Session` for code that isn't async (libsoup's sync API).

Theory of operation
-------------------

A blocking :class:`Session` starts an event loop (asyncio or trio) in a
daemon thread of its own and runs an :class:`anysoup.Session` there for its
whole life. Each blocking call is the async call run on that loop
(:class:`~anysoup._blocking.loop.LoopThread`), the calling thread waiting
for its outcome; so every feature, setting and fix of the async session
applies as it is, and any number of threads may send through one session,
sharing its connections. What runs where:

* on the loop thread: the whole exchange (connections, features, timeouts),
  signal handlers (``request_queued``, a message's ``got_headers``, …; a
  coroutine handler is awaited there), and property changes;
* on the calling thread: the wait, the copy of the body into the caller's
  file (``send_and_splice``), reading settings.

A blocking call from the loop's own thread or from inside any running event
loop would wait for itself or stall its loop: it raises ``RuntimeError``.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, cast

from ._blocking.loop import LoopThread
from ._blocking.requests import BlockingRequestHelpers
from ._blocking.streams import ResponseBody, WebsocketConnection
from ._model.cancellable import Cancellable
from ._model.enums import SpliceFlags
from ._model.message import Message
from ._pool.state_policy import PoolStatistics
from ._session.props import SessionProperties, _Props
from ._session.session import Session as AsyncSession

if TYPE_CHECKING:
    from yarl import URL

__all__ = ["ResponseBody", "Session", "WebsocketConnection"]

#: The settings written on the loop thread (the pool's limits wake waiters).
_PROPERTIES = frozenset((*SessionProperties._PROPERTIES, "http2", "base_url"))
#: Methods of the async session that change it: run on the loop thread.
_ON_LOOP = frozenset(
    {f"set_{name}" for name in _PROPERTIES}
    | {"add_feature", "add_feature_by_type", "remove_feature", "remove_feature_by_type"}
)
_BACKENDS = ("asyncio", "trio")
# Reprs, tracebacks and docs say anysoup.blocking.X.
ResponseBody.__module__ = WebsocketConnection.__module__ = __name__
_COUNT = iter(range(1, 1 << 62))


class Session(BlockingRequestHelpers):
    """A session whose calls block: send from plain functions and from many threads.

    ``with anysoup.blocking.Session() as session:`` (or call :meth:`close`).
    The keywords are :class:`anysoup.Session`'s; so are the properties
    (``session.timeout = 10``), their ``get_``/``set_`` aliases, ``props``,
    the features (``session.add_feature(anysoup.CookieJar())``) and the
    signals, which belong to the async session running on the loop thread
    (:attr:`async_session`): their handlers run there. The request helpers
    (:meth:`get`, :meth:`post`, … :doc:`/requests`) are blocking methods of
    its own.

    Args:
        backend: The event loop to run: ``"asyncio"`` or ``"trio"``.
        **keywords: As :class:`anysoup.Session` (``timeout``,
            ``max_conns``, ``features``, …).

    Raises:
        ValueError: An unknown backend, or a keyword's value is wrong.
        TypeError: A keyword :class:`anysoup.Session` doesn't take.
    """

    def __init__(self, *, backend: str = "asyncio", **keywords: Any) -> None:
        if backend not in _BACKENDS:
            raise ValueError(f"backend: expected 'asyncio' or 'trio', got {backend!r}")
        session = AsyncSession(**keywords)
        object.__setattr__(self, "_session", session)
        name = f"anysoup blocking session {next(_COUNT)} ({backend})"
        object.__setattr__(self, "_loop", LoopThread(backend, session, name))
        object.__setattr__(self, "_closed", False)

    _session: AsyncSession
    _loop: LoopThread
    _closed: bool

    @property
    def async_session(self) -> AsyncSession:
        """The :class:`anysoup.Session` on the loop thread (for signal handlers' eyes)."""
        return self._session

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the session: calls still running raise RequestCancelled, connections close.

        Persistent features (cookie jars, HSTS stores) finish their writes
        before it returns. Closing twice does nothing.
        """
        if self._closed:
            return
        object.__setattr__(self, "_closed", True)
        if threading.get_ident() == self._loop.ident:
            raise RuntimeError("close() from the session's own loop thread would wait for itself")
        self._loop.stop()

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_closed", True):
            return
        self._loop.stop(wait=False)
        warnings.warn(
            f"{self!r} was never closed; use 'with' or call close()",
            ResourceWarning,
            stacklevel=1,
            source=self,
        )

    def abort(self) -> None:
        """Cancel every pending call and close idle connections (RequestCancelled)."""
        self._loop.call_sync(self._session.abort)

    def statistics(self) -> PoolStatistics:
        """The connection pool's counters, read on the loop thread."""
        return self._loop.call_sync(self._session.statistics)

    # -- sending ---------------------------------------------------------------------------

    def send(self, msg: Message, cancellable: Cancellable | None = None) -> ResponseBody:
        """Send ``msg``; return its body as a readable binary file once the headers are in.

        ``with session.send(msg) as body:`` — ``msg.status`` and
        ``msg.response_headers`` are set by then; HTTP error statuses are not
        errors. Close the body (or read it to the end) to give the connection
        back. ``cancellable`` covers reading the body too.

        Raises:
            anysoup.Error: As :meth:`anysoup.Session.send`.
            RuntimeError: Called from inside an event loop, or the session is closed.
        """
        stream = self._loop.call(self._session._send, msg, cancellable)
        return ResponseBody(self._loop, stream, cancellable)

    def send_and_read(
        self,
        msg: Message,
        cancellable: Cancellable | None = None,
        max_size: int | None = None,
    ) -> bytes:
        """Send ``msg`` and return its whole response body (decoded).

        Raises:
            anysoup.BodyTooLarge: The body is over ``max_size`` bytes.
            anysoup.Error: As :meth:`anysoup.Session.send_and_read`.
        """
        return self._loop.call(self._send_and_read, msg, cancellable, max_size)

    async def _send_and_read(
        self, msg: Message, cancellable: Cancellable | None, max_size: int | None
    ) -> bytes:
        return await self._session.send_and_read(msg, cancellable=cancellable, max_size=max_size)

    def _base_url(self) -> URL | None:
        return self._session.base_url

    def send_and_splice(
        self,
        msg: Message,
        out_stream: IO[bytes] | Any,
        flags: SpliceFlags = SpliceFlags.NONE,
        cancellable: Cancellable | None = None,
    ) -> int:
        """Send ``msg`` and write its body to ``out_stream``; return the bytes written.

        ``out_stream`` is any object with ``write(bytes)`` (a binary file, a
        socket file, ``io.BytesIO``), written on the calling thread. With
        ``SpliceFlags.CLOSE_TARGET`` it is closed at the end. ``cancellable``
        covers the whole call.
        """
        total = 0
        try:
            with self.send(msg, cancellable) as body:
                while chunk := body.read1():
                    out_stream.write(chunk)
                    total += len(chunk)
        finally:
            if flags & SpliceFlags.CLOSE_TARGET:
                out_stream.close()
        return total

    def preconnect(self, msg: Message, cancellable: Cancellable | None = None) -> None:
        """Open a connection for ``msg``'s host ahead of time.

        As :meth:`anysoup.Session.preconnect`: returns once the connection is
        open (or at once if an idle one exists).
        """
        self._loop.call(self._preconnect, msg, cancellable)

    async def _preconnect(self, msg: Message, cancellable: Cancellable | None) -> None:
        await self._session.preconnect(msg, cancellable=cancellable)

    def websocket_connect(
        self,
        msg: Message,
        origin: str | None = None,
        protocols: Sequence[str] | None = None,
        cancellable: Cancellable | None = None,
    ) -> WebsocketConnection:
        """Open a WebSocket with the handshake ``msg``; ``with`` closes it.

        Raises:
            WebsocketError: As :meth:`anysoup.Session.websocket_connect`.
        """
        ws = self._loop.call(self._websocket_connect, msg, origin, protocols, cancellable)
        return WebsocketConnection(self._loop, ws)

    async def _websocket_connect(
        self,
        msg: Message,
        origin: str | None,
        protocols: Sequence[str] | None,
        cancellable: Cancellable | None,
    ) -> Any:
        return await self._session.websocket_connect(
            msg, origin, protocols, cancellable=cancellable
        )

    # -- properties, features, signals: the async session's --------------------------------

    @property
    def props(self) -> SessionProperties:
        """The properties by name (``session.props.max_conns = 4``), set on the loop thread."""
        return cast("SessionProperties", _Props(cast("SessionProperties", self)))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(f"'anysoup.blocking.Session' object has no attribute {name!r}")
        try:
            value = getattr(self._session, name)
        except AttributeError:
            raise AttributeError(
                f"'anysoup.blocking.Session' object has no attribute {name!r}"
            ) from None
        if name in _ON_LOOP:
            loop = self._loop

            def on_loop(*args: Any) -> Any:
                return loop.call_sync(value, *args)

            on_loop.__name__ = on_loop.__qualname__ = name
            on_loop.__doc__ = value.__doc__
            return on_loop
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _PROPERTIES:
            self._loop.call_sync(setattr, self._session, name, value)
        else:
            object.__setattr__(self, name, value)

    def __dir__(self) -> list[str]:
        own = set(super().__dir__())
        return sorted(own | {n for n in dir(self._session) if not n.startswith("_")})

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<anysoup.blocking.Session {state} {self._session._pool!r}>"
