"""The ``anysoup`` command: one request (or a WebSocket) from the command line.

Theory of operation: :func:`parse_args` turns the command line into an
:class:`Options` value without any I/O (usage errors exit 2). :func:`main`
then reads what the options name (``-d @file``, a password), builds the
:class:`~anysoup.Session` and the :class:`~anysoup.Message`, and runs one
exchange under :func:`anyio.run`. Every failure ends as one line on stderr,
``anysoup: <what failed>``, and an exit status chosen as curl chooses it (see
:func:`exit_status`), so scripts written for curl read it the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import getpass
import json
import os
import re
import socket
import sys
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import anyio

from .._features.cookies.stores import CookieJarText
from .._features.hsts.enforcer import HSTSEnforcerDB
from .._model.enums import MessageFlags
from .._model.exceptions import (
    ConnectError,
    EncodingError,
    Error,
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
from .._model.message import Message
from .._session.session import DEFAULT, Session
from .._transport.connect import UnixSocketAddress
from .._transport.tls import TlsDatabase
from .output import converse, make_logger, to_file, to_stdout

if TYPE_CHECKING:
    from .._features.auth.auth_policy import Auth
    from .._features.feature import SessionFeature

__all__ = ["Options", "exit_status", "main", "parse_args"]

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
EXIT_CA_FILE = 77
EXIT_INTERRUPTED = 130

_EPILOG = """\
exit status (curl's): 0 done; 2 usage; 3 malformed URL; 6 host not resolved;
7 could not connect; 8 unusable answer; 18 body cut short; 22 HTTP error with
--fail; 23 write error; 26 read error; 28 timeout; 35 TLS handshake failed;
47 too many redirects; 52 empty reply; 56 network failure; 60 certificate
rejected; 61 bad content encoding; 77 bad --cacert file; 130 interrupted.
"""

#: RFC 9110 §5.6.2 token: header names and methods.
_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: A first argument in capitals (``GET``, ``M-SEARCH``) is a method, not a host.
_METHOD_RE = re.compile(r"[A-Z][A-Z0-9_-]*")
_KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"}
)
#: Sent with --json unless the command line sets Accept itself.
_JSON_ACCEPT = "application/json, */*;q=0.5"


class _Failure(Exception):
    """Ends the command: ``text`` is its one line on stderr, ``status`` its exit status."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


@dataclasses.dataclass(frozen=True)
class Options:
    """The command line, parsed and checked; nothing is read or opened yet."""

    #: The request method (upper case).
    method: str
    #: The URL, with ``http://`` (``ws://`` with --ws) added when it had no scheme.
    url: str
    #: ``Name:value`` items, in order.
    headers: tuple[tuple[str, str], ...] = ()
    #: ``-d``: the body text, or ``@file`` / ``@-`` (stdin).
    data: str | None = None
    #: ``--json``: the JSON text, or ``@file`` / ``@-``.
    json: str | None = None
    #: ``--form`` fields, in order.
    form: tuple[tuple[str, str], ...] = ()
    #: ``-o``: the file for the body (``-`` is stdout).
    output: str | None = None
    #: 1 for ``-v``, 2 for ``-vv``.
    verbose: int = 0
    cookie_jar: str | None = None
    hsts_db: str | None = None
    cacert: str | None = None
    unix_socket: str | None = None
    #: The session's stall timeout, in seconds (0: none).
    timeout: float = 60.0
    redirect: bool = True
    #: ``--user``: the user and the password (None: ask for it).
    user: tuple[str, str | None] | None = None
    fail: bool = False
    websocket: bool = False

    @property
    def has_body(self) -> bool:
        """Whether a request body was given (-d, --json or --form)."""
        return self.data is not None or self.json is not None or bool(self.form)


# -- the command line (no I/O) ---------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anysoup",
        usage="%(prog)s [options] [METHOD] URL [Name:value ...]",
        description="Send an HTTP request with anysoup and write the response body to stdout.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add(
        "items",
        nargs="+",
        metavar="[METHOD] URL [Name:value ...]",
        help="the method (default GET, or POST with a body), the URL, and request headers",
    )
    body = parser.add_mutually_exclusive_group()
    body.add_argument("-d", "--data", metavar="DATA", help="send DATA as the body (@FILE: a file)")
    body.add_argument("--json", metavar="JSON", help="send JSON (checked) as application/json")
    body.add_argument(
        "--form", action="append", metavar="NAME=VALUE", help="send a urlencoded form field"
    )
    add("-o", "--output", metavar="FILE", help="write the body to FILE, with a progress bar")
    add("-v", "--verbose", action="count", default=0, help="-v: response heads; -vv: all traffic")
    add("--cookie-jar", metavar="FILE", help="read and store cookies in a cookies.txt FILE")
    add("--hsts-db", metavar="FILE", help="read and store HSTS policies in an SQLite FILE")
    add("--cacert", metavar="FILE", help="trust only the CA certificates in this PEM FILE")
    add("--unix-socket", metavar="PATH", help="connect to this Unix socket instead of the host")
    add(
        "--timeout",
        type=_seconds,
        default=60.0,
        metavar="S",
        help="give up after S seconds without progress (default 60; 0: never)",
    )
    add("--no-redirect", action="store_true", help="don't follow redirects")
    add("--user", metavar="USER[:PASS]", help="credentials for the server (asks for PASS)")
    add("--fail", action="store_true", help="exit 22, writing no body, on an HTTP error")
    add("--ws", action="store_true", help="open a WebSocket: stdin lines out, messages in")
    return parser


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    return value


