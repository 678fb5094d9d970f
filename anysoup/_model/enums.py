"""Enumerations and flags of the public API, named as in libsoup."""

from __future__ import annotations

import enum

__all__ = [
    "CacheResult",
    "HTTPVersion",
    "MessageFlags",
    "MessagePriority",
    "NetworkEvent",
    "SessionErrorCode",
    "SpliceFlags",
    "TlsCertificateFlags",
    "WebsocketCloseCode",
    "WebsocketDataType",
    "WebsocketErrorCode",
    "WebsocketState",
]


class HTTPVersion(enum.Enum):
    """The HTTP version of a message (libsoup's ``SoupHTTPVersion``)."""

    #: HTTP/1.0.
    HTTP_1_0 = "1.0"
    #: HTTP/1.1.
    HTTP_1_1 = "1.1"
    #: HTTP/2.
    HTTP_2_0 = "2"


class MessageFlags(enum.Flag):
    """Flags that change how a message is sent (libsoup's ``SoupMessageFlags``)."""

    #: No flag set.
    NONE = 0
    #: Don't follow redirects: a 3xx is returned to the caller as is.
    NO_REDIRECT = enum.auto()
    #: Send on a new connection, never a pooled one.
    NEW_CONNECTION = enum.auto()
    #: Treat the method as idempotent: a pooled connection may be reused.
    IDEMPOTENT = enum.auto()
    #: Don't use cached credentials for this message.
    DO_NOT_USE_AUTH_CACHE = enum.auto()
    #: Fill :attr:`anysoup.Message.metrics` while the message is sent.
    COLLECT_METRICS = enum.auto()


#: ``MessageFlags.NONE``, typed as the class so that an ``is`` test against it
#: doesn't narrow (the hot path tests identity: Flag operators are slow).
NO_FLAGS: MessageFlags = MessageFlags.NONE


class MessagePriority(enum.IntEnum):
    """The order in which queued messages get a connection; higher goes first."""

    #: Lowest priority.
    VERY_LOW = 0
    #: Below normal.
    LOW = 1
    #: The default.
    NORMAL = 2
    #: Above normal.
    HIGH = 3
    #: Served before everything else.
    VERY_HIGH = 4


class SpliceFlags(enum.Flag):
    """Flags for :meth:`anysoup.Session.send_and_splice`."""

    #: Close neither stream.
    NONE = 0
    #: Close the response body stream when done (it always is: the connection goes back).
    CLOSE_SOURCE = enum.auto()
    #: Close the output stream when done.
    CLOSE_TARGET = enum.auto()


class SessionErrorCode(enum.Enum):
    """The code carried by :class:`anysoup.SessionError`."""

    #: The peer's answer could not be parsed as HTTP.
    PARSING = "parsing"
    #: A transfer or content coding could not be decoded.
    ENCODING = "encoding"
    #: More than 20 re-sends, the last one for a redirect.
    TOO_MANY_REDIRECTS = "too-many-redirects"
    #: More than 20 re-sends, the last one not for a redirect.
    TOO_MANY_RESTARTS = "too-many-restarts"
    #: A redirect with an empty ``Location``.
    REDIRECT_NO_LOCATION = "redirect-no-location"
    #: A redirect with a ``Location`` that is not a usable http(s) URI.
    REDIRECT_BAD_URI = "redirect-bad-uri"
    #: The message was sent while it was already queued.
    MESSAGE_ALREADY_IN_QUEUE = "message-already-in-queue"


class TlsPasswordFlags(enum.Flag):
    """What a password request says about the attempt (GLib's ``GTlsPasswordFlags``)."""

    #: The first attempt.
    NONE = 0
    #: The password given before was wrong.
    RETRY = enum.auto()
    #: Several wrong passwords were given already.
    MANY_TRIES = enum.auto()
    #: The last attempt: another wrong password fails the request.
    FINAL_TRY = enum.auto()


class TLDErrorCode(enum.Enum):
    """The code carried by :class:`anysoup.TLDError` (libsoup's ``SoupTLDError``)."""

    #: The host name is not valid (a leading dot, an empty label, a bad character).
    INVALID_HOSTNAME = "invalid-hostname"
    #: The "host name" is an IP address, which has no base domain.
    IS_IP_ADDRESS = "is-ip-address"
    #: The host name is itself a public suffix (``co.uk``): no label is left.
    NOT_ENOUGH_DOMAINS = "not-enough-domains"
    #: The host name ends in no listed public suffix (``printer.lan``).
    NO_BASE_DOMAIN = "no-base-domain"
    #: The public suffix list could not be loaded.
    NO_PSL_DATA = "no-psl-data"


