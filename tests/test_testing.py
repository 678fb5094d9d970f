"""anysoup.testing: the mock router, with every feature running against its answers.

The matching rules are a table (no I/O). Everything else sends real messages
through real sessions on both backends: the router replaces only the
network, so redirects, auth, cookies, decoding and the Logger are the
session's own. Pass-through goes to a loopback server. The pytest plugin is
run with ``pytester`` under pytest-trio and under AnyIO's plugin.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import importlib.metadata
import re
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from servers import ReceivedRequest, ServerConnection, serve_http
from yarl import URL

import anysoup
from anysoup import (
    ConnectError,
    CookieJar,
    HTTPVersion,
    IncompleteBody,
    Logger,
    LoggerLogLevel,
    Message,
    MessageFlags,
    NetworkError,
    Session,
    WebsocketError,
    WebsocketErrorCode,
)
from anysoup.testing import (
    MockError,
    MockRouter,
    Request,
    Response,
    RoutesNotCalledError,
    UnmatchedRequestError,
)
from anysoup.testing._matching import Matcher

pytest_plugins = ["pytester"]

LeakCheck = Callable[[Session], Awaitable[None]]
API = "https://api.example.org"


async def fetch(session: Session, method: str, url: str, **kwargs: Any) -> tuple[Message, bytes]:
    msg = Message(method, url, **kwargs)
    return msg, await session.send_and_read(msg)


# -- matching, as a table --------------------------------------------------------------


def request(
    method: str = "GET",
    url: str = API + "/users?page=2&sort=name",
    headers: dict[str, str] | None = None,
    content: bytes = b"",
) -> Request:
    return Request(method, URL(url), anysoup.MessageHeaders(headers or {}), content)


MATCHES: list[tuple[dict[str, Any], Request, str | None]] = [
    ({}, request(), None),
    ({"method": "get"}, request(), None),
    ({"method": "POST"}, request(), "method is GET"),
    ({"url": API + "/users"}, request(), None),  # a URL without a query: any query
    ({"url": "HTTPS://API.example.org:443/users"}, request(), None),  # normalised
    ({"url": API + "/users?page=2"}, request(), None),  # its query: present in the request
    ({"url": API + "/users?page=3"}, request(), "query lacks page=3"),
    ({"url": API + "/user"}, request(), "path is '/users', not '/user'"),
    ({"url": "http://api.example.org/users"}, request(), "scheme is 'https'"),
    ({"url": API + ":8443/users"}, request(), "port is 443, not 8443"),
    ({"url": re.compile(r"https://api\.example\.org/users\?")}, request(), None),
    ({"url": re.compile(r"/users")}, request(), "URL does not match"),  # from the start
    ({"url_prefix": API + "/us"}, request(), None),
    ({"url_prefix": API + "/v1"}, request(), "URL does not start with"),
    ({"host": "api.example.org"}, request(), None),
    ({"host": "example.org"}, request(), "host is 'api.example.org'"),
    ({"host": re.compile(r"[a-z]+\.example\.org$")}, request(), None),
    ({"path": re.compile(r"/users$")}, request(), None),
    ({"path": "/users/"}, request(), "path is '/users'"),
    ({"params": {"sort": "name"}}, request(), None),
    ({"params": [("page", "2"), ("sort", "name")]}, request(), None),
    ({"params": {"page": ["2", "3"]}}, request(), "query lacks page=3"),
    ({"headers": {"x-token": "abc"}}, request(headers={"X-Token": "abc"}), None),
    ({"headers": {"X-Token": re.compile("a")}}, request(headers={"X-Token": "abc"}), None),
    ({"headers": {"X-Token": "secret"}}, request(headers={"X-Token": "abc"}), "differs"),
    ({"headers": {"X-Token": "abc"}}, request(), "header 'X-Token' is missing"),
    ({"json": {"a": [1, 2]}}, request(content=b'{"a": [1,2]}'), None),
    ({"json": None}, request(content=b"null"), None),
    ({"json": {"a": 1}}, request(content=b'{"a": 2}'), "the JSON body differs"),
    ({"json": {"a": 1}}, request(content=b"a=1"), "the body is not JSON"),
    ({"content": b"raw"}, request(content=b"raw"), None),
    ({"content": b"raw"}, request(content=b"other"), "the body differs (5 bytes)"),
    ({"url": "/users", "base_url": API}, request(), None),
    ({"url": "/users", "base_url": API + "/v1/"}, request(), "path is '/users'"),
]


@pytest.mark.parametrize(("criteria", "req", "expected"), MATCHES)
def test_matching_rules(criteria: dict[str, Any], req: Request, expected: str | None) -> None:
    mismatch = Matcher(**criteria).mismatch(req)
    if expected is None:
        assert mismatch is None
    else:
        assert mismatch is not None and expected in mismatch, mismatch
        assert "secret" not in mismatch  # a header's value may be a credential


@pytest.mark.parametrize(
    ("criteria", "error"),
    [
        ({"url": "/relative"}, ValueError),
        ({"url": API, "url_prefix": API}, ValueError),
        ({"url": 5}, TypeError),
        ({"host": b"x"}, TypeError),
        ({"params": "a=1"}, TypeError),
        ({"content": "text"}, TypeError),
        ({"method": 1}, TypeError),
    ],
)
def test_bad_criteria_are_refused(criteria: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        Matcher(**criteria)


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"status": 101}, "WebSocket"),
        ({"status": 100}, "informational"),
        ({"status": 600}, "not an HTTP status"),
        ({"text": "a", "json": 1}, "one of"),
        ({"status": 204, "content": b"x"}, "has no body"),
    ],
)
def test_bad_responses_are_refused(kwargs: dict[str, Any], text: str) -> None:
    with pytest.raises(ValueError, match=text):
        Response(**kwargs)
    with pytest.raises(TypeError, match="use text="):
        Response(content="str")  # type: ignore[arg-type]


def test_pass_through_hosts_are_parsed() -> None:
    router = MockRouter()
    router.pass_through("Example.org", "127.0.0.1:8080", "::1", "[::1]:81")
    assert router._passed_hosts == [
        ("example.org", None),
        ("127.0.0.1", 8080),
        ("::1", None),
        ("::1", 81),
    ]
    for bad in ("", "host:", "host:x", "[::1", "[::1]x", "[::1]:"):
        with pytest.raises(ValueError, match="not a host"):
            router.pass_through(bad)


# -- answers ---------------------------------------------------------------------------


async def test_routes_by_method_url_params_headers_and_json() -> None:
    with MockRouter() as router:
        get = router.get(API + "/items", params={"page": "2"}).respond(text="page 2")
        other = router.get(API + "/items").respond(text="any page")
        auth = router.get(API + "/me", headers={"X-Token": "t1"}).respond(json={"me": 1})
        post = router.post(API + "/items", json={"name": "a"}).respond(201, json={"id": 7})
        async with Session() as session:
            assert (await fetch(session, "GET", API + "/items?page=2"))[1] == b"page 2"
            assert (await fetch(session, "GET", API + "/items"))[1] == b"any page"
            msg, body = await fetch(session, "GET", API + "/me", headers={"X-Token": "t1"})
            assert body == b'{"me":1}'
            assert msg.response_headers.get_content_type() == ("application/json", {})
            msg = Message("POST", API + "/items")
            msg.set_request_body_from_bytes("application/json", b'{"name": "a"}')
            assert await session.send_and_read(msg) == b'{"id":7}'
            assert (msg.status, msg.reason_phrase) == (201, "Created")
    assert [r.call_count for r in (get, other, auth, post)] == [1, 1, 1, 1]


async def test_calls_are_recorded() -> None:
    router = MockRouter()
    route = router.post(API + "/upload").respond(204)
    async with Session(features=[router]) as session:
        msg = Message("POST", API + "/upload", headers={"X-Trace": "1"}, body=b"abc")
        assert await session.send_and_read(msg) == b""
        assert msg.status == 204
    assert route.called and route.call_count == 1
    call = route.calls.last
    assert call.message is msg and call.response is route.return_value
    assert call.request.method == "POST" and call.request.url == URL(API + "/upload")
    assert call.request.content == b"abc" and call.request.text == "abc"
    # What the core would have sent: Host first, the body's framing.
    assert next(iter(call.request.headers)) == ("Host", "api.example.org")
    assert call.request.headers["Content-Length"] == "3"
    assert call.request.headers["X-Trace"] == "1"
    assert router.calls == [call]
    router.reset()
    assert not route.called and not router.calls
    with pytest.raises(MockError, match="no call"):
        route.calls.last  # noqa: B018


async def test_response_bodies_and_framing() -> None:
    async def pieces() -> AsyncIterator[bytes]:
        yield b"one,"
        await anyio.lowlevel.checkpoint()
        yield b"two"

    router = MockRouter()
    router.get(API + "/html").respond(html="<p>é</p>", headers={"X-A": "1"}, reason="Fine")
    router.get(API + "/list").respond(content=[b"a", b"", b"b"])
    router.get(API + "/gen").mock(side_effect=lambda msg: Response(content=pieces()))
    router.route("HEAD", API + "/html").respond(content=b"12345")
    router.get(API + "/h2").respond(http_version=HTTPVersion.HTTP_2_0)
    async with Session(features=[router]) as session:
        msg, body = await fetch(session, "GET", API + "/html")
        assert body == "<p>é</p>".encode() and msg.reason_phrase == "Fine"
        assert msg.response_headers.get_list("Content-Type") == "text/html; charset=utf-8"
        assert msg.response_headers.get_content_length() == len(body)
        msg, body = await fetch(session, "GET", API + "/list")
        assert body == b"ab" and msg.response_headers["Transfer-Encoding"] == "chunked"
        chunks = []
        async with session.send(Message("GET", API + "/gen")) as stream:
            chunks = [chunk async for chunk in stream]
        assert chunks == [b"one,", b"two"]
        msg, body = await fetch(session, "HEAD", API + "/html")
        assert body == b"" and msg.response_headers.get_content_length() == 5
        msg, _ = await fetch(session, "GET", API + "/h2")
        assert msg.http_version is HTTPVersion.HTTP_2_0


async def test_side_effects() -> None:
    seen: list[str] = []

    def sync_effect(msg: Message) -> Response:
        seen.append(msg.uri.path)
        return Response(text="sync")

    async def async_effect(msg: Message) -> Response | None:
        await anyio.lowlevel.checkpoint()
        seen.append("async")
        return None  # the route's return_value

    router = MockRouter()
    router.get(API + "/sync").mock(side_effect=sync_effect)
    router.get(API + "/async").mock(Response(text="default"), side_effect=async_effect)
    router.get(API + "/class").mock(side_effect=ConnectError)
    error = NetworkError("connection reset by the mock")
    router.get(API + "/instance").mock(side_effect=error)
    sequence = router.get(API + "/seq").mock(
        side_effect=[Response(503), ConnectError("refused"), Response(text="third")]
    )
    router.get(API + "/other").mock(side_effect=KeyError)
    async with Session(features=[router]) as session:
        assert (await fetch(session, "GET", API + "/sync"))[1] == b"sync"
        assert (await fetch(session, "GET", API + "/async"))[1] == b"default"
        assert seen == ["/sync", "async"]
        msg = Message("GET", API + "/class")
        with pytest.raises(ConnectError, match="mocked ConnectError: GET https") as caught:
            await session.send_and_read(msg)
        assert caught.value.message is msg
        with pytest.raises(NetworkError) as raised:
            await session.send_and_read(Message("GET", API + "/instance"))
        assert raised.value is error
        assert (await fetch(session, "GET", API + "/seq"))[0].status == 503
        with pytest.raises(ConnectError, match="refused"):
            await session.send_and_read(Message("GET", API + "/seq"))
        assert (await fetch(session, "GET", API + "/seq"))[1] == b"third"
        with pytest.raises(MockError, match="side effects ran out after 3 calls"):
            await session.send_and_read(Message("GET", API + "/seq"))
        with pytest.raises(KeyError):
            await session.send_and_read(Message("GET", API + "/other"))
    assert sequence.call_count == 4
    with pytest.raises(TypeError, match="not a Response"):
        router.get(API).mock(side_effect=5)  # type: ignore[arg-type]


async def test_signals_metrics_and_unqueue_follow_a_network_exchange() -> None:
    router = MockRouter()
    router.post(API + "/x").respond(content=b"0123456789")
    async with Session(features=[router]) as session:
        msg = Message("POST", API + "/x", body=b"req")
        msg.add_flags(MessageFlags.COLLECT_METRICS)
        order: list[str] = []
        for name in (
            "starting",
            "wrote_headers",
            "wrote_body_data",
            "wrote_body",
            "got_headers",
            "got_body_data",
            "got_body",
            "finished",
        ):
            getattr(msg, name).connect(lambda m, *args, name=name: order.append(name))
        session.request_unqueued.connect(lambda s, m: order.append("request_unqueued"))
        stream = await session.send(msg)
        assert order[-1] == "got_headers"
        assert await stream.read() == b"0123456789"
        await stream.aclose()
    assert order == [
        "starting",
        "wrote_headers",
        "wrote_body_data",
        "wrote_body",
        "got_headers",
        "got_body_data",
        "got_body",
        "finished",
        "request_unqueued",
    ]
    metrics = msg.metrics
    assert metrics is not None
    assert metrics.request_body_size == metrics.request_body_bytes_sent == 3
    assert metrics.response_body_size == metrics.response_body_bytes_received == 10
    assert metrics.request_header_bytes_sent > 0 and metrics.response_header_bytes_received > 0
    assert 0 < metrics.fetch_start <= metrics.request_start <= metrics.response_start
    assert metrics.response_start <= metrics.response_end
    assert metrics.connect_start == metrics.dns_start == 0.0  # no connection was made


async def test_a_short_body_is_incomplete() -> None:
    router = MockRouter()
    router.get(API).respond(headers={"Content-Length": "10"}, content=b"abc")
    async with Session(features=[router]) as session:
        msg = Message("GET", API)
        finished: list[Message] = []
        msg.finished.connect(finished.append)
        with pytest.raises(IncompleteBody, match="after 3 of its 10 bytes") as caught:
            await session.send_and_read(msg)
        assert caught.value.message is msg and finished == [msg]
        assert not msg._queued


async def test_a_streamed_request_body_is_read_once() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"a"
        yield b"b"

    router = MockRouter()
    route = router.put(API + "/blob").respond()
    async with Session(features=[router]) as session:
        msg = Message("PUT", API + "/blob", body=body())
        written: list[bytes] = []
        msg.wrote_body_data.connect(lambda m, chunk: written.append(chunk))
        await session.send_and_read(msg)
    request = route.calls.last.request
    assert request.content == b"ab" == b"".join(written)
    assert request.headers["Transfer-Encoding"] == "chunked"
    assert msg.request_body is not None and not msg.request_body.replayable


async def test_cancelling_a_mocked_send() -> None:
    started = anyio.Event()

    async def stall(msg: Message) -> Response:
        started.set()
        await anyio.sleep_forever()
        raise AssertionError("not reached")

    router = MockRouter()
    router.get(API + "/slow").mock(side_effect=stall)
    router.get(API + "/fast").respond(text="fast")
    async with Session(features=[router]) as session:
        unqueued: list[Message] = []
        session.request_unqueued.connect(lambda s, m: unqueued.append(m))
        msg = Message("GET", API + "/slow")
        async with anyio.create_task_group() as tg:
            tg.start_soon(session.send_and_read, msg)
            await started.wait()
            tg.cancel_scope.cancel()
        assert unqueued == [msg] and not msg._queued
        assert (await fetch(session, "GET", API + "/fast"))[1] == b"fast"


# -- strictness ------------------------------------------------------------------------


async def test_an_unmatched_request_fails_with_the_routes_listed() -> None:
    router = MockRouter()
    router.get(API + "/users", params={"page": "1"})
    router.post(API + "/users", headers={"Authorization": "Bearer secret"}).respond()
    router.pass_through("127.0.0.1")
    with pytest.raises(UnmatchedRequestError) as caught, router:
        async with Session() as session:
            msg = Message("POST", API + "/users", headers={"Authorization": "Bearer x"})
            await session.send_and_read(msg)
    text = str(caught.value)
    assert text.splitlines() == [
        f"no route matches POST {API}/users",
        "routes (2), in order:",
        f"  1. GET {API}/users params=page=1: method is POST",
        f"  2. POST {API}/users headers=Authorization: header 'Authorization' differs",
        "passed through: 127.0.0.1",
        "Add a route for it, or pass its host through (router.pass_through('api.example.org')).",
    ]
    assert "secret" not in text
    assert not isinstance(caught.value, anysoup.Error)  # code under test can't swallow it


async def test_a_swallowed_unmatched_request_fails_at_exit() -> None:
    router = MockRouter()
    with pytest.raises(UnmatchedRequestError, match=r"1 request.*matched no route"), router:
        async with Session() as session:
            with contextlib.suppress(Exception):  # the code under test "handles" it
                await session.send_and_read(Message("GET", API + "/nothing"))
    assert router.calls[0].request.url.path == "/nothing"


async def test_lenient_routers_answer_an_empty_200() -> None:
    with MockRouter(assert_all_mocked=False) as router:
        async with Session() as session:
            msg, body = await fetch(session, "GET", API + "/anything")
    assert (msg.status, body) == (200, b"")
    assert router.calls.last.response is not None


def test_routes_never_called_fail_at_exit() -> None:
    router = MockRouter()
    router.get(API + "/a")
    router.get(API + "/b", optional=True)
    with pytest.raises(RoutesNotCalledError) as caught, router:
        pass
    assert str(caught.value).splitlines()[:2] == ["1 route(s) never called:", f"  GET {API}/a"]
    with MockRouter(assert_all_called=False) as lenient:
        lenient.get(API + "/a")
    with pytest.raises(KeyError), MockRouter() as failing:  # an error in the block goes first
        failing.get(API + "/a")
        raise KeyError("the test's own failure")


async def test_sessions_made_while_active_get_the_router() -> None:
    outer, inner = MockRouter(assert_all_called=False), MockRouter(assert_all_called=False)
    before = Session()
    with outer:
        outer.get(API).respond(text="outer")
        with inner:
            inner.get(API).respond(text="inner")
            nested = Session()
        during = Session(features=[inner])  # given explicitly: kept
        after_inner = Session()
    assert before.get_feature(MockRouter) is None
    assert nested.get_feature(MockRouter) is inner
    assert during.get_feature(MockRouter) is inner
    assert after_inner.get_feature(MockRouter) is outer
    assert Session().get_feature(MockRouter) is None
    async with nested, after_inner:  # one router serves several sessions
        assert (await fetch(nested, "GET", API))[1] == b"inner"
        assert (await fetch(after_inner, "GET", API))[1] == b"outer"
    inner.install(before)
    assert before.get_feature(MockRouter) is inner
    with pytest.raises(ValueError, match="already has"):
        outer.install(before)
    inner.uninstall(before)
    assert before.get_feature(MockRouter) is None


# -- the rest of the session against mocked answers ------------------------------------


async def test_redirects_follow_mocked_answers() -> None:
    router = MockRouter()
    old = router.post(API + "/old").respond(303, headers={"Location": "/new?from=old"})
    new = router.get(API + "/new", params={"from": "old"}).respond(text="moved")
    async with Session(features=[router]) as session:
        msg = Message("POST", API + "/old", body=b"form")
        restarted: list[str] = []
        msg.restarted.connect(lambda m: restarted.append(m.method))
        assert await session.send_and_read(msg) == b"moved"
    assert (msg.method, str(msg.uri), msg.status) == ("GET", API + "/new?from=old", 200)
    assert restarted == ["GET"] and old.call_count == new.call_count == 1
    assert new.calls.last.request.content == b""


async def test_cookies_are_stored_and_sent() -> None:
    router = MockRouter()
    router.post(API + "/login").respond(headers={"Set-Cookie": "sid=42; Path=/"})
    me = router.get(API + "/me", headers={"Cookie": "sid=42"}).respond(text="you")
    async with Session(features=[router, CookieJar()]) as session:
        await fetch(session, "POST", API + "/login")
        assert (await fetch(session, "GET", API + "/me"))[1] == b"you"
    assert me.called


async def test_basic_auth_answers_a_mocked_401() -> None:
    token = base64.b64encode(b"alice:pw").decode()
    router = MockRouter()
    ok = router.get(API + "/private", headers={"Authorization": f"Basic {token}"})
    ok.respond(text="secret data")
    challenge = router.get(API + "/private").respond(
        401, headers={"WWW-Authenticate": 'Basic realm="api"'}
    )

    def give(msg: Message, auth: anysoup.Auth, retrying: bool) -> bool:
        auth.authenticate("alice", "pw")
        return True

    async with Session(features=[router]) as session:
        msg = Message("GET", API + "/private")
        msg.authenticate.connect(give)
        assert await session.send_and_read(msg) == b"secret data"
        assert msg.status == 200
    assert challenge.call_count == 1 and ok.call_count == 1


async def test_a_gzip_body_is_decoded() -> None:
    router = MockRouter()
    route = router.get(API + "/gz").respond(
        headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"},
        content=gzip.compress(b"hello " * 100),
    )
    async with Session(features=[router]) as session:
        assert (await fetch(session, "GET", API + "/gz"))[1] == b"hello " * 100
    assert "gzip" in (route.calls.last.request.headers.get_list("Accept-Encoding") or "")


async def test_the_logger_shows_mocked_traffic() -> None:
    lines: list[str] = []
    logger = Logger(LoggerLogLevel.BODY)
    logger.set_printer(lambda log, level, direction, data: lines.append(f"{direction} {data}"))
    router = MockRouter()
    router.get(API + "/hello").respond(text="hi there")
    async with Session(features=[router, logger]) as session:
        await fetch(session, "GET", API + "/hello")
    assert "> GET /hello HTTP/1.1" in lines
    assert "> Host: api.example.org" in lines
    assert "< HTTP/1.1 200 OK" in lines
    assert "< Content-Type: text/plain; charset=utf-8" in lines
    assert "< hi there" in lines


async def test_websocket_handshakes_get_mocked_http_answers_only() -> None:
    router = MockRouter()
    router.get("wss://api.example.org/ws").respond(403, text="no")
    async with Session(features=[router]) as session:
        msg = Message("GET", "wss://api.example.org/ws")
        with pytest.raises(WebsocketError) as caught:
            await session.websocket_connect(msg)
        assert caught.value.code is WebsocketErrorCode.NOT_WEBSOCKET
        assert msg.response_body == b"no"


# -- the network, passed through -------------------------------------------------------


async def echo(conn: ServerConnection, req: ReceivedRequest) -> None:
    await conn.respond(200, [("Content-Type", "text/plain")], f"real {req.target}".encode())


async def test_pass_through_reaches_a_real_server(leak_check: LeakCheck) -> None:
    async def pieces() -> AsyncIterator[bytes]:
        yield b"streamed "
        yield b"body"

    bodies: list[bytes] = []

    async def record(conn: ServerConnection, req: ReceivedRequest) -> None:
        bodies.append(req.body)
        await echo(conn, req)

    async with serve_http(record) as server:
        router = MockRouter()
        mocked = router.get(server.url_for("/mocked")).respond(text="mocked")
        passed = router.route(url=server.url_for("/route")).pass_through()
        router.pass_through(f"127.0.0.1:{server.port}")
        async with Session(features=[router]) as session:
            assert (await fetch(session, "GET", server.url_for("/mocked")))[1] == b"mocked"
            assert (await fetch(session, "GET", server.url_for("/route")))[1] == b"real /route"
            _, body = await fetch(session, "POST", server.url_for("/any"), body=pieces())
            assert body == b"real /any"
        await leak_check(session)
    assert (
        mocked.called
        and passed.called
        and [r.target for r in server.requests]
        == [
            "/route",
            "/any",
        ]
    )
    assert bodies == [b"", b"streamed body"]
    assert router.calls.last.request.content == b"streamed body"


def test_blocking_sessions_are_mocked_too() -> None:
    with MockRouter() as router:
        router.get(API).respond(text="blocking")
        with anysoup.blocking.Session() as session:
            assert session.send_and_read(Message("GET", API)) == b"blocking"


# -- the pytest plugin, under pytest-trio and AnyIO's plugin ---------------------------


def plugin_args() -> list[str]:
    """Load the plugin by hand when anysoup was installed without its entry point."""
    points = importlib.metadata.entry_points(group="pytest11")
    if any(point.value == "anysoup.testing._plugin" for point in points):
        return ["-p", "no:cacheprovider"]
    return ["-p", "anysoup.testing._plugin", "-p", "no:cacheprovider"]


PASSING = """
import anyio
import pytest
import anysoup
import anysoup.blocking

