"""The WebSocket handshake and extensions, as policy (no I/O).

RFC 6455 (handshake, §4 and §9.1) and RFC 7692 (permessage-deflate). The
peer of the deflate tests is a second implementation: a server-side wsproto
``Connection`` with wsproto's own ``PerMessageDeflate``, given the same
parameters as ours, bytes passed between the two in memory. Frames the peer
can't or won't send (RSV1 where it doesn't belong, BFINAL blocks, bombs) are
built by hand; the RFC's example frames are used as they are printed.
"""

from __future__ import annotations

import base64
import tracemalloc
import zlib
from collections.abc import Iterable

import pytest
from wsproto.connection import Connection, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    TextMessage,
)
from wsproto.events import Message as WsMessage
from wsproto.extensions import PerMessageDeflate
from wsproto.utilities import generate_accept_token

from anysoup._drivers.websocket_handshake_policy import (
    accept_key,
    check_response,
    make_key,
    parse_extensions,
    prepare_request,
)
from anysoup._features.auth.auth_policy import AuthBasic
from anysoup._features.websocket.deflate_policy import WebsocketExtensionDeflate
from anysoup._features.websocket.manager import WebsocketExtensionManager
from anysoup._model.enums import WebsocketErrorCode
from anysoup._model.exceptions import WebsocketError
from anysoup._model.message import Message
from anysoup._model.websocket_extension import WebsocketExtension

# -- helpers ---------------------------------------------------------------------------


class Plain(WebsocketExtension):
    """An extension without parameters (the base class's configure)."""

    name = "x-plain"


class Lenient(WebsocketExtension):
    """An extension whose configure() takes anything and doesn't call super()."""

    name = "x-lenient"

    def request_params(self) -> str:
        return "level=3"

    def configure(self, params: dict[str, str | None]) -> None:
        self.params = params


def handshake(
    uri: str = "ws://example.org/chat",
    *,
    protocols: list[str] | None = None,
    extensions: Iterable[WebsocketExtension] = (),
    origin: str | None = None,
) -> tuple[Message, str]:
    msg = Message("GET", uri)
    key = prepare_request(msg, origin=origin, protocols=protocols, extensions=list(extensions))
    return msg, key


def answer(
    msg: Message,
    key: str,
    status: int = 101,
    reason: str = "Switching Protocols",
    changes: dict[str, str | list[str] | None] | None = None,
) -> None:
    """Give ``msg`` a valid 101 answer to ``key``, then apply ``changes``."""
    msg.status, msg.reason_phrase = status, reason
    headers = msg.response_headers
    headers.append("Upgrade", "websocket")
    headers.append("Connection", "Upgrade")
    headers.append("Sec-WebSocket-Accept", accept_key(key))
    for name, value in (changes or {}).items():
        headers.remove(name)
        for line in [value] if isinstance(value, str) else value or []:
            headers.append(name, line)


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False) -> bytes:
    """A server's (unmasked) frame, built by hand (RFC 6455 §5.2)."""
    head = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        return bytes([head, n]) + payload
    if n < 1 << 16:
        return bytes([head, 126]) + n.to_bytes(2, "big") + payload
    return bytes([head, 127]) + n.to_bytes(8, "big") + payload


def deflate(data: bytes, bits: int = 15) -> bytes:
    """A message's payload as RFC 7692 §7.2.1 sends it: sync flush, tail stripped."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -bits)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


TEXT, BINARY, CONTINUATION, PING = 0x1, 0x2, 0x0, 0x9


def ours(params: str = "", limit: int = 0) -> tuple[WebsocketExtensionDeflate, Connection]:
    """Our extension configured from the answer ``permessage-deflate; params``."""
    [(_, parsed)] = parse_extensions(f"permessage-deflate; {params}".rstrip("; "))
    ext = WebsocketExtensionDeflate()
    ext.configure(parsed)
    ext.max_message_size = limit
    return ext, Connection(ConnectionType.CLIENT, extensions=[ext])


def pair(params: str = "", limit: int = 0) -> tuple[Connection, Connection]:
    """A client with our extension and a server with wsproto's, agreed on ``params``."""
    _, client = ours(params, limit)
    theirs = PerMessageDeflate()
    theirs.finalize(f"permessage-deflate; {params}")
    return client, Connection(ConnectionType.SERVER, extensions=[theirs])


