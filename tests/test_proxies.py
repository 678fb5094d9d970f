"""Proxies on the wire: pproxy for truth, scripted proxies for the rest.

pproxy (a third-party HTTP and SOCKS proxy from PyPI) runs as one
subprocess per module with a listener per kind: HTTP forwarding and CONNECT,
TLS to the proxy, SOCKS4 and SOCKS5, with and without credentials. The
scripted proxies of ``proxy_servers.py`` do what pproxy can't: record the
exact CONNECT head, answer 407 with a Digest challenge, refuse with a 403
and a body. The origins are ``servers.serve_http`` (plain and trustme TLS)
and ``ws_servers.serve_ws``. Every test runs on asyncio and trio, ends with
``leak_check`` and is bounded by :data:`BOUND` seconds.

The ``no_proxy`` table lives in ``test_proxy_resolver.py``; here one
end-to-end check shows a listed host is reached directly.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import pytest
import trustme
from proxy_servers import ProxyRequest, Refusal, run_pproxy, serve_proxy, serve_socks4a
from servers import (
    CertFiles,
    Handler,
    ReceivedRequest,
    Server,
    ServerConnection,
    echo_app,
    serve_asgi,
    serve_http,
    serve_raw,
    sockets_to,
)
from ws_servers import WsPeer, serve_ws

import anysoup
from anysoup import (
    Auth,
    ConnectError,
    CookieJar,
    HTTPVersion,
    Message,
    ProxyResolver,
    Session,
    SimpleProxyResolver,
    TlsCertificate,
    TlsDatabase,
)
from anysoup._features.auth.challenge_policy import parse_challenges

pytestmark = pytest.mark.anyio

LeakCheck = Callable[[Session], Awaitable[None]]
#: What every exchange in these tests is bounded by (seconds).
BOUND = 5.0
#: pproxy's credentials for its authenticating listeners.
USER, PASSWORD = "pxuser", "px-secret"
#: pproxy's answer to a missing or wrong Proxy-Authorization.
PPROXY_CHALLENGE = 'Basic realm="simple"'


# -- fixtures -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pproxy:
    """The listeners of the module's pproxy process, by kind."""

    ports: dict[str, int]

    def url(self, name: str, credentials: str | None = None) -> str:
        """The proxy URI of listener ``name`` (``https`` is TLS to the proxy)."""
        scheme = "http" if name == "http2" else name.removesuffix("_auth")
        userinfo = f"{credentials}@" if credentials else ""
        return f"{scheme}://{userinfo}127.0.0.1:{self.ports[name]}"

    def address(self, name: str) -> tuple[str, int]:
        return ("127.0.0.1", self.ports[name])


@pytest.fixture(scope="module")
def pproxy(
    tls_cert_files: CertFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pproxy]:
    listeners = {
        "http": "http",
        "http2": "http",  # a second, distinct HTTP proxy
        "http_auth": f"http#{USER}:{PASSWORD}",
        "https": "http+ssl",  # TLS to the proxy
        "socks4": "socks4",
        "socks5": "socks5",
        "socks5_auth": f"socks5#{USER}:{PASSWORD}",
    }
    log = tmp_path_factory.mktemp("pproxy") / "pproxy.log"
    with run_pproxy(listeners, log_path=log, cert_files=tls_cert_files) as ports:
        yield Pproxy(ports)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nobody listens on: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def database(tls_ca_pem: bytes) -> TlsDatabase:
    return TlsDatabase.from_pem(tls_ca_pem)


@pytest.fixture
def leaf_der(tls_leaf: trustme.LeafCert) -> bytes:
    return TlsCertificate.from_pem(tls_leaf.cert_chain_pems[0].bytes()).der


class ListResolver(ProxyResolver):
    """A custom resolver: the same list for every URI; records what it was asked."""

    def __init__(self, proxies: list[str]) -> None:
        self.proxies = proxies
        self.asked: list[str] = []

    async def lookup(self, uri: object) -> list[str]:
        await anyio.lowlevel.checkpoint()  # the session must await it
        self.asked.append(str(uri))
        return list(self.proxies)


def via(proxy: str | list[str], database: TlsDatabase, **options: Any) -> Session:
    """A session sending everything through ``proxy`` (a list: tried in order)."""
    resolver = (
        SimpleProxyResolver(default_proxy=proxy) if isinstance(proxy, str) else ListResolver(proxy)
    )
    return Session(proxy_resolver=resolver, tls_database=database, **options)


async def fetch(session: Session, msg: Message) -> bytes:
    with anyio.fail_after(BOUND):
        return await session.send_and_read(msg)


async def get(session: Session, url: str, **headers: str) -> tuple[Message, bytes]:
    msg = Message("GET", url, headers={k.replace("_", "-"): v for k, v in headers.items()})
    return msg, await fetch(session, msg)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def hello(conn: ServerConnection, req: ReceivedRequest) -> None:
    """An origin that answers every request with ``hello <target>``."""
    await conn.respond(200, [("Content-Type", "text/plain")], f"hello {req.target}".encode())


@asynccontextmanager
async def origin(
    scheme: str, tls_server_context: ssl.SSLContext, handler: Handler = hello
) -> AsyncIterator[Server]:
    """A ``serve_http`` origin: plain for ``http``, trustme TLS for ``https``."""
    context = tls_server_context if scheme == "https" else None
    async with serve_http(handler, ssl_context=context) as server:
        yield server


