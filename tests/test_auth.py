"""AuthManager on the wire: httpbin for truth, scripted servers for the rest.

The schemes' arithmetic is tested alone in ``test_auth_schemes.py`` and the
challenge parser in ``test_auth_challenge.py``; here the manager answers
real 401s and 407s on both backends: credentials from handlers (sync and
async), from the URI and ahead of time, protection spaces, Digest nonce
counting and ``stale=true``, never a loop, never a credential sent to another
origin, and cancellation inside a handler.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from servers import ReceivedRequest, ServerConnection, serve_http

import anysoup
from anysoup import Auth, AuthBasic, AuthDigest, AuthManager, Message, Session
from anysoup._features.auth.challenge_policy import parse_challenges

LeakCheck = Callable[[Session], Awaitable[None]]
BOUND = 10.0


def give(user: str, password: str) -> Callable[[Message, Auth, bool], bool]:
    """An ``authenticate`` handler that records its calls and answers once per call."""

    def handler(msg: Message, auth: Auth, retrying: bool) -> bool:
        handler.calls.append((auth.scheme_name, auth.realm, retrying))  # type: ignore[attr-defined]
        auth.authenticate(user, password)
        return True

    handler.calls = []  # type: ignore[attr-defined]
    return handler


async def fetch(session: Session, msg: Message) -> bytes:
    with anyio.fail_after(BOUND):
        return await session.send_and_read(msg)


# -- httpbin: a third-party server --------------------------------------------------


@pytest.fixture
def httpbin_url(httpbin: Any) -> str:
    return str(httpbin.url)


async def test_basic_from_a_handler(httpbin_url: str, leak_check: LeakCheck) -> None:
    async with Session() as session:
        msg = Message("GET", httpbin_url + "/basic-auth/alice/s3cret")
        handler = give("alice", "s3cret")
        msg.authenticate.connect(handler)
        data = json.loads(await fetch(session, msg))
        assert msg.status == 200 and data == {"authenticated": True, "user": "alice"}
        assert handler.calls == [("Basic", "Fake Realm", False)]  # type: ignore[attr-defined]
        # The space is known now: the next request sends Basic at once, no 401.
        msg2 = Message("GET", httpbin_url + "/basic-auth/alice/s3cret")
        statuses: list[int] = []
        msg2.got_headers.connect(lambda m: statuses.append(m.status))
        await fetch(session, msg2)
        assert statuses == [200]
    await leak_check(session)


async def test_async_handler_awaits_before_answering(
    httpbin_url: str, leak_check: LeakCheck
) -> None:
    async def slow(msg: Message, auth: Auth, retrying: bool) -> bool:
        await anyio.sleep(0.05)
        auth.authenticate("bob", "pw")
        return True

    async with Session() as session:
        msg = Message("GET", httpbin_url + "/basic-auth/bob/pw")
        msg.authenticate.connect(slow)
        assert json.loads(await fetch(session, msg))["user"] == "bob"
    await leak_check(session)


async def test_credentials_in_the_uri(httpbin_url: str, leak_check: LeakCheck) -> None:
    base = httpbin_url.replace("http://", "http://carol:pw%21@")
    async with Session() as session:
        msg = Message("GET", base + "/basic-auth/carol/pw!")
        sent: list[str | None] = []
        msg.wrote_headers.connect(
            lambda m: sent.append(m.request_headers.get_one("Authorization"))
        )
        assert json.loads(await fetch(session, msg))["user"] == "carol"
        # Not up front (libsoup): the first attempt went without, the second with.
        assert sent[0] is None and sent[1] is not None and sent[1].startswith("Basic ")
    await leak_check(session)


async def test_wrong_password_without_handler_is_the_final_401(
    httpbin_url: str, leak_check: LeakCheck
) -> None:
    async with Session() as session:
        msg = Message(
            "GET", httpbin_url.replace("http://", "http://dave:wrong@") + "/basic-auth/dave/right"
        )
        await fetch(session, msg)
        assert msg.status == 401  # the URI's credentials were tried once, then the 401 stands
        msg2 = Message("GET", httpbin_url + "/basic-auth/dave/right")
        await fetch(session, msg2)
        assert msg2.status == 401  # no credentials at all: the 401 at once
    await leak_check(session)


async def test_wrong_password_with_a_handler_is_asked_again(
    httpbin_url: str, leak_check: LeakCheck
) -> None:
    answers = iter([("erin", "wrong"), ("erin", "right")])
    calls: list[bool] = []

    def handler(msg: Message, auth: Auth, retrying: bool) -> bool:
        calls.append(retrying)
        auth.authenticate(*next(answers))
        return True

    async with Session() as session:
        msg = Message("GET", httpbin_url + "/basic-auth/erin/right")
        msg.authenticate.connect(handler)
        assert json.loads(await fetch(session, msg))["user"] == "erin"
        assert calls == [False, True]
    await leak_check(session)


async def test_handler_that_gives_up_ends_with_the_401(
    httpbin_url: str, leak_check: LeakCheck
) -> None:
    def cancel(msg: Message, auth: Auth, retrying: bool) -> bool:
        auth.cancel()
        return True

    async with Session() as session:
        msg = Message("GET", httpbin_url + "/basic-auth/x/y")
        msg.authenticate.connect(cancel)
        await fetch(session, msg)
        assert msg.status == 401
    await leak_check(session)


async def test_hidden_basic_auth_needs_credentials_ahead(
    httpbin_url: str, leak_check: LeakCheck
) -> None:
    """``/hidden-basic-auth`` answers 404, not 401: only ``use_auth`` gets in."""
    async with Session() as session:
        url = httpbin_url + "/hidden-basic-auth/fay/pw"
        msg = Message("GET", url)
        await fetch(session, msg)
        assert msg.status == 404
        manager = session.get_feature(AuthManager)
        assert isinstance(manager, AuthManager)
        auth = AuthBasic(
            anysoup.Challenge("basic", {"realm": "x"}), authority="", is_for_proxy=False
        )
        auth.authenticate("fay", "pw")
        manager.use_auth(url, auth)
        msg = Message("GET", url)
        assert json.loads(await fetch(session, msg))["user"] == "fay"
        manager.clear_cached_credentials()
        msg = Message("GET", url)
        await fetch(session, msg)
        assert msg.status == 404
    await leak_check(session)


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
@pytest.mark.parametrize("qop", ["auth", "auth-int"])
async def test_digest(httpbin_url: str, algorithm: str, qop: str, leak_check: LeakCheck) -> None:
    async with Session() as session:
        url = f"{httpbin_url}/digest-auth/{qop}/gus/pw/{algorithm}"
        handler = give("gus", "pw")
        for _ in range(2):  # the second reuses the nonce with the next count
            msg = Message("GET", url)
            msg.authenticate.connect(handler)
            data = json.loads(await fetch(session, msg))
            assert msg.status == 200 and data == {"authenticated": True, "user": "gus"}
        assert handler.calls == [("Digest", "me@kennethreitz.com", False)]  # type: ignore[attr-defined]
    await leak_check(session)


# -- scripted servers: the rules httpbin can't show ----------------------------------


def basic_ok(request: ReceivedRequest, user: str, password: str) -> bool:
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return dict(request.headers).get("authorization") == expected


async def test_protection_space_is_the_directory(leak_check: LeakCheck) -> None:
    """Basic goes ahead of a 401 inside /private/, not outside it (RFC 7617 §2.2)."""
    seen: list[tuple[str, bool]] = []

    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        authorized = basic_ok(req, "hal", "pw")
        seen.append((req.target, "authorization" in dict(req.headers)))
        if req.target.startswith("/private/") and not authorized:
            await conn.respond(401, [("WWW-Authenticate", 'Basic realm="private"')], b"no")
        else:
            await conn.respond(200, [], b"ok " + req.target.encode())

    async with serve_http(handler) as server:
        async with Session() as session:
            msg = Message("GET", server.url_for("/private/a"))
            msg.authenticate.connect(give("hal", "pw"))
            assert await fetch(session, msg) == b"ok /private/a"
            assert (
                await fetch(session, Message("GET", server.url_for("/private/b")))
                == b"ok /private/b"
            )
            assert await fetch(session, Message("GET", server.url_for("/public"))) == b"ok /public"
        await leak_check(session)
    assert seen == [
        ("/private/a", False),
        ("/private/a", True),
        ("/private/b", True),  # preemptive inside the space
        ("/public", False),  # not outside it
    ]


def digest_server(
    *, realm: str = "lab", stale_after: int | None = None
) -> tuple[Callable[[ServerConnection, ReceivedRequest], Awaitable[None]], list[dict[str, str]]]:
    """A Digest (MD5, qop=auth) server that checks nc and can make a nonce stale."""
    log: list[dict[str, str]] = []
    state = {"nonce": "n1", "uses": 0}

    def challenge(stale: bool = False) -> str:
        extra = ", stale=true" if stale else ""
        return (
            f'Digest realm="{realm}", nonce="{state["nonce"]}", qop="auth", algorithm=MD5{extra}'
        )

    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        header = dict(req.headers).get("authorization")
        if header is None or not header.startswith("Digest "):
            await conn.respond(401, [("WWW-Authenticate", challenge())], b"")
            return
        fields = dict(parse_challenges([header])[0].params)
        log.append(fields)
        if fields["nonce"] != state["nonce"]:
            await conn.respond(401, [("WWW-Authenticate", challenge(stale=True))], b"")
            return
        ha1 = hashlib.md5(f"ivy:{realm}:pw".encode()).hexdigest()
        ha2 = hashlib.md5(f"{req.method}:{fields['uri']}".encode()).hexdigest()
        expected = hashlib.md5(
            f"{ha1}:{fields['nonce']}:{fields['nc']}:{fields['cnonce']}:auth:{ha2}".encode()
        ).hexdigest()
        if fields["response"] != expected or fields["uri"] != req.target:
            await conn.respond(401, [("WWW-Authenticate", challenge())], b"")
            return
        state["uses"] += 1
        if stale_after is not None and state["uses"] == stale_after:
            state["nonce"] = "n2"  # the next request's nonce is stale
        await conn.respond(200, [], b"welcome")

    return handler, log


async def test_digest_counts_nonces_and_survives_stale(leak_check: LeakCheck) -> None:
    handler, log = digest_server(stale_after=2)
    asked = give("ivy", "pw")
    async with serve_http(handler) as server:
        async with Session() as session:
            for index in range(4):
                msg = Message("GET", server.url_for(f"/d/{index}?q=1"))
                msg.authenticate.connect(asked)
                assert await fetch(session, msg) == b"welcome"
        await leak_check(session)
    # Asked once: the stale nonce was renewed without the program.
    assert len(asked.calls) == 1  # type: ignore[attr-defined]
    counts = [(f["nonce"], f["nc"]) for f in log]
    assert counts == [
        ("n1", "00000001"),
        ("n1", "00000002"),
        ("n1", "00000003"),  # stale: refused with stale=true
        ("n2", "00000001"),
        ("n2", "00000002"),
    ]


async def test_strongest_scheme_is_chosen(leak_check: LeakCheck) -> None:
    handler, _ = digest_server()

    async def both(conn: ServerConnection, req: ReceivedRequest) -> None:
        if "authorization" not in dict(req.headers):
            await conn.respond(
                401,
                [
                    ("WWW-Authenticate", 'Basic realm="lab"'),
                    ("WWW-Authenticate", 'Digest realm="lab", nonce="n1", qop="auth"'),
                ],
                b"",
            )
            return
        await handler(conn, req)

    async with serve_http(both) as server:
        async with Session() as session:
            msg = Message("GET", server.url_for("/"))
            asked = give("ivy", "pw")
            msg.authenticate.connect(asked)
            assert await fetch(session, msg) == b"welcome"
            assert asked.calls[0][0] == "Digest"  # type: ignore[attr-defined]
        await leak_check(session)


async def test_never_a_loop(leak_check: LeakCheck) -> None:
    """A handler that always answers, wrongly, stops at the shared limit of re-sends."""

    async def refuse(conn: ServerConnection, req: ReceivedRequest) -> None:
        await conn.respond(401, [("WWW-Authenticate", 'Basic realm="never"')], b"")

    async with serve_http(refuse) as server:
        async with Session() as session:
            msg = Message("GET", server.url_for("/"))
            msg.authenticate.connect(give("x", "y"))
            with pytest.raises(anysoup.TooManyRestarts):
                await fetch(session, msg)
            assert session.statistics().in_use == 0
        await leak_check(session)


async def test_credentials_never_cross_origins(leak_check: LeakCheck) -> None:
    """A redirect to another port: neither the header nor the URI's credentials follow."""
    seen: list[str | None] = []

    async def other(conn: ServerConnection, req: ReceivedRequest) -> None:
        seen.append(dict(req.headers).get("authorization"))
        await conn.respond(200, [], b"other")

    async with serve_http(other) as elsewhere:

        async def first(conn: ServerConnection, req: ReceivedRequest) -> None:
            if not basic_ok(req, "jo", "pw"):
                await conn.respond(401, [("WWW-Authenticate", 'Basic realm="a"')], b"")
            else:
                await conn.respond(302, [("Location", elsewhere.url_for("/landing"))], b"")

        async with serve_http(first) as origin:
            async with Session() as session:
                url = origin.url_for("/start").replace("http://", "http://jo:pw@")
                msg = Message("GET", url)
                assert await fetch(session, msg) == b"other"
                # And a later request to the other origin gets nothing preemptively.
                await fetch(session, Message("GET", elsewhere.url_for("/again")))
            await leak_check(session)
    assert seen == [None, None]


