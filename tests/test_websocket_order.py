"""A WebSocket ends in message order (issue 15, item 13; Autobahn cases 3.2-3.4,
4.1.3-4.1.5, 4.2.3-4.2.5, 5.15 and 7.1.6).

A scripted server sends, in one write, a valid message, then something that
ends the connection (a bad frame, bad UTF-8, an oversize message, or its
close frame), then a ping. The client must deliver the valid message first
and let the program answer it; the end comes when the program's
``receive()`` reaches it, or after a short grace if the program doesn't read.
Everything is checked from both ends: what the server received, in order,
and what the client's ``receive()``, ``close_code`` and signals say.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import pytest
from servers import Server
from ws_servers import Watch, WsPeer, frame, serve_ws
from wsproto.events import BytesMessage, CloseConnection, Pong, TextMessage

from anysoup import Message, Session, WebsocketClosed, WebsocketConnection, WebsocketState
from anysoup._drivers.websocket_inbox import ORDER_GRACE

pytestmark = pytest.mark.anyio

LeakCheck = Callable[[Session], Awaitable[None]]
Handler = Callable[[WsPeer], Awaitable[None]]

#: What every wait in these tests is bounded by.
BOUND = 5.0
#: The limit set for the oversize case (a small one keeps the write small).
SMALL_LIMIT = 1000
#: What the server sends after the frame that ends the connection.
LATE_PING = frame(0x9, b"after the end")

#: Frames that end the connection, and the close code the client must send.
ENDINGS = [
    # Reserved bits without an extension that defines them (Autobahn 3.2).
    pytest.param(bytes([0x80 | 0x20 | 0x1, 2]) + b"hi", 1002, id="reserved-bits"),
    pytest.param(frame(0x3, b"?"), 1002, id="reserved-opcode"),  # 4.1.x
    pytest.param(frame(0xB, b""), 1002, id="reserved-control-opcode"),  # 4.2.x
    pytest.param(frame(0x0, b"orphan"), 1002, id="continuation-first"),  # 5.15
    pytest.param(frame(0x1, b"ok \xff\xfe"), 1007, id="invalid-utf8"),
    pytest.param(frame(0x2, b"b" * (SMALL_LIMIT + 1)), 1009, id="oversize"),
]


class Log:
    """What the scripted server received from the client, in order."""

    def __init__(self) -> None:
        self.items: list[tuple[str, object]] = []
        self.sent_at = 0.0
        self.closed_at = 0.0
        self.done = anyio.Event()

    async def record(self, peer: WsPeer) -> None:
        """Note messages, pongs and the close frame until the client's close or hang-up."""
        while True:
            event = await peer.next_event()
            if event is None:
                self.items.append(("hang-up", None))
                break
            if isinstance(event, TextMessage):
                self.items.append(("text", event.data))
            elif isinstance(event, BytesMessage):
                self.items.append(("binary", bytes(event.data)))
            elif isinstance(event, Pong):
                self.items.append(("pong", bytes(event.payload)))
            elif isinstance(event, CloseConnection):
                self.items.append(("close", event.code))
                if peer.ws.state.name == "REMOTE_CLOSING":  # the client began it: answer
                    await peer.send(event.response())
                break
        self.closed_at = time.monotonic()
        self.done.set()

    async def wait(self) -> list[tuple[str, object]]:
        with anyio.fail_after(BOUND):
            await self.done.wait()
        return self.items


def scripted(log: Log, bundle: bytes) -> Handler:
    """A server that waits for ``go``, writes ``bundle`` at once, then records."""

    async def handler(peer: WsPeer) -> None:
        assert await peer.next_message() == "go"
        log.sent_at = time.monotonic()
        await peer.send_raw(bundle)
        await log.record(peer)

    return handler


def ending_with(ending: bytes) -> bytes:
    """A valid message, ``ending``, and a ping, to be written at once."""
    return frame(0x1, b"first") + ending + LATE_PING


