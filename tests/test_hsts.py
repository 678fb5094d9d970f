"""HSTS (RFC 6797): HSTSPolicy, HSTSEnforcer, HSTSEnforcerDB.

Policy tables first (header grammar, host normalisation, matching), then
round trips over trustme TLS on both backends: learning, upgrading http://
before any connection, the no-override rule for known hosts, redirects, and
the SQLite store across two sessions.
"""

from __future__ import annotations

import datetime
import sqlite3
import ssl
from pathlib import Path
from typing import Any

import anyio
import pytest
import trustme
from servers import ReceivedRequest, ServerConnection, serve_http

import anysoup
from anysoup import TlsCertificateFlags
from anysoup._features.hsts.enforcer import HSTSEnforcer, HSTSEnforcerDB, HSTSPolicy
from anysoup._features.hsts.hsts_policy import (
    MAX_AGE_LIMIT,
    normalize_domain,
    parse_sts,
    upgrade_uri,
)

BOUND = 5.0
UTC = datetime.timezone.utc
STS = "Strict-Transport-Security"


# -- the header grammar (RFC 6797 §6.1) --------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("max-age=31536000", (31536000, False)),
        ("max-age=31536000; includeSubDomains", (31536000, True)),
        ('max-age="100"; includeSubDomains', (100, True)),  # §6.2: quoted values
        ("MAX-AGE=5;INCLUDESUBDOMAINS", (5, True)),  # names are case-insensitive
        ("includeSubDomains; max-age=5", (5, True)),  # order doesn't matter
        (" ; max-age = 7 ; ", (7, False)),  # empty directives, whitespace
        ('max-age=5; foo="a;b"; bar; baz=qux', (5, False)),  # unknown ones ignored
        ("max-age=0", (0, False)),
        ("max-age=000120", (120, False)),
        ("max-age=" + "9" * 6000, (MAX_AGE_LIMIT, False)),  # clamped, not int()-ed
        (f"max-age={MAX_AGE_LIMIT + 1}", (MAX_AGE_LIMIT, False)),
    ],
)
def test_parse_valid(value: str, expected: tuple[int, bool]) -> None:
    assert parse_sts(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "includeSubDomains",  # max-age is required
        "max-age",
        "max-age=",
        "max-age=abc",
        "max-age=-1",
        "max-age=1.5",
        "max-age=\u0665",  # a non-ASCII digit
        'max-age="5',  # unterminated quote
        "max-age=5 x",
        "max-age=5, max-age=6",
        "max-age=5; max-age=6",  # §6.1 rule 2: duplicates void the header
        "max-age=5; includeSubDomains; includesubdomains",
        "max-age=5; includeSubDomains=1",  # §6.1.2: valueless
        'max-age=5; includeSubDomains=""',
        "max-age=5; bad name=1",
        "max-age=5; =1",
    ],
)
def test_parse_invalid(value: str) -> None:
    assert parse_sts(value) is None


# -- host names ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("example.com", "example.com"),
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),  # curl CVE-2022-30115
        ("EXAMPLE.com.", "example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.example.", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("example\u3002com", "example.com"),  # an IDN full stop (curl CVE-2022-42916)
        ("\uff45xample.com", "example.com"),  # full-width letters
        ("127.0.0.1", None),
        ("127.0.0.1.", None),
        ("127.1", None),  # inet_aton shorthand
        ("0x7f.0.0.1", None),
        ("2130706433", None),
        ("::1", None),
        ("[::1]", None),
        ("fe80::1%eth0", None),
        ("", None),
        ("a..b", None),
        (".example.com", None),
        ("exa mple.com", None),
    ],
)
def test_normalize_domain(domain: str, expected: str | None) -> None:
    assert normalize_domain(domain) == expected


