"""The ``anysoup`` command: its parsing and exit statuses, then the command in a subprocess.

The subprocess tests talk to servers on loopback that run in a thread of
their own (an anyio blocking portal, httpbin's WSGI thread, the websockets
package's thread), so the tests are plain functions and ``subprocess.run``
bounds each run with a timeout.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import select
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from subprocess import PIPE
from typing import IO, Any

import anyio
import pytest
import trustme
from anyio.from_thread import start_blocking_portal
from servers import (
    CertFiles,
    Handler,
    ReceivedRequest,
    Server,
    ServerConnection,
    echo_app,
    hanging_listener,
    serve_asgi,
    serve_http,
    serve_raw,
)
from ws_servers import WsPeer, serve_ws, websockets_server
from wsproto import ConnectionState
from wsproto.events import CloseConnection

import anysoup
from anysoup import (
    BodyTooLarge,
    ConnectError,
    EncodingError,
    IncompleteBody,
    LoggerLogLevel,
    Message,
    NetworkError,
    ParsingError,
    TimeoutError,
    TlsCertificateFlags,
    TlsError,
    TooManyRedirects,
    WebsocketClosed,
    WebsocketError,
)
from anysoup._cli import tries
from anysoup._cli.main import Options, exit_status, main, parse_args
from anysoup._cli.output import TrafficPrinter, progress, wants_colour

#: Seconds one run of the command may take before the test fails.
RUN_TIMEOUT = 10

# -- the command line, parsed (no I/O) -------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "method", "url"),
    [
        (["http://h/"], "GET", "http://h/"),
        (["HEAD", "http://h/"], "HEAD", "http://h/"),
        (["delete", "http://h/"], "DELETE", "http://h/"),  # known methods in any case
        (["M-SEARCH", "http://h/"], "M-SEARCH", "http://h/"),  # capitals: a method
        (["localhost:8080/x"], "GET", "http://localhost:8080/x"),  # no scheme: http
        (["localhost", "X-A:1"], "GET", "http://localhost"),  # a host, not a method
        (["-d", "x", "http://h/"], "POST", "http://h/"),  # a body: POST
        (["PUT", "http://h/", "--json", "{}"], "PUT", "http://h/"),
        (["--ws", "localhost:9/chat"], "GET", "ws://localhost:9/chat"),
    ],
)
def test_method_and_url(argv: list[str], method: str, url: str) -> None:
    options = parse_args(argv)
    assert (options.method, options.url) == (method, url)


def test_items_after_the_url_are_headers_and_options_may_follow() -> None:
    options = parse_args(["http://h/", "X-A:1", "-v", "X-B:  two words ", "Empty:", "-v"])
    assert options.headers == (("X-A", "1"), ("X-B", "two words"), ("Empty", ""))
    assert options.verbose == 2


def test_options_are_kept() -> None:
    argv = "--form a=1 --form b=x=y --user ann:s:cret --timeout 2.5 --no-redirect --fail"
    options = parse_args([*argv.split(), "-o", "f", "http://h/"])
    assert options == Options(
        method="POST",
        url="http://h/",
        form=(("a", "1"), ("b", "x=y")),
        user=("ann", "s:cret"),
        timeout=2.5,
        redirect=False,
        fail=True,
        output="f",
    )
    assert parse_args(["--user", "ann", "http://h/"]).user == ("ann", None)  # asks


@pytest.mark.parametrize(
    ("argv", "http1"), [([], False), (["--http2"], False), (["--http1.1"], True)]
)
def test_http_version_flags(argv: list[str], http1: bool) -> None:
    assert parse_args([*argv, "https://h/"]).http1 is http1


@pytest.mark.parametrize(
    ("size", "expected"),
    [("1000", 1000), ("2k", 2048), ("3M", 3 << 20), ("1g", 1 << 30), ("0", None)],
)
def test_max_filesize_takes_curls_suffixes(size: str, expected: int | None) -> None:
    assert parse_args(["--max-filesize", size, "http://h/"]).max_filesize == expected


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--max-filesize", "-1", "http://h/"],
        ["--max-filesize", "1.5k", "http://h/"],
        ["--max-filesize", "1T", "http://h/"],
        ["-d", "x", "--json", "{}", "http://h/"],  # one kind of body at a time
        ["-d", "x", "--form", "a=1", "http://h/"],
        ["--json", "{not json", "http://h/"],
        ["--form", "novalue", "http://h/"],
        ["http://h/", "not-a-header"],
        ["http://h/", "bad name:x"],
        ["--timeout", "-1", "http://h/"],
        ["--timeout", "nan", "http://h/"],
        ["--ws", "-d", "x", "ws://h/"],
        ["--ws", "-o", "f", "ws://h/"],
        ["--http1.1", "--http2", "http://h/"],  # one version at a time, as with curl
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage: anysoup" in capsys.readouterr().err


@pytest.mark.parametrize("url", ["ftp://example.org/", "http://[::1/", "http:///nohost"])
def test_malformed_url_exits_3(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([url]) == 3
    err = capsys.readouterr().err
    assert err.startswith("anysoup: ") and err.count("\n") == 1, err


def test_unreadable_data_file_exits_26(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-d", f"@{tmp_path / 'missing'}", "http://127.0.0.1:9/"]) == 26
    assert "can't read" in capsys.readouterr().err


def test_bad_cacert_exits_77(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ca.pem").write_text("no certificate here")
    assert main(["--cacert", str(tmp_path / "ca.pem"), "https://127.0.0.1:9/"]) == 77
    assert capsys.readouterr().err.startswith("anysoup: --cacert: ")


def _unresolved(text: str) -> ConnectError:
    error = ConnectError(text)
    error.__cause__ = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return error


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (_unresolved("resolve 'nowhere.invalid': name or service not known"), 6),
        (ConnectError("resolve 'x.invalid': no address found"), 6),
        (ConnectError("connect to 127.0.0.1:9: connection refused"), 7),
        (ParsingError("reading response headers from h:80: not HTTP"), 8),
        (IncompleteBody("reading response body from h:80: 10 bytes missing"), 18),
        (TimeoutError("connect to h:80 timed out after 2 s"), 28),
        (TlsError("TLS handshake with h:443: unexpected eof"), 35),
        (TlsError("…: certificate rejected", errors=TlsCertificateFlags.UNKNOWN_CA), 60),
        (TooManyRedirects("GET http://h/: too many redirects"), 47),
        (NetworkError("h:80: the server closed the connection without a response"), 52),
        (NetworkError("reading from h:80: connection reset by peer"), 56),
        (EncodingError("decoding gzip from h:80: bad header"), 61),
        (BodyTooLarge("reading the response body from h:80: it is over …"), 63),
        (WebsocketError("the answer is not a WebSocket handshake"), 8),
        (WebsocketClosed("the WebSocket closed", code=4004, reason="no"), 56),
    ],
)
def test_exit_statuses_are_curls(error: Exception, status: int) -> None:
    assert exit_status(error) == status


# -- what people see: the traffic log and progress -------------------------------------


def _log(printer: TrafficPrinter) -> None:
    lines = [
        (LoggerLogLevel.MINIMAL, "<", "HTTP/1.1 404 Not Found"),
        (LoggerLogLevel.MINIMAL, "<", "Soup-Debug: Message 1 (0x1)"),
        (LoggerLogLevel.HEADERS, "<", "Content-Type: text/plain"),
        (LoggerLogLevel.MINIMAL, " ", ""),
    ]
    for level, direction, data in lines:
        printer(None, level, direction, data)  # type: ignore[arg-type]


def test_traffic_is_plain_unless_coloured() -> None:
    plain = io.StringIO()
    _log(TrafficPrinter(plain, colour=False, debug=False))
    assert plain.getvalue() == "< HTTP/1.1 404 Not Found\n< Content-Type: text/plain\n\n"
    coloured = io.StringIO()
    _log(TrafficPrinter(coloured, colour=True, debug=True))
    text = coloured.getvalue()
    assert "\x1b[1;31mHTTP/1.1 404 Not Found\x1b[0m" in text  # 4xx: red
    assert "\x1b[36mContent-Type\x1b[0m: text/plain" in text
    assert "Soup-Debug: Message 1" in text  # kept at -vv


def test_http2_status_lines_lose_the_loggers_reason_phrase() -> None:
    """HTTP/2 carries none: ``< HTTP/2 404``, as curl prints it; HTTP/1.1 keeps the server's."""
    out = io.StringIO()
    printer = TrafficPrinter(out, colour=False, debug=False)
    printer.info("using HTTP/2")
    for data in ("HTTP/2 404 Not Found", "HTTP/2 299", "HTTP/1.1 404 Not Found"):
        printer(None, LoggerLogLevel.MINIMAL, "<", data)  # type: ignore[arg-type]
    assert out.getvalue().splitlines() == [
        "* using HTTP/2",
        "< HTTP/2 404",
        "< HTTP/2 299",
        "< HTTP/1.1 404 Not Found",
    ]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert wants_colour(_Terminal()) and not wants_colour(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not wants_colour(_Terminal())
    monkeypatch.setenv("NO_COLOR", "")  # https://no-color.org: set *and* not empty
    assert wants_colour(_Terminal())


def test_progress_shows_only_on_a_terminal() -> None:
    piped = io.StringIO()
    with progress(piped, "f.bin", 10) as advance:
        advance(10)
    assert piped.getvalue() == ""


def test_progress_without_rich_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rich.progress", None)  # as if rich were missing
    terminal = _Terminal()
    with progress(terminal, "f.bin", 3 << 20) as advance:
        advance(1 << 20)
        advance(2 << 20)
    assert terminal.getvalue().endswith("\rf.bin  3.0 MiB of 3.0 MiB  100%\n")


def test_progress_with_rich() -> None:
    pytest.importorskip("rich")
    terminal = _Terminal()
    with progress(terminal, "f.bin", 2048) as advance:
        advance(2048)
    assert "f.bin" in terminal.getvalue()


# -- the command, in a subprocess ------------------------------------------------------


@contextmanager
def serve_in_thread(handler: Handler, **options: Any) -> Iterator[Server]:
    """``serve_http`` on an event loop in another thread, for a test that blocks."""
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(serve_http(handler, **options)) as server,
    ):
        yield server


