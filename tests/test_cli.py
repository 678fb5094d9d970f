"""The ``anysoup`` command: its parsing and exit statuses, then the command in a subprocess.

The subprocess tests talk to servers on loopback that run in a thread of
their own (an anyio blocking portal, httpbin's WSGI thread, the websockets
package's thread), so the tests are plain functions and ``subprocess.run``
bounds each run with a timeout.
"""

from __future__ import annotations

import io
import json
import os
import select
import shlex
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from subprocess import PIPE
from typing import IO, Any

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
    serve_asgi,
    serve_http,
    serve_raw,
)
from ws_servers import websockets_server

from anysoup import (
    BodyTooLarge,
    ConnectError,
    EncodingError,
    IncompleteBody,
    LoggerLogLevel,
    NetworkError,
    ParsingError,
    TimeoutError,
    TlsCertificateFlags,
    TlsError,
    TooManyRedirects,
    WebsocketClosed,
    WebsocketError,
)
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
