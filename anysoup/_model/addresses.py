"""Where a connection goes: remote addresses and proxy URIs (value types).

A message records the address it was sent to (:data:`RemoteAddress`) and the
proxy it went through (:class:`ProxyURI`); the transport opens streams to
them. They live in the model so that messages can name them without
importing the code that connects.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from urllib.parse import quote

__all__ = ["SOCKS_SCHEMES", "ProxyURI", "RemoteAddress", "UnixSocketAddress", "mask"]

#: The SOCKS proxy schemes (curl's CURLOPT_PROXY(3)).
SOCKS_SCHEMES = ("socks4", "socks4a", "socks5", "socks5h")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class UnixSocketAddress:
    """The path of a Unix domain socket, for ``Session(remote_connectable=…)``."""

    #: The socket's file system path.
    path: str


#: Where a connection goes or came from: ``(host, port)`` or a Unix socket.
RemoteAddress = tuple[str, int] | UnixSocketAddress


def mask(text: str) -> str:
    """``text`` with the password of its user-info, if any, replaced by ``***``."""
    match = _SCHEME_RE.match(text)
    start = match.end() if match else 0
    userinfo, at, rest = text[start:].rpartition("@")
    if not at or ":" not in userinfo:
        return text
    return f"{text[:start]}{userinfo.split(':', 1)[0]}:***@{rest}"


# -- proxy URIs --------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class ProxyURI:
    """One proxy, parsed and checked: what a connection needs to reach it."""

    #: ``http``, ``https``, ``socks4``, ``socks4a``, ``socks5`` or ``socks5h``.
    scheme: str
    #: The host name (IDNA A-labels) or IP address, without brackets.
    host: str
    #: The port, the scheme's default when the URI gave none.
    port: int
    #: The user name, percent-decoded, or None.
    username: str | None = None
    #: The password, percent-decoded, or None. Never shown by ``repr``.
    password: str | None = None

    @property
    def is_http(self) -> bool:
        """Whether this is an HTTP proxy (``http`` or ``https``)."""
        return self.scheme in ("http", "https")

    @property
    def is_socks(self) -> bool:
        """Whether this is a SOCKS proxy (any version)."""
        return self.scheme in SOCKS_SCHEMES

    @property
    def remote_dns(self) -> bool:
        """Whether the proxy resolves the target's name (``socks4a``, ``socks5h``)."""
        return self.scheme in ("socks4a", "socks5h")

    @property
    def tls(self) -> bool:
        """Whether the connection to the proxy itself uses TLS (``https``)."""
        return self.scheme == "https"

    @property
    def label(self) -> str:
        """``host:port``, with brackets around an IPv6 address."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def uri(self) -> str:
        """The normalized URI, credentials included (percent-encoded)."""
        userinfo = ""
        if self.username is not None:
            userinfo = quote(self.username, safe="")
            if self.password is not None:
                userinfo += ":" + quote(self.password, safe="")
            userinfo += "@"
        return f"{self.scheme}://{userinfo}{self.label}"

    @property
    def basic_authorization(self) -> str | None:
        """``Proxy-Authorization`` for the URI's credentials (Basic, RFC 7617), or None.

        Sent up front, as curl does with a proxy URL's credentials.
        """
        if not self.username and not self.password:
            return None
        pair = f"{self.username or ''}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    def __repr__(self) -> str:
        return f"ProxyURI({mask(self.uri)!r})"
