"""Retry: the policy as tables, then on the wire against scripted h11 servers.

The wire tests run on both backends. Most replace the feature's wait with a
recorder (``Retry._sleep``) and its jitter with the ceiling
(``Retry._uniform``), so the delays it chose are exact and the tests fast;
the cancellation tests keep the real ``anyio.sleep``. Every session ends
with ``leak_check``: a retry leaves no connection behind.
"""

from __future__ import annotations

import calendar
import email.utils
import random
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import anyio.abc
import anyio.from_thread
import anyio.lowlevel
import pytest
from servers import ReceivedRequest, Server, ServerConnection, serve_http

import anysoup.blocking
from anysoup import (
    Cancellable,
    ConnectError,
    CookieJar,
    Error,
    IncompleteBody,
    Logger,
    LoggerLogLevel,
    Message,
    MessageFlags,
    NetworkError,
    ParsingError,
    RequestCancelled,
    Retry,
    Session,
    SessionFeature,
    TimeoutError,
    TlsError,
    TooManyRestarts,
)
from anysoup._features.retry.retry_policy import (
    backoff_delay,
    check_methods,
    check_statuses,
    method_allowed,
    parse_retry_after,
    retry_delay,
    should_retry_error,
)

LeakCheck = Callable[[Session], Awaitable[None]]
BOUND = 10.0
IDEMPOTENT = {"GET", "HEAD", "OPTIONS", "PROPFIND", "TRACE", "PUT", "DELETE"}
NOW = 1_800_000_000.0
#: 2027-01-15 08:00:00 GMT.
JAN15 = float(calendar.timegm((2027, 1, 15, 8, 0, 0)))


def ceiling(low: float, high: float) -> float:
    """A "random" draw that always takes the top of the range."""
    return high


# -- the policy --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry", "factor", "maximum", "expected"),
    [
        (0, 0.5, 30, 0.5),
        (1, 0.5, 30, 1.0),
        (2, 0.5, 30, 2.0),
        (5, 0.5, 30, 16.0),
        (6, 0.5, 30, 30.0),  # capped
        (3, 1.0, 5, 5.0),
        (0, 0.0, 30, 0.0),
        (2, 0.5, 0, 0.0),
        (10_000, 0.5, 30, 30.0),  # no OverflowError
    ],
)
def test_backoff_ceiling(retry: int, factor: float, maximum: float, expected: float) -> None:
    assert backoff_delay(retry, factor, maximum, ceiling) == expected


def test_backoff_is_full_jitter() -> None:
    draws = [backoff_delay(3, 0.5, 30, random.uniform) for _ in range(500)]
    assert all(0 <= d <= 4.0 for d in draws)
    assert min(draws) < 1.0 and max(draws) > 3.0  # spread over the whole window


@pytest.mark.parametrize(
    ("value", "now", "expected"),
    [
        (None, NOW, None),
        ("120", NOW, 120.0),
        (" 5 ", NOW, 5.0),
        ("0", NOW, 0.0),
        ("-1", NOW, None),
        ("1.5", NOW, None),
        ("", NOW, None),
        ("soon", NOW, None),
        ("\u0665", NOW, None),  # a non-ASCII digit is not delay-seconds
        (email.utils.formatdate(NOW + 7, usegmt=True), NOW, 7.0),  # IMF-fixdate
        (email.utils.formatdate(NOW - 60, usegmt=True), NOW, 0.0),  # in the past: now
        ("Friday, 15-Jan-27 08:00:10 GMT", JAN15, 10.0),  # RFC 850
        ("Fri Jan 15 08:00:10 2027", JAN15, 10.0),  # asctime
    ],
)
def test_parse_retry_after(value: str | None, now: float, expected: float | None) -> None:
    assert parse_retry_after(value, now) == expected


