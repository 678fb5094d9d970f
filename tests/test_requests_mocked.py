"""The request helpers against :class:`anysoup.testing.MockRouter`: what goes out, what comes back.

The router records each request as it would have gone on the wire (after
the session added its headers and framed the body), so these tests check
what the helpers send — the query, the body bytes, ``Content-Type`` and the
framing — and how ``text``, ``json()`` and ``raise_for_status()`` read
mocked answers, without a server. ``tests/test_requests.py`` has the tables
of the pure functions, the scripted-server runs and one run of each helper
against httpbin. Every async test runs on both backends.
"""

from __future__ import annotations

import codecs
import gzip
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import anysoup.blocking
from anysoup import (
    BodyTooLarge,
    Cancellable,
    HTTPStatusError,
    Message,
    Multipart,
    RequestCancelled,
    Session,
)
from anysoup.testing import MockRouter, Response

API = "https://api.example.org"
BOUND = 10.0
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


# -- what the helpers send ----------------------------------------------------------------


async def test_params_go_after_the_urls_own_query() -> None:
    router = MockRouter()
    route = router.get(API + "/search", params={"lang": "en", "q": "a b"}).respond(json=[])
    async with Session(features=[router]) as session:
        params = {"q": "a b", "tag": ["x", "é&"], "n": 2, "f": 0.5}
        await session.get(API + "/search?lang=en", params=params)
        await session.get(API + "/search?lang=en", params=[("q", "a b"), ("q", "c")])
    first, second = (call.request.url for call in route.calls)
    assert first.raw_query_string == "lang=en&q=a+b&tag=x&tag=%C3%A9%26&n=2&f=0.5"
    assert first.query.getall("tag") == ["x", "é&"]
    assert second.query.getall("q") == ["a b", "c"]  # pairs keep their repeats, in order


async def test_empty_params_leave_the_url_alone() -> None:
    router = MockRouter()
    route = router.get(API + "/p").respond()
    async with Session(features=[router]) as session:
        await session.get(API + "/p?x=1", params={})
    assert str(route.calls.last.request.url) == API + "/p?x=1"


def _multipart() -> Multipart:
    multipart = Multipart("multipart/form-data")
    multipart.append_form_string("field", "value")
    return multipart


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
@pytest.mark.parametrize(
    ("body", "content", "content_type"),
    [
        ({"json": {"a": [1, None], "é": "ü"}}, '{"a":[1,null],"é":"ü"}'.encode(), JSON),
        ({"json": False}, b"false", JSON),
        ({"data": {"a": "1 2", "b": ["x", "y"]}}, b"a=1+2&b=x&b=y", FORM),
        ({"data": [("k", "&"), ("k", "é")]}, b"k=%26&k=%C3%A9", FORM),
        ({"content": b"\x00raw"}, b"\x00raw", None),
        ({"content": "café"}, "café".encode(), None),
        ({}, b"", None),
    ],
)  # fmt: skip
async def test_bodies_as_the_router_records_them(
    method: str, body: dict[str, Any], content: bytes, content_type: str | None
) -> None:
    router = MockRouter()
    route = router.route(method, API + "/items").respond(201)
    async with Session(features=[router]) as session:
        helper = getattr(session, method.lower())
        msg = await helper(API + "/items", **body)
    assert msg.status == 201
    request = route.calls.last.request
    assert (request.method, request.content) == (method, content)
    assert request.headers.get_one("Content-Type") == content_type
    assert request.headers.get_one("Content-Length") == str(len(content))
    assert "Transfer-Encoding" not in request.headers


async def test_a_json_route_matches_what_the_helper_sends() -> None:
    router = MockRouter()
    created = router.post(API + "/users", json={"name": "Ada", "tags": ["x"]}).respond(201)
    async with Session(features=[router]) as session:
        msg = await session.post(API + "/users", json={"tags": ["x"], "name": "Ada"})
    assert (msg.status, created.call_count) == (201, 1)
    assert created.calls.last.request.json() == {"name": "Ada", "tags": ["x"]}


