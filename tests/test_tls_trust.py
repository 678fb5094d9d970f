"""Certificate trust: TlsCertificate, validation failures and ``accept_certificate``.

A strict message (no ``accept_certificate`` handler) gets a :class:`anysoup.TlsError`
with the one problem OpenSSL found first. A message with a handler is "relaxed":
after a failed strict handshake anysoup connects again without verification and
asks the handler, reporting every problem it can see. Relaxed connections have
their own pool key, so a strict message never rides one (the pool-poisoning
scenario of CVE-2024-35195), and each message that uses one is asked again
(DESIGN §2, §6 "TLS").
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from servers import ReceivedRequest, Server, ServerConnection, serve_http

import anysoup
from anysoup import TlsCertificate, TlsCertificateFlags

BOUND = 5.0
UTC = datetime.timezone.utc
NOW = datetime.datetime.now(UTC)

UNKNOWN_CA = TlsCertificateFlags.UNKNOWN_CA
BAD_IDENTITY = TlsCertificateFlags.BAD_IDENTITY
NOT_ACTIVATED = TlsCertificateFlags.NOT_ACTIVATED
EXPIRED = TlsCertificateFlags.EXPIRED
NO_FLAGS = TlsCertificateFlags.NO_FLAGS

#: TLS 1.3 servers send session tickets after the handshake: they must not make
#: a connection that idles before its first request look dead.
TLS_VERSIONS = pytest.mark.parametrize(
    "version",
    [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3],
    ids=["tls1.2", "tls1.3"],
)


# -- certificates ----------------------------------------------------------------


@pytest.fixture(scope="module")
def other_ca() -> trustme.CA:
    """A certificate authority nobody trusts."""
    return trustme.CA()


@pytest.fixture(scope="module")
def untrusted_leaf(other_ca: trustme.CA) -> trustme.LeafCert:
    """Right names and dates, from the unknown CA."""
    return other_ca.issue_cert("localhost", "127.0.0.1")


@pytest.fixture(scope="module")
def wrong_name_leaf(tls_ca: trustme.CA) -> trustme.LeafCert:
    """From the trusted CA, for example.org only."""
    return tls_ca.issue_cert("example.org")


@pytest.fixture(scope="module")
def expired_leaf(tls_ca: trustme.CA) -> trustme.LeafCert:
    return tls_ca.issue_cert(
        "localhost",
        "127.0.0.1",
        not_before=NOW - datetime.timedelta(days=30),
        not_after=NOW - datetime.timedelta(days=1),
    )


@pytest.fixture(scope="module")
def future_leaf(tls_ca: trustme.CA) -> trustme.LeafCert:
    return tls_ca.issue_cert(
        "localhost",
        "127.0.0.1",
        not_before=NOW + datetime.timedelta(days=1),
        not_after=NOW + datetime.timedelta(days=30),
    )


@pytest.fixture(scope="module")
def hopeless_leaf(other_ca: trustme.CA) -> trustme.LeafCert:
    """Everything wrong at once: unknown CA, expired, for another name."""
    return other_ca.issue_cert(
        "example.org",
        not_before=NOW - datetime.timedelta(days=30),
        not_after=NOW - datetime.timedelta(days=1),
    )


@pytest.fixture(scope="module")
def early_wrong_name_leaf(tls_ca: trustme.CA) -> trustme.LeafCert:
    """Trusted CA, but not yet valid and for another name."""
    return tls_ca.issue_cert(
        "example.org",
        not_before=NOW + datetime.timedelta(days=1),
        not_after=NOW + datetime.timedelta(days=30),
    )


def cert_of(leaf: trustme.LeafCert) -> TlsCertificate:
    """The leaf as anysoup sees it (no chain, no key)."""
    return TlsCertificate.from_pem(leaf.cert_chain_pems[0].bytes())


def server_context(leaf: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    return context


async def hello(conn: ServerConnection, request: ReceivedRequest) -> None:
    await conn.respond(200, [("Content-Type", "text/plain")], b"hello " + request.target.encode())


def label(server: Server) -> str:
    return f"{server.host}:{server.port}"


@dataclass
class Judge:
    """An ``accept_certificate`` handler that answers ``verdict`` and records its calls."""

    verdict: Any = True
    calls: list[tuple[anysoup.Message, TlsCertificate, TlsCertificateFlags]] = field(
        default_factory=list
    )

    def __call__(
        self, msg: anysoup.Message, cert: TlsCertificate, errors: TlsCertificateFlags
    ) -> Any:
        self.calls.append((msg, cert, errors))
        return self.verdict


def relaxed(url: str, *handlers: Callable[..., Any]) -> anysoup.Message:
    msg = anysoup.Message("GET", url)
    for handler in handlers:
        msg.accept_certificate.connect(handler)
    return msg


async def send(session: anysoup.Session, msg: anysoup.Message) -> bytes:
    with anyio.fail_after(BOUND):
        return await session.send_and_read(msg)


async def expect_tls_error(session: anysoup.Session, msg: anysoup.Message) -> anysoup.TlsError:
    with anyio.fail_after(BOUND), pytest.raises(anysoup.TlsError) as info:
        await session.send_and_read(msg)
    exc = info.value
    assert exc.message is msg
    assert msg.tls_peer_certificate_errors == exc.errors
    return exc


# -- TlsCertificate: parsing, no I/O ------------------------------------------------


@pytest.fixture(scope="module")
def rich_leaf(tls_ca: trustme.CA) -> trustme.LeafCert:
    return tls_ca.issue_cert(
        "localhost",
        "example.org",
        "127.0.0.1",
        "::1",
        common_name="anysoup test",
        organization_name="Anysoup Org",
        not_before=datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC),
        not_after=datetime.datetime(2040, 6, 7, 8, 9, 10, tzinfo=UTC),
    )


def test_certificate_fields(rich_leaf: trustme.LeafCert, tls_ca: trustme.CA) -> None:
    cert = cert_of(rich_leaf)
    assert cert.dns_names == ["localhost", "example.org"]
    assert cert.ip_addresses == [
        ipaddress.IPv4Address("127.0.0.1"),
        ipaddress.IPv6Address("::1"),
    ]
    subject = cert.subject_name.split(",")
    assert "CN=anysoup test" in subject, cert.subject_name
    assert "O=Anysoup Org" in subject, cert.subject_name
    assert cert.issuer_name == TlsCertificate.from_pem(tls_ca.cert_pem.bytes()).subject_name
    assert cert.issuer_name != cert.subject_name
    assert cert.not_valid_before == datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert cert.not_valid_after == datetime.datetime(2040, 6, 7, 8, 9, 10, tzinfo=UTC)
    assert cert.not_valid_before.utcoffset() == datetime.timedelta(0)
    assert cert.not_valid_after.utcoffset() == datetime.timedelta(0)
    assert not cert.has_private_key
    # libsoup's accessor names
    assert cert.get_subject_name() == cert.subject_name
    assert cert.get_issuer_name() == cert.issuer_name
    assert cert.get_not_valid_before() == cert.not_valid_before
    assert cert.get_not_valid_after() == cert.not_valid_after
    assert cert.get_dns_names() == cert.dns_names
    assert cert.get_ip_addresses() == cert.ip_addresses


def test_certificate_without_names(tls_ca: trustme.CA) -> None:
    """A certificate for an IP address only has no DNS names, and vice versa."""
    ip_only = cert_of(tls_ca.issue_cert("10.1.2.3"))
    assert ip_only.dns_names == []
    assert ip_only.ip_addresses == [ipaddress.IPv4Address("10.1.2.3")]
    dns_only = cert_of(tls_ca.issue_cert("*.example.org"))
    assert dns_only.dns_names == ["*.example.org"]
    assert dns_only.ip_addresses == []


def test_certificate_from_str_and_bytes(tls_leaf: trustme.LeafCert) -> None:
    pem = tls_leaf.cert_chain_pems[0].bytes()
    from_bytes = TlsCertificate.from_pem(pem)
    from_str = TlsCertificate.from_pem(pem.decode("ascii"))
    assert from_bytes == from_str
    assert from_bytes.der == from_str.der == ssl.PEM_cert_to_DER_cert(pem.decode("ascii"))
    assert from_bytes.pem == ssl.DER_cert_to_PEM_cert(from_bytes.der)
    # The PEM round-trips.
    assert TlsCertificate.from_pem(from_bytes.pem) == from_bytes
    assert not from_bytes.has_private_key
    assert not from_str.has_private_key


def test_certificate_with_key_inline(tls_leaf: trustme.LeafCert) -> None:
    """A PRIVATE KEY block in the PEM (here before the certificate) is the key."""
    with_key = TlsCertificate.from_pem(tls_leaf.private_key_and_cert_chain_pem.bytes())
    assert with_key.has_private_key
    assert with_key == cert_of(tls_leaf)  # identity is the certificate, not the key
    assert "PRIVATE KEY" not in with_key.pem
    text = tls_leaf.cert_chain_pems[0].bytes() + tls_leaf.private_key_pem.bytes()
    assert TlsCertificate.from_pem(text.decode("ascii")).has_private_key


@pytest.mark.parametrize("kind", [bytes, str])
def test_certificate_with_key_separate(tls_leaf: trustme.LeafCert, kind: type) -> None:
    cert = tls_leaf.cert_chain_pems[0].bytes()
    key = tls_leaf.private_key_pem.bytes()
    if kind is str:
        with_key = TlsCertificate.from_pem(cert.decode("ascii"), key.decode("ascii"))
    else:
        with_key = TlsCertificate.from_pem(cert, key)
    assert with_key.has_private_key
    assert with_key == cert_of(tls_leaf)


def test_certificate_chain(tls_ca: trustme.CA) -> None:
    """The first certificate is the subject; the rest are its chain."""
    intermediate = tls_ca.create_child_ca()
    leaf = intermediate.issue_cert("localhost", common_name="chained leaf")
    assert len(leaf.cert_chain_pems) == 2
    chained = TlsCertificate.from_pem(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    alone = cert_of(leaf)
    assert chained == alone
    assert chained.der == alone.der
    assert chained.pem == alone.pem  # the chain is not part of the certificate's PEM
    assert "CN=chained leaf" in chained.subject_name.split(",")
    assert (
        chained.issuer_name == TlsCertificate.from_pem(intermediate.cert_pem.bytes()).subject_name
    )
    with_key = TlsCertificate.from_pem(leaf.private_key_and_cert_chain_pem.bytes())
    assert with_key.has_private_key
    assert with_key == alone


def test_certificate_equality_and_hash(
    tls_leaf: trustme.LeafCert, untrusted_leaf: trustme.LeafCert
) -> None:
    one = cert_of(tls_leaf)
    same = TlsCertificate.from_pem(tls_leaf.cert_chain_pems[0].bytes().decode("ascii"))
    keyed = TlsCertificate.from_pem(tls_leaf.private_key_and_cert_chain_pem.bytes())
    other = cert_of(untrusted_leaf)
    assert one is not same
    assert one == same == keyed
    assert hash(one) == hash(same) == hash(keyed)
    assert one.is_same(same) and one.is_same(keyed)
    assert one != other
    assert not one.is_same(other)
    assert len({one, same, keyed, other}) == 2
    assert one != one.der
    assert one != one.pem
    assert one in {same: "pinned"}


def test_certificate_from_file(
    tls_leaf: trustme.LeafCert, tls_cert_files: Any, tmp_path: Path
) -> None:
    expected = cert_of(tls_leaf)
    bare = TlsCertificate.from_file(tls_cert_files.certfile)
    assert bare == expected
    assert not bare.has_private_key
    keyed = TlsCertificate.from_file(Path(tls_cert_files.certfile), Path(tls_cert_files.keyfile))
    assert keyed == expected
    assert keyed.has_private_key
    combined = tmp_path / "combined.pem"
    tls_leaf.private_key_and_cert_chain_pem.write_to_path(combined)
    inline = TlsCertificate.from_file(combined)
    assert inline == expected
    assert inline.has_private_key


@pytest.mark.parametrize(
    "data",
    [
        pytest.param("", id="empty"),
        pytest.param(b"", id="empty-bytes"),
        pytest.param("not a certificate", id="garbage"),
        pytest.param(b"\xff\xfe\x00garbage", id="not-ascii"),
        pytest.param(
            "-----BEGIN CERTIFICATE-----\nnot base64!!\n-----END CERTIFICATE-----\n",
            id="bad-base64",
        ),
        pytest.param(
            "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQsIG5vdCBYLjUwOQ==\n"
            "-----END CERTIFICATE-----\n",
            id="not-x509",
        ),
    ],
)
def test_certificate_bad_pem_is_value_error(data: str | bytes) -> None:
    with pytest.raises(ValueError):
        TlsCertificate.from_pem(data)


def test_certificate_bad_key_is_value_error(
    tls_leaf: trustme.LeafCert, untrusted_leaf: trustme.LeafCert
) -> None:
    cert = tls_leaf.cert_chain_pems[0].bytes()
    with pytest.raises(ValueError):  # a key, no certificate
        TlsCertificate.from_pem(tls_leaf.private_key_pem.bytes())
    with pytest.raises(ValueError):  # the key of another certificate
        TlsCertificate.from_pem(cert, untrusted_leaf.private_key_pem.bytes())
    with pytest.raises(ValueError):  # the same, inline
        TlsCertificate.from_pem(cert + untrusted_leaf.private_key_pem.bytes())
    with pytest.raises(ValueError):  # a key argument with no key in it
        TlsCertificate.from_pem(cert, cert)
    with pytest.raises(ValueError):
        TlsCertificate.from_pem(cert, "not a key")


@pytest.mark.parametrize(
    "key_format",
    [serialization.PrivateFormat.TraditionalOpenSSL, serialization.PrivateFormat.PKCS8],
    ids=["traditional", "pkcs8"],
)
def test_certificate_encrypted_key_stays_locked_without_prompting(
    tls_leaf: trustme.LeafCert, key_format: serialization.PrivateFormat
) -> None:
    """A key with a pass phrase is locked until its password: OpenSSL never prompts for one.

    (The password's paths are in ``test_tls_client_password.py``.)
    """
    key = serialization.load_pem_private_key(tls_leaf.private_key_pem.bytes(), None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        key_format,
        serialization.BestAvailableEncryption(b"secret"),
    )
    cert = tls_leaf.cert_chain_pems[0].bytes()
    for locked in (
        TlsCertificate.from_pem(cert, encrypted),
        TlsCertificate.from_pem(cert + encrypted),
    ):
        assert locked.needs_password and locked.has_private_key
        with pytest.raises(ValueError, match="encrypted"):
            locked.load_into(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))


def test_certificate_unreadable_files_are_value_errors(
    tls_cert_files: Any, tmp_path: Path
) -> None:
    with pytest.raises(ValueError):
        TlsCertificate.from_file(tmp_path / "missing.pem")
    with pytest.raises(ValueError):
        TlsCertificate.from_file(tls_cert_files.certfile, tmp_path / "missing-key.pem")
    with pytest.raises(ValueError):
        TlsCertificate.from_file(tmp_path)  # a directory
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"")
    with pytest.raises(ValueError):
        TlsCertificate.from_file(empty)


# -- strict messages: one TlsError, one flag -----------------------------------------


@pytest.mark.parametrize(
    ("leaf_name", "trust", "by_name", "flag"),
    [
        pytest.param("untrusted_leaf", "ca", False, UNKNOWN_CA, id="unknown-ca"),
        pytest.param("tls_leaf", "other", False, UNKNOWN_CA, id="database-of-another-ca"),
        pytest.param("tls_leaf", "none", False, UNKNOWN_CA, id="no-database"),
        pytest.param("wrong_name_leaf", "ca", False, BAD_IDENTITY, id="wrong-name-ip"),
        pytest.param("wrong_name_leaf", "ca", True, BAD_IDENTITY, id="wrong-name-dns"),
        pytest.param("expired_leaf", "ca", False, EXPIRED, id="expired"),
        pytest.param("future_leaf", "ca", False, NOT_ACTIVATED, id="not-yet-valid"),
    ],
)
async def test_strict_failure(
    leaf_name: str,
    trust: str,
    by_name: bool,
    flag: TlsCertificateFlags,
    request: pytest.FixtureRequest,
    tls_ca_pem: bytes,
    other_ca: trustme.CA,
    leak_check,
) -> None:
    leaf: trustme.LeafCert = request.getfixturevalue(leaf_name)
    database = {
        "ca": anysoup.TlsDatabase.from_pem(tls_ca_pem),
        "other": anysoup.TlsDatabase.from_pem(other_ca.cert_pem.bytes()),
        "none": None,
    }[trust]
    async with serve_http(hello, ssl_context=server_context(leaf)) as server:
        remote = ("127.0.0.1", server.port) if by_name else None
        host = f"localhost:{server.port}" if by_name else label(server)
        async with anysoup.Session(tls_database=database, remote_connectable=remote) as session:
            msg = anysoup.Message("GET", f"https://{host}/")
            exc = await expect_tls_error(session, msg)
            assert exc.errors == flag  # OpenSSL's first problem only
            assert host in str(exc), str(exc)
            assert session.statistics().connections == 0
        await leak_check(session)
    assert server.connections == 1  # no relaxed second try without a handler
    assert server.requests == []


# -- relaxed messages: accept_certificate -------------------------------------------


@pytest.mark.parametrize("style", ["sync", "async"])
async def test_accept_certificate_true(
    style: str, untrusted_leaf: trustme.LeafCert, tls_ca_pem: bytes, leak_check
) -> None:
    judge = Judge(True)

    async def async_judge(msg: anysoup.Message, cert: TlsCertificate, errors: Any) -> bool:
        await anyio.lowlevel.checkpoint()
        return bool(judge(msg, cert, errors))

    handler = judge if style == "sync" else async_judge
    expected = cert_of(untrusted_leaf)
    async with serve_http(hello, ssl_context=server_context(untrusted_leaf)) as server:
        async with anysoup.Session(
            tls_database=anysoup.TlsDatabase.from_pem(tls_ca_pem)
        ) as session:
            msg = relaxed(server.url_for("/ok"), handler)
            assert await send(session, msg) == b"hello /ok"
            assert msg.status == 200
            assert len(judge.calls) == 1
            called_msg, cert, errors = judge.calls[0]
            assert called_msg is msg
            assert cert == expected
            assert isinstance(cert, TlsCertificate)
            assert errors == UNKNOWN_CA
            assert msg.tls_peer_certificate == expected
            assert msg.tls_peer_certificate_errors == UNKNOWN_CA
            assert msg.tls_protocol_version in ("TLSv1.2", "TLSv1.3")
            assert msg.tls_ciphersuite_name
            assert session.statistics().idle == 1
        await leak_check(session)
    assert server.connections == 2  # the strict handshake, then the relaxed one
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("leaf_name", "expected"),
    [
        pytest.param(
            "hopeless_leaf", UNKNOWN_CA | EXPIRED | BAD_IDENTITY, id="unknown-expired-name"
        ),
        pytest.param("early_wrong_name_leaf", NOT_ACTIVATED | BAD_IDENTITY, id="early-name"),
        pytest.param("expired_leaf", EXPIRED, id="expired-only"),
    ],
)
async def test_accept_certificate_sees_every_problem(
    leaf_name: str,
    expected: TlsCertificateFlags,
    request: pytest.FixtureRequest,
    tls_ca_pem: bytes,
    leak_check,
) -> None:
    """OpenSSL stops at its first problem; the relaxed path reports them all."""
    leaf: trustme.LeafCert = request.getfixturevalue(leaf_name)
    judge = Judge(True)
    async with serve_http(hello, ssl_context=server_context(leaf)) as server:
        async with anysoup.Session(
            tls_database=anysoup.TlsDatabase.from_pem(tls_ca_pem)
        ) as session:
            msg = relaxed(server.url_for("/all"), judge)
            assert await send(session, msg) == b"hello /all"
            assert [errors for _, _, errors in judge.calls] == [expected]
            assert msg.tls_peer_certificate == cert_of(leaf)
            assert msg.tls_peer_certificate_errors == expected
        await leak_check(session)


@pytest.mark.parametrize("verdict", [False, None], ids=["false", "none"])
async def test_accept_certificate_rejected(
    verdict: Any, untrusted_leaf: trustme.LeafCert, tls_ca_pem: bytes, leak_check
) -> None:
    """False, or a handler that returns nothing, rejects the certificate."""
    judge = Judge(verdict)
    async with serve_http(hello, ssl_context=server_context(untrusted_leaf)) as server:
        async with anysoup.Session(
            tls_database=anysoup.TlsDatabase.from_pem(tls_ca_pem)
        ) as session:
            msg = relaxed(server.url, judge)
            exc = await expect_tls_error(session, msg)
            assert exc.errors == UNKNOWN_CA
            assert "no accept_certificate handler accepted it" in str(exc), str(exc)
            assert "unknown ca" in str(exc), str(exc)
            assert label(server) in str(exc), str(exc)
            assert len(judge.calls) == 1
            assert msg.tls_peer_certificate == cert_of(untrusted_leaf)
            stats = session.statistics()
            assert (stats.connections, stats.in_use) == (0, 0), stats
        await leak_check(session)
    assert server.requests == []


async def test_accept_certificate_rejected_with_every_problem(
    hopeless_leaf: trustme.LeafCert, tls_ca_pem: bytes, leak_check
) -> None:
    judge = Judge(False)
    async with serve_http(hello, ssl_context=server_context(hopeless_leaf)) as server:
        async with anysoup.Session(
            tls_database=anysoup.TlsDatabase.from_pem(tls_ca_pem)
        ) as session:
            exc = await expect_tls_error(session, relaxed(server.url, judge))
            assert exc.errors == UNKNOWN_CA | EXPIRED | BAD_IDENTITY
            assert "unknown ca" in str(exc) and "expired" in str(exc), str(exc)
        await leak_check(session)


async def test_first_true_handler_stops_emission(
    untrusted_leaf: trustme.LeafCert, tls_ca_pem: bytes, leak_check
) -> None:
    no, yes, never = Judge(False), Judge(True), Judge(True)
    async with serve_http(hello, ssl_context=server_context(untrusted_leaf)) as server:
        async with anysoup.Session(
            tls_database=anysoup.TlsDatabase.from_pem(tls_ca_pem)
        ) as session:
            msg = relaxed(server.url_for("/second"), no, yes, never)
            assert await send(session, msg) == b"hello /second"
        await leak_check(session)
    assert (len(no.calls), len(yes.calls), len(never.calls)) == (1, 1, 0)


async def test_disconnected_handler_makes_message_strict(
    untrusted_leaf: trustme.LeafCert, tls_ca_pem: bytes, leak_check
) -> None:
    """Only connected handlers count: with none left the message is strict."""
    judge = Judge(True)
    async with serve_http(hello, ssl_context=server_context(untrusted_leaf)) as server:
        async with anysoup.Session(
            tls_database=anysoup.TlsDatabase.from_pem(tls_ca_pem)
        ) as session:
            msg = anysoup.Message("GET", server.url)
            msg.accept_certificate.disconnect(msg.accept_certificate.connect(judge))
            exc = await expect_tls_error(session, msg)
            assert exc.errors == UNKNOWN_CA
            assert "no accept_certificate handler" not in str(exc)
        await leak_check(session)
    assert judge.calls == []
    assert server.connections == 1


@pytest.mark.parametrize("pin", ["served", "other"])
async def test_pinning(
    pin: str,
    untrusted_leaf: trustme.LeafCert,
    tls_leaf: trustme.LeafCert,
    tls_ca_pem: bytes,
    leak_check,
) -> None:
    """A handler that accepts exactly one certificate: ``cert == pinned``."""
    pinned = cert_of(untrusted_leaf if pin == "served" else tls_leaf)
    seen: list[TlsCertificate] = []

    def only_pinned(msg: anysoup.Message, cert: TlsCertificate, errors: Any) -> bool:
        seen.append(cert)
        return cert == pinned

    async with serve_http(hello, ssl_context=server_context(untrusted_leaf)) as server:
        async with anysoup.Session(
            tls_database=anysoup.TlsDatabase.from_pem(tls_ca_pem)
        ) as session:
            msg = relaxed(server.url_for("/pinned"), only_pinned)
            if pin == "served":
                assert await send(session, msg) == b"hello /pinned"
                assert msg.tls_peer_certificate == pinned
            else:
                exc = await expect_tls_error(session, msg)
                assert exc.errors == UNKNOWN_CA
        await leak_check(session)
    assert seen == [cert_of(untrusted_leaf)]


# -- valid certificates ----------------------------------------------------------------


async def test_valid_certificate_never_asks(
    tls_leaf: trustme.LeafCert, tls_server_context, tls_ca_pem: bytes, leak_check
) -> None:
    judge = Judge(False)  # would reject, if it were asked
    expected = cert_of(tls_leaf)
    async with serve_http(hello, ssl_context=tls_server_context) as server:
        async with anysoup.Session(
            tls_database=anysoup.TlsDatabase.from_pem(tls_ca_pem)
        ) as session:
            first = relaxed(server.url_for("/1"), judge)
            second = relaxed(server.url_for("/2"), judge)
            assert await send(session, first) == b"hello /1"
            assert await send(session, second) == b"hello /2"
            for msg in (first, second):
                assert msg.tls_peer_certificate == expected
                assert msg.tls_peer_certificate_errors == NO_FLAGS
                assert msg.tls_protocol_version in ("TLSv1.2", "TLSv1.3")
                assert msg.tls_ciphersuite_name
        await leak_check(session)
    assert judge.calls == []
    assert server.connections == 1
    assert [r.connection for r in server.requests] == [0, 0]


async def test_strict_message_has_peer_certificate_on_reused_connection(
    tls_leaf: trustme.LeafCert, tls_server_context, tls_ca_pem: bytes, leak_check
) -> None:
    expected = cert_of(tls_leaf)
    async with serve_http(hello, ssl_context=tls_server_context) as server:
        async with anysoup.Session(
            tls_database=anysoup.TlsDatabase.from_pem(tls_ca_pem)
        ) as session:
            msgs = [anysoup.Message("GET", server.url_for(f"/{i}")) for i in range(2)]
            for msg in msgs:
                await send(session, msg)
                assert msg.tls_peer_certificate == expected
                assert msg.tls_peer_certificate_errors == NO_FLAGS
                assert msg.tls_protocol_version in ("TLSv1.2", "TLSv1.3")
                assert msg.tls_ciphersuite_name
        await leak_check(session)
    assert server.connections == 1


# -- pool poisoning (CVE-2024-35195) -------------------------------------------------


async def test_strict_message_never_rides_relaxed_connection(
    untrusted_leaf: trustme.LeafCert, tls_ca_pem: bytes, leak_check
) -> None:
    """An accepted relaxed connection sits idle; a strict message must not take it."""
    async with serve_http(hello, ssl_context=server_context(untrusted_leaf)) as server:
        async with anysoup.Session(
            tls_database=anysoup.TlsDatabase.from_pem(tls_ca_pem)
        ) as session:
            assert await send(session, relaxed(server.url_for("/relaxed"), Judge(True))) == (
                b"hello /relaxed"
            )
            assert server.connections == 2
            assert session.statistics().idle == 1
            for attempt in (1, 2):
                strict = anysoup.Message("GET", server.url_for("/strict"))
                exc = await expect_tls_error(session, strict)
                assert exc.errors == UNKNOWN_CA
                assert strict.status == 0
                # A new connection attempt each time; the relaxed one still idles.
                assert server.connections == 2 + attempt
                stats = session.statistics()
                assert (stats.connections, stats.idle, stats.in_use) == (1, 1, 0), stats
        await leak_check(session)
    assert [r.target for r in server.requests] == ["/relaxed"]


async def test_strict_failure_then_relaxed_then_strict(
    untrusted_leaf: trustme.LeafCert, tls_ca_pem: bytes, leak_check
) -> None:
    async with serve_http(hello, ssl_context=server_context(untrusted_leaf)) as server:
        async with anysoup.Session(
            tls_database=anysoup.TlsDatabase.from_pem(tls_ca_pem)
        ) as session:
            exc = await expect_tls_error(session, anysoup.Message("GET", server.url_for("/a")))
            assert exc.errors == UNKNOWN_CA
            assert server.connections == 1
            judge = Judge(True)
            assert await send(session, relaxed(server.url_for("/b"), judge)) == b"hello /b"
            assert len(judge.calls) == 1
            assert server.connections == 3
            exc = await expect_tls_error(session, anysoup.Message("GET", server.url_for("/c")))
            assert exc.errors == UNKNOWN_CA
            assert server.connections == 4
        await leak_check(session)
    assert [r.target for r in server.requests] == ["/b"]


async def test_reused_relaxed_connection_asks_every_message(
    untrusted_leaf: trustme.LeafCert, tls_ca_pem: bytes, leak_check
) -> None:
    expected = cert_of(untrusted_leaf)
    async with serve_http(hello, ssl_context=server_context(untrusted_leaf)) as server:
        async with anysoup.Session(
            tls_database=anysoup.TlsDatabase.from_pem(tls_ca_pem)
        ) as session:
            first = Judge(True)
            assert await send(session, relaxed(server.url_for("/1"), first)) == b"hello /1"
            assert server.connections == 2
            # The idle relaxed connection is reused, and the new message is asked.
            again = Judge(True)
            msg = relaxed(server.url_for("/2"), again)
            assert await send(session, msg) == b"hello /2"
            assert [(m, c, e) for m, c, e in again.calls] == [(msg, expected, UNKNOWN_CA)]
            assert msg.tls_peer_certificate == expected
            assert msg.tls_peer_certificate_errors == UNKNOWN_CA
            assert server.connections == 2
            assert server.requests[1].connection == server.requests[0].connection
            # A message that refuses it fails without a new connection, and the
            # connection it refused is dropped.
            refuse = Judge(False)
            exc = await expect_tls_error(session, relaxed(server.url_for("/3"), refuse))
            assert exc.errors == UNKNOWN_CA
            assert len(refuse.calls) == 1
            assert server.connections == 2
            stats = session.statistics()
            assert (stats.connections, stats.in_use) == (0, 0), stats
        await leak_check(session)
    assert len(first.calls) == 1
    assert [r.target for r in server.requests] == ["/1", "/2"]


@TLS_VERSIONS
async def test_relaxed_preconnect_is_reused(
    version: ssl.TLSVersion, untrusted_leaf: trustme.LeafCert, tls_ca_pem: bytes, leak_check
) -> None:
    """A preconnect for a relaxed message makes a relaxed connection; using it asks."""
    context = server_context(untrusted_leaf)
    context.maximum_version = version
    handshaken = anyio.Event()

    async def on_connect(conn: ServerConnection) -> None:
        # The relaxed connection's server handshake is over (the strict one failed):
        # with TLS 1.3, its session tickets are on their way.
        if conn.index == 1:
            handshaken.set()

    async with serve_http(hello, ssl_context=context, on_connect=on_connect) as server:
        async with anysoup.Session(
            tls_database=anysoup.TlsDatabase.from_pem(tls_ca_pem)
        ) as session:
            early = Judge(True)
            with anyio.fail_after(BOUND):
                await session.preconnect(relaxed(server.url, early))
                await handshaken.wait()
            assert early.calls == []  # nothing was sent: nobody to ask yet
            assert session.statistics().idle == 1
            assert server.connections == 2
            judge = Judge(True)
            msg = relaxed(server.url_for("/pre"), judge)
            assert await send(session, msg) == b"hello /pre"
            assert [errors for _, _, errors in judge.calls] == [UNKNOWN_CA]
            assert msg.tls_peer_certificate == cert_of(untrusted_leaf)
            assert server.connections == 2
        await leak_check(session)


# -- cancellation -----------------------------------------------------------------------


async def test_cancelled_while_handler_runs(
    untrusted_leaf: trustme.LeafCert, tls_ca_pem: bytes, leak_check
) -> None:
    scope = anyio.CancelScope()

    async def stall(msg: anysoup.Message, cert: TlsCertificate, errors: Any) -> bool:
        scope.cancel()
        await anyio.sleep_forever()
        return True  # pragma: no cover

    async with serve_http(hello, ssl_context=server_context(untrusted_leaf)) as server:
        async with anysoup.Session(
            tls_database=anysoup.TlsDatabase.from_pem(tls_ca_pem)
        ) as session:
            with anyio.fail_after(BOUND):
                with scope:
                    await session.send_and_read(relaxed(server.url_for("/stall"), stall))
            assert scope.cancelled_caught
            stats = session.statistics()
            assert (stats.in_use, stats.connecting, stats.waiting) == (0, 0, 0), stats
            judge = Judge(True)
            assert await send(session, relaxed(server.url_for("/next"), judge)) == b"hello /next"
            assert len(judge.calls) == 1
        await leak_check(session)
    assert [r.target for r in server.requests] == ["/next"]


@dataclass
class GatedProxy:
    """A TCP relay that holds chosen connections until :attr:`gate` is set."""

    port: int
    accepted: int = 0
    held: anyio.Event = field(default_factory=anyio.Event)
    gate: anyio.Event = field(default_factory=anyio.Event)


@asynccontextmanager
async def gated_proxy(upstream: int, hold: set[int]) -> AsyncIterator[GatedProxy]:
    """Relay 127.0.0.1:<port> to ``upstream``; connection ``i in hold`` waits for the gate."""
    multi = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    async with multi, anyio.create_task_group() as tg:
        (listener,) = multi.listeners
        proxy = GatedProxy(listener.extra(anyio.abc.SocketAttribute.local_port))

        async def relay(client: anyio.abc.SocketStream, index: int) -> None:
            async with client:
                if index in hold:
                    proxy.held.set()
                    await proxy.gate.wait()
                server = await anyio.connect_tcp("127.0.0.1", upstream)
                async with server, anyio.create_task_group() as pipes:

                    async def pipe(
                        source: anyio.abc.SocketStream, sink: anyio.abc.SocketStream
                    ) -> None:
                        try:
                            async for chunk in source:
                                await sink.send(chunk)
                        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                            pass
                        pipes.cancel_scope.cancel()

                    pipes.start_soon(pipe, client, server)
                    pipes.start_soon(pipe, server, client)

        async def accept_forever() -> None:
            while True:
                client = await listener.accept()
                proxy.accepted += 1
                tg.start_soon(relay, client, proxy.accepted - 1)

        tg.start_soon(accept_forever)
        try:
            yield proxy
        finally:
            tg.cancel_scope.cancel()


@TLS_VERSIONS
async def test_cancelled_during_relaxed_reconnect(
    version: ssl.TLSVersion, untrusted_leaf: trustme.LeafCert, tls_ca_pem: bytes, leak_check
) -> None:
    """The reconnect goes with its cancelled message; the next one connects anew and is asked.

    Nobody else could use the connection, so its attempt is cancelled at once
    (issue 15 item 5) rather than left to finish and idle.
    """
    context = server_context(untrusted_leaf)
    context.maximum_version = version
    # Connection 0 is the strict handshake; 1, the relaxed reconnect, is held.
    async with (
        serve_http(hello, ssl_context=context) as server,
        gated_proxy(server.port, hold={1}) as proxy,
    ):
        url = f"https://127.0.0.1:{proxy.port}"
        async with anysoup.Session(
            tls_database=anysoup.TlsDatabase.from_pem(tls_ca_pem)
        ) as session:
            never = Judge(True)
            with anyio.fail_after(BOUND):
                with anyio.CancelScope() as scope:
                    async with anyio.create_task_group() as tg:

                        async def cancel_when_held() -> None:
                            await proxy.held.wait()
                            scope.cancel()

                        tg.start_soon(cancel_when_held)
                        await session.send_and_read(relaxed(url + "/held", never))
                assert scope.cancelled_caught
                assert never.calls == []
                assert session.statistics() == anysoup.PoolStatistics(0, 0, 0, 0, 0)
                proxy.gate.set()
            judge = Judge(True)
            assert await send(session, relaxed(url + "/after", judge)) == b"hello /after"
            assert [errors for _, _, errors in judge.calls] == [UNKNOWN_CA]
            assert proxy.accepted == 4  # the cancelled pair, then a strict and a relaxed one
            # And a strict message still does not ride it.
            exc = await expect_tls_error(session, anysoup.Message("GET", url + "/strict"))
            assert exc.errors == UNKNOWN_CA
            assert proxy.accepted == 5
        await leak_check(session)
    assert [r.target for r in server.requests] == ["/after"]


async def test_host_with_a_trailing_dot_matches_its_certificate(
    tls_server_context: Any, tls_ca_pem: bytes, leak_check: Any
) -> None:
    """``localhost.`` is ``localhost``: the name sent and checked has no final dot."""

    async def hello(conn: ServerConnection, req: ReceivedRequest) -> None:
        await conn.respond(200, [], b"dotted")

    async with serve_http(hello, ssl_context=tls_server_context) as server:
        database = anysoup.TlsDatabase.from_pem(tls_ca_pem)
        async with anysoup.Session(tls_database=database) as session:
            msg = anysoup.Message("GET", f"https://localhost.:{server.port}/")
            with anyio.fail_after(5):
                assert await session.send_and_read(msg) == b"dotted"
        await leak_check(session)
