"""Cancellation at every checkpoint of a request, and DESIGN §4 invariants 1 and 2.

Each scenario below cancels one request at one checkpoint (queue, DNS,
connect, TLS handshake, writing headers, writing the body, waiting for the
headers, reading the body, closing the body) with an anyio cancel scope, then
the shared check asserts the pool's counters are consistent and that the next
request to a good server succeeds. The sweep runs every scenario in a fresh
session; the invariant 2 test runs them all, one after the other, in one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from servers import (
    ReceivedRequest,
    Server,
    ServerConnection,
    hanging_listener,
    serve_http,
    serve_raw,
    sockets_to,
)

import anysoup
from anysoup import Message, PoolStatistics, Session, SimpleProxyResolver

#: The session's I/O stall timeout: short, so that nothing here waits on it.
STALL_TIMEOUT = 0.5
#: What the misbehaving server sends of its ``/half`` body, of ``FULL`` announced.
HALF = 500
FULL = 1000
#: Large enough that writing it blocks on a server that doesn't read.
LARGE_BODY = 32 << 20

LeakCheck = Callable[[Session], Awaitable[None]]


# -- servers -------------------------------------------------------------------


async def hello(conn: ServerConnection, req: ReceivedRequest) -> None:
    """The good server: ``hello <target>``."""
    await conn.respond(200, [("Content-Type", "text/plain")], b"hello " + req.target.encode())


class Misbehaving:
    """A raw server that counts what it sees and then stalls.

    After the request head it answers ``/half`` with a 200 announcing ``FULL``
    bytes and sends ``HALF`` of them; any other target gets nothing (the body
    is never read either). A TLS client gets no answer to its handshake.
    """

    def __init__(self) -> None:
        self.url = ""
        self.port = 0
        #: Connections accepted.
        self.accepts = 0
        #: Request heads received.
        self.heads = 0
        self._changed = anyio.Event()

    async def handle(self, conn: ServerConnection) -> None:
        self.accepts += 1
        self._bump()
        head = await conn.stream.receive_until(b"\r\n\r\n", 65536)
        self.heads += 1
        self._bump()
        if head.split(b" ", 2)[1] == b"/half":
            await conn.send_raw(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % FULL + b"h" * HALF
            )
        await anyio.sleep_forever()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        with anyio.fail_after(2):
            while not predicate():
                await self._changed.wait()

    def _bump(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()


class BlockingResolver:
    """A resolver that blocks until released, then answers 127.0.0.1."""

    def __init__(self) -> None:
        self.called = anyio.Event()
        self.release = anyio.Event()

    async def __call__(self, host: str, port: int) -> list[str]:
        self.called.set()
        await self.release.wait()
        return ["127.0.0.1"]


@dataclass
class Env:
    """What a scenario works with."""

    session: Session
    good: Server
    bad: Misbehaving
    hang: tuple[str, int]
    unqueued: list[Message] = field(default_factory=list)


@asynccontextmanager
async def scenario_servers() -> AsyncIterator[tuple[Server, Misbehaving, tuple[str, int]]]:
    """The good server, the misbehaving one and a hanging listener."""
    bad = Misbehaving()
    async with (
        serve_http(hello) as good,
        serve_raw(bad.handle) as raw,
        hanging_listener() as hang,
    ):
        bad.url, bad.port = raw.url, raw.port
        yield good, bad, hang


@asynccontextmanager
async def session_env(
    good: Server, bad: Misbehaving, hang: tuple[str, int], **settings: object
) -> AsyncIterator[Env]:
    async with Session(**settings) as session:  # type: ignore[arg-type]
        env = Env(session, good, bad, hang)
        session.request_unqueued.connect(lambda _session, msg: env.unqueued.append(msg))
        yield env


# -- helpers -------------------------------------------------------------------


async def until(predicate: Callable[[], bool], seconds: float = 2) -> None:
    """Wait (polling) until ``predicate()`` holds; fail after ``seconds``."""
    with anyio.fail_after(seconds):
        # The pool's counters have no change notification: poll them.
        while not predicate():  # noqa: ASYNC110
            await anyio.sleep(0.01)


@asynccontextmanager
async def cancelled_when(
    trigger: Callable[[], Awaitable[object]],
) -> AsyncIterator[anyio.CancelScope]:
    """A cancel scope that another task cancels as soon as ``trigger()`` returns."""
    scope = anyio.CancelScope()

    async def fire() -> None:
        await trigger()
        scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(fire)
        try:
            with scope:
                yield scope
        finally:
            # After the scope's exit, so it still catches its own cancellation.
            tg.cancel_scope.cancel()


def after(first: Callable[[], Awaitable[object]], delay: float) -> Callable[[], Awaitable[None]]:
    """A trigger: ``first()``, then ``delay`` seconds more (to be surely blocked)."""

    async def trigger() -> None:
        await first()
        await anyio.sleep(delay)

    return trigger


def sleep_for(delay: float) -> Callable[[], Awaitable[None]]:
    return lambda: anyio.sleep(delay)


def assert_consistent(stats: PoolStatistics) -> None:
    assert stats.connections == stats.connecting + stats.idle + stats.in_use, stats
    assert min(stats.connections, stats.connecting, stats.idle, stats.in_use, stats.waiting) >= 0


async def settle(session: Session) -> None:
    """Wait until no connection is being made in the background."""
    await until(lambda: session.statistics().connecting == 0)


async def check_pool_recovers(env: Env, cancelled: Message) -> None:
    """DESIGN §4.2: counters back to zero, the message unqueued, the next request works.

    Zero at once: a connect cancelled with its request doesn't go on in the
    background (issue 15 item 5).
    """
    session = env.session
    stats = session.statistics()
    assert_consistent(stats)
    assert (stats.connecting, stats.in_use, stats.waiting) == (0, 0, 0), stats
    assert stats.connections == stats.idle, stats
    assert env.unqueued.count(cancelled) == 1, "request_unqueued must fire exactly once"

    msg = Message("GET", env.good.url_for("/next"))
    assert await session.send_and_read(msg) == b"hello /next"
    assert msg.status == 200
    stats = session.statistics()
    assert (stats.connecting, stats.in_use, stats.waiting) == (0, 0, 0), stats
    assert stats.connections == stats.idle >= 1, stats


# -- one scenario per checkpoint ------------------------------------------------
#
# Each returns the cancelled message. The session may be limited to one
# connection in all (the sweep) or one per host (the invariant 2 test).


async def at_queue(env: Env) -> Message:
    """Waiting in the queue while another request holds the only connection."""
    session = env.session
    holder = await session.send(Message("GET", env.good.url_for("/holder")))
    try:
        msg = Message("GET", env.good.url_for("/queued"))
        waiting = after(lambda: until(lambda: session.statistics().waiting == 1), 0.02)
        async with cancelled_when(waiting) as scope:
            await session.send_and_read(msg)
        assert scope.cancelled_caught
        stats = session.statistics()
        assert (stats.in_use, stats.waiting) == (1, 0), stats
    finally:
        await holder.aclose()
    assert "/queued" not in [r.target for r in env.good.requests]
    return msg


async def at_dns(env: Env) -> Message:
    """Cancelled while the host name lookup blocks (in the connection task, cancelled too)."""
    session = env.session
    resolver = BlockingResolver()
    session._pool.resolver = resolver
    url = f"http://dns-blocked.test:{env.good.port}"
    msg = Message("GET", url + "/dns")
    try:
        async with cancelled_when(resolver.called.wait) as scope:
            await session.send_and_read(msg)
        assert scope.cancelled_caught
        stats = session.statistics()
        assert (stats.connecting, stats.in_use, stats.waiting) == (0, 0, 0), stats
    finally:
        resolver.release.set()
    # The next request for the host looks it up again, on a connection of its own.
    after_msg = Message("GET", url + "/after-dns")
    assert await session.send_and_read(after_msg) == b"hello /after-dns"
    assert "/dns" not in [r.target for r in env.good.requests]
    return msg


async def at_connect(env: Env) -> Message:
    """Cancelled while the TCP connect hangs: the connect is cancelled with it."""
    session = env.session
    host, port = env.hang
    msg = Message("GET", f"http://{host}:{port}/connect")
    connecting = after(lambda: until(lambda: session.statistics().connecting == 1), 0.1)
    async with cancelled_when(connecting) as scope:
        await session.send_and_read(msg)
    assert scope.cancelled_caught
    assert session.statistics().connecting == 0
    return msg


async def at_tls(env: Env) -> Message:
    """Cancelled during a TLS handshake the server never answers."""
    bad = env.bad
    accepts = bad.accepts
    msg = Message("GET", bad.url.replace("http://", "https://") + "/tls")
    handshaking = after(lambda: bad.wait_for(lambda: bad.accepts > accepts), 0.1)
    async with cancelled_when(handshaking) as scope:
        await env.session.send_and_read(msg)
    assert scope.cancelled_caught
    assert env.session.statistics().connecting == 0
    return msg


async def cancel_from_signal(env: Env, msg: Message, cancel_on: str, never: str) -> Message:
    """Send ``msg``, cancelling from its ``cancel_on`` signal; ``never`` must not fire."""
    seen: list[str] = []
    with anyio.CancelScope() as scope:
        getattr(msg, cancel_on).connect(lambda m: scope.cancel())
        getattr(msg, never).connect(lambda m: seen.append(never))
        await env.session.send_and_read(msg)
    assert scope.cancelled_caught
    assert seen == []
    return msg


async def at_write_headers(env: Env) -> Message:
    """Cancelled from a ``starting`` handler: the next checkpoint is writing the head."""
    msg = Message("GET", env.good.url_for("/starting"))
    return await cancel_from_signal(env, msg, "starting", "wrote_headers")


async def at_write_body_streamed(env: Env) -> Message:
    """Cancelled from ``wrote_headers`` with a streamed (chunked) body."""
    msg = Message("POST", env.good.url_for("/upload"), body=[b"b" * 1000] * 4)
    return await cancel_from_signal(env, msg, "wrote_headers", "wrote_body")


async def at_write_body_blocked(env: Env) -> Message:
    """Cancelled while a large body is blocked on a server that doesn't read."""
    bad = env.bad
    heads = bad.heads
    msg = Message("POST", bad.url + "/upload", body=b"B" * LARGE_BODY)
    seen: list[str] = []
    # A body larger than one slice goes out after the head, a slice at a time:
    # the head was written, the body never finished.
    msg.wrote_headers.connect(lambda m: seen.append("wrote_headers"))
    msg.wrote_body.connect(lambda m: seen.append("wrote_body"))
    writing = after(lambda: bad.wait_for(lambda: bad.heads > heads), 0.1)
    async with cancelled_when(writing) as scope:
        await env.session.send_and_read(msg)
    assert scope.cancelled_caught
    assert seen == ["wrote_headers"]
    return msg


