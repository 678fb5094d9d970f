"""WebSockets against scripted wsproto servers: fault injection and cancellation.

The server side is :func:`ws_servers.serve_ws`, in the test's own event loop,
which lets each test send exactly the frames it wants (bombs, oversize and
broken messages, protocol errors, floods), script the handshake's answer
byte by byte, or stall at any point. Every failure is checked from both
ends: the close code the server receives, and what the client's
``receive()``, ``close_code`` and ``error`` signal say. The cancellation
sweep cancels at each checkpoint of a WebSocket's life and checks the
cancellation comes out as the backend's own, the pool's counters, that the
session still opens the next WebSocket, and that nothing is left behind.

A fault server first waits for a ``go`` message from the client, so the
client has set its limits and handlers before the fault arrives.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import ssl
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from servers import PEER_ERRORS, Server, ServerConnection, hanging_listener
from ws_servers import Watch, WsPeer, frame, serve_ws
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    Pong,
    Request,
    TextMessage,
)
from wsproto.extensions import Extension
from wsproto.utilities import generate_accept_token

import anysoup
from anysoup import (
    Message,
    Session,
    WebsocketCloseCode,
    WebsocketClosed,
    WebsocketConnection,
    WebsocketError,
    WebsocketErrorCode,
    WebsocketState,
)

pytestmark = pytest.mark.anyio

LeakCheck = Callable[[Session], Awaitable[None]]

#: The client's default limit on an incoming message (libsoup's).
LIMIT = 128 * 1024
#: What every wait in these tests is bounded by.
BOUND = 5.0


def no_extensions() -> list[Extension]:
    """For ``serve_ws(extensions=...)``: accept no extension (plain frames)."""
    return []


# -- the server side ---------------------------------------------------------------------


class Closes:
    """The close frames a scripted server received, in order (None: the client hung up)."""

    def __init__(self) -> None:
        self.codes: list[int | None] = []
        self._changed = anyio.Event()

    async def record(self, peer: WsPeer, *, answer: bool = True) -> CloseConnection | None:
        """Skip to the client's close frame, note its code, answer it (if it can)."""
        while True:
            event = await peer.next_event()
            if event is None or isinstance(event, CloseConnection):
                break
        self.codes.append(None if event is None else event.code)
        self._changed.set()
        self._changed = anyio.Event()
        if answer and event is not None and peer.ws.state.name == "REMOTE_CLOSING":
            with contextlib.suppress(*PEER_ERRORS):  # a client that failed may be gone
                await peer.send(event.response())
        return event

    async def wait(self, count: int = 1) -> list[int | None]:
        """Wait until ``count`` closes were seen; return the codes."""
        with anyio.fail_after(BOUND):
            while len(self.codes) < count:
                await self._changed.wait()
        return self.codes


def head_fields(head: bytes) -> tuple[str, dict[str, str]]:
    """The target and the (lowercased) header fields of a raw request head."""
    request_line, *lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return request_line.split(" ")[1], fields


def answer_101(head: bytes, *, accept: bytes | None = None, extra: bytes = b"") -> bytes:
    """A hand-made 101 answer to ``head`` (right accept key unless ``accept`` is given)."""
    _, fields = head_fields(head)
    if accept is None:
        accept = generate_accept_token(fields["sec-websocket-key"].encode())
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n" + extra + b"\r\n"
    )


async def accept(conn: ServerConnection, head: bytes) -> WsPeer:
    """Accept a raw handshake with wsproto (no extensions)."""
    ws = WSConnection(ConnectionType.SERVER)
    ws.receive_data(head + b"\r\n\r\n")
    request = next(iter(ws.events()))
    assert isinstance(request, Request), request
    await conn.stream.send(ws.send(AcceptConnection(extensions=[])))
    return WsPeer(conn, ws, request)


async def wait_go(peer: WsPeer) -> None:
    """The client says it is ready (limits and handlers set)."""
    assert await peer.next_message() == "go"


# -- the client side ---------------------------------------------------------------------


def assert_idle(session: Session) -> None:
    """Nothing lent, waiting or detached (a WebSocket closed gives its connection up)."""
    stats = session.statistics()
    assert (stats.in_use, stats.waiting, stats.detached) == (0, 0, 0), stats
    assert stats.connections == stats.connecting + stats.idle, stats


async def until(predicate: Callable[[], bool]) -> None:
    """Poll ``predicate`` (the pool's counters have no change notification)."""
    with anyio.fail_after(BOUND):
        while not predicate():  # noqa: ASYNC110
            await anyio.sleep(0.01)


async def expect_failure(
    server: Server, session: Session, code: int, *, limit: int | None = None
) -> tuple[WebsocketConnection, WebsocketClosed, Watch]:
    """Open a WebSocket, say ``go``, and expect the connection to fail with ``code``."""
    msg = Message("GET", server.url_for("/fault"))
    async with session.websocket_connect(msg) as ws:
        watch = Watch(ws)
        if limit is not None:
            ws.max_incoming_payload_size = limit
        await ws.send_text("go")
        with anyio.fail_after(BOUND), pytest.raises(WebsocketClosed) as info:
            await ws.receive()
        await watch.wait_closed()
        assert info.value.code == code
        assert ws.close_code == code
        assert ws.state is WebsocketState.CLOSED
        assert "127.0.0.1" in str(info.value)
        assert len(watch.errors) == 1, watch.errors
        assert info.value.__cause__ is watch.errors[0]  # the same failure, both ways
        with pytest.raises(WebsocketClosed):
            await ws.send_text("after the failure")
    assert_idle(session)
    return ws, info.value, watch


# -- 1. deflate bomb ---------------------------------------------------------------------

#: What the bomb inflates to.
BOMB_SIZE = 64 << 20


