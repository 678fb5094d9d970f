"""Client certificates: TlsInteraction, per-message certificates, request_certificate.

DESIGN §2 and §6 "TLS": a session's :class:`anysoup.TlsInteraction` (or a
subclass choosing per message) and a certificate preset on the message are
presented to servers that ask; a server demanding a certificate from a
message that has none emits ``request_certificate``, whose handler may set
one to have the request sent again, and is otherwise a
:class:`anysoup.TlsError`. Connections made with a client certificate serve
only requests presenting the same one.

The server is :func:`tls_server.serve_tls`, OpenSSL on blocking sockets in
threads, because it sends the TLS alerts a real server sends (a TLS 1.2
handshake failure, TLS 1.3's ``certificate required`` after the client's
handshake ended) and reports the certificate subject it saw on each
connection.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
import trustme
from servers import ReceivedRequest, ServerConnection, serve_http
from tls_server import TlsServer, client_auth, serve_tls

import anysoup
from anysoup import Message, PoolStatistics, Session, TlsCertificate, TlsInteraction

BOUND = 5.0
CLEAN = PoolStatistics(0, 0, 0, 0, 0)

LeakCheck = Callable[[Session], Awaitable[None]]

VERSIONS = pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"]
)


# -- certificates ----------------------------------------------------------------


def client_cert(leaf: trustme.LeafCert) -> TlsCertificate:
    """The leaf (and its chain) with its private key, as anysoup takes them."""
    chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    return TlsCertificate.from_pem(chain, leaf.private_key_pem.bytes())


@pytest.fixture(scope="session")
def alice_leaf(tls_ca: trustme.CA) -> trustme.LeafCert:
    return tls_ca.issue_cert("alice@example.org", common_name="alice")


@pytest.fixture(scope="session")
def bob_leaf(tls_ca: trustme.CA) -> trustme.LeafCert:
    return tls_ca.issue_cert("bob@example.org", common_name="bob")


@pytest.fixture
def alice(alice_leaf: trustme.LeafCert) -> TlsCertificate:
    return client_cert(alice_leaf)


@pytest.fixture
def bob(bob_leaf: trustme.LeafCert) -> TlsCertificate:
    return client_cert(bob_leaf)


@pytest.fixture
def database(tls_ca_pem: bytes) -> anysoup.TlsDatabase:
    return anysoup.TlsDatabase.from_pem(tls_ca_pem)


@pytest.fixture
def server_context(tls_server_context: ssl.SSLContext, tls_ca: trustme.CA) -> ssl.SSLContext:
    """The server's context, trusting client certificates issued by ``tls_ca``."""
    tls_ca.configure_trust(tls_server_context)
    return tls_server_context


# -- helpers ---------------------------------------------------------------------


async def get(
    session: Session, url: str, cert: TlsCertificate | None = None
) -> tuple[Message, bytes]:
    msg = Message("GET", url)
    if cert is not None:
        msg.set_tls_client_certificate(cert)
    with anyio.fail_after(BOUND):
        body = await session.send_and_read(msg)
    assert msg.status == 200
    return msg, body


async def expect_tls_error(session: Session, msg: Message, server: TlsServer) -> str:
    """Send ``msg``, expecting a TlsError that names the server; return its text.

    The failed connection is not kept: the pool holds what it held before.
    """
    before = session.statistics().connections
    with anyio.fail_after(BOUND), pytest.raises(anysoup.TlsError) as info:
        await session.send_and_read(msg)
    text = str(info.value)
    assert info.value.message is msg
    assert server.label in text, text
    assert session.statistics().connections == before
    return text


def subjects(server: TlsServer) -> list[str | None]:
    """The client certificate common name of each connection served."""
    return [c.subject for c in server.served]


# -- the session's certificate ------------------------------------------------------


