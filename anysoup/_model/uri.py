"""URIs: parsing and the pieces of a URI that HTTP/1.1 puts on the wire.

anysoup's URI type is :class:`yarl.URL` (immutable, RFC 3986, IDNA). This
module is policy: no I/O.
"""

from __future__ import annotations

from yarl import URL

__all__ = [
    "HTTP_SCHEMES",
    "absolute_form",
    "authority_form",
    "host_header",
    "lacks_scheme",
    "parse_uri",
    "request_target",
    "scheme_class",
]

#: Schemes a message may use; ws and wss are for WebSocket handshakes.
HTTP_SCHEMES = frozenset({"http", "https", "ws", "wss"})
_SECURE = frozenset({"https", "wss"})


def parse_uri(uri: str | URL, *, what: str = "uri") -> URL:
    """Return ``uri`` as a :class:`yarl.URL`, checking it can be sent.

    Raises:
        ValueError: The URI is not absolute, has no host, or its scheme is
            not http, https, ws or wss. The text names ``what``.
    """
    if isinstance(uri, str):
        try:
            url = URL(uri)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{what}: {uri!r} is not a valid URI ({exc})") from None
    elif isinstance(uri, URL):
        url = uri
    else:
        raise TypeError(f"{what}: expected str or yarl.URL, got {type(uri).__name__}")
    if url.scheme not in HTTP_SCHEMES:
        if isinstance(uri, str) and lacks_scheme(uri, url):
            raise ValueError(f"{what}: {uri!r} has no scheme; did you mean {'http://' + uri!r}?")
        if not url.scheme:
            raise ValueError(
                f"{what}: {str(url)!r} is a relative reference; an absolute http(s) URI is needed"
            )
        raise ValueError(f"{what}: {str(url)!r} has scheme {url.scheme!r}, not http(s) or ws(s)")
    if not url.raw_host:
        raise ValueError(f"{what}: {str(url)!r} has no host")
    if url.port is None:
        raise ValueError(f"{what}: {str(url)!r} has no usable port")
    return url


def lacks_scheme(text: str, url: URL) -> bool:
    """Whether ``text`` (parsed as ``url``) looks like a host written without ``http://``.

    ``127.0.0.1:8080/x`` and ``localhost:8080`` parse as a scheme followed by
    a path (RFC 3986 §3.1 allows dots in a scheme); ``example.org/x`` and
    ``[::1]:80`` parse as a relative path. A real scheme (``mailto:a@b``) is
    never followed by a port number, and a path (``users/1``, ``/users``)
    rarely starts with a dotted name.
    """
    if "://" in text or text.startswith("/"):
        return False
    if url.scheme:
        after = text[len(url.scheme) + 1 :]
        return "." in url.scheme or url.scheme == "localhost" or after[:1].isdigit()
    head = text.split("/", 1)[0].split("?", 1)[0]
    return head.startswith("[") or "." in head or head.lower().startswith("localhost")


def is_secure(url: URL) -> bool:
    """Whether the URI's scheme uses TLS (https, wss)."""
    return url.scheme in _SECURE


def scheme_class(url: URL) -> str:
    """``"https"`` for TLS schemes, ``"http"`` for the others (pool keys use this)."""
    return "https" if url.scheme in _SECURE else "http"


def host_header(url: URL) -> str:
    """The ``Host`` header for ``url``: IDNA host, brackets for IPv6, port if not default."""
    host = url.raw_host or ""
    if ":" in host:
        host = f"[{host}]"
    if url.explicit_port is not None and not url.is_default_port():
        return f"{host}:{url.port}"
    return host


def request_target(url: URL) -> str:
    """The origin-form request target: the encoded path and query, never the fragment."""
    return url.raw_path_qs or "/"


def absolute_form(url: URL) -> str:
    """The absolute-form target, for a forwarding proxy (RFC 9112 §3.2.2): no user, no fragment."""
    if url.raw_user or url.raw_fragment:
        return str(url.with_user(None).with_fragment(None))
    return str(url)


def authority_form(url: URL) -> str:
    """The authority-form target of CONNECT (RFC 9112 §3.2.3): ``host:port``, always a port.

    The host as the connection names it: brackets for IPv6, no final dot.
    """
    host = (url.raw_host or "").rstrip(".")
    return f"[{host}]:{url.port}" if ":" in host else f"{host}:{url.port}"