# -- 1. HTTP proxies: forwarding, tunnels, WebSockets, TLS to the proxy -----------------------


async def test_http_is_forwarded_through_pproxy(
    pproxy: Pproxy,
    database: TlsDatabase,
    tls_server_context: ssl.SSLContext,
    leak_check: LeakCheck,
) -> None:
    async with origin("http", tls_server_context) as server:
        async with via(pproxy.url("http"), database) as session:
            msg, body = await get(session, server.url_for("/page?q=1"))
            assert (msg.status, body) == (200, b"hello /page?q=1")
            assert msg.remote_address == pproxy.address("http")  # the connection is the proxy's
        await leak_check(session)
    (request,) = server.requests  # pproxy turned the absolute form back into origin form
    assert request.target == "/page?q=1"
    assert request.header("host") == f"127.0.0.1:{server.port}"
    assert request.header("proxy-authorization") is None


async def test_forwarded_request_is_in_absolute_form_with_the_url_credentials(
    database: TlsDatabase, leak_check: LeakCheck
) -> None:
    async with serve_proxy() as proxy:
        url = proxy.url.replace("http://", f"http://{USER}:{PASSWORD}@")
        async with via(url, database) as session:
            msg, body = await get(session, "http://origin.test:8080/a/b?c#frag")
            assert (msg.status, body) == (200, b"http://origin.test:8080/a/b?c")
        await leak_check(session)
    (request,) = proxy.requests
    assert (request.method, request.target) == ("GET", "http://origin.test:8080/a/b?c")
    assert request.header("Host") == "origin.test:8080"
    assert request.header("Proxy-Authorization") == basic(USER, PASSWORD)


async def test_https_tunnels_through_pproxy(
    pproxy: Pproxy,
    database: TlsDatabase,
    tls_server_context: ssl.SSLContext,
    leaf_der: bytes,
    leak_check: LeakCheck,
) -> None:
    async with origin("https", tls_server_context) as server:
        async with via(pproxy.url("http"), database) as session:
            msg, body = await get(session, server.url_for("/secret"))
            assert (msg.status, body) == (200, b"hello /secret")
            assert msg.tls_peer_certificate is not None
            assert msg.tls_peer_certificate.der == leaf_der  # the origin's, through the tunnel
            assert msg.remote_address == pproxy.address("http")
            # The tunnel is a pooled connection like any other.
            msg2, _ = await get(session, server.url_for("/again"))
            assert msg2.status == 200 and server.connections == 1
        await leak_check(session)
    assert [r.target for r in server.requests] == ["/secret", "/again"]


@pytest.mark.parametrize("kind", ["http", "socks5"])
async def test_http2_to_the_origin_inside_a_tunnel(
    kind: str,
    pproxy: Pproxy,
    database: TlsDatabase,
    tls_cert_files: CertFiles,
    leak_check: LeakCheck,
) -> None:
    """The origin's TLS inside a CONNECT (or SOCKS) tunnel offers h2 as a direct one does."""
    files = tls_cert_files
    async with serve_asgi(echo_app, ssl_certfile=files.certfile, ssl_keyfile=files.keyfile) as url:
        async with via(pproxy.url(kind), database) as session:
            msgs = [Message("GET", f"{url}/hello") for _ in range(5)]
            async with anyio.create_task_group() as group:
                for msg in msgs:
                    group.start_soon(fetch, session, msg)
            assert [m.http_version for m in msgs] == [HTTPVersion.HTTP_2_0] * 5
            assert len(session._pool.connections) == 1  # one tunnel, five streams
        await leak_check(session)


async def test_forwarding_proxy_stays_http1(
    pproxy: Pproxy, database: TlsDatabase, leak_check: LeakCheck
) -> None:
    async with serve_asgi(echo_app) as url, via(pproxy.url("http"), database) as session:
        msg, body = await get(session, f"{url}/hello")
        assert (body, msg.http_version) == (b"hello", HTTPVersion.HTTP_1_1)
    await leak_check(session)


@pytest.mark.parametrize("scheme", ["ws", "wss"])
async def test_websocket_through_pproxy(
    pproxy: Pproxy,
    database: TlsDatabase,
    tls_server_context: ssl.SSLContext,
    scheme: str,
    leak_check: LeakCheck,
) -> None:
    async def echo(peer: WsPeer) -> None:
        await peer.echo()

    context = tls_server_context if scheme == "wss" else None
    async with serve_ws(echo, ssl_context=context) as server:
        assert server.url.startswith(scheme + "://")
        async with via(pproxy.url("http"), database) as session:
            with anyio.fail_after(BOUND):
                msg = Message("GET", server.url_for("/chat"))
                async with session.websocket_connect(msg) as ws:
                    await ws.send_text("through the tunnel")
                    assert await ws.receive() == "through the tunnel"
                assert msg.remote_address == pproxy.address("http")
        await leak_check(session)


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_tls_to_an_https_proxy(
    pproxy: Pproxy,
    database: TlsDatabase,
    tls_server_context: ssl.SSLContext,
    scheme: str,
    leak_check: LeakCheck,
) -> None:
    """pproxy's listener speaks only TLS; an https origin makes it TLS inside TLS."""
    async with origin(scheme, tls_server_context) as server:
        async with via(pproxy.url("https"), database) as session:
            msg, body = await get(session, server.url_for("/inner"))
            assert (msg.status, body) == (200, b"hello /inner")
            assert msg.remote_address == pproxy.address("https")
        await leak_check(session)


