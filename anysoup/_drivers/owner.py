"""What a driver needs of the connection it runs on (the pool's record, seen from below).

A driver is handed its connection's owner instead of importing the pool:
it stores I/O deadlines there for the sweeper, reads why the pool closed the
connection, and closes it when the protocol fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from anyio.abc import ByteStream

    from .._transport.connect import ConnectPlan

__all__ = ["ConnectionOwner", "MultiplexOwner"]


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