async def at_wait_headers_signal(env: Env) -> Message:
    """Cancelled from ``wrote_body``: the next checkpoint is reading the head."""
    msg = Message("GET", env.good.url_for("/wrote-body"))
    return await cancel_from_signal(env, msg, "wrote_body", "got_headers")


async def at_wait_headers_stalled(env: Env) -> Message:
    """Cancelled while a server that read the request never answers."""
    bad = env.bad
    heads = bad.heads
    msg = Message("GET", bad.url + "/stall")
    seen: list[str] = []
    msg.got_headers.connect(lambda m: seen.append("got_headers"))
    waiting = after(lambda: bad.wait_for(lambda: bad.heads > heads), 0.05)
    async with cancelled_when(waiting) as scope:
        await env.session.send_and_read(msg)
    assert scope.cancelled_caught
    assert seen == []
    return msg


async def _half_body(env: Env) -> tuple[Message, anysoup.InputStream]:
    msg = Message("GET", env.bad.url + "/half")
    body = await env.session.send(msg)
    assert msg.status == 200
    received = b""
    while len(received) < HALF:
        received += await body.receive()
    assert received == b"h" * HALF
    return msg, body


async def at_read_body(env: Env) -> Message:
    """Cancelled while ``body.receive()`` waits for the rest of a stalled body."""
    msg, body = await _half_body(env)
    try:
        async with cancelled_when(sleep_for(0.1)) as scope:
            await body.receive()
        assert scope.cancelled_caught
        # The interrupted stream gave its connection up at once, not at close.
        assert env.session.statistics().in_use == 0
    finally:
        await body.aclose()
    return msg