@pytest.fixture(scope="module")
def deflate_bomb() -> bytes:
    """``BOMB_SIZE`` zeros as one permessage-deflate message, built a MiB at a time."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    parts = [compressor.compress(chunk) for _ in range(BOMB_SIZE >> 20)]
    parts.append(compressor.flush(zlib.Z_SYNC_FLUSH))
    bomb = b"".join(parts)
    assert bomb.endswith(b"\x00\x00\xff\xff")
    # The test of the test: it really inflates to BOMB_SIZE (counted, never held).
    inflater, produced, data = zlib.decompressobj(-15), 0, bomb
    while data:
        produced += len(inflater.decompress(data, 1 << 20))
        data = inflater.unconsumed_tail
    assert produced == BOMB_SIZE
    return bomb[:-4]


@pytest.mark.parametrize("pieces", [1, 64], ids=["one-frame", "fragments"])
async def test_deflate_bomb_fails_with_1009_in_bounded_memory(
    pieces: int, deflate_bomb: bytes, leak_check: LeakCheck
) -> None:
    closes = Closes()
    # RSV1 on the first frame only: the message, not the frame, is compressed.
    step = -(-len(deflate_bomb) // pieces)
    cuts = [deflate_bomb[i : i + step] for i in range(0, len(deflate_bomb), step)]
    payload = b"".join(
        frame(0x2 if i == 0 else 0x0, cut, fin=i == len(cuts) - 1, rsv1=i == 0)
        for i, cut in enumerate(cuts)
    )
    assert len(payload) < BOMB_SIZE // 500

    async def bomber(peer: WsPeer) -> None:
        await wait_go(peer)
        await peer.send_raw(payload)
        await closes.record(peer, answer=False)

    async with serve_ws(bomber) as server, Session() as session:
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            ws, _, _ = await expect_failure(server, session, WebsocketCloseCode.TOO_BIG)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert await closes.wait() == [1009]
        assert isinstance(ws.extensions[0], anysoup.WebsocketExtensionDeflate)
        # The message was never inflated past the limit (64 MiB of zeros claimed).
        assert peak < 4 << 20, f"peak {peak} bytes"
    await leak_check(session)


# -- 2. oversize messages ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "size"),
    [
        pytest.param(None, LIMIT, id="default-limit-exactly"),
        pytest.param(1 << 20, 1 << 20, id="raised-limit"),
        pytest.param(0, 3 << 20, id="no-limit"),
    ],
)
async def test_message_within_the_limit_passes(
    limit: int | None, size: int, leak_check: LeakCheck
) -> None:
    closes = Closes()
    data = bytes(range(256)) * (size // 256)

    async def sender(peer: WsPeer) -> None:
        await wait_go(peer)
        await peer.send_bytes(data)
        await peer.send_text("é" * (size // 2))  # size bytes of UTF-8
        await closes.record(peer)

    async with serve_ws(sender, extensions=no_extensions) as server, Session() as session:
        async with session.websocket_connect(Message("GET", server.url_for("/"))) as ws:
            if limit is not None:
                ws.max_incoming_payload_size = limit
            await ws.send_text("go")
            with anyio.fail_after(BOUND):
                assert await ws.receive() == data
                assert await ws.receive() == "é" * (size // 2)
        assert await closes.wait() == [1000]
        assert ws.close_code == 1000
        assert_idle(session)
    await leak_check(session)


@pytest.mark.parametrize(
    ("limit", "size"),
    [
        pytest.param(None, LIMIT + 1, id="default-limit"),
        pytest.param(1 << 20, (1 << 20) + 1, id="raised-limit"),
        pytest.param(1000, 1001, id="lowered-limit"),
    ],
)
@pytest.mark.parametrize("kind", ["binary", "text"])
async def test_oversize_message_fails_with_1009(
    limit: int | None, size: int, kind: str, leak_check: LeakCheck
) -> None:
    closes = Closes()

    async def sender(peer: WsPeer) -> None:
        await wait_go(peer)
        if kind == "binary":
            await peer.send_bytes(b"b" * size)
        else:  # counted in bytes of UTF-8, not in characters
            await peer.send_text("€" * (size // 3) + "t" * (size % 3))
        await closes.record(peer, answer=False)

    async with serve_ws(sender, extensions=no_extensions) as server, Session() as session:
        _, error, _ = await expect_failure(
            server, session, WebsocketCloseCode.TOO_BIG, limit=limit
        )
        assert f"larger than {limit or LIMIT} bytes" in str(error)
        assert await closes.wait() == [1009]
    await leak_check(session)


# -- 3. fragmented messages --------------------------------------------------------------


async def test_fragmented_oversize_fails_with_1009(leak_check: LeakCheck) -> None:
    closes = Closes()
    piece = b"f" * 8192
    count = LIMIT // len(piece) + 1  # each fragment small, the whole one too big

    async def sender(peer: WsPeer) -> None:
        await wait_go(peer)
        frames = [frame(0x2, piece, fin=False)]
        frames += [frame(0x0, piece, fin=False) for _ in range(count - 2)]
        frames.append(frame(0x0, piece))
        await peer.send_raw(b"".join(frames))
        await closes.record(peer, answer=False)

    async with serve_ws(sender, extensions=no_extensions) as server, Session() as session:
        await expect_failure(server, session, WebsocketCloseCode.TOO_BIG)
        assert await closes.wait() == [1009]
    await leak_check(session)


def fragments(opcode: int, data: bytes, cuts: list[int]) -> bytes:
    """``data`` as frames cut at ``cuts`` (offsets), a control frame between two of them."""
    bounds = [0, *cuts, len(data)]
    out = []
    for index, (start, end) in enumerate(itertools.pairwise(bounds)):
        last = index == len(bounds) - 2
        out.append(frame(opcode if index == 0 else 0x0, data[start:end], fin=last))
        if index == 0:
            out.append(frame(0x9, b"between"))  # a ping may come between fragments
    return b"".join(out)


async def test_fragmented_messages_reassemble(leak_check: LeakCheck) -> None:
    text = "a€b—é😀z"
    encoded = text.encode()
    binary = bytes(range(256)) * 100
    closes = Closes()
    pongs: list[bytes] = []

    async def sender(peer: WsPeer) -> None:
        await wait_go(peer)
        # Cut inside "€" (3 bytes), inside "😀" (4 bytes), and an empty fragment.
        euro = encoded.index("€".encode())
        smiley = encoded.index("😀".encode())
        cuts = [euro + 1, euro + 2, smiley + 3, smiley + 3]
        await peer.send_raw(fragments(0x1, encoded, cuts))
        await peer.send_raw(fragments(0x2, binary, [1, 1000, 25000]))
        await peer.send_raw(fragments(0x1, b"", [0]))  # an empty text in two frames
        while True:
            event = await peer.next_event()
            if isinstance(event, Pong):
                pongs.append(bytes(event.payload))
            else:
                break
        assert isinstance(event, TextMessage) and event.data == "done"
        await closes.record(peer)

    async with serve_ws(sender, extensions=no_extensions) as server, Session() as session:
        async with session.websocket_connect(Message("GET", server.url_for("/"))) as ws:
            await ws.send_text("go")
            with anyio.fail_after(BOUND):
                assert await ws.receive() == text
                assert await ws.receive() == binary
                assert await ws.receive() == ""
            await ws.send_text("done")
        assert await closes.wait() == [1000]
        assert pongs == [b"between"] * 3
    await leak_check(session)


# -- 4. and 5. broken messages and protocol errors ---------------------------------------


def masked(opcode: int, payload: bytes) -> bytes:
    """A frame with the mask bit set, which a server must never send (RFC 6455 §5.1)."""
    key = b"\x01\x02\x03\x04"
    data = bytes(byte ^ key[i % 4] for i, byte in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + key + data


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        pytest.param(frame(0x1, b"ok \xff\xfe"), 1007, id="invalid-utf8"),
        pytest.param(frame(0x1, b"cut \xe2\x82"), 1007, id="truncated-utf8"),
        pytest.param(
            frame(0x1, b"\xe2", fin=False) + frame(0x0, b"\x28\xa1"), 1007, id="bad-utf8-fragments"
        ),
        pytest.param(masked(0x1, b"masked"), 1002, id="masked-frame"),
        pytest.param(bytes([0x80 | 0x20 | 0x1, 2]) + b"hi", 1002, id="rsv2"),
        pytest.param(frame(0x1, b"hi", rsv1=True), 1002, id="rsv1-without-deflate"),
        pytest.param(frame(0x0, b"orphan"), 1002, id="continuation-first"),
        pytest.param(frame(0x9, b"p" * 126), 1002, id="long-control-frame"),
        pytest.param(frame(0x9, b"p", fin=False), 1002, id="fragmented-control-frame"),
        pytest.param(frame(0x3, b"?"), 1002, id="reserved-opcode"),
        pytest.param(frame(0x1, b"a", fin=False) + frame(0x1, b"b"), 1002, id="new-message-mid"),
    ],
)
async def test_bad_frames_fail_the_connection(
    raw: bytes, code: int, leak_check: LeakCheck
) -> None:
    closes = Closes()

    async def sender(peer: WsPeer) -> None:
        await wait_go(peer)
        await peer.send_raw(raw)
        await closes.record(peer, answer=False)

    async with serve_ws(sender, extensions=no_extensions) as server, Session() as session:
        await expect_failure(server, session, code)
        assert await closes.wait() == [code]
    await leak_check(session)


async def test_rsv1_on_a_continuation_with_deflate_is_a_protocol_error(
    leak_check: LeakCheck,
) -> None:
    closes = Closes()

    async def sender(peer: WsPeer) -> None:
        await wait_go(peer)
        await peer.send_raw(frame(0x1, b"plain ", fin=False) + frame(0x0, b"x", rsv1=True))
        await closes.record(peer, answer=False)

    async with serve_ws(sender) as server, Session() as session:
        await expect_failure(server, session, 1002)
        assert await closes.wait() == [1002]
    await leak_check(session)


# -- 6. floods and backpressure ----------------------------------------------------------

#: Pings in the flood; their payloads are 2 to 125 bytes, each one different.
PINGS = 4000


def ping_payload(index: int) -> bytes:
    return b"%d:" % index + b"p" * (index % 120)


@pytest.mark.parametrize("receiving", [True, False], ids=["receiving", "not-receiving"])
async def test_ping_flood_gets_a_pong_per_ping(receiving: bool, leak_check: LeakCheck) -> None:
    """The server floods pings and reads nothing for a while (the pongs back up
    against TCP); every ping gets its pong, in order, whether the program is in
    receive() or not, and the connection goes on."""
    closes = Closes()
    flooded = anyio.Event()

    async def flooder(peer: WsPeer) -> None:
        await wait_go(peer)
        flood = b"".join(frame(0x9, ping_payload(i)) for i in range(PINGS))
        sent = anyio.Event()

        async def send_flood() -> None:
            await peer.send_raw(flood)
            sent.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(send_flood)
            # Not reading for a while: the pongs pile up against TCP.
            with anyio.move_on_after(0.2):
                await sent.wait()
            pongs: list[bytes] = []
            while len(pongs) < PINGS:
                event = await peer.next_event()
                assert isinstance(event, Pong), event
                pongs.append(bytes(event.payload))
        assert pongs == [ping_payload(i) for i in range(PINGS)]
        flooded.set()
        await peer.send_text("after the flood")
        assert await peer.next_message() == "still here"
        await closes.record(peer)

    async with serve_ws(flooder, extensions=no_extensions) as server, Session() as session:
        async with session.websocket_connect(Message("GET", server.url_for("/"))) as ws:
            await ws.send_text("go")
            with anyio.fail_after(BOUND):
                if not receiving:
                    await flooded.wait()
                assert await ws.receive() == "after the flood"
            await ws.send_text("still here")
        assert await closes.wait() == [1000]
    await leak_check(session)


#: The size of the backpressure test's messages.
CHUNK = 64 * 1024


def kernel_buffers() -> int:
    """The most a TCP connection's two socket buffers may hold here (send + receive)."""
    total = 0
    for name, default in (("tcp_wmem", 4 << 20), ("tcp_rmem", 32 << 20)):
        try:
            total += int(Path(f"/proc/sys/net/ipv4/{name}").read_text().split()[2])
        except (OSError, IndexError, ValueError):
            total += default
    return total


