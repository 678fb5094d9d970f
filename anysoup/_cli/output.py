"""Where the ``anysoup`` command's results go: the body, a WebSocket's messages, the log.

The body goes to stdout or the ``-o`` file byte for byte; a WebSocket's
messages go to stdout, a line each. What is meant for people goes to stderr
and stays out of a program's way: colour only when stderr is a terminal and
``NO_COLOR`` is unset (https://no-color.org), a progress bar only on a
terminal. The bar is rich's when rich is installed (``pip install
'anysoup[cli]'``), else one plain line redrawn in place.
Text for people goes through :func:`~anysoup._cli.streams.say`: losing it
never fails the command.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, TextIO

import anyio
import anyio.from_thread

from .._features.logger.lines_policy import request_version
from .._features.logger.logger import Logger
from .._model.enums import LoggerLogLevel, WebsocketCloseCode
from .._model.exceptions import WebsocketClosed
from .streams import say, stdout_bytes

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from .._drivers.websocket import WebsocketConnection
    from .._model.body import InputStream
    from .._model.message import Message
    from .._session.session import Session

__all__ = [
    "Advance",
    "TrafficPrinter",
    "converse",
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
    session, message and connection) are shown only with ``debug``. An
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
        if not self._debug and data.startswith("Soup-Debug"):
            return
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
    """The Logger for ``-v`` (responses' status and headers) or ``-vv`` (and requests).

    ``-vv`` shows requests with their headers and bodies, then each response's
    head: the response body goes to stdout or the file, so it is not repeated.
    Credentials and cookie values are redacted.
    """
    if verbose >= 2:
        logger = Logger(LoggerLogLevel.BODY, _MAX_BODY_SHOWN)
        logger.set_response_filter(lambda *_: LoggerLogLevel.HEADERS)
    else:
        logger = Logger(LoggerLogLevel.HEADERS)
        logger.set_request_filter(lambda *_: LoggerLogLevel.NONE)
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


# -- the body (stdout or -o) -----------------------------------------------------------


async def to_stdout(body: InputStream) -> None:
    """Copy the body to stdout as it comes, byte for byte.

    Raises:
        OSError: stdout can't be written (BrokenPipeError: its reader left).
    """
    out = stdout_bytes()
    async for chunk in body:
        out.write(chunk)
        out.flush()  # a stream of events shows as it comes


async def to_file(body: InputStream, msg: Message, path: str) -> None:
    """Write the body to the file at ``path``, showing progress on a terminal.

    Raises:
        OSError: The file can't be opened or written.
    """
    # The size is known only for a body that is not decoded on the way.
    headers = msg.response_headers
    coded = headers.get_list("Content-Encoding") not in (None, "", "identity")
    total = None if coded else headers.get_content_length()
    async with await anyio.open_file(path, "wb") as file:
        with progress(sys.stderr, os.path.basename(path), total) as advance:
            async for chunk in body:
                await file.write(chunk)
                advance(len(chunk))


# -- download progress (-o) ------------------------------------------------------------


@contextlib.contextmanager
def progress(stream: TextIO, label: str, total: int | None) -> Iterator[Advance]:
    """Show a download's progress on ``stream`` while the block runs.

    Yields ``advance(nbytes)``. Nothing is shown unless ``stream`` is a
    terminal. ``total`` is the body's size if known.
    """
    if not isatty(stream):
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


# -- --ws: a conversation --------------------------------------------------------------


async def converse(session: Session, msg: Message) -> None:
    """Send stdin's lines as text messages and print what arrives, until either side ends.

    At the end of stdin the WebSocket is closed (1000) with the closing
    handshake; when the peer closes first, stdin is no longer read. A close
    by the peer with a code other than 1000, 1001 or none is a failure.
    """
    # Only this task receives and closes: a close() from another task while
    # this one is inside receive() can make both read the socket at once.
    printing = anyio.CancelScope()

    async def send_lines(ws: WebsocketConnection, lines: MemoryObjectReceiveStream[str]) -> None:
        try:
            async for line in lines:
                await ws.send_text(line)
        except WebsocketClosed:
            return  # the peer closed first: the printing side reports how
        printing.cancel()  # the end of stdin: time to close

    async with (
        session.websocket_connect(msg) as ws,
        _stdin_lines() as lines,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(send_lines, ws, lines)
        closed = None
        with printing:
            closed = await _print_messages(ws)
        if printing.cancelled_caught:
            await ws.close(WebsocketCloseCode.NORMAL)
            closed = await _print_messages(ws)  # what came before the peer's answer
        tg.cancel_scope.cancel()  # the peer is gone: stdin has nothing more to say
    if closed is not None:
        raise closed


async def _print_messages(ws: WebsocketConnection) -> WebsocketClosed | None:
    """Print messages until the close: text as a line, binary as a bytes literal.

    Returns the error for a close that was not normal.
    """
    out = stdout_bytes()  # text messages are UTF-8 whatever the locale says
    try:
        async for message in ws:
            line = message.encode() if isinstance(message, str) else repr(message).encode()
            out.write(line + b"\n")
            out.flush()
    except WebsocketClosed as exc:
        return exc
    return None


@contextlib.asynccontextmanager
async def _stdin_lines() -> AsyncIterator[MemoryObjectReceiveStream[str]]:
    """Stdin's lines (without their line ends), read by a thread, as a receive stream.

    A thread because no event loop can wait on every kind of stdin (a regular
    file can't be polled). It is a daemon thread reading the raw file
    descriptor, so a read that never returns (a terminal nobody types on)
    neither holds a lock of ``sys.stdin`` nor keeps the process alive.
    """
    send, receive = anyio.create_memory_object_stream[str](16)
    async with anyio.from_thread.BlockingPortal() as portal:
        args = (portal, send)
        threading.Thread(target=_read_stdin, args=args, name="anysoup stdin", daemon=True).start()
        with receive:
            yield receive
        # A send waiting in the portal failed when ``receive`` closed; stop the rest.
        await portal.stop(cancel_remaining=True)


def _read_stdin(
    portal: anyio.from_thread.BlockingPortal, send: MemoryObjectSendStream[str]
) -> None:
    """The thread of :func:`_stdin_lines`: hand each line to the event loop."""
    # Any failure means the conversation is over (the receiver or the portal is
    # gone, stdin is unreadable): the thread just ends, closing its stream.
    with contextlib.suppress(Exception):
        pending = b""
        while chunk := os.read(sys.stdin.fileno(), 65536):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                portal.call(send.send, _text(line))
        if pending:
            portal.call(send.send, _text(pending))
    with contextlib.suppress(Exception):
        portal.call(send.aclose)


def _text(line: bytes) -> str:
    return line.decode("utf-8", "replace").removesuffix("\r")