async def at_close(env: Env) -> Message:
    """Cancelled while ``aclose()`` drains the rest of a stalled body."""
    msg, body = await _half_body(env)
    async with cancelled_when(sleep_for(0.1)) as scope:
        await body.aclose()  # would drain for up to half a second
    assert scope.cancelled_caught
    assert env.session.statistics().in_use == 0
    with pytest.raises(anyio.ClosedResourceError):
        await body.receive()
    await body.aclose()  # closing again is a no-op
    return msg


#: name -> scenario
CHECKPOINTS: dict[str, Callable[[Env], Awaitable[Message]]] = {
    "queue": at_queue,
    "dns": at_dns,
    "connect": at_connect,
    "tls-handshake": at_tls,
    "write-headers": at_write_headers,
    "write-body-streamed": at_write_body_streamed,
    "write-body-blocked": at_write_body_blocked,
    "wait-headers-signal": at_wait_headers_signal,
    "wait-headers-stalled": at_wait_headers_stalled,
    "read-body": at_read_body,
    "close-draining": at_close,
}


@pytest.mark.parametrize("checkpoint", list(CHECKPOINTS))
async def test_cancel_at_checkpoint(checkpoint: str, leak_check: LeakCheck) -> None:
    scenario = CHECKPOINTS[checkpoint]
    async with scenario_servers() as (good, bad, hang):
        async with session_env(good, bad, hang, max_conns=1, timeout=STALL_TIMEOUT) as env:
            cancelled = await scenario(env)
            await check_pool_recovers(env, cancelled)
        await leak_check(env.session)


