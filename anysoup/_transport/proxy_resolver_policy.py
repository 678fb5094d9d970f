"""Proxy resolution: which proxy, if any, to use for a URI (policy: no I/O).

Theory of operation
-------------------
libsoup asks a ``GProxyResolver`` for a list of proxy URIs for each request
and tries them in order; ``"direct://"`` in that list means "connect without
a proxy". :class:`ProxyResolver` is that interface, and
:class:`SimpleProxyResolver` is GLib's ``GSimpleProxyResolver``: one default
proxy, one proxy per URI scheme, and a list of hosts to reach directly. A
lookup goes:

1. the host matches ``ignore_hosts``: ``["direct://"]``;
2. else the proxy set for the URI's scheme; ``ws`` falls back to ``http``'s
   and ``wss`` to ``https``'s, because a WebSocket handshake is an HTTP
   request to the same origin;
3. else the default proxy, else ``["direct://"]``.

Nothing is bypassed implicitly: not even ``localhost`` (DESIGN §6).

Proxy URIs are checked when they are set, so a typo fails where it was
made, not at the first request. :func:`parse_proxy` accepts what curl
accepts: ``http``, ``https`` (TLS to the proxy), ``socks4``, ``socks4a``,
``socks5``, ``socks5h`` (the last two letters meaning "the proxy resolves the
name"), an optional ``user:password@`` (percent-decoded), the default port
of the scheme, and a bare ``host:port``, which means ``http://``. A path is
ignored, as curl ignores it. Passwords never appear in errors or reprs.

The environment (:meth:`ProxyResolver.from_environment`) follows curl's
libcurl-env(3) rules:

* ``http_proxy`` is read in lower case only. A CGI server puts a request's
  ``Proxy:`` header into ``HTTP_PROXY``, so honouring the upper-case name
  would let any client choose the proxy ("httpoxy", CVE-2016-5385);
  curl, requests and Go ignore it too.
* ``https_proxy``, ``all_proxy`` (the default for every scheme) and
  ``no_proxy`` are read in either case; the lower-case name wins. An empty
  value counts as unset, so an empty lower-case name falls through to the
  upper-case one.

``ignore_hosts`` and ``no_proxy`` are matched by ``_no_proxy.NoProxyList``
(curl's rules; see that module).
"""

from __future__ import annotations

import abc
import os
import re
from collections.abc import Iterable, Mapping

from yarl import URL

from .._model.addresses import SOCKS_SCHEMES as _SOCKS_SCHEMES
from .._model.addresses import ProxyURI
from .._model.addresses import mask as _mask
from .no_proxy_policy import NoProxyList, _network, _split

__all__ = [
    "DIRECT",
    "ProxyResolver",
    "SimpleProxyResolver",
    "ProxyURI",
    "parse_proxy",
    "NoProxyList",
]

#: The lookup result that means "connect without a proxy" (GLib's convention).
DIRECT = "direct://"

#: The proxy schemes and their default ports (curl's CURLOPT_PROXY(3)).
_DEFAULT_PORTS = {"http": 80, "https": 443} | dict.fromkeys(_SOCKS_SCHEMES, 1080)
#: URI schemes that use another scheme's proxy unless given their own.
_FALLBACK_SCHEMES = {"ws": "http", "wss": "https"}
#: The variables read by ``from_environment``, in order of precedence.
_ENV_NAMES = {
    "http": ("http_proxy",),  # never HTTP_PROXY: see "httpoxy" above
    "https": ("https_proxy", "HTTPS_PROXY"),
    "default": ("all_proxy", "ALL_PROXY"),
    "no_proxy": ("no_proxy", "NO_PROXY"),
}
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
#: A host name after IDNA encoding (underscores occur in real internal names).
_HOST_RE = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?")


def _invalid(name: str, value: str, reason: str) -> ValueError:
    return ValueError(f"{name}: {_mask(value)!r} is not a valid proxy URI: {reason}")


