"""The HTTP/2 test servers themselves, driven by a bare h2 client on both backends."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.abc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h11
import pytest
from anyio.streams.tls import TLSAttribute, TLSStream
from h2.connection import ConnectionState
from h2_scripts import (
    continuation_flood,
    echo,
    gated,
    goaway_after,
    header_bomb_handler,
    http_1_1_required,
    huge_download,
    misdirected,
    refuse,
    respond,
    route,
    stall_upload,
)
from h2_servers import (
    ErrorCodes,
    H2Server,
    H2ServerConnection,
    ServerStream,
    SettingCodes,
    serve_h2,
)
from servers import CertFiles, echo_app, serve_asgi

BOUND = 5  #: seconds any single exchange may take


@dataclass
class Response:
    status: int | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    ended: bool = False
    reset: int | None = None  #: the server's RST_STREAM error code


class H2Client:
    """A minimal h2 client standing in for anysoup: one task pumps, no reader task."""

    def __init__(self, stream: TLSStream, authority: str, *, auto_ack: bool = True) -> None:
        self.stream = stream
        self.authority = authority
        self.auto_ack = auto_ack  #: give the windows back as data arrives
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.responses: dict[int, Response] = {}
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.settings_received = False
        self.pings_acked = 0
        self.pings_received = 0
        self.eof = False

    async def flush(self) -> None:
        if data := self.h2.data_to_send():
            await self.stream.send(data)

    async def request(
        self, path: str, method: str = "GET", body: bytes = b"", *, end: bool = True
    ) -> int:
        stream_id = self.h2.get_next_available_stream_id()
        fields = [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", self.authority.encode()),
            (b":path", path.encode()),
        ]
        self.h2.send_headers(stream_id, fields, end_stream=not body and end)
        self.responses[stream_id] = Response()
        size = self.h2.max_outbound_frame_size
        for start in range(0, len(body), size):
            last = end and start + size >= len(body)
            self.h2.send_data(stream_id, body[start : start + size], end_stream=last)
        await self.flush()
        return stream_id

    async def pump(self) -> None:
        """Receive once and handle what came."""
        try:
            data = await self.stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            self.eof = True
            return
        for event in self.h2.receive_data(data):
            self.handle(event)
        try:
            await self.flush()
        except anyio.BrokenResourceError:  # e.g. the server reset the connection
            self.eof = True

    def handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            response = self.responses[event.stream_id]
            response.headers = list(event.headers)
            response.status = int(dict(response.headers)[b":status"])
        elif isinstance(event, h2.events.DataReceived):
            self.responses[event.stream_id].body += event.data
            if self.auto_ack:
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            self.responses[event.stream_id].ended = True
        elif isinstance(event, h2.events.StreamReset):
            self.responses[event.stream_id].reset = int(event.error_code)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event
            # h2 stops at any GOAWAY, yet the streams up to its last stream id
            # may still finish (RFC 9113 §6.8; python-hyper/h2#1181).
            self.h2.state_machine.state = ConnectionState.CLIENT_OPEN
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self.settings_received = True
        elif isinstance(event, h2.events.PingAckReceived):
            self.pings_acked += 1
        elif isinstance(event, h2.events.PingReceived):
            self.pings_received += 1  # h2 acknowledges it

    async def until(self, predicate: Callable[[], object]) -> None:
        while not predicate():
            assert not self.eof, "the server closed the connection"
            await self.pump()

    async def fetch(self, path: str, method: str = "GET", body: bytes = b"") -> Response:
        stream_id = await self.request(path, method, body)
        response = self.responses[stream_id]
        await self.until(lambda: response.ended or response.reset is not None)
        return response


@asynccontextmanager
async def open_tls(
    url: str, context: ssl.SSLContext, alpn: Sequence[str] = ("h2",)
) -> AsyncIterator[TLSStream]:
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    context.set_alpn_protocols(list(alpn))
    tcp = await anyio.connect_tcp(parts.hostname, parts.port)
    stream = await TLSStream.wrap(
        tcp, hostname="localhost", ssl_context=context, standard_compatible=False
    )
    async with stream:
        yield stream


@asynccontextmanager
async def open_h2(
    server: H2Server | str, context: ssl.SSLContext, *, auto_ack: bool = True
) -> AsyncIterator[H2Client]:
    url = server if isinstance(server, str) else server.url
    async with open_tls(url, context) as stream:
        assert stream.extra(TLSAttribute.alpn_protocol) == "h2"
        client = H2Client(stream, urlsplit(url).netloc, auto_ack=auto_ack)
        client.h2.initiate_connection()
        await client.flush()
        yield client


async def test_get_is_answered(
    tls_server_context: ssl.SSLContext, tls_client_context: ssl.SSLContext
) -> None:
    handler = respond(200, b"hello", [("content-type", "text/plain")])
    async with serve_h2(handler, tls_server_context) as server:
        assert server.url == f"https://127.0.0.1:{server.port}"
        async with open_h2(server, tls_client_context) as client:
            with anyio.fail_after(BOUND):
                response = await client.fetch("/hi?x=1")
            assert (response.status, bytes(response.body)) == (200, b"hello")
            assert (b"content-type", b"text/plain") in response.headers
        (conn,) = server.connections
        assert (server.accepted, conn.streams_opened, conn.stream_ids) == (1, 1, [1])
        stream = conn.streams[1]
        assert (stream.method, stream.path, stream.header(":authority")) == (
            "GET",
            "/hi?x=1",
            f"127.0.0.1:{server.port}".encode(),
        )
        with anyio.fail_after(BOUND):
            await server.wait_connections_closed()
        assert conn.closed


async def test_two_concurrent_streams(
    tls_server_context: ssl.SSLContext, tls_client_context: ssl.SSLContext
) -> None:
    async def both_open_then_echo(stream: ServerStream) -> None:
        conn = stream.connection
        await conn.wait_until(lambda: conn.streams_opened == 2)
        await echo(stream)

    async with (
        serve_h2(both_open_then_echo, tls_server_context) as server,
        open_h2(server, tls_client_context) as client,
    ):
        with anyio.fail_after(BOUND):
            first = await client.request("/a", "POST", b"one")
            second = await client.request("/b", "POST", b"two")
            await client.until(lambda: all(r.ended for r in client.responses.values()))
        assert bytes(client.responses[first].body) == b"one"
        assert dict(client.responses[second].headers)[b"x-path"] == b"/b"
        (conn,) = server.connections
        assert conn.max_concurrent_streams_seen == 2
        assert conn.streams[3].data_received == 3


async def test_send_waits_for_window_update(
    tls_server_context: ssl.SSLContext, tls_client_context: ssl.SSLContext
) -> None:
    total = 100_000
    async with (
        serve_h2(huge_download(total), tls_server_context) as server,
        open_h2(server, tls_client_context, auto_ack=False) as client,
    ):
        with anyio.fail_after(BOUND):
            stream_id = await client.request("/big")
            response = client.responses[stream_id]
            await client.until(lambda: len(response.body) == 65535)
            (conn,) = server.connections
            stream = conn.streams[stream_id]
            await server.wait_until(lambda: stream.window_waits)
            # The server sent exactly the initial window and is waiting.
            assert stream.data_sent == conn.data_sent == 65535
            assert conn.window_updates == []
            client.h2.acknowledge_received_data(65535, stream_id)
            client.auto_ack = True
            await client.flush()
            await client.until(lambda: response.ended)
        assert len(response.body) == total
        assert stream.data_sent == total <= conn.window_granted(stream_id)
        assert total <= conn.window_granted(0)


async def test_graceful_goaway_lets_streams_finish(
    tls_server_context: ssl.SSLContext, tls_client_context: ssl.SSLContext
) -> None:
    gate = anyio.Event()
    handler = gated(gate, respond(200, b"done"))
    async with (
        serve_h2(handler, tls_server_context, on_connection=goaway_after(1)) as server,
        open_h2(server, tls_client_context) as client,
    ):
        with anyio.fail_after(BOUND):
            stream_id = await client.request("/slow")
            await client.until(lambda: client.goaway is not None)
            assert client.goaway is not None
            assert (client.goaway.error_code, client.goaway.last_stream_id) == (0, 1)
            gate.set()
            await client.until(lambda: client.responses[stream_id].ended)
            assert bytes(client.responses[stream_id].body) == b"done"
            await client.until(lambda: client.eof)  # then the server closes
        assert server.connections[0].goaway_sent == (0, 1)


async def test_goaway_below_open_streams_drops_them(
    tls_server_context: ssl.SSLContext, tls_client_context: ssl.SSLContext
) -> None:
    gate = anyio.Event()
    script = goaway_after(2, error_code=ErrorCodes.ENHANCE_YOUR_CALM, last_stream_id=1)
    async with (
        serve_h2(gated(gate, echo), tls_server_context, on_connection=script) as server,
        open_h2(server, tls_client_context) as client,
    ):
        with anyio.fail_after(BOUND):
            kept = await client.request("/kept")
            dropped = await client.request("/dropped")
            await client.until(lambda: client.goaway is not None)
            assert client.goaway is not None
            assert client.goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
            assert client.goaway.last_stream_id == kept
            gate.set()
            await client.until(lambda: client.responses[kept].ended)
            await client.until(lambda: client.eof)
        assert client.responses[dropped].status is None
        (conn,) = server.connections
        assert sorted(conn.streams) == [kept, dropped]
        assert conn.goaway_sent == (ErrorCodes.ENHANCE_YOUR_CALM, kept)


async def test_alpn_http11_fallback(
    tls_server_context: ssl.SSLContext, tls_client_context: ssl.SSLContext
) -> None:
    handler = respond(200, b"over h1", [("x-a", "1")])
    async with (
        serve_h2(handler, tls_server_context, alpn=("http/1.1",)) as server,
        open_tls(server.url, tls_client_context, alpn=("h2", "http/1.1")) as stream,
    ):
        assert stream.extra(TLSAttribute.alpn_protocol) == "http/1.1"
        client = h11.Connection(h11.CLIENT)
        request = h11.Request(method="GET", target="/x", headers=[("host", "localhost")])
        await stream.send(client.send(request) + client.send(h11.EndOfMessage()))
        events: list[Any] = []
        with anyio.fail_after(BOUND):
            while not events or not isinstance(events[-1], h11.EndOfMessage):
                client.receive_data(await stream.receive())
                while (event := client.next_event()) is not h11.NEED_DATA:
                    events.append(event)
        response, data = events[0], events[1]
        assert isinstance(response, h11.Response) and isinstance(data, h11.Data)
        assert (response.status_code, data.data) == (200, b"over h1")
        assert server.connections == []
        assert [r.target for r in server.http1.requests] == ["/x"]


async def test_max_concurrent_streams_refuses_extra(
    tls_server_context: ssl.SSLContext, tls_client_context: ssl.SSLContext
) -> None:
    gate = anyio.Event()
    settings = {SettingCodes.MAX_CONCURRENT_STREAMS: 1}
    async with (
        serve_h2(gated(gate, echo), tls_server_context, settings=settings) as server,
        open_h2(server, tls_client_context) as client,
    ):
        with anyio.fail_after(BOUND):
            await client.until(lambda: client.settings_received)
            assert client.h2.remote_settings.max_concurrent_streams == 1
            await server.wait_until(lambda: server.connections[0].settings_acked)
            # A client that ignores the limit: the second stream is refused.
            client.h2.remote_settings[SettingCodes.MAX_CONCURRENT_STREAMS] = 10
            client.h2.remote_settings.acknowledge()
            first = await client.request("/1")
            second = await client.request("/2")
            await client.until(lambda: client.responses[second].reset is not None)
            gate.set()
            await client.until(lambda: client.responses[first].ended)
        assert client.responses[second].reset == ErrorCodes.REFUSED_STREAM
        (conn,) = server.connections
        assert (conn.refused_streams, conn.max_concurrent_streams_seen) == ([second], 2)


async def test_stream_faults_while_others_continue(
    tls_server_context: ssl.SSLContext, tls_client_context: ssl.SSLContext
) -> None:
    handler = route(
        {
            "/refused": refuse(),
            "/h11": http_1_1_required(),
            "/misdirected": misdirected(),
            "/stalled": stall_upload,
        },
        default=echo,
    )
    async with (
        serve_h2(handler, tls_server_context) as server,
        open_h2(server, tls_client_context) as client,
    ):
        with anyio.fail_after(BOUND):
            # The stalled upload uses up its stream's window, not the connection's.
            stalled = await client.request("/stalled", "POST", b"u" * 65535, end=False)
            await client.until(lambda: client.h2.outbound_flow_control_window == 65535)
            assert client.h2.local_flow_control_window(stalled) == 0
            refused = await client.request("/refused")
            h11_required = await client.request("/h11")
            wrong = await client.request("/misdirected")
            ok = await client.request("/ok", "POST", b"x" * 1000)
            await client.until(lambda: client.responses[ok].ended)
            await client.until(lambda: client.responses[wrong].ended)
            await client.until(lambda: client.responses[h11_required].reset is not None)
            await client.until(lambda: client.responses[refused].reset is not None)
        (conn,) = server.connections
        assert conn.streams[stalled].data_received == 65535
        assert [s for s, _ in conn.resets_received] == []
        assert client.responses[refused].reset == ErrorCodes.REFUSED_STREAM
        assert client.responses[h11_required].reset == 0xD
        assert client.responses[wrong].status == 421
        assert bytes(client.responses[ok].body) == b"x" * 1000
        assert not client.responses[stalled].ended


async def test_client_frames_are_counted(
    tls_server_context: ssl.SSLContext, tls_client_context: ssl.SSLContext
) -> None:
    gate = anyio.Event()
    async with (
        serve_h2(gated(gate, echo), tls_server_context) as server,
        open_h2(server, tls_client_context) as client,
    ):
        with anyio.fail_after(BOUND):
            stream_id = await client.request("/cancelled")
            client.h2.reset_stream(stream_id, ErrorCodes.CANCEL)
            client.h2.ping(b"12345678")
            client.h2.increment_flow_control_window(1000)
            await client.flush()
            conn = await _first_connection(server)
            await conn.wait_until(lambda: conn.resets_received and conn.pings_received)
            await conn.ping_flood(5)
            await client.until(lambda: client.pings_acked == 1 and client.pings_received == 5)
            await conn.wait_until(lambda: conn.ping_acks_received == 5)
            conn.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: 7})
            await client.until(lambda: client.h2.remote_settings.max_concurrent_streams == 7)
            await conn.wait_until(lambda: conn.settings_acked == 2)
            client.h2.close_connection()
            await client.flush()
            await conn.wait_until(lambda: conn.goaway_received is not None)
        assert conn.resets_received == [(stream_id, ErrorCodes.CANCEL)]
        assert conn.pings_received == [b"12345678"]
        assert (0, 1000) in conn.window_updates
        assert conn.goaway_received is not None and conn.goaway_received.error_code == 0


async def test_close_and_abort_end_the_connection(
    tls_server_context: ssl.SSLContext, tls_client_context: ssl.SSLContext
) -> None:
    async def headers_then_drop(stream: ServerStream) -> None:
        await stream.send_headers(200)
        if stream.path == "/close":
            await stream.connection.close()
        else:
            await stream.connection.abort()

    async with serve_h2(headers_then_drop, tls_server_context) as server:
        for path in ("/close", "/abort"):
            async with open_h2(server, tls_client_context) as client:
                with anyio.fail_after(BOUND):
                    stream_id = await client.request(path)
                    await client.until(lambda: client.eof)
                # close() writes what was queued first; abort() may lose it.
                if path == "/close":
                    assert client.responses[stream_id].status == 200
                assert not client.responses[stream_id].ended
        with anyio.fail_after(BOUND):
            await server.wait_connections_closed()
        assert [c.closed for c in server.connections] == [True, True]


async def test_handler_bug_propagates(
    tls_server_context: ssl.SSLContext, tls_client_context: ssl.SSLContext
) -> None:
    async def broken(stream: ServerStream) -> None:
        raise AssertionError("handler bug")

    with pytest.raises(ExceptionGroup) as caught:
        async with (
            serve_h2(broken, tls_server_context) as server,
            open_h2(server, tls_client_context) as client,
        ):
            await client.fetch("/")
    assert caught.group_contains(AssertionError, match="handler bug")


async def test_header_bomb_and_continuation_flood(
    tls_server_context: ssl.SSLContext, tls_client_context: ssl.SSLContext
) -> None:
    async def flood(stream: ServerStream) -> None:
        await stream.send_raw(continuation_flood(stream.stream_id, 100))
        await anyio.sleep_forever()

    handler = route({"/bomb": header_bomb_handler(300 * 1024), "/flood": flood})
    for path, message in (("/bomb", "header list"), ("/flood", "continuation")):
        async with (
            serve_h2(handler, tls_server_context) as server,
            open_h2(server, tls_client_context) as client,
        ):
            await client.request(path)
            with anyio.fail_after(BOUND), pytest.raises(h2.exceptions.ProtocolError) as info:
                await client.until(lambda: False)
            assert message in str(info.value).lower()
            assert server.connections[0].streams[1].raw


async def test_hypercorn_negotiates_h2(
    tls_cert_files: CertFiles, tls_client_context: ssl.SSLContext
) -> None:
    app = serve_asgi(
        echo_app, ssl_certfile=tls_cert_files.certfile, ssl_keyfile=tls_cert_files.keyfile
    )
    async with app as url, open_h2(url, tls_client_context) as client:
        with anyio.fail_after(BOUND):
            response = await client.fetch("/hello")
            echoed = await client.fetch("/echo", "POST", b"ping")
        assert (response.status, bytes(response.body)) == (200, b"hello")
        assert bytes(echoed.body) == b"ping"


async def _first_connection(server: H2Server) -> H2ServerConnection:
    await server.wait_until(lambda: server.connections)
    return server.connections[0]
