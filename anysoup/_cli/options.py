"""The ``anysoup`` command line, parsed and checked without any I/O.

:func:`parse_args` turns the arguments into an :class:`Options` value; a
usage error exits 2 with argparse's message. Nothing is read or opened
here: ``main`` does that with the options.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re

from .status import EPILOG, EXIT_USAGE, Failure

__all__ = ["Options", "check_json", "parse_args"]

#: RFC 9110 §5.6.2 token: header names and methods.
_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: A first argument in capitals (``GET``, ``M-SEARCH``) is a method, not a host.
_METHOD_RE = re.compile(r"[A-Z][A-Z0-9_-]*")
_KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"}
)
#: --max-filesize: bytes, with an optional k, M or G (curl's, each times 1024).
_SIZE_RE = re.compile(r"([0-9]+)([kKmMgG]?)")


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
    #: ``--max-filesize``: the most bytes of body accepted (None: no limit).
    max_filesize: int | None = None
    #: ``--http1.1``: HTTP/1.1 only (else HTTP/2 where the server takes it by ALPN).
    http1: bool = False

    @property
    def has_body(self) -> bool:
        """Whether a request body was given (-d, --json or --form)."""
        return self.data is not None or self.json is not None or bool(self.form)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anysoup",
        usage="%(prog)s [options] [METHOD] URL [Name:value ...]",
        description="Send an HTTP request with anysoup and write the response body to stdout.",
        epilog=EPILOG,
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
    add(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="-v: protocol, response heads; -vv: all traffic",
    )
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
    add(
        "--max-filesize",
        type=_byte_size,
        metavar="BYTES",
        help="exit 63 when the body is larger (suffix k, M or G; 0: no limit)",
    )
    add("--ws", action="store_true", help="open a WebSocket: stdin lines out, messages in")
    version = parser.add_mutually_exclusive_group()
    version.add_argument(
        "--http1.1", dest="http1", action="store_true", help="use HTTP/1.1 only (offer no h2)"
    )
    version.add_argument(
        "--http2",
        dest="http1",
        action="store_false",
        default=False,
        help="use HTTP/2 where the https server takes it by ALPN, else HTTP/1.1 (the default)",
    )
    return parser


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    return value


def _byte_size(text: str) -> int | None:
    """``--max-filesize``: bytes, or KiB, MiB, GiB with a suffix; 0 is no limit (curl's)."""
    match = _SIZE_RE.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (bytes, or 200k, 3M, 1G)")
    number, unit = match.groups()
    size = int(number) << (10 * " kmg".index(unit.lower() or " "))
    return size or None


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
        check_json(parser, args.json)
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
        max_filesize=args.max_filesize,
        http1=args.http1,
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


def check_json(parser: argparse.ArgumentParser | None, text: str) -> None:
    try:
        json.loads(text)
    except ValueError as exc:
        message = f"--json: not valid JSON: {exc}"
        if parser is None:
            raise Failure(EXIT_USAGE, message) from None
        parser.error(message)
