"""Cookie policy: ``Set-Cookie`` parsing, cookie dates, domain and path matching.

Theory of operation
-------------------
This module is policy (no I/O, no async library). It turns one ``Set-Cookie``
value into a :class:`ParsedCookie` the way RFC 6265bis §5.6 says a user agent
parses it, then decides, for the host that sent it, the domain the cookie
belongs to (§5.7, the storage model's domain steps). The jar
(``_features/cookies/jar.py``) applies the rest of the storage model: secure origins,
prefixes, SameSite, accept policies, caps.

Hostile input is the normal case here: nothing in this module raises on any
header value. A value the algorithm rejects gives None; an attribute it
rejects is ignored, as the RFC says.

Host names are compared in one canonical form, the one the connection uses
(:attr:`yarl.URL.raw_host`: IDNA A-labels, lower case) with one trailing dot
removed, so ``EXAMPLE.com.``, ``example.com`` and ``exämple``'s punycode each
have exactly one spelling. That closes the family of bypasses where a
trailing dot, mixed case or an IDN full-width dot let a cookie escape the
public suffix check (curl CVE-2014-3620, CVE-2022-27779, CVE-2023-46218).
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

from yarl import URL

from ..._model.tld import public_suffix_list

__all__ = [
    "MAX_AGE_CAP",
    "MAX_ATTRIBUTE_SIZE",
    "MAX_NAME_VALUE_SIZE",
    "SAFE_METHODS",
    "ParsedCookie",
    "base_domain",
    "canonical_host",
    "default_path",
    "domain_match",
    "format_cookie_date",
    "is_ip",
    "is_public_suffix",
    "normalise_domain",
    "parse_cookie_date",
    "parse_set_cookie",
    "path_match",
]

#: RFC 6265bis §5.6: a name and value longer than this together are ignored.
MAX_NAME_VALUE_SIZE = 4096
#: RFC 6265bis §5.6: an attribute value longer than this is ignored.
MAX_ATTRIBUTE_SIZE = 1024
#: RFC 6265bis §5.6.1, §5.6.2: Expires and Max-Age are capped at 400 days.
MAX_AGE_CAP = 400 * 24 * 3600
#: libsoup's ``SOUP_METHOD_IS_SAFE``: what SameSite=Lax lets through on navigation.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PROPFIND", "TRACE"})

UTC = timezone.utc
#: An expiry in the past: what Max-Age <= 0 means (RFC 6265bis §5.6.2).
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: Control characters a cookie may not hold: %x00-08 / %x0A-1F / %x7F (§5.6).
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_WSP = " \t"
#: A canonical DNS name: LDH labels (and "_", which real hosts use), no empty label.
_NAME_RE = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")


class ParsedCookie(NamedTuple):
    """One ``Set-Cookie`` value after RFC 6265bis §5.6, before the storage model."""

    name: str
    value: str
    #: The Domain attribute, canonical (no leading or trailing dot), or None.
    domain: str | None
    #: The Path attribute if it was usable (starts with "/"), else None.
    path: str | None
    #: The expiry from Max-Age (preferred) or Expires, capped; None for a session cookie.
    expires: datetime | None
    secure: bool
    http_only: bool
    #: "none", "lax", "strict", or None when absent or not one of those.
    same_site: str | None
    #: Whether a Domain attribute was present but unusable (then the cookie is ignored).
    bad_domain: bool


# -- dates (RFC 6265 §5.1.1) ---------------------------------------------------------

#: delimiter = %x09 / %x20-2F / %x3B-40 / %x5B-60 / %x7B-7E
_DELIMITERS_RE = re.compile(r"[\x09\x20-\x2f\x3b-\x40\x5b-\x60\x7b-\x7e]+")
_TIME_RE = re.compile(r"(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\D.*)?", re.DOTALL)
_DAY_RE = re.compile(r"(\d{1,2})(?:\D.*)?", re.DOTALL)
_YEAR_RE = re.compile(r"(\d{2,4})(?:\D.*)?", re.DOTALL)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def parse_cookie_date(text: str) -> datetime | None:
    """An ``Expires`` value as an aware UTC datetime, or None (RFC 6265 §5.1.1).

    The algorithm is the RFC's, which accepts what servers really send
    (RFC 1123, RFC 850, asctime, and worse). Every field has at most four
    digits, so no value overflows; years 70-99 mean 1970-1999 and 0-69 mean
    2000-2069; a year before 1601 or an impossible date (February 30) is
    refused.
    """
    hms: tuple[int, int, int] | None = None
    day = month = year = None
    for token in _DELIMITERS_RE.split(text):
        if not token:
            continue
        if hms is None and (m := _TIME_RE.fullmatch(token)):
            hms = (int(m[1]), int(m[2]), int(m[3]))
        elif day is None and (m := _DAY_RE.fullmatch(token)):
            day = int(m[1])
        elif month is None and token[:3].lower() in _MONTHS:
            month = _MONTHS.index(token[:3].lower()) + 1
        elif year is None and (m := _YEAR_RE.fullmatch(token)):
            year = int(m[1])
    if hms is None or day is None or month is None or year is None:
        return None
    if 70 <= year <= 99:
        year += 1900
    elif 0 <= year <= 69:
        year += 2000
    hour, minute, second = hms
    if not 1 <= day <= 31 or year < 1601 or hour > 23 or minute > 59 or second > 59:
        return None
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:  # the 31st of a 30-day month, February 29 of a common year
        return None


def format_cookie_date(when: datetime) -> str:
    """``when`` as an IMF-fixdate, e.g. ``Sun, 06 Nov 1994 08:49:37 GMT`` (RFC 9110 §5.6.7)."""
    when = when.astimezone(UTC)
    return (
        f"{_DAY_NAMES[when.weekday()]}, {when.day:02d} {_MONTHS[when.month - 1].title()} "
        f"{when.year:04d} {when.hour:02d}:{when.minute:02d}:{when.second:02d} GMT"
    )


def _capped(now: datetime, seconds: int) -> datetime:
    return now + timedelta(seconds=min(seconds, MAX_AGE_CAP))


# -- hosts and domains ---------------------------------------------------------------


def is_ip(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 literal (brackets and zone allowed)."""
    host = host.strip("[]").split("%", 1)[0]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def canonical_host(uri: URL) -> str:
    """The host of ``uri`` as cookies see it: IDNA, lower case, no trailing dot."""
    host = (uri.raw_host or "").lower()
    return host[:-1] if host.endswith(".") and not is_ip(host) else host


