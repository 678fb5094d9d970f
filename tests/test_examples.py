"""Every script in ``examples/`` run as a user would, in a subprocess, against loopback servers.

Theory of operation: each test starts a local server (a stdlib HTTP server in
a thread serving known bytes, or the ``websockets`` package's server), runs
one example with ``sys.executable`` and proxies cleared from the environment,
and checks its exit status, its output and what it wrote or sent. The tests
are synchronous (the examples bring their own event loops) and POSIX-only
(pipes are polled with select, the progress bars drawn on a pty). A new file in
``examples/`` fails :func:`test_every_example_is_run_by_a_test` until a test
here runs it (mark the test with :func:`runs`).
"""

from __future__ import annotations

import ast
import os
import pty
import re
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
from ws_servers import websockets_server

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

#: Seconds one example may run; each takes well under one on loopback.
RUN_TIMEOUT = 10

#: What the HTTP server serves: path → body. 404 for anything else.
FILES = {
    "/hello.txt": b"hello from the test server\n",
    "/data/big.bin": bytes(range(256)) * 1024,  # 256 KiB, several reads
    "/other/big.bin": b"same name, other bytes " * 100,
    "/": b"<!doctype html><title>index</title>\n",
}

# -- which examples have a test -------------------------------------------------------

TESTED: set[str] = set()
F = TypeVar("F", bound=Callable[..., Any])


def runs(*names: str) -> Callable[[F], F]:
    """Mark a test as running these examples (counted by the completeness check)."""

    def mark(func: F) -> F:
        TESTED.update(names)
        return func

    return mark


def test_every_example_is_run_by_a_test() -> None:
    present = {path.name for path in EXAMPLES.glob("*.py")}
    assert present, f"no examples found in {EXAMPLES}"
    assert present - TESTED == set(), "examples that no test runs: write a test with @runs(...)"
    assert TESTED - present == set(), "tests for examples that are gone"
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    assert [name for name in sorted(present) if name not in readme] == []


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda path: path.name)
def test_example_is_short_documented_and_public(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    assert len(source.splitlines()) <= 80, "examples stay short"
    tree = ast.parse(source)
    assert ast.get_docstring(tree), "the docstring says what it does and how to run it"
    imported = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m and m.startswith("anysoup.")], "public API only"
    assert 'if __name__ == "__main__":' in source


# -- running an example ---------------------------------------------------------------


