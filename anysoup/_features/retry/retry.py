"""Retry: sends a message again after a connect error, a reset or a "not now" status.

Theory of operation: the feature is a chain stage at
:attr:`SessionFeature.POSITION_RETRY` (150): inside the redirect stage and
HSTS, outside the cache, the sniffer, the decoder, auth, cookies and the
logger. So each redirect hop is retried on its own, after HSTS upgraded it
once; and each retry passes again through the cache (which may answer
it), auth (which authenticates it), cookies (chosen and stored per
attempt) and the logger (which logs every attempt). The stages outside see
one exchange.

For each attempt it sends the message through the rest of the chain; on a
failure or a status, :mod:`.retry_policy` says whether to retry and how
long to wait. A retry then:

1. counts against the message's 20 re-sends, shared with redirects and
   auth (``check_resend``: the 21st raises ``TooManyRestarts``);
2. closes the answer's body (``InputStream.aclose`` drains a small rest so
   the connection is kept, else closes the connection);
3. prints a note through the session's :class:`~anysoup.Logger`, if any;
4. waits, with a plain ``await``: the caller's cancel scopes, a
   :class:`~anysoup.Cancellable` and ``Session.abort()`` cancel the wait
   like any other;
5. emits ``restarted`` (its handlers see the answer that caused it), forgets
   that answer and sends again.

When the retries are used up, the last answer is returned, or the last
error raised: a retry never hides what happened.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, ClassVar

import anyio

from ..._model.arguments import seconds
from ..._model.exceptions import Error
from ..._model.public import public
from ..._model.resends import check_resend, forget_response
from ..._model.signals import active
from ..feature import SessionFeature
from ..logger.logger import Logger
from .retry_policy import (
    DEFAULT_STATUSES,
    check_methods,
    check_statuses,
    method_allowed,
    parse_retry_after,
    retry_delay,
    should_retry_error,
)

if TYPE_CHECKING:
    from ..._model.body import InputStream
    from ..._model.message import Message
    from ..feature import CallNext

__all__ = ["Retry"]


@public
class Retry(SessionFeature):
    """Retries failed requests with exponential backoff (not a default feature).

    ``Session(features=[anysoup.Retry()])``. A connect error is retried for
    any method (nothing was sent); a connection reset before the response
    and the ``statuses`` only for ``methods`` or a message flagged
    :attr:`MessageFlags.IDEMPOTENT`. Timeouts, TLS and parsing errors are
    not retried. See :doc:`/retries`.

    Args:
        total: The most retries per message (0: none), within the 20
            re-sends a message has in all.
        statuses: The statuses retried (400 to 599).
        methods: The methods retried after a status or a reset; None: the
            idempotent ones (GET, HEAD, OPTIONS, PROPFIND, TRACE, PUT, DELETE).
        backoff_factor: Seconds: retry ``n`` (from 0) waits a random time
            up to ``backoff_factor * 2**n`` (full jitter).
        backoff_max: The longest wait in seconds. A ``Retry-After`` asking
            for more ends the retries: the answer is returned.
        respect_retry_after: Wait as ``Retry-After`` asks (seconds or an
            HTTP-date) instead of the backoff.

    Raises:
        ValueError: An argument out of range.
        TypeError: ``statuses`` or ``methods`` is a string.
    """

    chain_position: ClassVar[int | None] = SessionFeature.POSITION_RETRY

    def __init__(
        self,
        total: int = 3,
        statuses: Iterable[int] = DEFAULT_STATUSES,
        methods: Iterable[str] | None = None,
        backoff_factor: float = 0.5,
        backoff_max: float = 30,
        respect_retry_after: bool = True,
    ) -> None:
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise ValueError(f"total: {total!r} is not a number of retries >= 0")
        self._total = total
        self._statuses = check_statuses(statuses)
        self._methods = check_methods(methods)
        self._backoff_factor = seconds("backoff_factor", backoff_factor)
        self._backoff_max = seconds("backoff_max", backoff_max)
        self._respect_retry_after = bool(respect_retry_after)
        # Injectable for tests: the wait, the jitter and the clock for HTTP-dates.
        self._sleep: Callable[[float], Awaitable[None]] = anyio.sleep
        self._uniform: Callable[[float, float], float] = random.uniform
        self._clock: Callable[[], float] = time.time

    # -- settings (read-only: make a new Retry to change them) -------------------------

    @property
    def total(self) -> int:
        """The most retries per message."""
        return self._total

    @property
    def statuses(self) -> frozenset[int]:
        """The statuses retried."""
        return self._statuses

    @property
    def methods(self) -> frozenset[str]:
        """The methods retried after a status or a reset."""
        return self._methods

    @property
    def backoff_factor(self) -> float:
        """The backoff's base in seconds."""
        return self._backoff_factor

    @property
    def backoff_max(self) -> float:
        """The longest wait in seconds."""
        return self._backoff_max

    @property
    def respect_retry_after(self) -> bool:
        """Whether ``Retry-After`` sets the wait."""
        return self._respect_retry_after

    # -- the stage -------------------------------------------------------------------

    async def handle(self, msg: Message, call_next: CallNext) -> InputStream:
        """Send ``msg``; send it again after a retryable failure or status, while allowed."""
        reload = msg._reload
        try:
            return await self._tries(msg, call_next)
        finally:
            msg._reload = reload

    async def _tries(self, msg: Message, call_next: CallNext) -> InputStream:
        retries = 0
        while True:
            try:
                stream = await call_next(msg)
            except Error as exc:
                delay = self._after_error(msg, exc, retries)
                if delay is None:
                    raise
                try:
                    check_resend(msg)
                except Error as limit:
                    raise limit from exc
                why = str(exc)
            else:
                delay = self._after_status(msg, retries)
                if delay is None:
                    return stream
                try:
                    check_resend(msg)
                finally:
                    # The answer is never shown: drain a small rest, or drop the connection.
                    await stream.aclose()
                why = f"{msg.status} {msg.reason_phrase}".rstrip()
            retries += 1
            self._note(msg, f"retry {retries} of {self._total} in {delay:.2f} s after {why}")
            session = self.session
            if session is None:
                await self._sleep(delay)
            else:
                with session._abortable(msg):  # Session.abort() ends the wait too
                    await self._sleep(delay)
            signal = active(msg, "restarted")
            if signal is not None:
                await signal.emit()
            forget_response(msg)
            msg._reload = True  # a stored answer (a cached 503) would only come back

    def _after_error(self, msg: Message, exc: Error, retries: int) -> float | None:
        """The wait before retrying after ``exc``, or None to raise it."""
        if retries >= self._total or _body_gone(msg):
            return None
        allowed = method_allowed(msg.method, msg.flags, self._methods)
        if not should_retry_error(exc, allowed):
            return None
        return retry_delay(
            retries, None, factor=self._backoff_factor, maximum=self._backoff_max,
            uniform=self._uniform,
        )  # fmt: skip

    def _after_status(self, msg: Message, retries: int) -> float | None:
        """The wait before retrying after ``msg``'s status, or None to return the answer."""
        if msg.status not in self._statuses or retries >= self._total or _body_gone(msg):
            return None
        if not method_allowed(msg.method, msg.flags, self._methods):
            return None
        retry_after = None
        if self._respect_retry_after:
            value = msg.response_headers.get_one("Retry-After")
            retry_after = parse_retry_after(value, self._clock())
        return retry_delay(
            retries, retry_after, factor=self._backoff_factor, maximum=self._backoff_max,
            uniform=self._uniform,
        )  # fmt: skip

    def _note(self, msg: Message, note: str) -> None:
        session = self.session
        logger = session.get_feature_for_message(Logger, msg) if session is not None else None
        if isinstance(logger, Logger):
            logger._log_note(msg, note)

    def __repr__(self) -> str:
        return (
            f"<anysoup.Retry total={self._total} statuses={sorted(self._statuses)} "
            f"methods={sorted(self._methods)} backoff_factor={self._backoff_factor:g} "
            f"backoff_max={self._backoff_max:g} respect_retry_after={self._respect_retry_after}>"
        )


def _body_gone(msg: Message) -> bool:
    """Whether ``msg``'s body was a stream that already went out (it can't be sent again)."""
    body = msg._body
    return body is not None and body._consumed
