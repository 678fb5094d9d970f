"""Retry against :class:`anysoup.testing.MockRouter`: every rule, no server.

The router answers at the network edge, inside every stage, so the Retry
stage, the cache, the Logger and the helpers run as they would on the wire;
only the answers are scripted (``side_effect`` sequences of responses and
exceptions). ``tests/test_retry.py`` checks the same rules once on the wire
(resets, stalls, drained connections); here they are checked exhaustively
and fast. Most tests record the waits instead of sleeping (``Retry._sleep``)
and take the top of each jitter range (``Retry._uniform``); the cancellation
tests keep the real ``anyio.sleep``. Every async test runs on both backends.
"""

from __future__ import annotations

import calendar
import email.utils
from collections.abc import AsyncIterator

import anyio
import anyio.lowlevel
import pytest

import anysoup.blocking
from anysoup import (
    Cache,
    CacheResult,
    Cancellable,
    ConnectError,
    Error,
    HTTPStatusError,
    Logger,
    LoggerLogLevel,
    Message,
    MessageFlags,
    NetworkError,
    ParsingError,
    RequestCancelled,
    Retry,
    Session,
    TimeoutError,
    TlsError,
    TooManyRestarts,
)
from anysoup.testing import MockRouter, Response

API = "https://api.example.org"
BOUND = 10.0
NOW = 1_800_000_000.0
#: 2027-01-15 08:00:00 GMT, a Friday.
JAN15 = float(calendar.timegm((2027, 1, 15, 8, 0, 0)))


def ceiling(low: float, high: float) -> float:
    """A "random" draw that always takes the top of the range."""
    return high


def recorded(retry: Retry) -> list[float]:
    """Make ``retry`` wait no time and take the top of each range; return its waits."""
    waits: list[float] = []

    async def sleep(delay: float) -> None:
        waits.append(delay)
        await anyio.lowlevel.checkpoint()

    retry._sleep = sleep
    retry._uniform = ceiling
    return waits


def restarts(msg: Message) -> list[int]:
    """The status each ``restarted`` handler saw (0: the attempt raised)."""
    seen: list[int] = []
    msg.restarted.connect(lambda m: seen.append(m.status))
    return seen


def unavailable(retry_after: str | None = None) -> Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else None
    return Response(503, headers=headers, text="try later")


async def send(session: Session, msg: Message) -> bytes:
    with anyio.fail_after(BOUND):
        return await session.send_and_read(msg)


# -- statuses and Retry-After ---------------------------------------------------------


async def test_statuses_are_retried_with_exponential_waits() -> None:
    retry = Retry()
    waits = recorded(retry)
    router = MockRouter()
    route = router.get(API + "/flaky").mock(
        side_effect=[Response(429), Response(502), Response(504), Response(text="done")]
    )
    async with Session(features=[router, retry]) as session:
        msg = Message("GET", API + "/flaky")
        seen = restarts(msg)
        assert await send(session, msg) == b"done"
    assert (msg.status, seen, waits) == (200, [429, 502, 504], [0.5, 1.0, 2.0])
    assert route.call_count == 4
    # Every attempt is the same request: nothing of the failed answers leaks in.
    assert {call.request.url for call in route.calls} == {msg.uri}
    assert all(call.request.content == b"" for call in route.calls)


@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [
        ("2", 2.0),
        (" 7 ", 7.0),  # optional whitespace around the value (RFC 9110 §5.5)
        ("0", 0.0),
        # The three HTTP-date forms (RFC 9110 §5.6.7), "now" being JAN15.
        ("Fri, 15 Jan 2027 08:00:03 GMT", 3.0),  # IMF-fixdate
        ("Friday, 15-Jan-27 08:00:04 GMT", 4.0),  # RFC 850
        ("Fri Jan 15 08:00:05 2027", 5.0),  # asctime
        ("Thu, 14 Jan 2027 08:00:00 GMT", 0.0),  # in the past: now
        ("whenever", 0.5),  # unparsable: the backoff
        ("-5", 0.5),
        ("", 0.5),
    ],
)
async def test_retry_after_seconds_and_http_dates(retry_after: str, wait: float) -> None:
    retry = Retry(backoff_max=10)
    waits = recorded(retry)
    retry._clock = lambda: JAN15
    router = MockRouter()
    route = router.get(API + "/r").mock(side_effect=[unavailable(retry_after), Response()])
    async with Session(features=[router, retry]) as session:
        msg = await session.get(API + "/r")
    assert (msg.status, route.call_count, waits) == (200, 2, [wait])


