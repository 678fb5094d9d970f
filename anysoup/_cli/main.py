"""The ``anysoup`` command: one request (or a WebSocket) from the command line.

Theory of operation: :func:`parse_args` turns the command line into an
:class:`Options` value without any I/O (usage errors exit 2). :func:`main`
then reads what the options name (``-d @file``, a password, ``-b`` files:
:class:`~anysoup._cli.request.Request`), builds the
:class:`~anysoup.Session`, and runs the exchange under :func:`anyio.run`
on asyncio, or on trio when ``ANYSOUP_BACKEND=trio``: each try (``--retry``,
:mod:`anysoup._cli.tries`) gets a fresh :class:`~anysoup.Message`. Every
failure ends as one line on stderr, ``anysoup: <what failed>`` (none with
``-s``), and an exit status chosen as curl chooses it (see
:func:`exit_status`), so scripts written for curl read it the same way. The
status is the same whatever becomes of stdout and stderr: a line that can't
be written to stderr is lost, never turned into another failure.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from http import HTTPStatus
from typing import TYPE_CHECKING

import anyio

from .._features.cache.cache import Cache
from .._features.hsts.enforcer import HSTSEnforcerDB
from .._model.exceptions import Error, WebsocketClosed
from .._session.session import DEFAULT, Session
from .._transport.connect import UnixSocketAddress
from .._transport.tls import TlsDatabase
from .cookies import CommandLineCookies, cookie_strings, load_jar, save_jar
from .options import Options, parse_args
from .output import (
    Heads,
    TrafficPrinter,
    make_logger,
    make_printer,
    show_protocol,
    to_file,
    to_stdout,
)
from .request import Request
from .status import (
    EXIT_CA_FILE,
    EXIT_HTTP_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_READ,
    EXIT_USAGE,
    EXIT_WRITE,
    Failure,
    exit_status,
)
from .streams import say, settle
from .tries import RETRY_STATUSES, RetryStatus, time_limits, with_retries
from .websocket import converse

if TYPE_CHECKING:
    from .._features.cookies.jar import CookieJar
    from .._features.feature import SessionFeature
    from .._model.message import Message

__all__ = ["Options", "exit_status", "main", "parse_args"]

#: The environment variable that picks the event loop the command runs on.
BACKEND_VARIABLE = "ANYSOUP_BACKEND"


def main(argv: list[str] | None = None) -> int:
    """Run the ``anysoup`` command; return its exit status.

    Args:
        argv: The arguments after the command's name (default ``sys.argv[1:]``).
    """
    try:
        return _main(argv)
    finally:
        # What could not be written is still buffered: Python's own flush at
        # exit would fail again and turn the status into 120.
        settle(sys.stdout)
        settle(sys.stderr)


def _main(argv: list[str] | None) -> int:
    try:
        options = parse_args(argv)
    except SystemExit as exc:  # argparse's --help, --version (0) or usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return _run(options)
    except (Failure, Error) as exc:
        text = str(exc)
        if isinstance(exc, WebsocketClosed) and exc.reason:
            text += f": {exc.reason!r}"  # the peer's words, quoted: they could be anything
        if not options.quiet:
            say(sys.stderr, f"anysoup: {text}\n")
        return exit_status(exc)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``anysoup URL | head``): stop quietly, as curl does.
        return EXIT_WRITE


def _run(options: Options) -> int:
    """Read what the options name, build the session, run; the exit status or a failure."""
    backend = _backend()
    strings, files = cookie_strings(options.cookies)
    request = Request.prepare(options, strings)  # a malformed URL fails first
    jar = load_jar(files, options.cookie_jar)
    printer = make_printer(options.verbose, sys.stderr) if options.verbose else None
    session = _session(options, request, jar, printer)
    command = _Command(options, request, session, printer)
    try:
        status = anyio.run(command.run, backend=backend)
    except (Failure, Error):
        # As curl, the jar is written whatever became of the request.
        if jar is not None and options.cookie_jar is not None:
            with contextlib.suppress(Failure):  # the request's failure is the one to tell
                save_jar(jar, options.cookie_jar)
        raise
    if jar is not None and options.cookie_jar is not None:
        save_jar(jar, options.cookie_jar)
    return status


def _backend() -> str:
    """The event loop: ``ANYSOUP_BACKEND`` (asyncio or trio), asyncio when unset."""
    backend = os.environ.get(BACKEND_VARIABLE) or "asyncio"
    if backend not in ("asyncio", "trio"):
        raise Failure(EXIT_USAGE, f"{BACKEND_VARIABLE}={backend!r}: use asyncio or trio")
    if backend == "trio":
        try:
            import trio  # noqa: F401
        except ImportError:
            text = f"{BACKEND_VARIABLE}=trio: trio is not installed (pip install 'anysoup[trio]')"
            raise Failure(EXIT_USAGE, text) from None
    return backend


def _session(
    options: Options, request: Request, jar: CookieJar | None, printer: TrafficPrinter | None
) -> Session:
    features: list[SessionFeature] = []
    if printer is not None:
        features.append(make_logger(options.verbose, printer))
    if jar is not None:
        features.append(jar)
    if request.cookies:
        origin = request.uri.origin()
        features.append(CommandLineCookies(request.cookies, origin, after_jar=jar is not None))
    if options.hsts_db is not None:
        try:
            features.append(HSTSEnforcerDB(options.hsts_db))
        except ValueError as exc:
            raise Failure(EXIT_READ, f"--hsts-db: {exc}") from None
    if options.cache is not None:
        features.append(Cache(options.cache))
    tls_database = DEFAULT
    if options.cacert is not None:
        try:
            tls_database = TlsDatabase.from_file(options.cacert)
        except ValueError as exc:
            raise Failure(EXIT_CA_FILE, f"--cacert: {exc}") from None
    remote = UnixSocketAddress(options.unix_socket) if options.unix_socket else None
    return Session(
        timeout=options.timeout,
        # anysoup/VERSION, unless the command line sends its own or none.
        user_agent=None if request.sends_user_agent else "",
        tls_database=tls_database,
        remote_connectable=remote,
        features=features,
    )


class _Command:
    """One run: the tries of the request, or the WebSocket conversation."""

    def __init__(
        self,
        options: Options,
        request: Request,
        session: Session,
        printer: TrafficPrinter | None,
    ) -> None:
        self._options = options
        self._request = request
        self._session = session
        self._printer = printer
        #: The body has begun going to stdout: no second try.
        self._writing = False

    async def run(self) -> int:
        options = self._options
        async with self._session:
            if options.websocket:
                msg = self._message()
                with time_limits(msg, options), _writing_stdout():
                    await converse(self._session, msg, options.ws_wait)
                return EXIT_OK
            return await with_retries(options, self._try, lambda: self._writing, self._warn)

    def _message(self) -> Message:
        msg = self._request.message()
        if self._printer is not None:
            show_protocol(msg, self._printer)
        return msg

    def _warn(self, text: str) -> None:
        if not self._options.silent:
            say(sys.stderr, text)

    async def _try(self, last: bool) -> int:
        """Send the request once; write the answer, or raise RetryStatus if it is to be retried."""
        options = self._options
        msg = self._message()
        heads = Heads(msg) if options.include else None
        with time_limits(msg, options):
            async with self._session.send(msg) as body:
                if not last and msg.status in RETRY_STATUSES:
                    raise RetryStatus(msg)
                if options.fail and msg.status >= 400:
                    raise Failure(EXIT_HTTP_ERROR, _http_error(msg))
                if options.max_filesize is not None:
                    # Refused here when the Content-Length tells: then no -o file is made.
                    await body._limit_size(options.max_filesize, "--max-filesize")
                head_bytes = heads.data if heads is not None else b""
                if options.output is None or options.output == "-":
                    self._writing = True
                    with _writing_stdout():
                        await to_stdout(body, head_bytes)
                    return EXIT_OK
                try:
                    await to_file(
                        body,
                        msg,
                        options.output,
                        heads=head_bytes,
                        decoded=options.compressed,
                        show_progress=not options.silent,
                    )
                except OSError as exc:
                    text = f"-o: can't write {options.output!r}: {exc.strerror or exc}"
                    raise Failure(EXIT_WRITE, text) from None
        return EXIT_OK


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


@contextlib.contextmanager
def _writing_stdout() -> Iterator[None]:
    """Failing to write to stdout is curl's write error (23), said in one line.

    A reader that went away (BrokenPipeError) ends the command quietly
    instead (:func:`main`).
    """
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise Failure(EXIT_WRITE, f"can't write to stdout: {exc.strerror or exc}") from None