async def by_path(conn: ServerConnection, req: ReceivedRequest) -> None:
    if req.target == "/missing":
        await conn.respond(404, [("Content-Type", "text/plain")], b"no such page")
    elif req.target == "/moved":
        await conn.respond(302, [("Location", "/hello")], b"see /hello")
    elif req.target == "/cookie":
        await conn.respond(200, [("Set-Cookie", "flavour=oat; Path=/; Max-Age=600")], b"")
    elif req.target == "/big":
        await conn.respond(200, [("Content-Type", "application/octet-stream")], BIG)
    elif req.target == "/cached":
        await conn.respond(200, [("Cache-Control", "max-age=600")], b"cached body")
    elif req.target == "/big-chunked":
        await conn.respond(200, [("Content-Type", "application/octet-stream")], BIG, chunked=True)
    else:
        await conn.respond(
            200, [("Content-Type", "text/plain")], b"body of " + req.target.encode()
        )


#: A body that is not text and is larger than one read.
BIG = bytes(range(256)) * 1024


#: The environment of every run: no colour, whatever the test runner's terminal.
ENV = {**os.environ, "NO_COLOR": "1"}


def run(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "anysoup", *args],
        capture_output=True,
        env=ENV,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def test_get_writes_the_body_to_stdout() -> None:
    with serve_in_thread(by_path) as server:
        result = run(server.url_for("/hello"))
    assert (result.returncode, result.stdout, result.stderr) == (0, b"body of /hello", b"")
    user_agent = server.requests[0].header("user-agent")
    assert user_agent is not None and user_agent.startswith("anysoup/")