class TlsCertificateFlags(enum.Flag):
    """Why a peer certificate failed validation (GLib's ``GTlsCertificateFlags``)."""

    #: No problem found.
    NO_FLAGS = 0
    #: The signing certificate authority is not known.
    UNKNOWN_CA = enum.auto()
    #: The certificate does not match the expected identity of the site.
    BAD_IDENTITY = enum.auto()
    #: The certificate's activation time is still in the future.
    NOT_ACTIVATED = enum.auto()
    #: The certificate has expired.
    EXPIRED = enum.auto()
    #: The certificate has been revoked.
    REVOKED = enum.auto()
    #: The certificate's algorithm is considered insecure.
    INSECURE = enum.auto()
    #: Some other error occurred validating the certificate.
    GENERIC_ERROR = enum.auto()


class NetworkEvent(enum.Enum):
    """Steps of making a connection, reported by ``Message.network_event``."""

    #: Looking up the host name.
    RESOLVING = "resolving"
    #: The host name was resolved.
    RESOLVED = "resolved"
    #: Connecting to an address.
    CONNECTING = "connecting"
    #: Connected to an address.
    CONNECTED = "connected"
    #: Negotiating with a proxy.
    PROXY_NEGOTIATING = "proxy-negotiating"
    #: The proxy negotiation is done.
    PROXY_NEGOTIATED = "proxy-negotiated"
    #: Starting the TLS handshake.
    TLS_HANDSHAKING = "tls-handshaking"
    #: The TLS handshake is done.
    TLS_HANDSHAKED = "tls-handshaked"
    #: The connection is ready for messages.
    COMPLETE = "complete"


class WebsocketErrorCode(enum.Enum):
    """The code carried by :class:`anysoup.WebsocketError`."""

    #: A generic failure.
    FAILED = "failed"
    #: The server did not answer the handshake with 101 Switching Protocols.
    NOT_WEBSOCKET = "not-websocket"
    #: The 101 answer was not a valid WebSocket handshake.
    BAD_HANDSHAKE = "bad-handshake"
    #: The server refused the origin.
    BAD_ORIGIN = "bad-origin"


class WebsocketState(enum.IntEnum):
    """Where a :class:`anysoup.WebsocketConnection` is (libsoup's ``SoupWebsocketState``)."""

    #: Messages go both ways.
    OPEN = 1
    #: The closing handshake began (either side); nothing more can be sent.
    CLOSING = 2
    #: Closed; the connection is gone.
    CLOSED = 3


class WebsocketDataType(enum.IntEnum):
    """The kind of a WebSocket message (libsoup's ``SoupWebsocketDataType``)."""

    #: UTF-8 text (a ``str``).
    TEXT = 1
    #: Binary data (``bytes``).
    BINARY = 2


class WebsocketCloseCode(enum.IntEnum):
    """Close codes of RFC 6455 §7.4.1 (libsoup's ``SoupWebsocketCloseCode``).

    Applications may also use their own codes, 3000 to 4999.
    """

    #: The purpose of the connection was fulfilled.
    NORMAL = 1000
    #: An endpoint is going away (a page closed, a server shutting down).
    GOING_AWAY = 1001
    #: A peer broke the protocol.
    PROTOCOL_ERROR = 1002
    #: A kind of data the endpoint can't accept.
    UNSUPPORTED_DATA = 1003
    #: A close frame without a code (never sent).
    NO_STATUS = 1005
    #: The connection ended without a close frame (never sent).
    ABNORMAL = 1006
    #: Data inconsistent with its type (text that isn't UTF-8).
    BAD_DATA = 1007
    #: A message against the endpoint's policy.
    POLICY_VIOLATION = 1008
    #: A message too big to process.
    TOO_BIG = 1009
    #: The server didn't negotiate an extension the client requires.
    NO_EXTENSION = 1010
    #: The server met an unexpected condition.
    SERVER_ERROR = 1011
    #: The TLS handshake failed (never sent).
    TLS_HANDSHAKE = 1015


class LoggerLogLevel(enum.IntEnum):
    """How much :class:`anysoup.Logger` writes (libsoup's ``SoupLoggerLogLevel``)."""

    #: Nothing.
    NONE = 0
    #: The request and status lines, with timestamps.
    MINIMAL = 1
    #: Also every header.
    HEADERS = 2
    #: Also the bodies.
    BODY = 3


class CacheResult(enum.Enum):
    """Where a message's answer came from, for the cache (``Message.cache_result``)."""

    #: The cache took no part: no :class:`~anysoup.Cache` on the session, the
    #: message disabled it, or the request can't use a cache (not GET or HEAD,
    #: a Range request).
    NONE = "none"
    #: The cache had nothing usable: the answer came from the network (and
    #: may have been stored). A ``504`` made up for ``only-if-cached`` is a miss too.
    MISS = "miss"
    #: A fresh stored answer, served without contacting the server.
    HIT = "hit"
    #: A stale stored answer, served without a successful validation, as the
    #: request (``max-stale``) or the response (``stale-while-revalidate``,
    #: ``stale-if-error``, RFC 5861) allowed.
    STALE = "stale"
    #: The server confirmed the stored answer (``304 Not Modified``): its
    #: headers were updated and its stored body served.
    REVALIDATED = "revalidated"