@asynccontextmanager
async def connected(
    handler: Handler, *, code: int = 0
) -> AsyncIterator[tuple[Server, Session, WebsocketConnection, Watch]]:
    """A session with a WebSocket open to ``handler`` (plain frames), ``go`` said."""
    async with (
        serve_ws(handler, extensions=lambda: []) as server,
        Session() as session,
    ):
        ws = await session.websocket_connect(Message("GET", server.url_for("/")))
        if code == 1009:
            ws.max_incoming_payload_size = SMALL_LIMIT
        watch = Watch(ws)
        yield server, session, ws, watch


async def failed(ws: WebsocketConnection, watch: Watch, code: int) -> WebsocketClosed:
    """After the failure: the state, the code and the one error, both ways."""
    await watch.wait_closed()
    assert ws.state is WebsocketState.CLOSED
    assert ws.close_code == code
    assert len(watch.errors) == 1
    with pytest.raises(WebsocketClosed) as info:
        await ws.send_text("after the failure")
    assert info.value.code == code
    assert info.value.__cause__ is watch.errors[0]
    return info.value


@pytest.mark.parametrize(("ending", "code"), ENDINGS)
async def test_messages_before_a_failure_are_delivered_and_answered(
    ending: bytes, code: int, leak_check: LeakCheck
) -> None:
    log = Log()
    handler = scripted(log, ending_with(ending))
    async with connected(handler, code=code) as (server, session, ws, watch):
        await ws.send_text("go")
        with anyio.fail_after(BOUND):
            assert await ws.receive() == "first"
            # The failure is later in the stream: the program may still answer.
            assert ws.state is WebsocketState.OPEN
            await ws.send_text("answer to first")
            with pytest.raises(WebsocketClosed) as info:
                await ws.receive()
        assert info.value.code == code
        assert f"127.0.0.1:{server.port}" in str(info.value)
        assert info.value.__cause__ is (await failed(ws, watch, code)).__cause__
        # The answer went out before the close frame; the ping after the bad
        # frame was never taken for one (nothing past it is trusted).
        assert await log.wait() == [("text", "answer to first"), ("close", code)]
    await leak_check(session)