def test_normalize_matches_the_connection() -> None:
    """The key is what yarl's raw_host (the connection's host) gives, minus the dot."""
    for text in ("http://Bücher.Example./", "http://EXAMPLE\u3002com/"):
        raw = anysoup.Message("GET", text).uri.raw_host
        assert raw is not None
        assert normalize_domain(raw) == raw.rstrip(".")


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("http://example.com/p?q#f", "https://example.com/p?q#f"),
        ("http://example.com:80/", "https://example.com/"),
        ("http://example.com:8080/", "https://example.com:8080/"),
        ("http://example.com:443/", "https://example.com/"),
        ("http://u:p@example.com/", "https://u:p@example.com/"),
        ("ws://example.com/chat", "wss://example.com/chat"),
        ("ws://example.com:80/chat", "wss://example.com/chat"),
        ("ws://example.com:9000/chat", "wss://example.com:9000/chat"),
    ],
)
def test_upgrade_uri(before: str, after: str) -> None:
    new = upgrade_uri(anysoup.Message("GET", before).uri)
    assert str(new) == after
    assert new.port == (9000 if ":9000" in after else 8080 if ":8080" in after else 443)


# -- HSTSPolicy ------------------------------------------------------------------


def test_policy_basics() -> None:
    policy = HSTSPolicy("Example.COM.", 3600, True)
    assert policy.domain == policy.get_domain() == "example.com"
    assert policy.max_age == policy.get_max_age() == 3600
    assert policy.include_subdomains and policy.includes_subdomains()
    assert policy.expires is not None and policy.expires.tzinfo is not None
    now = datetime.datetime.now(UTC)
    assert abs((policy.expires - now).total_seconds() - 3600) < 5
    assert not policy.is_expired() and not policy.is_session_policy()
    assert HSTSPolicy.new("example.com", 3600, True).domain == "example.com"
    assert HSTSPolicy("example.com", 0).is_expired()  # max-age=0: gone at once
    assert HSTSPolicy("example.com", 10**30).max_age == MAX_AGE_LIMIT
    session = HSTSPolicy.new_session_policy("example.org", True)
    assert session.is_session_policy() and not session.is_expired()
    assert session.expires is None
    past = HSTSPolicy.new_full("example.org", 60, now - datetime.timedelta(seconds=5))
    assert past.is_expired()
    assert past.expires is not None and past.expires.microsecond == 0
    assert HSTSPolicy.new_full("a.example", 0, None) == HSTSPolicy.new_session_policy("A.example")
    with pytest.raises(AttributeError):
        policy.domain = "other"  # type: ignore[misc]


@pytest.mark.parametrize("domain", ["127.0.0.1", "::1", "[::1]", "", "a..b"])
def test_policy_refuses_ip_and_garbage(domain: str) -> None:
    with pytest.raises(ValueError, match="domain"):
        HSTSPolicy(domain, 60)
    with pytest.raises(ValueError, match="domain"):
        HSTSPolicy.new_session_policy(domain)


def test_policy_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_age"):
        HSTSPolicy("example.com", -1)
    with pytest.raises(ValueError, match="expires"):
        HSTSPolicy.new_full("example.com", 1, datetime.datetime(2030, 1, 1))
    with pytest.raises(TypeError):
        HSTSPolicy(b"example.com", 1)  # type: ignore[arg-type]


def _answered(uri: str, *values: str) -> anysoup.Message:
    msg = anysoup.Message("GET", uri)
    for value in values:
        msg.response_headers.append(STS, value)
    return msg


def test_policy_from_response() -> None:
    policy = HSTSPolicy.new_from_response(_answered("https://WWW.Example.com./", "max-age=60"))
    assert policy is not None and policy.domain == "www.example.com" and policy.max_age == 60
    # RFC 6797 §8.1: only the first header is processed, valid or not.
    first_bad = _answered("https://example.com/", "max-age=x", "max-age=60")
    assert HSTSPolicy.new_from_response(first_bad) is None
    first_good = _answered("https://example.com/", "max-age=60", "max-age=5; includeSubDomains")
    policy = HSTSPolicy.new_from_response(first_good)
    assert policy is not None and (policy.max_age, policy.include_subdomains) == (60, False)
    assert HSTSPolicy.new_from_response(_answered("https://127.0.0.1/", "max-age=60")) is None
    assert HSTSPolicy.new_from_response(_answered("https://[::1]/", "max-age=60")) is None
    assert HSTSPolicy.new_from_response(_answered("https://example.com/")) is None