async def test_proxy_authentication_uses_the_same_machinery(leak_check: LeakCheck) -> None:
    """A 407 from a forwarding proxy is answered with Proxy-Authorization."""
    seen: list[str | None] = []
    targets: list[str] = []

    async def proxyish(conn: ServerConnection, req: ReceivedRequest) -> None:
        value = dict(req.headers).get("proxy-authorization")
        seen.append(value)
        targets.append(req.target)
        if value != "Basic " + base64.b64encode(b"px:pw").decode():
            await conn.respond(407, [("Proxy-Authenticate", 'Basic realm="proxy"')], b"")
        else:
            await conn.respond(200, [], b"through")

    async with serve_http(proxyish) as server:
        resolver = anysoup.SimpleProxyResolver(default_proxy=server.url)
        async with Session(proxy_resolver=resolver) as session:
            msg = Message("GET", "http://origin.test/page")
            calls: list[bool] = []

            def handler(m: Message, auth: Auth, retrying: bool) -> bool:
                calls.append(auth.is_for_proxy)
                auth.authenticate("px", "pw")
                return True

            msg.authenticate.connect(handler)
            assert await fetch(session, msg) == b"through"
            assert calls == [True]
        await leak_check(session)
    assert seen[0] is None and seen[1] is not None
    assert targets == ["http://origin.test/page"] * 2  # absolute form, to the proxy


