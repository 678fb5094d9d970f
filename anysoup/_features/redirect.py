"""The redirect stage: the outermost stage of the chain, part of the session.

Theory of operation: :func:`follow_redirects` sends the message through the
rest of the chain. When the answer is not one of the five redirect statuses
that is all: one set lookup, nothing allocated. Otherwise the synchronous
policy below decides the next hop from the status, the method, the body and
the ``Location`` header (libsoup's ``soup_session_redirect_message``, with
anysoup's one extension: 307/308 replay a bytes body for any method). The
stage then closes the 3xx body (``InputStream.aclose`` drains a small rest
raw, without decoding, or closes the connection), rewrites the request
(method, URI, body, headers), counts the re-send against the limit the
message shares with auth and retries, emits ``restarted`` and sends again.
Every stage inside sees each hop; the stages outside see one exchange.

Cancellation: the stage holds a body stream only between ``call_next``
returning it and ``aclose`` (which releases the connection even when it is
cancelled), and everything that can fail in between is synchronous and
closes the stream before raising. A cancelled hop leaves nothing behind.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, NamedTuple

from yarl import URL

from .._model.enums import NO_FLAGS, MessageFlags
from .._model.exceptions import RedirectBadUri, RedirectNoLocation
from .._model.resends import check_resend, forget_response
from .._model.signals import active

if TYPE_CHECKING:
    from .._model.body import InputStream
    from .._model.message import Message
    from .feature import CallNext

__all__ = [
    "REDIRECT_STATUSES",
    "SAFE_METHODS",
    "Hop",
    "follow_redirects",
    "redirect_method",
    "resolve_location",
]

#: The statuses that are followed (libsoup's ``SOUP_SESSION_WOULD_REDIRECT_AS_*``).
#: 300 (a choice for the user), 304 (a cache answer), 305 (deprecated, RFC 9110
#: §15.4.6) and 306 (unused, §15.4.7) are final answers, as in libsoup.
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Methods a redirect never changes except on 303 (libsoup's ``SOUP_METHOD_IS_SAFE``).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PROPFIND", "TRACE"})
#: Dropped on a hop to another origin (scheme, host or port).
_CREDENTIAL_HEADERS = ("Authorization", "Proxy-Authorization", "Cookie")
#: Headers that describe a request body: dropped with the body when the method
#: becomes GET (the Fetch standard's "request-body-header names" and the framing).
_BODY_HEADERS = (
    "Content-Type",
    "Content-Length",
    "Transfer-Encoding",
    "Content-Encoding",
    "Content-Language",
    "Content-Location",
)
#: A host after yarl's IDNA encoding: a registered name or an IPv6 literal
#: (with an optional zone). Anything else (a space, "<") is not a usable host.
_HOST_RE = re.compile(r"[A-Za-z0-9\-._~]+|[0-9A-Fa-f:.]+(?:%25[A-Za-z0-9\-._~]+)?")
_HTTP = frozenset({"http", "https"})
#: A WebSocket handshake (ws, wss) may also be sent on to a ws or wss Location.
_WEBSOCKET = frozenset({"http", "https", "ws", "wss"})


class Hop(NamedTuple):
    """The next request of a redirect."""

    #: The method to send.
    method: str
    #: The absolute URI to send it to.
    uri: URL
    #: Whether the request body (and its headers) goes along.
    keep_body: bool


# -- policy (no I/O) -------------------------------------------------------------


def redirect_method(status: int, method: str) -> tuple[str, bool] | None:
    """The method after a ``status`` redirect and whether the body is kept.

    None means the redirect is not followed and the 3xx is the final answer.
    The rules are libsoup's (RFC 9110 §15.4): 303 makes any method GET (HEAD
    stays HEAD); 302 with an unsafe method and 301 with POST make it GET, as
    every browser does; other 301, 302, 307 and 308 keep a safe method. 307
    and 308 keep an unsafe method too, with its body (§15.4.8, §15.4.9):
    libsoup declines those, anysoup follows them when the body can be
    replayed (the caller checks that). A 301 with an unsafe method other
    than POST is handed back, as in libsoup.
    """
    if status == 303 or (
        (status == 302 and method not in SAFE_METHODS) or (status == 301 and method == "POST")
    ):
        return ("HEAD" if method == "HEAD" else "GET"), False
    if status in REDIRECT_STATUSES and (method in SAFE_METHODS or status >= 307):
        return method, True
    return None


def resolve_location(base: URL, location: str) -> URL:
    """The absolute URI a ``Location`` value points to, resolved against ``base``.

    Relative references resolve as RFC 3986 §5 says. Characters a URI can't
    hold (spaces, quotes, non-ASCII) are percent-encoded rather than refused,
    as browsers and libsoup do; raw bytes that are valid UTF-8 are read as
    UTF-8. Without a fragment of its own, the result keeps ``base``'s (RFC
    9110 §10.2.2). A WebSocket handshake (``base`` ws or wss) may move to a
    ws, wss, http or https URI; any other request only to http or https.

    Raises:
        ValueError: The value is not a usable URI; the text says why.
    """
    text = _from_wire(location)
    try:
        # yarl would turn a space in the query into "+", which means a space
        # only to form decoders: "%20" means one everywhere.
        ref = URL(text.replace(" ", "%20"))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a URI ({exc})") from None
    allowed = _WEBSOCKET if base.scheme in ("ws", "wss") else _HTTP
    if ref.scheme:
        if ref.scheme not in allowed:
            raise ValueError(f"scheme {ref.scheme!r} is not {' or '.join(sorted(allowed))}")
        if not ref.raw_host:  # "http:///x", "http:x": absolute, and no host (RFC 3986 §3)
            raise ValueError("no host")
        target = ref
    else:
        try:
            target = base.join(ref)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not a URI ({exc})") from None
    host = target.raw_host
    if target.scheme not in allowed or not host or _HOST_RE.fullmatch(host) is None:
        raise ValueError("no usable host")
    if not target.port:
        raise ValueError("no usable port")
    if "#" not in text and base.raw_fragment:
        target = target.with_fragment(base.fragment)
    return target


def _from_wire(value: str) -> str:
    """A Location value as text: headers are read as latin-1, servers send UTF-8."""
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:  # not from the wire: already text
        return value
    if raw.isascii():
        return value
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # Not UTF-8: keep the bytes as they are, percent-encoded (as libsoup does).
        return "".join(c if c < "\x80" else f"%{ord(c):02X}" for c in value)


def next_hop(msg: Message) -> Hop | None:
    """The request that follows ``msg``'s redirect answer, or None to hand it back.

    Raises:
        RedirectNoLocation: The ``Location`` header is empty.
        RedirectBadUri: It is not a usable http(s) URI, or several differ.
    """
    locations = msg.response_headers.get_all("Location")
    if not locations:
        return None  # a 3xx without Location is a final answer (libsoup)
    move = redirect_method(msg.status, msg.method)
    if move is None:
        return None
    method, keep_body = move
    body = msg._body
    if keep_body and body is not None and not body.replayable:
        return None  # a stream body went out with the first request: nothing to replay
    location = locations[0]
    what = f"{msg.method} {msg.uri}: {msg.status} redirect"
    if any(other != location for other in locations):
        # Which one the server meant is unknowable; browsers refuse it too.
        raise RedirectBadUri(f"{what} with several different Location headers", message=msg)
    if not location:
        raise RedirectNoLocation(f"{what} with an empty Location header", message=msg)
    try:
        uri = resolve_location(msg.uri, location)
    except ValueError as exc:
        raise RedirectBadUri(f"{what} to {location!r}: {exc}", message=msg) from None
    return Hop(method, uri, keep_body)


def apply_hop(msg: Message, hop: Hop) -> None:
    """Turn ``msg`` into the request ``hop`` describes (the response stays)."""
    headers = msg.request_headers
    old, new = msg.uri, hop.uri
    if (old.raw_host, old.port) != (new.raw_host, new.port):
        # A Host the program set was meant for the old authority: the new
        # one gets the Host of its URI.
        headers.remove("Host")
        cross_origin = True
    else:
        cross_origin = old.scheme != new.scheme
    if cross_origin:
        # Credentials belong to the origin they were given for (libsoup strips
        # Authorization; curl, browsers and requests drop these too).
        for name in _CREDENTIAL_HEADERS:
            headers.remove(name)
    if not hop.keep_body:
        msg.set_request_body(None, None)
        for name in _BODY_HEADERS:
            headers.remove(name)
        if headers.header_contains("Expect", "100-continue"):
            headers.remove("Expect")  # never without content (RFC 9110 §10.1.1)
    msg.method = hop.method
    msg.uri = new


# -- the stage -------------------------------------------------------------------


async def follow_redirects(call_next: CallNext, msg: Message) -> InputStream:
    """Send ``msg`` through ``call_next``, following redirects (DESIGN §3).

    Unless ``msg`` has :attr:`MessageFlags.NO_REDIRECT`, a redirect answer is
    followed (see :func:`redirect_method`) until a final answer, whose body is
    returned. ``msg.uri`` and ``msg.method`` then show the last request.

    Raises:
        RedirectNoLocation, RedirectBadUri: A followed redirect had an empty or
            unusable ``Location``.
        TooManyRedirects: The 21st re-send would follow a redirect.
    """
    stream = await call_next(msg)
    if msg.status not in REDIRECT_STATUSES:
        return stream
    return await _follow(call_next, msg, stream)


async def _follow(call_next: CallNext, msg: Message, stream: InputStream) -> InputStream:
    while True:
        flags = msg.flags
        if flags is not NO_FLAGS and flags & MessageFlags.NO_REDIRECT:
            return stream
        try:
            hop = next_hop(msg)
            if hop is None:
                return stream
            check_resend(msg)
        except BaseException:  # only the synchronous policy can raise here
            await stream.aclose()
            raise
        # The 3xx body is never shown: drain a small rest raw, or drop the connection.
        await stream.aclose()
        apply_hop(msg, hop)
        signal = active(msg, "restarted")
        if signal is not None:
            await signal.emit()  # handlers see the new request and the 3xx that caused it
        forget_response(msg)
        stream = await call_next(msg)
        if msg.status not in REDIRECT_STATUSES:
            return stream