async def test_a_multipart_and_a_streamed_body() -> None:
    async def pieces() -> AsyncIterator[bytes]:
        yield b"stream"
        yield b"ed"

    router = MockRouter()
    form = router.post(API + "/form").respond()
    blob = router.put(API + "/blob").respond()
    async with Session(features=[router]) as session:
        await session.post(API + "/form", data=_multipart())
        msg = await session.put(API + "/blob", content=pieces())
    request = form.calls.last.request
    content_type = request.headers.get_content_type()
    assert content_type is not None and content_type[0] == "multipart/form-data"
    assert content_type[1]["boundary"].encode() in request.content
    assert b'name="field"\r\n\r\nvalue\r\n' in request.content
    assert request.headers.get_one("Content-Length") == str(len(request.content))
    request = blob.calls.last.request
    assert request.content == b"streamed"
    assert request.headers.get_one("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in request.headers
    assert msg.request_body is not None and not msg.request_body.replayable


async def test_the_programs_headers_are_sent_and_its_content_type_wins() -> None:
    router = MockRouter()
    route = router.post(API, headers={"Authorization": "Bearer t"}).respond()
    async with Session(features=[router], user_agent="mocked/1") as session:
        headers = {"Authorization": "Bearer t", "Content-Type": "application/vnd.api+json"}
        await session.post(API, json={"a": 1}, headers=headers)
        await session.post(API, data={"a": 1}, headers=[("Authorization", "Bearer t")])
    vendor, form = (call.request for call in route.calls)
    assert vendor.headers.get_all("Content-Type") == ["application/vnd.api+json"]
    assert vendor.content == b'{"a":1}'
    assert form.headers.get_one("Content-Type") == FORM
    assert vendor.headers.get_one("User-Agent") == "mocked/1"  # the session's settings apply
    assert vendor.headers.get_one("Host") == "api.example.org"


async def test_bodiless_helpers_send_no_body() -> None:
    router = MockRouter()
    route = router.route(url=API + "/r").respond()
    async with Session(features=[router]) as session:
        for helper in (session.get, session.head, session.options, session.delete):
            await helper(API + "/r")
    for call in route.calls:
        assert call.request.content == b""
        assert "Content-Length" not in call.request.headers
        assert "Content-Type" not in call.request.headers


# -- URLs and methods ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "given", "sent"),
    [
        (API + "/v1", "users", API + "/v1/users"),
        (API + "/v1", "/users", API + "/v1/users"),
        (API + "/v1/", "users/7?x=1", API + "/v1/users/7?x=1"),
        (API + "/v1", "", API + "/v1/"),
        (API, "users", API + "/users"),
        (API + "/v1", "https://other.test/x", "https://other.test/x"),  # absolute: as it is
    ],
)
async def test_base_url_joins_relative_urls(base_url: str, given: str, sent: str) -> None:
    router = MockRouter()
    route = router.route().respond()  # any request
    async with Session(features=[router], base_url=base_url) as session:
        msg = await session.get(given)
    assert str(route.calls.last.request.url) == sent
    assert str(msg.uri) == sent


async def test_base_url_with_params_and_a_router_base() -> None:
    router = MockRouter(base_url=API + "/v1")
    route = router.get("/users", params={"page": "2"}).respond(json=[{"id": 1}])
    async with Session(features=[router], base_url=API + "/v1") as session:
        msg = await session.get("users", params={"page": 2})
        assert msg.json() == [{"id": 1}]
        session.base_url = API + "/v2"
        other = router.get(API + "/v2/users").respond()
        await session.get("/users")
        session.base_url = None
        with pytest.raises(ValueError, match="relative"):
            await session.get("users")
    assert (route.call_count, other.call_count) == (1, 1)


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("get", "GET"),
        ("Post", "POST"),
        ("delete", "DELETE"),
        ("options", "OPTIONS"),
        ("PROPFIND", "PROPFIND"),
        ("propfind", "propfind"),  # extension methods are case-sensitive (RFC 9110 §9.1)
        ("m-search", "m-search"),
    ],
)
async def test_the_method_rule(given: str, sent: str) -> None:
    router = MockRouter()
    route = router.route(url=API).respond()
    async with Session(features=[router]) as session:
        msg = await session.request(given, API)
        await session.send_and_read(Message(given, API))
    assert msg.method == sent
    assert [call.request.method for call in route.calls] == [sent, sent]