def receive(conn: Connection, data: bytes, piece: int = 0) -> list[Event]:
    events: list[Event] = []
    for i in range(0, len(data), piece or len(data) or 1):
        conn.receive_data(data[i : i + piece] if piece else data)
        events.extend(conn.events())
    return events


def messages(events: list[Event]) -> list[str | bytes]:
    """Whole messages out of the events; fails on anything else."""
    out: list[str | bytes] = []
    parts: list[str | bytes] = []
    for event in events:
        assert isinstance(event, (TextMessage, BytesMessage)), event
        parts.append(event.data)
        if event.message_finished:
            joined = "".join(parts) if isinstance(event, TextMessage) else b"".join(parts)  # type: ignore[arg-type]
            out.append(joined)
            parts = []
    assert not parts
    return out


def close_code(events: list[Event]) -> int | None:
    closes = [e.code for e in events if isinstance(e, CloseConnection)]
    return closes[0] if closes else None


# -- keys (RFC 6455 §4.1, §4.2.2) ------------------------------------------------------


def test_accept_key_matches_the_rfc_example() -> None:
    # RFC 6455 §1.3 (and §4.2.2 item 5.4).
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    # wsproto, the other implementation, agrees on fresh keys.
    for key in (make_key() for _ in range(5)):
        assert accept_key(key) == generate_accept_token(key.encode()).decode()


def test_make_key_is_16_random_bytes_in_base64() -> None:
    keys = {make_key() for _ in range(20)}
    assert len(keys) == 20
    assert all(len(base64.b64decode(key, validate=True)) == 16 for key in keys)


# -- the request -----------------------------------------------------------------------


def test_prepare_request_sets_the_handshake_headers() -> None:
    msg, key = handshake(
        protocols=["chat", "superchat"],
        extensions=[WebsocketExtensionDeflate(), Plain()],
        origin="http://example.org",
    )
    h = msg.request_headers
    assert h.get_all("Upgrade") == ["websocket"]
    assert h.get_all("Connection") == ["Upgrade"]
    assert h.get_all("Sec-WebSocket-Key") == [key]
    assert h.get_all("Sec-WebSocket-Version") == ["13"]
    assert h.get_all("Origin") == ["http://example.org"]
    assert h.get_all("Sec-WebSocket-Protocol") == ["chat, superchat"]
    assert h.get_all("Sec-WebSocket-Extensions") == [
        "permessage-deflate; client_max_window_bits, x-plain"
    ]


def test_prepare_request_again_gives_one_consistent_offer() -> None:
    msg = Message("GET", "ws://example.org/chat", headers={"Origin": "http://app.example"})
    first = prepare_request(msg, origin=None, protocols=["chat"], extensions=[Lenient()])
    second = prepare_request(msg, origin=None, protocols=None, extensions=[])
    h = msg.request_headers
    assert first != second
    assert h.get_all("Sec-WebSocket-Key") == [second]
    assert h.get_all("Upgrade") == ["websocket"]
    assert h.get_all("Sec-WebSocket-Version") == ["13"]
    assert "Sec-WebSocket-Protocol" not in h
    assert "Sec-WebSocket-Extensions" not in h
    assert h.get_all("Origin") == ["http://app.example"]  # the program's, left alone
    third = prepare_request(msg, origin="http://other", protocols=["a"], extensions=[Lenient()])
    assert h.get_all("Sec-WebSocket-Key") == [third]
    assert h.get_all("Origin") == ["http://other"]
    assert h.get_all("Sec-WebSocket-Extensions") == ["x-lenient; level=3"]


@pytest.mark.parametrize(
    ("protocols", "error"),
    [
        (["chat", "two words"], "subprotocol 'two words' is not a token"),
        ([""], "subprotocol '' is not a token"),
        (["a,b"], "subprotocol 'a,b' is not a token"),
        (["caf\u00e9"], "subprotocol 'caf\u00e9' is not a token"),
        (["chat", "v2", "chat"], "subprotocol 'chat' is given twice"),
    ],
)
def test_prepare_request_refuses_bad_subprotocols(protocols: list[str], error: str) -> None:
    msg = Message("GET", "ws://example.org/")
    with pytest.raises(ValueError, match=error):
        prepare_request(msg, origin=None, protocols=protocols, extensions=[])
    assert "Sec-WebSocket-Key" not in msg.request_headers  # nothing half-done