def test_cache_keeps_answers_between_runs(tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    with serve_in_thread(by_path) as server:
        first = run("--cache", cache, server.url_for("/cached"))
        second = run("--cache", cache, "-v", server.url_for("/cached"))
    assert (first.returncode, first.stdout) == (0, b"cached body"), first.stderr
    assert (second.returncode, second.stdout) == (0, b"cached body"), second.stderr
    assert len(server.requests) == 1
    assert b"* answered from the cache (hit)" in second.stderr


def test_fail_turns_an_http_error_into_exit_22() -> None:
    with serve_in_thread(by_path) as server:
        plain = run(server.url_for("/missing"))
        failing = run("--fail", server.url_for("/missing"))
    assert (plain.returncode, plain.stdout) == (0, b"no such page")  # as curl without -f
    assert (failing.returncode, failing.stdout) == (22, b"")
    lines = failing.stderr.decode().splitlines()
    assert len(lines) == 1 and "404 Not Found" in lines[0], lines


def test_headers_data_file_and_redirects(tmp_path: Path) -> None:
    (tmp_path / "data.bin").write_bytes(BIG[:1000])
    with serve_in_thread(by_path) as server:
        sent = run("PUT", server.url_for("/moved"), "-d", f"@{tmp_path / 'data.bin'}", "X-A:1")
        kept = run("--no-redirect", server.url_for("/moved"), "X-Two: two words")
    assert sent.returncode == 0 and sent.stdout == b"body of /hello", sent.stderr
    first = server.requests[0]
    assert (first.method, first.body, first.header("x-a")) == ("PUT", BIG[:1000], "1")
    assert kept.returncode == 0 and kept.stdout == b"see /hello", kept.stderr
    assert server.requests[-1].header("x-two") == "two words"


def test_json_and_form_are_posted(httpbin: Any) -> None:
    sent = run("--json", '{"name": "ann", "n": [1, 2]}', f"{httpbin.url}/post")
    assert sent.returncode == 0, sent.stderr
    echo = json.loads(sent.stdout)
    assert echo["json"] == {"name": "ann", "n": [1, 2]}
    assert echo["headers"]["Content-Type"] == "application/json"
    form = run("--form", "a=1", "--form", "b=x y&z", f"{httpbin.url}/post")
    assert json.loads(form.stdout)["form"] == {"a": "1", "b": "x y&z"}


def test_user_answers_the_challenge(httpbin: Any) -> None:
    result = run("--user", "ann:s3cret", f"{httpbin.url}/basic-auth/ann/s3cret")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"authenticated": True, "user": "ann"}


def test_download_to_a_file(tmp_path: Path) -> None:
    target = tmp_path / "big.bin"
    with serve_in_thread(by_path) as server:
        result = run("-o", str(target), server.url_for("/big"))
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")  # no progress: piped
    assert target.read_bytes() == BIG


def test_verbose_shows_heads_on_stderr_without_colour_when_piped() -> None:
    """-v: both heads, as curl -v shows them; -vv: the request body and the debug lines too."""
    with serve_in_thread(by_path) as server:
        heads = run("-v", "-d", "ping", server.url_for("/hello"))
        traffic = run("-vv", "-d", "ping", server.url_for("/hello"))
    assert heads.returncode == 0 and heads.stdout == b"body of /hello"
    err = heads.stderr.decode()
    assert "> POST /hello HTTP/1.1\n" in err and "> Content-Length: 4\n" in err, err
    assert "< HTTP/1.1 200\n" in err and "< Content-Type: text/plain\n" in err, err
    assert "ping" not in err and "Soup-Debug" not in err and "\x1b[" not in err
    err = traffic.stderr.decode()
    assert "> POST /hello HTTP/1.1\n" in err and "> Content-Length: 4\n" in err, err
    assert "ping" in err and "< HTTP/1.1 200\n" in err and "\x1b[" not in err
    # Which session, message and connection, without their memory addresses.
    assert "> Soup-Debug: Session 1, Message 1, new connection to 127.0.0.1:" in err, err
    assert "0x" not in err, err


def test_verbose_names_the_protocol_of_each_new_connection() -> None:
    with serve_in_thread(by_path) as server:
        result = run("-v", server.url_for("/moved"))  # a redirect on the same connection
    lines = result.stderr.decode().splitlines()
    assert lines[0] == "* using HTTP/1.1" and lines.count("* using HTTP/1.1") == 1, lines
    assert "< HTTP/1.1 302" in lines and "< HTTP/1.1 200" in lines, lines


def test_http2_by_alpn_and_http11_when_asked(
    tls_ca: trustme.CA, tls_cert_files: CertFiles, tmp_path: Path
) -> None:
    """hypercorn offers h2 and http/1.1: --http2 (the default) gets HTTP/2, --http1.1 not.

    -v says which, as curl does: ``* using HTTP/2``, and HTTP/2's status line
    without a reason phrase (it carries none).
    """
    ca_file = tmp_path / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(ca_file))
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(
            serve_asgi(
                echo_app,
                ssl_certfile=tls_cert_files.certfile,
                ssl_keyfile=tls_cert_files.keyfile,
            )
        ) as base,
    ):
        url = f"{base}/hello"
        default = run("-v", "--cacert", str(ca_file), url)
        explicit = run("-vv", "--http2", "--cacert", str(ca_file), url)
        http1 = run("-vv", "--http1.1", "--cacert", str(ca_file), url)
    for result in (default, explicit, http1):
        assert (result.returncode, result.stdout) == (0, b"hello"), result.stderr
    err = default.stderr.decode()
    assert err.startswith("* using HTTP/2\n> GET /hello HTTP/2\n"), err
    assert "\n< HTTP/2 200\n< content-length: 5\n" in err, err
    err = explicit.stderr.decode()
    assert err.startswith("* using HTTP/2\n> GET /hello HTTP/2\n"), err
    assert "\n< HTTP/2 200\n" in err and "> Host:" not in err, err
    err = http1.stderr.decode()
    assert err.startswith("* using HTTP/1.1\n> GET /hello HTTP/1.1\n"), err
    assert "\n> Host: 127.0.0.1:" in err and "\n< HTTP/1.1 200\n" in err, err
    assert "server: hypercorn-h11" in err and "HTTP/2" not in err, err


def test_http2_to_an_http_url_goes_over_http11() -> None:
    """HTTP/2 is offered only by TLS ALPN: ``--http2 http://…`` speaks HTTP/1.1 (no h2c)."""
    with serve_in_thread(by_path) as server:
        result = run("-v", "--http2", server.url_for("/hello"))
    assert (result.returncode, result.stdout) == (0, b"body of /hello"), result.stderr
    err = result.stderr.decode()
    assert err.startswith("* using HTTP/1.1\n> GET /hello HTTP/1.1\n"), err
    assert "\n< HTTP/1.1 200\n" in err, err