@pytest.mark.parametrize(
    ("retry", "retry_after", "expected"),
    [
        (0, None, 0.5),
        (2, None, 2.0),
        (0, 3.0, 3.0),  # Retry-After replaces the backoff
        (5, 0.0, 0.0),
        (0, 30.0, 30.0),  # up to backoff_max
        (0, 31.0, None),  # beyond it: give up, the answer is returned
    ],
)
def test_retry_delay(retry: int, retry_after: float | None, expected: float | None) -> None:
    got = retry_delay(retry, retry_after, factor=0.5, maximum=30, uniform=ceiling)
    assert got == expected


@pytest.mark.parametrize(
    ("exc", "allowed", "retried"),
    [
        (ConnectError("refused"), False, True),  # nothing was sent: any method
        (ConnectError("refused"), True, True),
        (NetworkError("reset"), True, True),
        (NetworkError("reset"), False, False),  # a POST may have acted
        (IncompleteBody("cut"), True, True),
        (TimeoutError("stalled"), True, False),
        (TlsError("bad certificate"), True, False),
        (ParsingError("garbage"), True, False),
        (RequestCancelled("cancelled"), True, False),
        (Error("other"), True, False),
        (ValueError("not ours"), True, False),
    ],
)
def test_which_errors_are_retried(exc: BaseException, allowed: bool, retried: bool) -> None:
    assert should_retry_error(exc, allowed) is retried


@pytest.mark.parametrize(
    ("method", "flags", "methods", "allowed"),
    [
        ("GET", MessageFlags.NONE, IDEMPOTENT, True),
        ("PUT", MessageFlags.NONE, IDEMPOTENT, True),
        ("POST", MessageFlags.NONE, IDEMPOTENT, False),
        ("PATCH", MessageFlags.NONE, IDEMPOTENT, False),
        ("POST", MessageFlags.IDEMPOTENT, IDEMPOTENT, True),  # the message opts in
        ("POST", MessageFlags.NO_REDIRECT, IDEMPOTENT, False),
        ("POST", MessageFlags.NONE, frozenset({"POST"}), True),
        ("GET", MessageFlags.NONE, frozenset({"POST"}), False),
    ],
)
def test_which_methods_are_retried(
    method: str, flags: MessageFlags, methods: frozenset[str], allowed: bool
) -> None:
    assert method_allowed(method, flags, methods) is allowed


def test_settings_are_checked() -> None:
    assert check_methods(None) == IDEMPOTENT
    assert check_methods(["post", "m-search"]) == {"POST", "m-search"}
    assert check_statuses([500, 503, 503]) == {500, 503}
    for bad_statuses in ([302], [200], [600], ["503"], [True]):
        with pytest.raises(ValueError, match=r"statuses: .* is not an error status"):
            Retry(statuses=bad_statuses)
    with pytest.raises(TypeError, match="statuses"):
        Retry(statuses="503")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="methods"):
        Retry(methods="GET")
    with pytest.raises(ValueError, match="method"):
        Retry(methods=["GE T"])
    for bad_total in (-1, 1.5, True):
        with pytest.raises(ValueError, match="total"):
            Retry(total=bad_total)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backoff_factor"):
        Retry(backoff_factor=-1)
    with pytest.raises(ValueError, match="backoff_max"):
        Retry(backoff_max="30")  # type: ignore[arg-type]


def test_defaults_and_repr() -> None:
    retry = Retry()
    assert (retry.total, retry.statuses, retry.methods) == (3, {429, 502, 503, 504}, IDEMPOTENT)
    assert (retry.backoff_factor, retry.backoff_max, retry.respect_retry_after) == (0.5, 30, True)
    assert repr(retry).startswith("<anysoup.Retry total=3 statuses=[429, 502, 503, 504] ")
    assert type(retry).__module__ == "anysoup"


def test_the_chain_position() -> None:
    # Inside redirects and HSTS, outside the cache, auth, cookies and the logger.
    assert Retry.chain_position == SessionFeature.POSITION_RETRY
    assert SessionFeature.POSITION_HSTS < SessionFeature.POSITION_RETRY
    assert SessionFeature.POSITION_RETRY < SessionFeature.POSITION_CACHE
    assert not any(isinstance(f, Retry) for f in Session().get_features())  # not a default


