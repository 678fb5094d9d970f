"""HTTP/2 against hypercorn over TLS, a real third-party server, for truth.

Negotiation (ALPN, ``http2=False``, ``force_http1``), many streams over one
connection, bodies both ways beyond the initial windows, everything above
the core (redirects, cookies, decoding, signals) unchanged, the fallback to
HTTP/1.1 when the server's ALPN says so, and the pool's stream counters.
Scripted HTTP/2 servers for faults are in ``test_http2_faults.py``.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from servers import CertFiles, ReceivedRequest, ServerConnection, echo_app, serve_asgi, serve_http

import anysoup
from anysoup import HTTPVersion, Message, PoolStatistics, Session, TlsDatabase


@pytest.fixture
def database(tls_ca_pem: bytes) -> TlsDatabase:
    return TlsDatabase.from_pem(tls_ca_pem)


@asynccontextmanager
async def h2_server(files: CertFiles, app: Any = echo_app) -> AsyncIterator[str]:
    async with serve_asgi(app, ssl_certfile=files.certfile, ssl_keyfile=files.keyfile) as url:
        yield url


def streams_in_use(session: Session) -> int:
    return session.statistics().streams


# -- negotiation ---------------------------------------------------------------


async def test_https_negotiates_http2(tls_cert_files, database, leak_check) -> None:
    async with h2_server(tls_cert_files) as url, Session(tls_database=database) as session:
        msg = Message("GET", f"{url}/hello")
        body = await session.send_and_read(msg)
        assert (msg.status, body) == (200, b"hello")
        assert msg.http_version is HTTPVersion.HTTP_2_0
        assert msg.reason_phrase == "OK"  # HTTP/2 carries none: the standard one
        assert msg.response_headers.get_one("Content-Type") == "text/plain"
        assert msg.tls_protocol_version is not None
        stats = session.statistics()
        assert (stats.connections, stats.idle, stats.in_use, stats.streams) == (1, 1, 0, 0)
    await leak_check(session)


async def test_http2_false_offers_only_http1(tls_cert_files, database, leak_check) -> None:
    async with (
        h2_server(tls_cert_files) as url,
        Session(tls_database=database, http2=False) as session,
    ):
        msg = Message("GET", f"{url}/hello")
        assert await session.send_and_read(msg) == b"hello"
        assert msg.http_version is HTTPVersion.HTTP_1_1
        session.http2 = True  # applies to new connections
        msg2 = Message("GET", f"{url}/hello")
        await session.send_and_read(msg2)
        assert msg2.http_version is HTTPVersion.HTTP_2_0
        assert session.statistics().connections == 2
    await leak_check(session)


async def test_force_http1_gets_its_own_connection(tls_cert_files, database, leak_check) -> None:
    async with h2_server(tls_cert_files) as url, Session(tls_database=database) as session:
        first = Message("GET", f"{url}/hello")
        await session.send_and_read(first)
        forced = Message("GET", f"{url}/hello")
        forced.force_http1 = True
        assert await session.send_and_read(forced) == b"hello"
        assert first.http_version is HTTPVersion.HTTP_2_0
        assert forced.http_version is HTTPVersion.HTTP_1_1
        assert session.statistics().connections == 2
    await leak_check(session)


async def test_plain_http_is_http1(leak_check) -> None:
    """No h2c: http:// URIs speak HTTP/1.1 even to a server that knows HTTP/2."""
    async with serve_asgi(echo_app) as url, Session() as session:
        msg = Message("GET", f"{url}/hello")
        await session.send_and_read(msg)
        assert msg.http_version is HTTPVersion.HTTP_1_1
    await leak_check(session)