# -- DESIGN §4 invariants -------------------------------------------------------


async def test_invariant_2_cancel_at_every_checkpoint_keeps_the_pool_consistent(
    leak_check: LeakCheck,
) -> None:
    """DESIGN §4.2: every checkpoint in turn, in one session that stays usable."""
    async with scenario_servers() as (good, bad, hang):
        async with session_env(
            good, bad, hang, max_conns_per_host=1, timeout=STALL_TIMEOUT
        ) as env:
            for scenario in CHECKPOINTS.values():
                cancelled = await scenario(env)
                await check_pool_recovers(env, cancelled)
            stats = env.session.statistics()
            # What is left: one idle connection to the good server, one to the
            # host whose lookup was cancelled (it carried a request since).
            assert stats == PoolStatistics(2, 0, 2, 0, 0), stats
        await leak_check(env.session)


async def test_invariant_1_no_socket_or_task_left_after_the_session_block(
    leak_check: LeakCheck,
) -> None:
    """DESIGN §4.1: leaving the block closes connections in every state.

    At the end of the block the pool holds an idle connection, one lent to a
    body the test keeps open, one lent to a task blocked reading its body, one
    still connecting for a waiting request, and a request waiting in the queue.
    """
    errors: dict[str, BaseException] = {}

    async def expect_error(name: str, call: Callable[[], Awaitable[object]]) -> None:
        try:
            await call()
        except anysoup.Error as exc:
            errors[name] = exc

    async with scenario_servers() as (good, bad, hang):
        async with (
            anyio.create_task_group() as tg,
            Session(max_conns_per_host=2, timeout=5) as session,
        ):
            assert await session.send_and_read(Message("GET", good.url_for("/"))) == b"hello /"
            kept = await session.send(Message("GET", bad.url + "/half"))

            reading = anyio.Event()

            async def read_to_end() -> None:
                async with session.send(Message("GET", bad.url + "/half")) as body:
                    await body.receive()
                    reading.set()
                    await body.read()

            tg.start_soon(expect_error, "reader", read_to_end)
            await reading.wait()
            host, port = hang
            tg.start_soon(
                expect_error,
                "connecting",
                lambda: session.send_and_read(Message("GET", f"http://{host}:{port}/")),
            )
            await until(lambda: session.statistics().connecting == 1)
            tg.start_soon(
                expect_error,
                "queued",
                lambda: session.send_and_read(Message("GET", bad.url + "/queued")),
            )
            await until(lambda: session.statistics().waiting == 1)
            await anyio.sleep(0.05)  # the reader is blocked in receive()
            assert session.statistics() == PoolStatistics(4, 1, 1, 2, 1)
        # Every pending call failed with an anysoup error, none hung.
        assert sorted(errors) == ["connecting", "queued", "reader"], errors
        await leak_check(session)
        # The kept body's connection was closed under it: closing it is harmless.
        await kept.aclose()


# -- a cancelled connect gives its slot back at once (issue 15 item 5) ----------

#: The stall timeout of these sessions: waiting for a cancelled attempt to time
#: out would take this long, far past what the next request is allowed.
LONG_TIMEOUT = 10