def _parse(value: str, name: str) -> ProxyURI | None:
    """Parse a proxy setting named ``name``; None for ``direct://``."""
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected a proxy URI str, got {type(value).__name__}")
    text = value.strip()
    if _SCHEME_RE.match(text) is None:
        text = "http://" + text  # "proxy.corp:3128", as curl reads it
    scheme = text.split(":", 1)[0].lower()
    if scheme == "direct":
        if text.lower() != DIRECT:
            raise _invalid(name, value, "'direct://' takes no host")
        return None
    if scheme not in _DEFAULT_PORTS:
        known = ", ".join([*_DEFAULT_PORTS, "direct"])
        raise _invalid(name, value, f"the scheme {scheme!r} is not one of {known}")
    try:
        url = URL(text)
        port = url.explicit_port
    except ValueError:  # a bad port, bad brackets, a bad IDN
        # Not chained: yarl's message may quote the input, password and all.
        raise _invalid(name, value, "it does not parse as a URI") from None
    host = url.raw_host or ""
    if _HOST_RE.fullmatch(host) is None and _network(host) is None:  # a name, or an IP
        raise _invalid(name, value, "it has no valid host")
    if port == 0:
        raise _invalid(name, value, "port 0 is not a port")
    password = url.password
    username = url.user if url.user is not None or password is None else ""
    return ProxyURI(scheme, host, port or _DEFAULT_PORTS[scheme], username, password)


def parse_proxy(uri: str) -> ProxyURI:
    """Parse and check one proxy URI, as :meth:`ProxyResolver.lookup` returns them.

    Args:
        uri: ``scheme://[user[:password]@]host[:port]``, or ``host:port``
            for an HTTP proxy.

    Raises:
        ValueError: the URI is not a proxy (``direct://`` included: check for
            :data:`DIRECT` first). The message masks the password.
        TypeError: ``uri`` is not a str.
    """
    proxy = _parse(uri, "proxy")
    if proxy is None:
        raise ValueError("proxy: 'direct://' means no proxy, not a proxy to connect to")
    return proxy


def _normalize(value: str, name: str) -> str:
    """The canonical string for a proxy setting (``direct://`` or a proxy URI)."""
    proxy = _parse(value, name)
    return DIRECT if proxy is None else proxy.uri


# -- resolvers ---------------------------------------------------------------------


class ProxyResolver(abc.ABC):
    """Chooses the proxies for each URI: libsoup's ``proxy_resolver`` (GProxyResolver).

    Subclass it and implement :meth:`lookup` to choose proxies by other
    rules (a PAC script, a settings service).
    """

    @abc.abstractmethod
    async def lookup(self, uri: str | URL) -> list[str]:
        """The proxies to try for ``uri``, in order.

        Args:
            uri: The URI about to be requested.

        Returns:
            Proxy URIs (``http://host:port``, ``socks5h://user:pw@host:port``,
            ...), or ``["direct://"]`` to connect without a proxy.
        """

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> SimpleProxyResolver:
        """A resolver set from ``http_proxy``, ``https_proxy``, ``all_proxy``, ``no_proxy``.

        The rules are curl's (see the module documentation): ``HTTP_PROXY``
        in upper case is ignored ("httpoxy"); for the others the lower-case
        name wins; empty values are ignored.

        Args:
            environ: The variables to read; ``os.environ`` by default.
                They are read once, now: later changes have no effect.

        Raises:
            ValueError: a proxy variable does not hold a valid proxy URI; the
                message names the variable.
        """
        env = os.environ if environ is None else environ
        found: dict[str, tuple[str, str]] = {}
        for key, names in _ENV_NAMES.items():
            for name in names:
                value = env.get(name, "").strip()
                if value:
                    found[key] = (name, value)
                    break
        uri_proxies: dict[str, str] = {
            scheme: _normalize(found[scheme][1], found[scheme][0])
            for scheme in ("http", "https")
            if scheme in found
        }
        default = found.get("default")
        return SimpleProxyResolver(
            default_proxy=_normalize(default[1], default[0]) if default else None,
            ignore_hosts=found["no_proxy"][1] if "no_proxy" in found else (),
            uri_proxies=uri_proxies,
        )