async def test_alpn_http1_server_falls_back(tls_server_context, database, leak_check) -> None:
    """A TLS server whose ALPN picks http/1.1 (or none) gets HTTP/1.1, many connections."""
    started = anyio.Event()
    waiting = 0

    async def slow(conn: ServerConnection, req: ReceivedRequest) -> None:
        nonlocal waiting
        waiting += 1
        if waiting == 3:
            started.set()
        await started.wait()  # three requests at once: three connections
        await conn.respond(200, [("Content-Type", "text/plain")], req.target.encode())

    for alpn in (["http/1.1"], None):
        waiting = 0
        started = anyio.Event()
        if alpn is not None:
            tls_server_context.set_alpn_protocols(alpn)
        async with (
            serve_http(slow, ssl_context=tls_server_context) as server,
            Session(tls_database=database, max_conns_per_host=3) as session,
        ):
            results: list[tuple[HTTPVersion, bytes]] = []

            async def one(
                path: str, session: Session = session, results: list[Any] = results
            ) -> None:
                msg = Message("GET", server.url_for(path))
                body = await session.send_and_read(msg)
                results.append((msg.http_version, body))

            with anyio.fail_after(10):
                async with anyio.create_task_group() as group:
                    for index in range(3):
                        group.start_soon(one, f"/{index}")
            assert sorted(results) == [(HTTPVersion.HTTP_1_1, f"/{i}".encode()) for i in range(3)]
            assert server.connections == 3
        await leak_check(session)


# -- many streams on one connection --------------------------------------------


async def test_200_concurrent_requests_share_one_connection(
    tls_cert_files, database, leak_check
) -> None:
    """Hypercorn allows 100 streams at once: the other requests wait for a stream."""
    peak = 0

    async with (
        h2_server(tls_cert_files) as url,
        Session(tls_database=database, max_conns_per_host=1) as session,
    ):

        async def one(index: int) -> None:
            nonlocal peak
            msg = Message("POST", f"{url}/echo")
            msg.set_request_body_from_bytes("text/plain", str(index).encode() * 100)
            body = await session.send_and_read(msg)
            assert body == str(index).encode() * 100
            assert msg.http_version is HTTPVersion.HTTP_2_0
            peak = max(peak, streams_in_use(session))

        async with anyio.create_task_group() as group:
            for index in range(200):
                group.start_soon(one, index)
        stats = session.statistics()
        assert stats.connections == 1
        assert stats.streams == 0
        assert 1 < peak <= 100
        assert len(session._pool.connections) == 1
    await leak_check(session)


async def test_requests_wait_for_the_first_connections_alpn(
    tls_cert_files, database, leak_check
) -> None:
    """Ten requests at once to a new origin: one connection, not ten."""
    async with (
        h2_server(tls_cert_files) as url,
        Session(tls_database=database, max_conns_per_host=10) as session,
    ):
        versions = []

        async def one() -> None:
            msg = Message("GET", f"{url}/hello")
            await session.send_and_read(msg)
            versions.append(msg.http_version)

        async with anyio.create_task_group() as group:
            for _ in range(10):
                group.start_soon(one)
        assert versions == [HTTPVersion.HTTP_2_0] * 10
        assert len(session._pool.connections) == 1
    await leak_check(session)


async def test_preconnect_then_streams(tls_cert_files, database, leak_check) -> None:
    async with h2_server(tls_cert_files) as url, Session(tls_database=database) as session:
        await session.preconnect(Message("GET", f"{url}/"))
        assert session.statistics().idle == 1
        msgs = [Message("GET", f"{url}/hello") for _ in range(5)]
        async with anyio.create_task_group() as group:
            for msg in msgs:
                group.start_soon(session.send_and_read, msg)
        assert all(m.http_version is HTTPVersion.HTTP_2_0 for m in msgs)
        assert len(session._pool.connections) == 1
    await leak_check(session)


# -- bodies beyond the initial windows -----------------------------------------