# -- on the wire --------------------------------------------------------------------------


class Script:
    """Answers by path from a queue of statuses; the last one repeats."""

    def __init__(self, **paths: list[Any]) -> None:
        self.paths = {f"/{name}": list(answers) for name, answers in paths.items()}

    async def __call__(self, conn: ServerConnection, request: ReceivedRequest) -> None:
        path = request.target.split("?")[0]
        answers = self.paths.get(path, [200])
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if answer == "reset":
            await conn.reset()
        elif answer == "stall":
            await anyio.sleep(BOUND)
        elif isinstance(answer, tuple):
            status, headers, body = answer
            await conn.respond(status, headers, body, reason=reason(status))
        else:
            await conn.respond(answer, body=f"{answer} for {path}".encode(), reason=reason(answer))


def reason(status: int) -> bytes:
    return {200: b"OK", 503: b"Service Unavailable", 429: b"Too Many Requests"}.get(status, b"")


def recorded(retry: Retry) -> list[float]:
    """Make ``retry`` wait no time and take the top of each range; return its delays."""
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)
        await anyio.lowlevel.checkpoint()

    retry._sleep = sleep
    retry._uniform = ceiling
    return delays


def restarts(msg: Message) -> list[int]:
    """The status each ``restarted`` handler call saw."""
    seen: list[int] = []
    msg.restarted.connect(lambda m: seen.append(m.status))
    return seen


async def send(session: Session, msg: Message) -> bytes:
    with anyio.fail_after(BOUND):
        return await session.send_and_read(msg)


def settled(session: Session) -> None:
    stats = session.statistics()
    assert (stats.in_use, stats.waiting, stats.connecting) == (0, 0, 0), stats


async def test_a_503_is_retried_until_it_succeeds(leak_check: LeakCheck) -> None:
    retry = Retry()
    delays = recorded(retry)
    async with serve_http(Script(flaky=[503, 503, 200])) as server:
        async with Session(features=[retry]) as session:
            msg = Message("GET", server.url_for("/flaky"))
            seen = restarts(msg)
            assert await send(session, msg) == b"200 for /flaky"
            assert (msg.status, seen, delays) == (200, [503, 503], [0.5, 1.0])
            assert [r.target for r in server.requests] == ["/flaky"] * 3
            assert server.connections == 1  # the small 503 bodies were drained
            settled(session)
        await leak_check(session)


async def test_retries_run_out_and_the_last_answer_is_returned(leak_check: LeakCheck) -> None:
    retry = Retry(total=3)
    delays = recorded(retry)
    async with serve_http(Script(down=[503])) as server:
        async with Session(features=[retry]) as session:
            msg = Message("GET", server.url_for("/down"))
            assert await send(session, msg) == b"503 for /down"
            assert (msg.status, msg.reason_phrase) == (503, "Service Unavailable")
            assert delays == [0.5, 1.0, 2.0]  # exponential
            assert len(server.requests) == 4
        await leak_check(session)


async def test_non_idempotent_methods_are_not_retried_unless_they_opt_in(
    leak_check: LeakCheck,
) -> None:
    retry = Retry()
    delays = recorded(retry)
    async with serve_http(Script(post=[503, 200], flagged=[503, 200])) as server:
        async with Session(features=[retry]) as session:
            msg = Message("POST", server.url_for("/post"), body=b"order")
            await send(session, msg)
            assert (msg.status, len(server.requests), delays) == (503, 1, [])
            flagged = Message("POST", server.url_for("/flagged"), body=b"order")
            flagged.add_flags(MessageFlags.IDEMPOTENT)
            await send(session, flagged)
            assert flagged.status == 200
            assert [r.body for r in server.requests] == [b"order"] * 3
        await leak_check(session)