URL = "https://api.example.org/thing"


async def get() -> bytes:
    async with anysoup.Session() as session:  # made by the code under test
        return await session.send_and_read(anysoup.Message("GET", URL))


@pytest.mark.trio
async def test_under_pytest_trio(anysoup_mock, nursery):
    anysoup_mock.get(URL).respond(text="trio")
    assert await get() == b"trio"


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_under_anyio(anysoup_mock, anyio_backend):
    anysoup_mock.get(URL).respond(text=anyio_backend)
    assert await get() == anyio_backend.encode()


def test_blocking(anysoup_mock):
    anysoup_mock.get(URL).respond(text="blocking")
    with anysoup.blocking.Session() as session:
        assert session.send_and_read(anysoup.Message("GET", URL)) == b"blocking"
    assert anysoup_mock.calls.last.request.url.path == "/thing"
"""

FAILING = """
import pytest
import anysoup

URL = "https://api.example.org/thing"


async def get() -> bytes:
    async with anysoup.Session() as session:
        return await session.send_and_read(anysoup.Message("GET", URL))


@pytest.mark.trio
async def test_uncalled(anysoup_mock):
    anysoup_mock.get(URL)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anysoup_mock(assert_all_called=False)
async def test_marker_turns_the_check_off(anysoup_mock, anyio_backend):
    anysoup_mock.get(URL)