def test_prepare_request_refuses_a_single_str_of_protocols() -> None:
    with pytest.raises(TypeError, match="sequence of str"):
        handshake(protocols="chat")  # type: ignore[arg-type]


def test_prepare_request_refuses_other_methods_and_bad_names() -> None:
    with pytest.raises(ValueError, match="GET request, not 'POST'"):
        prepare_request(
            Message("POST", "ws://example.org/"), origin=None, protocols=None, extensions=[]
        )

    class Nameless(WebsocketExtension):
        name = "bad name"

    with pytest.raises(ValueError, match="extension name 'bad name' is not a token"):
        handshake(extensions=[Nameless()])


# -- Sec-WebSocket-Extensions ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        (None, []),
        ("", []),
        ("permessage-deflate", [("permessage-deflate", {})]),
        (
            "permessage-deflate; client_max_window_bits=10; server_no_context_takeover",
            [
                (
                    "permessage-deflate",
                    {"client_max_window_bits": "10", "server_no_context_takeover": None},
                )
            ],
        ),
        ('a; b="10"', [("a", {"b": "10"})]),
        ('a; b="\\x\\-1"', [("a", {"b": "x-1"})]),
        ("a ; b = 1 ;c\t;d", [("a", {"b": "1", "c": None, "d": None})]),
        ("a, b; x, a; y=2", [("a", {}), ("b", {"x": None}), ("a", {"y": "2"})]),
        (" , a , , b ,", [("a", {}), ("b", {})]),
    ],
)
def test_parse_extensions(value: str | None, parsed: list[object]) -> None:
    assert parse_extensions(value) == parsed


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("; x=1", "without an extension name"),
        ("a, ;x", "without an extension name"),
        ('"a"', "without an extension name"),
        ("a; b; b=1", "parameter 'b' given twice"),
        ('a; b="two words"', "value of 'b' is not a token"),
        ('a; b=""', "value of 'b' is not a token"),
        ('a; b="x', "unexpected"),
        ("a; b=", "unexpected '='"),
        ("a; =1", "unexpected"),
        ("a b", "unexpected ' b'"),
        ("a; b=1 2", "unexpected ' 2'"),
        ("a; b=[1]", "unexpected"),
        ("a;", "unexpected ';'"),
    ],
)
def test_parse_extensions_refuses_malformed_values(value: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_extensions(value)


# -- the response ----------------------------------------------------------------------


def test_check_response_returns_the_agreement_in_the_servers_order() -> None:
    offered = [WebsocketExtensionDeflate(), Plain(), Lenient()]
    msg, key = handshake(protocols=["chat", "superchat"], extensions=offered)
    answer(
        msg,
        key,
        changes={
            "Sec-WebSocket-Protocol": "superchat",
            "Sec-WebSocket-Extensions": [
                "x-lenient; level=1",
                "permessage-deflate; server_no_context_takeover",
            ],
        },
    )
    protocol, accepted = check_response(
        msg, key, protocols=["chat", "superchat"], offered=offered, origin_sent=False
    )
    assert protocol == "superchat"
    assert accepted == [offered[2], offered[0]]
    assert all(ext.enabled() for ext in accepted)
    assert not offered[1].enabled()  # not accepted: wsproto leaves it out
    assert offered[2].params == {"level": "1"}  # type: ignore[attr-defined]
    assert offered[0].server_no_context_takeover  # type: ignore[attr-defined]


def test_check_response_without_protocol_or_extensions() -> None:
    offered = [WebsocketExtensionDeflate()]
    msg, key = handshake(protocols=["chat"], extensions=offered)
    answer(msg, key, changes={"Upgrade": "WebSocket", "Connection": "keep-alive, upgrade"})
    assert check_response(msg, key, protocols=["chat"], offered=offered, origin_sent=True) == (
        None,
        [],
    )
    assert not offered[0].enabled()


BAD = WebsocketErrorCode.BAD_HANDSHAKE


@pytest.mark.parametrize(
    ("status", "reason", "changes", "origin_sent", "code", "cause"),
    [
        (
            404,
            "Not Found",
            {},
            False,
            WebsocketErrorCode.NOT_WEBSOCKET,
            "the server answered 404 Not Found, not 101 Switching Protocols",
        ),
        (
            200,
            "",
            {},
            True,
            WebsocketErrorCode.NOT_WEBSOCKET,
            "the server answered 200, not 101 Switching Protocols",
        ),
        (
            403,
            "Forbidden",
            {},
            True,
            WebsocketErrorCode.BAD_ORIGIN,
            "the server answered 403 Forbidden: it refused the Origin",
        ),
        (
            403,
            "Forbidden",
            {},
            False,
            WebsocketErrorCode.NOT_WEBSOCKET,
            "the server answered 403 Forbidden, not 101 Switching Protocols",
        ),
        (101, "", {"Upgrade": None}, False, BAD, "Upgrade is None, not 'websocket'"),
        (101, "", {"Upgrade": "h2c"}, False, BAD, "Upgrade is 'h2c', not 'websocket'"),
        (101, "", {"Upgrade": ["websocket", "h2c"]}, False, BAD, "Upgrade is 'websocket, h2c'"),
        (101, "", {"Connection": None}, False, BAD, "Connection is None, without 'upgrade'"),
        (101, "", {"Connection": "close"}, False, BAD, "Connection is 'close', without"),
        (101, "", {"Sec-WebSocket-Accept": None}, False, BAD, "no Sec-WebSocket-Accept"),
        (101, "", {"Sec-WebSocket-Accept": "x"}, False, BAD, "wrong Sec-WebSocket-Accept"),
        (
            101,
            "",
            {"Sec-WebSocket-Protocol": "other"},
            False,
            BAD,
            "the server chose subprotocol 'other', which was not offered",
        ),
        (
            101,
            "",
            {"Sec-WebSocket-Protocol": "chat, v2"},
            False,
            BAD,
            "the server chose several subprotocols: 'chat, v2'",
        ),
        (
            101,
            "",
            {"Sec-WebSocket-Protocol": ["chat", "chat"]},
            False,
            BAD,
            "the server chose several subprotocols: 'chat, chat'",
        ),
        (
            101,
            "",
            {"Sec-WebSocket-Extensions": "x-unknown"},
            False,
            BAD,
            "the server accepted extension 'x-unknown', which was not offered",
        ),
        (
            101,
            "",
            {"Sec-WebSocket-Extensions": ["x-plain", "x-plain"]},
            False,
            BAD,
            "the server accepted extension 'x-plain' twice",
        ),
        (
            101,
            "",
            {"Sec-WebSocket-Extensions": "x-plain; a; a"},
            False,
            BAD,
            "malformed Sec-WebSocket-Extensions: extension 'x-plain': parameter 'a' given twice",
        ),
        (
            101,
            "",
            {"Sec-WebSocket-Extensions": "x-plain; level=1"},
            False,
            BAD,
            "extension 'x-plain': unexpected parameters ['level']",
        ),
        (
            101,
            "",
            {"Sec-WebSocket-Extensions": "permessage-deflate; server_max_window_bits=16"},
            False,
            BAD,
            "extension 'permessage-deflate': server_max_window_bits must be a number from 8 to 15",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and v else None,
)
def test_check_response_failures(
    status: int,
    reason: str,
    changes: dict[str, str | list[str] | None],
    origin_sent: bool,
    code: WebsocketErrorCode,
    cause: str,
) -> None:
    offered = [WebsocketExtensionDeflate(), Plain()]
    msg, key = handshake(protocols=["chat"], extensions=offered)
    answer(msg, key, status, reason, changes)
    with pytest.raises(WebsocketError) as caught:
        check_response(msg, key, protocols=["chat"], offered=offered, origin_sent=origin_sent)
    assert caught.value.code is code
    assert caught.value.message is msg
    assert str(caught.value).startswith(f"WebSocket handshake with example.org:80: {cause}")


def test_check_response_refuses_a_protocol_when_none_was_offered() -> None:
    msg, key = handshake()
    answer(msg, key, changes={"Sec-WebSocket-Protocol": "chat"})
    with pytest.raises(WebsocketError, match="chose subprotocol 'chat', but none was offered"):
        check_response(msg, key, protocols=None, offered=[], origin_sent=False)


@pytest.mark.parametrize(
    ("uri", "label"),
    [
        ("ws://127.0.0.1:8080/", "127.0.0.1:8080"),
        ("wss://example.org/", "example.org:443"),
        ("wss://[::1]:8443/", "[::1]:8443"),
    ],
)
def test_check_response_names_host_and_port(uri: str, label: str) -> None:
    msg, key = handshake(uri)
    answer(msg, key, changes={"Sec-WebSocket-Accept": accept_key("another key")})
    with pytest.raises(WebsocketError) as caught:
        check_response(msg, key, protocols=None, offered=[], origin_sent=False)
    assert str(caught.value) == f"WebSocket handshake with {label}: wrong Sec-WebSocket-Accept"


# -- permessage-deflate: negotiation ----------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, (False, False, 15, 15)),
        ({"server_no_context_takeover": None}, (True, False, 15, 15)),
        ({"client_no_context_takeover": None}, (False, True, 15, 15)),
        ({"server_max_window_bits": "8"}, (False, False, 8, 15)),
        ({"client_max_window_bits": "15"}, (False, False, 15, 15)),
        (
            {
                "server_no_context_takeover": None,
                "client_no_context_takeover": None,
                "server_max_window_bits": "10",
                "client_max_window_bits": "9",
            },
            (True, True, 10, 9),
        ),
    ],
)
def test_deflate_configure_accepts(
    params: dict[str, str | None], expected: tuple[bool, bool, int, int]
) -> None:
    ext = WebsocketExtensionDeflate()
    assert not ext.enabled()
    ext.configure(params)
    assert ext.enabled()
    assert (
        ext.server_no_context_takeover,
        ext.client_no_context_takeover,
        ext.server_max_window_bits,
        ext.client_max_window_bits,
    ) == expected


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"x_unknown": None}, "unknown parameter 'x_unknown'"),
        ({"server_no_context_takeover": "1"}, "server_no_context_takeover takes no value"),
        ({"client_no_context_takeover": ""}, "client_no_context_takeover takes no value"),
        ({"server_max_window_bits": None}, "server_max_window_bits must be a number"),
        ({"client_max_window_bits": None}, "client_max_window_bits must be a number"),
        ({"server_max_window_bits": "7"}, "from 8 to 15, got '7'"),
        ({"server_max_window_bits": "16"}, "from 8 to 15, got '16'"),
        ({"client_max_window_bits": "010"}, "from 8 to 15, got '010'"),
        ({"client_max_window_bits": "0x9"}, "from 8 to 15, got '0x9'"),
        ({"server_max_window_bits": "+9"}, "from 8 to 15, got '\\+9'"),
    ],
)
def test_deflate_configure_refuses(params: dict[str, str | None], error: str) -> None:
    ext = WebsocketExtensionDeflate()
    with pytest.raises(ValueError, match=error):
        ext.configure(params)
    assert not ext.enabled()


