"""The ``anysoup`` command's flags: the argparse parser and its value checks (no I/O).

Flags take curl's names where curl has the same option (``-H``, ``-X``,
``-i``, ``-I``, ``-s``, ``-k``, ``-b``, ``-c``, ``--retry`` …), so a curl
command line mostly runs as it is; where anysoup differs (it follows
redirects unless told not to) the help says so. :func:`make_parser` only
declares them: :func:`anysoup._cli.options.parse_args` turns what it parsed
into an :class:`~anysoup._cli.options.Options` value.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from .status import EPILOG

__all__ = ["byte_size", "make_parser", "seconds"]

#: --max-filesize: bytes, with an optional k, M or G (curl's, each times 1024).
_SIZE_RE = re.compile(r"([0-9]+)([kKmMgG]?)")

_DESCRIPTION = """\
Send an HTTP request with anysoup and write the response body to stdout.

Redirects are followed by default (curl's -L is accepted and changes
nothing; --no-redirect turns following off). The body is written as it
came: ask for compressed bodies, and have them decoded, with --compressed.
"""


_ENVIRONMENT = """
environment: ANYSOUP_BACKEND=trio runs the command on Trio (default asyncio);
http_proxy, https_proxy, all_proxy, no_proxy choose proxies; NO_COLOR turns
colour off.
"""


def make_parser() -> argparse.ArgumentParser:
    """The command line's parser (``parse_intermixed_args``: options may follow the URL)."""
    parser = argparse.ArgumentParser(
        prog="anysoup",
        usage="%(prog)s [options] [METHOD] URL [Name:value ...]",
        description=_DESCRIPTION,
        epilog=EPILOG + _ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add(
        "items",
        nargs="+",
        metavar="[METHOD] URL [Name:value ...]",
        help="the method (default GET, or POST with a body), the URL, and request headers",
    )
    add("--version", action=_Version, help="show the versions of anysoup and its libraries")
    _request_flags(parser)
    _output_flags(parser)
    _connection_flags(parser)
    _cookie_and_retry_flags(parser)
    return parser


def _request_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("-X", "--request", metavar="METHOD", help="use METHOD (instead of the METHOD argument)")
    add(
        "-H",
        "--header",
        action="append",
        metavar="'Name: value'",
        help="add a request header ('Name:' removes one the command sets, 'Name;' sends it empty)",
    )
    add("-A", "--user-agent", metavar="TEXT", help="send User-Agent: TEXT ('' sends none)")
    add("-e", "--referer", metavar="URL", help="send Referer: URL")
    # One request method's worth of body; -I's HEAD takes none.
    body = parser.add_mutually_exclusive_group()
    body.add_argument("-d", "--data", metavar="DATA", help="send DATA as the body (@FILE: a file)")
    body.add_argument("--json", metavar="JSON", help="send JSON (checked) as application/json")
    body.add_argument(
        "--form", action="append", metavar="NAME=VALUE", help="send a urlencoded form field"
    )
    body.add_argument(
        "-I", "--head", action="store_true", help="send HEAD and write the response headers"
    )
    add("-u", "--user", metavar="USER[:PASS]", help="credentials for the server (asks for PASS)")
    add(
        "--compressed",
        action="store_true",
        help="ask for a compressed body (Accept-Encoding) and decode it",
    )
    add("--ws", action="store_true", help="open a WebSocket: stdin lines out, messages in")
    add(
        "--ws-wait",
        type=seconds,
        default=1.0,
        metavar="S",
        help="after the end of stdin, wait up to S seconds for the server to close "
        "before closing (default 1; inf: until it does)",
    )


def _output_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("-o", "--output", metavar="FILE", help="write the body to FILE, with a progress bar")
    add("-i", "--include", action="store_true", help="write the response headers before the body")
    add(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="-v: request and response heads on stderr; -vv: request bodies and debug lines",
    )
    add("-s", "--silent", action="store_true", help="no progress bar, no error message")
    add("-S", "--show-error", action="store_true", help="with -s, still print the error message")
    add("-f", "--fail", action="store_true", help="exit 22, writing no body, on an HTTP error")
    add(
        "--max-filesize",
        type=byte_size,
        metavar="BYTES",
        help="exit 63 when the body is larger (suffix k, M or G; 0: no limit)",
    )


def _connection_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    follow = parser.add_mutually_exclusive_group()
    follow.add_argument(
        "-L",
        "--location",
        action="store_true",
        help="follow redirects: the default, accepted for curl's command lines",
    )
    follow.add_argument("--no-redirect", action="store_true", help="don't follow redirects")
    add("--cacert", metavar="FILE", help="trust only the CA certificates in this PEM FILE")
    add(
        "-k",
        "--insecure",
        action="store_true",
        help="accept any server certificate (not for an HSTS host)",
    )
    add("--hsts-db", metavar="FILE", help="read and store HSTS policies in an SQLite FILE")
    add("--cache", metavar="DIR", help="keep an HTTP cache in DIR (shared with other runs)")
    add("--unix-socket", metavar="PATH", help="connect to this Unix socket instead of the host")
    add(
        "--timeout",
        type=seconds,
        default=60.0,
        metavar="S",
        help="give up after S seconds without progress (default 60; 0: never)",
    )
    add("-m", "--max-time", type=seconds, metavar="S", help="give up after S seconds in all")
    add(
        "--connect-timeout",
        type=seconds,
        metavar="S",
        help="give up when a connection takes more than S seconds to open",
    )
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


def _cookie_and_retry_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "-b",
        "--cookie",
        action="append",
        metavar="FILE|'a=b; c=d'",
        help="send these cookies (with '='), or those of a cookies.txt FILE",
    )
    add(
        "-c",
        "--cookie-jar",
        metavar="FILE",
        help="read cookies from FILE, and write all of them there at the end (cookies.txt)",
    )
    add(
        "--retry",
        type=_count,
        default=0,
        metavar="N",
        help="try again N times after a timeout, a failed connection, 408, 429, 500, 502-504",
    )
    add(
        "--retry-delay",
        type=seconds,
        metavar="S",
        help="wait S seconds between tries (default: 1, doubling each time)",
    )
    add(
        "--retry-connrefused",
        action="store_true",
        help="accepted for curl's command lines: refused connections are retried anyway",
    )


class _Version(argparse.Action):
    """``--version``: print the versions and exit 0, like argparse's own action.

    The text is made only when asked for: it looks up package metadata.
    """

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> NoReturn:
        from .streams import say
        from .version import version_text

        say(sys.stdout, version_text())  # stdout, as argparse's own version action
        parser.exit()


def seconds(text: str) -> float:
    """A number of seconds, 0 or more (``inf`` too); argparse's type check."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of times")
    return value


def byte_size(text: str) -> int | None:
    """``--max-filesize``: bytes, or KiB, MiB, GiB with a suffix; 0 is no limit (curl's)."""
    match = _SIZE_RE.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (bytes, or 200k, 3M, 1G)")
    number, unit = match.groups()
    size = int(number) << (10 * " kmg".index(unit.lower() or " "))
    return size or None