async def test_an_untrusted_https_proxy_is_a_tls_error(
    pproxy: Pproxy, tls_server_context: ssl.SSLContext, leak_check: LeakCheck
) -> None:
    async with origin("http", tls_server_context) as server:
        stranger = TlsDatabase.from_pem(trustme.CA().cert_pem.bytes())
        async with via(pproxy.url("https"), stranger) as session:
            with pytest.raises(anysoup.TlsError, match=f"127.0.0.1:{pproxy.ports['https']}"):
                await get(session, server.url_for("/"))
        await leak_check(session)
    assert server.requests == []


# -- 2. SOCKS -------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("kind", ["socks5", "socks5_auth", "socks4"])
async def test_socks_through_pproxy(
    pproxy: Pproxy,
    database: TlsDatabase,
    tls_server_context: ssl.SSLContext,
    kind: str,
    scheme: str,
    leak_check: LeakCheck,
) -> None:
    credentials = f"{USER}:{PASSWORD}" if kind == "socks5_auth" else None
    async with origin(scheme, tls_server_context) as server:
        async with via(pproxy.url(kind, credentials), database) as session:
            msg, body = await get(session, server.url_for("/socks"))
            assert (msg.status, body) == (200, b"hello /socks")
            assert msg.remote_address == pproxy.address(kind)
        await leak_check(session)
    (request,) = server.requests  # a SOCKS tunnel: origin form, as to the origin itself
    assert request.target == "/socks" and request.header("proxy-authorization") is None


@pytest.mark.parametrize("credentials", [f"{USER}:wrong", None])
async def test_socks5_without_the_right_credentials_is_a_connect_error(
    pproxy: Pproxy,
    database: TlsDatabase,
    tls_server_context: ssl.SSLContext,
    credentials: str | None,
    leak_check: LeakCheck,
) -> None:
    async with origin("http", tls_server_context) as server:
        async with via(pproxy.url("socks5_auth", credentials), database) as session:
            with pytest.raises(ConnectError) as caught:
                await get(session, server.url_for("/"))
            text = str(caught.value)
            assert f"SOCKS proxy 127.0.0.1:{pproxy.ports['socks5_auth']}" in text
            assert f"127.0.0.1:{server.port}" in text  # and the target
            assert "wrong" not in text  # never the password
            assert session.statistics().connections == 0
        await leak_check(session)
    assert server.requests == []


@pytest.fixture
def local_names_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process can't resolve ``localhost`` (the pproxy subprocess still can)."""
    real = socket.getaddrinfo

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        if host in ("localhost", b"localhost"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.usefixtures("local_names_fail")
async def test_socks5h_lets_the_proxy_resolve_the_name(
    pproxy: Pproxy,
    database: TlsDatabase,
    tls_server_context: ssl.SSLContext,
    leak_check: LeakCheck,
) -> None:
    async with origin("https", tls_server_context) as server:
        url = f"https://localhost:{server.port}/named"
        async with via(pproxy.url("socks5").replace("socks5:", "socks5h:"), database) as session:
            msg, body = await get(session, url)
            assert (msg.status, body) == (200, b"hello /named")
        await leak_check(session)
        # With socks5 the client resolves, and here it can't.
        async with via(pproxy.url("socks5"), database) as session:
            with pytest.raises(ConnectError, match=r"localhost.*: name or service not known"):
                await get(session, url)
        await leak_check(session)
    assert [r.header("host") for r in server.requests] == [f"localhost:{server.port}"]


@pytest.mark.usefixtures("local_names_fail")
async def test_socks4a_sends_the_name_to_the_proxy(
    database: TlsDatabase, tls_server_context: ssl.SSLContext, leak_check: LeakCheck
) -> None:
    """pproxy speaks only SOCKS4; a scripted SOCKS4a proxy records the name it got."""
    async with (
        origin("http", tls_server_context) as server,
        serve_socks4a({"localhost": "127.0.0.1"}) as (proxy, names),
    ):
        async with via(f"socks4a://127.0.0.1:{proxy.port}", database) as session:
            msg, body = await get(session, f"http://localhost:{server.port}/4a")
            assert (msg.status, body) == (200, b"hello /4a")
        await leak_check(session)
    assert names == ["localhost"]


# -- 3. proxy authentication ------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_credentials_in_the_proxy_url(
    pproxy: Pproxy,
    database: TlsDatabase,
    tls_server_context: ssl.SSLContext,
    scheme: str,
    leak_check: LeakCheck,
) -> None:
    async with origin(scheme, tls_server_context) as server:
        async with via(pproxy.url("http_auth", f"{USER}:{PASSWORD}"), database) as session:
            restarts: list[Message] = []
            msg = Message("GET", server.url_for("/authed"))
            msg.restarted.connect(restarts.append)
            assert await fetch(session, msg) == b"hello /authed"
            assert msg.status == 200 and restarts == []  # sent up front: no 407 first
        await leak_check(session)
    assert server.requests[0].header("proxy-authorization") is None


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_wrong_proxy_credentials_end_with_the_407(
    pproxy: Pproxy,
    database: TlsDatabase,
    tls_server_context: ssl.SSLContext,
    scheme: str,
    leak_check: LeakCheck,
) -> None:
    async with origin(scheme, tls_server_context) as server:
        async with via(pproxy.url("http_auth", f"{USER}:wrong"), database) as session:
            restarts: list[Message] = []
            msg = Message("GET", server.url_for("/"))
            msg.restarted.connect(restarts.append)
            assert await fetch(session, msg) == b""  # the proxy's page is not the origin's
            assert msg.status == 407 and restarts == []  # no handler: final, no loop
            assert msg.response_headers.get_one("Proxy-Authenticate") == PPROXY_CHALLENGE
            assert msg.reason_phrase == "Proxy Authentication Required"
            assert msg.tls_peer_certificate is None
        await leak_check(session)
    assert server.requests == []


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_handler_that_gives_up_ends_with_the_407(
    pproxy: Pproxy,
    database: TlsDatabase,
    tls_server_context: ssl.SSLContext,
    scheme: str,
    leak_check: LeakCheck,
) -> None:
    calls: list[bool] = []

    def handler(msg: Message, auth: Auth, retrying: bool) -> bool:
        calls.append(retrying)
        if not retrying:
            auth.authenticate(USER, "also wrong")
        return True

    async with origin(scheme, tls_server_context) as server:
        async with via(pproxy.url("http_auth"), database) as session:
            msg = Message("GET", server.url_for("/"))
            msg.authenticate.connect(handler)
            await fetch(session, msg)
            assert msg.status == 407 and calls == [False, True]
        await leak_check(session)


