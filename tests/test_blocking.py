"""The blocking facade (anysoup.blocking): every call, threads, cancellation, Ctrl-C.

These tests are plain functions: the client's loop runs in the session's own
thread, on asyncio and on trio (``loop_backend``), and the servers run in a
thread of their own (an asyncio portal for ``servers.serve_http``, the
``websockets`` package's threaded server for WebSockets).
"""

from __future__ import annotations

import gc
import io
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import anyio.from_thread
import anyio.lowlevel
import pytest
from servers import ReceivedRequest, Server, ServerConnection, hanging_listener, serve_http
from ws_servers import websockets_server

import anysoup
import anysoup.blocking
from anysoup import Cancellable, Message, PoolStatistics, RequestCancelled, SpliceFlags

BODY = b"".join(b"line %d of the body\n" % i for i in range(2000))
IDLE = PoolStatistics(0, 0, 0, 0, 0)


@pytest.fixture(params=["asyncio", "trio"])
def loop_backend(request: pytest.FixtureRequest) -> str:
    """The event loop the blocking session runs in its thread."""
    return str(request.param)


class Routes:
    """The server's behaviour by path; ``arrived`` is set when a stalling request is in."""

    def __init__(self) -> None:
        self.arrived = threading.Event()

    async def __call__(self, conn: ServerConnection, request: ReceivedRequest) -> None:
        path = request.target.split("?")[0]
        if path == "/small":
            await conn.respond(200, [("content-type", "text/plain")], b"hello")
        elif path == "/body":
            # Odd-sized chunks, so reads and lines straddle them.
            await conn.send_head(200, [("transfer-encoding", "chunked")])
            for start in range(0, len(BODY), 7777):
                await conn.send_data(BODY[start : start + 7777])
            await conn.end()
        elif path == "/echo":
            await conn.respond(200, body=request.body)
        elif path == "/stall-head":
            self.arrived.set()
            await anyio.sleep(30)
        elif path == "/stall-body":
            await conn.send_head(200, [("content-length", "1000")])
            await conn.send_data(b"x" * 10)
            self.arrived.set()
            await anyio.sleep(30)
        else:
            await conn.respond(404)


@pytest.fixture
def routes() -> Routes:
    return Routes()


@pytest.fixture
def server(routes: Routes) -> Iterator[Server]:
    """``servers.serve_http`` with :class:`Routes`, in an asyncio loop in a thread."""
    with (
        anyio.from_thread.start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(serve_http(routes)) as running,
    ):
        yield running


@pytest.fixture
def session(loop_backend: str) -> Iterator[anysoup.blocking.Session]:
    with anysoup.blocking.Session(backend=loop_backend, timeout=10) as opened:
        yield opened


def settled(session: anysoup.blocking.Session) -> PoolStatistics:
    """The pool's counters once nothing is in use, queued or connecting (bounded)."""
    deadline = time.monotonic() + 5
    while True:
        stats = session.statistics()
        busy = stats.in_use or stats.waiting or stats.connecting or stats.streams
        if not busy or time.monotonic() > deadline:
            return stats
        time.sleep(0.01)


# -- every call --------------------------------------------------------------------------


def test_send_and_read(session: anysoup.blocking.Session, server: Server) -> None:
    msg = Message("GET", server.url_for("/small"))
    assert session.send_and_read(msg) == b"hello"
    assert msg.status == 200
    assert msg.response_headers.get_one("content-type") == "text/plain"
    assert session.send_and_read(Message("GET", server.url_for("/body"))) == BODY
    assert settled(session).in_use == 0


def test_send_and_read_max_size(session: anysoup.blocking.Session, server: Server) -> None:
    with pytest.raises(anysoup.BodyTooLarge):
        session.send_and_read(Message("GET", server.url_for("/body")), max_size=1000)
    assert session.send_and_read(Message("GET", server.url_for("/small")), max_size=5) == b"hello"