async def test_each_helper_sends_its_method() -> None:
    router = MockRouter()
    routes = {
        method: router.route(method, API + "/m").respond(text=method)
        for method in ("GET", "HEAD", "OPTIONS", "DELETE", "POST", "PUT", "PATCH", "PURGE")
    }
    async with Session(features=[router]) as session:
        for method in ("GET", "OPTIONS", "DELETE", "POST", "PUT", "PATCH"):
            msg = await getattr(session, method.lower())(API + "/m")
            assert (msg.method, msg.text) == (method, method)
        head = await session.head(API + "/m")
        assert (head.status, head.response_body) == (200, b"")  # no body for HEAD
        assert head.response_headers.get_content_length() == 4
        assert (await session.request("PURGE", API + "/m")).text == "PURGE"
    assert all(route.call_count == 1 for route in routes.values())


# -- reading mocked answers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body", "text"),
    [
        (None, "café".encode(), "café"),
        ("text/plain; charset=iso-8859-1", "café".encode("latin-1"), "café"),
        ('text/html; charset="windows-1252"', b"\x80 5", "\u20ac 5"),
        ("text/plain; charset=utf-16", "hé".encode("utf-16"), "hé"),
        ("text/plain; charset=iso-8859-1", codecs.BOM_UTF8 + "é".encode(), "é"),  # BOM wins
        ("text/plain; charset=x-unknown", "é".encode(), "é"),
        ("text/plain", b"bad \xff!", "bad \ufffd!"),
    ],
)
async def test_text_of_mocked_answers(content_type: str | None, body: bytes, text: str) -> None:
    headers = {"Content-Type": content_type} if content_type is not None else None
    router = MockRouter()
    router.get(API).respond(headers=headers, content=body)
    async with Session(features=[router]) as session:
        msg = await session.get(API)
    assert (msg.response_body, msg.text) == (body, text)


async def test_text_and_json_of_typed_answers() -> None:
    router = MockRouter()
    router.get(API + "/text").respond(text="héllo")
    router.get(API + "/json").respond(json={"n": 1.5, "s": "é", "l": [None]})
    router.get(API + "/html").respond(html="<p>x</p>")
    router.get(API + "/gz").respond(
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        content=gzip.compress(b'{"zipped": true}'),
    )
    async with Session(features=[router]) as session:
        assert (await session.get(API + "/text")).text == "héllo"
        data = await session.get(API + "/json")
        assert data.json() == {"n": 1.5, "s": "é", "l": [None]}
        assert data.json(parse_float=str)["n"] == "1.5"
        assert data.response_headers.get_one("Content-Type") == JSON
        html = await session.get(API + "/html")
        with pytest.raises(ValueError):
            html.json()
        assert html.text == "<p>x</p>"
        zipped = await session.get(API + "/gz")  # the decoder ran before the helper read it
        assert zipped.json() == {"zipped": True}


@pytest.mark.parametrize(
    ("status", "reason", "text"),
    [
        (400, None, f"GET {API}/thing: client error 400 Bad Request"),
        (404, None, f"GET {API}/thing: client error 404 Not Found"),
        (418, "Short And Stout", f"GET {API}/thing: client error 418 Short And Stout"),
        (429, None, f"GET {API}/thing: client error 429 Too Many Requests"),
        (500, None, f"GET {API}/thing: server error 500 Internal Server Error"),
        (503, "", f"GET {API}/thing: server error 503"),
        (599, None, f"GET {API}/thing: server error 599"),
    ],
)
async def test_raise_for_status_on_mocked_errors(
    status: int, reason: str | None, text: str
) -> None:
    router = MockRouter()
    router.get(API + "/thing").respond(status, reason=reason, json={"error": "nope"})
    async with Session(features=[router]) as session:
        msg = await session.get(API + "/thing")
    with pytest.raises(HTTPStatusError) as caught:
        msg.raise_for_status()
    assert str(caught.value) == text
    assert caught.value.message is msg
    assert caught.value.message.json() == {"error": "nope"}  # the body is on the message


@pytest.mark.parametrize("status", [200, 201, 204, 304])
async def test_raise_for_status_returns_the_message(status: int) -> None:
    router = MockRouter()
    router.get(API).respond(status)
    async with Session(features=[router]) as session:
        msg = await session.get(API)
    assert msg.raise_for_status() is msg


