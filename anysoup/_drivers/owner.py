"""What a driver needs of the connection it runs on (the pool's record, seen from below).

A driver is handed its connection's owner instead of importing the pool:
it stores I/O deadlines there for the sweeper, reads why the pool closed the
connection, and closes it when the protocol fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from .._model.exceptions import Error, NetworkError, RequestCancelled, TimeoutError

if TYPE_CHECKING:
    from anyio.abc import ByteStream

    from .._transport.connect import ConnectPlan

__all__ = ["ConnectionOwner", "MultiplexOwner", "closed_by_pool"]


class ConnectionOwner(Protocol):
    """The pool's connection, as the drivers use it."""

    #: When the current read or write stalls too long (``time.monotonic``;
    #: ``math.inf`` while none is under way). The pool's sweeper enforces it.
    io_deadline: float
    #: Why the pool closed the connection ("session closed", ...), or None.
    close_reason: str | None
    #: The stream, once connected.
    stream: ByteStream | None

    @property
    def plan(self) -> ConnectPlan:
        """How the connection was made (host, TLS, client identity)."""

    def close(self, reason: str | None = None) -> None:
        """Close the connection (synchronously; its task closes the socket)."""


class MultiplexOwner(ConnectionOwner, Protocol):
    """The pool's connection, as the HTTP/2 driver uses it."""

    def set_max_streams(self, limit: int) -> None:
        """The peer's ``SETTINGS_MAX_CONCURRENT_STREAMS``: lend no more streams at once."""

    def drain(self) -> None:
        """Lend no new stream (GOAWAY); close the connection when its last stream ends."""


def closed_by_pool(reason: str | None, where: str, timeout: float) -> Error | None:
    """The error of an exchange whose connection the pool closed for ``reason``.

    ``where`` names the phase, direction and host (and stream). None when the
    pool gave no reason: the I/O error itself says what happened.
    """
    if reason == "timeout":
        return TimeoutError(f"{where}: no progress for {timeout:g} s")
    if reason == "abort":
        return RequestCancelled(f"{where}: the session was aborted")
    if reason == "session closed":
        return NetworkError(f"{where}: the session is closed")
    return None