async def test_backpressure_stops_a_server_the_client_does_not_read(leak_check: LeakCheck) -> None:
    """Messages the program doesn't take stop the reader at its bounded queue: the
    server's writes stall (TCP pushes back), memory stays flat, nothing is lost."""
    # More than the queue and both socket buffers can hold, whatever autotuning does.
    count = 2 * kernel_buffers() // CHUNK
    progress = {"sent": 0}
    closes = Closes()

    def message(index: int) -> bytes:
        return b"%08d" % index + bytes([index % 256]) * (CHUNK - 8)

    async def sender(peer: WsPeer) -> None:
        await wait_go(peer)
        for index in range(count):
            await peer.send_bytes(message(index))
            progress["sent"] = index + 1
        await closes.record(peer)

    async with serve_ws(sender, extensions=no_extensions) as server, Session() as session:
        async with session.websocket_connect(Message("GET", server.url_for("/"))) as ws:
            tracemalloc.start()
            try:
                await ws.send_text("go")
                with anyio.fail_after(BOUND):
                    while True:  # the server writes on until TCP stops it for good
                        before = progress["sent"]
                        await anyio.sleep(0.2)
                        if progress["sent"] == before:
                            break
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert 0 < progress["sent"] < count
            # The queue (16 messages) and a read or two, not what the server sent.
            assert peak < 4 << 20, f"peak {peak} bytes, {progress['sent'] * CHUNK} sent"
            with anyio.fail_after(BOUND):
                for index in range(count):
                    assert await ws.receive() == message(index)
        assert progress["sent"] == count
        assert await closes.wait() == [1000]
    await leak_check(session)


