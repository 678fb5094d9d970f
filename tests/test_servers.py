"""The test servers themselves, driven by a bare h11 client on both backends."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.abc
import h11
import pytest
from anyio.streams.tls import TLSAttribute, TLSStream
from servers import (
    CertFiles,
    ReceivedRequest,
    ServerConnection,
    echo_app,
    hanging_listener,
    serve_asgi,
    serve_http,
    serve_raw,
)


class Client:
    """A minimal h11 client standing in for anysoup."""

    def __init__(self, stream: anyio.abc.ByteStream, host: str) -> None:
        self.stream = stream
        self.host = host
        self.h11 = h11.Connection(h11.CLIENT)

    async def send(self, *events: h11.Event) -> None:
        for event in events:
            data = self.h11.send(event)
            if data:
                await self.stream.send(data)

    async def next_event(self) -> Any:
        while (event := self.h11.next_event()) is h11.NEED_DATA:
            try:
                self.h11.receive_data(await self.stream.receive())
            except anyio.EndOfStream:
                self.h11.receive_data(b"")
        return event

    async def read_response(self) -> tuple[h11.Response, bytes, list[tuple[bytes, bytes]]]:
        """Read a final response: its head, its body and its trailers."""
        while not isinstance(response := await self.next_event(), h11.Response):
            assert isinstance(response, h11.InformationalResponse), response
        body = b""
        while isinstance(event := await self.next_event(), h11.Data):
            body += event.data
        assert isinstance(event, h11.EndOfMessage), event
        return response, body, list(event.headers)

    async def request(
        self, method: str, target: str, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()
    ) -> tuple[h11.Response, bytes]:
        if self.h11.our_state is h11.DONE:
            self.h11.start_next_cycle()
        fields = [("host", self.host), ("content-length", str(len(body))), *headers]
        await self.send(h11.Request(method=method, target=target, headers=fields))
        await self.send(h11.Data(data=body), h11.EndOfMessage())
        response, data, _ = await self.read_response()
        return response, data


@asynccontextmanager
async def open_client(
    url: str, ssl_context: ssl.SSLContext | None = None, hostname: str = "localhost"
) -> AsyncIterator[Client]:
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    stream: anyio.abc.ByteStream = await anyio.connect_tcp(parts.hostname, parts.port)
    if ssl_context is not None:
        # Like HTTP clients, tolerate a close without close_notify (RFC 9112 §9.8).
        stream = await TLSStream.wrap(
            stream, hostname=hostname, ssl_context=ssl_context, standard_compatible=False
        )
    async with stream:
        yield Client(stream, parts.netloc)


async def test_keep_alive_exchange_on_one_connection() -> None:
    async def handler(conn: ServerConnection, request: ReceivedRequest) -> None:
        await conn.respond(
            200, [("x-seen", request.target)], request.method.encode() + request.body
        )

    async with serve_http(handler) as server:
        async with open_client(server.url) as client:
            response, body = await client.request("GET", "/a")
            assert (response.status_code, body) == (200, b"GET")
            assert dict(response.headers)[b"content-length"] == b"3"
            response, body = await client.request("POST", "/b", b"data", [("X-Thing", "1")])
            assert (response.status_code, body) == (200, b"POSTdata")
            response, body = await client.request("HEAD", "/c")
            assert (dict(response.headers)[b"content-length"], body) == (b"4", b"")
        with anyio.fail_after(5):
            await server.wait_connections_closed()
    assert (server.connections, server.open_connections) == (1, 0)
    assert [(r.method, r.target, r.body, r.connection) for r in server.requests] == [
        ("GET", "/a", b"", 0),
        ("POST", "/b", b"data", 0),
        ("HEAD", "/c", b"", 0),
    ]
    assert server.requests[1].header("X-THING") == "1"
    assert server.requests[1].header("missing") is None
    assert server.url_for("/x") == f"http://127.0.0.1:{server.port}/x"


async def test_connection_close_ends_the_connection() -> None:
    async def handler(conn: ServerConnection, request: ReceivedRequest) -> None:
        await conn.respond(body=b"bye")

    async with serve_http(handler) as server, open_client(server.url) as client:
        _, body = await client.request("GET", "/", headers=[("connection", "close")])
        assert body == b"bye"
        assert isinstance(await client.next_event(), h11.ConnectionClosed)


async def test_chunked_streaming_response_with_trailers() -> None:
    async def handler(conn: ServerConnection, request: ReceivedRequest) -> None:
        if request.target == "/whole":
            await conn.respond(body=b"all at once", chunked=True)
            return
        await conn.send_head(200, [("trailer", "x-sum")])
        for piece in (b"one ", b"two ", b"three"):
            await conn.send_data(piece)
        await conn.end(trailers=[("x-sum", "3")])

    async with serve_http(handler) as server, open_client(server.url) as client:
        await client.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
        await client.send(h11.EndOfMessage())
        response, body, trailers = await client.read_response()
        assert dict(response.headers)[b"transfer-encoding"] == b"chunked"
        assert (body, trailers) == (b"one two three", [(b"x-sum", b"3")])
        response, body = await client.request("GET", "/whole")
        assert dict(response.headers)[b"transfer-encoding"] == b"chunked"
        assert body == b"all at once"


async def test_expect_100_continue_with_read_body_false() -> None:
    async def handler(conn: ServerConnection, request: ReceivedRequest) -> None:
        assert request.header("expect") == "100-continue"
        await conn.send_informational(100)
        await conn.respond(body=await conn.read_body())

    async with serve_http(handler, read_body=False) as server, open_client(server.url) as client:
        fields = [("host", "x"), ("content-length", "5"), ("expect", "100-continue")]
        await client.send(h11.Request(method="PUT", target="/", headers=fields))
        assert isinstance(await client.next_event(), h11.InformationalResponse)
        await client.send(h11.Data(data=b"hello"), h11.EndOfMessage())
        _, body, _ = await client.read_response()
        assert body == b"hello"
    assert server.requests[0].body == b"hello"


async def test_connect_tunnel_keeps_pipelined_bytes() -> None:
    async def handler(conn: ServerConnection, request: ReceivedRequest) -> None:
        await conn.respond(200)
        assert await conn.stream.receive_exactly(4) == b"ping"
        await conn.send_raw(b"pong")

    async with serve_http(handler) as server, open_client(server.url) as client:
        host = [("host", "example.com:443")]
        await client.send(h11.Request(method="CONNECT", target="example.com:443", headers=host))
        await client.send(h11.EndOfMessage())
        await client.stream.send(b"ping")  # the tunnel's first bytes, before the 200
        response = await client.next_event()
        assert response.status_code == 200
        assert client.h11.our_state is h11.SWITCHED_PROTOCOL
        data = client.h11.trailing_data[0]
        while len(data) < 4:
            data += await client.stream.receive()
        assert data == b"pong"


async def test_raw_handler_closing_idle_keep_alive_connections() -> None:
    async def handler(conn: ServerConnection) -> None:
        while True:
            request = None
            with anyio.move_on_after(0.3):
                request = await conn.next_request()
            if request is None:
                return  # idle too long: serve_raw closes
            await conn.read_body()
            await conn.respond(body=request.target.encode())

    async with serve_raw(handler) as server, open_client(server.url) as client:
        assert (await client.request("GET", "/1"))[1] == b"/1"
        assert (await client.request("GET", "/2"))[1] == b"/2"
        client.h11.start_next_cycle()
        assert isinstance(await client.next_event(), h11.ConnectionClosed)
    assert [r.target for r in server.requests] == ["/1", "/2"]


async def test_raw_server_sends_garbage() -> None:
    async def handler(conn: ServerConnection) -> None:
        await conn.stream.receive_until(b"\r\n\r\n", 65536)
        await conn.send_raw(b"SPDY/9 banana\r\n\r\n")

    async with serve_raw(handler) as server, open_client(server.url) as client:
        with pytest.raises(h11.RemoteProtocolError):
            await client.request("GET", "/")


@pytest.mark.parametrize("where", ["on_connect", "handler"])
async def test_reset_reaches_the_client(where: str) -> None:
    async def reset(conn: ServerConnection, request: ReceivedRequest | None = None) -> None:
        await conn.reset()

    on_connect = reset if where == "on_connect" else None
    async with (
        serve_http(reset, on_connect=on_connect) as server,
        open_client(server.url) as client,
    ):
        with pytest.raises(anyio.BrokenResourceError) as caught:
            await client.request("GET", "/")
        assert isinstance(caught.value.__cause__, ConnectionResetError)
    assert (server.connections, server.open_connections) == (1, 0)


@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["TLSv1.2", "TLSv1.3"]
)
async def test_tls(
    tls_server_context: ssl.SSLContext,
    tls_client_context: ssl.SSLContext,
    version: ssl.TLSVersion,
) -> None:
    async def handler(conn: ServerConnection, request: ReceivedRequest) -> None:
        await conn.respond(body=b"secret")

    tls_client_context.maximum_version = version
    async with serve_http(handler, ssl_context=tls_server_context) as server:
        assert server.url.startswith("https://127.0.0.1:")
        async with open_client(server.url, tls_client_context, hostname="127.0.0.1") as client:
            assert (
                client.stream.extra(TLSAttribute.tls_version)
                == {
                    ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                    ssl.TLSVersion.TLSv1_3: "TLSv1.3",
                }[version]
            )
            for _ in range(2):
                assert (await client.request("GET", "/"))[1] == b"secret"
    assert server.connections == 1


async def test_untrusted_tls_client_does_not_fail_the_server(
    tls_server_context: ssl.SSLContext,
) -> None:
    async def handler(conn: ServerConnection, request: ReceivedRequest) -> None:
        raise AssertionError("no request can arrive")

    async with serve_http(handler, ssl_context=tls_server_context) as server:
        with pytest.raises(ssl.SSLCertVerificationError):
            await anyio.connect_tcp("127.0.0.1", server.port, tls=True)


async def test_handler_bug_fails_the_test() -> None:
    async def handler(conn: ServerConnection, request: ReceivedRequest) -> None:
        raise AssertionError("handler bug")

    # The client may also fail, seeing the connection close: both are reported.
    with pytest.raises(ExceptionGroup) as caught:
        async with serve_http(handler) as server, open_client(server.url) as client:
            await client.request("GET", "/")
    assert caught.group_contains(AssertionError, match="handler bug")


async def test_stalled_raw_server() -> None:
    async def handler(conn: ServerConnection) -> None:
        await anyio.sleep_forever()

    async with serve_raw(handler) as server, open_client(server.url) as client:
        with anyio.move_on_after(0.2) as scope:
            await client.request("GET", "/")
        assert scope.cancelled_caught


async def test_hanging_listener_blocks_connect() -> None:
    async with hanging_listener() as (host, port):
        with anyio.move_on_after(1.2) as scope:
            await anyio.connect_tcp(host, port)
        assert scope.cancelled_caught


async def test_hypercorn_echo_app() -> None:
    async with serve_asgi(echo_app) as url, open_client(url) as client:
        response, body = await client.request("GET", "/hello")
        assert (response.status_code, body) == (200, b"hello")
        response, body = await client.request("GET", "/stream?n=3&size=5")
        assert dict(response.headers)[b"transfer-encoding"] == b"chunked"
        assert body == b"x" * 15
        response, body = await client.request("GET", "/bytes/300")
        assert body == bytes(range(256)) + bytes(range(44))
        response, body = await client.request("GET", "/status/418")
        assert response.status_code == 418


async def test_hypercorn_echo_app_over_tls(
    tls_cert_files: CertFiles, tls_client_context: ssl.SSLContext
) -> None:
    app_url = serve_asgi(
        echo_app, ssl_certfile=tls_cert_files.certfile, ssl_keyfile=tls_cert_files.keyfile
    )
    async with app_url as url, open_client(url, tls_client_context) as client:
        assert url.startswith("https://")
        response, body = await client.request("POST", "/echo", b"ping", [("content-type", "a/b")])
        assert body == b"ping"
        assert (dict(response.headers)[b"x-method"], dict(response.headers)[b"content-type"]) == (
            b"POST",
            b"a/b",
        )
        _, body = await client.request("GET", "/headers", headers=[("x-a", "1"), ("x-a", "2")])
        assert json.loads(body)["x-a"] == "1, 2"