def test_send_returns_a_binary_file(session: anysoup.blocking.Session, server: Server) -> None:
    msg = Message("POST", server.url_for("/echo"), body=b"ping")
    with session.send(msg) as body:
        assert isinstance(body, io.BufferedIOBase)
        assert body.readable()
        assert msg.status == 200
        assert body.read() == b"ping"
        assert body.read() == b""
    assert body.closed
    with pytest.raises(ValueError, match="closed"):
        body.read(1)
    assert settled(session) == PoolStatistics(1, 0, 1, 0, 0)


@pytest.mark.parametrize("size", [1, 3, 1000, 7777, 65537])
def test_reading_in_odd_sizes(
    session: anysoup.blocking.Session, server: Server, size: int
) -> None:
    pieces = []
    with session.send(Message("GET", server.url_for("/body"))) as body:
        while piece := body.read(size):
            assert len(piece) <= size
            pieces.append(piece)
    assert b"".join(pieces) == BODY


def test_readinto_read1_and_lines(session: anysoup.blocking.Session, server: Server) -> None:
    with session.send(Message("GET", server.url_for("/body"))) as body:
        buffer = bytearray(13)
        assert body.readinto(buffer) == 13
        got = bytes(buffer)
        view = memoryview(bytearray(5000))
        count = body.readinto1(view)
        assert 0 < count <= 5000
        got += bytes(view[:count])
        got += body.read1(11)
        got += body.readline()
        got += body.readline(4)
        lines = list(body)
        assert all(line.endswith(b"\n") for line in lines)
        got += b"".join(lines)
        assert body.readline() == b""
    assert got == BODY


def test_closing_early_frees_the_connection(
    session: anysoup.blocking.Session, server: Server
) -> None:
    body = session.send(Message("GET", server.url_for("/body")))
    assert body.read(10) == BODY[:10]
    assert session.statistics().in_use == 1
    body.close()
    body.close()
    assert settled(session).in_use == 0
    assert session.send_and_read(Message("GET", server.url_for("/small"))) == b"hello"


def test_send_and_splice(session: anysoup.blocking.Session, server: Server) -> None:
    out = io.BytesIO()
    count = session.send_and_splice(Message("GET", server.url_for("/body")), out)
    assert count == len(BODY)
    assert out.getvalue() == BODY
    assert not out.closed
    target = io.BytesIO()
    closes = []
    target.close = lambda: closes.append(True)  # type: ignore[method-assign]
    flags = SpliceFlags.CLOSE_TARGET | SpliceFlags.CLOSE_SOURCE
    assert session.send_and_splice(Message("GET", server.url_for("/small")), target, flags) == 5
    assert closes == [True]
    assert settled(session).in_use == 0


def test_send_and_splice_to_a_file(
    session: anysoup.blocking.Session, server: Server, tmp_path: object
) -> None:
    path = f"{tmp_path}/body"
    with open(path, "wb") as out:
        session.send_and_splice(Message("GET", server.url_for("/body")), out)
    with open(path, "rb") as written:
        assert written.read() == BODY


def test_preconnect(session: anysoup.blocking.Session, server: Server) -> None:
    session.preconnect(Message("GET", server.url_for("/small")))
    assert session.statistics().idle == 1
    assert session.send_and_read(Message("GET", server.url_for("/small"))) == b"hello"
    assert server.connections == 1


def test_http_errors_and_failures(session: anysoup.blocking.Session, server: Server) -> None:
    msg = Message("GET", server.url_for("/nowhere"))
    assert session.send_and_read(msg) == b""
    assert msg.status == 404
    with socket_closed() as port:
        failing = Message("GET", f"http://127.0.0.1:{port}/")
        with pytest.raises(anysoup.ConnectError) as caught:
            session.send_and_read(failing)
    assert caught.value.message is failing