async def test_a_retry_after_longer_than_backoff_max_ends_the_retries() -> None:
    retry = Retry(backoff_max=10)
    waits = recorded(retry)
    retry._clock = lambda: NOW
    later = email.utils.formatdate(NOW + 60, usegmt=True)
    router = MockRouter()
    seconds = router.get(API + "/seconds").mock(side_effect=[unavailable("11"), Response()])
    date = router.get(API + "/date").mock(side_effect=[unavailable(later), Response()])
    async with Session(features=[router, retry]) as session:
        for path, value in (("/seconds", "11"), ("/date", later)):
            msg = await session.get(API + path)
            # The answer as it is, with its header, for the program to decide.
            assert (msg.status, msg.text) == (503, "try later")
            assert msg.response_headers.get_one("Retry-After") == value
    assert (seconds.call_count, date.call_count, waits) == (1, 1, [])


async def test_retry_after_is_ignored_when_told() -> None:
    retry = Retry(respect_retry_after=False)
    waits = recorded(retry)
    router = MockRouter()
    router.get(API).mock(side_effect=[unavailable("120"), Response()])
    async with Session(features=[router, retry]) as session:
        assert (await session.get(API)).status == 200
    assert waits == [0.5]


async def test_other_statuses_are_answers() -> None:
    retry = Retry()
    waits = recorded(retry)
    router = MockRouter()
    routes = [router.get(f"{API}/{status}").respond(status) for status in (400, 404, 500, 501)]
    async with Session(features=[router, retry]) as session:
        for status in (400, 404, 500, 501):
            assert (await session.get(f"{API}/{status}")).status == status
    assert [route.call_count for route in routes] == [1, 1, 1, 1]
    assert waits == []


async def test_statuses_and_methods_are_configurable() -> None:
    retry = Retry(statuses=[500], methods=["post"])
    waits = recorded(retry)
    router = MockRouter()
    router.post(API + "/a").mock(side_effect=[Response(500), Response(201)])
    router.get(API + "/b").mock(side_effect=[Response(500), Response()])
    router.post(API + "/c").mock(side_effect=[Response(503), Response()])
    async with Session(features=[router, retry]) as session:
        post = await session.post(API + "/a", json={})
        get = await session.get(API + "/b")  # GET is not among the methods now
        other = await session.post(API + "/c", json={})  # 503 is not among the statuses
    assert (post.status, get.status, other.status, waits) == (201, 500, 503, [0.5])


# -- methods ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "retried"),
    [
        ("GET", True),
        ("HEAD", True),
        ("OPTIONS", True),
        ("PUT", True),
        ("DELETE", True),
        ("TRACE", True),
        ("PROPFIND", True),
        ("POST", False),
        ("PATCH", False),
        ("LOCK", False),
    ],
)
async def test_only_idempotent_methods_are_retried_after_a_status(
    method: str, retried: bool
) -> None:
    retry = Retry()
    recorded(retry)
    router = MockRouter()
    route = router.route(method, API + "/x").mock(side_effect=[Response(503), Response(200)])
    async with Session(features=[router, retry]) as session:
        msg = await session.request(method, API + "/x")
    assert (msg.status, route.call_count) == ((200, 2) if retried else (503, 1))
    assert [call.request.method for call in route.calls] == [method] * route.call_count


async def test_a_message_flagged_idempotent_is_retried_whatever_its_method() -> None:
    retry = Retry()
    waits = recorded(retry)
    router = MockRouter()
    route = router.post(API + "/orders", headers={"Idempotency-Key": "k-1"}).mock(
        side_effect=[Response(503), NetworkError("reset"), Response(201)]
    )
    async with Session(features=[router, retry]) as session:
        msg = Message("POST", API + "/orders", headers={"Idempotency-Key": "k-1"})
        msg.set_request_body_from_bytes("application/json", b'{"item":1}')
        msg.add_flags(MessageFlags.IDEMPOTENT)
        seen = restarts(msg)
        await send(session, msg)
    assert (msg.status, seen, waits) == (201, [503, 0], [0.5, 1.0])
    # The same body each time: bytes are replayable.
    assert [call.request.content for call in route.calls] == [b'{"item":1}'] * 3


