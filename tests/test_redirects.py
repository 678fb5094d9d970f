"""Redirects (DESIGN §3): the rules as tables, then on the wire, then against httpbin.

The matrix sends every status, method, origin and body kind through scripted
h11 servers and checks what the server behind the redirect received. Each
session ends with ``leak_check``: a redirect leaves no connection behind,
whether it was followed, handed back, refused or cancelled.
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import pytest
from servers import PEER_ERRORS, ReceivedRequest, ServerConnection, hanging_listener, serve_http
from yarl import URL

from anysoup import (
    Message,
    MessageFlags,
    RedirectBadUri,
    RedirectNoLocation,
    Session,
    SessionErrorCode,
    TlsDatabase,
    TooManyRedirects,
)
from anysoup._features.redirect import REDIRECT_STATUSES, redirect_method, resolve_location

LeakCheck = Callable[[Session], Awaitable[None]]
Handler = Callable[[ServerConnection, ReceivedRequest], Awaitable[None]]

BOUND = 10.0
PAYLOAD = b"payload-" * 100
SAFE = {"GET", "HEAD", "OPTIONS", "PROPFIND", "TRACE"}
MIB = 1 << 20


# -- helpers -------------------------------------------------------------------


def record_restarts(msg: Message) -> list[tuple[str, str, int]]:
    """``(method, path, status)`` as seen by each ``restarted`` handler call."""
    seen: list[tuple[str, str, int]] = []

    def on_restarted(m: Message) -> None:
        assert m is msg
        seen.append((m.method, m.uri.raw_path_qs, m.status))

    msg.restarted.connect(on_restarted)
    return seen


def routes(table: dict[str, tuple[int, list[tuple[Any, Any]], bytes]]) -> Handler:
    """Answer the targets in ``table``; any other target gets 200 with the target as body."""

    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        status, headers, body = table.get(req.target, (200, [], req.target.encode()))
        await conn.respond(status, headers, body)

    return handler


async def stream_body() -> AsyncIterator[bytes]:
    yield PAYLOAD[:300]
    yield PAYLOAD[300:]


def with_body(msg: Message, kind: str) -> Message:
    if kind == "bytes":
        msg.set_request_body("text/plain", PAYLOAD)
    elif kind == "stream":
        msg.set_request_body("text/plain", stream_body())
    return msg


async def send_read(session: Session, msg: Message) -> bytes:
    with anyio.fail_after(BOUND):
        return await session.send_and_read(msg)


def assert_pool_settled(session: Session) -> None:
    stats = session.statistics()
    assert (stats.in_use, stats.waiting, stats.connecting) == (0, 0, 0), stats


# -- the policy, as tables -----------------------------------------------------

#: libsoup's rules (soup-session.c, SOUP_SESSION_WOULD_REDIRECT_AS_GET/_AS_SAFE)
#: plus anysoup's 307/308 replay of unsafe methods. None: handed back.
METHOD_TABLE: dict[tuple[int, str], tuple[str, bool] | None] = {}
ALL_METHODS = ("GET", "HEAD", "OPTIONS", "PROPFIND", "TRACE", "POST", "PUT", "DELETE", "PATCH")
for _status in (300, 301, 302, 303, 304, 305, 306, 307, 308, 200, 404):
    for _method in ALL_METHODS:
        move: tuple[str, bool] | None = None
        if _status == 303:
            move = ("HEAD" if _method == "HEAD" else "GET", False)
        elif (_status == 302 and _method not in SAFE) or (_status == 301 and _method == "POST"):
            move = ("GET", False)
        elif _status in (307, 308) or (_status in (301, 302) and _method in SAFE):
            move = (_method, True)
        METHOD_TABLE[_status, _method] = move


@pytest.mark.parametrize(("status", "method"), sorted(METHOD_TABLE))
def test_redirect_method_table(status: int, method: str) -> None:
    assert redirect_method(status, method) == METHOD_TABLE[status, method]


def test_redirect_statuses_are_libsoups() -> None:
    # 300, 304, 305 and 306 are final answers in libsoup (redirect-test.c)
    assert frozenset({301, 302, 303, 307, 308}) == REDIRECT_STATUSES


BASE = URL("http://example.org:8080/dir/page?x=1#top")


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("next", "http://example.org:8080/dir/next#top"),
        ("../up", "http://example.org:8080/up#top"),
        ("/abs", "http://example.org:8080/abs#top"),
        ("?y=2", "http://example.org:8080/dir/page?y=2#top"),
        ("//other.example/p", "http://other.example/p#top"),
        ("https://other.example/p", "https://other.example/p#top"),
        ("HTTPS://Other.Example:8443/P", "https://other.example:8443/P#top"),
        ("/p#new", "http://example.org:8080/p#new"),
        ("#new", "http://example.org:8080/dir/page?x=1#new"),
        ("/p#", "http://example.org:8080/p"),  # an empty fragment is the Location's own
        ("/bad with spaces", "http://example.org:8080/bad%20with%20spaces#top"),
        ("/q?a=b c", "http://example.org:8080/q?a=b%20c#top"),
        ('/p|"<>{}`^', "http://example.org:8080/p%7C%22%3C%3E%7B%7D%60%5E#top"),
        ("/a%20b", "http://example.org:8080/a%20b#top"),  # encoded stays encoded
        ("/x?a=%zz", "http://example.org:8080/x?a=%25zz#top"),
        ("/caf\xc3\xa9", "http://example.org:8080/caf%C3%A9#top"),  # UTF-8 bytes, read as latin-1
        ("/caf\xe9", "http://example.org:8080/caf%E9#top"),  # a latin-1 byte stays that byte
        ("http://b\xc3\xbccher.example/", "http://xn--bcher-kva.example/#top"),
        ("/tab\there", "http://example.org:8080/tabhere#top"),
        ("http://[::1]:81/v6", "http://[::1]:81/v6#top"),
        ("http://user@other.example/", "http://user@other.example/#top"),
    ],
)
def test_resolve_location(location: str, expected: str) -> None:
    assert str(resolve_location(BASE, location)) == expected


@pytest.mark.parametrize(
    "location",
    [
        "http://[::1",
        "http://exa mple.com/",
        "http://h:99999/",
        "http://h:0/",
        "http:///no-host",
        "http:no-host",
        "http://",
        "ftp://example.org/file",
        "ws://example.org/",
        "about:blank",
        "javascript:alert(1)",
        "mailto:someone@example.org",
        "http://b\xfccher.example/",  # a latin-1 host: not a name
    ],
)
def test_resolve_location_refuses(location: str) -> None:
    with pytest.raises(ValueError, match=r".+"):
        resolve_location(BASE, location)


# -- the matrix: status, method, origin, body -----------------------------------

MATRIX_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]


def expected_hop(status: int, method: str, body: str) -> tuple[str, bool] | None:
    """What the matrix expects: (method, body kept) or None when the 3xx is handed back."""
    move = METHOD_TABLE[status, method]
    if move is not None and move[1] and body == "stream":
        return None  # a stream body can't be sent twice
    return move


@pytest.mark.parametrize("body", ["none", "bytes", "stream"])
@pytest.mark.parametrize("origin", ["same-origin", "cross-origin"])
@pytest.mark.parametrize("method", MATRIX_METHODS)
@pytest.mark.parametrize("status", sorted(REDIRECT_STATUSES))
async def test_matrix(
    status: int, method: str, origin: str, body: str, leak_check: LeakCheck
) -> None:
    cross = origin == "cross-origin"
    async with serve_http(routes({})) as second:
        location = second.url_for("/final") if cross else "/final"
        moved = (status, [("Location", location), ("Content-Type", "text/html")], b"moved")
        async with serve_http(routes({"/start": moved})) as first, Session() as session:
            msg = Message(method, first.url_for("/start"))
            msg.request_headers.append("Authorization", "Basic dXNlcjpwdw==")
            msg.request_headers.append("X-Keep", "kept")
            with_body(msg, body)
            restarts = record_restarts(msg)
            data = await send_read(session, msg)
            final_server = second if cross else first
            got = [r for r in final_server.requests if r.target == "/final"]
            hop = expected_hop(status, method, body)
            if hop is None:
                assert msg.status == status
                assert data == (b"" if method == "HEAD" else b"moved")
                assert (msg.method, str(msg.uri)) == (method, first.url_for("/start"))
                assert restarts == [] and got == []
                assert msg.response_headers.get_one("Location") == location
            else:
                new_method, keep_body = hop
                assert msg.status == 200
                assert data == (b"" if new_method == "HEAD" else b"/final")
                assert (msg.method, str(msg.uri)) == (new_method, final_server.url_for("/final"))
                assert restarts == [(new_method, "/final", status)]
                (req,) = got
                assert req.method == new_method
                assert req.header("x-keep") == "kept"
                assert req.header("authorization") == (None if cross else "Basic dXNlcjpwdw==")
                assert req.header("host") == f"127.0.0.1:{final_server.port}"
                if keep_body and body != "none":
                    assert req.body == PAYLOAD
                    assert req.header("content-type") == "text/plain"
                    assert req.header("content-length") == (
                        str(len(PAYLOAD)) if body == "bytes" else None
                    )
                else:
                    assert req.body == b""
                    assert req.header("content-type") is None
                    assert req.header("transfer-encoding") is None
                    if new_method in ("GET", "HEAD"):
                        assert req.header("content-length") is None
            assert len(first.requests) == 1 + (0 if cross or hop is None else 1)
        await leak_check(session)


# -- origins: credentials and Host ---------------------------------------------

CREDENTIAL_NAMES = [
    ("Authorization", "Proxy-Authorization", "Cookie"),
    ("authorization", "proxy-authorization", "cookie"),
    ("AUTHORIZATION", "PrOxY-AuThOrIzAtIoN", "cOOKIE"),
]


def add_credentials(msg: Message, names: tuple[str, str, str]) -> None:
    auth, proxy, cookie = names
    msg.request_headers.append(auth, "Bearer secret")
    msg.request_headers.append(proxy, "Basic cHJveHk6cHc=")
    msg.request_headers.append(cookie, "session=abc")
    msg.request_headers.append("X-Other", "kept")


def credentials_seen(req: ReceivedRequest) -> list[str | None]:
    return [req.header(n) for n in ("authorization", "proxy-authorization", "cookie")]


@pytest.mark.parametrize("names", CREDENTIAL_NAMES, ids=["canonical", "lower", "mixed"])
@pytest.mark.parametrize("hop", ["same-origin", "other-port", "other-host"])
async def test_credentials_stripped_across_origins(
    hop: str, names: tuple[str, str, str], leak_check: LeakCheck
) -> None:
    async with serve_http(routes({})) as second:
        holder: list[str] = []

        async def first_app(conn: ServerConnection, req: ReceivedRequest) -> None:
            if req.target == "/start":
                await conn.respond(302, [("Location", holder[0])])
            else:
                await conn.respond(200, [], b"done")

        async with serve_http(first_app) as first, Session() as session:
            target = {
                "same-origin": first.url_for("/final"),
                "other-port": second.url_for("/final"),
                "other-host": f"http://localhost:{first.port}/final",
            }[hop]
            holder.append(target)
            msg = Message("GET", first.url_for("/start"))
            add_credentials(msg, names)
            await send_read(session, msg)
            assert msg.status == 200 and str(msg.uri) == target
            server = second if hop == "other-port" else first
            req = server.requests[-1]
            assert req.target == "/final"
            if hop == "same-origin":
                # Proxy-Authorization never reaches an origin (only a forwarding proxy).
                assert credentials_seen(req) == ["Bearer secret", None, "session=abc"]
            else:
                assert credentials_seen(req) == [None, None, None]
                for name in names:
                    assert name not in msg.request_headers
            assert req.header("x-other") == "kept"
        await leak_check(session)


async def test_https_to_http_on_the_same_host_strips_credentials(
    tls_server_context: ssl.SSLContext, tls_ca_pem: bytes, leak_check: LeakCheck
) -> None:
    async with serve_http(routes({})) as plain:
        moved = (301, [("Location", plain.url_for("/final"))], b"")
        async with serve_http(routes({"/start": moved}), ssl_context=tls_server_context) as secure:
            async with Session(tls_database=TlsDatabase.from_pem(tls_ca_pem)) as session:
                msg = Message("GET", secure.url_for("/start"))
                add_credentials(msg, CREDENTIAL_NAMES[2])
                assert await send_read(session, msg) == b"/final"
                assert msg.uri.scheme == "http" and msg.uri.host == secure.host
                (req,) = plain.requests
                assert credentials_seen(req) == [None, None, None]
                assert req.header("x-other") == "kept"
                # the https hop's TLS details don't outlive it
                assert msg.tls_protocol_version is None
                assert msg.tls_peer_certificate is None
            await leak_check(session)


async def test_http_to_https_strips_credentials(
    tls_server_context: ssl.SSLContext, tls_ca_pem: bytes, leak_check: LeakCheck
) -> None:
    async with serve_http(routes({}), ssl_context=tls_server_context) as secure:
        moved = (308, [("Location", secure.url_for("/final"))], b"")
        async with serve_http(routes({"/start": moved})) as plain:
            async with Session(tls_database=TlsDatabase.from_pem(tls_ca_pem)) as session:
                msg = Message("POST", plain.url_for("/start"), body=PAYLOAD)
                add_credentials(msg, CREDENTIAL_NAMES[0])
                assert await send_read(session, msg) == b"/final"
                assert msg.uri.scheme == "https" and msg.method == "POST"
                assert msg.tls_protocol_version is not None
                (req,) = secure.requests
                assert (req.method, req.body) == ("POST", PAYLOAD)
                assert credentials_seen(req) == [None, None, None]
            await leak_check(session)


@pytest.mark.parametrize("hop", ["same-origin", "other-port", "other-host"])
async def test_user_set_host_follows_the_authority(hop: str, leak_check: LeakCheck) -> None:
    async with serve_http(routes({})) as second:
        holder: list[str] = []

        async def first_app(conn: ServerConnection, req: ReceivedRequest) -> None:
            if req.target == "/start":
                await conn.respond(307, [("Location", holder[0])])
            else:
                await conn.respond(200, [], b"done")

        async with serve_http(first_app) as first, Session() as session:
            holder.append(
                {
                    "same-origin": "/final",
                    "other-port": second.url_for("/final"),
                    "other-host": f"http://localhost:{first.port}/final",
                }[hop]
            )
            msg = Message("GET", first.url_for("/start"), headers={"HOST": "virtual.example"})
            await send_read(session, msg)
            assert first.requests[0].header("host") == "virtual.example"
            req = (second if hop == "other-port" else first).requests[-1]
            expected = {
                "same-origin": "virtual.example",
                "other-port": f"127.0.0.1:{second.port}",
                "other-host": f"localhost:{first.port}",
            }[hop]
            assert req.header("host") == expected
        await leak_check(session)


# -- Location ------------------------------------------------------------------


@pytest.mark.parametrize("status", sorted(REDIRECT_STATUSES))
async def test_no_location_is_the_final_answer(status: int, leak_check: LeakCheck) -> None:
    app = routes({"/start": (status, [("Content-Type", "text/plain")], b"no location")})
    async with serve_http(app) as server, Session() as session:
        msg = Message("GET", server.url_for("/start"))
        restarts = record_restarts(msg)
        assert await send_read(session, msg) == b"no location"
        assert msg.status == status and restarts == []
        assert len(server.requests) == 1
    await leak_check(session)


@pytest.mark.parametrize("status", [300, 304, 305, 306])
async def test_other_3xx_are_final_as_in_libsoup(status: int, leak_check: LeakCheck) -> None:
    body = b"" if status == 304 else b"choices"
    app = routes({"/start": (status, [("Location", "/elsewhere")], body)})
    async with serve_http(app) as server, Session() as session:
        msg = Message("GET", server.url_for("/start"))
        assert await send_read(session, msg) == body
        assert msg.status == status and len(server.requests) == 1
    await leak_check(session)


async def test_empty_location_raises(leak_check: LeakCheck) -> None:
    app = routes({"/start": (302, [("Location", "")], b"empty")})
    async with serve_http(app) as server, Session() as session:
        msg = Message("GET", server.url_for("/start"))
        restarts = record_restarts(msg)
        with anyio.fail_after(BOUND), pytest.raises(RedirectNoLocation) as info:
            await session.send(msg)
        assert info.value.message is msg
        assert info.value.code is SessionErrorCode.REDIRECT_NO_LOCATION
        assert msg.status == 302 and restarts == []
        assert_pool_settled(session)
        # the small 3xx body was drained: the connection serves the next request
        assert await send_read(session, Message("GET", server.url_for("/next"))) == b"/next"
        assert server.connections == 1
    await leak_check(session)


@pytest.mark.parametrize(
    "location",
    [
        "http://[::1",
        "ftp://127.0.0.1/file",
        "about:blank",
        "javascript:alert(1)",
        "http://exa mple.com/",
        "http:///no-host",
        "http://127.0.0.1:99999/",
        "ws://127.0.0.1/",
    ],
)
async def test_bad_location_raises(location: str, leak_check: LeakCheck) -> None:
    app = routes({"/start": (301, [("Location", location)], b"bad")})
    async with serve_http(app) as server, Session() as session:
        msg = Message("GET", server.url_for("/start"))
        with anyio.fail_after(BOUND), pytest.raises(RedirectBadUri) as info:
            await session.send(msg)
        assert info.value.message is msg
        assert info.value.code is SessionErrorCode.REDIRECT_BAD_URI
        assert repr(location) in str(info.value)
        assert str(msg.uri) == server.url_for("/start")
        assert_pool_settled(session)
    await leak_check(session)


async def test_conflicting_locations_raise(leak_check: LeakCheck) -> None:
    headers = [("Location", "/one"), ("Location", "/two")]
    async with serve_http(routes({"/start": (302, headers, b"")})) as server, Session() as session:
        with anyio.fail_after(BOUND), pytest.raises(RedirectBadUri, match="several"):
            await session.send(Message("GET", server.url_for("/start")))
        # the same value twice is no conflict
        server_twice = routes({"/start": (302, [("Location", "/one"), ("Location", "/one")], b"")})
        async with serve_http(server_twice) as other:
            msg = Message("GET", other.url_for("/start"))
            assert await send_read(session, msg) == b"/one"
    await leak_check(session)


@pytest.mark.parametrize(
    ("start", "location", "target"),
    [
        ("/dir/start", b"next", "/dir/next"),
        ("/dir/sub/start", b"../up", "/dir/up"),
        ("/dir/start", b"/abs", "/abs"),
        ("/dir/start?x=1", b"?y=2", "/dir/start?y=2"),
        ("/dir/start", b"//127.0.0.1:{port}/scheme-relative", "/scheme-relative"),
        ("/start", b"/bad with spaces", "/bad%20with%20spaces"),
        ("/start", b'/q?a=b c&d="e"', "/q?a=b%20c&d=%22e%22"),
        ("/start", b"/caf\xc3\xa9", "/caf%C3%A9"),
        ("/start", b"/caf\xe9", "/caf%E9"),
    ],
)
async def test_relative_and_unencoded_locations(
    start: str, location: bytes, target: str, leak_check: LeakCheck
) -> None:
    holder: list[bytes] = []

    async def app(conn: ServerConnection, req: ReceivedRequest) -> None:
        if req.target == start:
            await conn.respond(302, [(b"location", holder[0])])
        else:
            await conn.respond(200, [], req.target.encode())

    async with serve_http(app) as server, Session() as session:
        holder.append(location.replace(b"{port}", str(server.port).encode()))
        msg = Message("GET", server.url_for(start))
        assert await send_read(session, msg) == target.encode()
        assert msg.uri.raw_path_qs == target
        assert [r.target for r in server.requests] == [start, target]
    await leak_check(session)


@pytest.mark.parametrize(
    ("location", "fragment"), [("/next", "top"), ("/next#new", "new"), ("/next#", "")]
)
async def test_fragment(location: str, fragment: str, leak_check: LeakCheck) -> None:
    app = routes({"/start": (302, [("Location", location)], b"")})
    async with serve_http(app) as server, Session() as session:
        msg = Message("GET", server.url_for("/start#top"))
        await send_read(session, msg)
        assert msg.uri.fragment == fragment and msg.uri.path == "/next"
        # fragments never go on the wire
        assert [r.target for r in server.requests] == ["/start", "/next"]
    await leak_check(session)


async def test_redirect_to_an_error_status_is_not_an_error(leak_check: LeakCheck) -> None:
    async def app(conn: ServerConnection, req: ReceivedRequest) -> None:
        if req.target == "/start":
            await conn.respond(302, [("Location", "/missing")], b"")
        else:
            await conn.respond(404, [], b"not here")

    async with serve_http(app) as server, Session() as session:
        msg = Message("GET", server.url_for("/start"))
        assert await send_read(session, msg) == b"not here"
        assert msg.status == 404 and msg.uri.path == "/missing"
    await leak_check(session)


# -- limits --------------------------------------------------------------------


def hops(last: int | None) -> Handler:
    """/hop/N redirects to /hop/N+1 (301, 302, 303, 307, 308 in turn); /hop/``last`` is 200."""
    statuses = sorted(REDIRECT_STATUSES)

    async def app(conn: ServerConnection, req: ReceivedRequest) -> None:
        n = int(req.target.rsplit("/", 1)[1])
        if n == last:
            await conn.respond(200, [], b"arrived")
        else:
            await conn.respond(statuses[n % 5], [("Location", f"/hop/{n + 1}")], b"hop")

    return app


async def test_twenty_redirects_are_followed(leak_check: LeakCheck) -> None:
    async with serve_http(hops(20)) as server, Session() as session:
        msg = Message("GET", server.url_for("/hop/0"))
        restarts = record_restarts(msg)
        assert await send_read(session, msg) == b"arrived"
        assert len(restarts) == 20 and len(server.requests) == 21
        assert msg.uri.path == "/hop/20" and msg.status == 200
        assert server.connections == 1  # every small 3xx body drained, one connection
    await leak_check(session)


async def test_the_twenty_first_redirect_fails(leak_check: LeakCheck) -> None:
    async with serve_http(hops(None)) as server, Session() as session:
        msg = Message("GET", server.url_for("/hop/0"))
        restarts = record_restarts(msg)
        with anyio.fail_after(BOUND), pytest.raises(TooManyRedirects) as info:
            await session.send(msg)
        assert info.value.message is msg
        assert info.value.code is SessionErrorCode.TOO_MANY_REDIRECTS
        assert len(restarts) == 20 and len(server.requests) == 21
        assert msg.uri.path == "/hop/20" and 300 <= msg.status < 400
        assert_pool_settled(session)
        # the message can be sent again: the count starts over
        msg.set_uri(server.url_for("/hop/15"))
        with anyio.fail_after(BOUND), pytest.raises(TooManyRedirects):
            await session.send(msg)
    await leak_check(session)


# -- NO_REDIRECT ---------------------------------------------------------------


@pytest.mark.parametrize(("status", "method"), [(302, "GET"), (307, "POST"), (303, "PUT")])
async def test_no_redirect_flag(status: int, method: str, leak_check: LeakCheck) -> None:
    app = routes({"/start": (status, [("Location", "/final")], b"the 3xx body")})
    async with serve_http(app) as server, Session() as session:
        msg = Message(method, server.url_for("/start"), body=PAYLOAD)
        msg.add_flags(MessageFlags.NO_REDIRECT)
        restarts = record_restarts(msg)
        assert await send_read(session, msg) == b"the 3xx body"
        assert msg.status == status and restarts == []
        assert msg.response_headers.get_one("Location") == "/final"
        assert (msg.method, msg.uri.path) == (method, "/start")
        assert len(server.requests) == 1
    await leak_check(session)


# -- the intermediate body -----------------------------------------------------


async def test_small_intermediate_body_keeps_the_connection(leak_check: LeakCheck) -> None:
    app = routes({"/start": (302, [("Location", "/final")], b"r" * 1024)})
    async with serve_http(app) as server, Session() as session:
        msg = Message("GET", server.url_for("/start"))
        chunks: list[bytes] = []
        msg.got_body_data.connect(lambda m, chunk: chunks.append(chunk))
        assert await send_read(session, msg) == b"/final"
        assert b"".join(chunks) == b"/final"  # the 3xx body is never shown
        assert [r.connection for r in server.requests] == [0, 0]
    await leak_check(session)


async def test_big_intermediate_body_is_not_read(leak_check: LeakCheck) -> None:
    sent = 0
    broken = anyio.Event()

    async def app(conn: ServerConnection, req: ReceivedRequest) -> None:
        nonlocal sent
        if req.target != "/start":
            await conn.respond(200, [], b"final")
            return
        # A small send buffer: the server blocks once the client stops reading.
        sock = conn.stream.extra(anyio.abc.SocketAttribute.raw_socket)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        headers = [("Location", "/final"), ("Content-Length", str(MIB))]
        await conn.send_head(302, headers)
        try:
            while sent < MIB:
                await conn.send_data(b"x" * 16384)
                sent += 16384
            await conn.end()
        except PEER_ERRORS:
            broken.set()

    async with serve_http(app) as server, Session() as session:
        msg = Message("GET", server.url_for("/start"))
        chunks: list[bytes] = []
        msg.got_body_data.connect(lambda m, chunk: chunks.append(chunk))
        assert await send_read(session, msg) == b"final"
        assert chunks == [b"final"]
        with anyio.fail_after(BOUND):
            await broken.wait()  # the client closed the connection under the body
        assert sent < MIB
        assert [r.connection for r in server.requests] == [0, 1]  # not reused
    await leak_check(session)


async def test_intermediate_body_is_not_decoded(leak_check: LeakCheck) -> None:
    # Closing reads the raw rest: a broken gzip body in a 3xx is no error.
    headers = [("Location", "/final"), ("Content-Encoding", "gzip")]
    app = routes({"/start": (302, headers, b"this is not gzip")})
    async with serve_http(app) as server, Session() as session:
        msg = Message("GET", server.url_for("/start"))
        assert await send_read(session, msg) == b"/final"
        assert [r.connection for r in server.requests] == [0, 0]
    await leak_check(session)


# -- restarted -----------------------------------------------------------------


async def test_restarted_sees_the_new_request(leak_check: LeakCheck) -> None:
    app = routes(
        {
            "/a": (301, [("Location", "/b")], b""),
            "/b": (303, [("Location", "/c")], b""),
        }
    )
    async with serve_http(app) as server, Session() as session:
        msg = Message("POST", server.url_for("/a"), body=PAYLOAD)
        seen: list[tuple[str, str, int, bool]] = []

        async def on_restarted(m: Message) -> None:
            await anyio.lowlevel.checkpoint()
            seen.append((m.method, m.uri.path, m.status, m.request_body is None))

        msg.restarted.connect(on_restarted)
        assert await send_read(session, msg) == b"/c"
        assert seen == [("GET", "/b", 301, True), ("GET", "/c", 303, True)]
        assert [(r.method, r.target, r.body) for r in server.requests] == [
            ("POST", "/a", PAYLOAD),
            ("GET", "/b", b""),
            ("GET", "/c", b""),
        ]
    await leak_check(session)


async def test_expect_continue_goes_with_the_body(leak_check: LeakCheck) -> None:
    async def app(conn: ServerConnection, req: ReceivedRequest) -> None:
        if req.target == "/start":
            await conn.respond(302, [("Location", "/final")])
        else:
            await conn.respond(200, [], (req.header("expect") or "none").encode())

    async with serve_http(app) as server, Session() as session:
        msg = Message("POST", server.url_for("/start"), body=PAYLOAD)
        msg.request_headers.append("Expect", "100-continue")
        assert await send_read(session, msg) == b"none"  # RFC 9110 §10.1.1
    await leak_check(session)


# -- cancellation --------------------------------------------------------------


@pytest.mark.parametrize("checkpoint", ["draining", "restarted", "second-hop-headers"])
async def test_cancelled_hop_leaves_nothing(checkpoint: str, leak_check: LeakCheck) -> None:
    scopes: list[anyio.CancelScope] = []

    async def app(conn: ServerConnection, req: ReceivedRequest) -> None:
        if req.target == "/start":
            if checkpoint == "draining":
                await conn.send_head(302, [("Location", "/final"), ("Content-Length", "100000")])
                await conn.send_data(b"x" * 1000)
                scopes[0].cancel()  # while the client drains the rest
                await anyio.sleep(BOUND)
            else:
                await conn.respond(302, [("Location", "/final")], b"moved")
        elif req.target == "/final":
            if checkpoint == "second-hop-headers":
                scopes[0].cancel()
                await anyio.sleep(BOUND)
            await conn.respond(200, [], b"final")
        else:
            await conn.respond(200, [], b"after")

    async with serve_http(app) as server, Session() as session:
        msg = Message("GET", server.url_for("/start"))
        if checkpoint == "restarted":

            async def on_restarted(m: Message) -> None:
                scopes[0].cancel()
                await anyio.lowlevel.checkpoint()

            msg.restarted.connect(on_restarted)
        with anyio.fail_after(BOUND):
            with anyio.move_on_after(BOUND) as scope:
                scopes.append(scope)
                await session.send(msg)
                pytest.fail("the send was not cancelled")
            assert scope.cancelled_caught
            assert_pool_settled(session)
            assert not msg._queued
            assert (
                await session.send_and_read(Message("GET", server.url_for("/after"))) == b"after"
            )
    await leak_check(session)


async def test_cancelled_while_connecting_the_second_hop(leak_check: LeakCheck) -> None:
    async with hanging_listener() as (host, port):
        app = routes({"/start": (302, [("Location", f"http://{host}:{port}/never")], b"")})
        async with serve_http(app) as server, Session() as session:
            msg = Message("GET", server.url_for("/start"))
            restarts = record_restarts(msg)
            with anyio.move_on_after(0.5) as scope:
                await session.send(msg)
            assert scope.cancelled_caught and len(restarts) == 1
            # the connection task finishes (or fails) on its own; no request waits
            stats = session.statistics()
            assert (stats.in_use, stats.waiting) == (0, 0), stats
        await leak_check(session)


# -- a third-party server: httpbin ---------------------------------------------


@pytest.fixture
def httpbin_url(httpbin: Any) -> str:
    return str(httpbin.url)


async def json_of(session: Session, msg: Message) -> dict[str, Any]:
    return json.loads(await send_read(session, msg))  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", ["/redirect/3", "/relative-redirect/3", "/absolute-redirect/3"])
async def test_httpbin_redirect_chains(path: str, httpbin_url: str, leak_check: LeakCheck) -> None:
    async with Session() as session:
        msg = Message("GET", httpbin_url + path)
        restarts = record_restarts(msg)
        data = await json_of(session, msg)
        assert msg.status == 200 and msg.uri.path == "/get"
        assert data["url"].endswith("/get")
        assert len(restarts) == 3 and restarts[-1][1] == "/get"
    await leak_check(session)


@pytest.mark.parametrize(
    ("method", "status", "final_method", "keeps_body"),
    [
        ("POST", 307, "POST", True),
        ("PUT", 308, "PUT", True),
        ("DELETE", 307, "DELETE", True),
        ("POST", 302, "GET", False),
        ("POST", 301, "GET", False),
        ("PUT", 303, "GET", False),
    ],
)
async def test_httpbin_redirect_to_with_bodies(
    method: str,
    status: int,
    final_method: str,
    keeps_body: bool,
    httpbin_url: str,
    leak_check: LeakCheck,
) -> None:
    async with Session() as session:
        uri = URL(httpbin_url + "/redirect-to").with_query(url="/anything/x", status_code=status)
        msg = Message(method, uri)
        msg.set_request_body("application/octet-stream", PAYLOAD)
        data = await json_of(session, msg)
        assert msg.status == 200 and msg.method == final_method
        assert data["method"] == final_method
        assert data["url"].endswith("/anything/x")
        if keeps_body:
            assert data["data"].encode() == PAYLOAD
            assert data["headers"]["Content-Type"] == "application/octet-stream"
        else:
            assert data["data"] == ""
            assert "Content-Type" not in data["headers"]
    await leak_check(session)


async def test_httpbin_307_with_a_stream_body_is_handed_back(
    httpbin_url: str, leak_check: LeakCheck
) -> None:
    async with Session() as session:
        uri = URL(httpbin_url + "/redirect-to").with_query(url="/anything", status_code=307)
        msg = Message("POST", uri)
        # With its length: httpbin's server refuses chunked request bodies (501).
        # With 100-continue: it answers without reading the body, then closes.
        msg.set_request_body("text/plain", stream_body(), len(PAYLOAD))
        msg.request_headers.append("Expect", "100-continue")
        await send_read(session, msg)
        assert msg.status == 307 and msg.method == "POST" and msg.uri.path == "/redirect-to"
        assert msg.response_headers.get_one("Location") == "/anything"
    await leak_check(session)


async def test_httpbin_cross_origin_strips_credentials(
    httpbin_url: str, leak_check: LeakCheck
) -> None:
    base = URL(httpbin_url)
    other = f"http://localhost:{base.port}/anything"
    async with Session() as session:
        uri = (base / "redirect-to").with_query(url=other, status_code=302)
        msg = Message("GET", uri)
        add_credentials(msg, CREDENTIAL_NAMES[1])
        data = await json_of(session, msg)
        assert msg.uri.host == "localhost"
        assert not {"Authorization", "Proxy-Authorization", "Cookie"} & set(data["headers"])
        assert data["headers"]["X-Other"] == "kept"
        # and the same origin keeps them
        uri = (base / "redirect-to").with_query(url="/anything", status_code=302)
        msg = Message("GET", uri)
        add_credentials(msg, CREDENTIAL_NAMES[1])
        data = await json_of(session, msg)
        assert data["headers"]["Authorization"] == "Bearer secret"
        assert data["headers"]["Cookie"] == "session=abc"
    await leak_check(session)


@pytest.mark.parametrize(
    ("base", "location", "expected"),
    [
        ("ws://example.org/chat", "/v2/chat", "ws://example.org/v2/chat"),
        ("wss://example.org/chat", "other", "wss://example.org/other"),
        ("ws://example.org/chat", "wss://example.org/chat", "wss://example.org/chat"),
        ("wss://example.org/chat", "https://example.net/ws", "https://example.net/ws"),
        ("ws://example.org/chat", "//example.net:81/x", "ws://example.net:81/x"),
    ],
)
def test_resolve_location_of_a_websocket_handshake(
    base: str, location: str, expected: str
) -> None:
    """A handshake may be sent on to ws(s) as well as http(s); other requests only to http(s)."""
    assert str(resolve_location(URL(base), location)) == expected


@pytest.mark.parametrize("location", ["ftp://example.org/", "ws:///no-host", "about:blank"])
def test_resolve_location_of_a_websocket_handshake_refuses(location: str) -> None:
    with pytest.raises(ValueError, match=r".+"):
        resolve_location(URL("ws://example.org/chat"), location)