def test_refused_connection_exits_7_naming_the_address() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run(f"http://127.0.0.1:{port}/")
    assert result.returncode == 7
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("anysoup: ") and f"127.0.0.1:{port}" in lines[0]
    assert "refused" in lines[0]


def test_cookie_jar_keeps_cookies_between_runs(tmp_path: Path) -> None:
    jar = str(tmp_path / "cookies.txt")
    with serve_in_thread(by_path) as server:
        stored = run("--cookie-jar", jar, server.url_for("/cookie"))
        sent = run("--cookie-jar", jar, server.url_for("/hello"))
    assert stored.returncode == sent.returncode == 0, (stored.stderr, sent.stderr)
    assert "flavour\toat" in Path(jar).read_text()
    assert server.requests[-1].header("cookie") == "flavour=oat"


def test_cacert_trusts_a_private_ca(
    tls_ca: trustme.CA, tls_server_context: ssl.SSLContext, tmp_path: Path
) -> None:
    ca_file = tmp_path / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(ca_file))
    with serve_in_thread(by_path, ssl_context=tls_server_context) as server:
        trusted = run("--cacert", str(ca_file), server.url_for("/secure"))
        untrusted = run(server.url_for("/secure"))  # the system store doesn't know this CA
    assert (trusted.returncode, trusted.stdout) == (0, b"body of /secure"), trusted.stderr
    assert untrusted.returncode == 60, untrusted.stderr
    assert untrusted.stderr.decode().count("\n") == 1 and b"certificate" in untrusted.stderr


def test_connection_closed_without_an_answer_exits_52() -> None:
    async def hang_up(conn: ServerConnection) -> None:
        await conn.stream.receive_until(b"\r\n\r\n", 65536)  # then close, answering nothing

    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(serve_raw(hang_up)) as server,
    ):
        result = run(server.url_for("/"))
    assert result.returncode == 52, result.stderr
    assert b"without a response" in result.stderr


def test_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "http.sock")
    with serve_in_thread(by_path, unix_path=path) as server:
        result = run("--unix-socket", path, "http://localhost/over-unix")
    assert (result.returncode, result.stdout) == (0, b"body of /over-unix"), result.stderr
    assert server.requests[0].header("host") == "localhost"


def test_websocket_lines_in_messages_out() -> None:
    """Each line typed is a message; each message comes back as a line; EOF closes.

    Typed one at a time, as a person would: when stdin ends the command
    closes at once, and an echo not yet sent by then is lost (RFC 6455 §5.5.1:
    no data after the close), so a pipe of lines could race the echoes.
    """
    command = [sys.executable, "-m", "anysoup", "--ws"]
    with (
        websockets_server() as url,
        subprocess.Popen(
            [*command, f"{url}/echo"], stdin=PIPE, stdout=PIPE, stderr=PIPE, env=ENV
        ) as proc,
    ):
        assert proc.stdin is not None and proc.stdout is not None
        echoes = []
        for line in (b"one\n", "twö\n".encode()):
            proc.stdin.write(line)
            proc.stdin.flush()
            echoes.append(read_line(proc.stdout))
        proc.stdin.close()
        assert proc.wait(RUN_TIMEOUT) == 0, proc.stderr and proc.stderr.read()
    assert echoes == [b"one\n", "twö\n".encode()]


def test_websocket_closed_by_the_server_with_an_error_code() -> None:
    command = [sys.executable, "-m", "anysoup", "--ws"]
    with (
        websockets_server() as url,
        subprocess.Popen(
            [*command, f"{url}/close?code=4001&reason=bye"],
            stdin=PIPE,
            stdout=PIPE,
            stderr=PIPE,
            env=ENV,
        ) as proc,
    ):
        assert proc.stdin is not None and proc.stderr is not None
        proc.stdin.write(b"hello\n")
        proc.stdin.flush()  # and stdin stays open: the server ends the conversation
        assert proc.wait(RUN_TIMEOUT) == 56
        lines = proc.stderr.read().decode().splitlines()
    assert len(lines) == 1 and "(4001)" in lines[0] and lines[0].endswith("'bye'"), lines


def read_line(stream: IO[bytes]) -> bytes:
    ready, _, _ = select.select([stream], [], [], RUN_TIMEOUT)
    assert ready, "no line in time"
    return stream.readline()


def shell(line: str) -> subprocess.CompletedProcess[bytes]:
    """Run a bash command line in which ``ANYSOUP`` stands for the command."""
    command = line.replace("ANYSOUP", f"{shlex.quote(sys.executable)} -m anysoup")
    return subprocess.run(
        ["bash", "-c", command], capture_output=True, timeout=RUN_TIMEOUT, check=False
    )


def test_reader_going_away_is_quiet() -> None:
    """``anysoup URL | head``: a closed pipe ends the command without a traceback."""
    with serve_in_thread(by_path) as server:
        url = server.url_for("/big")
        result = shell(f"ANYSOUP {url} | head -c 10 >/dev/null; echo rc=${{PIPESTATUS[0]}}")
    assert result.stdout.strip() == b"rc=23"
    assert result.stderr == b""


# -- the exit status, whatever becomes of stdout and stderr ----------------------------


@contextmanager
def closed_pipe() -> Iterator[int]:
    """The write end of a pipe whose read end is closed: every write to it fails (EPIPE)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        yield write_end
    finally:
        os.close(write_end)


def run_into(stdout: int, stderr: int, *args: str) -> int:
    """Run the command with the given descriptors for stdout and stderr; its exit status.

    A traceback would make it 1, and Python's failed flush of a standard
    stream at exit ("Exception ignored …") 120.
    """
    command = [sys.executable, "-m", "anysoup", *args]
    return subprocess.run(
        command, stdout=stdout, stderr=stderr, env=ENV, timeout=RUN_TIMEOUT, check=False
    ).returncode


def refused_url() -> str:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/"


def test_the_exit_status_survives_stderr_being_a_closed_pipe() -> None:
    """The failure's line can't be written: the status is still the failure's."""
    url = refused_url()
    with closed_pipe() as broken, serve_in_thread(by_path) as server:
        assert run_into(subprocess.DEVNULL, broken, "--fail", url) == 7
        # ``2>&1 | true``: stdout and stderr are the same closed pipe.
        assert run_into(broken, broken, "--fail", url) == 7
        assert run_into(subprocess.DEVNULL, broken, "--fail", server.url_for("/missing")) == 22
        assert run_into(broken, broken, "--no-such-option") == 2