@VERSIONS
async def test_interaction_certificate_is_presented(
    version, server_context, database, alice, leak_check: LeakCheck
) -> None:
    with serve_tls(client_auth(server_context, version=version)) as server:
        interaction = TlsInteraction(alice)
        async with Session(tls_database=database, tls_interaction=interaction) as session:
            assert session.tls_interaction is interaction
            msg, body = await get(session, server.url_for("/a"))
            assert body == b"conn=0 subject=alice"
            assert msg.tls_client_certificate is None  # the session's, not the message's
            # The connection is kept and reused for the same identity.
            _, body = await get(session, server.url_for("/b"))
            assert body == b"conn=0 subject=alice"
        await leak_check(session)
    assert len(server.connections) == 1
    assert server.connections[0].targets == ["/a", "/b"]


async def test_certificate_with_intermediate_sends_its_chain(
    server_context, database, leak_check: LeakCheck
) -> None:
    """The chain after the first PEM certificate goes to the server with it."""
    root = trustme.CA()
    intermediate = root.create_child_ca()
    leaf = intermediate.issue_cert("carol@example.org", common_name="carol")
    assert len(leaf.cert_chain_pems) == 2  # leaf + intermediate; the root is not sent
    root.configure_trust(server_context)  # the server knows only the root
    cert = client_cert(leaf)
    with serve_tls(client_auth(server_context)) as server:
        async with Session(tls_database=database, tls_interaction=TlsInteraction(cert)) as session:
            _, body = await get(session, server.url_for("/chain"))
            assert body == b"conn=0 subject=carol"
        await leak_check(session)


async def test_certificate_from_files(
    server_context, database, alice_leaf: trustme.LeafCert, tmp_path: Path
) -> None:
    cert_file, key_file = tmp_path / "alice.pem", tmp_path / "alice.key"
    alice_leaf.cert_chain_pems[0].write_to_path(cert_file)
    alice_leaf.private_key_pem.write_to_path(key_file)
    cert = TlsCertificate.from_file(cert_file, key_file)
    assert cert.has_private_key
    with serve_tls(client_auth(server_context)) as server:
        async with Session(tls_database=database, tls_interaction=TlsInteraction(cert)) as session:
            _, body = await get(session, server.url_for("/files"))
            assert body == b"conn=0 subject=alice"


# -- no certificate ------------------------------------------------------------------


@VERSIONS
@pytest.mark.parametrize("interaction", [None, "empty"], ids=["no-interaction", "interaction"])
async def test_missing_certificate_is_tls_error(
    version, interaction, server_context, database, leak_check: LeakCheck
) -> None:
    """TLS 1.2 refuses the handshake; TLS 1.3 says so on the first read."""
    with serve_tls(client_auth(server_context, version=version)) as server:
        async with Session(
            tls_database=database,
            tls_interaction=TlsInteraction() if interaction else None,
        ) as session:
            text = await expect_tls_error(session, Message("GET", server.url_for("/x")), server)
            if version is ssl.TLSVersion.TLSv1_2:  # a handshake failure alert
                assert "refused the handshake (does it require a client certificate?)" in text
            else:  # a certificate_required alert on the first read
                assert "the server requires a client certificate" in text, text
            assert session.statistics() == CLEAN
        await leak_check(session)
    assert server.served == []
    assert len(server.connections) == 1  # not retried without a certificate
    assert server.connections[0].handshake_error == "PEER_DID_NOT_RETURN_A_CERTIFICATE"


async def test_not_asked_for_plain_http(alice, leak_check: LeakCheck) -> None:
    """The interaction is asked only for https requests."""
    asked: list[Message] = []

    class Counting(TlsInteraction):
        async def request_certificate(self, msg: Message) -> TlsCertificate | None:
            asked.append(msg)
            return alice

    async def ok(conn: ServerConnection, request: ReceivedRequest) -> None:
        await conn.respond(200, body=b"plain")

    async with serve_http(ok) as server:
        async with Session(tls_interaction=Counting()) as session:
            _, body = await get(session, server.url_for("/p"))
            assert body == b"plain"
        await leak_check(session)
    assert asked == []


# -- request_certificate ----------------------------------------------------------------