# -- 7. answers that aren't a WebSocket --------------------------------------------------


async def never(peer: WsPeer) -> None:
    raise AssertionError("the handshake was not meant to succeed")


async def echo(peer: WsPeer) -> None:
    await peer.echo()


async def connect_fails(
    session: Session, msg: Message, form: str, **options: object
) -> WebsocketError:
    """Open a WebSocket that must fail, awaited or with ``async with``; return the error."""
    with anyio.fail_after(BOUND), pytest.raises(WebsocketError) as info:
        if form == "await":
            await session.websocket_connect(msg, **options)  # type: ignore[arg-type]
        else:
            async with session.websocket_connect(msg, **options):  # type: ignore[arg-type]
                raise AssertionError("the block must not run")
    assert not isinstance(info.value, WebsocketClosed)
    assert info.value.message is msg
    assert_idle(session)
    return info.value


@pytest.mark.parametrize("form", ["await", "async-with"])
async def test_non_101_answer_is_not_websocket(form: str, leak_check: LeakCheck) -> None:
    async with serve_ws(never, reject=(404, b"not here")) as server, Session() as session:
        msg = Message("GET", server.url_for("/nothing"))
        error = await connect_fails(session, msg, form)
        assert error.code is WebsocketErrorCode.NOT_WEBSOCKET
        assert msg.status == 404
        assert msg.response_body == b"not here"
        assert f"127.0.0.1:{server.port}" in str(error)
        assert "404" in str(error)
        error = await connect_fails(session, Message("GET", server.url_for("/x")), form)
        assert error.code is WebsocketErrorCode.NOT_WEBSOCKET
    await leak_check(session)


@pytest.mark.parametrize(
    ("origin", "code"),
    [
        pytest.param("https://app.example", WebsocketErrorCode.BAD_ORIGIN, id="origin"),
        pytest.param(None, WebsocketErrorCode.NOT_WEBSOCKET, id="no-origin"),
    ],
)
async def test_403_is_bad_origin_when_an_origin_was_sent(
    origin: str | None, code: WebsocketErrorCode, leak_check: LeakCheck
) -> None:
    async with serve_ws(never, reject=(403, b"go away")) as server, Session() as session:
        msg = Message("GET", server.url_for("/"))
        error = await connect_fails(session, msg, "await", origin=origin)
        assert error.code is code
        assert msg.status == 403
        assert msg.response_body == b"go away"
    await leak_check(session)


@pytest.mark.parametrize(
    ("accept", "extra", "protocols", "cause"),
    [
        pytest.param(b"d3Jvbmcga2V5IQ==", b"", None, "Sec-WebSocket-Accept", id="bad-accept"),
        pytest.param(
            None, b"Sec-WebSocket-Extensions: x-unknown\r\n", None, "x-unknown", id="extension"
        ),
        pytest.param(
            None,
            b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=99\r\n",
            None,
            "server_max_window_bits",
            id="extension-params",
        ),
        pytest.param(None, b"Sec-WebSocket-Protocol: chat\r\n", None, "chat", id="protocol"),
        pytest.param(
            None, b"Sec-WebSocket-Protocol: v3\r\n", ["v1", "v2"], "v3", id="protocol-not-offered"
        ),
    ],
)
@pytest.mark.parametrize("form", ["await", "async-with"])
async def test_bad_101_is_bad_handshake(
    accept: bytes | None,
    extra: bytes,
    protocols: list[str] | None,
    cause: str,
    form: str,
    leak_check: LeakCheck,
) -> None:
    async def handshake(conn: ServerConnection, head: bytes) -> None:
        await conn.send_raw(answer_101(head, accept=accept, extra=extra))
        # The client must hang up without a word of WebSocket.
        with anyio.fail_after(BOUND), pytest.raises(anyio.EndOfStream):
            await conn.stream.receive()

    async with serve_ws(never, handshake=handshake) as server, Session() as session:
        msg = Message("GET", server.url_for("/"))
        error = await connect_fails(session, msg, form, protocols=protocols)
        assert error.code is WebsocketErrorCode.BAD_HANDSHAKE
        assert cause in str(error)
        assert msg.status == 101
        assert session.statistics().connections == 0  # a switched connection isn't reused
    await leak_check(session)


# -- 8. the first frame in the same write as the 101 -------------------------------------