@pytest.mark.parametrize("scheme", ["http", "https", "wss"])
async def test_proxy_credentials_from_the_authenticate_signal(
    pproxy: Pproxy,
    database: TlsDatabase,
    tls_server_context: ssl.SSLContext,
    scheme: str,
    leak_check: LeakCheck,
) -> None:
    asked: list[tuple[str, str, bool, bool]] = []

    async def handler(msg: Message, auth: Auth, retrying: bool) -> bool:
        await anyio.lowlevel.checkpoint()
        asked.append((auth.scheme_name, auth.realm, auth.is_for_proxy, retrying))
        auth.authenticate(USER, PASSWORD)
        return True

    async def echo(peer: WsPeer) -> None:
        await peer.echo()

    async with AsyncExitStack() as stack:
        if scheme == "wss":
            server = await stack.enter_async_context(
                serve_ws(echo, ssl_context=tls_server_context)
            )
        else:
            server = await stack.enter_async_context(origin(scheme, tls_server_context))
        async with via(pproxy.url("http_auth"), database) as session:
            msg = Message("GET", server.url_for("/asked"))
            msg.authenticate.connect(handler)
            if scheme == "wss":
                with anyio.fail_after(BOUND):
                    async with session.websocket_connect(msg) as ws:
                        await ws.send_text("ok")
                        assert await ws.receive() == "ok"
            else:
                assert await fetch(session, msg) == b"hello /asked"
            assert asked == [("Basic", "simple", True, False)]
        await leak_check(session)


def digest_gate(
    seen: list[dict[str, str]],
    *,
    realm: str = "proxy-lab",
    user: str = "dora",
    password: str = "pw",
) -> Callable[[ProxyRequest], Refusal | None]:
    """A proxy's check: a valid Digest (MD5, qop=auth) Proxy-Authorization or a 407.

    The response is computed from the request line's method and the ``uri``
    field, which must be the request target (RFC 7616 §3.4; Apache and
    Squid compare them): ``host:port`` for CONNECT, the absolute URI for a
    forwarded request.
    """
    nonce = "proxy-nonce-1"
    challenge = f'Digest realm="{realm}", nonce="{nonce}", qop="auth", algorithm=MD5'
    refusal: Refusal = (407, [("Proxy-Authenticate", challenge)], b"<h1>proxy login</h1>")

    def gate(request: ProxyRequest) -> Refusal | None:
        header = request.header("Proxy-Authorization")
        if header is None or not header.startswith("Digest "):
            return refusal
        fields = dict(parse_challenges([header])[0].params)
        seen.append(fields)
        ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
        ha2 = hashlib.md5(f"{request.method}:{fields['uri']}".encode()).hexdigest()
        expected = hashlib.md5(
            f"{ha1}:{nonce}:{fields['nc']}:{fields['cnonce']}:auth:{ha2}".encode()
        ).hexdigest()
        valid = (
            fields["response"] == expected
            and fields["uri"] == request.target
            and fields["username"] == user
            and fields["realm"] == realm
        )
        return None if valid else refusal

    return gate


@pytest.mark.parametrize("source", ["handler", "url"])
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_digest_proxy_authentication(
    database: TlsDatabase,
    tls_server_context: ssl.SSLContext,
    scheme: str,
    source: str,
    leak_check: LeakCheck,
) -> None:
    seen: list[dict[str, str]] = []
    asked: list[str] = []

    def handler(msg: Message, auth: Auth, retrying: bool) -> bool:
        asked.append(auth.scheme_name)
        auth.authenticate("dora", "pw")
        return True

    async with (
        origin("https", tls_server_context) as server,
        serve_proxy(digest_gate(seen)) as proxy,
    ):
        url = server.url_for("/digest") if scheme == "https" else "http://origin.test/digest?x=1"
        proxy_url = (
            proxy.url.replace("http://", "http://dora:pw@") if source == "url" else proxy.url
        )
        async with via(proxy_url, database) as session:
            msg = Message("GET", url)
            if source == "handler":
                msg.authenticate.connect(handler)
            body = await fetch(session, msg)
            assert msg.status == 200, (msg.status, proxy.requests)
            assert body == (b"hello /digest" if scheme == "https" else url.encode())
        await leak_check(session)
    assert asked == (["Digest"] if source == "handler" else [])
    (fields,) = seen
    assert fields["username"] == "dora" and fields["nc"] == "00000001"
    first, second = proxy.requests
    assert first.header("Proxy-Authorization") == (
        basic("dora", "pw") if source == "url" else None
    )
    assert (second.header("Proxy-Authorization") or "").startswith("Digest ")
    if scheme == "https":
        assert [r.method for r in proxy.requests] == ["CONNECT", "CONNECT"]
        assert first.connection != second.connection  # a refused CONNECT's connection is closed
        assert server.requests[0].header("proxy-authorization") is None