def test_deflate_refuses_a_client_window_it_did_not_offer() -> None:
    class Quiet(WebsocketExtensionDeflate):
        def request_params(self) -> str:
            return ""

    with pytest.raises(ValueError, match="client_max_window_bits was not offered"):
        Quiet().configure({"client_max_window_bits": "10"})
    Quiet().configure({"server_max_window_bits": "10"})  # §7.1.2.1: allowed unasked


def test_deflate_offer_and_repr() -> None:
    ext = WebsocketExtensionDeflate()
    assert ext.offer() == "client_max_window_bits"
    assert "'permessage-deflate'" in repr(ext)
    ext.configure({"server_no_context_takeover": None, "client_max_window_bits": "12"})
    assert repr(ext).endswith(
        "WebsocketExtensionDeflate server_no_context_takeover; "
        "server_max_window_bits=15; client_max_window_bits=12>"
    )


# -- permessage-deflate: against wsproto's implementation -------------------------------

SAMPLES: list[str | bytes] = [
    "Hello, Hello, Hello " * 40,
    bytes(range(256)) * 8,
    "",
    b"",
    "\u00e9t\u00e9 \U0001f600 " * 100,
    bytes(5000),
]


def as_event(data: str | bytes, finished: bool = True) -> WsMessage[str] | WsMessage[bytes]:
    if isinstance(data, str):
        return TextMessage(data=data, message_finished=finished)
    return BytesMessage(data=data, message_finished=finished)