# -- HSTSEnforcer: the policy tables -------------------------------------------------


def test_enforcer_tables_and_changed_signal() -> None:
    enforcer = HSTSEnforcer()
    assert not enforcer.is_persistent()
    events: list[tuple[Any, Any, Any]] = []
    enforcer.changed.connect(lambda *args: events.append(args))
    first = HSTSPolicy("example.com", 60)
    enforcer.set_policy(first)
    assert events == [(enforcer, None, first)]
    enforcer.set_policy(first)  # the same policy: no change
    assert len(events) == 1
    second = HSTSPolicy("example.com", 120, True)
    enforcer.set_policy(second)
    assert events[-1] == (enforcer, first, second)
    enforcer.set_session_policy("Session.Example.", True)
    assert events[-1][1] is None and events[-1][2].domain == "session.example"
    assert enforcer.has_valid_policy("EXAMPLE.com.")
    assert enforcer.has_valid_policy("session.example")
    assert not enforcer.has_valid_policy("sub.example.com")  # exact match only (libsoup)
    assert not enforcer.has_valid_policy("127.0.0.1")
    assert enforcer.get_domains(False) == ["example.com"]
    assert sorted(enforcer.get_domains(True)) == ["example.com", "session.example"]
    assert enforcer.get_policies(False) == [second]
    # An expired policy removes the host policy; session policies stay.
    enforcer.set_policy(HSTSPolicy("example.com", 0))
    assert events[-1] == (enforcer, second, None)
    assert not enforcer.has_valid_policy("example.com")
    enforcer.set_policy(HSTSPolicy("session.example", 0))
    assert enforcer.has_valid_policy("session.example")
    with pytest.raises(TypeError):
        enforcer.set_policy("example.com")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="domain"):
        enforcer.set_session_policy("10.0.0.1")
    assert "1 session policies" in repr(enforcer)


def test_expired_policies_are_dropped() -> None:
    enforcer = HSTSEnforcer()
    removed: list[Any] = []
    enforcer.changed.connect(lambda _e, old, new: removed.append(old) if new is None else None)
    stale = HSTSPolicy.new_full(
        "old.example", 60, datetime.datetime.now(UTC) - datetime.timedelta(seconds=1)
    )
    enforcer._host_policies["old.example"] = stale  # as if it had expired in place
    assert not enforcer.has_valid_policy("old.example")
    assert removed == [stale]
    assert enforcer.get_domains(True) == []


@pytest.mark.parametrize(
    ("policies", "host", "known"),
    [
        ([("example.com", False)], "example.com", True),
        ([("example.com", False)], "www.example.com", False),
        ([("example.com", True)], "www.example.com", True),
        ([("example.com", True)], "a.b.example.com", True),
        ([("example.com", True)], "notexample.com", False),
        ([("example.com", True)], "com", False),
        ([("www.example.com", True)], "example.com", False),
        ([("example.com", True)], "WWW.EXAMPLE.COM.", True),
        ([("xn--bcher-kva.example", True)], "www.bücher.example", True),
        ([("bücher.example", False)], "xn--bcher-kva.example", True),
        ([("dev", True)], "app.dev", True),  # a TLD-wide preload-style policy
    ],
)
@pytest.mark.parametrize("kind", ["host", "session"])
def test_known_host_matching(
    policies: list[tuple[str, bool]], host: str, known: bool, kind: str
) -> None:
    enforcer = HSTSEnforcer()
    for domain, subdomains in policies:
        if kind == "host":
            enforcer.set_policy(HSTSPolicy(domain, 3600, subdomains))
        else:
            enforcer.set_session_policy(domain, subdomains)
    key = normalize_domain(host)
    assert key is not None
    assert enforcer._is_known_host(key) is known


