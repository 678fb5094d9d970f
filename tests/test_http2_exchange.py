"""The HTTP/2 exchange, message by message: what goes out, what comes back, what is given back.

Against the scripted server of ``h2_servers`` (it records every field and
byte it received), and hypercorn where a real server is the better truth:
connection-specific fields never sent (RFC 9113 §8.2.2) and a streamed body
sent without framing fields; ``Expect: 100-continue`` (a 100, a final answer
first, silence); an early answer to a large upload (RFC 9113 §8.1); trailers
and the answers without a body (HEAD, 204, 304) giving their stream back;
Basic and Digest authentication retried on the same connection; TLS
(``accept_certificate``, client certificates, ``request_certificate``);
metrics; and a response header block just under the 256 KiB limit, and just
over it.
"""

from __future__ import annotations

import base64
import hashlib
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest
import trustme
from anyio.streams.tls import TLSAttribute
from h2_scripts import echo, gated, header_block, respond, route
from h2_servers import ErrorCodes, H2Server, ServerStream, SettingCodes
from h2_session import BOUND, h2
from hpack.hpack import table_entry_size
from hyperframe.frame import DataFrame
from servers import echo_app, serve_asgi

import anysoup
from anysoup import HTTPVersion, Message, MessageFlags, Session, TlsCertificate, TlsDatabase
from anysoup._features.auth.challenge_policy import parse_challenges

LeakCheck = Callable[[Session], Awaitable[None]]
#: The client's limit on a response header block (as on HTTP/1.1), RFC 7541 §4.1 sizes.
HEADER_LIMIT = 256 * 1024

hello = respond(200, b"hello", [("content-type", "text/plain")])


@pytest.fixture
def database(tls_ca_pem: bytes) -> TlsDatabase:
    return TlsDatabase.from_pem(tls_ca_pem)


def recording(handler: Any, seen: list[ServerStream]) -> Any:
    """``handler``, keeping each stream it answers in ``seen``."""

    async def record(stream: ServerStream) -> None:
        seen.append(stream)
        await handler(stream)

    return record


def regular(stream: ServerStream) -> list[tuple[bytes, bytes]]:
    """The stream's regular fields, without the ones the content decoder adds."""
    return [(n, v) for n, v in stream.request_headers if n[:1] != b":" and n != b"accept-encoding"]


def pseudo(stream: ServerStream) -> list[tuple[bytes, bytes]]:
    return [(n, v) for n, v in stream.request_headers if n[:1] == b":"]


async def chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """``total`` bytes in pieces of ``size``: a body of unknown length."""
    piece = b"u" * size
    while total > 0:
        yield piece[: min(size, total)]
        total -= size


# -- what goes out --------------------------------------------------------------


async def test_connection_specific_fields_are_never_sent(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    seen: list[ServerStream] = []
    # The server takes whatever comes, so that it records exactly what was sent.
    lax = {"validate_inbound_headers": False}
    async with h2(recording(echo, seen), tls_server_context, database, h2_config=lax) as (
        server,
        session,
    ):
        dropped = Message(
            "GET",
            server.url_for("/a?b=1"),
            headers=[
                ("Connection", "keep-alive, X-Drop"),
                ("X-Drop", "1"),
                ("Keep-Alive", "timeout=5"),
                ("Upgrade", "foo"),
                ("Proxy-Connection", "x"),
                ("TE", "gzip"),
                ("X-Keep", "Mixed Case"),
                ("Host", "other.example"),
            ],
        )
        await session.send_and_read(dropped)
        kept = Message("GET", server.url_for("/t"), headers=[("TE", "trailers")])
        await session.send_and_read(kept)
        assert dropped.http_version is kept.http_version is HTTPVersion.HTTP_2_0
    first, second = seen
    assert pseudo(first) == [
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":authority", b"other.example"),  # the program's Host
        (b":path", b"/a?b=1"),
    ]
    assert regular(first) == [(b"x-keep", b"Mixed Case")]
    assert pseudo(second) == [
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":authority", f"127.0.0.1:{server.port}".encode()),
        (b":path", b"/t"),
    ]
    assert regular(second) == [(b"te", b"trailers")]
    await leak_check(session)