@asynccontextmanager
async def one_slot_session(**settings: object) -> AsyncIterator[tuple[Session, BlockingResolver]]:
    """A session with one connection in all, the long timeout and a blocking resolver."""
    options: dict[str, Any] = {"max_conns": 1, "timeout": LONG_TIMEOUT, **settings}
    async with Session(**options) as session:
        resolver = BlockingResolver()
        session._pool.resolver = resolver
        yield session, resolver


@pytest.mark.parametrize("phase", ["dns", "connect", "tls-handshake", "proxy-connect"])
async def test_cancelled_connect_gives_its_slot_back_at_once(
    phase: str, leak_check: LeakCheck
) -> None:
    """The attempt goes with its last request, and its socket is closed.

    With one connection in all, the next request (to another host) used to
    wait for the cancelled attempt to time out (httpcore#1093).
    """
    async with scenario_servers() as (good, bad, hang):
        settings: dict[str, object] = {}
        if phase == "proxy-connect":  # https through a proxy that never answers CONNECT
            settings["proxy_resolver"] = SimpleProxyResolver(uri_proxies={"https": bad.url})
        async with one_slot_session(**settings) as (session, resolver):
            accepts, heads = bad.accepts, bad.heads
            trigger: Callable[[], Awaitable[object]]
            if phase == "dns":
                url, port = f"http://dns-blocked.test:{good.port}/dns", good.port
                trigger = resolver.called.wait
            elif phase == "connect":
                url, port = f"http://{hang[0]}:{hang[1]}/connect", hang[1]
                trigger = after(lambda: until(lambda: sockets_to(port) > base), 0.1)
            elif phase == "tls-handshake":  # the server never answers the ClientHello
                url, port = bad.url.replace("http://", "https://") + "/tls", bad.port
                trigger = after(lambda: bad.wait_for(lambda: bad.accepts > accepts), 0.1)
            else:
                url, port = "https://origin.test/proxied", bad.port
                trigger = after(lambda: bad.wait_for(lambda: bad.heads > heads), 0.1)
            base = sockets_to(port)  # the hanging listener's own fillers count
            async with cancelled_when(trigger) as scope:
                await session.send_and_read(Message("GET", url))
            assert scope.cancelled_caught
            # The slot is free as the request unwinds; the socket follows at once.
            assert session.statistics() == PoolStatistics(0, 0, 0, 0, 0)
            await until(lambda: sockets_to(port) == base)
            with anyio.fail_after(3):
                msg = Message("GET", good.url_for("/next"))
                assert await session.send_and_read(msg) == b"hello /next"
            assert [r.target for r in good.requests] == ["/next"]
        await leak_check(session)


async def test_cancelled_request_hands_its_attempt_to_a_waiter_for_the_same_host(
    leak_check: LeakCheck,
) -> None:
    async with scenario_servers() as (good, _bad, _hang):
        async with one_slot_session() as (session, resolver):
            url = f"http://dns-blocked.test:{good.port}"
            results: list[bytes] = []
            first = anyio.CancelScope()

            async def first_request() -> None:
                with first:
                    await session.send_and_read(Message("GET", url + "/first"))

            async def second_request() -> None:
                results.append(await session.send_and_read(Message("GET", url + "/second")))

            async with anyio.create_task_group() as tg:
                tg.start_soon(first_request)
                await resolver.called.wait()
                tg.start_soon(second_request)
                await until(lambda: session.statistics().waiting == 1)
                first.cancel()
                await until(lambda: session.statistics().waiting == 0)
                # The waiting request took the attempt over: nothing was closed or reopened.
                assert session.statistics() == PoolStatistics(1, 1, 0, 0, 0)
                resolver.release.set()
            assert first.cancelled_caught
            assert results == [b"hello /second"]
            assert good.connections == 1
            assert [r.target for r in good.requests] == ["/second"]
        await leak_check(session)


async def test_cancelled_request_leaves_a_preconnect_attempt_alive(leak_check: LeakCheck) -> None:
    async with scenario_servers() as (good, _bad, _hang):
        async with one_slot_session() as (session, resolver):
            url = f"http://dns-blocked.test:{good.port}"
            preconnected = anyio.Event()

            async def preconnect() -> None:
                await session.preconnect(Message("GET", url + "/"))
                preconnected.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(preconnect)
                await resolver.called.wait()
                # A request takes the attempt over, so the preconnect returns; then
                # the request is cancelled. The preconnect's promise still holds.
                async with cancelled_when(preconnected.wait) as scope:
                    await session.send_and_read(Message("GET", url + "/taken"))
                assert scope.cancelled_caught
                assert session.statistics() == PoolStatistics(1, 1, 0, 0, 0)
                resolver.release.set()
            await settle(session)
            assert session.statistics() == PoolStatistics(1, 0, 1, 0, 0)
            assert await session.send_and_read(Message("GET", url + "/after")) == b"hello /after"
            assert good.connections == 1
        await leak_check(session)


