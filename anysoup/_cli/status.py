"""The ``anysoup`` command's exit statuses: curl's, for the failures anysoup can tell apart.

:func:`exit_status` maps an :class:`anysoup.Error` (or a :class:`Failure` of
the command itself) to the status curl would give for the same failure
(curl's man page, "EXIT CODES"), so scripts written for curl read it the
same way.
"""

from __future__ import annotations

import socket

from .._model.exceptions import (
    BodyTooLarge,
    ConnectError,
    EncodingError,
    IncompleteBody,
    NetworkError,
    ParsingError,
    RedirectBadUri,
    RedirectNoLocation,
    TimeoutError,
    TlsError,
    TooManyRedirects,
    TooManyRestarts,
    WebsocketClosed,
    WebsocketError,
)

__all__ = ["EPILOG", "Failure", "exit_status"]

# curl's exit statuses (its man page, "EXIT CODES"), for the failures anysoup can tell apart.
EXIT_OK = 0
EXIT_FAILED = 1  # any other failure
EXIT_USAGE = 2
EXIT_BAD_URL = 3
EXIT_UNRESOLVED = 6
EXIT_CONNECT = 7
EXIT_WEIRD_REPLY = 8
EXIT_PARTIAL = 18
EXIT_HTTP_ERROR = 22
EXIT_WRITE = 23
EXIT_READ = 26
EXIT_TIMEOUT = 28
EXIT_TLS = 35
EXIT_REDIRECTS = 47
EXIT_EMPTY_REPLY = 52
EXIT_NETWORK = 56
EXIT_CERTIFICATE = 60
EXIT_ENCODING = 61
EXIT_FILESIZE = 63
EXIT_CA_FILE = 77
EXIT_INTERRUPTED = 130

EPILOG = """\
exit status (curl's): 0 done; 2 usage; 3 malformed URL; 6 host not resolved;
7 could not connect; 8 unusable answer; 18 body cut short; 22 HTTP error with
--fail; 23 write error; 26 read error; 28 timeout; 35 TLS handshake failed;
47 too many redirects; 52 empty reply; 56 network failure; 60 certificate
rejected; 61 bad content encoding; 63 body over --max-filesize; 77 bad
--cacert file; 130 interrupted.
"""


class Failure(Exception):
    """Ends the command: ``text`` is its one line on stderr, ``status`` its exit status."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


def exit_status(exc: BaseException) -> int:
    """The exit status curl would give for a failure of the request.

    See the command's ``--help`` for the table.
    """
    if isinstance(exc, Failure):
        return exc.status
    if isinstance(exc, TlsError):
        return EXIT_CERTIFICATE if exc.errors else EXIT_TLS
    if isinstance(exc, TimeoutError):
        return EXIT_TIMEOUT
    if isinstance(exc, ConnectError):
        return EXIT_UNRESOLVED if _unresolved(exc) else EXIT_CONNECT
    if isinstance(exc, (TooManyRedirects, TooManyRestarts)):
        return EXIT_REDIRECTS
    if isinstance(exc, EncodingError):
        return EXIT_ENCODING
    if isinstance(exc, BodyTooLarge):
        return EXIT_FILESIZE
    if isinstance(exc, (ParsingError, RedirectNoLocation, RedirectBadUri)):
        return EXIT_WEIRD_REPLY
    if isinstance(exc, WebsocketClosed):
        return EXIT_NETWORK
    if isinstance(exc, WebsocketError):
        return EXIT_WEIRD_REPLY  # the handshake's answer was not a WebSocket's
    if isinstance(exc, IncompleteBody):
        return EXIT_PARTIAL
    if isinstance(exc, NetworkError):
        # The core's words for a connection closed before any byte of an answer.
        return EXIT_EMPTY_REPLY if "without a response" in str(exc) else EXIT_NETWORK
    return EXIT_FAILED


def _unresolved(exc: BaseException) -> bool:
    """Whether a ConnectError means that the host name did not resolve."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            return True
        cause = cause.__cause__
    return str(exc).startswith("resolve ")  # "resolve 'host': no address found"