def test_congruent_match_without_subdomains_does_not_hide_a_parent() -> None:
    """§8.2: a superdomain's includeSubDomains still covers a host with its own policy."""
    enforcer = HSTSEnforcer()
    enforcer.set_policy(HSTSPolicy("example.com", 3600, True))
    enforcer.set_policy(HSTSPolicy("www.example.com", 3600, False))
    assert enforcer._is_known_host("a.www.example.com")
    expired_parent = HSTSEnforcer()
    past = datetime.datetime.now(UTC) - datetime.timedelta(seconds=1)
    expired_parent._host_policies["example.com"] = HSTSPolicy.new_full(
        "example.com", 1, past, True
    )
    assert not expired_parent._is_known_host("www.example.com")


# -- over the network: both backends, trustme TLS -------------------------------


Routes = dict[str, tuple[int, list[tuple[str, str]]]]


def _sts_handler(header: str | None = "max-age=3600", routes: Routes | None = None) -> Any:
    async def handler(conn: ServerConnection, request: ReceivedRequest) -> None:
        if routes and request.target in routes:
            status, headers = routes[request.target]
            await conn.respond(status, headers, b"")
            return
        headers = [("Content-Type", "text/plain")]
        if header is not None:
            headers.append((STS, header))
        await conn.respond(200, headers, b"hello " + request.target.encode())

    return handler


def _database(tls_ca_pem: bytes) -> anysoup.TlsDatabase:
    return anysoup.TlsDatabase.from_pem(tls_ca_pem)


async def _get(session: anysoup.Session, msg: anysoup.Message) -> bytes:
    with anyio.fail_after(BOUND):
        return await session.send_and_read(msg)


async def test_learn_then_upgrade_explicit_port(
    tls_server_context: ssl.SSLContext, tls_ca_pem: bytes, leak_check: Any
) -> None:
    """A policy learned over https; then http://localhost:<port>/ goes over TLS.

    The server speaks only TLS: a plain-text request would fail there, and
    every connection it accepted carried a request.
    """
    enforcer = HSTSEnforcer()
    async with serve_http(_sts_handler(), ssl_context=tls_server_context) as server:
        async with anysoup.Session(
            tls_database=_database(tls_ca_pem), features=[enforcer]
        ) as session:
            first = anysoup.Message("GET", f"https://localhost:{server.port}/learn")
            assert await _get(session, first) == b"hello /learn"
            assert enforcer.has_valid_policy("localhost")
            assert enforcer.get_domains(False) == ["localhost"]
            enforced: list[anysoup.Message] = []
            msg = anysoup.Message("GET", f"http://localhost:{server.port}/plain")
            msg.hsts_enforced.connect(enforced.append)
            assert await _get(session, msg) == b"hello /plain"
            assert enforced == [msg]  # once
            assert str(msg.uri) == f"https://localhost:{server.port}/plain"
            assert msg.tls_protocol_version is not None
        await leak_check(session)
    assert [r.target for r in server.requests] == ["/learn", "/plain"]
    assert server.connections == 1  # the second request reused the TLS connection


async def test_upgrade_default_port_before_connecting(
    tls_server_context: ssl.SSLContext, tls_ca_pem: bytes, leak_check: Any
) -> None:
    """http://localhost/ (port 80) becomes https://localhost/ (443); no port-80 connection."""
    enforcer = HSTSEnforcer()
    enforcer.set_session_policy("localhost")
    calls: list[str] = []

    async def on_enforced(msg: anysoup.Message) -> None:  # async handlers are awaited
        await anyio.lowlevel.checkpoint()
        calls.append(str(msg.uri))

    async with serve_http(_sts_handler(None), ssl_context=tls_server_context) as server:
        # Every connection goes to the TLS server, whatever the URI's port.
        async with anysoup.Session(
            tls_database=_database(tls_ca_pem),
            remote_connectable=("127.0.0.1", server.port),
            features=[enforcer],
        ) as session:
            for uri in ("http://localhost/", "http://LOCALHOST:80/x"):
                msg = anysoup.Message("GET", uri)
                msg.hsts_enforced.connect(on_enforced)
                await _get(session, msg)
                assert msg.uri.scheme == "https" and msg.uri.port == 443
                assert msg.uri.explicit_port is None
        await leak_check(session)
    assert calls == ["https://localhost/", "https://localhost/x"]
    assert len(server.requests) == 2  # both arrived over TLS