def example_env() -> dict[str, str]:
    """This environment without proxies, importing anysoup from this checkout."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["no_proxy"] = env["NO_PROXY"] = "*"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def command(name: str, *args: str) -> list[str]:
    # ResourceWarning (an unclosed socket or stream) is shown, so checks of stderr see it.
    return [sys.executable, "-W", "default::ResourceWarning", str(EXAMPLES / name), *args]


def run_example(name: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(name, *args),
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=example_env(),
        timeout=RUN_TIMEOUT,
        check=False,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The failure's single stderr line (asserting there is just one, and no traceback)."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def closed_port() -> int:
    """A loopback port with nothing listening (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the HTTP server ------------------------------------------------------------------


@dataclass
class HTTPServer:
    url: str
    paths: list[str] = field(default_factory=list)  #: request targets, in order
    connections: int = 0  #: TCP connections accepted


@contextmanager
def http_server() -> Iterator[HTTPServer]:
    """Serve :data:`FILES` over HTTP/1.1 (keep-alive) from a thread on 127.0.0.1."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # persistent connections, as a real server

        def setup(self) -> None:
            super().setup()
            with lock:
                state.connections += 1

        def do_GET(self) -> None:
            with lock:
                state.paths.append(self.path)
            body = FILES.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state = HTTPServer(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, name="examples HTTP server")
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def server() -> Iterator[HTTPServer]:
    with http_server() as state:
        yield state


# -- fetch ----------------------------------------------------------------------------


@runs("trio_fetch.py", "asyncio_fetch.py")
@pytest.mark.parametrize("name", ["trio_fetch.py", "asyncio_fetch.py"])
def test_fetch_prints_status_headers_and_body_size(name: str, server: HTTPServer) -> None:
    result = run_example(name, server.url + "/data/big.bin")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == "HTTP/1.1 200 OK"
    assert "Content-Type: text/plain" in lines
    assert f"Content-Length: {256 * 1024}" in lines
    assert lines[-1] == f"body: {256 * 1024} bytes"
    assert server.paths == ["/data/big.bin"]


@runs("trio_fetch.py")
def test_fetch_shows_an_http_error_status_without_failing(server: HTTPServer) -> None:
    result = run_example("trio_fetch.py", server.url + "/missing")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "HTTP/1.1 404 Not Found"
    assert result.stdout.splitlines()[-1] == "body: 0 bytes"


# -- concurrent downloads -------------------------------------------------------------

#: Paths to download, in order, and the names they are saved as (the index in
#: front keeps the two big.bin apart; "/" has no name of its own).
DOWNLOADS = {
    "/data/big.bin": "0-big.bin",
    "/other/big.bin": "1-big.bin",
    "/hello.txt": "2-hello.txt",
    "/": "3-index.html",
}


@runs("concurrent_downloads.py")
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_concurrent_downloads_writes_every_file(
    backend: str, server: HTTPServer, tmp_path: Path
) -> None:
    urls = [server.url + path for path in DOWNLOADS]
    out = tmp_path / "out"
    result = run_example(
        "concurrent_downloads.py", str(out), *urls, "--max-conns", "2", "--backend", backend
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    for path, name in DOWNLOADS.items():
        assert (out / name).read_bytes() == FILES[path], name
    # Without a terminal: one line per file, in the order they completed.
    expected = [f"{out / name}: {len(FILES[path])} bytes" for path, name in DOWNLOADS.items()]
    assert sorted(result.stdout.splitlines()) == sorted(expected)
    assert sorted(server.paths) == sorted(DOWNLOADS)
    assert server.connections <= 2  # max_conns_per_host's default, and --max-conns 2


@runs("concurrent_downloads.py")
def test_concurrent_downloads_reports_each_failure_and_goes_on(
    server: HTTPServer, tmp_path: Path
) -> None:
    refused = f"http://127.0.0.1:{closed_port()}/nothing.bin"
    urls = [server.url + "/hello.txt", server.url + "/missing", refused]
    result = run_example("concurrent_downloads.py", str(tmp_path), *urls)
    assert result.returncode == 1
    assert sorted(result.stderr.splitlines()) == sorted(
        [f"{server.url}/missing: 404 Not Found", f"{refused}: {connect_refused(refused)}"]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0-hello.txt"]
    assert (tmp_path / "0-hello.txt").read_bytes() == FILES["/hello.txt"]


def connect_refused(url: str) -> str:
    host_port = url.split("/")[2]
    return f"connect to {host_port}: connection refused"


@runs("concurrent_downloads.py")
def test_concurrent_downloads_draws_progress_bars_on_a_terminal(
    server: HTTPServer, tmp_path: Path
) -> None:
    pytest.importorskip("rich", reason="rich is optional (anysoup[cli])")
    first_two = dict(list(DOWNLOADS.items())[:2])
    urls = [server.url + path for path in first_two]
    controller, terminal = pty.openpty()
    try:
        env = example_env() | {"TERM": "xterm", "COLUMNS": "100"}
        with subprocess.Popen(
            command("concurrent_downloads.py", str(tmp_path), *urls),
            stdout=terminal,
            stderr=subprocess.PIPE,
            env=env,
        ) as proc:
            os.close(terminal)
            terminal = -1
            screen = read_terminal(controller, proc)
            assert proc.wait(RUN_TIMEOUT) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        os.close(controller)
        if terminal != -1:
            os.close(terminal)
    for path, name in first_two.items():
        assert (tmp_path / name).read_bytes() == FILES[path]
    assert "0-big.bin" in screen and "100%" in screen
    assert f"{tmp_path / '0-big.bin'}: " not in screen  # the bars replace the plain lines


def read_terminal(fd: int, proc: subprocess.Popen[bytes]) -> str:
    """Everything written to the pseudo-terminal until the example closes it."""
    chunks = []
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None and not select.select([fd], [], [], 0)[0]:
            break
    return b"".join(chunks).decode("utf-8", "replace")


# -- preconnect -----------------------------------------------------------------------


@runs("preconnect.py")
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_preconnect_then_the_request_reuses_the_connection(
    backend: str, server: HTTPServer
) -> None:
    result = run_example("preconnect.py", server.url + "/hello.txt", "--backend", backend)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        "after preconnect: 1 connection(s), 1 idle, 0 in use",
        "during the request: 1 connection(s), 0 idle, 1 in use",
        f"GET {server.url}/hello.txt: 200 OK, {len(FILES['/hello.txt'])} bytes",
        "after the request: 1 connection(s), 1 idle, 0 in use",
        "the request reused the preconnected connection",
    ]
    assert server.connections == 1  # the server agrees: one connection, for both
    assert server.paths == ["/hello.txt"]


# -- WebSocket chat -------------------------------------------------------------------


class Chat:
    """The chat example in a subprocess, typed to line by line as a person would."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            command("websocket_chat.py", url),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=example_env(),
        )
        self._pending = b""

    def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def next_line(self) -> str:
        """The next line the chat printed on stdout (waits for it, within RUN_TIMEOUT)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + RUN_TIMEOUT
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            assert left > 0 and select.select([fd], [], [], left)[0], "no output in time"
            data = os.read(fd, 4096)
            assert data, f"stdout ended; stderr: {self.stderr()}"
            self._pending += data
        line, self._pending = self._pending.split(b"\n", 1)
        return line.decode()

    def end_input(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def wait(self) -> tuple[int, str, str]:
        """Wait for the chat to end by itself; its status, the rest of stdout, and stderr."""
        assert self.proc.stdout is not None
        returncode = self.proc.wait(RUN_TIMEOUT)
        rest = (self._pending + self.proc.stdout.read()).decode()
        return returncode, rest, self.stderr()

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode() if self.proc.poll() is not None else ""

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@contextmanager
def chat(url: str) -> Iterator[Chat]:
    session = Chat(url)
    try:
        yield session
    finally:
        session.close()


@runs("websocket_chat.py")
def test_websocket_chat_echoes_lines_then_closes_at_end_of_input() -> None:
    with websockets_server() as url, chat(url + "/echo") as session:
        for line in ("hello", "world"):
            session.type(line)
            assert session.next_line() == f"< {line}"
        session.end_input()  # Ctrl-D: the chat closes with 1000 and ends
        returncode, rest, err = session.wait()
    assert returncode == 0, err
    assert rest == ""
    assert err.splitlines() == [f"connected to {url}/echo", "closed (code 1000)"]


@runs("websocket_chat.py")
def test_websocket_chat_ends_when_the_server_closes() -> None:
    """The server echoes two messages and closes; stdin stays open, the chat ends anyway."""

    def echo_twice_then_close(connection: Any) -> None:
        for _ in range(2):
            connection.send(connection.recv())
        connection.close(1000, "that will do")

    with websocket_server(echo_twice_then_close) as url, chat(url) as session:
        session.type("hello")
        session.type("world")  # and stdin is left open: no end of input
        returncode, out, err = session.wait()
    assert returncode == 0, err
    assert out.splitlines() == ["< hello", "< world"]
    assert err.splitlines() == [f"connected to {url}", "closed (code 1000)"]


@runs("websocket_chat.py")
def test_websocket_chat_fails_on_an_abnormal_close() -> None:
    with websockets_server() as url, chat(url + "/close?code=4001") as session:
        session.type("hi")  # the server answers with close code 4001; stdin stays open
        returncode, out, err = session.wait()
    assert returncode == 1 and out == "", err
    assert err.splitlines()[0] == f"connected to {url}/close?code=4001"
    assert len(err.splitlines()) == 2 and "Traceback" not in err, err
    line = err.splitlines()[1]
    assert line.startswith("websocket_chat: ") and "127.0.0.1" in line and "(4001)" in line


@contextmanager
def websocket_server(handler: Callable[[Any], None]) -> Iterator[str]:
    """Run ``handler`` for each connection on the ``websockets`` sync server; yield its URL."""
    from websockets.sync.server import serve

    server = serve(handler, "127.0.0.1", 0, ping_interval=None)
    thread = threading.Thread(target=server.serve_forever, name="websockets server")
    thread.start()
    try:
        yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}/"
    finally:
        server.shutdown()
        thread.join(5)


# -- the error path, for every example ------------------------------------------------


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("trio_fetch.py", ["{url}"]),
        ("asyncio_fetch.py", ["{url}"]),
        ("concurrent_downloads.py", ["{tmp}", "{url}"]),
        ("preconnect.py", ["{url}"]),
        ("websocket_chat.py", ["{ws_url}"]),
    ],
    ids=lambda value: value if isinstance(value, str) else " ".join(value),
)
def test_refused_connection_is_one_line_and_exit_status_1(
    name: str, args: list[str], tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/file.txt"
    ws_url = "ws" + url.removeprefix("http")
    result = run_example(name, *(a.format(url=url, ws_url=ws_url, tmp=tmp_path) for a in args))
    line = one_line_error(result)
    assert connect_refused(url) in line, line  # the host and the cause
    assert re.match(r"^[\w.:/-]+: ", line), line  # names the program or the URL first