async def test_bytes_after_the_101_are_the_first_message(leak_check: LeakCheck) -> None:
    closes = Closes()

    async def handshake(conn: ServerConnection, head: bytes) -> None:
        ws = WSConnection(ConnectionType.SERVER)
        ws.receive_data(head + b"\r\n\r\n")
        request = next(iter(ws.events()))
        assert isinstance(request, Request)
        accepted = ws.send(AcceptConnection(extensions=[]))
        first = ws.send(TextMessage(data="first")) + ws.send(Ping(payload=b"early"))
        second = ws.send(TextMessage(data="second, cut in two"))
        # One write: the 101, a whole frame, a ping, and a frame's first bytes.
        await conn.send_raw(accepted + first + second[:5])
        peer = WsPeer(conn, ws, request)
        event = await peer.next_event()
        assert event == Pong(payload=b"early")
        await wait_go(peer)
        await peer.send_raw(second[5:])
        await closes.record(peer)

    async with serve_ws(never, handshake=handshake) as server, Session() as session:
        async with session.websocket_connect(Message("GET", server.url_for("/"))) as ws:
            with anyio.fail_after(BOUND):
                assert await ws.receive() == "first"
                await ws.send_text("go")
                assert await ws.receive() == "second, cut in two"
        assert await closes.wait() == [1000]
    await leak_check(session)


# -- 9. redirects and authentication before the switch -----------------------------------


@pytest.mark.parametrize(
    ("scheme", "location"),
    [
        pytest.param("http", "/new?x=1", id="http"),
        pytest.param("ws", "/new?x=1", id="ws"),
        pytest.param("ws", "ws://{host}/new?x=1", id="ws-absolute"),
        pytest.param("ws", "http://{host}/new?x=1", id="ws-to-http"),
    ],
)
async def test_redirect_then_websocket(scheme: str, location: str, leak_check: LeakCheck) -> None:
    targets: list[str] = []

    async def handshake(conn: ServerConnection, head: bytes) -> None:
        target, fields = head_fields(head)
        targets.append(target)
        if target == "/old":
            moved = location.format(host=fields["host"]).encode()
            await conn.send_raw(
                b"HTTP/1.1 302 Found\r\nLocation: " + moved + b"\r\nContent-Length: 0\r\n"
                b"Connection: close\r\n\r\n"
            )
            return
        peer = await accept(conn, head)
        await peer.echo()

    async with serve_ws(never, handshake=handshake) as server, Session() as session:
        base = server.url.replace("ws://", f"{scheme}://")
        final = location.format(host=f"127.0.0.1:{server.port}")
        final = final if "://" in final else base + final
        msg = Message("GET", base + "/old")
        restarts: list[int] = []
        msg.restarted.connect(lambda m: restarts.append(m.status))
        async with session.websocket_connect(msg) as ws:
            assert str(ws.uri) == final
            assert ws.uri == msg.uri
            await ws.send_text("moved")
            with anyio.fail_after(BOUND):
                assert await ws.receive() == "moved"
        assert targets == ["/old", "/new?x=1"]
        assert restarts == [302]
        assert server.connections == 2  # the 302 came with Connection: close
        assert ws.close_code == 1000
        assert_idle(session)
    await leak_check(session)


async def test_basic_auth_then_websocket(leak_check: LeakCheck) -> None:
    good = "Basic " + base64.b64encode(b"ann:secret").decode()
    seen: list[str | None] = []

    async def handshake(conn: ServerConnection, head: bytes) -> None:
        # Several requests on one connection until one may switch.
        while True:
            _, fields = head_fields(head)
            seen.append(fields.get("authorization"))
            if fields.get("authorization") == good:
                break
            await conn.send_raw(
                b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="x"\r\n'
                b"Content-Length: 6\r\n\r\ndenied"
            )
            try:
                head = await conn.stream.receive_until(b"\r\n\r\n", 65536)
            except PEER_ERRORS:
                return
        peer = await accept(conn, head)
        await peer.echo()

    asked: list[tuple[str, str, bool]] = []

    def authenticate(msg: Message, auth: anysoup.Auth, retrying: bool) -> bool:
        asked.append((auth.scheme_name, auth.realm, retrying))
        auth.authenticate("ann", "secret")
        return True

    async with serve_ws(never, handshake=handshake) as server, Session() as session:
        msg = Message("GET", server.url_for("/private"))
        msg.authenticate.connect(authenticate)
        async with session.websocket_connect(msg) as ws:
            await ws.send_text("in")
            with anyio.fail_after(BOUND):
                assert await ws.receive() == "in"
        assert msg.status == 101
        assert seen == [None, good]
        assert asked == [("Basic", "x", False)]
        assert server.connections == 1
        assert_idle(session)
    await leak_check(session)


async def test_wrong_credentials_leave_the_401(leak_check: LeakCheck) -> None:
    requests = 0

    async def handshake(conn: ServerConnection, head: bytes) -> None:
        nonlocal requests
        while True:
            requests += 1
            await conn.send_raw(
                b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="x"\r\n'
                b"Content-Length: 6\r\n\r\ndenied"
            )
            try:
                await conn.stream.receive_until(b"\r\n\r\n", 65536)
            except PEER_ERRORS:
                return

    retries: list[bool] = []

    def authenticate(msg: Message, auth: anysoup.Auth, retrying: bool) -> bool:
        retries.append(retrying)
        if not retrying:  # once, wrongly; then the 401 stands
            auth.authenticate("ann", "wrong")
        return True

    async with serve_ws(never, handshake=handshake) as server, Session() as session:
        msg = Message("GET", server.url_for("/private"))
        msg.authenticate.connect(authenticate)
        error = await connect_fails(session, msg, "await")
        assert error.code is WebsocketErrorCode.NOT_WEBSOCKET
        assert msg.status == 401
        assert msg.response_body == b"denied"
        assert retries == [False, True]
        assert requests == 2
    await leak_check(session)


# -- 10. wss and Unix sockets ------------------------------------------------------------