@contextmanager
def socket_closed() -> Iterator[int]:
    """A port nobody listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield port


def test_websocket_echo(session: anysoup.blocking.Session) -> None:
    with websockets_server() as url:
        ws = session.websocket_connect(Message("GET", f"{url}/echo"))
        with ws:
            assert ws.get_state() is anysoup.WebsocketState.OPEN
            ws.send_text("hello")
            assert ws.receive() == "hello"
            ws.send_binary(b"\x00\x01")
            assert ws.receive() == b"\x00\x01"
            ws.send_message(anysoup.WebsocketDataType.TEXT, b"as text")
            assert ws.receive() == "as text"
            ws.ping(b"p")
            assert "OPEN" in repr(ws).upper() and "anysoup.blocking" in repr(ws)
        assert ws.state is anysoup.WebsocketState.CLOSED
        assert ws.close_code == 1000
        assert isinstance(ws.async_connection, anysoup.WebsocketConnection)


def test_websocket_iteration_ends_on_close(session: anysoup.blocking.Session) -> None:
    with websockets_server() as url:
        with session.websocket_connect(Message("GET", f"{url}/close?code=1000")) as ws:
            ws.send_text("go")
            assert list(ws) == []
        with (
            pytest.raises(ValueError, match="boom"),
            session.websocket_connect(Message("GET", f"{url}/echo")) as ws,
        ):
            raise ValueError("boom")
        assert ws.state is anysoup.WebsocketState.CLOSED
        assert ws.close_code == 1001


def test_websocket_refused(session: anysoup.blocking.Session, server: Server) -> None:
    with pytest.raises(anysoup.WebsocketError):
        session.websocket_connect(Message("GET", server.url_for("/small")))


# -- properties, features, signals ---------------------------------------------------------


def test_properties_and_aliases(session: anysoup.blocking.Session) -> None:
    session.max_conns = 4
    assert session.max_conns == 4
    assert session.async_session.max_conns == 4
    session.set_max_conns_per_host(3)
    assert session.get_max_conns_per_host() == 3
    session.props.timeout = 7
    assert session.props.timeout == 7
    assert session.get_timeout() == 7
    session.user_agent = "tester"
    assert session.get_user_agent() == "tester"
    with pytest.raises(ValueError):
        session.max_conns = 0
    with pytest.raises(AttributeError, match="no_such"):
        _ = session.no_such
    with pytest.raises(AttributeError):
        session.props.no_such = 1


def test_every_public_name_of_the_async_session_is_there() -> None:
    with anysoup.blocking.Session() as session:
        names = {n for n in dir(anysoup.Session) if not n.startswith("_")}
        assert names <= set(dir(session))
        for name in names:
            getattr(session, name)  # no AttributeError
        assert session.new is anysoup.Session.new or callable(session.new)


def test_features_are_the_same_objects(session: anysoup.blocking.Session, server: Server) -> None:
    jar = anysoup.CookieJar()
    session.add_feature(jar)
    assert session.get_feature(anysoup.CookieJar) is jar
    assert session.has_feature(anysoup.CookieJar)
    assert jar in session.get_features()
    session.remove_feature_by_type(anysoup.CookieJar)
    assert not session.has_feature(anysoup.CookieJar)
    with pytest.raises(ValueError):
        session.add_feature(anysoup.ContentDecoder())


def test_signal_handlers_run_on_the_loop_thread(
    session: anysoup.blocking.Session, server: Server
) -> None:
    seen: list[tuple[str, object]] = []

    def plain(inner: anysoup.Session, msg: Message) -> None:
        seen.append((threading.current_thread().name, inner))

    async def coroutine(inner: anysoup.Session, msg: Message) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(("awaited", inner))

    session.request_queued.connect(plain)
    session.request_unqueued.connect(coroutine)
    session.send_and_read(Message("GET", server.url_for("/small")))
    assert seen[0][0].startswith("anysoup blocking session")
    assert seen[0][1] is session.async_session
    assert seen[1] == ("awaited", session.async_session)


def test_a_blocking_call_from_the_loop_thread_raises(
    session: anysoup.blocking.Session, server: Server
) -> None:
    errors: list[BaseException] = []

    def handler(inner: anysoup.Session, msg: Message) -> None:
        try:
            session.statistics()
        except RuntimeError as exc:
            errors.append(exc)

    session.request_queued.connect(handler)
    session.send_and_read(Message("GET", server.url_for("/small")))
    assert len(errors) == 1
    assert "own event loop thread" in str(errors[0])


@pytest.mark.parametrize("library", ["asyncio", "trio"])
def test_a_blocking_call_from_async_code_raises(
    session: anysoup.blocking.Session, server: Server, library: str
) -> None:
    async def main() -> None:
        with pytest.raises(RuntimeError, match=f"running {library} event loop"):
            session.send_and_read(Message("GET", server.url_for("/small")))

    anyio.run(main, backend=library)
    # From a worker thread of that loop it's fine.

    async def in_worker() -> bytes:
        return await anyio.to_thread.run_sync(
            session.send_and_read, Message("GET", server.url_for("/small"))
        )

    assert anyio.run(in_worker, backend=library) == b"hello"


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="backend"):
        anysoup.blocking.Session(backend="curio")
    with pytest.raises(TypeError):
        anysoup.blocking.Session(no_such_keyword=1)
    with pytest.raises(ValueError):
        anysoup.blocking.Session(max_conns=0)


def test_closed_session(loop_backend: str, server: Server) -> None:
    session = anysoup.blocking.Session(backend=loop_backend)
    body = session.send(Message("GET", server.url_for("/body")))
    assert "open" in repr(session)
    session.close()
    session.close()
    assert "closed" in repr(session)
    with pytest.raises(RuntimeError, match="closed"):
        session.send_and_read(Message("GET", server.url_for("/small")))
    with pytest.raises(RuntimeError, match="closed"):
        body.read()
    body.close()


# -- threads -------------------------------------------------------------------------------


def test_many_threads_share_one_session(loop_backend: str, server: Server) -> None:
    threads, each = 50, 100
    failures: list[BaseException] = []
    with anysoup.blocking.Session(backend=loop_backend, max_conns_per_host=8) as session:

        def worker() -> None:
            try:
                for _ in range(each):
                    msg = Message("GET", server.url_for("/small"))
                    assert session.send_and_read(msg) == b"hello"
            except BaseException as exc:
                failures.append(exc)

        started = time.monotonic()
        pool = [threading.Thread(target=worker) for _ in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join(60)
        elapsed = time.monotonic() - started
        assert not failures, failures[:3]
        assert len(server.requests) == threads * each
        stats = settled(session)
        assert stats.in_use == stats.waiting == stats.connecting == 0
        assert stats.connections == stats.idle <= 8
        assert server.connections <= 8
        assert elapsed < 30
        loop_thread = session._loop._thread
    assert not loop_thread.is_alive()
    assert session.async_session.statistics() == IDLE


# -- cancellation --------------------------------------------------------------------------


def cancel_when(event: threading.Event, cancellable: Cancellable) -> threading.Thread:
    """Cancel ``cancellable`` from another thread once ``event`` is set."""

    def run() -> None:
        if event.wait(10):
            cancellable.cancel()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_cancelled_before_it_starts(session: anysoup.blocking.Session, server: Server) -> None:
    cancellable = Cancellable()
    cancellable.cancel()
    with pytest.raises(RequestCancelled, match="before it started"):
        session.send_and_read(Message("GET", server.url_for("/small")), cancellable)


@pytest.mark.parametrize("call", ["send", "send_and_read", "send_and_splice"])
def test_cancel_from_another_thread_waiting_for_headers(
    session: anysoup.blocking.Session, server: Server, routes: Routes, call: str
) -> None:
    cancellable = Cancellable()
    thread = cancel_when(routes.arrived, cancellable)
    msg = Message("GET", server.url_for("/stall-head"))
    with pytest.raises(RequestCancelled):
        if call == "send":
            session.send(msg, cancellable)
        elif call == "send_and_read":
            session.send_and_read(msg, cancellable)
        else:
            session.send_and_splice(msg, io.BytesIO(), cancellable=cancellable)
    thread.join()
    assert settled(session) == IDLE


@pytest.mark.parametrize("call", ["read", "send_and_read", "send_and_splice"])
def test_cancel_from_another_thread_reading_the_body(
    session: anysoup.blocking.Session, server: Server, routes: Routes, call: str
) -> None:
    cancellable = Cancellable()
    msg = Message("GET", server.url_for("/stall-body"))
    if call == "read":
        body = session.send(msg, cancellable)
        assert body.read(10) == b"x" * 10
        thread = threading.Timer(0.2, cancellable.cancel)  # while the next read waits
        thread.start()
        with pytest.raises(RequestCancelled, match=r"reading the response body: cancelled$"):
            body.read(10)
        body.close()
    else:
        thread = cancel_when(routes.arrived, cancellable)
        with pytest.raises(RequestCancelled):
            if call == "send_and_read":
                session.send_and_read(msg, cancellable)
            else:
                session.send_and_splice(msg, io.BytesIO(), cancellable=cancellable)
    thread.join()
    assert settled(session) == IDLE
    assert session.send_and_read(Message("GET", server.url_for("/small"))) == b"hello"


def test_cancel_from_another_thread_while_connecting(loop_backend: str) -> None:
    with (
        anyio.from_thread.start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(hanging_listener()) as (host, port),
        anysoup.blocking.Session(backend=loop_backend) as session,
    ):
        cancellable = Cancellable()
        timer = threading.Timer(0.2, cancellable.cancel)
        timer.start()
        with pytest.raises(RequestCancelled):
            session.preconnect(Message("GET", f"http://{host}:{port}/"), cancellable)
        timer.join()
        assert settled(session) == IDLE


def test_cancel_while_queued_for_a_connection(
    loop_backend: str, server: Server, routes: Routes
) -> None:
    with anysoup.blocking.Session(backend=loop_backend, max_conns=1) as session:
        holder = session.send(Message("GET", server.url_for("/stall-body")))
        cancellable = Cancellable()
        timer = threading.Timer(0.2, cancellable.cancel)
        timer.start()
        with pytest.raises(RequestCancelled):
            session.send_and_read(Message("GET", server.url_for("/small")), cancellable)
        timer.join()
        assert session.statistics().waiting == 0
        holder.close()
        assert settled(session).in_use == 0


def test_abort_from_another_thread(
    session: anysoup.blocking.Session, server: Server, routes: Routes
) -> None:
    def run() -> None:
        if routes.arrived.wait(10):
            session.abort()

    thread = threading.Thread(target=run)
    thread.start()
    with pytest.raises(RequestCancelled):
        session.send_and_read(Message("GET", server.url_for("/stall-head")))
    thread.join()
    assert settled(session).in_use == 0


def test_close_cancels_calls_in_other_threads(
    loop_backend: str, server: Server, routes: Routes
) -> None:
    session = anysoup.blocking.Session(backend=loop_backend)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            session.send_and_read(Message("GET", server.url_for("/stall-head")))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert routes.arrived.wait(10)
    session.close()
    thread.join(10)
    assert len(errors) == 1
    assert isinstance(errors[0], RequestCancelled), errors


def test_timeout_works_as_on_the_async_session(loop_backend: str, server: Server) -> None:
    with anysoup.blocking.Session(backend=loop_backend, timeout=0.3) as session:
        started = time.monotonic()
        with pytest.raises(anysoup.TimeoutError):
            session.send_and_read(Message("GET", server.url_for("/stall-head")))
        assert time.monotonic() - started < 5
        assert settled(session).in_use == 0


@pytest.fixture
def sigint_raises() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt, even in a runner started with it ignored.

    A shell starts background jobs with SIGINT ignored, and Python then never
    installs its handler: the Ctrl-C tests would see nothing.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.skipif(sys.platform == "win32", reason="pthread_kill")
@pytest.mark.usefixtures("sigint_raises")
def test_ctrl_c_cancels_the_request(
    session: anysoup.blocking.Session, server: Server, routes: Routes
) -> None:
    assert threading.current_thread() is threading.main_thread()
    main = threading.main_thread().ident
    assert main is not None

    def interrupt() -> None:
        if routes.arrived.wait(10):
            time.sleep(0.05)
            signal.pthread_kill(main, signal.SIGINT)

    thread = threading.Thread(target=interrupt)
    thread.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            session.send_and_read(Message("GET", server.url_for("/stall-head")))
    finally:
        thread.join()
    assert settled(session) == IDLE
    assert session.send_and_read(Message("GET", server.url_for("/small"))) == b"hello"


@pytest.mark.skipif(sys.platform == "win32", reason="signal.raise_signal in a handler")
@pytest.mark.usefixtures("sigint_raises")
def test_ctrl_c_while_reading_a_body(
    session: anysoup.blocking.Session, server: Server, routes: Routes
) -> None:
    body = session.send(Message("GET", server.url_for("/stall-body")))
    assert body.read(10) == b"x" * 10
    timer = threading.Timer(
        0.2, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT)
    )
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            body.read(10)
    finally:
        timer.join()
    body.close()
    assert settled(session) == IDLE


@pytest.mark.usefixtures("sigint_raises")
def test_raise_signal_in_the_main_thread(
    session: anysoup.blocking.Session, server: Server
) -> None:
    # The recipe: signal.raise_signal(SIGINT) in the main thread (from
    # a SIGALRM handler, the only Python code the main thread runs meanwhile).
    def handler(signum: int, frame: object) -> None:
        signal.raise_signal(signal.SIGINT)

    previous = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(KeyboardInterrupt):
            session.send_and_read(Message("GET", server.url_for("/stall-head")))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert settled(session) == IDLE


# -- lifetime ------------------------------------------------------------------------------


def test_an_unclosed_session_warns_when_collected(loop_backend: str, server: Server) -> None:
    session = anysoup.blocking.Session(backend=loop_backend)
    assert session.send_and_read(Message("GET", server.url_for("/small"))) == b"hello"
    loop_thread = session._loop._thread
    with pytest.warns(ResourceWarning, match="never closed"):
        del session
        gc.collect()
    loop_thread.join(5)
    assert not loop_thread.is_alive()


def test_an_unclosed_body_warns_when_collected(
    session: anysoup.blocking.Session, server: Server
) -> None:
    body = session.send(Message("GET", server.url_for("/body")))
    assert body.read(5) == BODY[:5]
    with pytest.warns(ResourceWarning, match="never closed"):
        del body
        gc.collect()
    assert settled(session).in_use == 0


def test_an_unclosed_session_does_not_keep_the_process_alive(
    loop_backend: str, server: Server
) -> None:
    script = textwrap.dedent(
        f"""
        import gc, warnings
        import anysoup, anysoup.blocking
        warnings.simplefilter("always", ResourceWarning)

        def forgotten():
            session = anysoup.blocking.Session(backend={loop_backend!r})
            session.send_and_read(anysoup.Message("GET", {server.url_for("/small")!r}))

        forgotten()
        gc.collect()
        kept = anysoup.blocking.Session(backend={loop_backend!r})
        body = kept.send(anysoup.Message("GET", {server.url_for("/stall-body")!r}))
        print("done", flush=True)
        """
    )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "done\n"
    assert "ResourceWarning" in result.stderr and "never closed" in result.stderr
    assert time.monotonic() - started < 20


def test_importing_anysoup_gives_the_blocking_module_lazily() -> None:
    code = (
        "import sys, anysoup\n"
        "assert 'anysoup.blocking' not in sys.modules\n"
        "assert anysoup.blocking.Session.__name__ == 'Session'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