@VERSIONS
@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_request_certificate_handler_gives_one(
    version, kind, server_context, database, alice, leak_check: LeakCheck
) -> None:
    calls: list[Message] = []

    def give(msg: Message) -> bool:
        calls.append(msg)
        assert msg.tls_client_certificate is None
        msg.set_tls_client_certificate(alice)
        return True

    async def give_async(msg: Message) -> bool:
        await anyio.lowlevel.checkpoint()
        return give(msg)

    with serve_tls(client_auth(server_context, version=version)) as server:
        async with Session(tls_database=database) as session:
            msg = Message("GET", server.url_for("/first"))
            msg.request_certificate.connect(give if kind == "sync" else give_async)
            restarts: list[Message] = []
            msg.restarted.connect(restarts.append)
            with anyio.fail_after(BOUND):
                body = await session.send_and_read(msg)
            assert (msg.status, body) == (200, b"conn=1 subject=alice")
            assert calls == [msg]
            assert restarts == [msg]  # the re-send is announced like any other
            assert msg.tls_client_certificate == alice
            # Another message presenting the same certificate rides that connection.
            _, body = await get(session, server.url_for("/second"), alice)
            assert body == b"conn=1 subject=alice"
        await leak_check(session)
    # Sent again on a new connection: the refused one, then the one with alice.
    assert [c.handshake_error is not None for c in server.connections] == [True, False]
    assert server.connections[1].targets == ["/first", "/second"]


@VERSIONS
@pytest.mark.parametrize("returns", [False, True])
async def test_request_certificate_handler_gives_none(
    version, returns, server_context, database, leak_check: LeakCheck
) -> None:
    """A handler that sets no certificate leaves the TlsError, whatever it returns."""
    calls: list[Message] = []

    def decline(msg: Message) -> bool:
        calls.append(msg)
        return returns

    with serve_tls(client_auth(server_context, version=version)) as server:
        async with Session(tls_database=database) as session:
            msg = Message("GET", server.url_for("/no"))
            msg.request_certificate.connect(decline)
            text = await expect_tls_error(session, msg, server)
            assert "client certificate" in text, text
            assert calls == [msg]
            assert msg.tls_client_certificate is None
        await leak_check(session)
    assert len(server.connections) == 1


async def body_stream() -> AsyncIterator[bytes]:
    yield b"hel"
    yield b"lo"


@VERSIONS
async def test_streamed_body_is_never_sent_twice(
    version, server_context, database, alice, leak_check: LeakCheck
) -> None:
    """TLS 1.3 reports the missing certificate after the request went out.

    A bytes body is simply sent again; a stream body can't be, so the TlsError
    stands and ``request_certificate`` is not asked. With TLS 1.2 nothing was
    sent and the stream goes out once, with the certificate.
    """
    calls: list[Message] = []

    def give(msg: Message) -> bool:
        calls.append(msg)
        msg.set_tls_client_certificate(alice)
        return True

    with serve_tls(client_auth(server_context, version=version)) as server:
        async with Session(tls_database=database) as session:
            msg = Message("POST", server.url_for("/bytes"))
            msg.set_request_body("text/plain", b"hello")
            msg.request_certificate.connect(give)
            with anyio.fail_after(BOUND):
                assert await session.send_and_read(msg) == b"conn=1 subject=alice"

            msg = Message("POST", server.url_for("/stream"))
            msg.set_request_body("text/plain", body_stream(), 5)
            msg.request_certificate.connect(give)
            if version is ssl.TLSVersion.TLSv1_2:
                with anyio.fail_after(BOUND):
                    assert await session.send_and_read(msg) == b"conn=3 subject=alice"
                assert len(calls) == 2
            else:
                text = await expect_tls_error(session, msg, server)
                assert "requires a client certificate" in text, text
                assert len(calls) == 1
        await leak_check(session)
    served = {c.index: c.bodies for c in server.served}
    if version is ssl.TLSVersion.TLSv1_2:
        assert served == {1: [b"hello"], 3: [b"hello"]}
    else:
        assert served == {1: [b"hello"]}
    assert len(server.connections) == len(served) + 2