async def test_upgrade_happens_before_any_connection(leak_check: Any) -> None:
    """A plain server counting connections sees none for a known host."""

    async def handler(conn: ServerConnection, request: ReceivedRequest) -> None:
        await conn.respond(200, [], b"plain")

    enforcer = HSTSEnforcer()
    enforcer.set_session_policy("localhost")
    async with serve_http(handler) as plain:
        async with anysoup.Session(features=[enforcer]) as session:
            # Nothing listens for TLS on localhost:1: the upgraded request fails.
            msg = anysoup.Message("GET", "http://localhost:1/")
            with anyio.fail_after(BOUND), pytest.raises(anysoup.Error):
                await session.send_and_read(msg)
            assert str(msg.uri) == "https://localhost:1/"
            # An IP literal has no policy: it stays http and reaches the server.
            ip_msg = anysoup.Message("GET", plain.url_for("/"))
            assert await _get(session, ip_msg) == b"plain"
            assert ip_msg.uri.scheme == "http"
        await leak_check(session)
    assert plain.connections == 1


async def test_no_learning_over_http(leak_check: Any) -> None:
    enforcer = HSTSEnforcer()
    async with serve_http(_sts_handler()) as server:
        async with anysoup.Session(
            remote_connectable=("127.0.0.1", server.port), features=[enforcer]
        ) as session:
            msg = anysoup.Message("GET", "http://localhost/")
            await _get(session, msg)
            assert msg.response_headers.get_one(STS) == "max-age=3600"
            assert enforcer.get_domains(True) == []
        await leak_check(session)


async def test_no_learning_from_an_ip_host(
    tls_server_context: ssl.SSLContext, tls_ca_pem: bytes, leak_check: Any
) -> None:
    enforcer = HSTSEnforcer()
    async with serve_http(_sts_handler(), ssl_context=tls_server_context) as server:
        async with anysoup.Session(
            tls_database=_database(tls_ca_pem), features=[enforcer]
        ) as session:
            await _get(session, anysoup.Message("GET", server.url_for("/")))  # 127.0.0.1
            assert enforcer.get_domains(True) == []
        await leak_check(session)


