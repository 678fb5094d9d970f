"""Freshness, age and the reuse decision (RFC 9111 §4.2, §4.2.4; RFC 5861).

Theory of operation
-------------------
This module is policy (no I/O). It never reads the clock: every function
that needs the time takes ``now`` (seconds since the epoch, as
``time.time()``), so tests run with a fixed clock and several processes
sharing one cache agree.

A stored response is *fresh* while its age is below its freshness lifetime
(§4.2). :func:`freshness_lifetime` follows §4.2.1 in order: ``s-maxage``
(shared caches only), ``max-age``, ``Expires`` minus ``Date``, and only
without any of those a heuristic (§4.2.2): 10 % of the time between
``Last-Modified`` and ``Date``, for the statuses RFC 9110 §15.1 calls
heuristically cacheable or a response marked cacheable, capped at
:data:`HEURISTIC_CAP`. Invalid explicit values mean stale (§4.2.1 encourages
that; §5.3 requires it of ``Expires``, e.g. ``Expires: 0``).
:func:`current_age` is §4.2.3's calculation, term for term. A missing
``Date`` stands for the time the response was received (RFC 9110 §6.6.1).

:func:`decide` tells the feature what to do with a matching entry, as an
:class:`Action`:

* response ``no-cache`` (unqualified), request ``no-cache`` (or ``Pragma:
  no-cache`` without ``Cache-Control``): VALIDATE, whatever the age;
* fresh enough for the request (its ``max-age`` and ``min-fresh``): FRESH;
* stale, or too old for the request: stale serving is considered only if
  nothing forbids it. The response forbids it with ``must-revalidate``
  (and, in a shared cache, ``proxy-revalidate`` or ``s-maxage``, §5.2.2.8,
  §5.2.2.10). The request forbids it when the entry fails its ``max-age``
  or ``min-fresh``, and, without ``max-stale``, whenever it sends
  ``max-age`` at all (§5.2.1.1: such a client wants no stale answer).
  Then a request ``max-stale`` that covers the staleness gives STALE_OK, a
  ``stale-while-revalidate`` window (RFC 5861 §3) REVALIDATE_BACKGROUND
  (also preferred to STALE_OK when both apply: the same answer now, and
  the entry refreshed), and anything else VALIDATE. An invalid
  ``max-stale`` argument accepts no staleness.

The decision also says whether the entry may stand in for the answer if the
validation fails (a connection error, or a 500, 502, 503 or 504): RFC 5861
§4's ``stale-if-error``, from the response or the request, when the entry's
staleness is within the window and the response forbids no stale serving
(§4.2.4 names ``no-cache`` and ``must-revalidate`` among those).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..._model.headers import MessageHeaders
from .directives_policy import MAX_DELTA, cache_control, delta_seconds, parse_http_date
from .entry_policy import StoredResponse
from .rules_policy import HEURISTICALLY_CACHEABLE, qualified_fields, request_no_cache

__all__ = [
    "HEURISTIC_CAP",
    "HEURISTIC_FRACTION",
    "Action",
    "Decision",
    "age_value",
    "current_age",
    "decide",
    "entry_headers",
    "freshness_lifetime",
]

#: The fraction of the time since ``Last-Modified`` a heuristic lifetime is
#: (RFC 9111 §4.2.2 calls 10 % typical).
HEURISTIC_FRACTION = 0.1
#: The longest heuristic lifetime, in seconds: one day. RFC 9111 sets no cap;
#: this is the project's choice, a reasonable upper bound that browsers'
#: implementations also use in practice, so that a file unchanged for
#: years is still revalidated daily when the server gave no explicit expiry.
HEURISTIC_CAP = 86400.0


class Action(enum.Enum):
    """What to do with a stored response that matches a request (:func:`decide`)."""

    #: Serve the entry as it is: fresh, and fresh enough for the request.
    FRESH = "fresh"
    #: Serve the stale entry without contacting the server: the request's
    #: ``max-stale`` allowed it.
    STALE_OK = "stale-ok"
    #: Serve the stale entry now, and revalidate it in the background: the
    #: response's ``stale-while-revalidate`` window allowed it (RFC 5861 §3).
    REVALIDATE_BACKGROUND = "revalidate-background"
    #: Send a conditional request first (:func:`conditional_headers`), and
    #: serve the entry only after a ``304``.
    VALIDATE = "validate"


@dataclass(frozen=True)
class Decision:
    """The answer of :func:`decide`."""

    #: What to do.
    action: Action
    #: The entry's current age in seconds (RFC 9111 §4.2.3), for ``Age``.
    age: float
    #: Whether, should the validation fail (no connection, or a 500, 502,
    #: 503 or 504), the stale entry may be served instead (RFC 5861 §4).
    stale_if_error: bool


def entry_headers(entry: StoredResponse) -> MessageHeaders:
    """The stored header lines of ``entry`` as :class:`MessageHeaders`, not re-checked.

    The lines came from a :class:`MessageHeaders` (through
    :func:`stored_headers`), or from storage that checks them on loading.
    """
    return MessageHeaders._from_trusted(list(entry.headers))


def _explicit_lifetime(
    headers: MessageHeaders, directives: dict[str, str | None], shared: bool, date: float | None
) -> float | None:
    """§4.2.1's explicit lifetime, None if the response gives none."""
    # An invalid argument makes the response stale (§4.2.1: the most restrictive reading).
    if shared and "s-maxage" in directives:
        return float(delta_seconds(directives["s-maxage"]) or 0)
    if "max-age" in directives:
        return float(delta_seconds(directives["max-age"]) or 0)
    expires_value = headers.get_one("Expires")
    if expires_value is not None:
        expires = parse_http_date(expires_value)
        if expires is None or date is None:
            return 0.0  # §5.3: an invalid date ("0") is in the past
        return max(0.0, expires - date)
    return None


