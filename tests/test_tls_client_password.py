"""Encrypted client keys: ``TlsCertificate(password=...)``, ``unlock``,
``TlsInteraction.ask_password`` and the message's ``request_certificate_password``
(libsoup's signal of that name, for keys behind a password).

The server is :func:`tls_server.serve_tls` demanding a client certificate,
as in ``test_tls_client_cert.py``; it reports the subject it saw.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable

import anyio
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from tls_server import client_auth, serve_tls

import anysoup
from anysoup import (
    Message,
    Session,
    TlsCertificate,
    TlsInteraction,
    TlsPassword,
    TlsPasswordFlags,
)

LeakCheck = Callable[[Session], Awaitable[None]]
SECRET = "s3cret pass"


@pytest.fixture(scope="module")
def carol_leaf(tls_ca: trustme.CA) -> trustme.LeafCert:
    return tls_ca.issue_cert("carol@example.org", common_name="carol")


def encrypted_pem(leaf: trustme.LeafCert, *, legacy: bool = False) -> tuple[bytes, bytes]:
    """The leaf's chain and its key encrypted with SECRET (PKCS#8, or OpenSSL's old form)."""
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    if legacy:
        fmt = serialization.PrivateFormat.TraditionalOpenSSL
    else:
        fmt = serialization.PrivateFormat.PKCS8
    encrypted = key.private_bytes(
        serialization.Encoding.PEM, fmt, serialization.BestAvailableEncryption(SECRET.encode())
    )
    chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    return chain, encrypted


@pytest.fixture
def database(tls_ca_pem: bytes) -> anysoup.TlsDatabase:
    return anysoup.TlsDatabase.from_pem(tls_ca_pem)


@pytest.fixture
def server_context(tls_server_context: ssl.SSLContext, tls_ca: trustme.CA) -> ssl.SSLContext:
    tls_ca.configure_trust(tls_server_context)
    return tls_server_context


# -- the certificate ---------------------------------------------------------------


@pytest.mark.parametrize("legacy", [False, True], ids=["pkcs8", "openssl-legacy"])
def test_an_encrypted_key_is_locked_until_its_password(
    carol_leaf: trustme.LeafCert, legacy: bool
) -> None:
    chain, key = encrypted_pem(carol_leaf, legacy=legacy)
    cert = TlsCertificate.from_pem(chain, key)
    assert cert.has_private_key and cert.needs_password
    with pytest.raises(ValueError, match="encrypted"):
        cert.load_into(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    with pytest.raises(ValueError, match="does not decrypt"):
        cert.unlock("wrong")
    assert cert.needs_password
    cert.unlock(SECRET)
    assert not cert.needs_password
    cert.load_into(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    opened = TlsCertificate.from_pem(chain, key, password=SECRET.encode())
    assert not opened.needs_password and opened == cert
    with pytest.raises(ValueError, match="does not decrypt"):
        TlsCertificate.from_pem(chain, key, password="wrong")


def test_password_object() -> None:
    password = TlsPassword("the key", TlsPasswordFlags.RETRY)
    assert (password.get_description(), password.get_flags()) == ("the key", password.flags)
    assert password.get_value() is None
    password.set_value("é")
    assert password.value == "é".encode()
    with pytest.raises(TypeError):
        password.value = 5  # type: ignore[assignment]
    assert "given" in repr(password) and "é" not in repr(password)


# -- asked for by a request ------------------------------------------------------------


async def test_request_certificate_password_handler_unlocks_the_key_once(
    carol_leaf: trustme.LeafCert, server_context, database, leak_check: LeakCheck
) -> None:
    cert = TlsCertificate.from_pem(*encrypted_pem(carol_leaf))
    asked: list[TlsPasswordFlags] = []

    async def give(msg: Message, password: TlsPassword) -> bool:
        await anyio.lowlevel.checkpoint()
        asked.append(password.flags)
        assert "carol" in password.description
        password.set_value("wrong" if len(asked) == 1 else SECRET)
        return True

    with serve_tls(client_auth(server_context)) as server:
        async with Session(tls_database=database) as session:
            for path in ("/a", "/b"):
                msg = Message("GET", server.url_for(path))
                msg.set_tls_client_certificate(cert)
                msg.request_certificate_password.connect(give)
                with anyio.fail_after(5):
                    body = await session.send_and_read(msg)
                assert msg.status == 200 and body.endswith(b"subject=carol")
        await leak_check(session)
    assert asked == [TlsPasswordFlags.NONE, TlsPasswordFlags.RETRY]  # not asked for /b


async def test_the_interaction_is_asked_first(
    carol_leaf: trustme.LeafCert, server_context, database, leak_check: LeakCheck
) -> None:
    class Prompt(TlsInteraction):
        async def ask_password(self, password: TlsPassword) -> bool:
            password.value = SECRET
            return True

    cert = TlsCertificate.from_pem(*encrypted_pem(carol_leaf))
    with serve_tls(client_auth(server_context)) as server:
        async with Session(tls_database=database, tls_interaction=Prompt(cert)) as session:
            msg = Message("GET", server.url_for("/"))
            msg.request_certificate_password.connect(lambda *args: pytest.fail("asked"))
            with anyio.fail_after(5):
                assert (await session.send_and_read(msg)).endswith(b"subject=carol")
        await leak_check(session)


@pytest.mark.parametrize("answer", ["none", "wrong"])
async def test_no_password_or_only_wrong_ones_is_a_tls_error(
    answer: str, carol_leaf: trustme.LeafCert, server_context, database, leak_check: LeakCheck
) -> None:
    cert = TlsCertificate.from_pem(*encrypted_pem(carol_leaf))
    asked: list[TlsPasswordFlags] = []

    def handler(msg: Message, password: TlsPassword) -> bool:
        asked.append(password.flags)
        if answer == "none":
            return False
        password.set_value("wrong")
        return True

    with serve_tls(client_auth(server_context)) as server:
        async with Session(tls_database=database) as session:
            msg = Message("GET", server.url_for("/"))
            msg.set_tls_client_certificate(cert)
            msg.request_certificate_password.connect(handler)
            with anyio.fail_after(5), pytest.raises(anysoup.TlsError) as caught:
                await session.send_and_read(msg)
            assert caught.value.message is msg
            assert ("no password" if answer == "none" else "3 wrong passwords") in str(
                caught.value
            )
            assert session.statistics().connections == 0
        await leak_check(session)
    assert server.served == []  # never connected with a locked key
    if answer == "wrong":
        flags = TlsPasswordFlags
        final = flags.RETRY | flags.MANY_TRIES | flags.FINAL_TRY
        assert asked == [flags.NONE, flags.RETRY, final]
    assert cert.needs_password