async def test_methods_and_statuses_are_configurable(leak_check: LeakCheck) -> None:
    retry = Retry(statuses=[500], methods=["post"])
    recorded(retry)
    async with serve_http(Script(a=[500, 200], b=[500, 200], c=[503, 200])) as server:
        async with Session(features=[retry]) as session:
            post = Message("POST", server.url_for("/a"), body=b"x")
            await send(session, post)
            get = Message("GET", server.url_for("/b"))
            await send(session, get)
            other = Message("POST", server.url_for("/c"), body=b"x")
            await send(session, other)
            assert (post.status, get.status, other.status) == (200, 500, 503)
        await leak_check(session)


async def test_a_streamed_body_that_went_out_is_not_sent_again(leak_check: LeakCheck) -> None:
    retry = Retry()
    delays = recorded(retry)

    async def body() -> Any:
        yield b"once"

    async with serve_http(Script(up=[503, 200])) as server:
        async with Session(features=[retry]) as session:
            msg = Message("PUT", server.url_for("/up"), body=body())
            await send(session, msg)
            assert (msg.status, len(server.requests), delays) == (503, 1, [])
        await leak_check(session)


async def test_retry_after_seconds_and_dates(leak_check: LeakCheck) -> None:
    retry = Retry(backoff_max=10)
    delays = recorded(retry)
    retry._clock = lambda: NOW
    date = email.utils.formatdate(NOW + 3, usegmt=True)
    script = Script(
        seconds=[(429, [("Retry-After", "2")], b""), 200],
        date=[(503, [("Retry-After", date)], b""), 200],
        bad=[(503, [("Retry-After", "whenever")], b""), 200],
        long=[(503, [("Retry-After", "11")], b""), 200],
    )
    async with serve_http(script) as server:
        async with Session(features=[retry]) as session:
            for path in ("/seconds", "/date", "/bad"):
                assert (await session.get(server.url_for(path))).status == 200
            assert delays == [2.0, 3.0, 0.5]  # the header, then the backoff
            long = await session.get(server.url_for("/long"))
            # More than backoff_max: no retry, the answer as it is.
            assert (long.status, long.response_headers.get_one("Retry-After")) == (503, "11")
            assert delays == [2.0, 3.0, 0.5]
        await leak_check(session)


async def test_retry_after_can_be_ignored(leak_check: LeakCheck) -> None:
    retry = Retry(respect_retry_after=False)
    delays = recorded(retry)
    async with serve_http(Script(x=[(503, [("Retry-After", "120")], b""), 200])) as server:
        async with Session(features=[retry]) as session:
            assert (await session.get(server.url_for("/x"))).status == 200
            assert delays == [0.5]
        await leak_check(session)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def answer_ok(stream: anyio.abc.SocketStream) -> None:
    async with stream:
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive()
        await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")


async def test_a_connect_error_is_retried_for_any_method(leak_check: LeakCheck) -> None:
    port = free_port()
    retry = Retry()
    listeners: list[anyio.abc.SocketListener] = []
    async with anyio.create_task_group() as tg:

        async def sleep(delay: float) -> None:
            # The server comes up while the client waits.
            listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=port)
            listeners.append(listener)
            tg.start_soon(listener.serve, answer_ok)

        retry._sleep = sleep
        async with Session(features=[retry]) as session:
            msg = Message("POST", f"http://127.0.0.1:{port}/", body=b"safe: nothing was sent")
            seen = restarts(msg)
            assert await send(session, msg) == b"ok"
            assert (msg.status, seen) == (200, [0])
        tg.cancel_scope.cancel()
    for listener in listeners:
        await listener.aclose()
    await leak_check(session)


async def test_connect_errors_raise_as_themselves_when_retries_run_out(
    leak_check: LeakCheck,
) -> None:
    retry = Retry(total=2)
    delays = recorded(retry)
    async with Session(features=[retry]) as session:
        msg = Message("GET", f"http://127.0.0.1:{free_port()}/")
        with pytest.raises(ConnectError) as caught:
            await send(session, msg)
        assert caught.value.message is msg
        assert delays == [0.5, 1.0]
        settled(session)
    await leak_check(session)