async def test_refused_connect_becomes_the_message_status_without_its_body(
    database: TlsDatabase, tls_server_context: ssl.SSLContext, leak_check: LeakCheck
) -> None:
    def forbid(request: ProxyRequest) -> Refusal:
        return (403, [("X-Proxy", "scripted"), ("Content-Type", "text/html")], b"<h1>no</h1>")

    async with origin("https", tls_server_context) as server, serve_proxy(forbid) as proxy:
        async with via(proxy.url, database) as session:
            msg, body = await get(session, server.url_for("/"))
            assert (msg.status, msg.reason_phrase, body) == (403, "Scripted", b"")
            assert msg.response_headers.get_one("X-Proxy") == "scripted"
            assert session.statistics().connections == 0  # that connection can't be used
        await leak_check(session)
    assert server.requests == [] and len(proxy.connects) == 1


# -- 4. credentials never leak ----------------------------------------------------------------


async def test_connect_carries_only_host_user_agent_and_proxy_authorization(
    database: TlsDatabase, tls_server_context: ssl.SSLContext, leak_check: LeakCheck
) -> None:
    async with origin("https", tls_server_context) as server, serve_proxy() as proxy:
        jar = CookieJar()
        jar.set_cookie(server.url_for("/"), "jar=from-the-jar")
        proxy_url = proxy.url.replace("http://", f"http://{USER}:{PASSWORD}@")
        async with via(proxy_url, database, features=[jar], user_agent="probe/1") as session:
            msg, body = await get(
                session,
                server.url_for("/private"),
                Authorization="Bearer origin-token",
                Cookie="own=program-cookie",
                X_Custom="origin only",
            )
            assert (msg.status, body) == (200, b"hello /private")
        await leak_check(session)
    (connect,) = proxy.requests
    target = f"127.0.0.1:{server.port}"
    assert (
        connect.raw
        == (  # the whole head, byte for byte
            f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: probe/1\r\n"
            f"Proxy-Authorization: {basic(USER, PASSWORD)}"
        ).encode()
    )
    (request,) = server.requests  # the origin gets its own headers, never the proxy's
    assert request.header("authorization") == "Bearer origin-token"
    assert "jar=from-the-jar" in (request.header("cookie") or "")
    assert request.header("x-custom") == "origin only"
    assert request.header("proxy-authorization") is None


async def test_program_proxy_authorization_goes_on_connect_never_to_the_origin(
    pproxy: Pproxy,
    database: TlsDatabase,
    tls_server_context: ssl.SSLContext,
    leak_check: LeakCheck,
) -> None:
    async with origin("https", tls_server_context) as server:
        async with via(pproxy.url("http_auth"), database) as session:
            msg, body = await get(
                session, server.url_for("/"), Proxy_Authorization=basic(USER, PASSWORD)
            )
            assert (msg.status, body) == (200, b"hello /")
        await leak_check(session)
    assert server.requests[0].header("proxy-authorization") is None


async def test_no_proxy_host_goes_direct_without_proxy_authorization(
    tls_server_context: ssl.SSLContext, database: TlsDatabase, leak_check: LeakCheck
) -> None:
    async with origin("http", tls_server_context) as server, serve_proxy() as proxy:
        resolver = SimpleProxyResolver(
            default_proxy=proxy.url.replace("http://", f"http://{USER}:{PASSWORD}@"),
            ignore_hosts=["localhost"],
        )
        async with Session(proxy_resolver=resolver, tls_database=database) as session:
            secret = basic("program", "set")
            direct, body = await get(
                session, f"http://localhost:{server.port}/direct", Proxy_Authorization=secret
            )
            assert (direct.status, body) == (200, b"hello /direct")
            assert direct.remote_address == ("127.0.0.1", server.port)
            _, body = await get(session, server.url_for("/proxied"))
            assert body == server.url_for("/proxied").encode()  # the scripted proxy's answer
        await leak_check(session)
    (request,) = server.requests
    assert request.target == "/direct" and request.header("proxy-authorization") is None
    assert [r.target for r in proxy.requests] == [server.url_for("/proxied")]


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_redirect_to_another_origin_through_the_proxy_drops_credentials(
    pproxy: Pproxy,
    database: TlsDatabase,
    tls_server_context: ssl.SSLContext,
    scheme: str,
    leak_check: LeakCheck,
) -> None:
    """CVE-2015-3153's lesson: headers meant for one party never reach another."""
    async with origin(scheme, tls_server_context) as second:
        location = f"{scheme}://localhost:{second.port}/landed"

        async def first_handler(conn: ServerConnection, req: ReceivedRequest) -> None:
            await conn.respond(302, [("Location", location)], b"moved")

        async with origin(scheme, tls_server_context, first_handler) as first:
            async with via(pproxy.url("http_auth", f"{USER}:{PASSWORD}"), database) as session:
                msg, body = await get(
                    session,
                    first.url_for("/start"),
                    Authorization="Bearer for-the-first",
                    Cookie="c=for-the-first",
                )
                assert (msg.status, body) == (200, b"hello /landed")
                assert str(msg.uri) == location
            await leak_check(session)
    assert first.requests[0].header("authorization") == "Bearer for-the-first"
    (landed,) = second.requests
    assert landed.header("authorization") is None
    assert landed.header("cookie") is None
    assert landed.header("proxy-authorization") is None


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_url_credentials_do_not_reach_the_next_proxy(
    database: TlsDatabase,
    tls_server_context: ssl.SSLContext,
    closed_port: int,
    scheme: str,
    leak_check: LeakCheck,
) -> None:
    async with origin(scheme, tls_server_context) as server, serve_proxy() as second:
        first = f"http://{USER}:{PASSWORD}@127.0.0.1:{closed_port}"
        async with via([first, second.url], database) as session:
            msg, _ = await get(session, server.url_for("/next"))
            assert msg.status == 200
            assert msg.remote_address == ("127.0.0.1", second.server.port)
        await leak_check(session)
    (request,) = second.requests
    assert "proxy-authorization" not in request.names


