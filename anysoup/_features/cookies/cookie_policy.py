"""Cookies: the :class:`Cookie` value and the policy enums (no I/O).

A :class:`Cookie` is what one ``Set-Cookie`` header makes, after the rules
of RFC 6265bis; the jar in ``_features/cookies/jar.py`` stores and chooses them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from yarl import URL

from ..._model.public import public
from ..._model.uri import is_secure
from .parse_policy import (
    canonical_host,
    default_path,
    domain_match,
    format_cookie_date,
    is_ip,
    is_public_suffix,
    parse_set_cookie,
    path_match,
)

if TYPE_CHECKING:
    pass

__all__ = ["Cookie", "CookieJarAcceptPolicy", "SameSitePolicy", "cookie_header"]


_UTC = timezone.utc
_CONTROL = frozenset(chr(c) for c in (*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F))


def _now() -> datetime:
    return datetime.now(_UTC)


@public
class SameSitePolicy(enum.Enum):
    """When a cookie goes with cross-site requests (libsoup's ``SoupSameSitePolicy``)."""

    #: Sent with every request (the cookie must be Secure).
    NONE = 0
    #: Sent cross-site only on top-level navigations with a safe method. The default.
    LAX = 1
    #: Sent only with same-site requests.
    STRICT = 2


@public
class CookieJarAcceptPolicy(enum.Enum):
    """Which cookies from responses a jar stores (libsoup's ``SoupCookieJarAcceptPolicy``)."""

    #: Accept every (valid) cookie. The default.
    ALWAYS = 0
    #: Accept none.
    NEVER = 1
    #: Accept cookies only for the site of the message's ``first_party``; a
    #: message without a first party is third party.
    NO_THIRD_PARTY = 2
    #: Like NO_THIRD_PARTY, but also accept cookies for a domain that already
    #: has cookies in the jar (set when it was visited directly).
    GRANDFATHERED_THIRD_PARTY = 3


_SAME_SITE_NAMES = {"none": SameSitePolicy.NONE, "lax": SameSitePolicy.LAX}
_SAME_SITE_NAMES["strict"] = SameSitePolicy.STRICT


def _as_url(uri: str | URL) -> URL:
    return uri if isinstance(uri, URL) else URL(uri)


@public
@dataclass(frozen=True)
class Cookie:
    """One HTTP cookie (libsoup's ``SoupCookie``); a frozen value.

    ``domain`` follows libsoup: ``".example.com"`` (leading dot) is a domain
    cookie, sent to ``example.com`` and its subdomains; ``"example.com"`` is
    a host-only cookie, sent to that host alone. Make changed copies with
    ``dataclasses.replace``.

    Raises:
        ValueError: ``expires`` is a naive datetime.
    """

    #: The name ("" for a nameless cookie).
    name: str
    #: The value.
    value: str
    #: The domain (leading dot) or host (none) the cookie belongs to, in lower case.
    domain: str
    #: The path the cookie is sent for (and below).
    path: str = "/"
    #: When it expires (aware, UTC), or None for a session cookie.
    expires: datetime | None = None
    #: Sent only over https and wss.
    secure: bool = False
    #: Hidden from ``for_http=False`` lookups (scripts, in a browser).
    http_only: bool = False
    #: When it goes with cross-site requests.
    same_site: SameSitePolicy = field(default=SameSitePolicy.LAX)

    def __post_init__(self) -> None:
        if self.expires is not None:
            if self.expires.tzinfo is None:
                raise ValueError(f"expires: {self.expires!r} must be an aware datetime")
            object.__setattr__(self, "expires", self.expires.astimezone(_UTC))
        domain = self.domain.lower()
        if domain.endswith(".") and len(domain) > 1:
            domain = domain[:-1]  # one spelling per host, as the lookups use
        object.__setattr__(self, "domain", domain)

    @classmethod
    def new(cls, name: str, value: str, domain: str, path: str = "/", max_age: int = -1) -> Cookie:
        """``soup_cookie_new``: ``max_age`` -1 makes a session cookie, 0 an expired one."""
        expires = None if max_age < 0 else _now() + timedelta(seconds=min(max_age, 2**31))
        return cls(name, value, domain, path, expires)

    @classmethod
    def parse(cls, header: str, origin: str | URL | None = None) -> Cookie | None:
        """Parse a ``Set-Cookie`` value as if ``origin`` had sent it; None if refused.

        Domain and path default from ``origin`` (RFC 6265bis §5.7). A Domain
        attribute that is a public suffix is refused, unless it is the
        origin's host (then the cookie is host-only); an IP origin gets
        host-only cookies; a Domain that ``origin`` doesn't domain-match is
        refused. Without ``origin``, the path defaults to ``/`` and a cookie
        without Domain gets an empty domain. Never raises on a bad header.
        """
        parsed = parse_set_cookie(header, _now())
        if parsed is None or parsed.bad_domain:
            return None
        if origin is None:
            attr = parsed.domain
            domain = "" if attr is None else (attr if is_ip(attr) else "." + attr)
            path = parsed.path or "/"
        else:
            try:
                uri = _as_url(origin)
            except (ValueError, TypeError):
                return None
            host = canonical_host(uri)
            if not host:
                return None
            found = _cookie_domain(parsed.domain, host)
            if found is None:
                return None
            domain = found
            path = parsed.path or default_path(uri.raw_path)
        same_site = _SAME_SITE_NAMES.get(parsed.same_site or "lax", SameSitePolicy.LAX)
        return cls(
            parsed.name,
            parsed.value,
            domain,
            path,
            parsed.expires,
            parsed.secure,
            parsed.http_only,
            same_site,
        )

    @property
    def host_only(self) -> bool:
        """Whether the cookie goes to its host only (no leading dot in ``domain``)."""
        return not self.domain.startswith(".")

    def domain_matches(self, host: str) -> bool:
        """Whether the cookie's domain covers ``host`` (``soup_cookie_domain_matches``)."""
        host = host.lower().rstrip(".") if not is_ip(host) else host.strip("[]").lower()
        if self.host_only:
            return host == self.domain
        return domain_match(host, self.domain[1:])

    def is_expired(self, now: datetime | None = None) -> bool:
        """Whether ``expires`` is past (session cookies never are)."""
        return self.expires is not None and self.expires <= (now or _now())

    def applies_to_uri(self, uri: str | URL) -> bool:
        """Whether the cookie would be sent to ``uri`` (SameSite aside)."""
        url = _as_url(uri)
        if self.secure and not is_secure(url):
            return False
        if self.is_expired():
            return False
        return self.domain_matches(canonical_host(url)) and path_match(
            url.raw_path or "/", self.path
        )

    def to_cookie_header(self) -> str:
        """The cookie as it goes in a ``Cookie`` header: ``name=value`` (or the value)."""
        return f"{self.name}={self.value}" if self.name else self.value

    def to_set_cookie_header(self) -> str:
        """The cookie as a ``Set-Cookie`` value that :meth:`parse` reads back."""
        parts = [self.to_cookie_header(), f"Path={self.path}"]
        if not self.host_only:
            parts.append(f"Domain={self.domain[1:]}")
        if self.expires is not None:
            parts.append(f"Expires={format_cookie_date(self.expires)}")
        if self.secure:
            parts.append("Secure")
        if self.http_only:
            parts.append("HttpOnly")
        parts.append(f"SameSite={self.same_site.name.title()}")
        return "; ".join(parts)


def _cookie_domain(attr: str | None, host: str) -> str | None:
    """The jar domain of a cookie from ``host`` with Domain ``attr`` (RFC 6265bis §5.7).

    None means refuse the cookie.
    """
    if attr is None:
        return host
    if is_ip(host) or is_ip(attr):
        return host if attr == host else None  # IP origins only ever get host-only cookies
    if is_public_suffix(attr):
        # §5.7 step 9: a Domain that is a public suffix is refused, except
        # when it is the very host (then the cookie is host-only).
        return host if attr == host else None
    if not domain_match(host, attr):
        return None
    return "." + attr


def cookie_header(cookies: list[Cookie]) -> str:
    """``soup_cookies_to_cookie_header``: the cookies joined with ``"; "``."""
    return "; ".join(c.to_cookie_header() for c in cookies)