async def test_a_reset_is_retried_for_idempotent_methods_only(leak_check: LeakCheck) -> None:
    retry = Retry()
    delays = recorded(retry)
    async with serve_http(Script(get=["reset", 200], post=["reset", 200])) as server:
        async with Session(features=[retry]) as session:
            msg = Message("GET", server.url_for("/get"))
            assert await send(session, msg) == b"200 for /get"
            assert delays == [0.5]
            with pytest.raises(NetworkError):
                await send(session, Message("POST", server.url_for("/post"), body=b"x"))
            assert [r.target for r in server.requests] == ["/get", "/get", "/post"]
            settled(session)
        await leak_check(session)


async def test_timeouts_are_not_retried(leak_check: LeakCheck) -> None:
    retry = Retry()
    delays = recorded(retry)
    async with serve_http(Script(slow=["stall"])) as server:
        async with Session(features=[retry], timeout=0.2) as session:
            with pytest.raises(TimeoutError):
                await send(session, Message("GET", server.url_for("/slow")))
            assert (len(server.requests), delays) == (1, [])
        await leak_check(session)


async def test_retries_share_the_twenty_re_sends(leak_check: LeakCheck) -> None:
    retry = Retry(total=100, backoff_factor=0)
    recorded(retry)
    async with serve_http(Script(down=[503])) as server:
        async with Session(features=[retry]) as session:
            msg = Message("GET", server.url_for("/down"))
            with pytest.raises(TooManyRestarts, match="gave up after 20 re-sends") as caught:
                await send(session, msg)
            assert caught.value.message is msg
            assert len(server.requests) == 21
            settled(session)
        await leak_check(session)


async def test_each_redirect_hop_is_retried_on_its_own(leak_check: LeakCheck) -> None:
    retry = Retry()
    delays = recorded(retry)
    script = Script(hop1=[503, (302, [("Location", "/hop2")], b"")], hop2=[503, 200])
    async with serve_http(script) as server:
        async with Session(features=[retry]) as session:
            msg = Message("GET", server.url_for("/hop1"))
            seen = restarts(msg)
            assert await send(session, msg) == b"200 for /hop2"
            assert [r.target for r in server.requests] == ["/hop1", "/hop1", "/hop2", "/hop2"]
            assert seen == [503, 302, 503]
            assert delays == [0.5, 0.5]  # the count starts again on each hop
        await leak_check(session)


async def test_each_retry_gets_its_cookies_and_is_logged(leak_check: LeakCheck) -> None:
    retry = Retry()
    recorded(retry)
    lines: list[str] = []

    def printer(logger: Logger, level: LoggerLogLevel, direction: str, data: str) -> None:
        lines.append(f"{direction} {data}")

    logger = Logger(LoggerLogLevel.MINIMAL)
    logger.set_printer(printer)
    script = Script(x=[(503, [("Set-Cookie", "tried=1; Path=/")], b""), 200])
    async with serve_http(script) as server:
        async with Session(features=[retry, CookieJar(), logger]) as session:
            assert (await session.get(server.url_for("/x"))).status == 200
        await leak_check(session)
    assert [r.header("cookie") for r in server.requests] == [None, "tried=1"]
    interesting = [
        line
        for line in lines
        if line.startswith(("> GET", "< HTTP", "< ["))
        or (line.startswith("> Soup-Debug:") and "restarted" in line)
    ]
    assert interesting[0] == "> GET /x HTTP/1.1"
    assert interesting[1] == "< HTTP/1.1 503 Service Unavailable"
    assert interesting[2] == "< [retry 1 of 3 in 0.50 s after 503 Service Unavailable]"
    assert interesting[3] == "> GET /x HTTP/1.1"
    assert interesting[4].endswith(", restarted")
    assert interesting[5] == "< HTTP/1.1 200 OK"