@pytest.mark.parametrize(
    "params",
    [
        "",
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_no_context_takeover; client_no_context_takeover",
        "client_max_window_bits=9",
        "server_max_window_bits=9",
        "client_max_window_bits=10; server_max_window_bits=12",
    ],
)
def test_deflate_round_trip(params: str) -> None:
    client, server = pair(params)
    for data in SAMPLES * 2:  # twice: the second round uses the kept context, if any
        wire = client.send(as_event(data))
        if data:
            assert wire[0] & 0x40, "RSV1: a data message is compressed"
        assert messages(receive(server, wire)) == [data]
        wire = server.send(as_event(data))
        assert messages(receive(client, wire, piece=7)) == [data]


def test_deflate_fragmented_messages_both_ways() -> None:
    client, server = pair()
    parts = ["first part, ", "second part, ", "the end " * 50]
    wires = [client.send(as_event(p, i == 2)) for i, p in enumerate(parts)]
    assert [bool(w[0] & 0x40) for w in wires] == [True, False, False]  # RSV1: first frame only
    assert messages(receive(server, b"".join(wires))) == ["".join(parts)]

    blobs = [b"abc" * 100, b"", b"xyz" * 100]
    wire = b"".join(server.send(as_event(b, i == 2)) for i, b in enumerate(blobs))
    assert messages(receive(client, wire, piece=5)) == [b"".join(blobs)]