async def test_a_streamed_body_that_went_out_is_not_sent_again() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"once"

    retry = Retry()
    waits = recorded(retry)
    router = MockRouter()
    route = router.put(API + "/blob").mock(side_effect=[Response(503), Response()])
    async with Session(features=[router, retry]) as session:
        msg = await session.put(API + "/blob", content=body())
    assert (msg.status, route.call_count, waits) == (503, 1, [])
    assert route.calls.last.request.content == b"once"


# -- errors as side effects ---------------------------------------------------------------


async def test_connect_errors_are_retried_for_any_method() -> None:
    retry = Retry()
    waits = recorded(retry)
    router = MockRouter()
    route = router.post(API + "/pay").mock(
        side_effect=[ConnectError, ConnectError("refused"), Response(201, json={"id": 1})]
    )
    async with Session(features=[router, retry]) as session:
        msg = Message("POST", API + "/pay", body=b"nothing was sent")
        seen = restarts(msg)
        assert await send(session, msg) == b'{"id":1}'
    assert (msg.status, seen, waits) == (201, [0, 0], [0.5, 1.0])
    assert route.call_count == 3


@pytest.mark.parametrize(
    ("error_class", "method", "retried"),
    [
        (NetworkError, "GET", True),  # reset before the response
        (NetworkError, "POST", False),
        (TimeoutError, "GET", False),
        (TlsError, "GET", False),
        (ParsingError, "GET", False),
        (HTTPStatusError, "GET", False),  # a status error is not a failure to send
    ],
)
async def test_which_errors_are_retried(
    error_class: type[Error], method: str, retried: bool
) -> None:
    retry = Retry()
    waits = recorded(retry)
    error = error_class("scripted")
    router = MockRouter()
    route = router.route(method, API).mock(side_effect=[error, Response(text="second")])
    async with Session(features=[router, retry]) as session:
        msg = Message(method, API)
        if retried:
            assert await send(session, msg) == b"second"
            assert waits == [0.5]
        else:
            with pytest.raises(error_class) as caught:
                await send(session, msg)
            assert caught.value is error and caught.value.message is msg
            assert waits == []
    assert route.call_count == (2 if retried else 1)


async def test_a_non_anysoup_exception_is_not_retried() -> None:
    retry = Retry()
    recorded(retry)
    router = MockRouter()
    route = router.get(API).mock(side_effect=[OSError("raw"), Response()])
    async with Session(features=[router, retry]) as session:
        with pytest.raises(OSError, match="raw"):
            await send(session, Message("GET", API))
    assert route.call_count == 1


# -- limits -------------------------------------------------------------------------------


async def test_the_total_limit_returns_the_last_answer() -> None:
    retry = Retry(total=2)
    waits = recorded(retry)
    router = MockRouter()
    route = router.get(API + "/down").respond(503, text="still down")
    async with Session(features=[router, retry]) as session:
        msg = await session.get(API + "/down")
        assert (msg.status, msg.text, waits) == (503, "still down", [0.5, 1.0])
        with pytest.raises(HTTPStatusError, match="server error 503 Service Unavailable"):
            msg.raise_for_status()
    assert route.call_count == 3


async def test_the_total_limit_raises_the_last_error_as_itself() -> None:
    retry = Retry(total=2)
    waits = recorded(retry)
    router = MockRouter()
    last = ConnectError("third refusal")
    route = router.get(API).mock(side_effect=[ConnectError, ConnectError, last])
    async with Session(features=[router, retry]) as session:
        msg = Message("GET", API)
        with pytest.raises(ConnectError) as caught:
            await send(session, msg)
    assert caught.value is last and caught.value.message is msg
    assert (route.call_count, waits) == (3, [0.5, 1.0])