def test_a_lost_log_does_not_fail_the_request(tmp_path: Path) -> None:
    """-vv with nowhere to write the log: the body still arrives, the status is 0."""
    target = tmp_path / "body"
    with (
        closed_pipe() as broken,
        serve_in_thread(by_path) as server,
        target.open("wb") as out,
    ):
        assert run_into(out.fileno(), broken, "-vv", server.url_for("/big")) == 0
    assert target.read_bytes() == BIG


def test_the_shell_pipe_of_the_issue() -> None:
    """``anysoup --fail URL 2>&1 | true`` exits 7, as curl does."""
    result = shell(f"ANYSOUP --fail {refused_url()} 2>&1 | true; echo rc=${{PIPESTATUS[0]}}")
    assert result.stdout.strip() == b"rc=7", result


def test_started_with_stderr_closed() -> None:
    """``2>&-``: the status holds, and the failure's line never lands in stdout."""
    result = shell(f"exec ANYSOUP --fail {refused_url()} 2>&-")
    assert (result.returncode, result.stdout) == (7, b""), result


def test_started_with_stdout_closed() -> None:
    """``>&-`` and a failure before any body: the status and the line on stderr hold."""
    result = shell(f"exec ANYSOUP --fail {refused_url()} >&-")
    assert result.returncode == 7, result
    assert result.stderr.decode().count("\n") == 1 and b"refused" in result.stderr, result


def test_a_body_with_stdout_closed_is_a_write_error() -> None:
    """``anysoup URL >&-``: nowhere to write the body is curl's 23, said in one line."""
    with serve_in_thread(by_path) as server:
        result = shell(f"exec ANYSOUP {server.url_for('/big')} >&-")
    assert result.returncode == 23, result
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("anysoup: ") and "stdout" in lines[0], lines


# -- --max-filesize --------------------------------------------------------------------


def test_max_filesize_refuses_a_declared_length_before_writing(tmp_path: Path) -> None:
    target = tmp_path / "big.bin"
    with serve_in_thread(by_path) as server:
        printed = run("--max-filesize", "1000", server.url_for("/big"))
        saved = run("--max-filesize", "1000", "-o", str(target), server.url_for("/big"))
        exact = run("--max-filesize", "256k", server.url_for("/big"))  # BIG is 256 KiB
    assert (printed.returncode, printed.stdout) == (63, b"")
    lines = printed.stderr.decode().splitlines()
    assert len(lines) == 1 and "--max-filesize (1000 bytes)" in lines[0], lines
    assert f"127.0.0.1:{server.port}" in lines[0] and "Content-Length" in lines[0], lines
    assert saved.returncode == 63 and not target.exists()
    assert (exact.returncode, exact.stdout) == (0, BIG), exact.stderr


def test_max_filesize_stops_a_body_of_unknown_length_within_the_limit() -> None:
    with serve_in_thread(by_path) as server:
        result = run("--max-filesize", "100k", server.url_for("/big-chunked"))
    assert result.returncode == 63, result.stderr
    assert len(result.stdout) <= 100 * 1024 and BIG.startswith(result.stdout)
    assert result.stderr.decode().count("\n") == 1 and b"--max-filesize" in result.stderr


# -- curl's flags (issue 19) -----------------------------------------------------------
#
# These run the command in the test's own process (``main()``), on asyncio and on
# trio (``ANYSOUP_BACKEND``), against loopback servers in a thread; where curl is
# installed, its output for the same command line is the reference.

CURL = shutil.which("curl")


@dataclass
class Ran:
    """One run of the command in this process: its status and what it wrote."""

    status: int
    out: bytes
    err: str


Cli = Callable[..., Ran]