def test_deflate_control_frame_between_the_frames_of_a_compressed_message() -> None:
    client, server = pair()
    wire = server.send(as_event("Hello, ", False)) + server.send(Ping(b"ping"))
    wire += server.send(as_event("Hello, world", True))
    events = receive(client, wire)
    pings = [e for e in events if isinstance(e, Ping)]
    assert [p.payload for p in pings] == [b"ping"]
    assert messages([e for e in events if not isinstance(e, Ping)]) == ["Hello, Hello, world"]
    # Nor is a ping we send compressed (RFC 7692 §6.1).
    wire = client.send(Ping(b"abc"))
    assert not wire[0] & 0x40
    assert [e.payload for e in receive(server, wire) if isinstance(e, Ping)] == [b"abc"]


@pytest.mark.parametrize(
    ("params", "second_smaller"),
    [("", True), ("client_no_context_takeover", False)],
)
def test_deflate_client_context_takeover(params: str, second_smaller: bool) -> None:
    client, server = pair(params)
    text = "".join(f"line {i}: the quick brown fox\n" for i in range(40))
    first, second = client.send(as_event(text)), client.send(as_event(text))
    assert messages(receive(server, first + second)) == [text, text]
    if second_smaller:
        assert len(second) < len(first) // 4  # it points back into the first message
    else:
        assert len(second) == len(first)


def test_deflate_server_no_context_takeover_starts_each_message_afresh() -> None:
    # The server keeps its context, though it promised not to: its second
    # message points into the first, which we must have forgotten.
    _, client = ours("server_no_context_takeover")
    theirs = PerMessageDeflate()
    theirs.finalize("permessage-deflate")
    server = Connection(ConnectionType.SERVER, extensions=[theirs])
    text = "the same words again and again " * 10
    wire = server.send(as_event(text)) + server.send(as_event(text))
    events = receive(client, wire)
    assert messages(events[:1]) == [text]
    assert close_code(events) == 1007


def test_deflate_narrow_client_window_is_respected() -> None:
    # 600 random bytes twice: a 15-bit window would point 600 bytes back,
    # beyond the 512 bytes a 9-bit inflater keeps.
    client, server = pair("client_max_window_bits=9")
    block = bytes((i * 7919) % 251 for i in range(600))
    wire = client.send(as_event(block * 2))
    assert wire[0] & 0x40
    assert messages(receive(server, wire)) == [block * 2]


def test_deflate_client_window_of_8_sends_uncompressed() -> None:
    _, client = ours("client_max_window_bits=8")
    server = Connection(ConnectionType.SERVER, extensions=[])  # reads plain frames only
    wires = [client.send(as_event("abc " * 50, False)), client.send(as_event("end", True))]
    assert not any(w[0] & 0x40 for w in wires)
    assert messages(receive(server, b"".join(wires))) == ["abc " * 50 + "end"]


def test_deflate_server_window_of_8_is_read() -> None:
    _, client = ours("server_max_window_bits=8")
    data = b"window of eight " * 64
    wire = frame(BINARY, deflate(data, bits=9), rsv1=True)  # zlib's smallest
    assert messages(receive(client, wire)) == [data]