async def test_earned_proxy_credentials_do_not_reach_the_next_proxy(
    database: TlsDatabase, leak_check: LeakCheck
) -> None:
    """The first proxy asks (407), then goes away: the fallback proxy must not get its answer."""

    def first_gate(request: ProxyRequest) -> Refusal | None:
        if request.header("Proxy-Authorization") == basic("first", "pw"):
            return None
        return (407, [("Proxy-Authenticate", 'Basic realm="first"'), ("Connection", "close")], b"")

    stop, stopped = anyio.Event(), anyio.Event()

    async def run_first(*, task_status: anyio.abc.TaskStatus[str]) -> None:
        async with serve_proxy(first_gate) as first:
            task_status.started(first.url)
            await stop.wait()
        stopped.set()

    async def handler(msg: Message, auth: Auth, retrying: bool) -> bool:
        auth.authenticate("first", "pw")
        stop.set()  # the first proxy goes away before the re-send
        await stopped.wait()
        return True

    async with serve_proxy() as second, anyio.create_task_group() as tg:
        first_url = await tg.start(run_first)
        async with via([first_url, second.url], database) as session:
            msg = Message("GET", "http://origin.test/")
            msg.authenticate.connect(handler)
            assert await fetch(session, msg) == b"http://origin.test/"
            assert msg.status == 200
            assert msg.remote_address == ("127.0.0.1", second.server.port)
        await leak_check(session)
    (request,) = second.requests
    assert "proxy-authorization" not in request.names


async def test_a_fallback_proxy_can_ask_for_credentials_too(
    database: TlsDatabase,
    tls_server_context: ssl.SSLContext,
    closed_port: int,
    leak_check: LeakCheck,
) -> None:
    """Each attempt falls back past the dead first proxy; the answer to the second
    one's 407 must reach the second one's CONNECT."""

    def gate(request: ProxyRequest) -> Refusal | None:
        if request.header("Proxy-Authorization") == basic("second", "pw"):
            return None
        return (407, [("Proxy-Authenticate", 'Basic realm="second"')], b"")

    asked: list[bool] = []

    def handler(msg: Message, auth: Auth, retrying: bool) -> bool:
        asked.append(retrying)
        auth.authenticate("second", "pw")
        return True

    async with origin("https", tls_server_context) as server, serve_proxy(gate) as second:
        async with via([f"http://127.0.0.1:{closed_port}", second.url], database) as session:
            msg = Message("GET", server.url_for("/fallback"))
            msg.authenticate.connect(handler)
            assert await fetch(session, msg) == b"hello /fallback"
            assert asked == [False]
        await leak_check(session)
    assert [r.header("Proxy-Authorization") for r in second.connects] == [
        None,
        basic("second", "pw"),
    ]


# -- 5. resolvers -------------------------------------------------------------------------------


async def test_proxy_resolver_none_ignores_the_environment(
    monkeypatch: pytest.MonkeyPatch,
    database: TlsDatabase,
    tls_server_context: ssl.SSLContext,
    closed_port: int,
    leak_check: LeakCheck,
) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{closed_port}")
    async with origin("http", tls_server_context) as server:
        async with Session(proxy_resolver=None, tls_database=database) as session:
            assert session.proxy_resolver is None
            msg, body = await get(session, server.url_for("/direct"))
            assert (msg.status, body) == (200, b"hello /direct")
            assert msg.remote_address == ("127.0.0.1", server.port)
        await leak_check(session)


