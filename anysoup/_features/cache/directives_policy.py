"""Cache directives: ``Cache-Control`` and the values the cache rules read.

Theory of operation
-------------------
This module is policy (no I/O). It reads the header values that RFC 9111 is
built on, and never raises on what a server or a caller wrote:

* :func:`parse_cache_control` turns the ``Cache-Control`` lines into a dict
  of directives (RFC 9111 §5.2): ``token [ "=" ( token / quoted-string ) ]``
  members of a comma-separated list. Names are lower-cased (§5.2: directive
  names are case-insensitive), quoted values unquoted, and the first
  occurrence of a directive wins (§4.2.1 lets a cache use the first of
  several values). A member off the grammar is skipped, not fatal: one bad
  extension must not undo ``no-store`` next to it.
* :func:`delta_seconds` reads a ``max-age``-style argument (§1.2.2); a value
  past 2^31 becomes 2^31. An invalid value is None, and each caller says what
  that means (for ``max-age``: stale, §4.2.1).
* :func:`parse_http_date` reads ``Date``, ``Expires``, ``Last-Modified``
  (RFC 9110 §5.6.7). It reuses the cookie date parser, RFC 6265 §5.1.1's
  algorithm, which accepts the three HTTP-date forms (IMF-fixdate, RFC 850,
  asctime) and the near-misses servers really send: RFC 9110 §5.6.7
  encourages recipients to be robust in parsing timestamps. Anything it
  can't read is None; for ``Expires`` that means "already expired" (§5.3).
* :func:`field_names` reads the field-name list of a qualified ``no-cache``
  or ``private`` (§5.2.2.4, §5.2.2.7) and of ``Vary`` (RFC 9110 §12.5.5).

Parsed directive lists and dates are memoised per field value: a cache hit
reads the same stored ``Cache-Control`` and ``Date`` values every time.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from datetime import datetime, timezone

from ..._model.grammar import ESCAPE, QBODY, TOKEN, TOKEN_FULL, unescape
from ..._model.headers import MessageHeaders
from ..cookies.parse_policy import format_cookie_date, parse_cookie_date

__all__ = [
    "MAX_DELTA",
    "cache_control",
    "delta_seconds",
    "field_names",
    "format_http_date",
    "parse_cache_control",
    "parse_http_date",
    "split_list",
]

#: RFC 9111 §1.2.2: a delta-seconds value too large to represent is taken as 2^31.
MAX_DELTA = 2**31

# One member of a comma-separated list: anything but a comma outside a
# quoted-string. An unterminated quoted-string runs to the end of the value.
# Each alternative starts with a different character, so matching is linear.
_ITEM_RE = re.compile(r'(?:[^,"]|"[^"\\]*(?:\\(?:.|\Z)[^"\\]*)*(?:"|\Z))*', re.DOTALL)
# cache-directive = token [ "=" ( token / quoted-string ) ] (RFC 9111 §5.2),
# with optional whitespace around the parts.
_DIRECTIVE_RE = re.compile(rf'[ \t]*({TOKEN})[ \t]*(?:=[ \t]*(?:"({QBODY})"|({TOKEN})))?[ \t]*')
_DIGITS_RE = re.compile(r"[0-9]+")
_UTC = timezone.utc


def split_list(value: str) -> list[str]:
    """Split a field value into list members (RFC 9110 §5.6.1), quotes respected.

    Members keep their surrounding whitespace; empty members are kept too.
    """
    items: list[str] = []
    pos = 0
    end = len(value)
    while pos <= end:
        match = _ITEM_RE.match(value, pos)
        assert match is not None  # the pattern matches the empty string
        items.append(match.group())
        pos = match.end() + 1  # past the comma
    return items


@functools.lru_cache(maxsize=512)
def _parse_one(value: str) -> tuple[tuple[str, str | None], ...]:
    """The directives of one ``Cache-Control`` line, in order, bad members skipped."""
    found: list[tuple[str, str | None]] = []
    for item in split_list(value):
        match = _DIRECTIVE_RE.fullmatch(item)
        if match is None:
            continue  # empty (",,"), not a token, a bad value: skip it alone
        name, quoted, token = match.groups()
        argument = ESCAPE.sub(unescape, quoted) if quoted is not None else token
        found.append((name.lower(), argument))
    return tuple(found)


def parse_cache_control(values: Iterable[str]) -> dict[str, str | None]:
    """The ``Cache-Control`` directives of one message (RFC 9111 §5.2).

    Args:
        values: the field's lines, in order (``headers.get_all("Cache-Control")``).

    Returns:
        Directive names, lower-cased, mapped to their argument (a quoted
        value unquoted) or None when the directive has no argument. The first
        occurrence of a name wins; members off the grammar are skipped.
    """
    directives: dict[str, str | None] = {}
    for value in values:
        for name, argument in _parse_one(value):
            directives.setdefault(name, argument)
    return directives


def cache_control(headers: MessageHeaders) -> dict[str, str | None]:
    """:func:`parse_cache_control` of every ``Cache-Control`` line of ``headers``."""
    return parse_cache_control(headers.get_all("Cache-Control"))


def delta_seconds(argument: str | None) -> int | None:
    """A directive's delta-seconds argument (RFC 9111 §1.2.2), or None if invalid.

    Only digits are valid (no sign, no fraction, no empty value); a value
    past :data:`MAX_DELTA` is :data:`MAX_DELTA`, never a huge integer built
    digit by digit.
    """
    if argument is None or _DIGITS_RE.fullmatch(argument) is None:
        return None
    digits = argument.lstrip("0")
    if len(digits) > 10:  # 2^31 has ten digits
        return MAX_DELTA
    return min(int(digits or "0"), MAX_DELTA)


def parse_http_date(value: str | None) -> float | None:
    """An HTTP-date (RFC 9110 §5.6.7) as seconds since the epoch, or None.

    Args:
        value: a ``Date``, ``Expires`` or ``Last-Modified`` value, or None.

    Returns:
        The time, or None if ``value`` is None or not a date (e.g. ``"0"``).
    """
    return None if value is None else _parse_date(value)


# Every reuse decision reads the entry's Date (twice) and often Expires or
# Last-Modified: the same few strings, over and over.
@functools.lru_cache(maxsize=512)
def _parse_date(value: str) -> float | None:
    when = parse_cookie_date(value)
    return None if when is None else when.timestamp()


def format_http_date(seconds: float) -> str:
    """``seconds`` since the epoch as an IMF-fixdate (RFC 9110 §5.6.7)."""
    return format_cookie_date(datetime.fromtimestamp(int(seconds), _UTC))


def field_names(value: str | None) -> list[str]:
    """The field names of a ``#field-name`` list, lower-cased, in order, once each.

    For ``Vary`` and for the argument of a qualified ``no-cache`` or
    ``private`` (RFC 9111 §5.2.2.4, §5.2.2.7). Members that are not tokens
    are skipped, except ``*``, which is kept (``Vary: *``).
    """
    if not value:
        return []
    names: list[str] = []
    for item in value.split(","):
        name = item.strip(" \t").lower()
        if name and name not in names and (name == "*" or TOKEN_FULL.match(name)):
            names.append(name)
    return names