def parse_args(argv: list[str] | None = None) -> Options:
    """Parse the ``anysoup`` command line; exits 2 with a usage message if it is wrong."""
    parser = _parser()
    # Intermixed: options may come after the URL and the headers, as with curl.
    args = parser.parse_intermixed_args(argv)
    items: list[str] = args.items
    method = None
    first = items[0]
    if len(items) > 1 and (_METHOD_RE.fullmatch(first) or first.upper() in _KNOWN_METHODS):
        method = first.upper()
        items = items[1:]
    url, *header_items = items
    if "://" not in url:
        url = ("ws://" if args.ws else "http://") + url
    headers = tuple(_header(parser, item) for item in header_items)
    if args.json is not None and not args.json.startswith("@"):
        _check_json(parser, args.json)
    form = tuple(_field(parser, item) for item in args.form or ())
    user = None
    if args.user is not None:
        name, colon, password = args.user.partition(":")
        user = (name, password if colon else None)
    options = Options(
        method=method or "GET",
        url=url,
        headers=headers,
        data=args.data,
        json=args.json,
        form=form,
        output=args.output,
        verbose=args.verbose,
        cookie_jar=args.cookie_jar,
        hsts_db=args.hsts_db,
        cacert=args.cacert,
        unix_socket=args.unix_socket,
        timeout=args.timeout,
        redirect=not args.no_redirect,
        user=user,
        fail=args.fail,
        websocket=args.ws,
    )
    if options.websocket and (options.has_body or options.output is not None):
        parser.error("--ws takes no body and no -o: the conversation is on stdin and stdout")
    if method is None and options.has_body:
        options = dataclasses.replace(options, method="POST")
    return options


def _header(parser: argparse.ArgumentParser, item: str) -> tuple[str, str]:
    name, colon, value = item.partition(":")
    if not colon or not _TOKEN_RE.fullmatch(name):
        parser.error(f"{item!r} is not a header (Name:value)")
    return name, value.strip()


def _field(parser: argparse.ArgumentParser, item: str) -> tuple[str, str]:
    name, equals, value = item.partition("=")
    if not equals:
        parser.error(f"--form {item!r} is not NAME=VALUE")
    return name, value


def _check_json(parser: argparse.ArgumentParser | None, text: str) -> None:
    try:
        json.loads(text)
    except ValueError as exc:
        message = f"--json: not valid JSON: {exc}"
        if parser is None:
            raise _Failure(EXIT_USAGE, message) from None
        parser.error(message)


# -- exit statuses ---------------------------------------------------------------------


def exit_status(exc: BaseException) -> int:
    """The exit status curl would give for a failure of the request.

    See the command's ``--help`` for the table.
    """
    if isinstance(exc, _Failure):
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