async def test_raise_for_status_never_shows_credentials() -> None:
    router = MockRouter()
    router.get(API + "/private").respond(403)
    async with Session(features=[router]) as session:
        msg = await session.get("https://ada:s3cret@api.example.org/private?x=1")
    with pytest.raises(HTTPStatusError) as caught:
        msg.raise_for_status()
    assert str(caught.value) == f"GET {API}/private?x=1: client error 403 Forbidden"


async def test_redirects_are_followed_before_the_helper_returns() -> None:
    router = MockRouter()
    moved = router.post(API + "/old").respond(303, headers={"Location": "/new?id=7"})
    final = router.get(API + "/new").respond(json={"id": 7})
    async with Session(features=[router]) as session:
        msg = await session.post(API + "/old", json={"x": 1})
    assert (msg.status, msg.json(), str(msg.uri)) == (200, {"id": 7}, API + "/new?id=7")
    assert msg.raise_for_status() is msg
    assert moved.calls.last.request.content == b'{"x":1}'
    after = final.calls.last.request
    assert (after.method, after.content) == ("GET", b"")  # 303: GET without the body
    assert "Content-Type" not in after.headers and "Content-Length" not in after.headers


async def test_max_size_limits_a_mocked_body() -> None:
    router = MockRouter()
    router.get(API).respond(content=b"x" * 1000)
    async with Session(features=[router]) as session:
        with pytest.raises(BodyTooLarge) as caught:
            await session.get(API, max_size=100)
        assert caught.value.message is not None and caught.value.message.response_body is None
        assert (await session.get(API, max_size=1000)).response_body == b"x" * 1000


# -- cancelling a helper ------------------------------------------------------------------


@pytest.mark.parametrize("stop", ["cancellable", "abort"])
async def test_a_cancellable_and_abort_stop_a_stalled_answer(stop: str) -> None:
    started = anyio.Event()

    async def stall(msg: Message) -> Response:
        started.set()
        await anyio.sleep_forever()
        raise AssertionError("not reached")

    router = MockRouter()
    router.get(API + "/slow").mock(side_effect=stall)
    router.get(API + "/fast").respond(text="fast")
    cancellable = Cancellable()
    async with Session(features=[router]) as session:
        with anyio.fail_after(BOUND):
            async with anyio.create_task_group() as tg:

                async def stop_when_started() -> None:
                    await started.wait()
                    if stop == "cancellable":
                        cancellable.cancel()
                    else:
                        session.abort()

                tg.start_soon(stop_when_started)
                with pytest.raises(RequestCancelled) as caught:
                    await session.get(API + "/slow", cancellable=cancellable)
        assert caught.value.message is not None
        assert not caught.value.message._queued
        assert (await session.get(API + "/fast")).text == "fast"


# -- the fixture and the blocking session -------------------------------------------------


async def test_the_fixture_mocks_a_session_the_code_makes(anysoup_mock: MockRouter) -> None:
    anysoup_mock.get(API + "/me").respond(json={"name": "Ada"})

    async def code_under_test() -> str:
        async with Session(base_url=API) as session:
            return str((await session.get("me")).raise_for_status().json()["name"])

    assert await code_under_test() == "Ada"
    assert anysoup_mock.calls.last.request.method == "GET"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_blocking_helpers_against_the_router(backend: str) -> None:
    with MockRouter(base_url=API) as router:
        got = router.get("/items", params={"q": "a b"}).respond(json=[1])
        posted = router.post("/items", json={"n": 1}).respond(201, json={"id": 9})
        form = router.put("/items/9").respond()
        gone = router.delete("/items/9").respond(404)
        with anysoup.blocking.Session(backend=backend, base_url=API) as session:
            assert session.get("items", params={"q": "a b"}).json() == [1]
            assert session.post("items", json={"n": 1}).raise_for_status().json() == {"id": 9}
            session.put("items/9", data={"a": "1"})
            missing = session.delete("items/9")
            with pytest.raises(HTTPStatusError, match=f"DELETE {API}/items/9: client error 404"):
                missing.raise_for_status()
    assert (got.call_count, posted.call_count, gone.call_count) == (1, 1, 1)
    assert form.calls.last.request.content == b"a=1"
    assert form.calls.last.request.headers.get_one("Content-Type") == FORM