async def test_cancelled_preconnect_cancels_its_attempt(leak_check: LeakCheck) -> None:
    async with scenario_servers() as (good, _bad, _hang):
        async with one_slot_session() as (session, resolver):
            msg = Message("GET", f"http://dns-blocked.test:{good.port}/")
            async with cancelled_when(resolver.called.wait) as scope:
                await session.preconnect(msg)
            assert scope.cancelled_caught
            assert session.statistics() == PoolStatistics(0, 0, 0, 0, 0)
            with anyio.fail_after(3):
                assert await session.send_and_read(Message("GET", good.url)) == b"hello /"
        await leak_check(session)


# -- Cancellable and abort() ---------------------------------------------------


async def test_cancellable_cancelled_from_another_task_raises_request_cancelled(
    leak_check: LeakCheck,
) -> None:
    async with scenario_servers() as (good, bad, hang):
        async with session_env(good, bad, hang, timeout=5) as env:
            cancellable = anysoup.Cancellable()
            msg = Message("GET", bad.url + "/stall")
            heads = bad.heads

            async def cancel_when_sent() -> None:
                await bad.wait_for(lambda: bad.heads > heads)
                await anyio.sleep(0.02)
                cancellable.cancel()

            async with anyio.create_task_group() as tg:
                tg.start_soon(cancel_when_sent)
                with pytest.raises(anysoup.RequestCancelled) as info:
                    await env.session.send_and_read(msg, cancellable=cancellable)
            assert info.value.message is msg
            assert cancellable.is_cancelled()
            await check_pool_recovers(env, msg)
        await leak_check(env.session)


@pytest.mark.parametrize("call", ["send_and_read", "send_and_splice"])
async def test_cancellable_covers_the_body_of_send_and_read_and_splice(
    call: str, leak_check: LeakCheck
) -> None:
    """libsoup's cancellable covers the whole operation: a stalled body read too."""
    async with scenario_servers() as (good, bad, hang):
        async with session_env(good, bad, hang, timeout=5) as env:
            cancellable = anysoup.Cancellable()
            msg = Message("GET", bad.url + "/half")
            got_headers = anyio.Event()
            msg.got_headers.connect(lambda m: got_headers.set())

            async def cancel_when_reading() -> None:
                await got_headers.wait()
                await anyio.sleep(0.05)  # the body read has begun and stalls
                cancellable.cancel()

            copied: list[bytes] = []

            class Sink:
                async def write(self, data: bytes) -> None:
                    copied.append(data)

            async with anyio.create_task_group() as tg:
                tg.start_soon(cancel_when_reading)
                with anyio.fail_after(4), pytest.raises(anysoup.RequestCancelled) as info:
                    if call == "send_and_read":
                        await env.session.send_and_read(msg, cancellable=cancellable)
                    else:
                        await env.session.send_and_splice(msg, Sink(), cancellable=cancellable)
            assert info.value.message is msg
            assert msg.status == 200
            if call == "send_and_splice":
                assert sum(map(len, copied)) == HALF
            await check_pool_recovers(env, msg)
        await leak_check(env.session)


async def test_cancellable_cancelled_while_queued_raises_request_cancelled(
    leak_check: LeakCheck,
) -> None:
    async with scenario_servers() as (good, bad, hang):
        async with session_env(good, bad, hang, max_conns=1, timeout=5) as env:
            session = env.session
            cancellable = anysoup.Cancellable()
            msg = Message("GET", good.url_for("/queued"))
            async with session.send(Message("GET", good.url_for("/holder"))):

                async def cancel_when_queued() -> None:
                    await until(lambda: session.statistics().waiting == 1)
                    cancellable.cancel()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(cancel_when_queued)
                    with pytest.raises(anysoup.RequestCancelled):
                        await session.send_and_read(msg, cancellable=cancellable)
            await check_pool_recovers(env, msg)
        await leak_check(session)


