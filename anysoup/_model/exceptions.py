"""The exception hierarchy: everything anysoup raises derives from :class:`Error`.

Messages name the phase, the host and the cause ("reading response headers
from example.org:443: connection reset by peer"), never credentials, cookies
or bodies. Exceptions raised for a message carry it as ``.message``.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING

from .enums import SessionErrorCode, TLDErrorCode, TlsCertificateFlags, WebsocketErrorCode

if TYPE_CHECKING:
    from .message import Message

__all__ = [
    "BodyTooLarge",
    "ConnectError",
    "EncodingError",
    "Error",
    "HTTPStatusError",
    "IncompleteBody",
    "MessageAlreadyInQueue",
    "NetworkError",
    "ParsingError",
    "RedirectBadUri",
    "RedirectNoLocation",
    "RequestCancelled",
    "SessionError",
    "TLDError",
    "TimeoutError",
    "TlsError",
    "TooManyRedirects",
    "TooManyRestarts",
    "WebsocketClosed",
    "WebsocketError",
]


class Error(Exception):
    """The root of every exception anysoup raises.

    Attributes:
        message: The :class:`anysoup.Message` the error was raised for, or
            ``None`` when it concerns no particular message.
    """

    #: Whether part of the response had arrived (no re-send on a new connection then).
    _response_started = False

    def __init__(self, text: str, *, message: Message | None = None) -> None:
        super().__init__(text)
        self.message = message


class SessionError(Error):
    """An HTTP-level failure; ``code`` tells which (libsoup's ``SoupSessionError``).

    Each code has its own subclass, so ``except anysoup.ParsingError`` works as
    well as checking ``code``.
    """

    #: The error code; set by each subclass.
    code: SessionErrorCode


class ParsingError(SessionError):
    """The peer's answer is not valid HTTP.

    A malformed status line or headers, a header block over 256 KiB, more
    than 10 informational responses.

    The connection is closed; retrying may work if the server was confused,
    but usually the server or something between is broken.
    """

    code = SessionErrorCode.PARSING


class EncodingError(SessionError):
    """A transfer or content coding of the body could not be decoded."""

    code = SessionErrorCode.ENCODING


class TooManyRedirects(SessionError):
    """The message was re-sent 20 times and the last answer was a redirect."""

    code = SessionErrorCode.TOO_MANY_REDIRECTS


class TooManyRestarts(SessionError):
    """The message was re-sent 20 times (auth retries, stale connections, …)."""

    code = SessionErrorCode.TOO_MANY_RESTARTS


class RedirectNoLocation(SessionError):
    """A redirect answer had an empty ``Location`` header."""

    code = SessionErrorCode.REDIRECT_NO_LOCATION


class RedirectBadUri(SessionError):
    """A redirect answer's ``Location`` is not a usable http(s) URI."""

    code = SessionErrorCode.REDIRECT_BAD_URI


class MessageAlreadyInQueue(SessionError):
    """The message was sent while an earlier send of it is still in progress.

    Wait for the first send to finish (read or close its body) before sending
    the same :class:`~anysoup.Message` again, or send a new message.
    """

    code = SessionErrorCode.MESSAGE_ALREADY_IN_QUEUE


class ConnectError(Error):
    """No connection could be made; nothing was sent.

    The name did not resolve, or every address refused or was unreachable.
    """


class NetworkError(Error):
    """The connection failed while a message was being exchanged.

    It was reset, or closed before the response was complete.
    """


class IncompleteBody(NetworkError):
    """The response body was cut short.

    It ended before its ``Content-Length``, or its chunked encoding was
    broken: the data received so far is not the whole body.
    """


class BodyTooLarge(Error):
    """The response body is larger than the ``max_size`` the caller allowed.

    Raised by :meth:`anysoup.Session.send_and_read` as soon as the decoded
    body passes ``max_size`` (before reading any of it when its
    ``Content-Length`` already says so). The rest of the body is not read:
    the connection is closed.

    Raise ``max_size`` if the body is wanted, or stream it with
    :meth:`anysoup.Session.send` or :meth:`anysoup.Session.send_and_splice`.
    """


class HTTPStatusError(Error):
    """The response's status is a client (4xx) or server (5xx) error.

    Raised only by :meth:`anysoup.Message.raise_for_status`: sending never
    treats an HTTP status as an error. ``.message`` is the message, with
    its status, headers and (after the request helpers) its body.

    Check ``err.message.status`` to tell the cases apart; retry a 5xx or a
    429 later (the :class:`anysoup.Retry` feature does it for you).
    """


class TimeoutError(Error, builtins.TimeoutError):
    """No progress for ``Session.timeout`` seconds.

    Raised while connecting, writing or reading. Also a builtin
    :class:`TimeoutError`.

    Raise the session's ``timeout`` for slow servers, or set it to 0 to wait
    forever; bound a whole call with a cancel scope instead.
    """


class TlsError(Error):
    """The TLS handshake failed or the peer's certificate was rejected.

    Attributes:
        errors: Why the certificate was rejected, when that is the cause
            (:class:`anysoup.TlsCertificateFlags`).
    """

    def __init__(
        self,
        text: str,
        *,
        message: Message | None = None,
        errors: TlsCertificateFlags = TlsCertificateFlags.NO_FLAGS,
    ) -> None:
        super().__init__(text, message=message)
        self.errors = errors
        # Set when the server asked for a client certificate none was given for.
        self._wants_client_certificate = False


class TLDError(Error, ValueError):
    """A host name has no base domain; ``code`` tells why (libsoup's ``SOUP_TLD_ERROR``).

    Raised by :func:`anysoup.tld_get_base_domain`. It is a :class:`ValueError`
    too: the host name given was not one the public suffix list can answer for.
    """

    def __init__(self, text: str, *, code: TLDErrorCode) -> None:
        super().__init__(text)
        #: Why: a :class:`anysoup.TLDErrorCode`.
        self.code = code


class RequestCancelled(Error):
    """The call was cancelled by a :class:`anysoup.Cancellable` or ``Session.abort()``.

    Cancellation by an enclosing cancel scope is not turned into this error:
    it propagates as the backend's own cancellation, as structured
    concurrency requires.
    """


class WebsocketError(Error):
    """A WebSocket failure; ``code`` tells which (:class:`anysoup.WebsocketErrorCode`).

    :class:`WebsocketClosed`, raised once a WebSocket is closed, is a
    WebsocketError whose ``code`` is the close code instead.
    """

    #: What failed; for :class:`WebsocketClosed`, the close code.
    code: WebsocketErrorCode | int

    def __init__(
        self,
        text: str,
        *,
        code: WebsocketErrorCode = WebsocketErrorCode.FAILED,
        message: Message | None = None,
    ) -> None:
        super().__init__(text, message=message)
        self.code = code


class WebsocketClosed(WebsocketError):
    """The WebSocket is closed: raised by ``receive()`` and by sends after the close.

    Attributes:
        code: The close code (a :class:`anysoup.WebsocketCloseCode` when it is
            one of RFC 6455's, else the application's int).
        reason: The close reason text.
    """

    code: int

    def __init__(self, text: str, *, code: int, reason: str) -> None:
        super().__init__(text)
        self.code = code
        self.reason = reason
