"""Where connections go and come from: Unix sockets, fixed remotes, local binding, Happy Eyeballs.

DESIGN §2 and §6 "Addresses": ``remote_connectable`` sends every connection
to one address (TCP or :class:`anysoup.UnixSocketAddress`) while the Host
header and the TLS server name still come from the URI; ``local_address``
binds outgoing TCP sockets; ``msg.network_event`` reports the steps of making
a new connection; the addresses a name resolves to are raced by family with
a 0.25 s stagger (RFC 8305), and when all fail the error names each one.

Host names here never reach the system resolver: ``session._pool.resolver``
is replaced by a stub. Linux routes all of 127.0.0.0/8 to ``lo``, so
127.0.0.2 and up are further local addresses that need no setup.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
import warnings
from pathlib import Path

import anyio
import pytest
from anyio.abc import SocketAttribute
from servers import (
    ReceivedRequest,
    ServerConnection,
    echo_app,
    hanging_listener,
    open_sockets,
    serve_asgi,
    serve_http,
)

import anysoup
import anysoup._transport.connect
from anysoup import (
    ConnectError,
    Message,
    NetworkEvent,
    Session,
    TlsCertificateFlags,
    TlsDatabase,
    UnixSocketAddress,
)
from anysoup._transport.connect import interleave

BOUND = 5.0

#: A new plain connection to an IP address.
PLAIN = [NetworkEvent.CONNECTING, NetworkEvent.CONNECTED, NetworkEvent.COMPLETE]
#: A new plain connection to a host name.
RESOLVED = [NetworkEvent.RESOLVING, NetworkEvent.RESOLVED, *PLAIN]
#: The TLS steps between CONNECTED and COMPLETE.
TLS = [NetworkEvent.TLS_HANDSHAKING, NetworkEvent.TLS_HANDSHAKED]


# -- helpers -------------------------------------------------------------------


class StubResolver:
    """Resolves every name to fixed addresses and records what it was asked."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        return list(self.addresses)


class Events:
    """The ``network_event`` emissions of one message."""

    def __init__(self, msg: Message) -> None:
        self.seen: list[tuple[NetworkEvent, object]] = []
        msg.network_event.connect(lambda m, event, conn: self.seen.append((event, conn)))

    @property
    def kinds(self) -> list[NetworkEvent]:
        return [event for event, _ in self.seen]

    def assert_one_connection(self) -> None:
        """Every event carries the same, real connection object."""
        assert self.seen, "no network events"
        first = self.seen[0][1]
        assert first is not None
        assert all(conn is first for _, conn in self.seen), self.seen


async def get(session: Session, url: str) -> tuple[Message, bytes, Events]:
    msg = Message("GET", url)
    events = Events(msg)
    with anyio.fail_after(BOUND):
        body = await session.send_and_read(msg)
    return msg, body, events


async def expect_connect_error(session: Session, url: str) -> ConnectError:
    msg = Message("GET", url)
    with anyio.fail_after(BOUND), pytest.raises(ConnectError) as info:
        await session.send_and_read(msg)
    assert info.value.message is msg
    return info.value


async def host_and_peer(conn: ServerConnection, request: ReceivedRequest) -> None:
    """Answer with the Host header and the client's address as the server saw it."""
    peer = conn.stream.extra(SocketAttribute.remote_address)
    answer = {"host": request.header("host"), "peer": peer, "conn": conn.index}
    await conn.respond(200, [("Content-Type", "application/json")], json.dumps(answer).encode())