async def test_default_resolver_reads_the_environment_when_the_session_is_made(
    monkeypatch: pytest.MonkeyPatch,
    pproxy: Pproxy,
    database: TlsDatabase,
    tls_server_context: ssl.SSLContext,
    closed_port: int,
    leak_check: LeakCheck,
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", pproxy.url("http"))
    monkeypatch.setenv("https_proxy", pproxy.url("http2"))
    monkeypatch.setenv("no_proxy", "localhost")
    async with (
        origin("http", tls_server_context) as plain,
        origin("https", tls_server_context) as tls,
    ):
        session = Session(tls_database=database)
        # Read once, at creation: later changes don't count.
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{closed_port}")
        async with session:
            msg, _ = await get(session, plain.url_for("/p"))
            assert msg.status == 200 and msg.remote_address == pproxy.address("http")
            msg, _ = await get(session, tls.url_for("/s"))
            assert msg.status == 200 and msg.remote_address == pproxy.address("http2")
            for server in (plain, tls):
                scheme = "https" if server is tls else "http"
                msg, _ = await get(session, f"{scheme}://localhost:{server.port}/d")
                assert msg.status == 200 and msg.remote_address == ("127.0.0.1", server.port)
        await leak_check(session)


async def test_proxies_are_tried_in_order_with_direct_last(
    pproxy: Pproxy,
    database: TlsDatabase,
    tls_server_context: ssl.SSLContext,
    closed_port: int,
    leak_check: LeakCheck,
) -> None:
    refused = f"127.0.0.1:{closed_port}"
    async with origin("https", tls_server_context) as server:
        resolver = ListResolver([f"http://{refused}", f"socks5://{refused}", "direct://"])
        async with Session(proxy_resolver=resolver, tls_database=database) as session:
            msg, _ = await get(session, server.url_for("/1"))
            assert msg.status == 200 and msg.remote_address == ("127.0.0.1", server.port)
            resolver.proxies = [f"http://{refused}", pproxy.url("http"), "direct://"]
            msg, _ = await get(session, server.url_for("/2"))
            assert msg.status == 200 and msg.remote_address == pproxy.address("http")
            # Without direct:// at the end, the last failure is the answer.
            resolver.proxies = [f"socks5://{refused}", f"http://{refused}"]
            with pytest.raises(ConnectError, match=f"proxy {refused}"):
                await get(session, server.url_for("/3"))
            assert resolver.asked == [server.url_for(p) for p in ("/1", "/2", "/3")]
        await leak_check(session)


async def test_a_custom_resolver_is_awaited(
    database: TlsDatabase, tls_server_context: ssl.SSLContext, leak_check: LeakCheck
) -> None:
    class Routed(ProxyResolver):
        def __init__(self, proxy: str) -> None:
            self.proxy = proxy
            self.calls = 0

        async def lookup(self, uri: object) -> list[str]:
            self.calls += 1
            await anyio.sleep(0.01)  # a PAC script or a settings service takes time
            return [self.proxy] if "/via" in str(uri) else ["direct://"]

    async with origin("http", tls_server_context) as server, serve_proxy() as proxy:
        resolver = Routed(proxy.url)
        async with Session(proxy_resolver=resolver, tls_database=database) as session:
            assert session.proxy_resolver is resolver
            _, body = await get(session, server.url_for("/via"))
            assert body == server.url_for("/via").encode()
            _, body = await get(session, server.url_for("/direct"))
            assert body == b"hello /direct"
        await leak_check(session)
    assert resolver.calls == 2


async def test_the_proxy_is_part_of_the_pool_key(
    pproxy: Pproxy,
    database: TlsDatabase,
    tls_server_context: ssl.SSLContext,
    leak_check: LeakCheck,
) -> None:
    async with origin("https", tls_server_context) as server:
        resolver = ListResolver([pproxy.url("http")])
        async with Session(proxy_resolver=resolver, tls_database=database) as session:
            for proxies, peer in (
                ([pproxy.url("http")], pproxy.address("http")),
                ([pproxy.url("http2")], pproxy.address("http2")),
                (["direct://"], ("127.0.0.1", server.port)),
                ([pproxy.url("http")], pproxy.address("http")),  # reused
                (["direct://"], ("127.0.0.1", server.port)),  # reused
            ):
                resolver.proxies = proxies
                msg, _ = await get(session, server.url_for("/"))
                assert msg.status == 200 and msg.remote_address == peer
            stats = session.statistics()
            assert (stats.connections, stats.idle) == (3, 3)
            assert server.connections == 3  # one tunnel per proxy, one direct
        await leak_check(session)


# -- 6. errors name host, phase and cause; cancellation -----------------------------------


@pytest.mark.parametrize("proxy_scheme", ["http", "https", "socks5", "socks4"])
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_refused_proxy_is_named(
    database: TlsDatabase, closed_port: int, proxy_scheme: str, scheme: str, leak_check: LeakCheck
) -> None:
    async with via(
        f"{proxy_scheme}://{USER}:hunter2@127.0.0.1:{closed_port}", database
    ) as session:
        with pytest.raises(ConnectError) as caught:
            await get(session, f"{scheme}://origin.test/")
        text = str(caught.value)
        assert f"proxy 127.0.0.1:{closed_port}" in text, text
        assert "origin.test" in text and "refused" in text, text
        assert "hunter2" not in text
        assert caught.value.message is not None
        assert session.statistics().connections == 0
    await leak_check(session)


async def _hang_up(conn: ServerConnection) -> None:
    await conn.stream.receive_until(b"\r\n\r\n", 65536)


async def _reset(conn: ServerConnection) -> None:
    await conn.stream.receive_until(b"\r\n\r\n", 65536)
    await conn.reset()


async def _garbage(conn: ServerConnection) -> None:
    await conn.stream.receive_until(b"\r\n\r\n", 65536)
    await conn.stream.send(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")


@pytest.mark.parametrize(
    ("fault", "cause"),
    [
        (_hang_up, "closed the connection without an answer"),
        (_reset, "reset"),
        (_garbage, "not HTTP"),
    ],
    ids=["hang-up", "reset", "garbage"],
)
async def test_a_proxy_failing_during_connect(
    database: TlsDatabase,
    fault: Callable[[ServerConnection], Awaitable[None]],
    cause: str,
    leak_check: LeakCheck,
) -> None:
    async with serve_raw(fault) as proxy:
        async with via(proxy.url, database) as session:
            with pytest.raises(ConnectError) as caught:
                await get(session, "https://origin.test:8443/")
            text = str(caught.value)
            assert f"CONNECT origin.test:8443 through proxy 127.0.0.1:{proxy.port}" in text
            assert cause in text, text
            assert session.statistics().connections == 0
        await leak_check(session)


async def cancel_when(event: anyio.Event, call: Callable[[], Coroutine[Any, Any, object]]) -> None:
    """Run ``call`` and cancel it once ``event`` is set (and a moment more)."""
    with anyio.fail_after(BOUND):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await event.wait()
            await anyio.sleep(0.05)  # the CONNECT (or the SOCKS hello) is on its way
            tg.cancel_scope.cancel()


async def until(predicate: Callable[[], bool]) -> None:
    """Poll ``predicate`` (the pool's counters have no change notification)."""
    with anyio.fail_after(BOUND):
        while not predicate():  # noqa: ASYNC110
            await anyio.sleep(0.01)


async def test_cancelled_during_connect_the_tunnel_goes_with_the_request(
    database: TlsDatabase, tls_server_context: ssl.SSLContext, leak_check: LeakCheck
) -> None:
    """Nobody else could use the tunnel being made: it is closed with its request
    (issue 15 item 5), and the next request makes its own."""
    reached, release = anyio.Event(), anyio.Event()

    async def slow_gate(request: ProxyRequest) -> Refusal | None:
        reached.set()
        await release.wait()
        return None

    async with origin("https", tls_server_context) as server, serve_proxy(slow_gate) as proxy:
        async with via(proxy.url, database) as session:
            await cancel_when(reached, lambda: get(session, server.url_for("/cancelled")))
            assert session.statistics() == anysoup.PoolStatistics(0, 0, 0, 0, 0)
            release.set()
            msg, body = await get(session, server.url_for("/after"))
            assert (msg.status, body) == (200, b"hello /after")
            assert session.statistics() == anysoup.PoolStatistics(1, 0, 1, 0, 0)
        await leak_check(session)
    assert len(proxy.connects) == 2
    assert [r.target for r in server.requests] == ["/after"]


@pytest.mark.parametrize("scheme", ["http", "socks5"])
async def test_cancelled_while_a_proxy_never_answers(
    database: TlsDatabase, scheme: str, leak_check: LeakCheck
) -> None:
    reached = anyio.Event()

    async def silent(conn: ServerConnection) -> None:
        reached.set()
        await anyio.sleep_forever()  # accepts, reads nothing, never answers

    async with serve_raw(silent) as proxy:
        async with via(f"{scheme}://127.0.0.1:{proxy.port}", database) as session:
            await cancel_when(reached, lambda: get(session, "https://origin.test/"))
            # Wanted by nobody: the attempt is cancelled with its request.
            assert session.statistics() == anysoup.PoolStatistics(0, 0, 0, 0, 0)
            with anyio.fail_after(BOUND):
                while sockets_to(proxy.port):  # noqa: ASYNC110 (no notification)
                    await anyio.sleep(0.01)
        await leak_check(session)


async def test_a_proxy_that_never_answers_connect_times_out(
    database: TlsDatabase, leak_check: LeakCheck
) -> None:
    async def silent(conn: ServerConnection) -> None:
        await conn.stream.receive_until(b"\r\n\r\n", 65536)
        await anyio.sleep_forever()

    async with serve_raw(silent) as proxy:
        async with via(proxy.url, database, timeout=0.3) as session:
            with anyio.fail_after(BOUND), pytest.raises(anysoup.TimeoutError) as caught:
                await get(session, "https://origin.test/")
            assert "origin.test" in str(caught.value)
            assert session.statistics().connections == 0
        await leak_check(session)


# -- 7. no_proxy end to end ---------------------------------------------------------------------


async def test_no_proxy_entries_go_direct_end_to_end(
    monkeypatch: pytest.MonkeyPatch,
    database: TlsDatabase,
    tls_server_context: ssl.SSLContext,
    leak_check: LeakCheck,
) -> None:
    async with origin("http", tls_server_context) as server, serve_proxy() as proxy:
        monkeypatch.setenv("all_proxy", proxy.url)
        monkeypatch.setenv("no_proxy", "example.invalid, .localhost, 10.0.0.0/8")
        for name in ("http_proxy", "https_proxy", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        async with Session(tls_database=database) as session:
            _, body = await get(session, f"http://localhost:{server.port}/listed")
            assert body == b"hello /listed"
            _, body = await get(session, server.url_for("/unlisted"))
            assert body == server.url_for("/unlisted").encode()  # the proxy answered
        await leak_check(session)
    assert [r.target for r in server.requests] == ["/listed"]
    assert [r.target for r in proxy.requests] == [server.url_for("/unlisted")]
