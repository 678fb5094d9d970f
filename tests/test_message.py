"""Message: constructors, flags, request bodies, responses and message signals.

Everything that goes over the wire is checked on the server's side with the
scripted h11 server from ``servers.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import h11
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from servers import ReceivedRequest, ServerConnection, serve_http, serve_raw
from yarl import URL

import anysoup
from anysoup import HTTPVersion, Message, MessageFlags, NetworkEvent, SessionFeature

# -- servers -------------------------------------------------------------------


async def echo(conn: ServerConnection, req: ReceivedRequest) -> None:
    """200 with the request body, and what framing the request used."""
    headers = [
        ("X-Method", req.method),
        ("X-Target", req.target),
        ("X-Content-Length", req.header("content-length") or "-"),
        ("X-Transfer-Encoding", req.header("transfer-encoding") or "-"),
    ]
    await conn.respond(200, headers, req.body)


# -- constructors --------------------------------------------------------------


def test_constructors() -> None:
    msg = Message.new("GET", "http://example.com/a?b=c")
    assert msg.method == "GET" and isinstance(msg.uri, URL)
    assert str(msg.uri) == "http://example.com/a?b=c"
    assert msg.status == 0 and msg.reason_phrase == "" and msg.metrics is None
    assert msg.flags == MessageFlags.NONE
    assert msg.priority == anysoup.MessagePriority.NORMAL
    assert len(msg.request_headers) == 0 and len(msg.response_headers) == 0

    msg = Message.new_from_uri("PUT", URL("https://example.com:8443/x"))
    assert (msg.method, msg.uri.scheme, msg.uri.port) == ("PUT", "https", 8443)
    msg = Message.new_from_uri("DELETE", "http://example.com/")  # a str is fine too
    assert msg.uri.host == "example.com"

    msg = Message("GET", "http://example.com/", headers={"X-A": "1", "X-B": "2"})
    assert list(msg.request_headers) == [("X-A", "1"), ("X-B", "2")]
    msg = Message("GET", "http://example.com/", headers=[("X-A", "1"), ("X-A", "2")])
    assert msg.request_headers.get_all("X-A") == ["1", "2"]


@pytest.mark.parametrize(
    "method", ["", "GE T", "GET\r\n", "G\u00c9T", "GET/", "(GET)", 123, None, b"GET"]
)
def test_invalid_method(method: Any) -> None:
    with pytest.raises(ValueError, match="method"):
        Message(method, "http://example.com/")


@pytest.mark.parametrize(
    "uri",
    [
        "not a uri",
        "/relative/path",
        "example.com/path",
        "ftp://example.com/",
        "file:///etc/passwd",
        "http://",
        "http:///path",
        "http://example.com:99999/",
        "",
    ],
)
def test_invalid_uri(uri: str) -> None:
    with pytest.raises(ValueError):
        Message("GET", uri)
    with pytest.raises(ValueError):
        Message.new("GET", uri)
    msg = Message("GET", "http://example.com/")
    with pytest.raises(ValueError):
        msg.set_uri(uri)
    assert str(msg.uri) == "http://example.com/"


def test_flag_helpers() -> None:
    msg = Message("GET", "http://example.com/")
    msg.add_flags(MessageFlags.NO_REDIRECT | MessageFlags.IDEMPOTENT)
    assert msg.query_flags(MessageFlags.NO_REDIRECT)
    assert msg.query_flags(MessageFlags.NO_REDIRECT | MessageFlags.IDEMPOTENT)
    assert not msg.query_flags(MessageFlags.NO_REDIRECT | MessageFlags.NEW_CONNECTION)
    msg.add_flags(MessageFlags.COLLECT_METRICS)
    msg.remove_flags(MessageFlags.IDEMPOTENT)
    assert msg.get_flags() == msg.flags == MessageFlags.NO_REDIRECT | MessageFlags.COLLECT_METRICS
    msg.remove_flags(MessageFlags.NEW_CONNECTION)  # not set: no change
    assert msg.flags == MessageFlags.NO_REDIRECT | MessageFlags.COLLECT_METRICS
    msg.set_flags(MessageFlags.NEW_CONNECTION)
    assert msg.flags == MessageFlags.NEW_CONNECTION
    msg.set_flags(MessageFlags.NONE)
    assert not msg.query_flags(MessageFlags.NEW_CONNECTION)


def test_disable_feature_honours_subclasses() -> None:
    class Base(SessionFeature):
        pass

    class Derived(Base):
        pass

    class Other(SessionFeature):
        pass

    msg = Message("GET", "http://example.com/")
    assert not msg.is_feature_disabled(Base)
    msg.disable_feature(Derived)
    assert msg.is_feature_disabled(Derived)
    assert not msg.is_feature_disabled(Base)  # disabling a subclass leaves the base
    msg.disable_feature(Base)
    assert msg.is_feature_disabled(Base) and msg.is_feature_disabled(Derived)
    assert not msg.is_feature_disabled(Other)
    msg2 = Message("GET", "http://example.com/")
    msg2.disable_feature(SessionFeature)  # every feature
    assert msg2.is_feature_disabled(Other) and msg2.is_feature_disabled(Derived)


def test_message_repr() -> None:
    msg = Message("GET", "http://example.com/a")
    assert repr(msg) == "<anysoup.Message GET 'http://example.com/a'>"
    msg.status, msg.reason_phrase = 404, "Not Found"
    assert repr(msg) == "<anysoup.Message GET 'http://example.com/a' 404 Not Found>"


async def test_new_from_encoded_form_get_puts_the_form_in_the_query() -> None:
    async with serve_http(echo) as server, anysoup.Session() as session:
        msg = Message.new_from_encoded_form("GET", server.url_for("/form"), "a=1&b=x+y&c=%2F")
        assert msg.request_body is None
        await session.send_and_read(msg)
        assert msg.response_headers["X-Target"] == "/form?a=1&b=x+y&c=%2F"
        assert msg.response_headers["X-Method"] == "GET"
        # the form replaces a query; the fragment stays out of the request
        msg = Message.new_from_encoded_form("HEAD", server.url_for("/f?old=1#frag"), "q=%C3%A9")
        await session.send_and_read(msg)
        assert msg.response_headers["X-Target"] == "/f?q=%C3%A9"
        assert msg.uri.fragment == "frag"
        msg = Message.new_from_form("GET", server.url_for("/f"), {"c": "/ \u00e9", "d": "&"})
        await session.send_and_read(msg)
        assert msg.response_headers["X-Target"] == "/f?c=%2F+%C3%A9&d=%26"


async def test_new_from_encoded_form_post_puts_the_form_in_the_body() -> None:
    async with serve_http(echo) as server, anysoup.Session() as session:
        form = "a=1&b=x+y&c=%2F"
        msg = Message.new_from_encoded_form("POST", server.url_for("/form"), form)
        assert msg.request_headers["Content-Type"] == "application/x-www-form-urlencoded"
        body = await session.send_and_read(msg)
        assert body == form.encode()
        assert msg.response_headers["X-Target"] == "/form"
        assert msg.response_headers["X-Content-Length"] == str(len(form))


async def test_new_options_ping_sends_options_star() -> None:
    seen: list[tuple[str, str]] = []

    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        seen.append((req.method, req.target))
        await conn.respond(200, [("Allow", "GET, OPTIONS")])

    async with serve_http(handler) as server, anysoup.Session() as session:
        msg = Message.new_options_ping(server.url_for("/ignored/path?q=1"))
        assert msg.method == "OPTIONS"
        assert await session.send_and_read(msg) == b""
        assert msg.status == 200
    assert seen == [("OPTIONS", "*")]


# -- request bodies ------------------------------------------------------------


async def _agen(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        await anyio.lowlevel.checkpoint()
        yield chunk


def _gen(chunks: list[bytes]) -> Iterator[bytes]:
    yield from chunks


CHUNKS = [b"hello ", b"", b"streamed ", b"world"]
JOINED = b"".join(CHUNKS)


async def _send_body(msg: Message) -> tuple[bytes, str, str]:
    async with serve_http(echo) as server, anysoup.Session() as session:
        msg.set_uri(server.url_for("/upload"))
        body = await session.send_and_read(msg)
        assert msg.status == 200
    headers = msg.response_headers
    return body, headers["X-Content-Length"], headers["X-Transfer-Encoding"]


async def test_bytes_body_is_sent_with_content_length() -> None:
    msg = Message("POST", "http://placeholder/", body=b"0123456789")
    assert await _send_body(msg) == (b"0123456789", "10", "-")


async def test_bytearray_and_memoryview_bodies() -> None:
    msg = Message("PUT", "http://placeholder/")
    msg.set_request_body("application/octet-stream", bytearray(b"abc"))
    assert await _send_body(msg) == (b"abc", "3", "-")
    msg = Message("PUT", "http://placeholder/")
    msg.set_request_body_from_bytes("text/plain", b"xyz")
    assert msg.request_headers["Content-Type"] == "text/plain"
    assert await _send_body(msg) == (b"xyz", "3", "-")


async def test_async_iterator_body_is_chunked() -> None:
    msg = Message("POST", "http://placeholder/", body=_agen(CHUNKS))
    assert await _send_body(msg) == (JOINED, "-", "chunked")


async def test_sync_iterator_body_is_chunked() -> None:
    msg = Message("POST", "http://placeholder/", body=_gen(CHUNKS))
    assert await _send_body(msg) == (JOINED, "-", "chunked")
    msg = Message("POST", "http://placeholder/", body=[b"a", b"b"])
    assert await _send_body(msg) == (b"ab", "-", "chunked")


async def test_memory_object_stream_body_is_chunked() -> None:
    send, receive = anyio.create_memory_object_stream[bytes](10)
    for chunk in CHUNKS:
        send.send_nowait(chunk)
    send.close()
    with receive:
        msg = Message("POST", "http://placeholder/", body=receive)
        assert await _send_body(msg) == (JOINED, "-", "chunked")


async def test_byte_stream_body_is_chunked() -> None:
    send, receive = anyio.create_memory_object_stream[bytes](10)
    stream = BufferedByteReceiveStream(receive)
    assert isinstance(stream, anyio.abc.ByteReceiveStream)

    async def produce() -> None:
        async with send:
            for chunk in CHUNKS:
                if chunk:
                    await send.send(chunk)
                    await anyio.sleep(0.01)

    async with stream, anyio.create_task_group() as tg:
        tg.start_soon(produce)
        msg = Message("POST", "http://placeholder/", body=stream)
        assert await _send_body(msg) == (JOINED, "-", "chunked")


async def test_streamed_body_with_length_uses_content_length() -> None:
    msg = Message("POST", "http://placeholder/")
    msg.set_request_body("text/plain", _agen(CHUNKS), length=len(JOINED))
    assert msg.request_body is not None and not msg.request_body.replayable
    assert await _send_body(msg) == (JOINED, str(len(JOINED)), "-")
    msg = Message("PUT", "http://placeholder/")
    msg.set_request_body(None, _gen([b"abc", b"def"]), length=6)
    assert await _send_body(msg) == (b"abcdef", "6", "-")


def test_set_request_body_checks() -> None:
    msg = Message("POST", "http://example.com/")
    with pytest.raises(TypeError):
        msg.set_request_body("text/plain", "a str is not bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        msg.set_request_body("text/plain", 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        msg.set_request_body("text/plain", b"abc", length=4)
    with pytest.raises(ValueError):
        msg.set_request_body("text/plain", _gen([]), length=-1)
    msg.set_request_body("text/plain", b"abc")
    assert msg.request_body is not None and msg.request_body.replayable
    msg.set_request_body(None, None)
    assert msg.request_body is None


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
async def test_body_method_without_body_sends_content_length_zero(method: str) -> None:
    msg = Message(method, "http://placeholder/")
    assert await _send_body(msg) == (b"", "0", "-")


@pytest.mark.parametrize("method", ["GET", "DELETE", "OPTIONS"])
async def test_bodiless_method_sends_no_framing(method: str) -> None:
    msg = Message(method, "http://placeholder/")
    assert await _send_body(msg) == (b"", "-", "-")


# -- responses without a body --------------------------------------------------


@pytest.mark.parametrize(
    ("method", "status", "headers"),
    [
        ("HEAD", 200, []),
        ("GET", 204, []),
        ("GET", 304, [("ETag", '"x"'), ("Content-Length", "11")]),
    ],
)
async def test_responses_without_body(
    method: str, status: int, headers: list[tuple[str, str]]
) -> None:
    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        if req.target == "/next":
            await conn.respond(200, [], b"next")
        elif method == "HEAD":
            await conn.respond(status, headers, b"hello world")  # counted, not sent
        else:
            await conn.respond(status, headers)

    async with serve_http(handler) as server, anysoup.Session() as session:
        msg = Message(method, server.url_for("/"))
        async with session.send(msg) as body:
            assert msg.status == status
            assert await body.read() == b""
            assert await body.read() == b""
        if method == "HEAD":
            assert msg.response_headers.get_content_length() == 11
        # the connection stayed in step: the next request reuses it
        assert await session.send_and_read(Message("GET", server.url_for("/next"))) == b"next"
        assert server.connections == 1


# -- HTTP/1.0 ------------------------------------------------------------------


async def test_http_1_0_server() -> None:
    async def handler(conn: ServerConnection) -> None:
        await conn.stream.receive_until(b"\r\n\r\n", 65536)
        await conn.send_raw(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nold but fine")

    async with serve_raw(handler) as server, anysoup.Session() as session:
        for _ in range(2):
            msg = Message("GET", server.url_for("/"))
            assert await session.send_and_read(msg) == b"old but fine"
            assert msg.status == 200 and msg.reason_phrase == "OK"
            assert msg.http_version is HTTPVersion.HTTP_1_0
            assert msg.get_http_version() is HTTPVersion.HTTP_1_0
        assert server.connections == 2  # an HTTP/1.0 connection is not kept alive
        assert session.statistics().connections == 0


async def test_http_1_1_version() -> None:
    async with serve_http(echo) as server, anysoup.Session() as session:
        msg = Message("GET", server.url_for("/"))
        await session.send_and_read(msg)
        assert msg.http_version is HTTPVersion.HTTP_1_1


# -- Expect: 100-continue ------------------------------------------------------


async def test_expect_continue_sends_body_after_100() -> None:
    events: list[str] = []

    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        assert req.header("expect") == "100-continue"
        await anyio.sleep(0.2)  # the client waits for the 100 (up to 1 s)
        events.append("server: 100")
        await conn.send_informational(100)
        body = await conn.read_body()
        await conn.respond(200, [], b"got " + body)

    async with serve_http(handler, read_body=False) as server, anysoup.Session() as session:
        msg = Message("POST", server.url_for("/"), body=b"payload")
        msg.request_headers.append("Expect", "100-continue")
        msg.wrote_headers.connect(lambda m: events.append("client: wrote_headers"))
        msg.got_informational.connect(lambda m: events.append(f"client: got {m.status}"))
        msg.wrote_body_data.connect(lambda m, data: events.append("client: wrote_body_data"))
        msg.wrote_body.connect(lambda m: events.append("client: wrote_body"))
        with anyio.fail_after(5):
            assert await session.send_and_read(msg) == b"got payload"
        assert msg.status == 200
        assert events == [
            "client: wrote_headers",
            "server: 100",
            "client: got 100",
            "client: wrote_body_data",
            "client: wrote_body",
        ]


@pytest.mark.parametrize("status", [417, 200, 401])
async def test_expect_continue_final_answer_means_no_body(status: int) -> None:
    seen: list[object] = []
    handled = anyio.Event()

    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        await conn.respond(status, [], b"answer")
        # Whatever comes after the final answer: the body must not.
        got: object = "nothing"
        with anyio.move_on_after(0.5):
            try:
                got = await conn.read_body()
            except (anyio.IncompleteRead, h11.RemoteProtocolError):
                got = "closed"
        seen.append(got)
        handled.set()

    async with serve_http(handler, read_body=False) as server:
        async with anysoup.Session() as session:
            msg = Message("PUT", server.url_for("/"), body=b"must not be sent")
            msg.request_headers.append("Expect", "100-continue")
            wrote: list[str] = []
            msg.wrote_body.connect(lambda m: wrote.append("wrote_body"))
            msg.wrote_body_data.connect(lambda m, chunk: wrote.append("wrote_body_data"))
            with anyio.fail_after(5):
                assert await session.send_and_read(msg) == b"answer"
            assert msg.status == status
            assert wrote == []
        with anyio.fail_after(5):
            await handled.wait()
    assert seen in (["nothing"], ["closed"]), seen


# -- informational responses ---------------------------------------------------


async def test_informational_responses_emit_got_informational() -> None:
    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        await conn.send_informational(103, [("Link", "</style.css>; rel=preload")])
        await conn.send_informational(102)
        await conn.respond(200, [("X-Final", "yes")], b"done")

    seen: list[tuple[int, str | None]] = []

    def on_info(msg: Message) -> None:
        seen.append((msg.status, msg.response_headers.get_one("Link")))

    async with serve_http(handler) as server, anysoup.Session() as session:
        msg = Message("GET", server.url_for("/"))
        msg.got_informational.connect(on_info)
        assert await session.send_and_read(msg) == b"done"
    assert seen == [(103, "</style.css>; rel=preload"), (102, None)]
    assert msg.status == 200 and msg.response_headers["X-Final"] == "yes"
    assert "Link" not in msg.response_headers


# -- message signals -----------------------------------------------------------

_SIGNALS = [
    "starting",
    "wrote_headers",
    "wrote_body_data",
    "wrote_body",
    "got_informational",
    "got_headers",
    "got_body_data",
    "got_body",
    "finished",
    "restarted",
]


def _record_signals(msg: Message, log: list[str]) -> None:
    for name in _SIGNALS:

        def handler(emitter: Message, *args: Any, _name: str = name) -> None:
            assert emitter is msg
            if _name.endswith("_data"):
                assert isinstance(args[0], bytes) and args[0]
                if log and log[-1] == _name:
                    return  # several data chunks count as one step
            else:
                assert args == ()
            log.append(_name)

        getattr(msg, name).connect(handler)


@pytest.mark.parametrize(
    ("method", "body", "expected"),
    [
        (
            "GET",
            None,
            ["starting", "wrote_headers", "wrote_body", "got_headers", "got_body_data"],
        ),
        (
            "POST",
            b"request body",
            [
                "starting",
                "wrote_headers",
                "wrote_body_data",
                "wrote_body",
                "got_headers",
                "got_body_data",
            ],
        ),
        (
            "POST",
            [b"streamed ", b"request"],
            [
                "starting",
                "wrote_headers",
                "wrote_body_data",
                "wrote_body",
                "got_headers",
                "got_body_data",
            ],
        ),
    ],
)
async def test_signal_order(method: str, body: Any, expected: list[str]) -> None:
    async with serve_http(echo) as server, anysoup.Session() as session:
        msg = Message(method, server.url_for("/"), body=body)
        log: list[str] = []
        _record_signals(msg, log)
        # a coroutine handler is awaited before the message goes on
        for name in ("starting", "got_headers", "got_body"):

            async def slow(emitter: Message, _name: str = name) -> None:
                await anyio.sleep(0.02)
                log.append(f"{_name} (async)")

            getattr(msg, name).connect(slow)
        response = await session.send_and_read(msg)
        assert response == (
            b"" if body is None else b"".join([body] if isinstance(body, bytes) else body)
        )
        if body is None:
            expected = [s for s in expected if s != "got_body_data"]
        with_async = []
        for name in [*expected, "got_body", "finished"]:
            with_async.append(name)
            if name in ("starting", "got_headers", "got_body"):
                with_async.append(f"{name} (async)")
        assert log == with_async


async def test_signal_order_when_body_is_closed_early() -> None:
    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        await conn.respond(200, [], b"x" * 1000)

    async with serve_http(handler) as server, anysoup.Session() as session:
        msg = Message("GET", server.url_for("/"))
        log: list[str] = []
        _record_signals(msg, log)
        body = await session.send(msg)
        assert log == ["starting", "wrote_headers", "wrote_body", "got_headers"]
        await body.aclose()
        assert log[-1] == "finished" and log.count("finished") == 1


async def test_signal_disconnect() -> None:
    async with serve_http(echo) as server, anysoup.Session() as session:
        msg = Message("GET", server.url_for("/"))
        calls: list[str] = []
        handler_id = msg.got_headers.connect(lambda m: calls.append("got_headers"))
        msg.got_headers.disconnect(handler_id)
        with pytest.raises(ValueError):
            msg.got_headers.disconnect(handler_id)
        await session.send_and_read(msg)
        assert calls == []


# -- metrics, remote address, network events -----------------------------------


async def test_metrics_collected_with_flag() -> None:
    async with serve_http(echo) as server, anysoup.Session() as session:
        msg = Message("POST", server.url_for("/m"), body=b"x" * 100)
        msg.add_flags(MessageFlags.COLLECT_METRICS)
        body = await session.send_and_read(msg)
        metrics = msg.metrics
        assert metrics is not None and msg.get_metrics() is metrics
        assert metrics.fetch_start > 0
        assert metrics.dns_start == metrics.dns_end == 0.0  # an IP address: no lookup
        assert metrics.tls_start == 0.0  # plain http
        assert metrics.fetch_start <= metrics.connect_start <= metrics.connect_end
        assert metrics.connect_end <= metrics.request_start <= metrics.response_start
        assert metrics.response_start <= metrics.response_end
        assert metrics.request_header_bytes_sent > 0
        assert metrics.request_body_size == 100
        assert metrics.response_header_bytes_received > 0
        assert metrics.response_body_size == len(body) == 100

        # a reused connection: no connect step
        again = Message("GET", server.url_for("/m2"))
        again.add_flags(MessageFlags.COLLECT_METRICS)
        await session.send_and_read(again)
        assert again.metrics is not None
        assert again.metrics.connect_start == again.metrics.connect_end == 0.0
        assert again.metrics.request_start > 0 and again.metrics.response_end > 0
        assert server.connections == 1


async def test_no_metrics_without_flag() -> None:
    async with serve_http(echo) as server, anysoup.Session() as session:
        msg = Message("GET", server.url_for("/"))
        await session.send_and_read(msg)
        assert msg.metrics is None


async def test_remote_address() -> None:
    async with serve_http(echo) as server, anysoup.Session() as session:
        msg = Message("GET", server.url_for("/"))
        assert msg.remote_address is None
        await session.send_and_read(msg)
        assert msg.remote_address == ("127.0.0.1", server.port)
        assert msg.get_remote_address() == msg.remote_address


async def test_network_events_for_a_new_connection() -> None:
    async with serve_http(echo) as server, anysoup.Session() as session:
        events: list[tuple[NetworkEvent, object]] = []
        msg = Message("GET", server.url_for("/"))
        msg.network_event.connect(lambda m, event, conn: events.append((event, conn)))
        await session.send_and_read(msg)
        assert [e for e, _ in events] == [
            NetworkEvent.CONNECTING,
            NetworkEvent.CONNECTED,
            NetworkEvent.COMPLETE,
        ]
        assert len({id(c) for _, c in events}) == 1 and events[0][1] is not None

        # the next message reuses the connection: no events
        events2: list[NetworkEvent] = []
        msg2 = Message("GET", server.url_for("/"))
        msg2.network_event.connect(lambda m, event, conn: events2.append(event))
        await session.send_and_read(msg2)
        assert events2 == [] and server.connections == 1


async def test_network_events_with_name_resolution() -> None:
    async with serve_http(echo) as server, anysoup.Session() as session:
        events: list[NetworkEvent] = []
        msg = Message("GET", f"http://localhost:{server.port}/")
        msg.network_event.connect(lambda m, event, conn: events.append(event))
        await session.send_and_read(msg)
        assert events[:2] == [NetworkEvent.RESOLVING, NetworkEvent.RESOLVED]
        assert events[-2:] == [NetworkEvent.CONNECTED, NetworkEvent.COMPLETE]
        assert NetworkEvent.CONNECTING in events
