"""When the Retry feature sends a message again, and how long it waits first (no I/O).

Theory of operation: after each attempt the feature asks :func:`should_retry`
about the exception or the status, then :func:`retry_delay` how long to
wait. The answers:

* **What is retried.** A :class:`~anysoup.ConnectError`, for any method:
  no connection was made, so nothing was sent. A
  :class:`~anysoup.NetworkError` (the connection reset or closed before the
  response head was complete) and a status among ``statuses`` only for the
  retry methods, by default the idempotent ones (RFC 9110 §9.2.2: sending
  them twice has the effect of sending them once), or for a message flagged
  :attr:`~anysoup.MessageFlags.IDEMPOTENT`: a POST that reached the server
  may have acted. Never retried: timeouts (the server stalled for the
  session's whole ``timeout``: a retry would multiply the wait; bound a
  call with a cancel scope instead), TLS and parsing errors (a retry gets
  the same answer), cancellation, and a request whose streamed body has
  already gone out (it can't be read twice).
* **How long.** Exponential backoff with full jitter: the n-th retry
  (from 0) waits ``uniform(0, min(backoff_max, backoff_factor * 2**n))``,
  which spreads clients that failed together over the whole window
  instead of bunching them at its end ("Exponential Backoff And Jitter",
  AWS Architecture Blog, 2015). A ``Retry-After`` header (RFC 9110
  §10.2.3: seconds, or an HTTP-date) replaces the backoff when
  ``respect_retry_after`` is on. One asking for more than ``backoff_max``
  ends the retries: the answer is returned as it is, since retrying sooner
  than the server asked would only meet the same answer (or a penalty).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..._model.enums import MessageFlags
from ..._model.exceptions import ConnectError, NetworkError
from ..._model.methods import IDEMPOTENT_METHODS, normal_method
from ..cookies.parse_policy import parse_cookie_date

__all__ = [
    "DEFAULT_STATUSES",
    "backoff_delay",
    "check_methods",
    "check_statuses",
    "method_allowed",
    "parse_retry_after",
    "retry_delay",
    "should_retry_error",
]

#: Too Many Requests, Bad Gateway, Service Unavailable, Gateway Timeout: the
#: answers that say "not now" rather than "no" (RFC 6585 §4, RFC 9110 §15.6).
DEFAULT_STATUSES = (429, 502, 503, 504)


def check_statuses(statuses: Iterable[int]) -> frozenset[int]:
    """``statuses`` as a set, each an error status (400 to 599).

    Raises:
        ValueError: A value is not an int from 400 to 599.
        TypeError: ``statuses`` is not an iterable of ints.
    """
    if isinstance(statuses, (str, bytes)):
        raise TypeError("statuses: give status codes (ints), not a string")
    found = frozenset(statuses)
    for status in sorted(found, key=repr):
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError(f"statuses: {status!r} is not an error status (400 to 599)")
    return found


def check_methods(methods: Iterable[str] | None) -> frozenset[str]:
    """The methods retried after a status or a network error (None: the idempotent ones).

    Registered methods are upper-cased as :class:`~anysoup.Message` does
    (``"get"`` is ``GET``).

    Raises:
        ValueError: A value is not an HTTP method.
        TypeError: ``methods`` is a string (give a list).
    """
    if methods is None:
        return IDEMPOTENT_METHODS
    if isinstance(methods, (str, bytes)):
        raise TypeError(f"methods: give a list of methods, not the string {methods!r}")
    return frozenset(normal_method(method) for method in methods)


def method_allowed(method: str, flags: MessageFlags, methods: frozenset[str]) -> bool:
    """Whether a message may be sent again after its request reached the server."""
    return method in methods or bool(flags & MessageFlags.IDEMPOTENT)


def should_retry_error(exc: BaseException, allowed: bool) -> bool:
    """Whether the failure ``exc`` of an attempt is retried (``allowed``: see method_allowed)."""
    if isinstance(exc, ConnectError):
        return True  # nothing was sent
    # The request may have been processed: only for methods that may be repeated.
    return isinstance(exc, NetworkError) and allowed


def backoff_delay(
    retry: int, factor: float, maximum: float, uniform: Callable[[float, float], float]
) -> float:
    """The wait before retry ``retry`` (from 0): full jitter under the capped exponential."""
    # min() on the exponent first: 2.0 ** 1100 overflows a float.
    ceiling = min(maximum, factor * 2.0 ** min(retry, 64))
    return uniform(0.0, ceiling) if ceiling > 0 else 0.0


def parse_retry_after(value: str | None, now: float) -> float | None:
    """The seconds a ``Retry-After`` value asks to wait, or None if it says nothing usable.

    RFC 9110 §10.2.3: ``delay-seconds`` (digits) or an ``HTTP-date`` (in the
    past means "now": 0). ``now`` is the current time as from :func:`time.time`.
    """
    if value is None:
        return None
    value = value.strip(" \t")
    if value.isascii() and value.isdigit():
        return float(int(value))
    # The three HTTP-date forms (§5.6.7: IMF-fixdate, RFC 850, asctime), all
    # accepted by the cookie date algorithm, which reads them as GMT.
    when = parse_cookie_date(value) if value else None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)


def retry_delay(
    retry: int,
    retry_after: float | None,
    *,
    factor: float,
    maximum: float,
    uniform: Callable[[float, float], float],
) -> float | None:
    """How long to wait before retry number ``retry``; None: don't retry.

    Args:
        retry: The retry's number, from 0.
        retry_after: What the response's ``Retry-After`` asks (None: nothing,
            or not respected).
        factor: ``backoff_factor``.
        maximum: ``backoff_max``: the longest wait, also for ``Retry-After``.
        uniform: :func:`random.uniform` (injectable for tests).
    """
    if retry_after is not None:
        return retry_after if retry_after <= maximum else None
    return backoff_delay(retry, factor, maximum, uniform)