@VERSIONS
async def test_streamed_body_waiting_for_continue_is_sent_with_certificate(
    version, server_context, database, alice, leak_check: LeakCheck
) -> None:
    """With ``Expect: 100-continue`` the stream is still unread when TLS 1.3 refuses."""
    calls: list[Message] = []

    def give(msg: Message) -> bool:
        calls.append(msg)
        msg.set_tls_client_certificate(alice)
        return True

    with serve_tls(client_auth(server_context, version=version)) as server:
        async with Session(tls_database=database) as session:
            msg = Message("POST", server.url_for("/continue"))
            msg.request_headers.append("Expect", "100-continue")
            msg.set_request_body("text/plain", body_stream(), 5)
            msg.request_certificate.connect(give)
            with anyio.fail_after(BOUND):
                assert await session.send_and_read(msg) == b"conn=1 subject=alice"
            assert calls == [msg]
        await leak_check(session)
    assert [c.bodies for c in server.served] == [[b"hello"]]
    assert len(server.connections) == 2


async def test_server_hanging_up_in_handshake_asks_for_certificate(
    server_context, database, alice, leak_check: LeakCheck
) -> None:
    """Some servers close the connection instead of sending an alert."""
    calls: list[Message] = []

    def give(msg: Message) -> bool:
        calls.append(msg)
        msg.set_tls_client_certificate(alice)
        return True

    with serve_tls(client_auth(server_context)) as server:
        server.hang_up = 1
        async with Session(tls_database=database) as session:
            msg = Message("GET", server.url_for("/h"))
            msg.request_certificate.connect(give)
            with anyio.fail_after(BOUND):
                body = await session.send_and_read(msg)
            assert body == b"conn=1 subject=alice"
            assert calls == [msg]

            # Without a handler: a TlsError that says what happened.
            server.hang_up = 1
            text = await expect_tls_error(session, Message("GET", server.url_for("/h2")), server)
            assert "closed the connection during the handshake" in text, text
            assert "client certificate" in text, text
        await leak_check(session)
    assert [c.hung_up for c in server.connections] == [True, False, True]


async def test_hang_up_with_certificate_is_not_a_certificate_request(
    server_context, database, alice, leak_check: LeakCheck
) -> None:
    calls: list[Message] = []
    with serve_tls(client_auth(server_context)) as server:
        server.hang_up = 1
        async with Session(tls_database=database) as session:
            msg = Message("GET", server.url_for("/h"))
            msg.set_tls_client_certificate(alice)
            msg.request_certificate.connect(lambda m: calls.append(m) or True)
            text = await expect_tls_error(session, msg, server)
            assert "closed the connection during the handshake" in text, text
            assert "client certificate" not in text, text
        await leak_check(session)
    assert calls == []
    assert len(server.connections) == 1


# -- choosing the certificate -------------------------------------------------------------


@VERSIONS
async def test_message_certificate_takes_precedence(
    version, server_context, database, alice, bob, leak_check: LeakCheck
) -> None:
    asked: list[str] = []

    class Counting(TlsInteraction):
        async def request_certificate(self, msg: Message) -> TlsCertificate | None:
            asked.append(msg.uri.path)
            return await super().request_certificate(msg)

    with serve_tls(client_auth(server_context, version=version)) as server:
        async with Session(tls_database=database, tls_interaction=Counting(alice)) as session:
            msg, body = await get(session, server.url_for("/bob"), bob)
            assert body == b"conn=0 subject=bob"
            assert msg.tls_client_certificate is bob
            _, body = await get(session, server.url_for("/alice"))
            assert body == b"conn=1 subject=alice"
        await leak_check(session)
    # Not asked for the message that had its own certificate.
    assert asked == ["/alice"]


@VERSIONS
async def test_interaction_chooses_per_message(
    version, server_context, database, alice, bob, leak_check: LeakCheck
) -> None:
    asked: list[str] = []

    class ByPath(TlsInteraction):
        async def request_certificate(self, msg: Message) -> TlsCertificate | None:
            asked.append(msg.uri.path)
            await anyio.lowlevel.checkpoint()
            return {"/alice": alice, "/bob": bob}.get(msg.uri.path)

    context = client_auth(server_context, version=version, required=False)
    with serve_tls(context) as server:
        async with Session(tls_database=database, tls_interaction=ByPath()) as session:
            for path, who in [("/alice", "alice"), ("/bob", "bob"), ("/anyone", "-")]:
                _, body = await get(session, server.url_for(path))
                assert body.endswith(f"subject={who}".encode()), body
        await leak_check(session)
    assert asked == ["/alice", "/bob", "/anyone"]  # once per request
    assert subjects(server) == ["alice", "bob", None]