async def test_wss(
    tls_server_context: ssl.SSLContext, tls_ca_pem: bytes, leak_check: LeakCheck
) -> None:
    closes = Closes()

    async def handler(peer: WsPeer) -> None:
        assert await peer.next_message() == "over tls"
        await peer.send_bytes(b"\x00" * 100_000)
        await closes.record(peer)

    async with serve_ws(handler, ssl_context=tls_server_context) as server:
        assert server.url.startswith("wss://")
        database = anysoup.TlsDatabase.from_pem(tls_ca_pem)
        async with Session(tls_database=database) as session:
            msg = Message("GET", server.url_for("/secure"))
            async with session.websocket_connect(msg) as ws:
                assert msg.tls_peer_certificate is not None
                await ws.send_text("over tls")
                with anyio.fail_after(BOUND):
                    assert await ws.receive() == b"\x00" * 100_000
            assert await closes.wait() == [1000]
            assert ws.close_code == 1000
            assert_idle(session)
        await leak_check(session)


async def test_wss_with_an_untrusted_certificate_is_a_tls_error(
    tls_server_context: ssl.SSLContext, leak_check: LeakCheck
) -> None:
    async with serve_ws(never, ssl_context=tls_server_context) as server:
        async with Session(tls_database=None) as session:
            with anyio.fail_after(BOUND), pytest.raises(anysoup.TlsError):
                await session.websocket_connect(Message("GET", server.url_for("/")))
            assert_idle(session)
        await leak_check(session)


async def test_unix_socket(tmp_path: Path, leak_check: LeakCheck) -> None:
    path = str(tmp_path / "ws.sock")
    async with serve_ws(echo, unix_path=path) as server:
        async with Session(remote_connectable=anysoup.UnixSocketAddress(path)) as session:
            msg = Message("GET", server.url_for("/local"))
            assert server.url_for("/local") == "ws://localhost/local"
            async with session.websocket_connect(msg) as ws:
                assert msg.remote_address == anysoup.UnixSocketAddress(path)
                await ws.send_text("over unix")
                with anyio.fail_after(BOUND):
                    assert await ws.receive() == "over unix"
            assert ws.close_code == 1000
            assert_idle(session)
        await leak_check(session)


# -- 11. cancellation at every checkpoint ------------------------------------------------

#: The session's I/O stall timeout in the sweep: ends a background connect quickly.
STALL_TIMEOUT = 0.5
#: close()'s wait for the peer in the sweep (monkeypatched, for the server that never answers).
SWEEP_CLOSE_TIMEOUT = 0.5
#: Large enough that sending it blocks on a server that doesn't read.
LARGE = 32 << 20


class Faults:
    """A WebSocket server that misbehaves by path, and what it saw.

    * ``/stall-101``: reads the request and never answers.
    * ``/stall-body``: a 404 announcing 1000 bytes, 500 sent, then nothing.
    * ``/watch``: accepts, then waits for the client's close frame (answered).
    * ``/deaf``: accepts, reads the client's close frame, never answers it.
    * ``/quiet``: accepts, then reads nothing at all.
    * ``/handler``: accepts, waits for ``go``, sends a message, then as ``/watch``.
    """

    def __init__(self) -> None:
        self.server: Server | None = None
        self.closes = Closes()
        self._reached: dict[str, anyio.Event] = {}

    def url(self, path: str) -> str:
        assert self.server is not None
        return self.server.url_for(path)

    def reached(self, path: str) -> anyio.Event:
        """Set once a request for ``path`` got as far as it goes (reset by each use)."""
        return self._reached.setdefault(path, anyio.Event())

    def _arrived(self, path: str) -> None:
        self.reached(path).set()
        self._reached[path] = anyio.Event()  # the next use waits afresh

    async def handshake(self, conn: ServerConnection, head: bytes) -> None:
        path, _ = head_fields(head)
        if path == "/stall-101":
            self._arrived(path)
            await anyio.sleep_forever()
        if path == "/stall-body":
            await conn.send_raw(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 1000\r\n\r\n" + b"n" * 500
            )
            self._arrived(path)
            await anyio.sleep_forever()
        peer = await accept(conn, head)
        if path == "/quiet":
            self._arrived(path)
            await anyio.sleep_forever()
        if path == "/handler":
            await wait_go(peer)
            await peer.send_text("for the handler")
        self._arrived(path)
        await self.closes.record(peer, answer=path != "/deaf")
        if path == "/deaf":
            try:  # until the client hangs up
                while await conn.stream.receive():
                    pass
            except PEER_ERRORS:
                pass


class Env:
    """What a cancellation scenario works with."""

    def __init__(self, session: Session, good: Server, faults: Faults, hang: tuple[str, int]):
        self.session = session
        self.good = good
        self.faults = faults
        self.hang = hang
        self.ws: WebsocketConnection | None = None


@asynccontextmanager
async def sweep_env(**settings: object) -> AsyncIterator[Env]:
    faults = Faults()
    async with (
        serve_ws(echo) as good,
        serve_ws(never, handshake=faults.handshake) as bad,
        hanging_listener() as hang,
        Session(**settings) as session,  # type: ignore[arg-type]
    ):
        faults.server = bad
        yield Env(session, good, faults, hang)


async def cancelled(
    call: Callable[[], Awaitable[object]], trigger: Callable[[], Awaitable[object]]
) -> None:
    """Run ``call()`` in a cancel scope that is cancelled once ``trigger()`` returns.

    The call must end with the backend's own cancellation exception, bare
    (not in an exception group, not turned into an anysoup error).
    """
    caught: list[BaseException] = []
    scope = anyio.CancelScope()

    async def fire() -> None:
        await trigger()
        scope.cancel()

    with anyio.fail_after(BOUND):
        async with anyio.create_task_group() as tg:
            tg.start_soon(fire)
            with scope:
                try:
                    await call()
                except BaseException as exc:
                    caught.append(exc)
                    if isinstance(exc, anyio.get_cancelled_exc_class()):
                        raise
            tg.cancel_scope.cancel()
    assert scope.cancelled_caught, caught
    assert [type(exc) for exc in caught] == [anyio.get_cancelled_exc_class()], caught


def after(first: Callable[[], Awaitable[object]], delay: float) -> Callable[[], Awaitable[None]]:
    """A trigger: ``first()``, then ``delay`` seconds more for the call to block
    (no event tells that a call is blocked in a read or a write)."""

    async def trigger() -> None:
        await first()
        await anyio.sleep(delay)

    return trigger