@pytest.fixture(scope="module")
def untrusted_context() -> ssl.SSLContext:
    """A server context whose certificate comes from a CA nobody trusts."""
    leaf = trustme.CA().issue_cert("localhost", "127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    return context


async def test_no_learning_from_relaxed_connection(
    untrusted_context: ssl.SSLContext, tls_ca_pem: bytes, leak_check: Any
) -> None:
    enforcer = HSTSEnforcer()
    async with serve_http(_sts_handler(), ssl_context=untrusted_context) as server:
        async with anysoup.Session(
            tls_database=_database(tls_ca_pem),
            remote_connectable=("127.0.0.1", server.port),
            features=[enforcer],
        ) as session:
            msg = anysoup.Message("GET", "https://localhost/")
            msg.accept_certificate.connect(lambda *_: True)
            assert await _get(session, msg) == b"hello /"
            assert msg.tls_peer_certificate_errors == TlsCertificateFlags.UNKNOWN_CA
            assert enforcer.get_domains(True) == []
        await leak_check(session)


@pytest.mark.parametrize("how", ["learned", "session"])
async def test_known_host_bad_certificate_has_no_override(
    how: str,
    tls_server_context: ssl.SSLContext,
    untrusted_context: ssl.SSLContext,
    tls_ca_pem: bytes,
    leak_check: Any,
) -> None:
    """RFC 6797 §12.1: accept_certificate is never asked for a known host."""
    enforcer = HSTSEnforcer()
    asked: list[Any] = []
    async with (
        serve_http(_sts_handler(), ssl_context=tls_server_context) as good,
        serve_http(_sts_handler(), ssl_context=untrusted_context) as bad,
    ):
        async with anysoup.Session(
            tls_database=_database(tls_ca_pem), features=[enforcer]
        ) as session:
            if how == "learned":
                await _get(session, anysoup.Message("GET", f"https://localhost:{good.port}/"))
            else:
                enforcer.set_session_policy("localhost")
            assert enforcer.has_valid_policy("localhost")
            for uri in (f"https://localhost:{bad.port}/", f"http://localhost:{bad.port}/"):
                msg = anysoup.Message("GET", uri)
                msg.accept_certificate.connect(lambda *args: asked.append(args) or True)
                with anyio.fail_after(BOUND), pytest.raises(anysoup.TlsError) as info:
                    await session.send_and_read(msg)
                assert info.value.errors == TlsCertificateFlags.UNKNOWN_CA
                assert msg.uri.scheme == "https"
        await leak_check(session)
    assert asked == []
    assert bad.requests == []


async def test_max_age_zero_removes(
    tls_server_context: ssl.SSLContext, tls_ca_pem: bytes, leak_check: Any
) -> None:
    routes = {"/clear": (200, [(STS, "max-age=0")])}
    enforcer = HSTSEnforcer()
    changes: list[tuple[Any, Any]] = []
    enforcer.changed.connect(lambda _e, old, new: changes.append((old, new)))
    async with serve_http(
        _sts_handler("max-age=600; includeSubDomains", routes), ssl_context=tls_server_context
    ) as server:
        async with anysoup.Session(
            tls_database=_database(tls_ca_pem),
            remote_connectable=("127.0.0.1", server.port),
            features=[enforcer],
        ) as session:
            await _get(session, anysoup.Message("GET", "https://localhost/"))
            (policy,) = enforcer.get_policies(False)
            assert (policy.domain, policy.max_age, policy.include_subdomains) == (
                "localhost",
                600,
                True,
            )
            await _get(session, anysoup.Message("GET", "https://localhost/clear"))
            assert not enforcer.has_valid_policy("localhost")
            assert changes == [(None, policy), (policy, None)]
            msg = anysoup.Message("GET", "http://localhost/")
            with anyio.fail_after(BOUND), pytest.raises(anysoup.Error):
                await session.send_and_read(msg)  # plain text to a TLS server
            assert msg.uri.scheme == "http"
        await leak_check(session)


async def test_redirect_to_http_is_upgraded_on_the_hop(
    tls_server_context: ssl.SSLContext, tls_ca_pem: bytes, leak_check: Any
) -> None:
    enforcer = HSTSEnforcer()
    async with serve_http(_redirecting_handler(), ssl_context=tls_server_context) as server:
        async with anysoup.Session(
            tls_database=_database(tls_ca_pem), features=[enforcer]
        ) as session:
            enforced: list[str] = []
            msg = anysoup.Message("GET", f"https://localhost:{server.port}/start")
            msg.hsts_enforced.connect(lambda m: enforced.append(str(m.uri)))
            assert await _get(session, msg) == b"final"
            assert str(msg.uri) == f"https://localhost:{server.port}/final"
            assert enforced == [f"https://localhost:{server.port}/final"]
        await leak_check(session)
    assert [r.target for r in server.requests] == ["/start", "/final"]


def _redirecting_handler() -> Any:
    async def handler(conn: ServerConnection, request: ReceivedRequest) -> None:
        if request.target == "/start":
            host = dict(request.headers)["host"]
            location = f"http://{host}/final"
            await conn.respond(302, [(STS, "max-age=600"), ("Location", location)], b"")
        else:
            await conn.respond(200, [], b"final")

    return handler


# -- HSTSEnforcerDB ---------------------------------------------------------------


def _rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT host, max_age, expiry, include_subdomains"
            " FROM soup_hsts_policies ORDER BY host"
        ).fetchall()
    db.close()
    return rows