def free_port(host: str) -> int:
    """A TCP port nothing is bound to on ``host`` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# -- Unix sockets ----------------------------------------------------------------


async def test_unix_socket_to_hypercorn(tmp_path: Path, leak_check) -> None:
    path = str(tmp_path / "h.sock")
    async with serve_asgi(echo_app, unix_path=path):
        async with Session(remote_connectable=UnixSocketAddress(path)) as session:
            assert session.remote_connectable == UnixSocketAddress(path)
            msg, body, events = await get(session, "http://anything.example/headers")
            assert msg.status == 200
            assert json.loads(body)["host"] == "anything.example"
            assert msg.remote_address == UnixSocketAddress(path)
            assert events.kinds == PLAIN  # no name resolved
            events.assert_one_connection()

            msg2, body2, events2 = await get(session, "http://anything.example/hello")
            assert (msg2.status, body2) == (200, b"hello")
            assert msg2.remote_address == UnixSocketAddress(path)
            assert events2.kinds == []  # the same connection again
            assert session.statistics().connections == 1
        await leak_check(session)


async def test_unix_socket_to_scripted_server(tmp_path: Path, leak_check) -> None:
    path = str(tmp_path / "s.sock")
    async with serve_http(host_and_peer, unix_path=path) as server:
        assert server.url == "http://localhost"
        async with Session(remote_connectable=UnixSocketAddress(path)) as session:
            msg, body, events = await get(session, "http://anything.example/path")
            assert msg.status == 200
            assert json.loads(body)["host"] == "anything.example"
            assert msg.remote_address == UnixSocketAddress(path)
            assert events.kinds == PLAIN

            # The URI's port is only part of the Host header.
            _, body2, _ = await get(session, "http://anything.example:8080/x")
            assert json.loads(body2)["host"] == "anything.example:8080"

            _, body3, events3 = await get(session, "http://anything.example/again")
            assert json.loads(body3)["conn"] == 0 and events3.kinds == []
        await leak_check(session)
    assert [r.target for r in server.requests] == ["/path", "/x", "/again"]
    # One connection per (host, port) of the URI, both over the same socket.
    assert server.connections == 2


async def test_https_over_unix_socket_checks_the_uri_host(
    tmp_path: Path, tls_server_context: ssl.SSLContext, tls_ca_pem: bytes, leak_check
) -> None:
    names: list[str | None] = []
    tls_server_context.sni_callback = lambda ssl_object, name, context: names.append(name)
    path = str(tmp_path / "tls.sock")
    async with serve_http(host_and_peer, ssl_context=tls_server_context, unix_path=path) as server:
        async with Session(
            tls_database=TlsDatabase.from_pem(tls_ca_pem),
            remote_connectable=UnixSocketAddress(path),
        ) as session:
            msg, body, events = await get(session, "https://localhost/secure")
            assert msg.status == 200
            assert json.loads(body)["host"] == "localhost"
            assert msg.remote_address == UnixSocketAddress(path)
            assert events.kinds == [*PLAIN[:2], *TLS, NetworkEvent.COMPLETE]
            events.assert_one_connection()
            assert msg.tls_peer_certificate is not None
            assert msg.tls_peer_certificate_errors == TlsCertificateFlags.NO_FLAGS

            # A name the certificate doesn't hold fails, though the socket is the same.
            bad = Message("GET", "https://wrong.example/")
            with anyio.fail_after(BOUND), pytest.raises(anysoup.TlsError) as info:
                await session.send_and_read(bad)
            assert TlsCertificateFlags.BAD_IDENTITY in info.value.errors
            assert "wrong.example" in str(info.value)

            # An IP address in the certificate is checked as such (no SNI for it).
            msg3, body3, _ = await get(session, "https://127.0.0.1/ip")
            assert msg3.status == 200 and json.loads(body3)["host"] == "127.0.0.1"
        await leak_check(session)
    assert names == ["localhost", "wrong.example", None]
    assert [r.target for r in server.requests] == ["/secure", "/ip"]


async def test_missing_unix_socket_is_connect_error(tmp_path: Path, leak_check) -> None:
    missing = str(tmp_path / "missing.sock")
    plain_file = tmp_path / "not-a-socket"
    plain_file.write_bytes(b"")
    async with Session(remote_connectable=UnixSocketAddress(missing)) as session:
        exc = await expect_connect_error(session, "http://anything.example/")
        assert missing in str(exc) and "no such file or directory" in str(exc), str(exc)
        assert "anything.example" in str(exc)

        session.remote_connectable = UnixSocketAddress(str(plain_file))
        exc = await expect_connect_error(session, "http://anything.example/")
        assert str(plain_file) in str(exc) and "connection refused" in str(exc), str(exc)
        assert session.statistics().connections == 0
    await leak_check(session)


# -- a fixed TCP remote ------------------------------------------------------------


async def test_remote_connectable_tcp_ignores_the_uri_host(leak_check) -> None:
    async with serve_http(host_and_peer) as server:
        resolver = StubResolver("192.0.2.1")  # would fail: it must not be asked
        async with Session(remote_connectable=("127.0.0.1", server.port)) as session:
            session._pool.resolver = resolver
            msg, body, events = await get(session, "http://example.invalid/where")
            assert msg.status == 200
            assert json.loads(body)["host"] == "example.invalid"
            assert msg.remote_address == ("127.0.0.1", server.port)
            assert events.kinds == PLAIN  # an IP remote: nothing to resolve
            events.assert_one_connection()

            # Another URI host still goes there, on a connection of its own.
            msg2, body2, events2 = await get(session, "http://other.invalid:81/")
            assert json.loads(body2)["host"] == "other.invalid:81"
            assert events2.kinds == PLAIN
            assert msg2.remote_address == ("127.0.0.1", server.port)
        await leak_check(session)
    assert resolver.calls == []
    assert server.connections == 2


async def test_remote_connectable_by_name_resolves_the_remote(leak_check) -> None:
    async with serve_http(host_and_peer) as server:
        resolver = StubResolver("127.0.0.1")
        async with Session(remote_connectable=["backend.test", str(server.port)]) as session:
            assert session.remote_connectable == ("backend.test", server.port)  # normalised
            session._pool.resolver = resolver
            msg, body, events = await get(session, "http://front.test/")
            assert json.loads(body)["host"] == "front.test"
            assert events.kinds == RESOLVED
            assert msg.remote_address == ("127.0.0.1", server.port)
        await leak_check(session)
    assert resolver.calls == [("backend.test", server.port)]


async def test_remote_connectable_changed_on_an_open_session(leak_check) -> None:
    async with serve_http(host_and_peer) as first, serve_http(host_and_peer) as second:
        async with Session(remote_connectable=("127.0.0.1", first.port)) as session:
            await get(session, "http://site.test/1")
            session.remote_connectable = ("127.0.0.1", second.port)
            msg, _, events = await get(session, "http://site.test/2")
            assert msg.remote_address == ("127.0.0.1", second.port)
            assert events.kinds == PLAIN  # the idle connection to `first` doesn't fit
        await leak_check(session)
    assert [r.target for r in first.requests] == ["/1"]
    assert [r.target for r in second.requests] == ["/2"]


# -- local_address ---------------------------------------------------------------


async def test_local_address_binds_the_source_address(leak_check) -> None:
    async with serve_http(host_and_peer) as server:
        async with Session(local_address=("127.0.0.2", 0)) as session:
            assert session.local_address == ("127.0.0.2", 0)
            _, body, events = await get(session, server.url_for("/"))
            assert json.loads(body)["peer"][0] == "127.0.0.2"
            assert events.kinds == PLAIN
        await leak_check(session)


async def test_local_address_with_a_fixed_port(leak_check) -> None:
    port = free_port("127.0.0.2")
    async with serve_http(host_and_peer) as server:
        async with Session() as session:
            session.local_address = ("127.0.0.2", port)  # the setter, on an open session
            _, body, _ = await get(session, server.url_for("/"))
            assert json.loads(body)["peer"] == ["127.0.0.2", port]
        await leak_check(session)


async def test_local_address_not_on_this_host_is_connect_error(leak_check) -> None:
    async with serve_http(host_and_peer) as server:
        async with Session(local_address=("192.0.2.1", 0)) as session:  # TEST-NET-1
            # anyio's trio backend drops the socket it failed to bind without
            # closing it; CPython closes it at once, with a ResourceWarning.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "unclosed <socket", ResourceWarning)
                exc = await expect_connect_error(session, server.url_for("/"))
            assert f"127.0.0.1:{server.port}" in str(exc)
            assert "cannot assign requested address" in str(exc), str(exc)
        await leak_check(session)
    assert server.connections == 0


def test_local_address_unix_socket_is_type_error() -> None:
    unix = UnixSocketAddress("/tmp/anysoup-local.sock")
    with pytest.raises(TypeError, match="local_address"):
        Session(local_address=unix)
    session = Session(local_address=("127.0.0.2", 0))
    with pytest.raises(TypeError, match="local_address"):
        session.local_address = unix
    with pytest.raises(TypeError, match="local_address"):
        session.set_local_address(unix)
    assert session.local_address == ("127.0.0.2", 0)


async def test_local_address_with_unix_remote_is_connect_error(tmp_path: Path, leak_check) -> None:
    path = str(tmp_path / "s.sock")
    async with serve_http(host_and_peer, unix_path=path) as server:
        async with Session(
            remote_connectable=UnixSocketAddress(path), local_address=("127.0.0.1", 0)
        ) as session:
            exc = await expect_connect_error(session, "http://anything.example/")
            text = str(exc)
            assert "local_address" in text and "Unix socket" in text and path in text, text
            # Without local_address the same socket works.
            session.local_address = None
            msg, _, _ = await get(session, "http://anything.example/")
            assert msg.status == 200
        await leak_check(session)
    assert server.connections == 1


# -- network events ------------------------------------------------------------------


async def test_network_events_http_by_ip_then_reused(leak_check) -> None:
    async with serve_http(host_and_peer) as server, Session() as session:
        _, _, events = await get(session, server.url_for("/a"))
        assert events.kinds == PLAIN
        events.assert_one_connection()
        _, _, again = await get(session, server.url_for("/b"))
        assert again.kinds == []
    await leak_check(session)
    assert server.connections == 1


async def test_network_events_http_by_name(leak_check) -> None:
    async with serve_http(host_and_peer) as server, Session() as session:
        resolver = StubResolver("127.0.0.1")
        session._pool.resolver = resolver
        msg, body, events = await get(session, f"http://name.test:{server.port}/")
        assert events.kinds == RESOLVED
        events.assert_one_connection()
        assert json.loads(body)["host"] == f"name.test:{server.port}"
        assert msg.remote_address == ("127.0.0.1", server.port)
        assert resolver.calls == [("name.test", server.port)]
    await leak_check(session)


async def test_network_events_https(
    tls_server_context: ssl.SSLContext, tls_ca_pem: bytes, leak_check
) -> None:
    async with serve_http(host_and_peer, ssl_context=tls_server_context) as server:
        async with Session(tls_database=TlsDatabase.from_pem(tls_ca_pem)) as session:
            _, _, by_ip = await get(session, server.url_for("/ip"))
            assert by_ip.kinds == [*PLAIN[:2], *TLS, NetworkEvent.COMPLETE]
            by_ip.assert_one_connection()
            _, _, reused = await get(session, server.url_for("/ip2"))
            assert reused.kinds == []

            session._pool.resolver = StubResolver("127.0.0.1")
            _, _, by_name = await get(session, f"https://localhost:{server.port}/name")
            assert by_name.kinds == [*RESOLVED[:4], *TLS, NetworkEvent.COMPLETE]
            by_name.assert_one_connection()
            assert by_name.seen[0][1] is not by_ip.seen[0][1]
        await leak_check(session)
    assert server.connections == 2


async def test_resolver_failure_is_connect_error(leak_check) -> None:
    async def fails(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async with Session() as session:
        session._pool.resolver = fails
        exc = await expect_connect_error(session, "http://nowhere.test/")
        assert "'nowhere.test'" in str(exc) and "name or service not known" in str(exc), str(exc)

        session._pool.resolver = StubResolver()
        exc = await expect_connect_error(session, "http://empty.test/")
        assert "'empty.test'" in str(exc) and "no address" in str(exc), str(exc)
    await leak_check(session)


# -- Happy Eyeballs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("addresses", "expected"),
    [
        (["::1", "::2", "1.1.1.1", "2.2.2.2"], ["::1", "1.1.1.1", "::2", "2.2.2.2"]),
        (["1.1.1.1", "2.2.2.2", "3.3.3.3", "::1"], ["1.1.1.1", "::1", "2.2.2.2", "3.3.3.3"]),
        (["1.1.1.1", "::1", "::2", "::3"], ["1.1.1.1", "::1", "::2", "::3"]),
        (["::1", "1.1.1.1", "::2"], ["::1", "1.1.1.1", "::2"]),
        (["1.1.1.1", "2.2.2.2", "3.3.3.3"], ["1.1.1.1", "2.2.2.2", "3.3.3.3"]),
        (["::2", "::1"], ["::2", "::1"]),
        (["10.0.0.1"], ["10.0.0.1"]),
    ],
)
def test_interleave(addresses: list[str], expected: list[str]) -> None:
    assert interleave(addresses) == expected


async def test_happy_eyeballs_passes_a_hanging_address(leak_check) -> None:
    async with serve_http(host_and_peer) as server, hanging_listener("127.0.0.2", server.port):
        async with Session(timeout=10) as session:
            session._pool.resolver = StubResolver("127.0.0.2", "127.0.0.1")
            start = time.monotonic()
            msg, _, events = await get(session, f"http://dual.test:{server.port}/")
            elapsed = time.monotonic() - start
            assert msg.status == 200
            assert msg.remote_address == ("127.0.0.1", server.port)
            # The second attempt started after the stagger, not after a timeout.
            assert anysoup._transport.connect.HAPPY_EYEBALLS_DELAY * 0.8 <= elapsed < 2, elapsed
            assert events.kinds == [
                NetworkEvent.RESOLVING,
                NetworkEvent.RESOLVED,
                NetworkEvent.CONNECTING,
                NetworkEvent.CONNECTING,
                NetworkEvent.CONNECTED,
                NetworkEvent.COMPLETE,
            ]
            events.assert_one_connection()
        await leak_check(session)
    assert server.connections == 1


@pytest.mark.parametrize("refused", ["127.0.0.3", "::1"])
async def test_happy_eyeballs_falls_back_at_once_when_refused(
    refused: str, monkeypatch: pytest.MonkeyPatch, leak_check
) -> None:
    # A stagger far longer than the test's bound: only the refusal can start
    # the second attempt in time.
    monkeypatch.setattr(anysoup._transport.connect, "HAPPY_EYEBALLS_DELAY", 30.0)
    async with serve_http(host_and_peer) as server, Session(timeout=10) as session:
        session._pool.resolver = StubResolver(refused, "127.0.0.1")
        start = time.monotonic()
        msg, _, events = await get(session, f"http://dual.test:{server.port}/")
        assert time.monotonic() - start < 2
        assert msg.remote_address == ("127.0.0.1", server.port)
        assert events.kinds.count(NetworkEvent.CONNECTING) == 2
        assert events.kinds[-2:] == [NetworkEvent.CONNECTED, NetworkEvent.COMPLETE]
    await leak_check(session)


async def test_happy_eyeballs_all_addresses_fail(leak_check) -> None:
    port = free_port("127.0.0.1")
    async with Session(timeout=10) as session:
        # Tried in interleaved order, each refused before the next starts.
        session._pool.resolver = StubResolver("127.0.0.3", "127.0.0.4", "::1")
        exc = await expect_connect_error(session, f"http://dual.test:{port}/")
        assert str(exc) == (
            f"connect to dual.test:{port}: 127.0.0.3: connection refused; "
            "::1: connection refused; 127.0.0.4: connection refused"
        )
        # A single address gives its cause alone.
        session._pool.resolver = StubResolver("127.0.0.3")
        exc = await expect_connect_error(session, f"http://single.test:{port}/")
        assert str(exc) == f"connect to single.test:{port}: connection refused"
        assert session.statistics().connections == 0
    await leak_check(session)


async def test_happy_eyeballs_hanging_addresses_hit_the_session_timeout(leak_check) -> None:
    async with hanging_listener("127.0.0.2") as (_, port):
        async with Session(timeout=0.6) as session:
            session._pool.resolver = StubResolver("127.0.0.2", "127.0.0.3")
            msg = Message("GET", f"http://dual.test:{port}/")
            with anyio.fail_after(BOUND), pytest.raises(anysoup.TimeoutError) as info:
                await session.send_and_read(msg)
            assert f"dual.test:{port}" in str(info.value)
        await leak_check(session)


async def test_happy_eyeballs_closes_a_late_winner(
    monkeypatch: pytest.MonkeyPatch, leak_check
) -> None:
    """An attempt that connects after another won is closed, not leaked."""
    real_connect = anyio.connect_tcp
    late: list[anyio.abc.SocketStream] = []

    async def connect_tcp(host: str, port: int, **kwargs: object) -> anyio.abc.SocketStream:
        if host != "127.0.0.5":
            return await real_connect(host, port, **kwargs)  # type: ignore[arg-type]
        # Past the stagger and deaf to the winner's cancellation.
        with anyio.CancelScope(shield=True):
            await anyio.sleep(anysoup._transport.connect.HAPPY_EYEBALLS_DELAY + 0.2)
            stream = await real_connect("127.0.0.1", port, **kwargs)  # type: ignore[arg-type]
        late.append(stream)
        return stream

    monkeypatch.setattr(anyio, "connect_tcp", connect_tcp)
    async with serve_http(host_and_peer) as server:
        async with Session(timeout=10) as session:
            session._pool.resolver = StubResolver("127.0.0.5", "127.0.0.1")
            msg, body, events = await get(session, f"http://dual.test:{server.port}/")
            assert msg.status == 200 and json.loads(body)["conn"] == 0
            assert events.kinds.count(NetworkEvent.CONNECTING) == 2
            assert len(late) == 1
            sock = late[0].extra(SocketAttribute.raw_socket)
            assert sock.fileno() == -1, "the late connection is still open"
            # The server sees it go, while the winner stays open in the pool.
            with anyio.fail_after(BOUND):
                while (server.connections, server.open_connections) != (2, 1):
                    await server._changed.wait()
            assert session.statistics().idle == 1
        await leak_check(session)
    assert len(server.requests) == 1


async def test_cancelled_during_a_hanging_race_leaks_nothing(leak_check) -> None:
    async with hanging_listener("127.0.0.2") as (_, port), hanging_listener("127.0.0.4", port):
        before = open_sockets()
        async with Session(timeout=30) as session:
            session._pool.resolver = StubResolver("127.0.0.2", "127.0.0.4")
            msg = Message("GET", f"http://dual.test:{port}/")
            events = Events(msg)
            # Long enough for both attempts to be under way.
            with anyio.fail_after(BOUND), anyio.move_on_after(0.6) as scope:
                await session.send_and_read(msg)
            assert scope.cancelled_caught
            assert events.kinds == []  # no connection was made for it
            stats = session.statistics()
            assert (stats.waiting, stats.in_use, stats.idle) == (0, 0, 0), stats
        await leak_check(session)
        assert open_sockets() == before