@pytest.fixture(params=["asyncio", "trio"])
def cli(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> Cli:
    """``cli(*args)`` runs the command on the backend of the test's parameter."""
    monkeypatch.setenv("ANYSOUP_BACKEND", request.param)
    monkeypatch.setenv("NO_COLOR", "1")
    capsysbinary.readouterr()

    def call(*args: str) -> Ran:
        status = main(list(args))
        captured = capsysbinary.readouterr()
        return Ran(status, captured.out, captured.err.decode())

    return call


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    """curl's run of the same command line (``-s``: no progress meter)."""
    assert CURL is not None
    return subprocess.run(
        [CURL, "-s", *args], capture_output=True, timeout=RUN_TIMEOUT, check=False
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["-X", "PROPFIND", "h"], {"method": "PROPFIND"}),
        (["-X", "post", "h"], {"method": "post"}),  # as typed, as curl sends it
        (["-I", "h"], {"method": "HEAD", "include": True}),
        (["-I", "-X", "GET", "h"], {"method": "GET", "include": True}),
        (["-i", "-s", "-S", "-k", "-L", "h"], {"include": True, "silent": True}),
        (["-k", "h"], {"insecure": True}),
        (
            ["-H", "X-A: 1", "-H", "X-B;", "-H", "Accept:", "h", "X-C:3"],
            {"headers": (("X-A", "1"), ("X-B", ""), ("Accept", None), ("X-C", "3"))},
        ),
        (
            ["-A", "", "-e", "http://r/", "h"],
            {"headers": (("User-Agent", None), ("Referer", "http://r/"))},
        ),
        (["-b", "a=b; c=d", "-b", "jar.txt", "h"], {"cookies": ("a=b; c=d", "jar.txt")}),
        (["-c", "jar.txt", "h"], {"cookie_jar": "jar.txt"}),
        (["--cookie-jar", "jar.txt", "h"], {"cookie_jar": "jar.txt"}),
        (["--compressed", "h"], {"compressed": True}),
        (["-m", "2.5", "--connect-timeout", "1", "h"], {"max_time": 2.5, "connect_timeout": 1}),
        (["--retry", "3", "--retry-delay", "0", "h"], {"retry": 3, "retry_delay": None}),
        (["--retry", "1", "--retry-delay", "2", "--retry-connrefused", "h"], {"retry_delay": 2}),
        (["--ws", "--ws-wait", "inf", "h"], {"ws_wait": float("inf")}),
        (["-f", "-u", "ann:pw", "h"], {"fail": True, "user": ("ann", "pw")}),
    ],
)
def test_curl_flags_are_parsed(argv: list[str], expected: dict[str, object]) -> None:
    options = parse_args(argv)
    assert {name: getattr(options, name) for name in expected} == expected


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["-I", "-d", "x", "http://h/"], "not allowed with argument -I/--head"),
        (["-I", "--json", "{}", "http://h/"], "not allowed with argument -I/--head"),
        (["-L", "--no-redirect", "http://h/"], "not allowed with argument -L/--location"),
        (["-X", "PUT", "POST", "http://h/"], "the method is given twice"),
        (["-X", "GET BAD", "http://h/"], "is not a method"),
        (["-H", "no colon", "http://h/"], "is not a header"),
        (["--retry", "-1", "http://h/"], "is not a number of times"),
        (["--retry", "x", "http://h/"], "is not a number of times"),
        (["--max-time", "soon", "http://h/"], "is not a number of seconds"),
        (["--ws", "-i", "ws://h/"], "--ws takes no -i, -I or --retry"),
        (["--ws", "--retry", "2", "ws://h/"], "--ws takes no -i, -I or --retry"),
    ],
)
def test_flags_that_exclude_each_other_exit_2(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "usage: anysoup" in err and words in err, err


def test_version_names_the_libraries(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    out, err = capsys.readouterr()
    first, backends, optional = out.splitlines()
    assert first.startswith(f"anysoup {anysoup.__version__} (CPython 3.") or "PyPy" in first
    for library in ("anyio/", "h11/", "h2/", "wsproto/", "OpenSSL/"):
        assert f" {library}" in first, first
    assert backends.startswith("Backends: asyncio trio/"), backends  # trio is a test dependency
    assert optional.startswith("Optional: ") and "brotli/" in optional, optional
    assert err == ""


def test_an_unknown_backend_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ANYSOUP_BACKEND", "curio")
    assert main(["http://127.0.0.1:9/"]) == 2
    assert "ANYSOUP_BACKEND='curio'" in capsys.readouterr().err


def test_include_and_head_write_the_heads_as_curl_does(cli: Cli, tmp_path: Path) -> None:
    """-i: each response's head (a redirect's too), CRLF, then the body; -I: HEAD, heads only."""
    target = tmp_path / "out"
    with serve_in_thread(by_path) as server:
        url = server.url_for("/moved")
        include = cli("-i", url)
        head = cli("-I", url)
        to_file = cli("-i", "-o", str(target), server.url_for("/hello"))
        theirs = (curl("-i", "-L", url), curl("-I", "-L", url)) if CURL else None
    assert (include.status, head.status, to_file.status) == (0, 0, 0), include.err
    moved = b"HTTP/1.1 302 \r\nLocation: /hello\r\ncontent-length: 10\r\n\r\n"
    hello = b"HTTP/1.1 200 \r\nContent-Type: text/plain\r\ncontent-length: 14\r\n\r\n"
    assert include.out == moved + hello + b"body of /hello"
    assert head.out == moved + hello
    assert [r.method for r in server.requests[2:4]] == ["HEAD", "HEAD"]
    assert target.read_bytes() == hello + b"body of /hello"
    if theirs is not None:
        assert (include.out, head.out) == (theirs[0].stdout, theirs[1].stdout)


def test_method_headers_user_agent_and_referer(cli: Cli) -> None:
    with serve_in_thread(by_path) as server:
        url = server.url_for("/hello")
        sent = cli("-X", "PROPFIND", "-H", "X-A: 1", "-H", "X-Empty;", "-e", "http://r/", url)
        agent = cli("-A", "tester/1", "-H", "Accept: text/plain", url, "X-B:2")
        replaced = cli("-A", "tester/1", "-H", "User-Agent: other/2", url)
        none = cli("-A", "", url)
        removed = cli("-H", "User-Agent:", url)
    assert all(r.status == 0 for r in (sent, agent, replaced, none, removed))
    first, second, third, fourth, fifth = server.requests
    assert first.method == "PROPFIND"
    assert (first.header("x-a"), first.header("x-empty"), first.header("referer")) == (
        "1",
        "",
        "http://r/",
    )
    assert first.header("user-agent") == f"anysoup/{anysoup.__version__}"
    assert (second.header("user-agent"), second.header("x-b")) == ("tester/1", "2")
    assert second.header("accept") == "text/plain"
    assert third.header("user-agent") == "other/2"  # -H after -A wins, as with curl
    assert fourth.header("user-agent") is None and fifth.header("user-agent") is None


def test_verbose_shows_both_heads_and_no_addresses(cli: Cli) -> None:
    """-v: curl's ``>`` and ``<`` heads; -vv: the debug lines, without memory addresses."""
    with serve_in_thread(by_path) as server:
        url = server.url_for("/moved")
        heads = cli("-v", url)
        everything = cli("-vv", url)
        theirs = curl("-v", "-L", url) if CURL else None
    lines = heads.err.splitlines()
    host = f"> Host: 127.0.0.1:{server.port}"
    assert lines[:3] == ["* using HTTP/1.1", "> GET /moved HTTP/1.1", host], lines
    assert "< HTTP/1.1 302" in lines and "> GET /hello HTTP/1.1" in lines, lines
    assert "< HTTP/1.1 200" in lines and "< Content-Type: text/plain" in lines, lines
    assert "Soup-Debug" not in heads.err
    assert "> Soup-Debug: Session 1, Message 1, new connection to" in everything.err
    assert "0x" not in everything.err, everything.err
    if theirs is not None:  # the same request and response lines as curl's
        theirs_lines = theirs.stderr.decode().splitlines()
        for line in ("> GET /moved HTTP/1.1", host, "> GET /hello HTTP/1.1"):
            assert line in theirs_lines, theirs_lines
        assert "< HTTP/1.1 302 " in theirs_lines and "< Location: /hello" in theirs_lines
        assert "< Location: /hello" in lines


def test_silent_hides_the_failure_unless_show_error(cli: Cli) -> None:
    url = refused_url()
    silent = cli("-s", url)
    shown = cli("-s", "-S", url)
    assert (silent.status, silent.out, silent.err) == (7, b"", "")
    assert shown.status == 7 and shown.err.startswith("anysoup: ") and "refused" in shown.err
    if CURL:
        theirs = curl(url)
        assert (theirs.returncode, theirs.stderr) == (7, b"")


def test_location_is_accepted_and_following_is_the_default(cli: Cli) -> None:
    with serve_in_thread(by_path) as server:
        url = server.url_for("/moved")
        followed = cli("-L", url)
        default = cli(url)
        kept = cli("--no-redirect", url)
    assert followed.out == default.out == b"body of /hello"
    assert kept.out == b"see /hello"


def test_insecure_accepts_a_certificate_nobody_vouches_for(
    cli: Cli, tls_server_context: ssl.SSLContext
) -> None:
    with serve_in_thread(by_path, ssl_context=tls_server_context) as server:
        url = server.url_for("/secure")
        refused = cli(url)
        accepted = cli("-k", url)
        theirs = curl("-k", url) if CURL else None
    assert refused.status == 60, refused.err
    assert (accepted.status, accepted.out) == (0, b"body of /secure"), accepted.err
    if theirs is not None:
        assert theirs.stdout == accepted.out


async def cookies(conn: ServerConnection, req: ReceivedRequest) -> None:
    """Sets a persistent and a session cookie; echoes the Cookie header it got."""
    if req.target == "/set":
        set_cookies = [
            ("Set-Cookie", "flavour=oat; Path=/; Max-Age=600"),
            ("Set-Cookie", "visit=1; Path=/"),
            ("Set-Cookie", "secret=x; Path=/; HttpOnly"),
        ]
        await conn.respond(200, set_cookies, b"set")
    elif req.target.startswith("/to/"):  # /to/path, or /to/http://elsewhere/path
        location = req.target.removeprefix("/to/")
        if not location.startswith("http"):
            location = "/" + location
        await conn.respond(302, [("Location", location)], b"")
    else:
        await conn.respond(200, [], (req.header("cookie") or "").encode())


def cookie_lines(path: Path) -> list[str]:
    """The cookies of a cookies.txt, sorted, without the comments (whose wording differs).

    An expiry in the next ten minutes (``Max-Age=600``, counted from a second
    that differs between two programs) reads ``soon``.
    """
    lines = []
    for line in path.read_text().splitlines():
        if line and not line.startswith("# "):
            fields = line.split("\t")
            if 0 < int(fields[4]) - time.time() <= 610:
                fields[4] = "soon"
            lines.append("\t".join(fields))
    return sorted(lines)


def test_cookie_jar_writes_session_cookies_as_curl_does(cli: Cli, tmp_path: Path) -> None:
    """-c writes every cookie (a session one with expiry 0); -b FILE reads them back."""
    ours, theirs = tmp_path / "ours.txt", tmp_path / "theirs.txt"
    with serve_in_thread(cookies) as server:
        stored = cli("-c", str(ours), server.url_for("/set"))
        sent = cli("-b", str(ours), server.url_for("/echo"))
        printed = cli("-c", "-", server.url_for("/set"))  # after the body, on stdout
        if CURL:
            curl("-c", str(theirs), server.url_for("/set"))
    assert (stored.status, sent.status) == (0, 0), stored.err
    lines = cookie_lines(ours)
    assert any(line.endswith("\t0\tvisit\t1") for line in lines), lines
    assert any(line.startswith("#HttpOnly_127.0.0.1\tFALSE\t/\tFALSE\t") for line in lines)
    assert sorted(sent.out.decode().split("; ")) == ["flavour=oat", "secret=x", "visit=1"]
    assert os.stat(ours).st_mode & 0o077 == 0  # cookies are credentials
    assert printed.out.startswith(b"set# Netscape HTTP Cookie File\n"), printed.out
    (tmp_path / "printed.txt").write_bytes(printed.out.removeprefix(b"set"))
    assert cookie_lines(tmp_path / "printed.txt") == lines
    if CURL:
        assert lines == cookie_lines(theirs)


def test_cookie_strings_go_to_the_origin_only(cli: Cli, tmp_path: Path) -> None:
    """-b 'a=b' is sent on every hop to the URL's origin, beside the jar's, never elsewhere."""
    jar = tmp_path / "jar.txt"
    with serve_in_thread(cookies) as server, serve_in_thread(cookies) as other:
        alone = cli("-b", "a=b; c=d", server.url_for("/to/echo"))
        cli("-c", str(jar), server.url_for("/set"))
        both = cli("-b", "a=b", "-c", str(jar), "-H", "Cookie: h=1", server.url_for("/echo"))
        away = cli("-b", "a=b", server.url_for("/to/") + other.url_for("/echo"))
    assert alone.out == b"a=b; c=d"  # after a redirect to the same origin
    assert sorted(both.out.decode().split("; ")) == [
        "a=b",
        "flavour=oat",
        "h=1",
        "secret=x",
        "visit=1",
    ]
    assert (away.status, away.out) == (0, b"")
    # The command line's cookies are sent, not stored.
    assert not any(line.endswith("\ta\tb") for line in cookie_lines(jar)), cookie_lines(jar)


async def coded(conn: ServerConnection, req: ReceivedRequest) -> None:
    """gzip whatever is asked for, and say what was asked for."""
    body = gzip.compress(f"asked for {req.header('accept-encoding')}".encode())
    await conn.respond(200, [("Content-Encoding", "gzip")], body)


def test_compressed_asks_for_and_decodes_codings_as_curl_does(cli: Cli) -> None:
    with serve_in_thread(coded) as server:
        url = server.url_for("/")
        raw = cli(url)
        decoded = cli("--compressed", url)
        theirs = (curl(url), curl("--compressed", url)) if CURL else None
    assert gzip.decompress(raw.out) == b"asked for None"  # no Accept-Encoding, bytes as sent
    assert decoded.out.startswith(b"asked for gzip, deflate"), decoded.out
    if theirs is not None:
        assert raw.out == theirs[0].stdout
        assert theirs[1].stdout.startswith(b"asked for ")


async def stalls(conn: ServerConnection, req: ReceivedRequest) -> None:
    await conn.send_head(200, [("Content-Length", "10")])
    await conn.send_data(b"12345")
    await anyio.sleep(RUN_TIMEOUT)


def test_max_time_and_connect_timeout_exit_28(cli: Cli) -> None:
    with serve_in_thread(stalls) as server:
        slow = cli("--max-time", "1", server.url_for("/"))
    assert (slow.status, slow.out) == (28, b"12345"), slow.err  # what came in time is written
    assert "timed out after 1 s (--max-time)" in slow.err, slow.err
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(hanging_listener()) as (host, port),
    ):
        hanging = cli("--connect-timeout", "0.3", f"http://{host}:{port}/")
    assert hanging.status == 28, hanging.err
    assert hanging.err == f"anysoup: connect to {host}:{port}: timed out after 0.3 s " + (
        "(--connect-timeout)\n"
    )


def test_connect_timeout_lets_a_slow_answer_be(cli: Cli) -> None:
    """The connection opens at once: --connect-timeout no longer counts (--max-time would)."""

    async def slow(conn: ServerConnection, req: ReceivedRequest) -> None:
        await anyio.sleep(0.8)
        await conn.respond(200, [], b"late")

    with serve_in_thread(slow) as server:
        result = cli("--connect-timeout", "0.5", server.url_for("/"))
    assert (result.status, result.out) == (0, b"late"), result.err


def flaky(failures: int, status: int = 503) -> Handler:
    """Answers ``status`` to the first ``failures`` requests, then 200."""
    count = 0

    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        nonlocal count
        count += 1
        if count <= failures:
            await conn.respond(status, [("Retry-After", "0")], b"busy")
        else:
            await conn.respond(200, [], b"done")

    return handler


def test_retry_tries_again_after_a_transient_answer(cli: Cli) -> None:
    with serve_in_thread(flaky(2)) as server:
        retried = cli("--retry", "2", server.url_for("/"))
    assert (retried.status, retried.out) == (0, b"done"), retried.err
    assert len(server.requests) == 3
    lines = retried.err.splitlines()
    assert len(lines) == 2 and "answered 503: trying again in 0 s (2 tries left)" in lines[0]
    with serve_in_thread(flaky(2, status=429)) as server:
        short = cli("-s", "--retry", "1", server.url_for("/"))
    # Out of tries: the last answer is the command's, as with curl.
    assert (short.status, short.out, short.err) == (0, b"busy", "")
    if CURL:
        with serve_in_thread(flaky(2, status=429)) as server:
            theirs = curl("--retry", "1", server.url_for("/"))
        # curl writes every try's answer to stdout; anysoup only the last one's.
        assert (theirs.returncode, theirs.stdout) == (0, b"busy" * 2)


def test_retry_tries_again_after_a_failed_connection(cli: Cli) -> None:
    url = refused_url()
    result = cli("--retry", "2", "--retry-delay", "0.01", url)
    assert result.status == 7
    lines = result.err.splitlines()
    assert len(lines) == 3 and "(1 try left)" in lines[1] and "refused" in lines[2], lines


@pytest.mark.parametrize(
    ("argv", "retry_after", "waits"),
    [
        (["--retry", "4"], None, [1, 2, 4, 8]),
        (["--retry", "2", "--retry-delay", "0.5"], None, [0.5, 0.5]),
        (["--retry", "2"], "3", [3, 3]),
        (["--retry", "1"], "Thu, 01 Jan 1970 00:00:00 GMT", [0]),
        (["--retry", "1"], "later", [1]),
    ],
)
async def test_retry_waits_as_curl_does(
    argv: list[str],
    retry_after: str | None,
    waits: list[float],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """1 s doubling (curl's backoff), a fixed --retry-delay, or the server's Retry-After."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(tries.anyio, "sleep", sleep)
    msg = Message("GET", "http://h/")
    msg.status = 503
    if retry_after is not None:
        msg.response_headers.append("Retry-After", retry_after)

    async def attempt(last: bool) -> int:
        if last:
            return 0
        raise tries.RetryStatus(msg)

    options = parse_args([*argv, "http://h/"])
    assert await tries.with_retries(options, attempt, lambda: False, lambda text: None) == 0
    assert slept == waits


async def slow_echo(peer: WsPeer) -> None:
    """Reads two messages, thinks, answers both, then closes."""
    first = await peer.next_message()
    second = await peer.next_message()
    await anyio.sleep(0.3)
    if first is None or second is None or peer.ws.state is not ConnectionState.OPEN:
        await peer.wait_close()  # the client closed first: no more data may go
        return
    await peer.send_text(str(second))
    await peer.send_text(str(first))
    await peer.send(CloseConnection(code=1000))
    await peer.wait_close()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_websocket_waits_for_the_answers_after_the_end_of_input(backend: str) -> None:
    """Lines piped at once: the answers come after stdin ended, and are not lost.

    The server closes once it has answered, so the command ends then, long
    before ``--ws-wait``. With ``--ws-wait 0`` the command closes at the end
    of stdin, as it used to, and the server may send nothing more.
    """
    env = {**ENV, "ANYSOUP_BACKEND": backend}
    command = [sys.executable, "-m", "anysoup", "--ws"]
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(serve_ws(slow_echo)) as server,
    ):
        waited, closed = (
            subprocess.run(
                [*command, *flags, server.url],
                input=b"one\ntwo\n",
                capture_output=True,
                env=env,
                timeout=RUN_TIMEOUT,
                check=False,
            )
            for flags in (["--ws-wait", "5"], ["--ws-wait", "0"])
        )
    assert (waited.returncode, waited.stdout) == (0, b"two\none\n"), waited.stderr
    assert (closed.returncode, closed.stdout) == (0, b""), closed.stderr
