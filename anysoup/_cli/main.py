"""The ``anysoup`` command: one request (or a WebSocket) from the command line.

Theory of operation: :func:`parse_args` turns the command line into an
:class:`Options` value without any I/O (usage errors exit 2). :func:`main`
then reads what the options name (``-d @file``, a password), builds the
:class:`~anysoup.Session` and the :class:`~anysoup.Message`, and runs one
exchange under :func:`anyio.run`. Every failure ends as one line on stderr,
``anysoup: <what failed>``, and an exit status chosen as curl chooses it (see
:func:`exit_status`), so scripts written for curl read it the same way. The
status is the same whatever becomes of stdout and stderr: a line that can't
be written to stderr is lost, never turned into another failure.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import sys
from collections.abc import Iterator
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import anyio

from .._features.cookies.stores import CookieJarText
from .._features.hsts.enforcer import HSTSEnforcerDB
from .._model.enums import MessageFlags
from .._model.exceptions import Error, WebsocketClosed
from .._model.message import Message
from .._session.session import DEFAULT, Session
from .._transport.connect import UnixSocketAddress
from .._transport.tls import TlsDatabase
from .options import Options, check_json, parse_args
from .output import (
    TrafficPrinter,
    converse,
    make_logger,
    make_printer,
    show_protocol,
    to_file,
    to_stdout,
)
from .status import (
    EXIT_BAD_URL,
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

if TYPE_CHECKING:
    from .._features.auth.auth_policy import Auth
    from .._features.feature import SessionFeature

__all__ = ["Options", "exit_status", "main", "parse_args"]

#: Sent with --json unless the command line sets Accept itself.
_JSON_ACCEPT = "application/json, */*;q=0.5"


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
    except SystemExit as exc:  # argparse's --help (0) or usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        msg = _message(options)  # a malformed URL fails first, before any file is opened
        printer = make_printer(options.verbose, sys.stderr) if options.verbose else None
        if printer is not None:
            show_protocol(msg, printer)
        session = _session(options, printer)
        return anyio.run(_run, options, session, msg)
    except (Failure, Error) as exc:
        text = str(exc)
        if isinstance(exc, WebsocketClosed) and exc.reason:
            text += f": {exc.reason!r}"  # the peer's words, quoted: they could be anything
        say(sys.stderr, f"anysoup: {text}\n")
        return exit_status(exc)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``anysoup URL | head``): stop quietly, as curl does.
        return EXIT_WRITE


def _session(options: Options, printer: TrafficPrinter | None) -> Session:
    features: list[SessionFeature] = []
    if printer is not None:
        features.append(make_logger(options.verbose, printer))
    if options.cookie_jar is not None:
        features.append(CookieJarText(options.cookie_jar))
    if options.hsts_db is not None:
        try:
            features.append(HSTSEnforcerDB(options.hsts_db))
        except ValueError as exc:
            raise Failure(EXIT_READ, f"--hsts-db: {exc}") from None
    tls_database = DEFAULT
    if options.cacert is not None:
        try:
            tls_database = TlsDatabase.from_file(options.cacert)
        except ValueError as exc:
            raise Failure(EXIT_CA_FILE, f"--cacert: {exc}") from None
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
        raise Failure(EXIT_BAD_URL, str(exc)) from None
    ours: set[str] = set()  # headers set here, which the command line's replace
    if options.data is not None:
        msg.set_request_body_from_bytes(None, _read_body(options.data, "-d"))
    elif options.json is not None:
        data = _read_body(options.json, "--json")
        if options.json.startswith("@"):
            check_json(None, data.decode("utf-8", "replace"))
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
    if options.http1:
        msg.force_http1 = True  # ALPN offers only http/1.1, on every hop
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
        raise Failure(EXIT_READ, f"{option}: can't read {path!r}: {exc.strerror}") from None


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
            with _writing_stdout():
                await converse(session, msg)
            return EXIT_OK
        async with session.send(msg) as body:
            if options.fail and msg.status >= 400:
                raise Failure(EXIT_HTTP_ERROR, _http_error(msg))
            if options.max_filesize is not None:
                # Refused here when the Content-Length tells: then no -o file is made.
                await body._limit_size(options.max_filesize, "--max-filesize")
            if options.output is None or options.output == "-":
                with _writing_stdout():
                    await to_stdout(body)
                return EXIT_OK
            try:
                await to_file(body, msg, options.output)
            except OSError as exc:
                text = f"-o: can't write {options.output!r}: {exc.strerror or exc}"
                raise Failure(EXIT_WRITE, text) from None
    return EXIT_OK


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