async def test_te_trailers_named_by_connection_is_kept(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    seen: list[ServerStream] = []
    lax = {"validate_inbound_headers": False}
    async with h2(recording(echo, seen), tls_server_context, database, h2_config=lax) as (
        server,
        session,
    ):
        headers = [("TE", "trailers"), ("Connection", "TE")]
        await session.send_and_read(Message("GET", server.url_for("/t"), headers=headers))
    assert regular(seen[0]) == [(b"te", b"trailers")]
    await leak_check(session)


async def test_streamed_body_goes_without_framing_fields(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    seen: list[ServerStream] = []
    lax = {"validate_inbound_headers": False}
    async with h2(recording(echo, seen), tls_server_context, database, h2_config=lax) as (
        server,
        session,
    ):
        total = 300_000  # beyond the server's initial windows
        msg = Message("POST", server.url_for("/up"), body=chunks(total, 10_000))
        body = await session.send_and_read(msg)
        assert body == b"u" * total
        sized = Message("PUT", server.url_for("/sized"), body=b"0123456789")
        assert await session.send_and_read(sized) == b"0123456789"
    streamed, known = seen
    names = [n for n, _ in regular(streamed)]
    assert b"transfer-encoding" not in names and b"content-length" not in names
    assert streamed.data_received == total and streamed.request_complete
    assert known.header("content-length") == b"10"
    assert known.header("transfer-encoding") is None
    await leak_check(session)


# -- Expect: 100-continue -----------------------------------------------------------


def continue_then_echo(log: list[str]) -> Any:
    """Check that no body came before the 100, send it, then answer with the body."""

    async def handler(stream: ServerStream) -> None:
        assert stream.header("expect") == b"100-continue"
        await anyio.sleep(0.1)  # the client waits for the 100 before the body
        log.append(f"server: {stream.data_received} bytes before the 100")
        await stream.send_informational(100)
        body = await stream.read_body()
        await stream.send_headers(200, [("content-length", str(len(body) + 4))])
        await stream.send_data(b"got " + body, end_stream=True)

    return handler


def expecting(server: H2Server, log: list[str]) -> Message:
    msg = Message("POST", server.url_for("/"), body=b"payload")
    msg.request_headers.append("Expect", "100-continue")
    msg.got_informational.connect(lambda m: log.append(f"client: got {m.status}"))
    msg.wrote_body.connect(lambda m: log.append("client: wrote_body"))
    msg.got_headers.connect(lambda m: log.append(f"client: final {m.status}"))
    return msg


async def test_expect_continue_body_follows_the_100(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    log: list[str] = []
    async with h2(continue_then_echo(log), tls_server_context, database) as (server, session):
        msg = expecting(server, log)
        assert await session.send_and_read(msg) == b"got payload"
        assert (msg.status, msg.http_version) == (200, HTTPVersion.HTTP_2_0)
    assert log[0] == "server: 0 bytes before the 100"
    assert sorted(log[1:]) == ["client: final 200", "client: got 100", "client: wrote_body"]
    await leak_check(session)


async def test_expect_continue_got_informational_comes_before_the_body(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    log: list[str] = []
    async with h2(continue_then_echo(log), tls_server_context, database) as (server, session):
        assert await session.send_and_read(expecting(server, log)) == b"got payload"
    assert log == [
        "server: 0 bytes before the 100",
        "client: got 100",
        "client: wrote_body",
        "client: final 200",
    ]
    await leak_check(session)


@pytest.mark.parametrize("status", [417, 401])
async def test_expect_continue_final_answer_means_no_body(
    status: int, tls_server_context, database, leak_check: LeakCheck
) -> None:
    async def answer_at_once(stream: ServerStream) -> None:
        await stream.send_headers(status, [("content-length", "6")])
        await stream.send_data(b"answer", end_stream=True)

    handler = route({"/put": answer_at_once}, hello)
    async with h2(handler, tls_server_context, database) as (server, session):
        msg = Message("PUT", server.url_for("/put"), body=b"must not be sent" * 1000)
        msg.request_headers.append("Expect", "100-continue")
        wrote: list[str] = []
        msg.wrote_body_data.connect(lambda m, chunk: wrote.append("wrote_body_data"))
        msg.wrote_body.connect(lambda m: wrote.append("wrote_body"))
        started = time.monotonic()
        assert await session.send_and_read(msg) == b"answer"
        assert msg.status == status and wrote == []
        assert time.monotonic() - started < 0.9  # the final answer, not the 1 s delay
        # Frames arrive in order: once the next exchange is over, any DATA of
        # the first stream would have been received.
        assert (await session.send_and_read(Message("GET", server.url_for("/next")))) == b"hello"
        (conn,) = server.connections
        assert conn.data_received == 0
        assert conn.streams[1].data_received == 0
        assert session.statistics().streams == 0
    await leak_check(session)


async def test_expect_continue_silence_sends_the_body_anyway(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    """No answer for a while (1 s, as libsoup and curl): the body goes out anyway."""
    waited: list[float] = []

    async def silent(stream: ServerStream) -> None:
        started = time.monotonic()
        first = await stream.receive_data()
        waited.append(time.monotonic() - started)
        rest = await stream.read_body()
        await stream.send_headers(200, [("content-length", str(len(first + rest)))])
        await stream.send_data(first + rest, end_stream=True)

    async with h2(silent, tls_server_context, database) as (server, session):
        msg = Message("POST", server.url_for("/quiet"), body=b"late but whole")
        msg.request_headers.append("Expect", "100-continue")
        assert await session.send_and_read(msg) == b"late but whole"
        assert msg.status == 200
    assert waited and 0.8 <= waited[0] < 3
    await leak_check(session)


# -- an early answer during a large upload ------------------------------------------


def refuse_after_a_little(*, rst: bool) -> Any:
    """Read a little of the upload, answer 413 (END_STREAM), maybe RST_STREAM NO_ERROR."""

    async def handler(stream: ServerStream) -> None:
        received = 0
        while received < 16384 and (chunk := await stream.receive_data()):
            received += len(chunk)
        await stream.send_headers(413, [("content-length", "8")])
        await stream.send_data(b"too big!", end_stream=True)
        if rst:  # RFC 9113 §8.1: stop the upload without an error
            await stream.reset(ErrorCodes.NO_ERROR)

    return handler


@pytest.mark.parametrize("rst", [False, True], ids=["end-stream", "end-stream+rst"])
@pytest.mark.parametrize("kind", ["bytes", "streamed"])
async def test_early_answer_stops_a_large_upload(
    kind: str, rst: bool, tls_server_context, database, leak_check: LeakCheck
) -> None:
    total = 20 * 1024 * 1024
    handler = route({"/upload": refuse_after_a_little(rst=rst)}, hello)
    settings = {SettingCodes.INITIAL_WINDOW_SIZE: 16384}
    async with h2(handler, tls_server_context, database, settings=settings) as (server, session):
        await session.send_and_read(Message("GET", server.url_for("/warm")))  # small window on
        body: Any = b"x" * total if kind == "bytes" else chunks(total)
        msg = Message("POST", server.url_for("/upload"), body=body)
        wrote: list[str] = []
        msg.wrote_body.connect(lambda m: wrote.append("wrote_body"))
        started = time.monotonic()
        assert await session.send_and_read(msg) == b"too big!"
        assert time.monotonic() - started < 2.0
        assert msg.status == 413 and wrote == []
        (conn,) = server.connections
        assert conn.streams[3].data_received < 1024 * 1024  # far from all of it
        assert session.statistics().streams == 0
        # The connection serves the next request.
        assert await session.send_and_read(Message("GET", server.url_for("/next"))) == b"hello"
        assert server.accepted == 1 and conn.streams_opened == 3
    await leak_check(session)


# -- trailers, and answers without a body --------------------------------------------


async def test_trailers_end_the_body(tls_server_context, database, leak_check: LeakCheck) -> None:
    part = b"t" * 100_000

    async def with_trailers(stream: ServerStream) -> None:
        await stream.read_body()
        await stream.send_headers(200, [("trailer", "x-checksum")])
        await stream.send_data(part)
        await stream.send_data(part)
        await stream.send_trailers([("x-checksum", "abc123")])

    async with h2(with_trailers, tls_server_context, database) as (server, session):
        for path in ("/one", "/two"):
            msg = Message("GET", server.url_for(path))
            finished: list[str] = []
            msg.got_body.connect(lambda m, log=finished: log.append("got_body"))
            msg.finished.connect(lambda m, log=finished: log.append("finished"))
            assert await session.send_and_read(msg) == part * 2
            assert msg.status == 200 and finished == ["got_body", "finished"]
            assert session.statistics().streams == 0
        (conn,) = server.connections
        assert conn.resets_received == []  # both streams ended cleanly: nothing to cancel
        assert conn.streams_opened == 2
    await leak_check(session)


BODYLESS = pytest.mark.parametrize(
    ("method", "status", "length"),
    [("HEAD", 200, "5"), ("GET", 204, None), ("GET", 304, "5")],
    ids=["head", "204", "304"],
)


@BODYLESS
async def test_answer_without_a_body_gives_the_stream_back(
    method: str, status: int, length: str | None, tls_server_context, database, leak_check
) -> None:
    async def bodyless(stream: ServerStream) -> None:
        await stream.read_body()
        fields = [("etag", '"v1"')] + ([("content-length", length)] if length else [])
        await stream.send_headers(status, fields, end_stream=True)

    async with h2(bodyless, tls_server_context, database) as (server, session):
        for _ in range(2):
            msg = Message(method, server.url_for("/r"))
            assert await session.send_and_read(msg) == b""
            assert msg.status == status
            assert msg.response_headers.get_one("ETag") == '"v1"'
            assert session.statistics().streams == 0
        (conn,) = server.connections
        assert conn.resets_received == [] and conn.streams_opened == 2
    await leak_check(session)


async def test_304_whose_end_comes_in_an_empty_data_frame(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    """RFC 9113 §8.1.1: a 304 may carry a Content-Length with no content in its DATA frames."""

    async def late_end(stream: ServerStream) -> None:
        await stream.send_headers(304, [("content-length", "5"), ("etag", '"v1"')])
        await stream.send_data(b"", end_stream=True)

    gate = anyio.Event()
    handler = route({"/304": late_end, "/slow": gated(gate, hello)}, hello)
    outcomes: dict[str, object] = {}

    async def one(path: str) -> None:
        try:
            msg = Message("GET", server.url_for(path))
            body = await session.send_and_read(msg)
            outcomes[path] = (msg.status, body)
        except anysoup.Error as exc:
            outcomes[path] = exc
        finally:
            gate.set()

    async with h2(handler, tls_server_context, database) as (server, session):
        async with anyio.create_task_group() as group:
            group.start_soon(one, "/slow")  # a neighbour on the same connection
            await server.wait_until(
                lambda: server.connections and server.connections[0].streams_opened
            )
            await one("/304")
        accepted = server.accepted
    # Recorded, then asserted outside the servers' task groups.
    assert outcomes == {"/304": (304, b""), "/slow": (200, b"hello")}
    assert accepted == 1
    await leak_check(session)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("HEAD", "/hello", 200), ("GET", "/status/204", 204), ("GET", "/status/304", 304)],
    ids=["head", "204", "304"],
)
async def test_answer_without_a_body_from_hypercorn(
    method: str, path: str, status: int, tls_cert_files, database, leak_check: LeakCheck
) -> None:
    async with (
        serve_asgi(
            echo_app, ssl_certfile=tls_cert_files.certfile, ssl_keyfile=tls_cert_files.keyfile
        ) as url,
        Session(tls_database=database) as session,
    ):
        with anyio.fail_after(BOUND):
            for _ in range(2):
                msg = Message(method, url + path)
                assert await session.send_and_read(msg) == b""
                assert (msg.status, msg.http_version) == (status, HTTPVersion.HTTP_2_0)
                assert session.statistics().streams == 0
            assert session.statistics().connections == 1
    await leak_check(session)


# -- authentication above the core ------------------------------------------------


def give(user: str, password: str) -> Any:
    """An ``authenticate`` handler that answers with these credentials and counts its calls."""

    def handler(msg: Message, auth: anysoup.Auth, retrying: bool) -> bool:
        handler.calls.append((auth.scheme_name, retrying))  # type: ignore[attr-defined]
        auth.authenticate(user, password)
        return True

    handler.calls = []  # type: ignore[attr-defined]
    return handler


async def test_basic_auth_retries_on_the_same_connection(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    expected = b"Basic " + base64.b64encode(b"alice:s3cret")

    async def basic(stream: ServerStream) -> None:
        if stream.header("authorization") == expected:
            await hello(stream)
        else:
            await respond(401, b"who?", [("www-authenticate", 'Basic realm="h2"')])(stream)

    async with h2(basic, tls_server_context, database) as (server, session):
        msg = Message("GET", server.url_for("/private"))
        asked = give("alice", "s3cret")
        msg.authenticate.connect(asked)
        assert await session.send_and_read(msg) == b"hello"
        assert (msg.status, msg.http_version) == (200, HTTPVersion.HTTP_2_0)
        assert asked.calls == [("Basic", False)]
        (conn,) = server.connections
        assert server.accepted == 1 and conn.streams_opened == 2
        assert conn.streams[1].header("authorization") is None
        assert conn.streams[3].header("authorization") == expected
        assert session.statistics().streams == 0
    await leak_check(session)


def digest_handler(bodies: list[bytes]) -> Any:
    """A Digest (MD5, qop=auth) server for ivy/pw that records each request body."""
    challenge = 'Digest realm="lab", nonce="n1", qop="auth", algorithm=MD5'

    async def handler(stream: ServerStream) -> None:
        body = await stream.read_body()
        bodies.append(body)
        header = (stream.header("authorization") or b"").decode()
        if header.startswith("Digest "):
            fields = dict(parse_challenges([header])[0].params)
            ha1 = hashlib.md5(b"ivy:lab:pw").hexdigest()
            ha2 = hashlib.md5(f"{stream.method}:{stream.path}".encode()).hexdigest()
            nonce, nc, cnonce = fields["nonce"], fields["nc"], fields["cnonce"]
            digest = f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"
            if (
                fields["uri"] == stream.path
                and fields["response"] == hashlib.md5(digest.encode()).hexdigest()
            ):
                await stream.send_headers(200, [("content-length", str(len(body)))])
                await stream.send_data(body, end_stream=True)
                return
        await stream.send_headers(401, [("www-authenticate", challenge)], end_stream=True)

    return handler


async def test_digest_auth_retries_a_post_on_the_same_connection(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    bodies: list[bytes] = []
    async with h2(digest_handler(bodies), tls_server_context, database) as (server, session):
        msg = Message("POST", server.url_for("/d?q=1"), body=b"form=data")
        asked = give("ivy", "pw")
        msg.authenticate.connect(asked)
        assert await session.send_and_read(msg) == b"form=data"
        assert (msg.status, msg.http_version) == (200, HTTPVersion.HTTP_2_0)
        assert asked.calls == [("Digest", False)]
        assert bodies == [b"form=data", b"form=data"]  # the body went again
        (conn,) = server.connections
        assert server.accepted == 1 and conn.streams_opened == 2
    await leak_check(session)


# -- TLS --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def untrusted_leaf() -> trustme.LeafCert:
    """Right names and dates, from a CA the session doesn't trust."""
    return trustme.CA().issue_cert("localhost", "127.0.0.1")


async def test_accept_certificate_over_http2(
    untrusted_leaf: trustme.LeafCert, database, leak_check: LeakCheck
) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    untrusted_leaf.configure_cert(context)
    judged: list[anysoup.TlsCertificateFlags] = []

    def judge(msg: Message, cert: TlsCertificate, errors: anysoup.TlsCertificateFlags) -> bool:
        judged.append(errors)
        return True

    async with h2(hello, context, database) as (server, session):
        for path in ("/a", "/b"):  # each message on the relaxed connection is asked
            msg = Message("GET", server.url_for(path))
            msg.accept_certificate.connect(judge)
            assert await session.send_and_read(msg) == b"hello"
            assert (msg.status, msg.http_version) == (200, HTTPVersion.HTTP_2_0)
            assert msg.tls_peer_certificate_errors == anysoup.TlsCertificateFlags.UNKNOWN_CA
        assert judged == [anysoup.TlsCertificateFlags.UNKNOWN_CA] * 2
        assert len(server.connections) == 1 and server.connections[0].streams_opened == 2
        with pytest.raises(anysoup.TlsError, match="certificate rejected"):
            await session.send_and_read(Message("GET", server.url_for("/strict")))
        assert server.connections[0].streams_opened == 2  # a strict message never rides it
    await leak_check(session)


@pytest.fixture(scope="module")
def alice(tls_ca: trustme.CA) -> TlsCertificate:
    leaf = tls_ca.issue_cert("alice@example.org", common_name="alice")
    chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    return TlsCertificate.from_pem(chain, leaf.private_key_pem.bytes())


async def subject(stream: ServerStream) -> None:
    """Answer with the common name of the client certificate the connection saw."""
    peer = stream.connection.stream.extra(TLSAttribute.peer_certificate) or {}
    names = [
        value for rdn in peer.get("subject", ()) for name, value in rdn if name == "commonName"
    ]
    await respond(200, f"subject={','.join(names) or None}".encode())(stream)


@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"]
)
async def test_client_certificate_over_http2(
    version: ssl.TLSVersion,
    tls_server_context,
    tls_ca: trustme.CA,
    database,
    alice: TlsCertificate,
    leak_check: LeakCheck,
) -> None:
    tls_ca.configure_trust(tls_server_context)
    tls_server_context.verify_mode = ssl.CERT_REQUIRED
    tls_server_context.minimum_version = tls_server_context.maximum_version = version
    async with h2(subject, tls_server_context, database) as (server, session):
        for path in ("/a", "/b"):
            msg = Message("GET", server.url_for(path))
            msg.set_tls_client_certificate(alice)
            assert await session.send_and_read(msg) == b"subject=alice"
            assert (msg.status, msg.http_version) == (200, HTTPVersion.HTTP_2_0)
        assert server.accepted == 1 and server.connections[0].streams_opened == 2
    await leak_check(session)


async def test_request_certificate_resend_goes_over_http2(
    tls_server_context, tls_ca: trustme.CA, database, alice: TlsCertificate, leak_check
) -> None:
    """The handler's certificate, on the re-send, is presented on a new HTTP/2 connection.

    TLS 1.2 only: the server refuses in the handshake. (With TLS 1.3 it refuses
    after it, in an alert anyio's server-side TLS stream doesn't send.)
    """
    tls_ca.configure_trust(tls_server_context)
    tls_server_context.verify_mode = ssl.CERT_REQUIRED
    tls_server_context.maximum_version = ssl.TLSVersion.TLSv1_2

    def give_alice(msg: Message) -> bool:
        msg.set_tls_client_certificate(alice)
        return True

    async with h2(subject, tls_server_context, database) as (server, session):
        msg = Message("GET", server.url_for("/first"))
        msg.request_certificate.connect(give_alice)
        assert await session.send_and_read(msg) == b"subject=alice"
        assert (msg.status, msg.http_version) == (200, HTTPVersion.HTTP_2_0)
        assert server.accepted == 2 and len(server.connections) == 1
    await leak_check(session)


# -- metrics --------------------------------------------------------------------


async def test_metrics_over_http2(tls_server_context, database, leak_check: LeakCheck) -> None:
    async with h2(echo, tls_server_context, database) as (server, session):
        first = Message("POST", server.url_for("/m"), body=b"x" * 1000)
        streamed = Message("POST", server.url_for("/s"), body=chunks(200_000, 50_000))
        for msg in (first, streamed):
            msg.add_flags(MessageFlags.COLLECT_METRICS)
            body = await session.send_and_read(msg)
            metrics = msg.metrics
            assert metrics is not None
            assert metrics.request_body_size == metrics.request_body_bytes_sent == len(body)
            assert metrics.response_body_size == metrics.response_body_bytes_received == len(body)
            assert metrics.request_header_bytes_sent > 0
            assert metrics.response_header_bytes_received > 0
            assert 0 < metrics.fetch_start <= metrics.request_start
            assert metrics.request_start <= metrics.response_start <= metrics.response_end
        assert first.metrics is not None and streamed.metrics is not None
        assert first.metrics.request_body_size == 1000
        assert streamed.metrics.request_body_size == 200_000
        # The first message made the connection; the second rode it.
        one = first.metrics
        assert one.fetch_start <= one.connect_start <= one.tls_start <= one.connect_end
        assert one.connect_end <= one.request_start
        assert streamed.metrics.connect_start == streamed.metrics.connect_end == 0.0
        assert server.accepted == 1
    await leak_check(session)


# -- the response header block's size --------------------------------------------


def big_head(total: int) -> list[tuple[str, str]]:
    """``:status 200`` and ``x-big-N`` fields whose RFC 7541 §4.1 size is about ``total``."""
    fields = [(":status", "200"), ("content-length", "2")]
    size = sum(table_entry_size(n.encode(), v.encode()) for n, v in fields)
    index = 0
    while size < total:
        name = f"x-big-{index}"
        value = "v" * max(1, min(4000, total - size - 32 - len(name)))
        fields.append((name, value))
        size += table_entry_size(name.encode(), value.encode())
        index += 1
    return fields


def raw_head(fields: list[tuple[str, str]]) -> Any:
    """A handler writing ``fields`` as a raw header block, then ``ok`` as the body."""

    async def handler(stream: ServerStream) -> None:
        await stream.read_body()
        end = DataFrame(stream.stream_id, b"ok")
        end.flags.add("END_STREAM")
        await stream.send_raw(header_block(stream.stream_id, fields) + end.serialize())

    return handler


async def test_header_block_just_under_the_limit_is_accepted(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    fields = big_head(HEADER_LIMIT - 1024)
    handler = route({"/big": raw_head(fields)}, hello)
    async with h2(handler, tls_server_context, database) as (server, session):
        msg = Message("GET", server.url_for("/big"))
        assert await session.send_and_read(msg) == b"ok"
        assert msg.status == 200
        assert len(msg.response_headers) == len(fields) - 1  # all but :status
        assert msg.response_headers.get_one("x-big-0") == "v" * 4000
        # The connection's HPACK state is intact: it serves the next request.
        assert await session.send_and_read(Message("GET", server.url_for("/next"))) == b"hello"
        assert server.accepted == 1
    await leak_check(session)


async def test_header_block_just_over_the_limit_is_refused(
    tls_server_context, database, leak_check: LeakCheck
) -> None:
    handler = raw_head(big_head(HEADER_LIMIT + 1024))
    async with h2(handler, tls_server_context, database) as (server, session):
        with pytest.raises(anysoup.ParsingError, match="HTTP/2 stream 1"):
            await session.send_and_read(Message("GET", server.url_for("/big")))
    await leak_check(session)