def normalise_domain(text: str) -> str | None:
    """A Domain attribute or cookie domain in canonical form, or None if unusable.

    One leading dot is dropped (RFC 6265bis §5.6.3), then one trailing dot;
    the rest goes through the host mapping the URI parser uses, so the
    cookie's domain is compared with hosts spelt the same way. Non-ASCII
    (send A-labels: ``xn--…``), empty labels, spaces and other non-host
    characters make it unusable.
    """
    domain = text.strip(_WSP)
    if domain.startswith("."):
        domain = domain[1:]
    if domain.endswith("."):
        domain = domain[:-1]
    if not domain:
        return None
    if is_ip(domain):
        return domain.strip("[]").lower()
    if not domain.isascii():
        # RFC 6265bis §5.7 step 5: a Domain attribute must be ASCII (A-labels).
        return None
    try:
        encoded = URL.build(scheme="http", host=domain).raw_host
    except (ValueError, TypeError, UnicodeError):
        return None
    if not encoded:
        return None
    encoded = encoded.lower()
    return encoded if _NAME_RE.fullmatch(encoded) else None


def _psl() -> Any:
    # One list for the process, shared with anysoup.tld_get_base_domain.
    return public_suffix_list()


def is_public_suffix(domain: str) -> bool:
    """Whether ``domain`` (canonical) is a public suffix: ``com``, ``co.uk``, ``github.io``.

    The list is the ``publicsuffixlist`` package's, ICANN and private
    sections both, with the implicit ``*`` rule: an unlisted top-level name
    (``lan``, ``localhost``) is public too, as in browsers.
    """
    if is_ip(domain):
        return False
    return bool(_psl().is_public(domain))