@VERSIONS
async def test_connections_are_private_to_an_identity(
    version, server_context, database, alice, bob, alice_leaf, leak_check: LeakCheck
) -> None:
    """Alice, bob and nobody never share a connection; each reuses its own."""
    alice_again = client_cert(alice_leaf)  # another object, the same identity
    assert alice_again is not alice
    identities = {"alice": alice, "bob": bob, "-": None}
    context = client_auth(server_context, version=version, required=False)
    with serve_tls(context) as server:
        async with Session(tls_database=database) as session:
            for round_ in range(3):
                for name, cert in identities.items():
                    if name == "alice" and round_ == 2:
                        cert = alice_again
                    _, body = await get(session, server.url_for(f"/{name}/{round_}"), cert)
                    assert body.endswith(f"subject={name}".encode()), body
            assert session.statistics().connections == 3
            # Concurrent requests too: a busy identity's connection is not lent out.
            async with anyio.create_task_group() as tg:
                for name, cert in identities.items():
                    for _ in range(2):
                        tg.start_soon(get, session, server.url_for(f"/{name}/c"), cert)
        await leak_check(session)
    for seen in server.connections:
        assert seen.handshake_error is None
        names = {target.split("/")[1] for target in seen.targets}
        assert names == {seen.subject or "-"}, (seen, names)
    # Two at a time per identity: at most one more connection each.
    assert len(server.connections) <= 6
    sequential = server.connections[:3]
    assert [c.subject for c in sequential] == ["alice", "bob", None]
    for seen in sequential:
        assert [t for t in seen.targets if not t.endswith("/c")] == [
            f"/{seen.subject or '-'}/{r}" for r in range(3)
        ]


@VERSIONS
async def test_preconnect_presents_the_message_certificate(
    version, server_context, database, alice, bob, leak_check: LeakCheck
) -> None:
    """A preconnected connection carries the identity its message would use."""
    with serve_tls(client_auth(server_context, version=version)) as server:
        async with Session(
            tls_database=database, tls_interaction=TlsInteraction(alice)
        ) as session:
            preset = Message("GET", server.url_for("/bob"))
            preset.set_tls_client_certificate(bob)
            with anyio.fail_after(BOUND):
                await session.preconnect(preset)
                await session.preconnect(Message("GET", server.url_for("/alice")))
            assert session.statistics().idle == 2
            # TLS 1.3: the session tickets the server sends after the handshake
            # arrive meanwhile; unread bytes must not make the connections look dead.
            await anyio.sleep(0.1)
            _, body = await get(session, server.url_for("/alice"))
            assert body == b"conn=1 subject=alice"
            _, body = await get(session, server.url_for("/bob"), bob)
            assert body == b"conn=0 subject=bob"
        await leak_check(session)
    assert len(server.connections) == 2


@VERSIONS
async def test_preconnected_connection_closed_by_server_is_not_used(
    version, server_context, database, alice, leak_check: LeakCheck
) -> None:
    """The server closes a connection that was never used: a new one serves the request."""
    with serve_tls(client_auth(server_context, version=version)) as server:
        server.close_after_handshake = 1
        async with Session(
            tls_database=database, tls_interaction=TlsInteraction(alice)
        ) as session:
            with anyio.fail_after(BOUND):
                await session.preconnect(Message("GET", server.url_for("/")))
            await anyio.sleep(0.1)  # the server's close_notify and FIN arrive
            _, body = await get(session, server.url_for("/after"))
            assert body == b"conn=1 subject=alice"
        await leak_check(session)
    assert [c.closed_early for c in server.connections] == [True, False]
    assert server.connections[0].subject == "alice"