# -- permessage-deflate: RFC 7692's examples and odd streams ----------------------------


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        # §7.2.3.1: a message compressed in one frame.
        ("c107f248cdc9c90700", ["Hello"]),
        # §7.2.3.1: the same, in two fragments.
        ("4103f248cd8004c9c90700", ["Hello"]),
        # §7.2.3.2: the second message points into the first (context takeover).
        ("c107f248cdc9c90700c105f200110000", ["Hello", "Hello"]),
        # §7.2.3.3: a stored (uncompressed) DEFLATE block.
        ("c10b000500faff48656c6c6f00", ["Hello"]),
        # §7.2.3.4: a block with BFINAL set, then an empty one.
        ("c108f348cdc9c9070000", ["Hello"]),
        # §7.2.3.5: two DEFLATE blocks in one message.
        ("c10df24805000000ffffcac9c90700", ["Hello"]),
        # A message that isn't compressed (RSV1 clear) passes as it is.
        ("8105" + b"Hello".hex(), ["Hello"]),
    ],
    ids=["one-frame", "fragments", "shared-window", "stored", "bfinal", "two-blocks", "plain"],
)
def test_deflate_reads_the_rfc_examples(wire: str, expected: list[str]) -> None:
    _, client = ours()
    assert messages(receive(client, bytes.fromhex(wire), piece=1)) == expected


def test_deflate_reads_on_after_a_bfinal_block() -> None:
    # A block with BFINAL set ends the inflater's stream, but RFC 7692 §7.2.1
    # lets blocks follow it in the message, and the next message must start a
    # new stream even with context takeover. (wsproto's own extension drops
    # all of that silently.) A sender may also leave out the empty stored
    # block the RFC wants after a BFINAL block: the message is complete.
    _, client = ours()

    def final(data: bytes) -> bytes:
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        return compressor.compress(data) + compressor.flush(zlib.Z_FINISH)

    wire = frame(TEXT, final(b"Hello, ") + deflate(b"world"), rsv1=True)
    wire += frame(TEXT, final(b"again") + b"\x00", rsv1=True)  # as the RFC writes it
    wire += frame(TEXT, final(b"no empty block"), rsv1=True)
    wire += frame(TEXT, deflate(b"and again"), rsv1=True)
    expected = ["Hello, world", "again", "no empty block", "and again"]
    assert messages(receive(client, wire, piece=3)) == expected


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        # RSV1 on a continuation frame (§6.1: only the first frame of a message).
        (frame(TEXT, deflate(b"Hel"), fin=False, rsv1=True) + frame(0, b"lo", rsv1=True), 1002),
        # RSV1 on a control frame.
        (frame(PING, b"hi", rsv1=True), 1002),
        # RSV2 belongs to no extension.
        (bytes([0x80 | 0x20 | TEXT, 0]), 1002),
        # Not DEFLATE at all.
        (frame(BINARY, b"\xff\xff\xff\xff", rsv1=True), 1007),
    ],
    ids=["rsv1-continuation", "rsv1-ping", "rsv2", "corrupt"],
)
def test_deflate_protocol_errors(wire: bytes, code: int) -> None:
    _, client = ours()
    assert close_code(receive(client, wire)) == code


# -- permessage-deflate: the size limit -------------------------------------------------

LIMIT = 64 * 1024


@pytest.mark.parametrize(("size", "code"), [(LIMIT - 1, None), (LIMIT, None), (LIMIT + 1, 1009)])
@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_deflate_limit_is_exact(size: int, code: int | None, opcode: int) -> None:
    _, client = ours(limit=LIMIT)
    wire = frame(opcode, deflate(b"a" * size), rsv1=True) * 2
    events = receive(client, wire, piece=100)
    assert close_code(events) == code
    if code is None:
        assert [len(m) for m in messages(events)] == [size, size]
    else:
        delivered = sum(len(e.data) for e in events if isinstance(e, (TextMessage, BytesMessage)))
        assert delivered <= LIMIT