async def test_total_zero_never_retries() -> None:
    retry = Retry(total=0)
    waits = recorded(retry)
    router = MockRouter()
    route = router.get(API).mock(side_effect=[Response(503), Response()])
    async with Session(features=[router, retry]) as session:
        assert (await session.get(API)).status == 503
    assert (route.call_count, waits) == (1, [])


async def test_retries_share_the_twenty_re_sends() -> None:
    retry = Retry(total=100, backoff_factor=0)
    recorded(retry)
    router = MockRouter()
    route = router.get(API).respond(503)
    async with Session(features=[router, retry]) as session:
        msg = Message("GET", API)
        with pytest.raises(TooManyRestarts, match="gave up after 20 re-sends") as caught:
            await send(session, msg)
    assert caught.value.message is msg
    assert route.call_count == 21


async def test_redirects_and_retries_share_the_budget() -> None:
    retry = Retry(total=100, backoff_factor=0)
    recorded(retry)
    router = MockRouter()
    hops = [Response(302, headers={"Location": f"/hop{n + 1}"}) for n in range(10)]
    for n, hop in enumerate(hops):
        router.get(f"{API}/hop{n}").respond(hop.status, headers=hop.headers)
    last = router.get(f"{API}/hop10").respond(503)
    async with Session(features=[router, retry]) as session:
        with pytest.raises(TooManyRestarts):
            await send(session, Message("GET", API + "/hop0"))
    # 10 redirects, then 10 retries of the last hop: the 21st re-send is refused.
    assert last.call_count == 11


async def test_each_redirect_hop_is_retried_on_its_own() -> None:
    retry = Retry()
    waits = recorded(retry)
    router = MockRouter()
    first = router.get(API + "/hop1").mock(
        side_effect=[Response(503), Response(302, headers={"Location": "/hop2"})]
    )
    second = router.get(API + "/hop2").mock(side_effect=[ConnectError, Response(text="there")])
    async with Session(features=[router, retry]) as session:
        msg = Message("GET", API + "/hop1")
        seen = restarts(msg)
        assert await send(session, msg) == b"there"
    assert (first.call_count, second.call_count) == (2, 2)
    assert seen == [503, 302, 0]
    assert waits == [0.5, 0.5]  # the count starts again on each hop
    assert str(msg.uri) == API + "/hop2"


# -- the restarted signal, the Logger, the cache ------------------------------------------


async def test_restarted_handlers_see_the_answer_that_caused_the_retry() -> None:
    retry = Retry()
    recorded(retry)
    router = MockRouter()
    router.get(API).mock(
        side_effect=[
            Response(503, headers={"Retry-After": "1", "X-Attempt": "1"}),
            Response(429, headers={"X-Attempt": "2"}),
            Response(headers={"X-Attempt": "3"}),
        ]
    )
    seen: list[tuple[int, str | None]] = []
    async with Session(features=[router, retry]) as session:
        msg = Message("GET", API)
        msg.restarted.connect(
            lambda m: seen.append((m.status, m.response_headers.get_one("X-Attempt")))
        )
        await send(session, msg)
    assert seen == [(503, "1"), (429, "2")]
    # After the last retry the message holds only the final answer.
    assert (msg.status, msg.response_headers.get_one("X-Attempt")) == (200, "3")
    assert msg.response_headers.get_one("Retry-After") is None


async def test_the_logger_notes_each_retry() -> None:
    lines: list[str] = []
    logger = Logger(LoggerLogLevel.MINIMAL)
    logger.set_printer(lambda log, level, direction, data: lines.append(f"{direction} {data}"))
    retry = Retry()
    recorded(retry)
    router = MockRouter()
    router.get(API + "/x").mock(
        side_effect=[
            ConnectError("refused"),
            Response(503, headers={"Retry-After": "2"}),
            Response(),
        ]
    )
    async with Session(features=[router, retry, logger]) as session:
        assert (await session.get(API + "/x")).status == 200
    notes = [line for line in lines if line.startswith("< [")]
    assert notes == [
        "< [request failed: ConnectError: refused]",
        "< [retry 1 of 3 in 0.50 s after refused]",
        "< [retry 2 of 3 in 2.00 s after 503 Service Unavailable]",
    ]
    requests = [line for line in lines if line.startswith("> GET")]
    assert requests == ["> GET /x HTTP/1.1"] * 3
    restarted = [
        line for line in lines if line.startswith("> Soup-Debug:") and "restarted" in line
    ]
    assert len(restarted) == 2
    assert lines.index(notes[2]) < lines.index("< HTTP/1.1 200 OK")