@VERSIONS
async def test_untrusted_certificate_is_rejected_without_asking(
    version, server_context, database, leak_check: LeakCheck
) -> None:
    """A certificate the server's CA did not issue: TlsError, no request_certificate."""
    stranger = client_cert(trustme.CA().issue_cert("mallory@example.org", common_name="mallory"))
    calls: list[Message] = []
    with serve_tls(client_auth(server_context, version=version)) as server:
        async with Session(
            tls_database=database, tls_interaction=TlsInteraction(stranger)
        ) as session:
            msg = Message("GET", server.url_for("/m"))
            msg.request_certificate.connect(lambda m: calls.append(m) or True)
            text = await expect_tls_error(session, msg, server)
            assert "does not trust the client certificate's issuer" in text, text
        await leak_check(session)
    assert calls == []
    assert server.served == []
    assert len(server.connections) == 1
    assert server.connections[0].handshake_error == "CERTIFICATE_VERIFY_FAILED"


@VERSIONS
async def test_handler_certificate_rejected_is_not_asked_again(
    version, server_context, database, leak_check: LeakCheck
) -> None:
    """The handler's certificate is refused too: one re-send, then the TlsError."""
    stranger = client_cert(trustme.CA().issue_cert("mallory@example.org", common_name="mallory"))
    calls: list[Message] = []

    def give(msg: Message) -> bool:
        calls.append(msg)
        msg.set_tls_client_certificate(stranger)
        return True

    with serve_tls(client_auth(server_context, version=version)) as server:
        async with Session(tls_database=database) as session:
            msg = Message("GET", server.url_for("/m"))
            msg.request_certificate.connect(give)
            text = await expect_tls_error(session, msg, server)
            assert "does not trust the client certificate's issuer" in text, text
        await leak_check(session)
    assert calls == [msg]
    assert [c.handshake_error for c in server.connections] == [
        "PEER_DID_NOT_RETURN_A_CERTIFICATE",
        "CERTIFICATE_VERIFY_FAILED",
    ]


# -- cancellation ------------------------------------------------------------------------


async def test_cancel_in_interaction(
    server_context, database, alice, leak_check: LeakCheck
) -> None:
    entered = anyio.Event()

    class Slow(TlsInteraction):
        async def request_certificate(self, msg: Message) -> TlsCertificate | None:
            if msg.uri.path == "/slow":
                entered.set()
                await anyio.sleep_forever()
            return alice

    with serve_tls(client_auth(server_context)) as server:
        async with Session(tls_database=database, tls_interaction=Slow()) as session:
            with anyio.move_on_after(0.2) as scope:
                await session.send_and_read(Message("GET", server.url_for("/slow")))
            assert scope.cancelled_caught
            assert entered.is_set()
            assert session.statistics() == CLEAN
            _, body = await get(session, server.url_for("/ok"))
            assert body == b"conn=0 subject=alice"
        await leak_check(session)
    assert len(server.connections) == 1  # the cancelled request never connected


@VERSIONS
async def test_cancel_in_request_certificate_handler(
    version, server_context, database, alice, leak_check: LeakCheck
) -> None:
    entered = anyio.Event()

    async def stall(msg: Message) -> bool:
        entered.set()
        await anyio.sleep_forever()
        return True

    with serve_tls(client_auth(server_context, version=version)) as server:
        async with Session(tls_database=database) as session:
            msg = Message("GET", server.url_for("/stall"))
            msg.request_certificate.connect(stall)
            with anyio.fail_after(BOUND):
                async with anyio.create_task_group() as tg:

                    async def cancel_when_entered() -> None:
                        await entered.wait()
                        tg.cancel_scope.cancel()

                    tg.start_soon(cancel_when_entered)
                    await session.send_and_read(msg)
                    pytest.fail("the request was not cancelled")
            assert session.statistics() == CLEAN
            _, body = await get(session, server.url_for("/ok"), alice)
            assert body == b"conn=1 subject=alice"
        await leak_check(session)
    assert len(server.connections) == 2


# -- argument errors ------------------------------------------------------------------