async def test_upload_larger_than_the_servers_window(tls_cert_files, database, leak_check) -> None:
    data = bytes(range(256)) * 4096 * 3  # 3 MiB: many times hypercorn's 64 KiB window
    async with h2_server(tls_cert_files) as url, Session(tls_database=database) as session:
        msg = Message("POST", f"{url}/echo")
        msg.set_request_body_from_bytes("application/octet-stream", data)
        assert await session.send_and_read(msg) == data

        async def chunks() -> AsyncIterator[bytes]:
            for index in range(0, len(data), 100_000):
                yield data[index : index + 100_000]

        streamed = Message("PUT", f"{url}/echo")
        streamed.set_request_body("application/octet-stream", chunks())
        assert await session.send_and_read(streamed) == data
        assert streamed.http_version is HTTPVersion.HTTP_2_0
    await leak_check(session)


async def test_download_streamed_in_pieces(tls_cert_files, database, leak_check) -> None:
    async with h2_server(tls_cert_files) as url, Session(tls_database=database) as session:
        msg = Message("GET", f"{url}/stream?n=200&size=65536")  # 12.5 MiB > both windows
        total = 0
        async with await session.send(msg) as body:
            while chunk := await body.read(1 << 20):
                total += len(chunk)
        assert total == 200 * 65536
        assert session.statistics().streams == 0
    await leak_check(session)


async def test_declared_length_must_match_the_body(tls_cert_files, database, leak_check) -> None:
    async def short() -> AsyncIterator[bytes]:
        yield b"only this"

    async with h2_server(tls_cert_files) as url, Session(tls_database=database) as session:
        msg = Message("POST", f"{url}/echo")
        msg.set_request_body("text/plain", short(), length=100)
        with pytest.raises(anysoup.Error, match="fewer bytes than the length declared"):
            await session.send_and_read(msg)
        # The connection and the session go on.
        assert await session.send_and_read(Message("GET", f"{url}/hello")) == b"hello"
    await leak_check(session)


# -- everything above the core -------------------------------------------------