async def test_already_cancelled_cancellable_raises_at_once(leak_check: LeakCheck) -> None:
    async with serve_http(hello) as good:
        async with Session() as session:
            cancellable = anysoup.Cancellable()
            cancellable.cancel()
            msg = Message("GET", good.url_for("/never"))
            with pytest.raises(anysoup.RequestCancelled) as info:
                await session.send_and_read(msg, cancellable=cancellable)
            assert info.value.message is msg
            assert session.statistics() == PoolStatistics(0, 0, 0, 0, 0)
            await anyio.sleep(0.05)
            assert good.connections == 0
            # The message is not left queued: once reset, it goes out normally.
            cancellable.reset()
            assert await session.send_and_read(msg, cancellable=cancellable) == b"hello /never"
        await leak_check(session)


async def test_abort_cancels_a_queued_request_and_a_body_read(leak_check: LeakCheck) -> None:
    async with scenario_servers() as (good, bad, hang):
        async with session_env(good, bad, hang, max_conns=1, timeout=5) as env:
            session = env.session
            errors: dict[str, BaseException] = {}
            reading = anyio.Event()
            reader_msg = Message("GET", bad.url + "/half")
            queued_msg = Message("GET", good.url_for("/queued"))

            async def read_body() -> None:
                async with session.send(reader_msg) as body:
                    received = b""
                    while len(received) < HALF:
                        received += await body.receive()
                    reading.set()
                    try:
                        await body.receive()
                    except anysoup.Error as exc:
                        errors["reader"] = exc

            async def wait_in_queue() -> None:
                try:
                    await session.send_and_read(queued_msg)
                except anysoup.Error as exc:
                    errors["queued"] = exc

            with anyio.fail_after(2):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(read_body)
                    await reading.wait()
                    tg.start_soon(wait_in_queue)
                    await until(lambda: session.statistics().waiting == 1)
                    await anyio.sleep(0.05)  # the reader is blocked in receive()
                    session.abort()
            assert isinstance(errors.get("reader"), anysoup.RequestCancelled), errors
            assert isinstance(errors.get("queued"), anysoup.RequestCancelled), errors
            assert errors["reader"].message is reader_msg
            assert errors["queued"].message is queued_msg
            assert "/queued" not in [r.target for r in good.requests]
            assert env.unqueued.count(reader_msg) == 1
            await check_pool_recovers(env, queued_msg)
        await leak_check(session)


# -- httpx#1171 ----------------------------------------------------------------


async def test_httpx_1171_cancelled_requests_give_their_slots_back(
    leak_check: LeakCheck,
) -> None:
    """Cancelled requests (lent and queued) must not keep counting against max_conns."""

    async def delayed(conn: ServerConnection, req: ReceivedRequest) -> None:
        if req.target == "/slow":
            await anyio.sleep(30)  # cut short when the server closes
        await conn.respond(200, body=req.target.encode())

    async with serve_http(delayed) as server:
        async with Session(max_conns=2, timeout=5) as session:
            async with anyio.create_task_group() as tg:
                for _ in range(5):
                    tg.start_soon(session.send_and_read, Message("GET", server.url_for("/slow")))
                await until(
                    lambda: len(server.requests) == 2 and session.statistics().waiting == 3
                )
                assert session.statistics() == PoolStatistics(2, 0, 0, 2, 3)
                tg.cancel_scope.cancel()
            # The lent connections closed; freeing them may have started new
            # ones for the queued requests before those saw their cancellation:
            # such attempts went with them (or to a request still queued, then
            # went with that one).
            assert session.statistics() == PoolStatistics(0, 0, 0, 0, 0)

            bodies: list[bytes] = []

            async def fetch(i: int) -> None:
                bodies.append(await session.send_and_read(Message("GET", server.url_for(f"/{i}"))))

            with anyio.fail_after(10):
                for batch in range(20):
                    async with anyio.create_task_group() as tg:
                        for i in range(batch * 5, batch * 5 + 5):
                            tg.start_soon(fetch, i)
            assert sorted(bodies) == sorted(f"/{i}".encode() for i in range(100))
            stats = session.statistics()
            assert (stats.connecting, stats.in_use, stats.waiting) == (0, 0, 0), stats
            assert 1 <= stats.connections == stats.idle <= 2, stats
            assert len(server.requests) == 102
        await leak_check(session)
