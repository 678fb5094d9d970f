"""CookieJar: HTTP state management (RFC 6265bis), libsoup's ``SoupCookieJar``.

Theory of operation
-------------------
The jar keeps :class:`Cookie` values in buckets keyed by the cookie's domain
string, libsoup's way: ``example.com`` holds host-only cookies of that host,
``.example.com`` the cookies of that domain and its subdomains. A lookup
for ``www.example.com`` visits ``www.example.com``, ``.www.example.com``,
``.example.com`` and ``.com`` (only the host itself for an IP literal), so
it costs a few dict probes whatever the jar holds.

As a session feature (chain position ``POSITION_COOKIES``) it runs once per
hop: before the hop goes out it *replaces* the request's ``Cookie`` header
with the jar's cookies for that URI (or removes it when there are none, as
libsoup does), and after the response head arrives it stores every
``Set-Cookie`` of that hop. Redirects therefore carry the cookies of each
target, including one set by the 3xx itself.

Parsing and the domain rules are policy, in ``_features/cookies/parse_policy.py``. What is
refused here, and why, is listed in :doc:`cookies` and in
:meth:`CookieJar.add_cookie_full`.

The jar changes in synchronous code (libsoup's API is synchronous). Each
change is queued for the ``changed`` signal: the feature awaits coroutine
handlers for changes made while a message is sent, the synchronous methods
call plain handlers before they return. Persistent subclasses
(``_features/cookies/stores.py``) hook :meth:`CookieJar._on_changed` and
:meth:`CookieJar._before_read`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from yarl import URL

from ..._model.public import public
from ..._model.signals import SignalDescriptor, active
from ..._model.uri import is_secure
from ..feature import SessionFeature
from .cookie_policy import (
    _CONTROL,
    Cookie,
    CookieJarAcceptPolicy,
    SameSitePolicy,
    _as_url,
    _now,
    cookie_header,
)
from .parse_policy import (
    MAX_NAME_VALUE_SIZE,
    SAFE_METHODS,
    base_domain,
    canonical_host,
    domain_match,
    is_ip,
    is_public_suffix,
    normalise_domain,
    path_match,
)

if TYPE_CHECKING:
    from ..._model.body import InputStream
    from ..._model.message import Message
    from ..._model.signals import Signal
    from ..feature import CallNext

__all__ = [
    "MAX_COOKIES",
    "MAX_COOKIES_PER_DOMAIN",
    "Cookie",
    "CookieJar",
    "CookieJarAcceptPolicy",
    "SameSitePolicy",
]

#: Cookies kept per registrable domain (RFC 6265bis §6.1 asks for at least 50).
MAX_COOKIES_PER_DOMAIN = 50
#: Cookies kept in all (RFC 6265bis §6.1 asks for at least 3000).
MAX_COOKIES = 3000


@dataclass
class _Entry:
    cookie: Cookie
    #: Creation order, kept when the cookie is replaced (RFC 6265bis §5.7 step 22).
    serial: int
    #: The registrable domain the per-domain cap counts against.
    base: str


@public
class CookieJar(SessionFeature):
    """Stores cookies from responses and sends them back (not a default feature).

    Add it with ``Session(features=[CookieJar()])``. It keeps cookies in
    memory; :class:`anysoup.CookieJarText` and :class:`anysoup.CookieJarDB`
    keep them in files. See :doc:`cookies`.

    Args:
        accept_policy: Which cookies from responses are stored.
        read_only: libsoup's read-only jar: changes stay in memory, the
            ``changed`` signal is not emitted and nothing is ever written.
    """

    chain_position: ClassVar[int | None] = SessionFeature.POSITION_COOKIES

    changed: SignalDescriptor[CookieJar] = SignalDescriptor(
        "``(jar, old_cookie, new_cookie)``: a cookie was added (old is None), "
        "deleted (new is None) or replaced."
    )

    def __init__(
        self,
        *,
        accept_policy: CookieJarAcceptPolicy = CookieJarAcceptPolicy.ALWAYS,
        read_only: bool = False,
    ) -> None:
        self._signals: dict[str, Signal] | None = None
        self._accept_policy = CookieJarAcceptPolicy(accept_policy)
        self._read_only = bool(read_only)
        self._domains: dict[str, dict[tuple[str, str], _Entry]] = {}
        self._bases: Counter[str] = Counter()
        self._count = 0
        self._serial = 0
        self._pending: list[tuple[Cookie | None, Cookie | None]] = []

    # -- properties ----------------------------------------------------------------

    @property
    def accept_policy(self) -> CookieJarAcceptPolicy:
        """Which cookies from responses are stored."""
        return self._accept_policy

    @accept_policy.setter
    def accept_policy(self, policy: CookieJarAcceptPolicy) -> None:
        self._accept_policy = CookieJarAcceptPolicy(policy)

    def get_accept_policy(self) -> CookieJarAcceptPolicy:
        """Alias of :attr:`accept_policy`."""
        return self._accept_policy

    def set_accept_policy(self, policy: CookieJarAcceptPolicy) -> None:
        """Set :attr:`accept_policy`."""
        self.accept_policy = policy

    @property
    def read_only(self) -> bool:
        """Whether the jar is read-only (no ``changed``, nothing written)."""
        return self._read_only

    def is_persistent(self) -> bool:
        """Whether the jar keeps cookies in a file (False for the base jar)."""
        return False

    # -- reading -------------------------------------------------------------------

    def get_cookies(self, uri: str | URL, for_http: bool) -> str | None:
        """The ``Cookie`` header a request to ``uri`` would carry, or None.

        ``for_http=False`` leaves out HttpOnly cookies (what a script may see).
        """
        cookies = self.get_cookie_list(uri, for_http)
        return cookie_header(cookies) or None

    def get_cookie_list(self, uri: str | URL, for_http: bool) -> list[Cookie]:
        """The cookies a request to ``uri`` would carry, in sending order (RFC 6265bis §5.8.3)."""
        return self.get_cookie_list_with_same_site_info(uri, None, None, for_http, True, False)

    def get_cookie_list_with_same_site_info(
        self,
        uri: str | URL,
        top_level: str | URL | None,
        site_for_cookies: str | URL | None,
        for_http: bool,
        is_safe_method: bool,
        is_top_level_navigation: bool,
    ) -> list[Cookie]:
        """Like :meth:`get_cookie_list`, applying SameSite as libsoup does.

        Without ``top_level`` SameSite is not applied. Otherwise a Strict or
        Lax cookie goes only when ``site_for_cookies`` has the same host as
        ``uri`` (libsoup compares hosts, which is stricter than RFC 6265bis's
        registrable domains), except that a Lax cookie also goes with a
        top-level navigation using a safe method.
        """
        self._before_read()
        found = self._lookup(
            _as_url(uri),
            None if top_level is None else _as_url(top_level),
            None if site_for_cookies is None else _as_url(site_for_cookies),
            for_http,
            is_safe_method,
            is_top_level_navigation,
        )
        self._emit_sync()
        return found

    def all_cookies(self) -> list[Cookie]:
        """Every cookie in the jar, expired ones included until a lookup drops them."""
        self._before_read()
        return [e.cookie for bucket in self._domains.values() for e in bucket.values()]

    def _lookup(
        self,
        uri: URL,
        top_level: URL | None,
        site_for_cookies: URL | None,
        for_http: bool,
        is_safe_method: bool,
        is_top_level_navigation: bool,
    ) -> list[Cookie]:
        host = canonical_host(uri)
        if not host or not self._domains:
            return []
        now = _now()
        secure = is_secure(uri)
        path = uri.raw_path or "/"
        site_host = None if site_for_cookies is None else canonical_host(site_for_cookies)
        found: list[_Entry] = []
        for key in _bucket_keys(host):
            bucket = self._domains.get(key)
            if not bucket:
                continue
            for ckey, entry in list(bucket.items()):
                cookie = entry.cookie
                if cookie.expires is not None and cookie.expires <= now:
                    self._remove(key, ckey)
                elif (
                    (secure or not cookie.secure)
                    and (for_http or not cookie.http_only)
                    and path_match(path, cookie.path)
                    and _same_site_allows(
                        cookie.same_site,
                        host,
                        top_level,
                        site_host,
                        is_safe_method,
                        is_top_level_navigation,
                        for_http,
                    )
                ):
                    found.append(entry)
        found.sort(key=lambda e: (-len(e.cookie.path), e.serial))
        return [e.cookie for e in found]

    # -- writing -------------------------------------------------------------------

    def set_cookie(self, uri: str | URL, header_value: str) -> None:
        """Store ``header_value`` as if it came in a ``Set-Cookie`` from ``uri``.

        Under the third-party policies a cookie set without a first party is
        third party, so refused: use :meth:`set_cookie_with_first_party`.
        """
        self._set(_as_url(uri), None, header_value)
        self._emit_sync()

    def set_cookie_with_first_party(
        self, uri: str | URL, first_party: str | URL, header_value: str
    ) -> None:
        """:meth:`set_cookie` for a request made on behalf of ``first_party``'s page."""
        self._set(_as_url(uri), _as_url(first_party), header_value)
        self._emit_sync()

    def add_cookie(self, cookie: Cookie) -> None:
        """Add ``cookie`` as the program's own (no accept policy, origin taken as secure)."""
        self.add_cookie_full(cookie)

    def add_cookie_with_first_party(self, first_party: str | URL, cookie: Cookie) -> None:
        """Add ``cookie``, applying the accept policy against ``first_party``."""
        self.add_cookie_full(cookie, first_party=first_party)

    def add_cookie_full(
        self,
        cookie: Cookie,
        uri: str | URL | None = None,
        first_party: str | URL | None = None,
    ) -> None:
        """Add ``cookie`` as set by ``uri`` (None: secure) for ``first_party``'s page.

        The accept policy applies when ``first_party`` is given. Refused
        whatever the policy: a domain cookie for a public suffix; a Secure
        cookie, or one replacing a Secure cookie, from an insecure ``uri``;
        SameSite=None without Secure; a ``__Secure-`` cookie without Secure;
        a ``__Host-`` cookie that isn't Secure, host-only and for path ``/``;
        a nameless cookie whose value looks prefixed; control characters;
        name and value over 4096 characters. An expired cookie deletes the
        one it matches.
        """
        self._before_read()
        self._add(
            cookie,
            None if uri is None else _as_url(uri),
            None if first_party is None else _as_url(first_party),
            check_policy=first_party is not None,
        )
        self._emit_sync()

    def delete_cookie(self, cookie: Cookie) -> None:
        """Remove the jar's cookie with ``cookie``'s domain, path and name."""
        self._before_read()
        key = (cookie.name, cookie.path)
        bucket = self._domains.get(cookie.domain)
        if bucket is not None and key in bucket:
            self._remove(cookie.domain, key)
        self._emit_sync()

    def _set(self, uri: URL, first_party: URL | None, header_value: str) -> None:
        if self._accept_policy is CookieJarAcceptPolicy.NEVER:
            return
        self._before_read()
        cookie = Cookie.parse(header_value, uri)
        if cookie is not None:
            self._add(cookie, uri, first_party, check_policy=True)

    def _add(
        self, cookie: Cookie, uri: URL | None, first_party: URL | None, *, check_policy: bool
    ) -> None:
        """The storage model's checks (RFC 6265bis §5.7; libsoup's add_cookie_full)."""
        secure_origin = uri is None or is_secure(uri)
        if not _acceptable(cookie, secure_origin):
            return
        if check_policy and not self._policy_allows(cookie, first_party):
            return
        bucket = self._domains.get(cookie.domain)
        key = (cookie.name, cookie.path)
        old = bucket.get(key) if bucket is not None else None
        if not secure_origin and self._shadows_secure(cookie, old):
            return
        now = _now()
        if old is not None:
            if cookie.is_expired(now):  # how a server deletes a cookie
                self._remove(cookie.domain, key)
            elif old.cookie != cookie:
                previous, old.cookie = old.cookie, cookie
                self._record(previous, cookie)
            return
        if cookie.is_expired(now):
            return
        base = base_domain(cookie.domain.lstrip("."))
        if self._bases[base] >= MAX_COOKIES_PER_DOMAIN:
            self._evict(lambda e: e.base == base, now)
        if self._count >= MAX_COOKIES:
            self._evict(lambda e: True, now)
        self._serial += 1
        self._domains.setdefault(cookie.domain, {})[key] = _Entry(cookie, self._serial, base)
        self._bases[base] += 1
        self._count += 1
        self._record(None, cookie)

    def _policy_allows(self, cookie: Cookie, first_party: URL | None) -> bool:
        """The accept policy: libsoup's ``incoming_cookie_is_third_party``, with NEVER."""
        policy = self._accept_policy
        if policy is CookieJarAcceptPolicy.ALWAYS:
            return True
        if policy is CookieJarAcceptPolicy.NEVER:
            return False
        first_host = canonical_host(first_party) if first_party is not None else ""
        if not first_host:
            return False  # no first party: third party (libsoup's documented rule)
        if base_domain(cookie.domain.lstrip(".")) == base_domain(first_host):
            return True
        if policy is CookieJarAcceptPolicy.NO_THIRD_PARTY:
            return False
        return bool(self._domains.get(cookie.domain))  # grandfathered: seen before

    def _shadows_secure(self, cookie: Cookie, old: _Entry | None) -> bool:
        """Whether an insecure origin would replace or shadow a Secure cookie (§5.7 step 16)."""
        if old is not None and old.cookie.secure:
            return True
        if cookie.secure:
            return False
        mine = cookie.domain.lstrip(".")
        for bucket in self._domains.values():
            for entry in bucket.values():
                other = entry.cookie
                if not other.secure or other.name != cookie.name:
                    continue
                theirs = other.domain.lstrip(".")
                if (domain_match(mine, theirs) or domain_match(theirs, mine)) and path_match(
                    cookie.path, other.path
                ):
                    return True
        return False

    def _evict(self, pick: Callable[[_Entry], bool], now: datetime) -> None:
        """Make room among the cookies ``pick`` selects.

        The expired ones go first, else the oldest one, non-Secure before
        Secure (RFC 6265bis §5.8.3), so a flood of insecure cookies can't push
        out a site's Secure ones.
        """
        chosen = [
            (domain, key, entry)
            for domain, bucket in self._domains.items()
            for key, entry in bucket.items()
            if pick(entry)
        ]
        expired = [c for c in chosen if c[2].cookie.is_expired(now)]
        if not expired:
            expired = [min(chosen, key=lambda c: (c[2].cookie.secure, c[2].serial))]
        for domain, key, _ in expired:
            self._remove(domain, key)

    def _remove(self, domain: str, key: tuple[str, str]) -> None:
        bucket = self._domains[domain]
        entry = bucket.pop(key)
        if not bucket:
            del self._domains[domain]
        self._bases[entry.base] -= 1
        if not self._bases[entry.base]:
            del self._bases[entry.base]
        self._count -= 1
        self._record(entry.cookie, None)

    def _clear(self) -> None:
        """Forget every cookie silently (a store reloading its file)."""
        self._domains.clear()
        self._bases.clear()
        self._count = 0

    def _load(self, cookie: Cookie) -> None:
        """Add a cookie read from a file: checked like :meth:`add_cookie`, no signal, no write."""
        read_only, self._read_only = self._read_only, True
        try:
            self._add(cookie, None, None, check_policy=False)
        finally:
            self._read_only = read_only

    # -- changes -------------------------------------------------------------------

    def _record(self, old: Cookie | None, new: Cookie | None) -> None:
        if self._read_only:
            return  # libsoup: a read-only jar changes in memory, silently
        self._on_changed(old, new)
        if active(self, "changed") is not None:
            self._pending.append((old, new))

    def _on_changed(self, old: Cookie | None, new: Cookie | None) -> None:
        """Hook for persistent jars: called for every change, in order."""

    def _before_read(self) -> None:
        """Hook for persistent jars: pick up changes another process made."""

    def _emit_sync(self) -> None:
        pending, self._pending = self._pending, []
        signal = active(self, "changed")
        if signal is not None:
            for old, new in pending:
                signal.emit_sync(old, new)

    async def _emit(self) -> None:
        pending, self._pending = self._pending, []
        signal = active(self, "changed")
        if signal is not None:
            for old, new in pending:
                await signal.emit(old, new)

    # -- the feature ---------------------------------------------------------------

    async def handle(self, msg: Message, call_next: CallNext) -> InputStream:
        """Set ``Cookie`` for this hop, send, and store the hop's ``Set-Cookie`` headers."""
        self._before_read()
        uri = msg.uri
        cookies = self._lookup(
            uri,
            None if msg.first_party is None else _as_url(msg.first_party),
            None if msg.site_for_cookies is None else _as_url(msg.site_for_cookies),
            True,
            msg.method in SAFE_METHODS,
            msg.is_top_level_navigation,
        )
        headers = msg.request_headers
        if cookies:
            headers.replace("Cookie", cookie_header(cookies))
        elif "Cookie" in headers:
            headers.remove("Cookie")  # libsoup: the jar decides what is sent
        if self._pending:
            await self._emit()
        stream = await call_next(msg)
        if self._accept_policy is CookieJarAcceptPolicy.NEVER:
            return stream
        values = msg.response_headers.get_all("Set-Cookie")
        if not values:
            return stream
        try:
            first_party = None if msg.first_party is None else _as_url(msg.first_party)
            self._before_read()
            for value in values:
                cookie = Cookie.parse(value, uri)
                if cookie is not None:
                    self._add(cookie, uri, first_party, check_policy=True)
            if self._pending:
                await self._emit()
        except BaseException:
            stream._discard()  # a failing or cancelled handler: give the connection up now
            raise
        return stream

    def __repr__(self) -> str:
        return (
            f"<anysoup.{type(self).__name__} {self._count} cookies, "
            f"accept_policy={self._accept_policy.name}>"
        )


