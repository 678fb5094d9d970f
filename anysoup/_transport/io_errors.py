"""What a failed connect, read or write means, in words (one describer for every driver).

The transport, the proxy tunnels and every driver catch :data:`IO_ERRORS`
and say why with :func:`describe_io_error`, so a reset reads the same
wherever it happened.
"""

from __future__ import annotations

import socket
import ssl

import anyio

__all__ = ["IO_ERRORS", "describe_io_error"]

#: What a stream's send or receive raises when the connection fails (every
#: driver catches these and says why with :func:`describe_io_error`).
IO_ERRORS = (
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    OSError,
    ssl.SSLError,
)


def describe_io_error(exc: BaseException) -> str:
    """A short human cause for a failed connect, read or write.

    Looks through anyio's wrappers (``BrokenResourceError``, the errno-less
    ``OSError("All connection attempts failed")``, exception groups) to the
    cause the operating system gave.
    """
    if isinstance(exc, socket.gaierror):
        return exc.strerror.lower() if exc.strerror else str(exc)
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, BrokenPipeError):
        return "the peer closed the connection (broken pipe)"
    group = getattr(exc, "exceptions", None)
    if isinstance(group, tuple) and group:
        return "; ".join(describe_io_error(inner) for inner in group)
    cause = exc.__cause__
    wrapper = isinstance(exc, anyio.BrokenResourceError) or (
        isinstance(exc, OSError) and exc.errno is None
    )
    if cause is not None and cause is not exc and wrapper:
        return describe_io_error(cause)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    if isinstance(exc, anyio.ClosedResourceError):
        return "the connection was closed"
    if isinstance(exc, anyio.BrokenResourceError):
        return "the connection broke"
    return str(exc) or type(exc).__name__