def base_domain(host: str) -> str:
    """The registrable domain (eTLD+1) of ``host``; the host itself for IPs and suffixes."""
    if is_ip(host):
        return host
    base = _psl().privatesuffix(host)
    return str(base) if base else host


def domain_match(host: str, domain: str) -> bool:
    """RFC 6265bis §5.1.3: ``host`` is ``domain`` or a subdomain of it (never for IPs)."""
    if host == domain:
        return True
    return host.endswith(domain) and host[-len(domain) - 1] == "." and not is_ip(host)


# -- paths (RFC 6265bis §5.1.4) ------------------------------------------------------


def default_path(uri_path: str) -> str:
    """The directory of the request path: ``/a/b`` gives ``/a``, ``/a`` gives ``/``."""
    if not uri_path.startswith("/"):
        return "/"
    cut = uri_path.rfind("/")
    return "/" if cut == 0 else uri_path[:cut]


def path_match(request_path: str, cookie_path: str) -> bool:
    """Whether ``request_path`` is ``cookie_path`` or below it, at a ``/`` boundary."""
    if request_path == cookie_path:
        return True
    if not request_path.startswith(cookie_path):
        return False
    return cookie_path.endswith("/") or request_path[len(cookie_path)] == "/"


# -- Set-Cookie (RFC 6265bis §5.6) ---------------------------------------------------


def parse_set_cookie(header: str, now: datetime) -> ParsedCookie | None:
    """Parse one ``Set-Cookie`` value; None when it must be ignored.

    Ignored: a control character anywhere (other than tab), no name and no
    value, name and value over 4096 characters. Attributes with values over
    1024 characters, unknown attributes and invalid values are skipped.
    """
    if _CONTROL_RE.search(header):
        return None
    pair, _, rest = header.partition(";")
    if "=" in pair:
        name, _, value = pair.partition("=")
    else:
        name, value = "", pair  # a nameless cookie (§5.6 step 4)
    name, value = name.strip(_WSP), value.strip(_WSP)
    if not name and not value:
        return None
    if len(name) + len(value) > MAX_NAME_VALUE_SIZE:
        return None
    domain: str | None = None
    bad_domain = False
    path: str | None = None
    expires: datetime | None = None
    max_age: datetime | None = None
    secure = http_only = False
    same_site: str | None = None
    for av in rest.split(";") if rest else ():
        key, _, raw = av.partition("=")
        key = key.strip(_WSP).lower()
        raw = raw.strip(_WSP)
        if len(raw) > MAX_ATTRIBUTE_SIZE:
            continue
        if key == "expires":
            when = parse_cookie_date(raw)
            if when is not None:
                expires = min(when, _capped(now, MAX_AGE_CAP))
        elif key == "max-age":
            max_age = _parse_max_age(raw, now) or max_age
        elif key == "domain":
            if raw:  # an empty Domain is ignored (§5.6.3)
                # §5.6.3 strips a leading dot only: "example.org." stays as it
                # is, never domain-matches the host, and §5.7 refuses the cookie.
                domain = None if raw.endswith(".") else normalise_domain(raw)
                bad_domain = domain is None
        elif key == "path":
            path = raw if raw.startswith("/") else None
        elif key == "secure":
            secure = True
        elif key == "httponly":
            http_only = True
        elif key == "samesite":
            lowered = raw.lower()
            same_site = lowered if lowered in ("none", "lax", "strict") else None
    return ParsedCookie(
        name,
        value,
        domain,
        path,
        max_age if max_age is not None else expires,  # Max-Age wins (§5.7 step 3)
        secure,
        http_only,
        same_site,
        bad_domain,
    )


_MAX_AGE_RE = re.compile(r"-?[0-9]+")


def _parse_max_age(raw: str, now: datetime) -> datetime | None:
    """RFC 6265bis §5.6.2: digits with an optional "-"; <= 0 means expired."""
    if not _MAX_AGE_RE.fullmatch(raw):
        return None
    if raw.startswith("-"):
        return EPOCH
    digits = raw.lstrip("0")
    if not digits:
        return EPOCH
    if len(digits) > 10:  # beyond any cap: don't build a huge integer
        return _capped(now, MAX_AGE_CAP)
    return _capped(now, int(digits))