async def test_a_cached_503_is_not_answered_again_to_a_retry() -> None:
    retry = Retry()
    waits = recorded(retry)
    router = MockRouter()
    cacheable = {"Cache-Control": "max-age=600", "Date": email.utils.formatdate(usegmt=True)}
    route = router.get(API + "/c").mock(
        side_effect=[Response(503, headers=cacheable), Response(headers=cacheable, text="fresh")]
    )
    async with Session(features=[router, retry, Cache()]) as session:
        msg = await session.get(API + "/c")
        assert (msg.status, msg.text, waits) == (200, "fresh", [0.5])
        again = await session.get(API + "/c")
        assert (again.text, again.cache_result) == ("fresh", CacheResult.HIT)
    assert route.call_count == 2


# -- cancelling the wait ------------------------------------------------------------------


async def test_a_cancel_scope_cancels_the_real_wait() -> None:
    router = MockRouter()
    route = router.get(API + "/x").respond(503, headers={"Retry-After": "20"})
    router.get(API + "/ok").respond(text="ok")
    async with Session(features=[router, Retry()]) as session:  # the real anyio.sleep
        unqueued: list[Message] = []
        session.request_unqueued.connect(lambda s, m: unqueued.append(m))
        msg = Message("GET", API + "/x")
        start = anyio.current_time()
        with anyio.move_on_after(0.2) as scope:
            await session.send_and_read(msg)
        assert scope.cancelled_caught
        assert anyio.current_time() - start < 5
        assert route.call_count == 1 and unqueued == [msg] and not msg._queued
        assert (await session.get(API + "/ok")).text == "ok"


async def test_a_cancellable_cancels_the_wait() -> None:
    retry = Retry()
    waiting = anyio.Event()

    async def sleep(delay: float) -> None:
        waiting.set()
        await anyio.sleep_forever()

    retry._sleep = sleep
    cancellable = Cancellable()
    router = MockRouter()
    route = router.get(API).respond(503)
    async with Session(features=[router, retry]) as session, anyio.create_task_group() as tg:

        async def cancel_when_waiting() -> None:
            await waiting.wait()
            cancellable.cancel()

        tg.start_soon(cancel_when_waiting)
        with anyio.fail_after(BOUND), pytest.raises(RequestCancelled) as caught:
            await session.get(API, cancellable=cancellable)
    assert caught.value.message is not None and caught.value.message.status == 503
    assert route.call_count == 1


async def test_session_abort_cancels_the_wait() -> None:
    retry = Retry()
    waiting = anyio.Event()

    async def sleep(delay: float) -> None:
        waiting.set()
        await anyio.sleep_forever()

    retry._sleep = sleep
    router = MockRouter()
    route = router.get(API).respond(503)
    outcome: list[BaseException] = []
    async with Session(features=[router, retry]) as session, anyio.create_task_group() as tg:

        async def call() -> None:
            try:
                await session.get(API)
            except Error as exc:
                outcome.append(exc)

        tg.start_soon(call)
        with anyio.fail_after(BOUND):
            await waiting.wait()
            session.abort()
    assert len(outcome) == 1 and isinstance(outcome[0], RequestCancelled), outcome
    assert str(outcome[0]) == f"GET {API}: the session was aborted"
    assert route.call_count == 1  # no retry after the abort


# -- the blocking session -----------------------------------------------------------------


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_retry_in_the_blocking_session(backend: str) -> None:
    retry = Retry(backoff_factor=0.001)
    with MockRouter() as router:
        route = router.get(API + "/flaky").mock(
            side_effect=[ConnectError, Response(503), Response(text="blocking ok")]
        )
        with anysoup.blocking.Session(backend=backend, features=[retry]) as session:
            msg = session.get(API + "/flaky")
    assert (msg.status, msg.text, route.call_count) == (200, "blocking ok", 3)