async def app_with_redirects_and_cookies(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        await echo_app(scope, receive, send)
        return
    path = scope["path"]
    if path == "/redirect":
        headers = [(b"location", b"/cookie"), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 302, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/cookie":
        headers = [(b"set-cookie", b"flavour=oat; Path=/"), (b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})
    elif path == "/gzip":
        data = gzip.compress(b"squeezed " * 1000)
        headers = [(b"content-encoding", b"gzip"), (b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": data})
    else:
        await echo_app(scope, receive, send)


async def test_redirects_cookies_and_decoding_over_http2(
    tls_cert_files, database, leak_check
) -> None:
    jar = anysoup.CookieJar()
    async with (
        h2_server(tls_cert_files, app_with_redirects_and_cookies) as url,
        Session(tls_database=database, features=[jar]) as session,
    ):
        msg = Message("GET", f"{url}/redirect")
        assert await session.send_and_read(msg) == b"ok"
        assert str(msg.uri).endswith("/cookie")
        assert msg.http_version is HTTPVersion.HTTP_2_0
        echo = Message("GET", f"{url}/headers")
        seen = json.loads(await session.send_and_read(echo))
        assert seen["cookie"] == "flavour=oat"
        # No connection-specific field went out; Host became :authority.
        assert "connection" not in seen and "transfer-encoding" not in seen
        assert "host" not in seen or seen["host"] == url.split("//")[1]
        zipped = Message("GET", f"{url}/gzip")
        assert await session.send_and_read(zipped) == b"squeezed " * 1000
    await leak_check(session)


async def test_signals_and_metrics_over_http2(tls_cert_files, database, leak_check) -> None:
    seen: list[str] = []
    async with h2_server(tls_cert_files) as url, Session(tls_database=database) as session:
        msg = Message("POST", f"{url}/echo")
        msg.set_request_body_from_bytes("text/plain", b"abc")
        msg.add_flags(anysoup.MessageFlags.COLLECT_METRICS)
        for name in ("starting", "wrote_headers", "wrote_body", "got_headers", "got_body"):
            getattr(msg, name).connect(lambda *_, n=name: seen.append(n))
        msg.finished.connect(lambda *_: seen.append("finished"))
        assert await session.send_and_read(msg) == b"abc"
        assert seen == [
            "starting",
            "wrote_headers",
            "wrote_body",
            "got_headers",
            "got_body",
            "finished",
        ]
        metrics = msg.metrics
        assert metrics is not None
        assert metrics.response_body_size == 3
        assert metrics.request_body_size == 3
        assert metrics.connect_end > 0 and metrics.response_end >= metrics.response_start > 0
    await leak_check(session)


# -- cancellation on a shared connection ---------------------------------------


async def test_cancelled_stream_leaves_the_others(tls_cert_files, database, leak_check) -> None:
    async with (
        h2_server(tls_cert_files) as url,
        Session(tls_database=database, max_conns_per_host=1) as session,
    ):
        body = await session.send(Message("GET", f"{url}/stream?n=1000&size=65536"))
        first = await body.read(1000)
        assert first
        with anyio.move_on_after(0.05):
            await body.read(100 << 20)  # cancelled while reading
        # Another stream on the same connection works meanwhile.
        assert await session.send_and_read(Message("GET", f"{url}/hello")) == b"hello"
        await body.aclose()  # resets the stream; the connection stays
        assert session.statistics() == PoolStatistics(1, 0, 1, 0, 0)
        assert await session.send_and_read(Message("GET", f"{url}/hello")) == b"hello"
        assert len(session._pool.connections) == 1
    await leak_check(session)


async def test_closing_a_body_early_frees_its_window(tls_cert_files, database, leak_check) -> None:
    """Five abandoned 12 MiB downloads would hold 30 MiB > the 15 MiB connection window."""
    async with (
        h2_server(tls_cert_files) as url,
        Session(tls_database=database, max_conns_per_host=1) as session,
    ):
        for _ in range(5):
            body = await session.send(Message("GET", f"{url}/stream?n=200&size=65536"))
            assert await body.read(10)
            await anyio.sleep(0.05)  # the server fills the stream's window meanwhile
            await body.aclose()
        msg = Message("GET", f"{url}/stream?n=100&size=65536")
        with anyio.fail_after(10):
            assert len(await session.send_and_read(msg)) == 100 * 65536
        assert len(session._pool.connections) == 1
    await leak_check(session)


# -- what stays on HTTP/1.1 ------------------------------------------------------


async def ws_echo_app(scope: Any, receive: Any, send: Any) -> None:
    """An ASGI app: a WebSocket echo at any path, echo_app for HTTP."""
    if scope["type"] != "websocket":
        await echo_app(scope, receive, send)
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": event.get("text")})


async def test_websocket_handshake_uses_http1(tls_cert_files, database, leak_check) -> None:
    async with (
        h2_server(tls_cert_files, ws_echo_app) as url,
        Session(tls_database=database) as session,
    ):
        first = Message("GET", f"{url}/hello")
        await session.send_and_read(first)
        assert first.http_version is HTTPVersion.HTTP_2_0
        handshake = Message("GET", url.replace("https", "wss") + "/ws")
        async with session.websocket_connect(handshake) as ws:
            await ws.send_text("over HTTP/1.1")
            assert await ws.receive() == "over HTTP/1.1"
            assert handshake.http_version is HTTPVersion.HTTP_1_1
            assert handshake.force_http1
            await ws.close()
    await leak_check(session)


async def test_connection_based_auth_uses_http1(tls_cert_files, database, leak_check) -> None:
    """A message bound to one connection (NTLM, Negotiate) never shares an HTTP/2 one."""
    async with h2_server(tls_cert_files) as url, Session(tls_database=database) as session:
        # The auth manager sets it after an NTLM handshake (and clears it
        # before each hop): without the manager, the core sees it as it is.
        session.remove_feature_by_type(anysoup.AuthManager)
        msg = Message("GET", f"{url}/hello")
        msg._connection_owner = object()
        assert await session.send_and_read(msg) == b"hello"
        assert msg.http_version is HTTPVersion.HTTP_1_1
        assert not msg.force_http1  # the message's own flag is left alone
    await leak_check(session)
