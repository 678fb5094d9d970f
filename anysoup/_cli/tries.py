"""The command's time limits (``--max-time``, ``--connect-timeout``) and tries (``--retry``).

Theory of operation: each try runs inside :func:`time_limits`, two cancel
scopes. ``--max-time`` is a deadline for the whole try, body included;
``--connect-timeout`` is a deadline that is set when a hop begins (the try
starts, or the message is re-sent for a redirect or an auth retry) and
lifted as soon as the hop has its connection: when the message hears of the
new connection (its ``network_event``, told once the connection is ready)
or writes its request on an open one (``wrote_headers``). Either deadline
passing ends the try as curl's timeout, exit 28.

:func:`with_retries` runs the tries: after a transient failure (a timeout,
a failed connection, or a 408, 429, 500, 502, 503 or 504 answer) it waits
and tries again, ``--retry`` times at most. The wait is curl's: 1 second,
doubling up to 10 minutes, or ``--retry-delay`` seconds each time; a
``Retry-After`` in the answer (RFC 9110 §10.2.3) sets it instead. The
answer of a try that is retried is dropped unwritten; the last try's is
the command's, whatever it is.

The loop is the command's own, not the :class:`~anysoup.Retry` feature:
curl's rules differ from the library's on purpose (curl retries timeouts
and a 408 or 500, waits without jitter, takes ``--retry-delay``, and never
tries again once the body has begun going to stdout). The reading of
``Retry-After`` is the feature's (``retry_policy.parse_retry_after``).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING

import anyio

from .._features.retry.retry_policy import parse_retry_after
from .._model.exceptions import ConnectError, TimeoutError
from .options import Options
from .status import EXIT_TIMEOUT, Failure

if TYPE_CHECKING:
    from .._model.message import Message

__all__ = ["RETRY_STATUSES", "RetryStatus", "time_limits", "with_retries"]

#: The answers curl's ``--retry`` calls transient.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: curl's longest wait between tries.
_MAX_DELAY = 600.0


class RetryStatus(Exception):
    """A try got a transient answer (:data:`RETRY_STATUSES`) and more tries are left."""

    def __init__(self, msg: Message) -> None:
        super().__init__(f"{msg.method} to {msg.uri.host}:{msg.uri.port}: answered {msg.status}")
        #: Seconds the server asked to wait (``Retry-After``), or None.
        self.retry_after = _retry_after(msg.response_headers.get_one("Retry-After"))


@contextlib.contextmanager
def time_limits(msg: Message, options: Options) -> Iterator[None]:
    """Run one try of ``msg`` within ``--max-time`` and ``--connect-timeout``.

    Raises:
        Failure: A limit passed (exit 28).
    """
    with anyio.CancelScope() as whole, anyio.CancelScope() as connecting:
        if options.max_time is not None:
            whole.deadline = anyio.current_time() + options.max_time
        if options.connect_timeout is not None:
            _limit_connects(msg, connecting, options.connect_timeout)
        yield
    if connecting.cancelled_caught:
        uri = msg.uri
        raise Failure(
            EXIT_TIMEOUT,
            f"connect to {uri.host}:{uri.port}: timed out after "
            f"{options.connect_timeout:g} s (--connect-timeout)",
        )
    if whole.cancelled_caught:
        raise Failure(
            EXIT_TIMEOUT,
            f"{msg.method} to {msg.uri.host}:{msg.uri.port}: timed out after "
            f"{options.max_time:g} s (--max-time)",
        )


def _limit_connects(msg: Message, scope: anyio.CancelScope, limit: float) -> None:
    """Give each hop of ``msg`` ``limit`` seconds until it has a connection."""

    def hop_begins(msg: Message) -> None:
        scope.deadline = anyio.current_time() + limit

    def connected(msg: Message, *args: object) -> None:
        scope.deadline = math.inf

    hop_begins(msg)
    msg.restarted.connect(hop_begins)
    msg.network_event.connect(connected)
    msg.wrote_headers.connect(connected)


async def with_retries(
    options: Options,
    attempt: Callable[[bool], Awaitable[int]],
    began_output: Callable[[], bool],
    warn: Callable[[str], None],
) -> int:
    """Call ``attempt(last)`` until it succeeds, fails for good, or no tries are left.

    ``last`` tells the try whether it is the last one: only a try that is
    not raises :class:`RetryStatus` for a transient answer.

    Args:
        options: ``--retry`` and ``--retry-delay``.
        attempt: One try; returns the exit status.
        began_output: Whether a try has begun writing the body to stdout:
            then a failure is final (a second copy would follow the first).
        warn: Says each retry (``-s`` silences it).
    """
    delay = options.retry_delay if options.retry_delay is not None else 1.0
    for left in range(options.retry, -1, -1):
        try:
            return await attempt(left == 0)
        except (RetryStatus, ConnectError, TimeoutError, Failure) as exc:
            if left == 0 or not _transient(exc) or began_output():
                raise
            wait = delay
            if isinstance(exc, RetryStatus) and exc.retry_after is not None:
                wait = exc.retry_after
            warn(
                f"anysoup: {exc}: trying again in {wait:g} s "
                f"({left} {'try' if left == 1 else 'tries'} left)\n"
            )
            await anyio.sleep(wait)
            if options.retry_delay is None:
                delay = min(delay * 2, _MAX_DELAY)
    raise AssertionError("unreachable: the last try returns or raises")


def _transient(exc: Exception) -> bool:
    """Whether ``exc`` is transient for curl: a timeout, a failed connection, such an answer."""
    if isinstance(exc, Failure):
        return exc.status == EXIT_TIMEOUT  # --max-time, --connect-timeout
    return isinstance(exc, (RetryStatus, ConnectError, TimeoutError))


def _retry_after(value: str | None) -> float | None:
    """``Retry-After``'s wait in seconds (delay-seconds or an HTTP-date), capped; or None."""
    wait = parse_retry_after(value, time.time())
    return None if wait is None else min(wait, _MAX_DELAY)