@pytest.mark.trio
async def test_failing_itself(anysoup_mock):
    anysoup_mock.get(URL)
    assert False, "the test's own failure"


@pytest.mark.trio
async def test_unmatched(anysoup_mock):
    await get()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_swallowed(anysoup_mock, anyio_backend):
    try:
        await get()
    except Exception:
        pass
"""


def test_fixture_under_pytest_trio_and_anyio(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_passing=textwrap.dedent(PASSING))
    result = pytester.runpytest(*plugin_args(), "-W", "error")
    result.assert_outcomes(passed=4)


def test_fixture_checks_at_teardown(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_failing=textwrap.dedent(FAILING))
    result = pytester.runpytest(*plugin_args(), "-W", "error", "-rfE")
    result.assert_outcomes(passed=3, failed=2, errors=2)
    for line in (
        "ERROR test_failing.py::test_uncalled - *RoutesNotCalledError*",
        "ERROR test_failing.py::test_swallowed[[]trio[]] - *UnmatchedReques*",
        "FAILED test_failing.py::test_failing_itself - AssertionError*",
        "FAILED test_failing.py::test_unmatched - UnmatchedRequestError*",
    ):
        result.stdout.fnmatch_lines([line])
    text = result.stdout.str()
    assert "RoutesNotCalledError: 1 route(s) never called:" in text
    assert "UnmatchedRequestError: 1 request(s) matched no route" in text
    assert "UnmatchedRequestError: no route matches GET https://api.example.org/thing" in text


def test_the_plugin_is_declared_as_an_entry_point() -> None:
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert '[project.entry-points.pytest11]\nanysoup = "anysoup.testing._plugin"\n' in pyproject
    assert '    "pytest-trio>=' in pyproject
