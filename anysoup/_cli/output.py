"""Where the ``anysoup`` command's results go: the body, the response heads, the log.

The body goes to stdout or the ``-o`` file byte for byte, after the
response heads with ``-i`` (as curl writes them, lines ending CRLF). What
is meant for people goes to stderr and stays out of a program's way: colour
only when stderr is a terminal and ``NO_COLOR`` is unset
(https://no-color.org), a progress bar only on a terminal. The bar is
rich's when rich is installed (the ``cli`` extra), else one plain line
redrawn in place. Text for people goes through
:func:`~anysoup._cli.streams.say`: losing it never fails the command.
(A WebSocket's conversation is :mod:`anysoup._cli.websocket`'s.)
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TextIO

import anyio

from .._features.logger.lines_policy import VERSIONS, request_version
from .._features.logger.logger import Logger
from .._model.enums import HTTPVersion, LoggerLogLevel
from .streams import say, stdout_bytes

if TYPE_CHECKING:
    from .._model.body import InputStream
    from .._model.message import Message

__all__ = [
    "Advance",
    "Heads",
    "TrafficPrinter",
    "isatty",
    "make_logger",
    "make_printer",
    "progress",
    "show_protocol",
    "to_file",
    "to_stdout",
    "wants_colour",
]

#: ``advance(nbytes)``: count bytes written to the download's file.
Advance = Callable[[int], None]

# SGR sequences (ECMA-48 §8.3.117).
_RESET = "\x1b[0m"
_BOLD = "\x1b[1m"
_NAME = "\x1b[36m"  # header names: cyan
_NOTE = "\x1b[33m"  # anysoup's bracketed notes (a failure, a re-send): yellow
#: The status line by class: 1xx cyan, 2xx green, 3xx yellow, 4xx red, 5xx bold red.
_STATUS = {"1": "\x1b[1;36m", "2": "\x1b[1;32m", "3": "\x1b[1;33m", "4": "\x1b[1;31m"}
_SERVER_ERROR = "\x1b[1;91m"
#: At -vv, the most bytes of a request body shown: a large upload is not worth a screen.
_MAX_BODY_SHOWN = 64 * 1024
_MINIMAL = LoggerLogLevel.MINIMAL
#: The Logger's ``Session 1 (0x7f…)``: the address says nothing to the command's reader.
_ADDRESS_RE = re.compile(r" \(0x[0-9a-f]+\)")


def isatty(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (False for anything that can't tell)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # replaced by an object without it, or closed
        return False


def wants_colour(stream: TextIO) -> bool:
    """Colour ``stream``: it is a terminal and ``NO_COLOR`` is unset or empty."""
    return not os.environ.get("NO_COLOR") and isatty(stream)


# -- the traffic log (-v, -vv) ---------------------------------------------------------


class TrafficPrinter:
    """A :meth:`anysoup.Logger.set_printer` printer writing curl-style lines.

    Request lines start with ``> ``, response lines with ``< ``; each block
    ends with an empty line; :meth:`info` lines (the protocol of a new
    connection) start with ``* ``. libsoup's ``Soup-Debug`` lines (which
    session, message and connection) are shown only with ``debug``, and
    without the objects' memory addresses (``Message 1``, not ``Message 1
    (0x7f…)``). An
    HTTP/2 status line is printed without the standard reason phrase the
    Logger adds as libsoup does (HTTP/2 carries none): ``< HTTP/2 200``, what
    came, as curl prints it.

    Args:
        stream: Where the lines go (stderr).
        colour: Colour status lines, header names and notes with ANSI codes.
        debug: Keep the ``Soup-Debug`` lines.
    """

    def __init__(self, stream: TextIO | None, *, colour: bool, debug: bool) -> None:
        self._stream = stream
        self._colour = colour
        self._debug = debug

    def __call__(self, logger: Logger, level: LoggerLogLevel, direction: str, data: str) -> None:
        """Print one line of the log (the Logger's printer signature)."""
        if data.startswith("Soup-Debug"):
            if data.startswith("Soup-Debug-Cache: "):  # said at -v too, as curl's info lines
                self.info(f"answered from the cache ({data.split(': ', 1)[1]})")
                return
            if not self._debug:
                return
            data = _ADDRESS_RE.sub("", data)
        if direction == " ":
            line = ""  # the end of a block
        else:
            if direction == "<" and data.startswith("HTTP/2 ") and level is _MINIMAL:
                data = " ".join(data.split(" ", 2)[:2])  # HTTP/2 sends no reason phrase
            line = f"{direction} {self._paint(level, data) if self._colour else data}"
        self._write(line)

    def info(self, text: str) -> None:
        """Print ``* text``: something about the exchange, not a line of it (curl's)."""
        self._write(f"* {text}")

    def _write(self, line: str) -> None:
        if not say(self._stream, line + "\n"):
            self._stream = None  # stderr is gone: the log is lost, not the request

    @staticmethod
    def _paint(level: LoggerLogLevel, data: str) -> str:
        if level is LoggerLogLevel.HEADERS:
            name, colon, value = data.partition(":")
            return f"{_NAME}{name}{_RESET}{colon}{value}" if colon else data
        if level is not LoggerLogLevel.MINIMAL:
            return data  # body text stays as it came
        if data.startswith("["):
            return f"{_NOTE}{data}{_RESET}"
        if data.startswith("HTTP/"):
            status_class = data.partition(" ")[2][:1]
            return f"{_STATUS.get(status_class, _SERVER_ERROR)}{data}{_RESET}"
        return f"{_BOLD}{data}{_RESET}"  # the request line, Soup-Debug


def make_printer(verbose: int, stream: TextIO) -> TrafficPrinter:
    """The printer for ``-v`` and ``-vv`` (``Soup-Debug`` lines at ``-vv`` only)."""
    return TrafficPrinter(stream, colour=wants_colour(stream), debug=verbose >= 2)


def make_logger(verbose: int, printer: TrafficPrinter) -> Logger:
    """The Logger for ``-v`` (request and response heads, as curl's) or ``-vv`` (and bodies).

    ``-vv`` adds request bodies: the response body goes to stdout or the
    file, so it is not repeated. Credentials and cookie values are redacted.
    """
    if verbose >= 2:
        logger = Logger(LoggerLogLevel.BODY, _MAX_BODY_SHOWN)
        logger.set_response_filter(lambda *_: LoggerLogLevel.HEADERS)
    else:
        logger = Logger(LoggerLogLevel.HEADERS)
    logger.set_printer(printer)
    return logger


def show_protocol(msg: Message, printer: TrafficPrinter) -> None:
    """Print ``* using HTTP/2`` (or ``HTTP/1.1``) each time ``msg`` goes out on a new connection.

    A new connection reports its network events to the first message sent
    on it, before the request is written; by ``wrote_headers`` the message
    knows the version of its exchange. The line is printed then, before the
    request's own block (-vv), or at the first response head when the server
    answered before the request was written.
    """
    new_connection = False

    def connected(msg: Message, event: object, connection: object) -> None:
        nonlocal new_connection
        new_connection = True

    def exchanging(msg: Message) -> None:
        nonlocal new_connection
        if new_connection:
            new_connection = False
            printer.info(f"using HTTP/{request_version(msg.http_version)}")

    msg.network_event.connect(connected)
    for signal in (msg.wrote_headers, msg.got_informational, msg.got_headers):
        signal.connect(exchanging)


# -- the response heads (-i, -I) ------------------------------------------------------


class Heads:
    """Records the head of each response of a message, for ``-i``, as curl writes them.

    Every final response of every hop counts (a redirect's 3xx, an auth
    retry's 401, then the answer), each as its status line and header lines,
    ending CRLF, then an empty line. The status line is rebuilt from what
    the message holds: ``HTTP/1.1 200 OK`` (a reason phrase, possibly
    empty, after the space RFC 9112 §4 puts there), ``HTTP/2 200`` (HTTP/2
    has none).
    """

    def __init__(self, msg: Message) -> None:
        self._parts: list[bytes] = []
        msg.got_headers.connect(self._got_headers)

    def _got_headers(self, msg: Message) -> None:
        version = msg.http_version
        status = f"HTTP/{VERSIONS[version]} {msg.status}"
        if version is not HTTPVersion.HTTP_2_0:
            status += f" {msg.reason_phrase}"
        lines = [status, *(f"{name}: {value}" for name, value in msg.response_headers), ""]
        # Header values came as bytes decoded as latin-1: back to the same bytes.
        self._parts.append("".join(line + "\r\n" for line in lines).encode("latin-1", "replace"))

    @property
    def data(self) -> bytes:
        """The heads recorded so far."""
        return b"".join(self._parts)


# -- the body (stdout or -o) -----------------------------------------------------------


async def to_stdout(body: InputStream, heads: bytes = b"") -> None:
    """Copy ``heads`` (``-i``), then the body to stdout as it comes, byte for byte.

    Raises:
        OSError: stdout can't be written (BrokenPipeError: its reader left).
    """
    out = stdout_bytes()
    if heads:
        out.write(heads)
        out.flush()
    async for chunk in body:
        out.write(chunk)
        out.flush()  # a stream of events shows as it comes


async def to_file(
    body: InputStream,
    msg: Message,
    path: str,
    *,
    heads: bytes = b"",
    decoded: bool = False,
    show_progress: bool = True,
) -> None:
    """Write ``heads`` then the body to the file at ``path``, showing progress on a terminal.

    Args:
        body: The response body.
        msg: Its message (the size of the body, from its headers).
        path: The file, made anew.
        heads: The response heads to write first (``-i``).
        decoded: The body is decoded on the way (``--compressed``).
        show_progress: False: no bar even on a terminal (``-s``).

    Raises:
        OSError: The file can't be opened or written.
    """
    # The size is known only for a body that is not decoded on the way.
    headers = msg.response_headers
    coded = decoded and headers.get_list("Content-Encoding") not in (None, "", "identity")
    total = None if coded else headers.get_content_length()
    stream = sys.stderr if show_progress else None
    async with await anyio.open_file(path, "wb") as file:
        if heads:
            await file.write(heads)
        with progress(stream, os.path.basename(path), total) as advance:
            async for chunk in body:
                await file.write(chunk)
                advance(len(chunk))


# -- download progress (-o) ------------------------------------------------------------


@contextlib.contextmanager
def progress(stream: TextIO | None, label: str, total: int | None) -> Iterator[Advance]:
    """Show a download's progress on ``stream`` while the block runs.

    Yields ``advance(nbytes)``. Nothing is shown unless ``stream`` is a
    terminal. ``total`` is the body's size if known.
    """
    if stream is None or not isatty(stream):
        yield _ignore
        return
    try:
        # Imported here: only a download on a terminal pays for it.
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
    except ImportError:
        line = _LineProgress(stream, label, total)
        try:
            yield line.advance
        finally:
            line.finish()
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),  # KiB, MiB: as the plain line says
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(file=stream)) as bar:
        task = bar.add_task(label, total=total)
        yield lambda nbytes: bar.advance(task, nbytes)


