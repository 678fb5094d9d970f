"""The command's standard streams: whatever becomes of them, the exit status holds.

Writing to stderr never fails the command: a closed stderr, or a pipe whose
reader went away (``anysoup URL 2>&1 | true``), loses the text but leaves
the exit status alone (:func:`say`), and Python's flush at exit is kept
from failing again (:func:`settle`). Failing to write the body to stdout is
the command's own failure (curl's 23).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from typing import IO, TextIO

__all__ = ["say", "settle", "stdout_bytes"]


def say(stream: TextIO | None, text: str) -> bool:
    """Write ``text`` to ``stream`` (stderr) and flush it; return False if that failed.

    Text meant for people is lost when its stream is gone (closed, or a pipe
    whose reader left): the command goes on, and its exit status stays the
    one its request earned. Python would leave the unwritten text buffered
    and fail again when it flushes at exit; :func:`settle` sees to that.
    """
    if stream is None:  # started with the descriptor closed
        return False
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):  # ValueError: the file object was closed
        return False
    return True


def settle(stream: IO[str] | None) -> None:
    """Flush ``stream`` before the command exits; if that fails, send the rest to /dev/null.

    Python flushes stdout and stderr when it exits and, when that fails,
    prints "Exception ignored …" and exits 120 instead of the command's
    status (the ``SIGPIPE`` note of the :mod:`signal` docs). Pointing the
    descriptor at /dev/null lets that last flush succeed. Only called at the
    end, when the session and its sockets are closed: the descriptor can be
    nothing of ours by then.
    """
    if stream is None:
        return
    try:
        stream.flush()
    except (OSError, ValueError):
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, stream.fileno())
            finally:
                os.close(devnull)
            stream.flush()


def stdout_bytes() -> IO[bytes]:
    """Standard output for bytes.

    Raises:
        OSError: The command was started with stdout closed (``>&-``).
    """
    out: IO[bytes] | None = getattr(sys.stdout, "buffer", None)
    if out is None:
        raise OSError(errno.EBADF, "standard output is closed")
    return out