async def check_recovers(env: Env) -> None:
    """The pool is consistent and the next WebSocket on the session works."""
    session = env.session
    await until(lambda: session.statistics().connecting == 0)  # a connect may end by itself
    assert_idle(session)
    msg = Message("GET", env.good.url_for("/again"))
    async with session.websocket_connect(msg) as ws:
        await ws.send_text("again")
        with anyio.fail_after(BOUND):
            assert await ws.receive() == "again"
        assert session.statistics().detached == 1
    assert ws.close_code == 1000
    assert_idle(session)


async def at_connect(env: Env) -> None:
    """Cancelled while the TCP connect hangs (it goes on, and times out, by itself)."""
    host, port = env.hang
    stats = env.session.statistics
    connecting = after(lambda: until(lambda: stats().connecting == 1), 0.05)
    await cancelled(
        lambda: env.session.websocket_connect(Message("GET", f"ws://{host}:{port}/")), connecting
    )
    assert (stats().in_use, stats().waiting, stats().detached) == (0, 0, 0)


async def at_101(env: Env) -> None:
    """Cancelled while waiting for the answer to the handshake."""
    msg = Message("GET", env.faults.url("/stall-101"))

    async def call() -> None:
        async with env.session.websocket_connect(msg):
            raise AssertionError("the block must not run")

    await cancelled(call, after(env.faults.reached("/stall-101").wait, 0.05))
    assert msg.status == 0


async def at_body(env: Env) -> None:
    """Cancelled while reading the body of a non-101 answer that stalls."""
    msg = Message("GET", env.faults.url("/stall-body"))
    await cancelled(
        lambda: env.session.websocket_connect(msg),
        after(env.faults.reached("/stall-body").wait, 0.05),
    )
    assert msg.status == 404


async def at_receive(env: Env) -> None:
    """Cancelled in receive(), inside ``async with``: a 1001 goes out, the socket closes."""
    seen = len(env.faults.closes.codes)

    async def call() -> None:
        async with env.session.websocket_connect(Message("GET", env.faults.url("/watch"))) as ws:
            env.ws = ws
            await ws.receive()

    await cancelled(call, after(env.faults.reached("/watch").wait, 0.05))
    assert env.ws is not None and env.ws.state is WebsocketState.CLOSED
    assert (await env.faults.closes.wait(seen + 1))[seen] == WebsocketCloseCode.GOING_AWAY


async def at_send(env: Env) -> None:
    """Cancelled in send_binary() of a message the server doesn't read: half a
    frame may be out, so the connection is dropped (1006, no close frame)."""

    async def call() -> None:
        async with env.session.websocket_connect(Message("GET", env.faults.url("/quiet"))) as ws:
            env.ws = ws
            await ws.send_binary(bytes(LARGE))

    await cancelled(call, after(env.faults.reached("/quiet").wait, 0.1))
    ws = env.ws
    assert ws is not None and ws.state is WebsocketState.CLOSED
    assert ws.close_code == WebsocketCloseCode.ABNORMAL
    with pytest.raises(WebsocketClosed):
        await ws.send_text("after")


async def at_close(env: Env) -> None:
    """Cancelled in close() while the server never answers the close frame."""
    faults = env.faults
    # First uncancelled: close() gives up on the server after CLOSE_TIMEOUT.
    ws = await env.session.websocket_connect(Message("GET", faults.url("/deaf")))
    started = time.monotonic()
    with anyio.fail_after(BOUND):
        await ws.close()
    assert time.monotonic() - started < SWEEP_CLOSE_TIMEOUT + 1.5
    assert ws.state is WebsocketState.CLOSED
    assert ws.close_code == WebsocketCloseCode.ABNORMAL  # no close frame came back
    assert_idle(env.session)
    # Then cancelled while it waits: the connection is closed all the same.
    seen = len(faults.closes.codes)
    ws = env.ws = await env.session.websocket_connect(Message("GET", faults.url("/deaf")))
    await cancelled(ws.close, lambda: faults.closes.wait(seen + 1))
    assert faults.closes.codes[seen] == WebsocketCloseCode.NORMAL
    await until(lambda: ws.state is WebsocketState.CLOSED)
    await until(lambda: env.session.statistics().detached == 0)


async def at_message_handler(env: Env, *, receiving: bool) -> None:
    """Cancelled while an async ``message`` handler awaits (the program is in
    receive() or elsewhere): the handler is cancelled, a 1001 goes out."""
    seen = len(env.faults.closes.codes)
    entered = anyio.Event()
    outcome: list[type[BaseException]] = []

    async def handler(ws: WebsocketConnection, kind: object, data: object) -> None:
        assert data == "for the handler"
        entered.set()
        try:
            await anyio.sleep_forever()
        except BaseException as exc:
            outcome.append(type(exc))
            raise

    async def call() -> None:
        async with env.session.websocket_connect(Message("GET", env.faults.url("/handler"))) as ws:
            env.ws = ws
            ws.message.connect(handler)
            await ws.send_text("go")
            if receiving:
                await ws.receive()
            else:
                await anyio.sleep_forever()

    await cancelled(call, entered.wait)
    assert outcome == [anyio.get_cancelled_exc_class()]
    assert (await env.faults.closes.wait(seen + 1))[seen] == WebsocketCloseCode.GOING_AWAY
    assert env.ws is not None and env.ws.state is WebsocketState.CLOSED


async def in_handler_waiting(env: Env) -> None:
    await at_message_handler(env, receiving=False)


async def in_handler_receiving(env: Env) -> None:
    await at_message_handler(env, receiving=True)


CHECKPOINTS: dict[str, Callable[[Env], Awaitable[None]]] = {
    "connect": at_connect,
    "wait-101": at_101,
    "read-refusal-body": at_body,
    "receive": at_receive,
    "send": at_send,
    "close": at_close,
    "message-handler": in_handler_waiting,
    "message-handler-receiving": in_handler_receiving,
}