def _ignore(nbytes: int) -> None:
    pass


class _LineProgress:
    """Progress without rich: ``file.bin  1.5 MiB of 4.0 MiB  37%`` redrawn in place."""

    #: Seconds between redraws: often enough to look alive, rarely enough to cost nothing.
    INTERVAL = 0.1

    def __init__(self, stream: TextIO, label: str, total: int | None) -> None:
        self._stream = stream
        self._label = label
        self._total = total
        self._done = 0
        self._drawn_at = -self.INTERVAL
        self._width = 0

    def advance(self, nbytes: int) -> None:
        self._done += nbytes
        now = time.monotonic()
        if now - self._drawn_at >= self.INTERVAL:
            self._drawn_at = now
            self._draw()

    def finish(self) -> None:
        self._draw()
        say(self._stream, "\n")

    def _draw(self) -> None:
        text = f"{self._label}  {_size(self._done)}"
        if self._total:
            text += f" of {_size(self._total)}  {min(100, self._done * 100 // self._total)}%"
        # Pad over what the last, longer line left behind.
        say(self._stream, f"\r{text.ljust(self._width)}")
        self._width = len(text)


def _size(nbytes: float) -> str:
    """A size for people: ``512 B``, ``1.5 KiB``, ``3.0 MiB``."""
    unit = "B"
    for bigger in ("KiB", "MiB", "GiB"):
        if nbytes < 1024:
            break
        nbytes /= 1024
        unit = bigger
    return f"{int(nbytes)} B" if unit == "B" else f"{nbytes:.1f} {unit}"