async def test_a_large_discarded_body_drops_its_connection(leak_check: LeakCheck) -> None:
    retry = Retry()
    recorded(retry)
    big = (503, [("Content-Length", str(1 << 20))], b"x" * (1 << 20))
    async with serve_http(Script(big=[big, 200])) as server:
        async with Session(features=[retry]) as session:
            assert (await session.get(server.url_for("/big"))).status == 200
            assert server.connections == 2  # too much to drain: closed, not read
            settled(session)
        await leak_check(session)


async def test_the_wait_is_cancelled_by_a_cancel_scope(leak_check: LeakCheck) -> None:
    retry = Retry()  # the real anyio.sleep
    async with serve_http(Script(x=[(503, [("Retry-After", "20")], b"")], ok=[200])) as server:
        async with Session(features=[retry]) as session:
            start = anyio.current_time()
            with anyio.move_on_after(0.3) as scope:
                await session.send_and_read(Message("GET", server.url_for("/x")))
            assert scope.cancelled_caught
            assert anyio.current_time() - start < 5
            assert len(server.requests) == 1
            settled(session)
            assert (await session.get(server.url_for("/ok"))).status == 200
        await leak_check(session)


async def test_the_wait_is_cancelled_by_a_cancellable(leak_check: LeakCheck) -> None:
    retry = Retry()
    waiting = anyio.Event()

    async def sleep(delay: float) -> None:
        waiting.set()
        await anyio.sleep(delay)

    retry._sleep = sleep
    cancellable = Cancellable()
    async with serve_http(Script(x=[(503, [("Retry-After", "20")], b"")])) as server:
        async with Session(features=[retry]) as session, anyio.create_task_group() as tg:

            async def cancel_when_waiting() -> None:
                await waiting.wait()
                cancellable.cancel()

            tg.start_soon(cancel_when_waiting)
            msg = Message("GET", server.url_for("/x"))
            with anyio.fail_after(BOUND), pytest.raises(RequestCancelled) as caught:
                await session.send_and_read(msg, cancellable=cancellable)
            assert caught.value.message is msg
            settled(session)
        await leak_check(session)


async def test_session_abort_cancels_the_wait(leak_check: LeakCheck) -> None:
    retry = Retry()
    waiting = anyio.Event()

    async def sleep(delay: float) -> None:
        waiting.set()
        await anyio.sleep(delay)

    retry._sleep = sleep
    async with serve_http(Script(x=[(503, [("Retry-After", "20")], b"")], ok=[200])) as server:
        async with Session(features=[retry]) as session:
            msg = Message("GET", server.url_for("/x"))
            with anyio.fail_after(BOUND):
                async with anyio.create_task_group() as tg:

                    async def abort_when_waiting() -> None:
                        await waiting.wait()
                        session.abort()

                    tg.start_soon(abort_when_waiting)
                    with pytest.raises(RequestCancelled, match="session was aborted") as caught:
                        await session.send_and_read(msg)
            assert caught.value.message is msg
            assert len(server.requests) == 1  # no retry after the abort
            settled(session)
            assert (await session.get(server.url_for("/ok"))).status == 200
        await leak_check(session)


# -- the blocking session ----------------------------------------------------------------


@pytest.fixture(params=["asyncio", "trio"])
def loop_backend(request: pytest.FixtureRequest) -> str:
    """The event loop the blocking session runs in its thread."""
    return str(request.param)


@pytest.fixture
def flaky_server() -> Iterator[Server]:
    """A server whose ``/flaky`` answers 503 twice, in an asyncio loop in a thread."""
    with (
        anyio.from_thread.start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(serve_http(Script(flaky=[503, 503, 200]))) as running,
    ):
        yield running


def test_retry_in_the_blocking_session(loop_backend: str, flaky_server: Server) -> None:
    retry = Retry(backoff_factor=0.01)
    with anysoup.blocking.Session(backend=loop_backend, features=[retry]) as session:
        msg = session.get(flaky_server.url_for("/flaky"))
        assert (msg.status, msg.text) == (200, "200 for /flaky")
    assert len(flaky_server.requests) == 3