async def test_schemes_are_sub_features() -> None:
    session = Session()
    assert session.has_feature(AuthBasic) and session.has_feature(AuthDigest)
    session.remove_feature_by_type(AuthBasic)
    assert not session.has_feature(AuthBasic)
    session.add_feature_by_type(AuthBasic)
    assert session.has_feature(AuthBasic)


async def test_disabled_per_message(httpbin_url: str, leak_check: LeakCheck) -> None:
    async with Session() as session:
        msg = Message("GET", httpbin_url + "/basic-auth/kim/pw")
        msg.disable_feature(AuthManager)
        asked = give("kim", "pw")
        msg.authenticate.connect(asked)
        await fetch(session, msg)
        assert msg.status == 401 and asked.calls == []  # type: ignore[attr-defined]
    await leak_check(session)


async def test_cancelled_in_an_async_handler_leaves_the_pool_clean(
    httpbin_url: str, leak_check: LeakCheck
) -> None:
    entered = anyio.Event()

    async def hang(msg: Message, auth: Auth, retrying: bool) -> bool:
        entered.set()
        await anyio.sleep_forever()
        return False

    async with Session() as session:
        msg = Message("GET", httpbin_url + "/basic-auth/lu/pw")
        msg.authenticate.connect(hang)
        with anyio.move_on_after(BOUND) as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(session.send_and_read, msg)
                await entered.wait()
                tg.cancel_scope.cancel()
        assert not scope.cancelled_caught
        stats = session.statistics()
        assert stats.in_use == 0 and stats.waiting == 0
        msg2 = Message("GET", httpbin_url + "/basic-auth/lu/pw")
        msg2.authenticate.connect(give("lu", "pw"))
        assert json.loads(await fetch(session, msg2))["user"] == "lu"
    await leak_check(session)