def _acceptable(cookie: Cookie, secure_origin: bool) -> bool:
    """The checks that depend on the cookie and the origin's security only."""
    domain = cookie.domain
    if not domain or domain == ".":
        return False
    if domain.startswith(".") and (is_ip(domain[1:]) or is_public_suffix(domain[1:])):
        return False  # no super-cookies (curl CVE-2014-3620, libsoup's rule)
    if domain.startswith(".") and normalise_domain(domain) != domain[1:]:
        return False  # not a canonical name: it could never be matched safely
    if cookie.secure and not secure_origin:
        return False  # RFC 6265bis §5.7 step 15
    if cookie.same_site is SameSitePolicy.NONE and not cookie.secure:
        return False  # libsoup, and browsers
    name = cookie.name.lower()
    if name.startswith("__secure-") and not cookie.secure:
        return False  # RFC 6265bis §4.1.3.1
    if name.startswith("__host-") and not (
        cookie.secure and cookie.host_only and cookie.path == "/"
    ):
        return False  # RFC 6265bis §4.1.3.2
    if not cookie.name and cookie.value.lower().startswith(("__secure-", "__host-")):
        return False  # a nameless cookie posing as a prefixed one (§5.7 step 21)
    if _CONTROL.intersection(cookie.name) or _CONTROL.intersection(cookie.value):
        return False
    if ";" in cookie.value or ";" in cookie.name or "=" in cookie.name:
        return False  # a program's cookie must not smuggle others into the Cookie header
    return len(cookie.name) + len(cookie.value) <= MAX_NAME_VALUE_SIZE


def _bucket_keys(host: str) -> list[str]:
    """The jar keys whose cookies may apply to ``host`` (libsoup's walk, from Mozilla)."""
    if is_ip(host):
        return [host]
    keys = [host, "." + host]
    rest = host
    while (dot := rest.find(".")) != -1:
        rest = rest[dot + 1 :]
        keys.append("." + rest)
    return keys


def _same_site_allows(
    policy: SameSitePolicy,
    host: str,
    top_level: URL | None,
    site_host: str | None,
    is_safe_method: bool,
    is_top_level_navigation: bool,
    for_http: bool,
) -> bool:
    """SameSite as libsoup's ``cookie_is_valid_for_same_site_policy`` applies it."""
    if policy is SameSitePolicy.NONE or top_level is None:
        return True
    if (
        policy is SameSitePolicy.LAX
        and is_top_level_navigation
        and (is_safe_method or not for_http)
    ):
        return True
    return site_host is not None and site_host == host
