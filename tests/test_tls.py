"""HTTPS against the scripted server with trustme certificates.

Trust comes only from the database the session is given (DESIGN §2, §6
"TLS"); every handshake failure is a :class:`anysoup.TlsError` naming the
host, with the certificate's problems in ``errors``; anysoup never changes an
SSL context after it was made, neither its own nor a caller's.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import anyio
import pytest
import trustme
from anyio.streams.tls import TLSAttribute
from servers import ReceivedRequest, Server, ServerConnection, serve_http, serve_raw

import anysoup
from anysoup import TlsCertificateFlags

BOUND = 5.0


class TlsSeen:
    """What the server saw of each TLS connection."""

    def __init__(self) -> None:
        self.versions: list[str | None] = []
        self.alpn: list[str | None] = []
        self.sni: list[str | None] = []

    async def handler(self, conn: ServerConnection, request: ReceivedRequest) -> None:
        self.versions.append(conn.stream.extra(TLSAttribute.tls_version))
        self.alpn.append(conn.stream.extra(TLSAttribute.alpn_protocol))
        await conn.respond(
            200, [("Content-Type", "text/plain")], b"secure " + request.target.encode()
        )


def label(server: Server) -> str:
    return f"{server.host}:{server.port}"


def context_state(context: ssl.SSLContext) -> dict[str, Any]:
    """Everything observable about a client context, to prove it was not changed."""
    return {
        "options": context.options,
        "verify_mode": context.verify_mode,
        "verify_flags": context.verify_flags,
        "check_hostname": context.check_hostname,
        "hostname_checks_common_name": context.hostname_checks_common_name,
        "minimum_version": context.minimum_version,
        "maximum_version": context.maximum_version,
        "post_handshake_auth": context.post_handshake_auth,
        "cert_store_stats": context.cert_store_stats(),
        # Sorted: OpenSSL re-sorts its store on lookups during any handshake.
        "ca_certs": sorted(context.get_ca_certs(binary_form=True)),
        "ciphers": [c["name"] for c in context.get_ciphers()],
        "sni_callback": context.sni_callback,
        "keylog_filename": context.keylog_filename,
    }


async def get(session: anysoup.Session, url: str) -> tuple[anysoup.Message, bytes]:
    msg = anysoup.Message("GET", url)
    with anyio.fail_after(BOUND):
        body = await session.send_and_read(msg)
    return msg, body


async def expect_tls_error(session: anysoup.Session, url: str, host: str) -> anysoup.TlsError:
    msg = anysoup.Message("GET", url)
    with anyio.fail_after(BOUND), pytest.raises(anysoup.TlsError) as info:
        await session.send_and_read(msg)
    exc = info.value
    assert exc.message is msg
    assert "TLS handshake" in str(exc), str(exc)
    assert host in str(exc), str(exc)
    assert session.statistics().connections == 0
    return exc


# -- trust ---------------------------------------------------------------------


async def test_https_with_database_from_pem(tls_server_context, tls_ca_pem, leak_check) -> None:
    tls_server_context.set_alpn_protocols(["h2", "http/1.1"])
    seen = TlsSeen()
    async with serve_http(seen.handler, ssl_context=tls_server_context) as server:
        database = anysoup.TlsDatabase.from_pem(tls_ca_pem)
        async with anysoup.Session(tls_database=database, http2=False) as session:
            assert session.tls_database is database
            msg, body = await get(session, server.url_for("/a"))
            assert (msg.status, body) == (200, b"secure /a")
            assert msg.remote_address == ("127.0.0.1", server.port)
            # A second request rides the same TLS connection.
            msg2, body2 = await get(session, server.url_for("/b"))
            assert body2 == b"secure /b"
            assert msg2.remote_address == ("127.0.0.1", server.port)
            assert server.connections == 1
        await leak_check(session)
    # http2=False: anysoup's own contexts offer only http/1.1 by ALPN.
    assert seen.alpn == ["http/1.1", "http/1.1"]


async def test_https_with_database_from_pem_str(tls_server_context, tls_ca_pem) -> None:
    seen = TlsSeen()
    async with serve_http(seen.handler, ssl_context=tls_server_context) as server:
        database = anysoup.TlsDatabase.from_pem(tls_ca_pem.decode("ascii"))
        async with anysoup.Session(tls_database=database) as session:
            _, body = await get(session, server.url_for("/s"))
            assert body == b"secure /s"


async def test_https_with_database_from_file(
    tls_server_context, tls_ca_pem, tmp_path: Path, leak_check
) -> None:
    cafile = tmp_path / "ca.pem"
    cafile.write_bytes(tls_ca_pem)
    seen = TlsSeen()
    async with serve_http(seen.handler, ssl_context=tls_server_context) as server:
        async with anysoup.Session(tls_database=anysoup.TlsDatabase.from_file(cafile)) as session:
            msg, body = await get(session, server.url_for("/file"))
            assert (msg.status, body) == (200, b"secure /file")
            assert msg.remote_address == ("127.0.0.1", server.port)
        await leak_check(session)


async def test_https_by_host_name_sends_sni(tls_server_context, tls_ca_pem, leak_check) -> None:
    seen = TlsSeen()

    def on_sni(ssl_object: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        seen.sni.append(name)

    tls_server_context.sni_callback = on_sni
    async with serve_http(seen.handler, ssl_context=tls_server_context) as server:
        async with anysoup.Session(
            tls_database=anysoup.TlsDatabase.from_pem(tls_ca_pem),
            remote_connectable=("127.0.0.1", server.port),
        ) as session:
            msg, body = await get(session, f"https://localhost:{server.port}/named")
            assert body == b"secure /named"
            assert msg.remote_address == ("127.0.0.1", server.port)
        await leak_check(session)
    assert seen.sni == ["localhost"]


def test_database_from_bad_input_is_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        anysoup.TlsDatabase.from_pem(b"not a certificate")
    with pytest.raises(ValueError):
        anysoup.TlsDatabase.from_file(tmp_path / "missing.pem")


async def test_system_database_rejects_unknown_ca(tls_server_context, leak_check) -> None:
    seen = TlsSeen()
    async with serve_http(seen.handler, ssl_context=tls_server_context) as server:
        async with anysoup.Session() as session:
            assert session.tls_database is anysoup.TlsDatabase.system()
            exc = await expect_tls_error(session, server.url, label(server))
            assert TlsCertificateFlags.UNKNOWN_CA in exc.errors
        await leak_check(session)
    assert server.requests == []


async def test_no_database_rejects_every_certificate(tls_server_context, leak_check) -> None:
    seen = TlsSeen()
    async with serve_http(seen.handler, ssl_context=tls_server_context) as server:
        async with anysoup.Session(tls_database=None) as session:
            assert session.tls_database is None
            exc = await expect_tls_error(session, server.url, label(server))
            assert TlsCertificateFlags.UNKNOWN_CA in exc.errors
            # Still refused on a second try: nothing was cached as trusted.
            exc = await expect_tls_error(session, server.url_for("/again"), label(server))
            assert TlsCertificateFlags.UNKNOWN_CA in exc.errors
        await leak_check(session)
    assert server.requests == []


# -- identity ------------------------------------------------------------------


async def test_certificate_for_another_name_is_bad_identity(
    tls_ca: trustme.CA, tls_ca_pem, leak_check
) -> None:
    other = tls_ca.issue_cert("other.example")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    other.configure_cert(context)
    seen = TlsSeen()
    async with serve_http(seen.handler, ssl_context=context) as server:
        async with anysoup.Session(
            tls_database=anysoup.TlsDatabase.from_pem(tls_ca_pem)
        ) as session:
            exc = await expect_tls_error(session, server.url, label(server))
            assert TlsCertificateFlags.BAD_IDENTITY in exc.errors
            assert TlsCertificateFlags.UNKNOWN_CA not in exc.errors
        await leak_check(session)
    assert server.requests == []


async def test_host_name_not_in_certificate_is_bad_identity(
    tls_server_context, tls_ca_pem, leak_check
) -> None:
    seen = TlsSeen()
    async with serve_http(seen.handler, ssl_context=tls_server_context) as server:
        async with anysoup.Session(
            tls_database=anysoup.TlsDatabase.from_pem(tls_ca_pem),
            remote_connectable=("127.0.0.1", server.port),
        ) as session:
            exc = await expect_tls_error(
                session, f"https://wrong.example:{server.port}/", f"wrong.example:{server.port}"
            )
            assert TlsCertificateFlags.BAD_IDENTITY in exc.errors
        await leak_check(session)
    assert server.requests == []


# -- not TLS at all -------------------------------------------------------------


async def test_plain_http_server_closing_on_tls_is_tls_error(tls_ca_pem, leak_check) -> None:
    """An HTTP server gets a ClientHello, finds no request in it and hangs up."""
    seen = TlsSeen()
    async with serve_http(seen.handler) as server:
        async with anysoup.Session(
            tls_database=anysoup.TlsDatabase.from_pem(tls_ca_pem)
        ) as session:
            url = f"https://127.0.0.1:{server.port}/"
            await expect_tls_error(session, url, label(server))
        await leak_check(session)


async def test_plain_http_answer_to_tls_is_tls_error(tls_ca_pem, leak_check) -> None:
    """An HTTP server answers the ClientHello with an HTTP 400."""

    async def answer_plain(conn: ServerConnection) -> None:
        await conn.stream.receive()
        await conn.send_raw(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )

    async with serve_raw(answer_plain) as server:
        async with anysoup.Session(
            tls_database=anysoup.TlsDatabase.from_pem(tls_ca_pem)
        ) as session:
            url = f"https://127.0.0.1:{server.port}/"
            exc = await expect_tls_error(session, url, label(server))
            assert "TLS" in str(exc)
        await leak_check(session)


# -- protocol versions -----------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "name"),
    [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")],
    ids=["tls1.2", "tls1.3"],
)
async def test_tls_versions(
    version: ssl.TLSVersion, name: str, tls_server_context, tls_ca_pem, leak_check
) -> None:
    tls_server_context.minimum_version = version
    tls_server_context.maximum_version = version
    seen = TlsSeen()
    async with serve_http(seen.handler, ssl_context=tls_server_context) as server:
        async with anysoup.Session(
            tls_database=anysoup.TlsDatabase.from_pem(tls_ca_pem)
        ) as session:
            _, body = await get(session, server.url_for("/v"))
            assert body == b"secure /v"
        await leak_check(session)
    assert seen.versions == [name]


# -- contexts are never changed ---------------------------------------------------


def test_system_database_is_one_cached_instance() -> None:
    system = anysoup.TlsDatabase.system()
    assert anysoup.TlsDatabase.system() is system
    assert anysoup.Session().tls_database is system
    assert anysoup.Session(tls_database=anysoup.DEFAULT).tls_database is system
    assert system.ssl_context is anysoup.TlsDatabase.system().ssl_context


async def test_system_context_not_mutated_by_sending(tls_server_context, leak_check) -> None:
    context = anysoup.TlsDatabase.system().ssl_context
    before = context_state(context)
    seen = TlsSeen()
    async with serve_http(seen.handler, ssl_context=tls_server_context) as server:
        async with anysoup.Session() as session:
            await expect_tls_error(session, server.url, label(server))
        await leak_check(session)
    assert anysoup.TlsDatabase.system().ssl_context is context
    assert context_state(context) == before


async def test_database_context_not_mutated_by_sending(
    tls_server_context, tls_ca_pem, leak_check
) -> None:
    database = anysoup.TlsDatabase.from_pem(tls_ca_pem)
    before = context_state(database.ssl_context)
    seen = TlsSeen()
    async with serve_http(seen.handler, ssl_context=tls_server_context) as server:
        async with anysoup.Session(tls_database=database) as session:
            for path in ("/1", "/2"):
                _, body = await get(session, server.url_for(path))
                assert body == b"secure " + path.encode()
        await leak_check(session)
    assert context_state(database.ssl_context) == before


async def test_caller_context_is_never_touched(
    tls_server_context, tls_client_context, leak_check
) -> None:
    """A context the caller made is used as it is: no ALPN, no option added."""
    before = context_state(tls_client_context)
    tls_server_context.set_alpn_protocols(["h2", "http/1.1"])
    seen = TlsSeen()
    async with serve_http(seen.handler, ssl_context=tls_server_context) as server:
        database = anysoup.TlsDatabase.from_ssl_context(tls_client_context)
        async with anysoup.Session(tls_database=database) as session:
            assert session.tls_database.ssl_context is tls_client_context
            _, body = await get(session, server.url_for("/mine"))
            assert body == b"secure /mine"
        await leak_check(session)
    assert context_state(tls_client_context) == before
    # anysoup did not set ALPN on it (httpcore did, on the caller's context).
    assert seen.alpn == [None]


# -- bad input over TLS (invariant 5) --------------------------------------------


@pytest.mark.parametrize("ending", ["close_notify", "tcp_fin", "reset"])
async def test_truncated_body_over_tls(
    ending: str, tls_server_context, tls_ca_pem, leak_check
) -> None:
    async def truncated(conn: ServerConnection) -> None:
        await conn.stream.receive_until(b"\r\n\r\n", 65536)
        await conn.send_raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        await anyio.sleep(0.05)
        if ending == "tcp_fin":
            # Drop TCP without TLS's close_notify (a "ragged" end).
            await anyio.aclose_forcefully(conn.stream.receive_stream.transport_stream)
        elif ending == "reset":
            await conn.reset()
        # close_notify: serve_raw unwraps TLS when the handler returns

    async with serve_raw(truncated, ssl_context=tls_server_context) as server:
        async with anysoup.Session(
            tls_database=anysoup.TlsDatabase.from_pem(tls_ca_pem)
        ) as session:
            msg = anysoup.Message("GET", server.url_for("/short"))
            with anyio.fail_after(BOUND), pytest.raises(anysoup.NetworkError) as info:
                await session.send_and_read(msg)
            exc = info.value
            assert not isinstance(exc, anysoup.TlsError)
            if ending != "reset":
                assert isinstance(exc, anysoup.IncompleteBody), repr(exc)
            assert exc.message is msg
            assert "reading response body" in str(exc)
            assert label(server) in str(exc)
        await leak_check(session)