def test_deflate_limit_counts_the_whole_message_across_frames() -> None:
    _, client = ours(limit=LIMIT)
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    half = b"b" * (LIMIT // 2 + 1)
    first = compressor.compress(half) + compressor.flush(zlib.Z_SYNC_FLUSH)
    second = (compressor.compress(half) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
    wire = frame(BINARY, first, fin=False, rsv1=True) + frame(CONTINUATION, second)
    assert close_code(receive(client, wire)) == 1009


def test_deflate_limit_may_change_while_in_use() -> None:
    ext, client = ours(limit=LIMIT)
    big = frame(BINARY, deflate(b"c" * (2 * LIMIT)), rsv1=True)
    ext.max_message_size = 2 * LIMIT  # raised between messages
    assert [len(m) for m in messages(receive(client, big))] == [2 * LIMIT]
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    first = compressor.compress(b"d" * LIMIT) + compressor.flush(zlib.Z_SYNC_FLUSH)
    second = (compressor.compress(b"d") + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
    events = receive(client, frame(BINARY, first, fin=False, rsv1=True))
    assert sum(len(e.data) for e in events if isinstance(e, BytesMessage)) == LIMIT
    ext.max_message_size = LIMIT // 2  # lowered mid-message, below what came
    assert close_code(receive(client, frame(CONTINUATION, second))) == 1009


def test_deflate_no_limit() -> None:
    _, client = ours(limit=0)
    data = bytes(4 * LIMIT)
    assert messages(receive(client, frame(BINARY, deflate(data), rsv1=True))) == [data]


@pytest.mark.parametrize("piece", [512, 1 << 20], ids=["small-pieces", "at-once"])
def test_deflate_bomb_is_refused_in_bounded_memory(piece: int) -> None:
    # 50 MiB of zeros deflate to some 50 KiB; with a 1 MiB limit the client
    # must stop at the limit, however the bytes arrive: in small pieces, or
    # all at once (where one unbounded decompress() call would give 50 MiB).
    limit = 1 << 20
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(1 << 20)
    payload = b"".join(compressor.compress(zeros) for _ in range(50))
    payload = (payload + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
    assert len(payload) < 100_000
    wire = frame(BINARY, payload, rsv1=True)
    _, client = ours(limit=limit)
    tracemalloc.start()
    try:
        delivered = 0
        code = None
        for i in range(0, len(wire), piece):
            client.receive_data(wire[i : i + piece])
            for event in client.events():
                if isinstance(event, BytesMessage):
                    delivered += len(event.data)
                elif isinstance(event, CloseConnection):
                    code = event.code
            if code is not None:
                break
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 1009
    assert delivered <= limit
    assert peak < limit + (2 << 20), f"peak {peak} bytes"


# -- the extension base class and the manager --------------------------------------------


def test_extension_base_class() -> None:
    ext = Plain()
    assert ext.offer() is True
    assert Lenient().offer() == "level=3"
    assert not ext.enabled()
    assert ext.max_message_size == 0
    with pytest.raises(ValueError, match=r"unexpected parameters \['a'\]"):
        ext.configure({"a": None})
    assert not ext.enabled()
    ext.configure({})
    assert ext.enabled()
    assert repr(ext).endswith("Plain 'x-plain' enabled>")


def test_manager_offers_deflate_by_default() -> None:
    manager = WebsocketExtensionManager()
    assert manager.chain_position is None
    assert manager.extension_types == (WebsocketExtensionDeflate,)
    assert manager.has_sub_feature(WebsocketExtensionDeflate)
    first, second = manager.new_offer(), manager.new_offer()
    assert [type(e) for e in first] == [WebsocketExtensionDeflate]
    assert first[0] is not second[0]  # one instance per handshake
    assert repr(manager).endswith("WebsocketExtensionManager ['permessage-deflate']>")


def test_manager_sub_features() -> None:
    manager = WebsocketExtensionManager()
    assert manager.add_sub_feature(Plain)
    assert manager.add_sub_feature(Plain)  # again: still offered once
    assert manager.extension_types == (WebsocketExtensionDeflate, Plain)
    assert manager.has_sub_feature(Plain)

    class Unnamed(WebsocketExtension):
        pass

    for other in (Unnamed, AuthBasic, int, WebsocketExtensionManager):
        assert not manager.add_sub_feature(other)
        assert not manager.has_sub_feature(other)
    assert manager.remove_sub_feature(WebsocketExtensionDeflate)
    assert not manager.remove_sub_feature(WebsocketExtensionDeflate)
    assert [type(e) for e in manager.new_offer()] == [Plain]
    assert manager.remove_sub_feature(Plain)
    assert manager.new_offer() == []
