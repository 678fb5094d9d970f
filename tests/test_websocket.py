"""WebSockets against the third-party ``websockets`` server: the client as another
implementation sees it (echo, fragments, subprotocols, deflate, pings, close)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import pytest
from ws_servers import websockets_server

import anysoup
from anysoup import (
    Message,
    Session,
    WebsocketCloseCode,
    WebsocketClosed,
    WebsocketDataType,
    WebsocketExtensionDeflate,
    WebsocketState,
)

pytestmark = pytest.mark.anyio

LeakCheck = Callable[[Session], Awaitable[None]]


@pytest.fixture(scope="module")
def ws_url() -> object:
    with websockets_server() as url:
        yield url


@pytest.fixture(scope="module")
def ws_plain_url() -> object:
    with websockets_server(compression=None) as url:
        yield url


@pytest.fixture(scope="module")
def ws_proto_url() -> object:
    with websockets_server(compression=None, subprotocols=["chat.v2", "chat.v1"]) as url:
        yield url


async def test_echo_text_and_binary(ws_url: str, leak_check: LeakCheck) -> None:
    async with Session() as session:
        async with session.websocket_connect(Message("GET", ws_url + "/echo")) as ws:
            assert ws.state is WebsocketState.OPEN
            await ws.send_text("héllo")
            assert await ws.receive() == "héllo"
            await ws.send_binary(b"\x00\x01\xff")
            assert await ws.receive() == b"\x00\x01\xff"
            await ws.send_message(WebsocketDataType.TEXT, b"as bytes")
            assert await ws.receive() == "as bytes"
            await ws.send_message(WebsocketDataType.BINARY, "as text")
            assert await ws.receive() == b"as text"
        assert ws.state is WebsocketState.CLOSED
        assert ws.close_code == WebsocketCloseCode.NORMAL
        assert session.statistics().detached == 0
    await leak_check(session)


async def test_await_form_and_uri(ws_url: str, leak_check: LeakCheck) -> None:
    async with Session() as session:
        msg = Message("GET", ws_url + "/echo")
        ws = await session.websocket_connect(msg, origin="http://example.org")
        assert msg.status == 101
        assert ws.uri == msg.uri
        assert ws.origin == "http://example.org"
        assert session.statistics().detached == 1
        assert session.statistics().connections == 0  # no longer counted by the pool
        await ws.send_text("one")
        assert await ws.receive() == "one"
        await ws.close()
        assert ws.state is WebsocketState.CLOSED
        await ws.close()  # twice: nothing happens
        with pytest.raises(WebsocketClosed) as info:
            await ws.receive()
        assert info.value.code == 1000
        with pytest.raises(WebsocketClosed):
            await ws.send_text("after")
    await leak_check(session)


async def test_session_close_closes_websocket(ws_url: str, leak_check: LeakCheck) -> None:
    async with Session() as session:
        ws = await session.websocket_connect(Message("GET", ws_url + "/echo"))
    assert ws.state is WebsocketState.CLOSED
    assert ws.close_code == WebsocketCloseCode.GOING_AWAY
    with pytest.raises(WebsocketClosed):
        await ws.receive()
    await leak_check(session)


async def test_deflate_negotiated_and_used(ws_url: str) -> None:
    async with (
        Session() as session,
        session.websocket_connect(Message("GET", ws_url + "/echo")) as ws,
    ):
        (extension,) = ws.extensions
        assert isinstance(extension, WebsocketExtensionDeflate)
        text = "compressible " * 5000
        await ws.send_text(text)
        assert await ws.receive() == text
        for i in range(20):  # context takeover: many messages through one window
            await ws.send_binary(bytes([i]) * 3000)
            assert await ws.receive() == bytes([i]) * 3000


async def test_deflate_not_offered_without_the_manager(ws_url: str) -> None:
    async with Session() as session:
        session.remove_feature_by_type(anysoup.WebsocketExtensionManager)
        msg = Message("GET", ws_url + "/echo")
        async with session.websocket_connect(msg) as ws:
            assert ws.extensions == []
            assert "Sec-WebSocket-Extensions" not in msg.request_headers


async def test_large_and_fragmented(ws_url: str) -> None:
    async with Session() as session:
        async with session.websocket_connect(Message("GET", ws_url + "/echo")) as ws:
            ws.max_incoming_payload_size = 4 * 1024 * 1024
            big = bytes(range(256)) * 3500  # 875 KiB: the server takes at most 1 MiB
            await ws.send_binary(big)
            assert await ws.receive() == big
        async with session.websocket_connect(
            Message("GET", ws_url + "/fragments?n=50&text=piece%20")
        ) as ws:
            assert await ws.receive() == "piece " * 4 * 50


async def test_subprotocol_negotiation(ws_proto_url: str) -> None:
    async with Session() as session:
        async with session.websocket_connect(
            Message("GET", ws_proto_url + "/protocol"), protocols=["chat.v1", "chat.v2"]
        ) as ws:
            assert ws.protocol in ("chat.v1", "chat.v2")
            assert await ws.receive() == ws.protocol
        async with session.websocket_connect(
            Message("GET", ws_proto_url + "/protocol"), protocols=["chat.v1"]
        ) as ws:
            assert ws.protocol == "chat.v1"


async def test_ping_pong_and_server_ping(ws_plain_url: str) -> None:
    async with (
        Session() as session,
        session.websocket_connect(Message("GET", ws_plain_url + "/ping")) as ws,
    ):
        pongs: list[bytes] = []
        ws.pong.connect(lambda ws, data: pongs.append(data))
        await ws.ping(b"client-ping")
        await ws.send_text("go")  # the server pings; the reader answers it
        assert await ws.receive() == "pong seen"
        assert pongs == [b"client-ping"]


async def test_keepalive_pings(ws_plain_url: str) -> None:
    async with (
        Session() as session,
        session.websocket_connect(Message("GET", ws_plain_url + "/echo")) as ws,
    ):
        pongs: list[bytes] = []
        three = anyio.Event()

        def on_pong(ws: object, data: bytes) -> None:
            pongs.append(data)
            if len(pongs) == 3:
                three.set()

        ws.pong.connect(on_pong)
        ws.keepalive_pong_timeout = 2
        ws.keepalive_interval = 0.05
        with anyio.fail_after(5):
            await three.wait()
        ws.keepalive_interval = 0
        assert all(p.startswith(b"anysoup-") for p in pongs)
        await ws.send_text("still here")
        assert await ws.receive() == "still here"


@pytest.mark.parametrize("code", [1000, 1001, 4000])
async def test_close_from_server(ws_plain_url: str, code: int) -> None:
    events: list[str] = []
    closed = anyio.Event()

    def on_closed(ws: object) -> None:
        events.append("closed")
        closed.set()

    async with Session() as session:
        msg = Message("GET", f"{ws_plain_url}/close?code={code}&reason=bye")
        async with session.websocket_connect(msg) as ws:
            ws.closing.connect(lambda ws: events.append("closing"))
            ws.closed.connect(on_closed)
            await ws.send_text("close please")
            if code in (1000, 1001):
                assert [m async for m in ws] == []
            else:
                with pytest.raises(WebsocketClosed) as info:
                    async for _ in ws:
                        pass
                assert info.value.code == code
                assert info.value.reason == "bye"
            with anyio.fail_after(5):
                await closed.wait()
            assert ws.state is WebsocketState.CLOSED
            assert ws.close_code == code
            assert ws.close_data == "bye"
    assert events == ["closing", "closed"]


@pytest.mark.parametrize("code", [1000, 4321])
async def test_close_from_client(ws_plain_url: str, code: int) -> None:
    async with Session() as session:
        ws = await session.websocket_connect(Message("GET", ws_plain_url + "/echo"))
        await ws.close(code, "done here")
        assert ws.state is WebsocketState.CLOSED
        assert ws.close_code == code  # the server echoes the code
        with pytest.raises(ValueError):
            await ws.close(1005)


async def test_server_vanishes_mid_message(ws_plain_url: str, leak_check: LeakCheck) -> None:
    errors: list[anysoup.WebsocketError] = []
    async with (
        Session() as session,
        session.websocket_connect(Message("GET", ws_plain_url + "/vanish")) as ws,
    ):
        ws.error.connect(lambda ws, error: errors.append(error))
        await ws.send_text("go away")
        with pytest.raises(WebsocketClosed) as info:
            await ws.receive()
        assert info.value.code == WebsocketCloseCode.ABNORMAL
        assert "127.0.0.1" in str(info.value)
    assert ws.close_code == WebsocketCloseCode.ABNORMAL
    assert len(errors) == 1
    await leak_check(session)


async def test_handshake_headers(ws_plain_url: str) -> None:
    async with Session(user_agent="ws-test") as session:
        msg = Message("GET", ws_plain_url + "/headers")
        async with session.websocket_connect(msg, origin="https://app.example") as ws:
            lines = []
            while (line := await ws.receive()) != "":
                lines.append(str(line).lower())
    assert "origin: https://app.example" in lines
    assert "user-agent: ws-test" in lines
    assert "sec-websocket-version: 13" in lines
    assert "upgrade: websocket" in lines


@pytest.mark.parametrize(
    "params",
    [
        {"server_no_context_takeover": True},
        {"client_no_context_takeover": True},
        {"server_no_context_takeover": True, "client_no_context_takeover": True},
        {"server_max_window_bits": 10},
        {"client_max_window_bits": 9},
        {"server_max_window_bits": 9, "client_max_window_bits": 12},
    ],
    ids=lambda params: ",".join(f"{k}={v}" for k, v in params.items()),
)
async def test_deflate_parameters_from_the_server(params: dict[str, object]) -> None:
    """Each answer the websockets server can give configures both directions:
    a long exchange of similar messages round-trips through both windows."""
    from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

    factory = ServerPerMessageDeflateFactory(**params)  # type: ignore[arg-type]
    with websockets_server(extensions=[factory]) as url:
        async with (
            Session() as session,
            session.websocket_connect(Message("GET", url + "/echo")) as ws,
        ):
            (extension,) = ws.extensions
            assert isinstance(extension, WebsocketExtensionDeflate)
            for name, value in params.items():
                assert getattr(extension, name) == value
            for i in range(30):
                text = f"message {i} " + "the same words again " * (50 + i)
                await ws.send_text(text)
                assert await ws.receive() == text


async def test_close_from_another_task_while_iterating(ws_plain_url: str) -> None:
    """The receiving task reads the peer's close answer itself; the reader task
    never reads the socket at the same time (no BusyResourceError)."""
    async with (
        Session() as session,
        session.websocket_connect(Message("GET", ws_plain_url + "/echo")) as ws,
    ):
        got: list[str | bytes] = []

        async def closer() -> None:
            await ws.send_text("before the close")
            await anyio.sleep(0.05)  # the iterating task is now blocked reading
            await ws.close(1000)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(closer)
                async for message in ws:
                    got.append(message)
        assert got == ["before the close"]
        assert ws.close_code == WebsocketCloseCode.NORMAL
