"""The client's side of the WebSocket opening handshake (policy: no I/O).

Theory of operation: a WebSocket starts as an HTTP/1.1 GET asking to switch
protocols (RFC 6455 §4.1). :func:`prepare_request` puts the handshake headers
on the message and returns the fresh ``Sec-WebSocket-Key``; the message then
goes through the session like any other (redirects, auth, cookies), and may
be prepared again before it is re-sent: each call replaces every header it
owns, so the request always carries one consistent offer. When the answer
arrives, :func:`check_response` judges it against what was offered and
returns what was agreed: the subprotocol and the configured extensions.

The answer is judged as RFC 6455 §4.1 asks of a client, in this order:

* any status but 101 is ``NOT_WEBSOCKET`` (the response stays on the
  message), except a 403 to a request that carried an ``Origin``, which is
  ``BAD_ORIGIN`` (libsoup's reading: the server refused the origin);
* then ``BAD_HANDSHAKE`` for an ``Upgrade`` other than ``websocket``, a
  ``Connection`` without ``upgrade``, a missing or wrong
  ``Sec-WebSocket-Accept``, a subprotocol that was not offered (or several),
  and an extension that was not offered, is named twice, is malformed, or
  whose :meth:`~anysoup.WebsocketExtension.configure` refuses its parameters.

The ``Sec-WebSocket-Extensions`` grammar (§9.1) is parsed strictly: an
answer the client can't read exactly is one it must not act on. Extension
and parameter names are compared as sent, as wsproto compares them.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._model.enums import WebsocketErrorCode
from .._model.exceptions import WebsocketError
from .._model.grammar import ESCAPE as _ESCAPE
from .._model.grammar import QBODY as _QBODY
from .._model.grammar import TOKEN as _TOKEN
from .._model.grammar import TOKEN_FULL as _TOKEN_FULL
from .._model.grammar import unescape as _escaped

if TYPE_CHECKING:
    from .._model.message import Message
    from .._model.websocket_extension import WebsocketExtension

__all__ = ["accept_key", "check_response", "make_key", "parse_extensions", "prepare_request"]

#: RFC 6455 §1.3: the GUID the server appends to the key before hashing.
_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# -- keys ------------------------------------------------------------------------------


def make_key() -> str:
    """A new ``Sec-WebSocket-Key``: 16 random bytes in base64 (RFC 6455 §4.1)."""
    return base64.b64encode(secrets.token_bytes(16)).decode("ascii")


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` a server must answer ``key`` with (RFC 6455 §4.2.2).

    Args:
        key: The ``Sec-WebSocket-Key`` sent.
    """
    # SHA-1 is the protocol's choice; it proves the server read the key, no secret.
    digest = hashlib.sha1((key + _GUID).encode("ascii"), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


# -- the request -----------------------------------------------------------------------


def prepare_request(
    msg: Message,
    *,
    origin: str | None,
    protocols: Sequence[str] | None,
    extensions: Sequence[WebsocketExtension],
) -> str:
    """Put the opening handshake's headers on ``msg`` (RFC 6455 §4.1).

    Sets ``Upgrade``, ``Connection``, a new ``Sec-WebSocket-Key``,
    ``Sec-WebSocket-Version: 13``, and ``Origin``, ``Sec-WebSocket-Protocol``
    and ``Sec-WebSocket-Extensions`` when there is something to say; a
    protocol or extension header left from an earlier call is removed.

    Args:
        msg: The handshake request; its method must be GET.
        origin: The ``Origin`` to send, or None to leave the header as it is.
        protocols: The subprotocols to offer, most wanted first.
        extensions: The extension instances to offer, in order.

    Returns:
        The ``Sec-WebSocket-Key`` sent, for :func:`check_response`.

    Raises:
        ValueError: The method is not GET, a protocol is not a token or is
            given twice, or an extension's name is not a token.
        TypeError: ``protocols`` is a single ``str``.
    """
    if msg.method != "GET":
        raise ValueError(f"a WebSocket handshake is a GET request, not {msg.method!r}")
    offered = _check_protocols(protocols)
    for extension in extensions:
        if not _TOKEN_FULL.match(extension.name):
            raise ValueError(f"WebSocket extension name {extension.name!r} is not a token")
    key = make_key()
    headers = msg.request_headers
    headers.replace("Upgrade", "websocket")
    headers.replace("Connection", "Upgrade")
    headers.replace("Sec-WebSocket-Key", key)
    headers.replace("Sec-WebSocket-Version", "13")
    if origin is not None:
        headers.replace("Origin", origin)
    if offered:
        headers.replace("Sec-WebSocket-Protocol", ", ".join(offered))
    else:
        headers.remove("Sec-WebSocket-Protocol")
    if extensions:
        headers.replace("Sec-WebSocket-Extensions", ", ".join(map(_offer, extensions)))
    else:
        headers.remove("Sec-WebSocket-Extensions")
    return key


def _check_protocols(protocols: Sequence[str] | None) -> list[str]:
    if isinstance(protocols, str):
        raise TypeError(f"protocols: expected a sequence of str, got the str {protocols!r}")
    seen: list[str] = []
    for protocol in protocols or ():
        # RFC 6455 §4.1 item 10: each subprotocol is a token, all distinct.
        if not isinstance(protocol, str) or not _TOKEN_FULL.match(protocol):
            raise ValueError(f"WebSocket subprotocol {protocol!r} is not a token")
        if protocol in seen:
            raise ValueError(f"WebSocket subprotocol {protocol!r} is given twice")
        seen.append(protocol)
    return seen


def _offer(extension: WebsocketExtension) -> str:
    params = extension.request_params()
    return f"{extension.name}; {params}" if params else extension.name


# -- Sec-WebSocket-Extensions (RFC 6455 §9.1) ------------------------------------------

# Separators between elements: empty elements are ignored (RFC 9110 §5.6.1.2).
_SEPARATORS = re.compile(r"[ \t]*(?:,[ \t]*)*")
_NAME = re.compile(_TOKEN)
# ``; name``, optionally ``= token`` or ``= "quoted"``; the whitespace is BWS.
_PARAM = re.compile(
    rf"""[ \t]*;[ \t]*(?P<name>{_TOKEN})
    (?:[ \t]*=[ \t]*(?:(?P<token>{_TOKEN})|"(?P<quoted>{_QBODY})"))?""",
    re.VERBOSE,
)
_ELEMENT_END = re.compile(r"[ \t]*(?:,|\Z)")


def parse_extensions(value: str | None) -> list[tuple[str, dict[str, str | None]]]:
    """Read a ``Sec-WebSocket-Extensions`` value, strictly.

    The grammar is ``name *( ";" param [ "=" ( token / quoted-string ) ] )``,
    elements separated by commas (RFC 6455 §9.1).

    Args:
        value: The header value (several lines joined with commas), or None.

    Returns:
        The elements in order: each name with its parameters (value None for
        a parameter without ``=``, quoted values unquoted).

    Raises:
        ValueError: An element without a name, a name or parameter that is
            not a token, a quoted value that is not a token once unquoted
            (§9.1), a parameter given twice in one element, or stray text.
    """
    found: list[tuple[str, dict[str, str | None]]] = []
    if value is None:
        return found
    pos, end = 0, len(value)
    while True:
        pos = _match(_SEPARATORS, value, pos).end()
        if pos == end:
            return found
        name_match = _NAME.match(value, pos)
        if name_match is None:
            raise ValueError(f"an element without an extension name at {value[pos : pos + 20]!r}")
        name = name_match.group()
        params: dict[str, str | None] = {}
        pos = name_match.end()
        while (param := _PARAM.match(value, pos)) is not None:
            pname, token, quoted = param.group("name", "token", "quoted")
            if pname in params:
                raise ValueError(f"extension {name!r}: parameter {pname!r} given twice")
            if quoted is not None:
                token = _ESCAPE.sub(_escaped, quoted)
                if not _TOKEN_FULL.match(token):
                    raise ValueError(f"extension {name!r}: the value of {pname!r} is not a token")
            params[pname] = token
            pos = param.end()
        if _ELEMENT_END.match(value, pos) is None:
            raise ValueError(f"extension {name!r}: unexpected {value[pos : pos + 20]!r}")
        found.append((name, params))


def _match(pattern: re.Pattern[str], value: str, pos: int) -> re.Match[str]:
    m = pattern.match(value, pos)
    assert m is not None  # the pattern matches the empty string
    return m


# -- the response ----------------------------------------------------------------------


def check_response(
    msg: Message,
    key: str,
    *,
    protocols: Sequence[str] | None,
    offered: Sequence[WebsocketExtension],
    origin_sent: bool,
) -> tuple[str | None, list[WebsocketExtension]]:
    """Judge the server's answer to the opening handshake (RFC 6455 §4.1).

    Args:
        msg: The handshake message, with its response.
        key: The ``Sec-WebSocket-Key`` :func:`prepare_request` returned.
        protocols: The subprotocols offered.
        offered: The extension instances offered.
        origin_sent: Whether the request carried an ``Origin``.

    Returns:
        The subprotocol the server chose (None if none), and the extensions
        it accepted, configured, in the order of its answer (the order wsproto
        applies them in).

    Raises:
        WebsocketError: The answer is not a WebSocket handshake
            (``NOT_WEBSOCKET``; ``BAD_ORIGIN`` for a 403 to a request with an
            Origin) or a faulty one (``BAD_HANDSHAKE``); the text names the
            host and the cause, the error carries ``msg``.
    """
    headers = msg.response_headers
    if msg.status != 101:
        answer = f"{msg.status} {msg.reason_phrase}".rstrip()
        if msg.status == 403 and origin_sent:
            cause = f"the server answered {answer}: it refused the Origin"
            raise _failure(msg, WebsocketErrorCode.BAD_ORIGIN, cause)
        cause = f"the server answered {answer}, not 101 Switching Protocols"
        raise _failure(msg, WebsocketErrorCode.NOT_WEBSOCKET, cause)
    upgrade = headers.get_list("Upgrade")
    if not headers.header_equals("Upgrade", "websocket"):
        raise _bad(msg, f"Upgrade is {upgrade!r}, not 'websocket'")
    if not headers.header_contains("Connection", "upgrade"):
        connection = headers.get_list("Connection")
        raise _bad(msg, f"Connection is {connection!r}, without 'upgrade'")
    accept = headers.get_list("Sec-WebSocket-Accept")
    if accept is None:
        raise _bad(msg, "no Sec-WebSocket-Accept")
    if accept != accept_key(key):
        raise _bad(msg, "wrong Sec-WebSocket-Accept")
    return _chosen_protocol(msg, protocols), _accepted_extensions(msg, offered)


def _chosen_protocol(msg: Message, protocols: Sequence[str] | None) -> str | None:
    chosen = msg.response_headers.get_all("Sec-WebSocket-Protocol")
    if not chosen:
        return None
    # §4.1 item 6 (client requirements): one of the protocols offered, or none.
    if len(chosen) > 1 or "," in chosen[0]:
        raise _bad(msg, f"the server chose several subprotocols: {', '.join(chosen)!r}")
    if not protocols:
        raise _bad(msg, f"the server chose subprotocol {chosen[0]!r}, but none was offered")
    if chosen[0] not in protocols:
        raise _bad(msg, f"the server chose subprotocol {chosen[0]!r}, which was not offered")
    return chosen[0]


def _accepted_extensions(
    msg: Message, offered: Sequence[WebsocketExtension]
) -> list[WebsocketExtension]:
    try:
        answer = parse_extensions(msg.response_headers.get_list("Sec-WebSocket-Extensions"))
    except ValueError as exc:
        raise _bad(msg, f"malformed Sec-WebSocket-Extensions: {exc}") from exc
    accepted: list[WebsocketExtension] = []
    for name, params in answer:
        # §4.1 item 5, §9.1: the server picks among those offered, each at most once.
        if any(extension.name == name for extension in accepted):
            raise _bad(msg, f"the server accepted extension {name!r} twice")
        extension = next((e for e in offered if e.name == name), None)
        if extension is None:
            raise _bad(msg, f"the server accepted extension {name!r}, which was not offered")
        try:
            extension.configure(params)
        except ValueError as exc:
            raise _bad(msg, f"extension {name!r}: {exc}") from exc
        # configure() returned: accepted, whether or not an override called super().
        extension._configured = True
        accepted.append(extension)
    return accepted


def _failure(msg: Message, code: WebsocketErrorCode, cause: str) -> WebsocketError:
    host = msg.uri.raw_host or ""
    label = f"[{host}]:{msg.uri.port}" if ":" in host else f"{host}:{msg.uri.port}"
    return WebsocketError(f"WebSocket handshake with {label}: {cause}", code=code, message=msg)


def _bad(msg: Message, cause: str) -> WebsocketError:
    return _failure(msg, WebsocketErrorCode.BAD_HANDSHAKE, cause)