def test_certificate_without_key_is_refused(alice_leaf: trustme.LeafCert, alice) -> None:
    bare = TlsCertificate.from_pem(alice_leaf.cert_chain_pems[0].bytes())
    assert not bare.has_private_key
    assert alice.has_private_key
    assert bare == alice  # the same certificate, with or without its key
    with pytest.raises(ValueError, match="private key"):
        TlsInteraction(bare)
    msg = Message("GET", "https://example.org/")
    with pytest.raises(ValueError, match="private key"):
        msg.set_tls_client_certificate(bare)
    assert msg.tls_client_certificate is None
    msg.set_tls_client_certificate(alice)
    assert msg.tls_client_certificate is alice
    msg.set_tls_client_certificate(None)
    assert msg.tls_client_certificate is None


def test_certificate_with_key_in_the_same_pem(alice_leaf: trustme.LeafCert) -> None:
    both = alice_leaf.cert_chain_pems[0].bytes() + alice_leaf.private_key_pem.bytes()
    cert = TlsCertificate.from_pem(both.decode("ascii"))
    assert cert.has_private_key
    assert "CN=alice" in cert.subject_name


def test_bad_certificate_input_is_value_error(
    alice_leaf: trustme.LeafCert, bob_leaf: trustme.LeafCert, tmp_path: Path
) -> None:
    alice_pem = alice_leaf.cert_chain_pems[0].bytes()
    with pytest.raises(ValueError):
        TlsCertificate.from_pem(b"not a certificate")
    with pytest.raises(ValueError):
        TlsCertificate.from_pem(alice_pem, b"not a key")
    with pytest.raises(ValueError, match="can't use it with its key"):
        TlsCertificate.from_pem(alice_pem, bob_leaf.private_key_pem.bytes())
    with pytest.raises(ValueError):
        TlsCertificate.from_file(tmp_path / "missing.pem")
    cert_file = tmp_path / "alice.pem"
    cert_file.write_bytes(alice_pem)
    with pytest.raises(ValueError):
        TlsCertificate.from_file(cert_file, tmp_path / "missing.key")


def test_interaction_argument_type(alice) -> None:
    with pytest.raises(TypeError):
        Session(tls_interaction=alice)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Session(tls_interaction="alice")  # type: ignore[arg-type]
    session = Session()
    assert session.tls_interaction is None
    interaction = TlsInteraction(alice)
    session.tls_interaction = interaction
    assert session.get_tls_interaction() is interaction
    with pytest.raises(TypeError):
        session.set_tls_interaction(object())  # type: ignore[arg-type]
    assert session.tls_interaction is interaction
    session.tls_interaction = None
    assert session.tls_interaction is None
    assert TlsInteraction().certificate is None
    assert interaction.certificate is alice


async def test_default_interaction_returns_its_certificate(alice) -> None:
    msg = Message("GET", "https://example.org/")
    assert await TlsInteraction(alice).request_certificate(msg) is alice
    assert await TlsInteraction().request_certificate(msg) is None


async def test_interaction_giving_certificate_without_key_is_value_error(
    alice_leaf: trustme.LeafCert, database, leak_check: LeakCheck
) -> None:
    bare = TlsCertificate.from_pem(alice_leaf.cert_chain_pems[0].bytes())

    class Keyless(TlsInteraction):
        async def request_certificate(self, msg: Message) -> TlsCertificate | None:
            return bare

    async with Session(tls_database=database, tls_interaction=Keyless()) as session:
        with anyio.fail_after(BOUND), pytest.raises(ValueError, match="private key"):
            await session.send_and_read(Message("GET", "https://127.0.0.1:1/"))
        assert session.statistics() == CLEAN
    await leak_check(session)


async def test_caller_context_cannot_take_a_client_certificate(tls_client_context, alice) -> None:
    """``TlsDatabase.from_ssl_context`` is used as it is: no certificate is loaded into it."""
    before = tls_client_context.cert_store_stats()
    database = anysoup.TlsDatabase.from_ssl_context(tls_client_context)
    async with Session(tls_database=database, tls_interaction=TlsInteraction(alice)) as session:
        with anyio.fail_after(BOUND), pytest.raises(ValueError, match="caller's SSL context"):
            await session.send_and_read(Message("GET", "https://127.0.0.1:1/"))
        assert session.statistics() == CLEAN
    assert tls_client_context.cert_store_stats() == before