def freshness_lifetime(
    entry_or_headers: StoredResponse | MessageHeaders,
    *,
    shared: bool,
    status: int | None = None,
    response_time: float | None = None,
) -> float:
    """A response's freshness lifetime in seconds (RFC 9111 §4.2.1, §4.2.2).

    Args:
        entry_or_headers: a stored entry, or a response's headers.
        shared: whether the cache is shared (only then does ``s-maxage``
            count).
        status: the status, when headers are given (an entry has its own);
            without it no heuristic lifetime is given.
        response_time: when the response was received, when headers are
            given; it stands in for a missing ``Date`` (RFC 9110 §6.6.1).

    Returns:
        The lifetime, 0 or more. Invalid explicit information gives 0.
    """
    if isinstance(entry_or_headers, StoredResponse):
        headers = entry_headers(entry_or_headers)
        status = entry_or_headers.status
        response_time = entry_or_headers.response_time
    else:
        headers = entry_or_headers
    return _lifetime(headers, cache_control(headers), status, response_time, shared)


def _lifetime(
    headers: MessageHeaders,
    directives: dict[str, str | None],
    status: int | None,
    response_time: float | None,
    shared: bool,
) -> float:
    """:func:`freshness_lifetime`, with the headers' directives already parsed."""
    date = parse_http_date(headers.get_one("Date"))
    if date is None:
        date = response_time
    explicit = _explicit_lifetime(headers, directives, shared, date)
    if explicit is not None:
        return explicit
    # §4.2.2: heuristics only for heuristically cacheable statuses, or a
    # response marked cacheable (public; private where it may be stored).
    marked = "public" in directives or (not shared and "private" in directives)
    if status is None or not (status in HEURISTICALLY_CACHEABLE or marked):
        return 0.0
    last_modified = parse_http_date(headers.get_one("Last-Modified"))
    if last_modified is None or date is None:
        return 0.0
    return min(HEURISTIC_CAP, max(0.0, (date - last_modified) * HEURISTIC_FRACTION))


def current_age(entry: StoredResponse, now: float) -> float:
    """The entry's current age in seconds (RFC 9111 §4.2.3).

    ``Age`` received with the response is ``age_value`` (0 when absent or
    invalid), ``Date`` is ``date_value`` (the response time when absent or
    invalid, RFC 9110 §6.6.1). A clock that went backwards gives no
    negative term.
    """
    return _current_age(entry, entry_headers(entry), now)