# -- NTLM through the session, against pyspnego's server side -------------------------


@pytest.fixture
def ntlm_users(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The accounts pyspnego's acceptor checks NTLM answers against."""
    path = tmp_path / "ntlm_users"
    path.write_text("DOMAIN:nia:Passw0rd\n")
    monkeypatch.setenv("NTLM_USER_FILE", str(path))
    monkeypatch.delenv("LM_COMPAT_LEVEL", raising=False)


def ntlm_server() -> tuple[Callable[[ServerConnection, ReceivedRequest], Awaitable[None]], dict]:
    """An HTTP server doing NTLM per connection (RFC 4559 style), as IIS does."""
    import spnego

    contexts: dict[int, Any] = {}
    authenticated: dict[int, str] = {}
    record: dict[str, Any] = {"challenges": 0, "connections": set()}

    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        key = id(conn)
        record["connections"].add(key)
        if key in authenticated:
            await conn.respond(200, [], f"hello {authenticated[key]}".encode())
            return
        header = dict(req.headers).get("authorization")
        if header is None or not header.startswith("NTLM "):
            record["challenges"] += 1
            await conn.respond(401, [("WWW-Authenticate", "NTLM")], b"")
            return
        context = contexts.setdefault(
            key,
            spnego.server(protocol="ntlm", options=spnego.NegotiateOptions.use_ntlm),
        )
        try:
            answer = context.step(base64.b64decode(header[5:]))
        except spnego.exceptions.SpnegoError:
            del contexts[key]
            await conn.respond(401, [("WWW-Authenticate", "NTLM")], b"")
            return
        if context.complete:
            authenticated[key] = str(context.client_principal)
            await conn.respond(200, [], f"hello {authenticated[key]}".encode())
        else:
            token = base64.b64encode(answer).decode()
            await conn.respond(401, [("WWW-Authenticate", f"NTLM {token}")], b"")

    return handler, record


async def test_ntlm_handshake_and_a_private_connection(
    ntlm_users: None, leak_check: LeakCheck
) -> None:
    handler, record = ntlm_server()
    async with serve_http(handler) as server:
        async with Session() as session:
            session.add_feature_by_type(anysoup.AuthNTLM)
            msg = Message("GET", server.url_for("/one"))
            asked = give("DOMAIN\\nia", "Passw0rd")
            msg.authenticate.connect(asked)
            body = await fetch(session, msg)
            assert (msg.status, body) == (200, b"hello DOMAIN\\nia")
            assert [c[0] for c in asked.calls] == ["NTLM"]  # type: ignore[attr-defined]
            # The next request rides the authenticated connection: no new handshake.
            again = await fetch(session, Message("GET", server.url_for("/two")))
            assert again == b"hello DOMAIN\\nia"
            # A request for other credentials never gets that connection.
            other = Message("GET", server.url_for("/three"))
            other.disable_feature(AuthManager)
            await fetch(session, other)
        await leak_check(session)
    assert record["challenges"] == 2  # the first request, then the one without NTLM


async def test_ntlm_wrong_password_asks_again(ntlm_users: None, leak_check: LeakCheck) -> None:
    handler, _ = ntlm_server()
    answers = iter([("DOMAIN\\nia", "wrong"), ("DOMAIN\\nia", "Passw0rd")])
    calls: list[bool] = []

    def handler_for(msg: Message, auth: Auth, retrying: bool) -> bool:
        calls.append(retrying)
        auth.authenticate(*next(answers))
        return True

    async with serve_http(handler) as server:
        async with Session() as session:
            session.add_feature_by_type(anysoup.AuthNTLM)
            msg = Message("GET", server.url_for("/"))
            msg.authenticate.connect(handler_for)
            assert await fetch(session, msg) == b"hello DOMAIN\\nia"
            assert calls == [False, True]
        await leak_check(session)


async def test_https_to_http_on_the_same_host_drops_credentials(
    tls_server_context: Any, tls_ca_pem: bytes, leak_check: LeakCheck
) -> None:
    """Credentials earned over https are not sent to http on the same host and port."""
    seen: list[str | None] = []

    async def plain(conn: ServerConnection, req: ReceivedRequest) -> None:
        seen.append(dict(req.headers).get("authorization"))
        await conn.respond(200, [], b"plain")

    async with serve_http(plain) as http_server:

        async def secure(conn: ServerConnection, req: ReceivedRequest) -> None:
            if not basic_ok(req, "oz", "pw"):
                await conn.respond(401, [("WWW-Authenticate", 'Basic realm="s"')], b"")
            else:
                await conn.respond(302, [("Location", http_server.url_for("/down"))], b"")

        async with serve_http(secure, ssl_context=tls_server_context) as https_server:
            database = anysoup.TlsDatabase.from_pem(tls_ca_pem)
            async with Session(tls_database=database) as session:
                msg = Message("GET", https_server.url_for("/up"))
                msg.authenticate.connect(give("oz", "pw"))
                assert await fetch(session, msg) == b"plain"
            await leak_check(session)
    assert seen == [None]


async def test_streamed_body_that_went_out_makes_the_401_final(leak_check: LeakCheck) -> None:
    """A stream can't be sent twice: the handler isn't asked, the 401 is the answer."""
    received: list[bytes] = []

    async def needs_auth(conn: ServerConnection, req: ReceivedRequest) -> None:
        received.append(req.body)
        await conn.respond(401, [("WWW-Authenticate", 'Basic realm="up"')], b"")

    async def chunks() -> Any:
        yield b"part one, "
        yield b"part two"

    async with serve_http(needs_auth) as server:
        async with Session() as session:
            msg = Message("POST", server.url_for("/upload"), body=chunks())
            asked = give("u", "p")
            msg.authenticate.connect(asked)
            await fetch(session, msg)
            assert msg.status == 401
            assert asked.calls == []  # type: ignore[attr-defined]
        await leak_check(session)
    assert received == [b"part one, part two"]


async def test_session_abort_ends_a_slow_authenticate_handler(leak_check: LeakCheck) -> None:
    """abort() reaches a call waiting in its authenticate handler, outside the pool."""

    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        await conn.respond(401, [("WWW-Authenticate", 'Basic realm="slow"')], b"")

    async def slow(msg: Message, auth: Auth, retrying: bool) -> bool:
        await anyio.sleep(30)
        return False

    async with serve_http(handler) as server, Session() as session:
        msg = Message("GET", server.url_for("/slow"))
        msg.authenticate.connect(slow)
        async with anyio.create_task_group() as tg:

            async def abort_soon() -> None:
                await anyio.sleep(0.2)
                session.abort()

            tg.start_soon(abort_soon)
            with anyio.fail_after(10), pytest.raises(anysoup.RequestCancelled, match="aborted"):
                await session.send_and_read(msg)
    await leak_check(session)