async def test_db_round_trip_across_sessions(
    tmp_path: Path, tls_server_context: ssl.SSLContext, tls_ca_pem: bytes, leak_check: Any
) -> None:
    path = tmp_path / "hsts.sqlite"
    first = HSTSEnforcerDB(path)
    assert first.is_persistent() and first.filename == str(path)
    first.set_session_policy("session.example", True)  # never stored
    async with serve_http(
        _sts_handler("max-age=600; includeSubDomains"), ssl_context=tls_server_context
    ) as server:
        async with anysoup.Session(
            tls_database=_database(tls_ca_pem), features=[first]
        ) as session:
            await _get(session, anysoup.Message("GET", f"https://localhost:{server.port}/"))
        await leak_check(session)
        # Complete on disk once the session closed.
        ((host, max_age, expiry, subdomains),) = _rows(path)
        (policy,) = first.get_policies(False)
        assert policy.expires is not None
        assert (host, max_age, expiry, subdomains) == (
            "localhost",
            600,
            int(policy.expires.timestamp()),
            1,
        )
        second = HSTSEnforcerDB(path)
        assert second.get_policies(False) == [policy]
        assert second.get_domains(True) == ["localhost"]
        async with anysoup.Session(
            tls_database=_database(tls_ca_pem), features=[second]
        ) as session:
            msg = anysoup.Message("GET", f"http://localhost:{server.port}/again")
            assert await _get(session, msg) == b"hello /again"
            assert msg.uri.scheme == "https"
        await leak_check(session)


async def test_db_removal_expiry_and_session_policies(tmp_path: Path) -> None:
    path = tmp_path / "hsts.sqlite"
    enforcer = HSTSEnforcerDB(path)
    enforcer.set_policy(HSTSPolicy("keep.example", 600))
    enforcer.set_policy(HSTSPolicy("drop.example", 600, True))
    enforcer.set_session_policy("session.example")
    await enforcer.flush()  # no session: written on request
    assert [row[0] for row in _rows(path)] == ["drop.example", "keep.example"]
    enforcer.set_policy(HSTSPolicy("drop.example", 0))
    await enforcer.flush()
    assert [row[0] for row in _rows(path)] == ["keep.example"]
    # An expired row (and a U-label row as libsoup writes them) from another writer.
    with sqlite3.connect(path) as db:
        now = int(datetime.datetime.now(UTC).timestamp())
        db.execute(
            "INSERT INTO soup_hsts_policies VALUES (NULL, 'old.example', 60, ?, 0)", (now - 10,)
        )
        db.execute(
            "INSERT INTO soup_hsts_policies VALUES (NULL, 'bücher.example', 60, ?, 1)",
            (now + 600,),
        )
    db.close()
    again = HSTSEnforcerDB(path)
    assert sorted(again.get_domains(True)) == ["keep.example", "xn--bcher-kva.example"]
    assert not again.has_valid_policy("old.example")
    await again.flush()  # the expired row goes; the U-label row becomes ours
    assert [row[0] for row in _rows(path)] == ["keep.example", "xn--bcher-kva.example"]


def test_db_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "not-a-db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ValueError, match="not-a-db"):
        HSTSEnforcerDB(path)


async def test_db_write_failure_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "hsts.sqlite"
    enforcer = HSTSEnforcerDB(path)
    path.unlink()
    path.mkdir()  # the file became a directory: writes fail
    enforcer.set_policy(HSTSPolicy("example.com", 60))
    await enforcer.flush()
    assert "writing" in caplog.text