def _current_age(entry: StoredResponse, headers: MessageHeaders, now: float) -> float:
    """:func:`current_age`, with the entry's headers already wrapped."""
    age_seen = float(delta_seconds(headers.get_one("Age")) or 0)
    date_value = parse_http_date(headers.get_one("Date"))
    if date_value is None:
        date_value = entry.response_time
    apparent_age = max(0.0, entry.response_time - date_value)
    response_delay = max(0.0, entry.response_time - entry.request_time)
    corrected_age_value = age_seen + response_delay
    corrected_initial_age = max(apparent_age, corrected_age_value)
    resident_time = max(0.0, now - entry.response_time)
    return corrected_initial_age + resident_time


def age_value(age: float) -> str:
    """The ``Age`` header value for an age in seconds (RFC 9111 §5.1).

    Whole seconds, rounded down, at least 0, at most 2^31 (§1.2.2).
    """
    return str(int(min(max(age, 0.0), float(MAX_DELTA))))


def _window(argument: str | None) -> float | None:
    """A ``stale-*`` directive's window, None when absent or invalid."""
    seconds = delta_seconds(argument)
    return None if seconds is None else float(seconds)


def decide(
    entry: StoredResponse, request_headers: MessageHeaders, now: float, *, shared: bool
) -> Decision:
    """What to do with a stored response that matches a request (RFC 9111 §4).

    Args:
        entry: the stored response (its Vary already matched).
        request_headers: the request as it will be sent.
        now: the current time, seconds since the epoch.
        shared: whether the cache is shared.

    Returns:
        The :class:`Decision`; see the module notes for the rules.
    """
    headers = entry_headers(entry)
    response = cache_control(headers)
    request = cache_control(request_headers)
    age = _current_age(entry, headers, now)
    lifetime = _lifetime(headers, response, entry.status, entry.response_time, shared)
    staleness = max(0.0, age - lifetime)

    no_cache = "no-cache" in response and not qualified_fields(response["no-cache"])
    # §4.2.4: these response directives forbid serving the entry stale, in any way.
    no_stale = (
        no_cache
        or "must-revalidate" in response
        or (shared and ("proxy-revalidate" in response or "s-maxage" in response))
    )
    windows = [_window(d.get("stale-if-error")) for d in (response, request)]
    stale_if_error = not no_stale and any(w is not None and staleness <= w for w in windows)

    def result(action: Action) -> Decision:
        return Decision(action, age, stale_if_error)

    if no_cache or request_no_cache(request_headers):
        return result(Action.VALIDATE)

    # The request's own limits (§5.2.1.1, §5.2.1.3). An invalid max-age is
    # read as 0, the strict way; an invalid min-fresh is ignored.
    max_age = (delta_seconds(request["max-age"]) or 0) if "max-age" in request else None
    min_fresh = delta_seconds(request.get("min-fresh"))
    too_old = max_age is not None and age > max_age
    not_fresh_enough = min_fresh is not None and lifetime - age < min_fresh
    if age < lifetime and not too_old and not not_fresh_enough:
        return result(Action.FRESH)
    if no_stale or too_old or not_fresh_enough:
        return result(Action.VALIDATE)

    # Stale, and nothing in the response forbids serving it stale.
    swr = _window(response.get("stale-while-revalidate"))
    in_swr_window = swr is not None and staleness <= swr
    if "max-stale" in request:
        limit = request["max-stale"]
        max_stale = delta_seconds(limit)
        if limit is not None and (max_stale is None or staleness > max_stale):
            return result(Action.VALIDATE)  # staler than the request accepts
        # Background revalidation serves the same answer and refreshes the entry.
        return result(Action.REVALIDATE_BACKGROUND if in_swr_window else Action.STALE_OK)
    if max_age is not None or not in_swr_window:
        # §5.2.1.1: without max-stale, a client sending max-age wants no stale answer.
        return result(Action.VALIDATE)
    return result(Action.REVALIDATE_BACKGROUND)