@pytest.mark.parametrize("size", [5, 100_000], ids=["small", "over-one-read"])
async def test_a_close_after_a_message_comes_after_it(size: int, leak_check: LeakCheck) -> None:
    """Autobahn 7.1.6: a message, the server's close and a ping in one write."""
    log = Log()
    text = ("first" * (size // 5 + 1))[:size]
    close = frame(0x8, (1000).to_bytes(2, "big") + b"bye")
    closing: list[str] = []
    handler = scripted(log, frame(0x1, text.encode()) + close + LATE_PING)
    async with connected(handler) as (_, session, ws, watch):
        ws.closing.connect(lambda ws: closing.append(ws.state.name))
        await ws.send_text("go")
        with anyio.fail_after(BOUND):
            assert await ws.receive() == text
            assert ws.state is WebsocketState.OPEN
            assert closing == []
            await ws.send_text(f"echo of {size}")
            assert [message async for message in ws] == []  # a normal close ends iteration
        await watch.wait_closed()
        assert closing == ["CLOSING"]
        assert (ws.close_code, ws.close_data) == (1000, "bye")
        assert watch.errors == []
        # The echo went out first; the close reply (echoing the code) after it.
        assert await log.wait() == [("text", f"echo of {size}"), ("close", 1000)]
    await leak_check(session)


@pytest.mark.parametrize(("ending", "code"), [ENDINGS[0], ENDINGS[-1]])
async def test_a_program_that_does_not_read_is_failed_after_the_grace(
    ending: bytes, code: int, leak_check: LeakCheck
) -> None:
    """Nobody receives: the reader fails the connection once the grace is over
    (a hostile peer can't keep it open), and the message is still given after."""
    log = Log()
    handler = scripted(log, ending_with(ending))
    async with connected(handler, code=code) as (_, session, ws, watch):
        await ws.send_text("go")
        error = await failed(ws, watch, code)
        assert await log.wait() == [("close", code)]
        elapsed = log.closed_at - log.sent_at
        assert ORDER_GRACE - 0.1 <= elapsed < ORDER_GRACE + 1.5, elapsed
        # What came before the failure is still given, then the failure.
        with anyio.fail_after(BOUND):
            assert await ws.receive() == "first"
            with pytest.raises(WebsocketClosed) as info:
                await ws.receive()
        assert info.value.code == code
        assert info.value.__cause__ is error.__cause__
    await leak_check(session)


async def test_sends_go_out_during_the_grace(leak_check: LeakCheck) -> None:
    """While the failure waits its turn the connection is open for sending."""
    log = Log()
    read = anyio.Event()
    # An unsolicited pong first (RFC 6455 §5.5.3): the client's pong signal
    # tells the test that the reader has read the bundle.
    handler = scripted(log, frame(0xA, b"sync") + frame(0x1, b"first") + frame(0x3, b"?"))
    async with connected(handler) as (_, session, ws, watch):
        ws.pong.connect(lambda ws, data: read.set())
        await ws.send_text("go")
        with anyio.fail_after(BOUND):
            await read.wait()
        assert ws.state is WebsocketState.OPEN
        await ws.send_text("during the grace")
        await failed(ws, watch, 1002)
        assert await log.wait() == [("text", "during the grace"), ("close", 1002)]
    await leak_check(session)


@pytest.mark.parametrize("how", ["close", "receive"])
async def test_the_program_reaching_the_end_settles_it_at_once(
    how: str, leak_check: LeakCheck
) -> None:
    """close() (or receive() with nothing before the end) doesn't wait for the grace."""
    log = Log()
    handler = scripted(log, frame(0x1, b"first") + frame(0x3, b"?"))
    async with connected(handler) as (_, session, ws, watch):
        await ws.send_text("go")
        with anyio.fail_after(BOUND):
            assert await ws.receive() == "first"
            started = time.monotonic()
            if how == "close":
                await ws.close()
            else:
                with pytest.raises(WebsocketClosed):
                    await ws.receive()
        assert time.monotonic() - started < ORDER_GRACE
        # The failure, not a normal close: the peer's stream can't be read on.
        await failed(ws, watch, 1002)
        assert await log.wait() == [("close", 1002)]
    await leak_check(session)


async def test_an_end_after_the_message_being_answered_waits_for_receive(
    leak_check: LeakCheck,
) -> None:
    """The bad frame comes in a later write, while the program works on the
    message it took (Autobahn 3.3/3.4 send frame by frame): its answer still
    goes out first, and the next receive() gets the failure."""
    log = Log()
    took = anyio.Event()

    async def handler(peer: WsPeer) -> None:
        assert await peer.next_message() == "go"
        await peer.send_raw(frame(0x1, b"first"))
        with anyio.fail_after(BOUND):
            await took.wait()
        await peer.send_raw(frame(0x3, b"?") + LATE_PING)
        await log.record(peer)

    async with connected(handler) as (_, session, ws, watch):
        await ws.send_text("go")
        with anyio.fail_after(BOUND):
            assert await ws.receive() == "first"
            took.set()
            await anyio.sleep(0.3)  # the reader task reads the bad frame meanwhile
            assert ws.state is WebsocketState.OPEN
            await ws.send_text("answer to first")
            with pytest.raises(WebsocketClosed) as info:
                await ws.receive()
        assert info.value.code == 1002
        await failed(ws, watch, 1002)
        assert await log.wait() == [("text", "answer to first"), ("close", 1002)]
    await leak_check(session)


@pytest.mark.parametrize("program", ["message-handler", "only-sends"])
async def test_an_end_with_nothing_before_it_is_settled_at_once(
    program: str, leak_check: LeakCheck
) -> None:
    """Handlers have run by the time the end is parsed, and a program that has
    taken no message has nothing to answer: no grace for either."""
    log = Log()
    got: list[str | bytes] = []

    async def answer(ws: WebsocketConnection, kind: object, data: str | bytes) -> None:
        got.append(data)
        await ws.send_text(f"handled {data!r}")

    bundle = ending_with(frame(0x3, b"?")) if program == "message-handler" else frame(0x3, b"?")
    async with connected(scripted(log, bundle)) as (_, session, ws, watch):
        if program == "message-handler":
            ws.message.connect(answer)
        await ws.send_text("go")
        await failed(ws, watch, 1002)
        assert await log.wait() == [
            *([("text", "handled 'first'")] if program == "message-handler" else []),
            ("close", 1002),
        ]
        assert log.closed_at - log.sent_at < ORDER_GRACE
    await leak_check(session)
