"""The request helpers (``Session.request``, ``get``, ``post``, …) and what reads their bodies.

Tables first (the method rule, URL joining and scheme errors, building the
message, ``text``/``json()``/``raise_for_status()``), then on the wire
against the scripted h11 server on both backends (every helper, bodies,
``base_url``, the features they go through, limits and cancellation), then
each helper once against httpbin, then the blocking session's helpers (also
once against httpbin). ``tests/test_requests_mocked.py`` checks what the
helpers send and read through the mock router.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import anyio.from_thread
import pytest
from servers import ReceivedRequest, Server, ServerConnection, serve_http
from yarl import URL

import anysoup
import anysoup.blocking
from anysoup import (
    BodyTooLarge,
    Cancellable,
    CookieJar,
    Error,
    HTTPStatusError,
    Logger,
    LoggerLogLevel,
    Message,
    Multipart,
    RequestCancelled,
    Session,
)
from anysoup._model.request_args import base_url_from, build_request, join_url

LeakCheck = Callable[[Session], Awaitable[None]]
BOUND = 10.0
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"

# -- the method rule -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("GET", "GET"),
        ("get", "GET"),
        ("Get", "GET"),
        ("post", "POST"),
        ("patch", "PATCH"),
        ("delete", "DELETE"),
        ("options", "OPTIONS"),
        ("head", "HEAD"),
        ("put", "PUT"),
        ("connect", "CONNECT"),
        ("trace", "TRACE"),
        # Extension methods are case-sensitive (RFC 9110 §9.1): kept as given.
        ("PROPFIND", "PROPFIND"),
        ("propfind", "propfind"),
        ("M-SEARCH", "M-SEARCH"),
        ("m-search", "m-search"),
    ],
)
def test_registered_methods_are_upper_cased(given: str, sent: str) -> None:
    assert Message(given, "http://h.test/").method == sent
    msg = Message("GET", "http://h.test/")
    msg.set_method(given)
    assert msg.method == sent
    assert build_request(given, "http://h.test/").method == sent


@pytest.mark.parametrize("bad", ["", "GE T", "GET\r\n", "caf\u00e9", None, 1])
def test_a_method_must_be_a_token(bad: Any) -> None:
    with pytest.raises(ValueError, match="is not an HTTP method"):
        Message(bad, "http://h.test/")
    with pytest.raises(ValueError, match="is not an HTTP method"):
        Message("GET", "http://h.test/").set_method(bad)


def test_a_lower_case_form_method_puts_the_form_in_the_query() -> None:
    msg = Message.new_from_encoded_form("get", "http://h.test/p?old=1", "a=1&b=2")
    assert (msg.method, msg.uri.raw_query_string, msg.request_body) == ("GET", "a=1&b=2", None)


# -- URLs: scheme errors, base_url --------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("127.0.0.1:8080/x", "'127.0.0.1:8080/x' has no scheme; did you mean 'http://127.0.0.1:8080/x'?"),
        ("localhost:8080", "'localhost:8080' has no scheme; did you mean 'http://localhost:8080'?"),
        ("localhost/x", "has no scheme; did you mean 'http://localhost/x'?"),
        ("example.org/a", "has no scheme; did you mean 'http://example.org/a'?"),
        ("[::1]:80/x", "has no scheme; did you mean 'http://[::1]:80/x'?"),
        ("/p", "'/p' is a relative reference; an absolute http(s) URI is needed"),
        ("mailto:a@b.test", "has scheme 'mailto', not http(s) or ws(s)"),
        ("ftp://h.test/", "has scheme 'ftp', not http(s) or ws(s)"),
    ],
)  # fmt: skip
def test_a_url_without_a_scheme_says_so(url: str, error: str) -> None:
    with pytest.raises(ValueError) as caught:
        Message("GET", url)
    assert error in str(caught.value)


@pytest.mark.parametrize(
    ("base", "url", "joined"),
    [
        ("http://h.test/v1", "users", "http://h.test/v1/users"),
        ("http://h.test/v1", "/users", "http://h.test/v1/users"),
        ("http://h.test/v1/", "users/7?x=1#top", "http://h.test/v1/users/7?x=1#top"),
        ("http://h.test/v1/", "", "http://h.test/v1/"),
        ("http://h.test/v1/", "?q=a", "http://h.test/v1/?q=a"),
        ("http://h.test", "users", "http://h.test/users"),
        ("http://h.test/v1", "data.json", "http://h.test/v1/data.json"),
        ("http://h.test/v1", URL("rel/x"), "http://h.test/v1/rel/x"),
        # An absolute URL is used as it is.
        ("http://h.test/v1", "https://other.test/x", "https://other.test/x"),
        (None, "https://other.test/x", "https://other.test/x"),
    ],
)
def test_base_url_join(base: str | None, url: str | URL, joined: str) -> None:
    assert str(join_url(base_url_from(base), url)) == joined


@pytest.mark.parametrize(
    ("base", "url", "error"),
    [
        (None, "users", "url: 'users' is relative; give an absolute http(s) URL, or a base_url"),
        (None, "example.org/x", "did you mean 'http://example.org/x'?"),
        ("http://h.test/", "127.0.0.1:80/x", "did you mean 'http://127.0.0.1:80/x'?"),
    ],
)
def test_join_errors(base: str | None, url: str, error: str) -> None:
    with pytest.raises(ValueError) as caught:
        join_url(base_url_from(base), url)
    assert error in str(caught.value)


@pytest.mark.parametrize(
    ("base", "error"),
    [
        ("h.test/v1", "has no scheme"),
        ("http://h.test/v1?x=1", "has a query or fragment"),
        ("http://h.test/v1#f", "has a query or fragment"),
        ("users", "relative"),
    ],
)
def test_bad_base_urls(base: str, error: str) -> None:
    with pytest.raises(ValueError, match="base_url") as caught:
        Session(base_url=base)
    assert error in str(caught.value)


def test_base_url_property() -> None:
    session = Session(base_url="http://h.test/v1")
    assert session.base_url == URL("http://h.test/v1/")
    session.base_url = None
    assert session.base_url is None
    assert Session().base_url is None


# -- building the message -----------------------------------------------------------------


def test_params_go_after_the_urls_query() -> None:
    msg = build_request("GET", "http://h.test/p?a=1", params={"b": "x y", "c": [1, 2]})
    assert msg.uri.raw_query_string == "a=1&b=x+y&c=1&c=2"
    msg = build_request("GET", "http://h.test/p", params=[("k", "1"), ("k", "é&")])
    assert msg.uri.query.getall("k") == ["1", "é&"]


@pytest.mark.parametrize(
    ("kwargs", "body", "content_type"),
    [
        ({"json": {"a": [1, None], "é": "ü"}}, '{"a":[1,null],"é":"ü"}'.encode(), JSON),
        ({"json": []}, b"[]", JSON),
        ({"json": 0}, b"0", JSON),
        ({"data": {"a": "1 2", "b": ["x", "y"]}}, b"a=1+2&b=x&b=y", FORM),
        ({"data": [("a", "1"), ("a", "&")]}, b"a=1&a=%26", FORM),
        ({"data": {}}, b"", FORM),
        ({"content": b"raw"}, b"raw", None),
        ({"content": "caf\u00e9"}, "caf\u00e9".encode(), None),
    ],
)  # fmt: skip
def test_bodies(kwargs: dict[str, Any], body: bytes, content_type: str | None) -> None:
    msg = build_request("POST", "http://h.test/", **kwargs)
    assert msg.request_body is not None
    assert msg.request_body.data == body
    assert msg.request_headers.get_one("Content-Type") == content_type


def test_the_programs_content_type_wins() -> None:
    headers = {"Content-Type": "application/vnd.api+json"}
    msg = build_request("POST", "http://h.test/", json={"a": 1}, headers=headers)
    assert msg.request_headers.get_all("Content-Type") == ["application/vnd.api+json"]
    msg = build_request("POST", "http://h.test/", data={"a": 1}, headers=[("content-type", "x/y")])
    assert msg.request_headers.get_all("Content-Type") == ["x/y"]


def test_a_multipart_body() -> None:
    multipart = Multipart("multipart/form-data")
    multipart.append_form_string("name", "value")
    msg = build_request("POST", "http://h.test/", data=multipart)
    content_type = msg.request_headers.get_content_type()
    assert content_type is not None and content_type[0] == "multipart/form-data"
    assert msg.request_body is not None and msg.request_body.data is not None
    assert b'name="name"\r\n\r\nvalue\r\n' in msg.request_body.data


def test_a_streamed_content_body() -> None:
    msg = build_request("PUT", "http://h.test/", content=iter([b"a", b"b"]))
    assert msg.request_body is not None and not msg.request_body.replayable


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"json": {"a": 1}, "data": {"b": 2}}, ValueError, "give one body, not json and data"),
        ({"data": {}, "content": b""}, ValueError, "give one body, not data and content"),
        ({"json": float("nan")}, ValueError, "json: Out of range float"),
        ({"data": "a=1"}, TypeError, "data: str is not a form.*content="),
        ({"data": b"a=1"}, TypeError, "data: bytes is not a form"),
        ({"data": 5}, TypeError, "data: "),
        ({"params": "a=1"}, TypeError, "params: a str is not a mapping"),
        ({"params": {"a": None}}, TypeError, "params: "),
        ({"params": {"a": True}}, TypeError, "params: "),
        ({"json": {1j}}, TypeError, "not JSON serializable"),
        ({"content": {"a": 1}}, TypeError, "body: dict"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        build_request("POST", "http://h.test/", **kwargs)


# -- text, json(), raise_for_status() ------------------------------------------------------


def answered(
    body: bytes | None, content_type: str | None = None, status: int = 200, reason: str = ""
) -> Message:
    msg = Message("GET", "http://user:secret@h.test/p?q=1")
    msg.status, msg.reason_phrase, msg.response_body = status, reason, body
    if content_type is not None:
        msg.response_headers.append("Content-Type", content_type)
    return msg


@pytest.mark.parametrize(
    ("content_type", "body", "text"),
    [
        (None, "café".encode(), "café"),
        ("text/plain", "café".encode(), "café"),
        ("text/plain; charset=iso-8859-1", "café".encode("latin-1"), "café"),
        ('text/html; charset="Windows-1252"', b"\x80", "\u20ac"),
        ("text/plain; charset=utf-16", "hé".encode("utf-16"), "hé"),
        ("application/json", '{"é":1}'.encode(), '{"é":1}'),
        # A byte order mark wins over the label (WHATWG Encoding §6).
        ("text/plain; charset=iso-8859-1", codecs.BOM_UTF8 + "é".encode(), "é"),
        (None, codecs.BOM_UTF16_LE + "hé".encode("utf-16-le"), "hé"),
        (None, codecs.BOM_UTF16_BE + "hé".encode("utf-16-be"), "hé"),
        # Undecodable bytes and unknown labels never raise.
        (None, b"ok \xff\xfe!", "ok \ufffd\ufffd!"),
        ("text/plain; charset=x-no-such", "é".encode(), "é"),
        ("text/plain; charset=", b"a", "a"),
        ("not a type", b"a", "a"),
        (None, b"", ""),
    ],
)
def test_text(content_type: str | None, body: bytes, text: str) -> None:
    assert answered(body, content_type).text == text


def test_json() -> None:
    assert answered(b'{"a": [1, 2.5, null]}').json() == {"a": [1, 2.5, None]}
    assert answered('"é"'.encode("utf-16")).json() == "é"  # json.loads detects UTF-16
    assert answered(b'{"a": 1.5}').json(parse_float=str) == {"a": "1.5"}
    with pytest.raises(ValueError, match="Expecting value"):
        answered(b"<html>").json()


def test_a_body_not_read_says_how_to_read_it() -> None:
    msg = answered(None)
    with pytest.raises(RuntimeError, match=r"not read into msg.response_body.*Session.request"):
        _ = msg.text
    with pytest.raises(RuntimeError, match="not read") as caught:
        msg.json()
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize("status", [100, 101, 200, 204, 299, 301, 304, 399, 600, 999])
def test_raise_for_status_passes(status: int) -> None:
    msg = answered(b"", status=status)
    assert msg.raise_for_status() is msg


@pytest.mark.parametrize(
    ("status", "reason", "text"),
    [
        (400, "Bad Request", "GET http://h.test/p?q=1: client error 400 Bad Request"),
        (404, "", "GET http://h.test/p?q=1: client error 404"),
        (429, "Too Many Requests", "client error 429 Too Many Requests"),
        (500, "Internal Server Error", "GET http://h.test/p?q=1: server error 500 Internal"),
        (599, "", "server error 599"),
    ],
)
def test_raise_for_status_raises(status: int, reason: str, text: str) -> None:
    msg = answered(b"", status=status, reason=reason)
    with pytest.raises(HTTPStatusError) as caught:
        msg.raise_for_status()
    assert isinstance(caught.value, Error)
    assert caught.value.message is msg
    assert text in str(caught.value)
    assert "secret" not in str(caught.value) and "user" not in str(caught.value)


def test_raise_for_status_needs_a_response() -> None:
    with pytest.raises(RuntimeError, match="no response yet"):
        Message("GET", "http://h.test/").raise_for_status()


# -- on the wire ----------------------------------------------------------------------------


async def echo(conn: ServerConnection, request: ReceivedRequest) -> None:
    """Answer with what arrived, as JSON; a few paths do something else."""
    path = request.target.split("?")[0]
    if path == "/status/404":
        headers = [("content-type", "text/plain")]
        await conn.respond(404, headers, b"no such thing", reason=b"Not Found")
        return
    if path == "/redirect":
        await conn.respond(302, [("location", "/final?from=redirect")])
        return
    if path == "/set-cookie":
        await conn.respond(200, [("set-cookie", "session=abc; Path=/")], b"{}")
        return
    if path == "/big":
        await conn.respond(200, body=b"x" * 10000)
        return
    if path == "/stall":
        await anyio.sleep(BOUND)
        return
    seen = {
        "method": request.method,
        "target": request.target,
        "headers": dict(request.headers),
        "body": request.body.decode("latin-1"),
    }
    content_type = "application/json; charset=utf-8"
    await conn.respond(200, [("content-type", content_type)], json.dumps(seen).encode())


async def test_every_helper_on_the_wire(leak_check: LeakCheck) -> None:
    async with serve_http(echo) as server:
        async with Session() as session:
            with anyio.fail_after(BOUND):
                msg = await session.get(server.url_for("/g?a=1"), params={"b": "2"})
                assert msg.status == 200
                assert msg.json()["target"] == "/g?a=1&b=2"
                assert isinstance(msg.response_body, bytes)
                assert msg.text == msg.response_body.decode()
                for helper, method in [
                    (session.options, "OPTIONS"),
                    (session.delete, "DELETE"),
                    (session.post, "POST"),
                    (session.put, "PUT"),
                    (session.patch, "PATCH"),
                ]:
                    msg = await helper(server.url_for("/m"), headers={"X-Test": method})
                    seen = msg.json()
                    assert (seen["method"], seen["headers"]["x-test"]) == (method, method)
                msg = await session.head(server.url_for("/h"))
                assert (msg.method, msg.status, msg.response_body) == ("HEAD", 200, b"")
                assert server.requests[-1].method == "HEAD"
                msg = await session.request("get", server.url_for("/lower"))
                assert msg.json()["method"] == "GET"
        await leak_check(session)


async def test_a_lower_case_message_is_sent_upper_case(leak_check: LeakCheck) -> None:
    async with serve_http(echo) as server:
        async with Session() as session:
            msg = Message("get", server.url_for("/x"))
            with anyio.fail_after(BOUND):
                await session.send_and_read(msg)
            assert server.requests[-1].method == "GET"
            assert msg.status == 200
        await leak_check(session)


async def test_bodies_on_the_wire(leak_check: LeakCheck) -> None:
    async with serve_http(echo) as server:
        async with Session() as session:
            with anyio.fail_after(BOUND):
                seen = (await session.post(server.url_for("/j"), json={"a": "é"})).json()
                assert seen["headers"]["content-type"] == "application/json"
                assert seen["body"].encode("latin-1").decode() == '{"a":"é"}'
                seen = (await session.put(server.url_for("/f"), data={"a": "1 2"})).json()
                assert seen["headers"]["content-type"] == "application/x-www-form-urlencoded"
                assert seen["body"] == "a=1+2"
                multipart = Multipart("multipart/form-data")
                multipart.append_form_string("field", "v")
                seen = (await session.post(server.url_for("/m"), data=multipart)).json()
                assert seen["headers"]["content-type"].startswith("multipart/form-data; boundary=")
                assert 'name="field"' in seen["body"]

                async def chunks() -> Any:
                    yield b"stream"
                    yield b"ed"

                seen = (await session.patch(server.url_for("/c"), content=chunks())).json()
                assert seen["body"] == "streamed"
                assert seen["headers"]["transfer-encoding"] == "chunked"
                seen = (await session.post(server.url_for("/s"), content="text")).json()
                assert (seen["body"], seen["headers"]["content-length"]) == ("text", "4")
        await leak_check(session)


async def test_base_url_on_the_wire(leak_check: LeakCheck) -> None:
    async with serve_http(echo) as server:
        async with Session(base_url=server.url_for("/api/v1")) as session:
            with anyio.fail_after(BOUND):
                assert (await session.get("users")).json()["target"] == "/api/v1/users"
                msg = await session.get("/users/7", params={"x": "1"})
                assert msg.json()["target"] == "/api/v1/users/7?x=1"
                assert str(msg.uri) == server.url_for("/api/v1/users/7?x=1")
                absolute = await session.get(server.url_for("/elsewhere"))
                assert absolute.json()["target"] == "/elsewhere"
        await leak_check(session)


async def test_the_helpers_go_through_the_features(leak_check: LeakCheck) -> None:
    lines: list[str] = []

    def printer(logger: Logger, level: LoggerLogLevel, direction: str, data: str) -> None:
        lines.append(f"{direction} {data}")

    logger = Logger(LoggerLogLevel.MINIMAL)
    logger.set_printer(printer)
    async with serve_http(echo) as server:
        async with Session(features=[CookieJar(), logger], user_agent="helper/1") as session:
            with anyio.fail_after(BOUND):
                await session.get(server.url_for("/set-cookie"))
                msg = await session.get(server.url_for("/redirect"))
            seen = msg.json()
            assert seen["target"] == "/final?from=redirect"  # the redirect stage
            assert seen["headers"]["cookie"] == "session=abc"  # the cookie jar
            assert seen["headers"]["user-agent"] == "helper/1"  # the session's settings
            assert "accept-encoding" in seen["headers"]  # the decoder
            assert str(msg.uri) == server.url_for("/final?from=redirect")
            requests = [line for line in lines if line.startswith("> GET")]
            assert requests == ["> GET /set-cookie HTTP/1.1", "> GET /redirect HTTP/1.1",
                                "> GET /final?from=redirect HTTP/1.1"]  # fmt: skip
        await leak_check(session)


async def test_raise_for_status_on_a_real_answer(leak_check: LeakCheck) -> None:
    async with serve_http(echo) as server:
        async with Session() as session:
            with anyio.fail_after(BOUND):
                msg = await session.get(server.url_for("/status/404"))
            assert (msg.status, msg.text) == (404, "no such thing")
            expected = r"GET http://.*/status/404: client error 404 Not Found"
            with pytest.raises(HTTPStatusError, match=expected) as caught:
                msg.raise_for_status()
            assert caught.value.message is msg
            ok = await session.get(server.url_for("/fine"))
            assert ok.raise_for_status() is ok
        await leak_check(session)


async def test_max_size(leak_check: LeakCheck) -> None:
    async with serve_http(echo) as server:
        async with Session() as session:
            with anyio.fail_after(BOUND):
                with pytest.raises(BodyTooLarge) as caught:
                    await session.get(server.url_for("/big"), max_size=100)
                assert caught.value.message is not None
                assert caught.value.message.response_body is None
                msg = await session.get(server.url_for("/big"), max_size=10000)
                assert msg.response_body == b"x" * 10000
        await leak_check(session)


async def test_a_cancellable_cancels_a_helper(leak_check: LeakCheck) -> None:
    async with serve_http(echo) as server:
        async with Session() as session:
            cancellable = Cancellable()
            with anyio.fail_after(BOUND):
                async with anyio.create_task_group() as tg:

                    async def cancel_soon() -> None:
                        await anyio.sleep(0.1)
                        cancellable.cancel()

                    tg.start_soon(cancel_soon)
                    with pytest.raises(RequestCancelled) as caught:
                        await session.get(server.url_for("/stall"), cancellable=cancellable)
                assert caught.value.message is not None
                assert (await session.get(server.url_for("/after"))).status == 200
            stats = session.statistics()
            assert (stats.in_use, stats.waiting, stats.connecting) == (0, 0, 0)
        await leak_check(session)


async def test_bad_arguments_raise_before_sending() -> None:
    async with serve_http(echo) as server:
        async with Session() as session:
            with pytest.raises(ValueError, match="relative"):
                await session.get("users")
            with pytest.raises(ValueError, match="did you mean"):
                await session.get(f"127.0.0.1:{server.port}/x")
            with pytest.raises(ValueError, match="give one body"):
                await session.post(server.url_for("/x"), json=1, content=b"")
            with pytest.raises(TypeError):
                await session.get(server.url_for("/x"), json=1)  # type: ignore[call-arg]
        assert server.requests == []


# -- httpbin: a third-party server, once per helper ----------------------------------------


async def test_each_helper_against_httpbin(httpbin: Any, leak_check: LeakCheck) -> None:
    async with Session(base_url=str(httpbin.url)) as session:
        with anyio.fail_after(BOUND):
            got = await session.get("/get", params={"a": ["1", "2"], "b": "x y"})
            assert got.json()["args"] == {"a": ["1", "2"], "b": "x y"}
            posted = await session.post("/post", json={"k": [1, "é"]})
            assert posted.json()["json"] == {"k": [1, "é"]}
            put = await session.put("/put", data={"f": "v w"})
            assert put.json()["form"] == {"f": "v w"}
            patched = await session.patch("/patch", content=b"raw bytes")
            assert patched.json()["data"] == "raw bytes"
            deleted = await session.delete("/delete", headers={"X-Who": "me"})
            assert deleted.json()["headers"]["X-Who"] == "me"
            head = await session.head("/get")
            assert (head.status, head.response_body) == (200, b"")
            options = await session.options("/get")
            assert "GET" in (options.response_headers.get_list("Allow") or "")
            teapot = await session.request("get", "/status/418")
            with pytest.raises(HTTPStatusError, match="client error 418"):
                teapot.raise_for_status()
            encoded = await session.get("/encoding/utf8")
            assert "∑" in encoded.text
    await leak_check(session)


# -- the blocking session ----------------------------------------------------------------


@pytest.fixture(params=["asyncio", "trio"])
def loop_backend(request: pytest.FixtureRequest) -> str:
    """The event loop the blocking session runs in its thread."""
    return str(request.param)


@pytest.fixture
def echo_server() -> Iterator[Server]:
    """The echo server in an asyncio loop in a thread."""
    with (
        anyio.from_thread.start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(serve_http(echo)) as running,
    ):
        yield running


def test_blocking_helpers(loop_backend: str, echo_server: Server) -> None:
    base = echo_server.url_for("/api")
    with anysoup.blocking.Session(backend=loop_backend, base_url=base, timeout=10) as session:
        assert session.base_url == URL(base + "/")
        msg = session.get("items", params={"q": "a b"})
        assert msg.json()["target"] == "/api/items?q=a+b"
        posted = session.post("items", json={"n": 1}).json()
        assert (posted["method"], posted["body"]) == ("POST", '{"n":1}')
        assert session.put("items/1", data={"a": "1"}).json()["body"] == "a=1"
        assert session.patch("items/1", content="x").json()["method"] == "PATCH"
        assert session.delete("items/1").json()["method"] == "DELETE"
        assert session.options("items").json()["method"] == "OPTIONS"
        head = session.head("items")
        assert (head.status, head.response_body) == (200, b"")
        lower = session.request("get", echo_server.url_for("/abs"))
        assert lower.json() == {**lower.json(), "method": "GET", "target": "/abs"}
        missing = session.get(echo_server.url_for("/status/404"))
        with pytest.raises(HTTPStatusError, match="client error 404"):
            missing.raise_for_status()
        with pytest.raises(BodyTooLarge):
            session.get(echo_server.url_for("/big"), max_size=10)
        session.base_url = None
        with pytest.raises(ValueError, match="relative"):
            session.get("items")


def test_each_blocking_helper_against_httpbin(loop_backend: str, httpbin: Any) -> None:
    with anysoup.blocking.Session(backend=loop_backend, base_url=str(httpbin.url)) as session:
        got = session.get("/get", params=[("a", "1"), ("a", "2")])
        assert got.json()["args"] == {"a": ["1", "2"]}
        assert session.post("/post", json={"k": "é"}).json()["json"] == {"k": "é"}
        assert session.put("/put", data={"f": "v w"}).json()["form"] == {"f": "v w"}
        assert session.patch("/patch", content="raw").json()["data"] == "raw"
        deleted = session.delete("/delete", headers={"X-Who": "me"})
        assert deleted.json()["headers"]["X-Who"] == "me"
        head = session.head("/get")
        assert (head.status, head.response_body) == (200, b"")
        options = session.options("/get")
        assert "GET" in (options.response_headers.get_list("Allow") or "")
        teapot = session.request("get", "/status/418")
        with pytest.raises(HTTPStatusError, match="client error 418"):
            teapot.raise_for_status()


def test_blocking_helpers_refuse_what_the_async_ones_refuse(
    loop_backend: str, echo_server: Server
) -> None:
    with anysoup.blocking.Session(backend=loop_backend) as session:
        with pytest.raises(TypeError):
            session.get(echo_server.url_for("/x"), json=1)  # type: ignore[call-arg]
        with pytest.raises(ValueError, match="did you mean"):
            session.get(f"127.0.0.1:{echo_server.port}/")
    assert echo_server.requests == []