@pytest.fixture
def short_close(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(anysoup._drivers.websocket_core, "CLOSE_TIMEOUT", SWEEP_CLOSE_TIMEOUT)


@pytest.mark.usefixtures("short_close")
@pytest.mark.parametrize("checkpoint", list(CHECKPOINTS))
async def test_cancel_at_checkpoint(checkpoint: str, leak_check: LeakCheck) -> None:
    async with sweep_env(timeout=STALL_TIMEOUT) as env:
        await CHECKPOINTS[checkpoint](env)
        await check_recovers(env)
    await leak_check(env.session)


@pytest.mark.usefixtures("short_close")
async def test_cancel_at_every_checkpoint_in_one_session(leak_check: LeakCheck) -> None:
    async with sweep_env(timeout=STALL_TIMEOUT) as env:
        for scenario in CHECKPOINTS.values():
            await scenario(env)
            await check_recovers(env)
    await leak_check(env.session)


# -- leaving the block: exception, normal exit, the session closing ----------------------


async def test_exception_in_the_block_comes_out_as_itself(leak_check: LeakCheck) -> None:
    closes = Closes()

    async def handler(peer: WsPeer) -> None:
        await closes.record(peer)

    async with serve_ws(handler) as server, Session() as session:
        with pytest.raises(KeyError) as info:
            async with session.websocket_connect(Message("GET", server.url_for("/"))) as ws:
                raise KeyError("mine")
        assert info.value.args == ("mine",)
        assert await closes.wait() == [WebsocketCloseCode.GOING_AWAY]
        assert ws.state is WebsocketState.CLOSED
        # It left without waiting for the answer, closed by this side with
        # the code it sent (whether or not the server's echo was read).
        assert ws.close_code == WebsocketCloseCode.GOING_AWAY
        assert_idle(session)
    await leak_check(session)


async def test_normal_exit_completes_the_closing_handshake(
    monkeypatch: pytest.MonkeyPatch, leak_check: LeakCheck
) -> None:
    # Longer than BOUND: leaving the block must not end by giving up on the server.
    monkeypatch.setattr(anysoup._drivers.websocket_core, "CLOSE_TIMEOUT", 3 * BOUND)
    closes = Closes()
    events: list[str] = []

    async def handler(peer: WsPeer) -> None:
        await closes.record(peer)  # answered; then the server closes TCP first (§7.1.1)

    async with serve_ws(handler) as server, Session() as session:
        with anyio.fail_after(BOUND):
            async with session.websocket_connect(Message("GET", server.url_for("/"))) as ws:
                watch = Watch(ws)
                ws.closing.connect(lambda ws: events.append("closing"))
                ws.closed.connect(lambda ws: events.append("closed"))
        assert ws.state is WebsocketState.CLOSED
        await watch.wait_closed()
        assert await closes.wait() == [WebsocketCloseCode.NORMAL]
        assert ws.close_code == WebsocketCloseCode.NORMAL
        assert watch.errors == []
        assert events == ["closing", "closed"]
        assert [m async for m in ws] == []  # iteration ends on a normal close
        assert_idle(session)
    await leak_check(session)


async def test_session_closing_closes_an_open_websocket(leak_check: LeakCheck) -> None:
    closes = Closes()

    async def handler(peer: WsPeer) -> None:
        await closes.record(peer)

    async with serve_ws(handler) as server:
        async with Session() as session:
            ws = await session.websocket_connect(Message("GET", server.url_for("/")))
            assert session.statistics().detached == 1
        assert ws.state is WebsocketState.CLOSED
        assert ws.close_code == WebsocketCloseCode.GOING_AWAY
        assert await closes.wait() == [WebsocketCloseCode.GOING_AWAY]
        with pytest.raises(WebsocketClosed):
            await ws.receive()
        await leak_check(session)


# -- receive() called just as a message arrives ------------------------------------------


async def test_a_message_arriving_as_receive_starts_is_not_stranded(leak_check: LeakCheck) -> None:
    """The reader task may have read a message, not parsed it yet, when receive()
    takes the socket over: the message must still come out (not wait for more bytes)."""
    rounds = 200
    sent = [anyio.Event() for _ in range(rounds)]
    closes = Closes()

    async def sender(peer: WsPeer) -> None:
        await wait_go(peer)
        for index in range(rounds):
            await peer.send_text(f"message {index}")
            sent[index].set()
            assert await peer.next_message() == f"got {index}"
        await closes.record(peer)

    async with serve_ws(sender, extensions=no_extensions) as server, Session() as session:
        async with session.websocket_connect(Message("GET", server.url_for("/"))) as ws:
            await ws.send_text("go")
            for index in range(rounds):
                with anyio.fail_after(1):
                    await sent[index].wait()  # the message is on its way: now receive()
                    assert await ws.receive() == f"message {index}"
                await ws.send_text(f"got {index}")
        assert await closes.wait() == [1000]
    await leak_check(session)


# -- 12. keepalive -----------------------------------------------------------------------


async def test_keepalive_without_pongs_fails_the_connection(leak_check: LeakCheck) -> None:
    """A server that reads but never answers pings (no wsproto: bytes only)."""
    interval, pong_timeout = 0.2, 0.3

    async def deaf(conn: ServerConnection, head: bytes) -> None:
        await conn.send_raw(answer_101(head))
        try:
            while await conn.stream.receive():
                pass
        except PEER_ERRORS:
            pass

    async with serve_ws(never, handshake=deaf) as server, Session() as session:
        async with session.websocket_connect(Message("GET", server.url_for("/"))) as ws:
            watch = Watch(ws)
            started = time.monotonic()
            ws.keepalive_pong_timeout = pong_timeout
            ws.keepalive_interval = interval
            with anyio.fail_after(BOUND), pytest.raises(WebsocketClosed) as info:
                await ws.receive()
            elapsed = time.monotonic() - started
            await watch.wait_closed()
        assert info.value.code == WebsocketCloseCode.ABNORMAL
        assert ws.close_code == WebsocketCloseCode.ABNORMAL
        assert f"127.0.0.1:{server.port}" in str(info.value)
        assert "pong" in str(info.value)
        assert len(watch.errors) == 1
        # The first ping goes after one interval; its pong is awaited pong_timeout.
        assert interval + pong_timeout - 0.05 <= elapsed < interval + pong_timeout + 1.5
        assert_idle(session)
    await leak_check(session)