class SimpleProxyResolver(ProxyResolver):
    """A default proxy, proxies per URI scheme and hosts to reach directly.

    GLib's ``GSimpleProxyResolver``; :meth:`ProxyResolver.from_environment`
    makes one from the environment.

    Args:
        default_proxy: The proxy for schemes without their own, or None.
        ignore_hosts: Hosts reached directly: ``no_proxy`` entries (a
            comma-separated str is split).
        uri_proxies: Proxies by URI scheme, ``{"https": "http://proxy:3128"}``.

    Raises:
        ValueError: a proxy URI is invalid; the message names the argument.
    """

    def __init__(
        self,
        default_proxy: str | None = None,
        ignore_hosts: Iterable[str] = (),
        uri_proxies: Mapping[str, str] | None = None,
    ) -> None:
        self._default: str | None = None
        self._uri_proxies: dict[str, str] = {}
        self._ignore_hosts: tuple[str, ...] = ()
        self._no_proxy = NoProxyList()
        self.set_default_proxy(default_proxy)
        self.set_ignore_hosts(ignore_hosts)
        for scheme, proxy in (uri_proxies or {}).items():
            self._set_uri_proxy(scheme, proxy, f"uri_proxies[{scheme!r}]")

    @property
    def default_proxy(self) -> str | None:
        """The proxy for URIs whose scheme has none of its own, normalized."""
        return self._default

    @default_proxy.setter
    def default_proxy(self, proxy: str | None) -> None:
        self.set_default_proxy(proxy)

    @property
    def ignore_hosts(self) -> tuple[str, ...]:
        """The ``no_proxy`` entries: hosts, domains and networks reached directly."""
        return self._ignore_hosts

    @ignore_hosts.setter
    def ignore_hosts(self, hosts: Iterable[str]) -> None:
        self.set_ignore_hosts(hosts)

    def set_default_proxy(self, proxy: str | None) -> None:
        """Set the proxy for URIs whose scheme has none of its own; None for none.

        Raises:
            ValueError: ``proxy`` is not a valid proxy URI.
        """
        self._default = None if proxy is None else _normalize(proxy, "default_proxy")

    def set_ignore_hosts(self, hosts: Iterable[str]) -> None:
        """Set the hosts reached directly (``no_proxy`` entries; see the module docs).

        Raises:
            TypeError: an entry is not a str.
        """
        entries = tuple(_split(hosts))  # once: ``hosts`` may be an iterator
        self._no_proxy = NoProxyList.compile(entries)
        self._ignore_hosts = entries

    def set_uri_proxy(self, scheme: str, proxy: str | None) -> None:
        """Set the proxy for URIs of ``scheme`` (``"http"``, ``"wss"``); None removes it.

        Raises:
            ValueError: ``proxy`` is not a valid proxy URI.
        """
        self._set_uri_proxy(scheme, proxy, "proxy")

    def _set_uri_proxy(self, scheme: str, proxy: str | None, name: str) -> None:
        if not isinstance(scheme, str) or not scheme:
            raise ValueError(f"scheme: expected a URI scheme such as 'https', got {scheme!r}")
        if proxy is None:
            self._uri_proxies.pop(scheme.lower(), None)
        else:
            self._uri_proxies[scheme.lower()] = _normalize(proxy, name)

    def _has_proxies(self) -> bool:
        """Whether any URI could get a proxy (if not, the session skips the lookup)."""
        return self._default is not None or bool(self._uri_proxies)

    async def lookup(self, uri: str | URL) -> list[str]:
        """The proxy for ``uri``: ``["direct://"]`` or one proxy URI (see the module docs).

        Raises:
            ValueError: ``uri`` is a str that does not parse as a URI.
        """
        url = uri if isinstance(uri, URL) else URL(uri)
        if self._no_proxy.matches(url.raw_host):
            return [DIRECT]
        scheme = url.scheme
        proxy = self._uri_proxies.get(scheme)
        if proxy is None and scheme in _FALLBACK_SCHEMES:
            proxy = self._uri_proxies.get(_FALLBACK_SCHEMES[scheme])
        return [proxy or self._default or DIRECT]

    def __repr__(self) -> str:
        default = None if self._default is None else _mask(self._default)
        schemes = {scheme: _mask(proxy) for scheme, proxy in self._uri_proxies.items()}
        return (
            f"SimpleProxyResolver(default_proxy={default!r}, "
            f"ignore_hosts={self._ignore_hosts!r}, uri_proxies={schemes!r})"
        )
