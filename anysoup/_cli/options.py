"""The ``anysoup`` command line, parsed and checked without any I/O.

:func:`parse_args` turns the arguments into an :class:`Options` value; a
usage error (two flags that exclude each other, a value that is not one)
exits 2 with argparse's message. Nothing is read or opened here: ``main``
does that with the options. The flags themselves are declared in
:mod:`anysoup._cli.flags`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re

from .flags import make_parser
from .status import EXIT_USAGE, Failure

__all__ = ["Options", "check_json", "parse_args"]

#: RFC 9110 §5.6.2 token: header names and methods.
_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: A first argument in capitals (``GET``, ``M-SEARCH``) is a method, not a host.
_METHOD_RE = re.compile(r"[A-Z][A-Z0-9_-]*")
_KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"}
)


@dataclasses.dataclass(frozen=True)
class Options:
    """The command line, parsed and checked; nothing is read or opened yet."""

    #: The request method (upper case).
    method: str
    #: The URL, with ``http://`` (``ws://`` with --ws) added when it had no scheme.
    url: str
    #: Request headers in order: ``(name, value)``, or ``(name, None)`` for a
    #: header the command would set and must not (``-H 'Name:'``, ``-A ''``).
    headers: tuple[tuple[str, str | None], ...] = ()
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
    #: ``-c``/``--cookie-jar``: read at the start, written (all cookies) at the end.
    cookie_jar: str | None = None
    #: ``-b`` values: a cookie string (``a=b; c=d``) or a cookies.txt file name each.
    cookies: tuple[str, ...] = ()
    hsts_db: str | None = None
    #: ``--cache``: the directory of an HTTP cache.
    cache: str | None = None
    cacert: str | None = None
    unix_socket: str | None = None
    #: The session's stall timeout, in seconds (0: none).
    timeout: float = 60.0
    #: ``--max-time``: seconds for each try in all (None: no limit).
    max_time: float | None = None
    #: ``--connect-timeout``: seconds for opening each connection (None: no limit).
    connect_timeout: float | None = None
    redirect: bool = True
    #: ``--user``: the user and the password (None: ask for it).
    user: tuple[str, str | None] | None = None
    fail: bool = False
    websocket: bool = False
    #: ``--ws-wait``: seconds to wait for the server's close after the end of stdin.
    ws_wait: float = 1.0
    #: ``--max-filesize``: the most bytes of body accepted (None: no limit).
    max_filesize: int | None = None
    #: ``--http1.1``: HTTP/1.1 only (else HTTP/2 where the server takes it by ALPN).
    http1: bool = False
    #: ``-i``: the response heads go before the body; ``-I`` sets it too.
    include: bool = False
    #: ``-s``: no progress bar, no error line (unless ``show_error``).
    silent: bool = False
    show_error: bool = False
    #: ``-k``: accept any certificate.
    insecure: bool = False
    #: ``--compressed``: offer content codings and decode them.
    compressed: bool = False
    #: ``--retry``: how many more tries after a transient failure.
    retry: int = 0
    #: ``--retry-delay``: a fixed wait between tries (None: 1 s, doubling).
    retry_delay: float | None = None

    @property
    def has_body(self) -> bool:
        """Whether a request body was given (-d, --json or --form)."""
        return self.data is not None or self.json is not None or bool(self.form)

    @property
    def quiet(self) -> bool:
        """Whether failures go unsaid (``-s`` without ``-S``)."""
        return self.silent and not self.show_error


def parse_args(argv: list[str] | None = None) -> Options:
    """Parse the ``anysoup`` command line; exits 2 with a usage message if it is wrong.

    ``--help`` and ``--version`` print and exit 0.
    """
    parser = make_parser()
    # Intermixed: options may come after the URL and the headers, as with curl.
    args = parser.parse_intermixed_args(argv)
    method, url, header_items = _method_and_url(parser, args)
    headers: list[tuple[str, str | None]] = []
    if args.user_agent is not None:
        headers.append(("User-Agent", args.user_agent or None))
    if args.referer is not None:
        headers.append(("Referer", args.referer))
    headers += (_curl_header(parser, item) for item in args.header or ())
    headers += (_header(parser, item) for item in header_items)
    if args.json is not None and not args.json.startswith("@"):
        check_json(parser, args.json)
    form = tuple(_field(parser, item) for item in args.form or ())
    user = None
    if args.user is not None:
        name, colon, password = args.user.partition(":")
        user = (name, password if colon else None)
    options = Options(
        method=method,
        url=url,
        headers=tuple(headers),
        data=args.data,
        json=args.json,
        form=form,
        output=args.output,
        verbose=args.verbose,
        cookie_jar=args.cookie_jar,
        cookies=tuple(args.cookie or ()),
        hsts_db=args.hsts_db,
        cache=args.cache,
        cacert=args.cacert,
        unix_socket=args.unix_socket,
        timeout=args.timeout,
        max_time=args.max_time,
        connect_timeout=args.connect_timeout,
        redirect=not args.no_redirect,
        user=user,
        fail=args.fail,
        websocket=args.ws,
        ws_wait=args.ws_wait,
        max_filesize=args.max_filesize,
        http1=args.http1,
        include=args.include or args.head,
        silent=args.silent,
        show_error=args.show_error,
        insecure=args.insecure,
        compressed=args.compressed,
        retry=args.retry,
        retry_delay=args.retry_delay or None,  # curl: 0 means the default backoff
    )
    if options.websocket:
        if options.has_body or options.output is not None:
            parser.error("--ws takes no body and no -o: the conversation is on stdin and stdout")
        if options.include or options.retry:
            parser.error("--ws takes no -i, -I or --retry")
    return options


def _method_and_url(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[str, str, list[str]]:
    """The method (-X, the METHOD argument, -I, or GET/POST), the URL, the header items."""
    items: list[str] = args.items
    method = None
    first = items[0]
    if len(items) > 1 and (_METHOD_RE.fullmatch(first) or first.upper() in _KNOWN_METHODS):
        method = first.upper()
        items = items[1:]
    if args.request is not None:
        if method is not None:
            parser.error(f"the method is given twice: -X {args.request} and {first}")
        if not _TOKEN_RE.fullmatch(args.request):
            parser.error(f"-X {args.request!r} is not a method")
        method = args.request  # as typed, as curl sends it
    url, *header_items = items
    if "://" not in url:
        url = ("ws://" if args.ws else "http://") + url
    if method is None:
        if args.head:
            method = "HEAD"
        elif args.data is not None or args.json is not None or args.form:
            method = "POST"
        else:
            method = "GET"
    return method, url, header_items


def _header(parser: argparse.ArgumentParser, item: str) -> tuple[str, str]:
    """A ``Name:value`` argument after the URL."""
    name, colon, value = item.partition(":")
    if not colon or not _TOKEN_RE.fullmatch(name):
        parser.error(f"{item!r} is not a header (Name:value)")
    return name, value.strip()


def _curl_header(parser: argparse.ArgumentParser, item: str) -> tuple[str, str | None]:
    """A ``-H`` value, as curl reads it: ``Name: value``, ``Name:`` (none), ``Name;`` (empty)."""
    name, colon, value = item.partition(":")
    if not colon and item.endswith(";") and _TOKEN_RE.fullmatch(item[:-1]):
        return item[:-1], ""
    if not colon or not _TOKEN_RE.fullmatch(name):
        parser.error(f"-H {item!r} is not a header ('Name: value', 'Name:' or 'Name;')")
    value = value.strip()
    return name, value or None


def _field(parser: argparse.ArgumentParser, item: str) -> tuple[str, str]:
    name, equals, value = item.partition("=")
    if not equals:
        parser.error(f"--form {item!r} is not NAME=VALUE")
    return name, value


def check_json(parser: argparse.ArgumentParser | None, text: str) -> None:
    """Exit 2 (with ``parser``) or raise a usage :class:`Failure` if ``text`` is not JSON."""
    try:
        json.loads(text)
    except ValueError as exc:
        message = f"--json: not valid JSON: {exc}"
        if parser is None:
            raise Failure(EXIT_USAGE, message) from None
        parser.error(message)