# -- running ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the ``anysoup`` command; return its exit status.

    Args:
        argv: The arguments after the command's name (default ``sys.argv[1:]``).
    """
    try:
        options = parse_args(argv)
    except SystemExit as exc:  # argparse's --help (0) or usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        msg = _message(options)  # a malformed URL fails first, before any file is opened
        session = _session(options)
        return anyio.run(_run, options, session, msg)
    except (_Failure, Error) as exc:
        text = str(exc)
        if isinstance(exc, WebsocketClosed) and exc.reason:
            text += f": {exc.reason!r}"  # the peer's words, quoted: they could be anything
        print(f"anysoup: {text}", file=sys.stderr)
        return exit_status(exc)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``anysoup URL | head``): stop quietly, as curl
        # does, and keep Python from failing again when it flushes stdout.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_WRITE


def _session(options: Options) -> Session:
    features: list[SessionFeature] = []
    if options.verbose:
        features.append(make_logger(options.verbose, sys.stderr))
    if options.cookie_jar is not None:
        features.append(CookieJarText(options.cookie_jar))
    if options.hsts_db is not None:
        try:
            features.append(HSTSEnforcerDB(options.hsts_db))
        except ValueError as exc:
            raise _Failure(EXIT_READ, f"--hsts-db: {exc}") from None
    tls_database = DEFAULT
    if options.cacert is not None:
        try:
            tls_database = TlsDatabase.from_file(options.cacert)
        except ValueError as exc:
            raise _Failure(EXIT_CA_FILE, f"--cacert: {exc}") from None
    remote = UnixSocketAddress(options.unix_socket) if options.unix_socket else None
    return Session(
        timeout=options.timeout,
        user_agent="",  # anysoup/VERSION
        tls_database=tls_database,
        remote_connectable=remote,
        features=features,
    )


def _message(options: Options) -> Message:
    """The request: method, URL, body and headers, and the --user and --no-redirect hooks."""
    try:
        if options.form:
            msg = Message.new_from_encoded_form(
                options.method, options.url, urlencode(options.form)
            )
        else:
            msg = Message(options.method, options.url)
    except ValueError as exc:
        raise _Failure(EXIT_BAD_URL, str(exc)) from None
    ours: set[str] = set()  # headers set here, which the command line's replace
    if options.data is not None:
        msg.set_request_body_from_bytes(None, _read_body(options.data, "-d"))
    elif options.json is not None:
        data = _read_body(options.json, "--json")
        if options.json.startswith("@"):
            _check_json(None, data.decode("utf-8", "replace"))
        msg.set_request_body_from_bytes("application/json", data)
        msg.request_headers.replace("Accept", _JSON_ACCEPT)
        ours = {"content-type", "accept"}
    elif options.form:
        ours = {"content-type"}
    for name, value in options.headers:
        if name.lower() in ours:
            ours.discard(name.lower())
            msg.request_headers.replace(name, value)
        else:
            msg.request_headers.append(name, value)
    if not options.redirect:
        msg.flags |= MessageFlags.NO_REDIRECT
    if options.user is not None:
        _give_credentials(msg, *options.user)
    return msg


def _read_body(spec: str, option: str) -> bytes:
    """The bytes of ``-d``/``--json``: the text itself, or the file after ``@`` (``-``: stdin)."""
    if not spec.startswith("@"):
        return os.fsencode(spec)  # the bytes as typed, even if not valid UTF-8
    path = spec[1:]
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise _Failure(EXIT_READ, f"{option}: can't read {path!r}: {exc.strerror}") from None


def _give_credentials(msg: Message, user: str, password: str | None) -> None:
    """Answer the server's first challenge with ``user`` (like curl's -u, never a proxy's).

    The credentials go only to the origin of the URL given: a redirect to
    another host that asks for credentials does not get them.
    """
    if password is None:
        password = getpass.getpass(f"password for {user}: ")
    origin = msg.uri.origin()
    given = False

    def authenticate(msg: Message, auth: Auth, retrying: bool) -> bool:
        nonlocal given
        if given or retrying or auth.is_for_proxy or msg.uri.origin() != origin:
            return False
        given = True
        auth.authenticate(user, password)
        return True

    msg.authenticate.connect(authenticate)


def _http_error(msg: Message) -> str:
    """``GET to example.org:443: the server answered 404 Not Found``.

    The path is left out: a URL may carry secrets (a token in the query).
    """
    reason = msg.reason_phrase
    if not reason:
        with contextlib.suppress(ValueError):
            reason = HTTPStatus(msg.status).phrase
    answer = f"{msg.status} {reason}".rstrip()
    return f"{msg.method} to {msg.uri.host}:{msg.uri.port}: the server answered {answer}"


async def _run(options: Options, session: Session, msg: Message) -> int:
    async with session:
        if options.websocket:
            await converse(session, msg)
            return EXIT_OK
        async with session.send(msg) as body:
            if options.fail and msg.status >= 400:
                raise _Failure(EXIT_HTTP_ERROR, _http_error(msg))
            if options.output is None or options.output == "-":
                await to_stdout(body)
                return EXIT_OK
            try:
                await to_file(body, msg, options.output)
            except OSError as exc:
                text = f"-o: can't write {options.output!r}: {exc.strerror or exc}"
                raise _Failure(EXIT_WRITE, text) from None
    return EXIT_OK
