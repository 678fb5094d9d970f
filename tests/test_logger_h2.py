"""Logger over HTTP/2: libsoup's lines for an HTTP/2 exchange, against hypercorn over TLS.

libsoup 3 prints the version of the exchange in both the request and the
status lines (``soup_http_version_to_string``: ``2``), keeps the standard
reason phrase it gives an HTTP/2 status (HTTP/2 sends none), and prints no
``Host`` on HTTP/2 (the message loses it; the stream carries
``:authority``). These tests check anysoup's lines against a real HTTP/2
server, on both backends, and that an HTTP/1.1 exchange of the same message
(a redirect hop, a session or message kept on HTTP/1.1) still says 1.1.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from servers import CertFiles, ReceivedRequest, ServerConnection, echo_app, serve_asgi, serve_http
from test_logger import SEP, Printed, request_block, response_block

import anysoup
from anysoup import HTTPVersion, Logger, LoggerLogLevel, Message, Session, TlsDatabase
from anysoup._drivers.http2_policy import CONNECTION_SPECIFIC
from anysoup._features.logger.lines_policy import _NOT_ON_HTTP2, http2_fields

LeakCheck = Callable[[Session], Awaitable[None]]
MINIMAL, HEADERS = LoggerLogLevel.MINIMAL, LoggerLogLevel.HEADERS
BOUND = 5.0


def logged_session(
    tls_ca_pem: bytes, level: LoggerLogLevel = HEADERS, *, http2: bool = True
) -> tuple[Session, Printed]:
    """A session trusting the test CA, its Logger printing to a :class:`Printed`.

    Without the ContentDecoder, so the request headers are exactly the test's.
    """
    logger = Logger(level)
    printed = Printed()
    logger.set_printer(printed)
    database = TlsDatabase.from_pem(tls_ca_pem)
    session = Session(tls_database=database, http2=http2, features=[logger])
    session.remove_feature_by_type(anysoup.ContentDecoder)
    return session, printed


@asynccontextmanager
async def h2_server(files: CertFiles, app: Any = echo_app) -> AsyncIterator[tuple[str, int]]:
    """Hypercorn over TLS (ALPN h2, http/1.1): its base URL and port."""
    async with serve_asgi(app, ssl_certfile=files.certfile, ssl_keyfile=files.keyfile) as base:
        yield base, int(base.rpartition(":")[2])


def without_date(lines: list[str]) -> list[str]:
    """The lines but the server's ``date`` header, which changes every second."""
    return [line for line in lines if not line.startswith("< date: ")]


def test_the_logger_drops_the_fields_the_driver_drops() -> None:
    """The Logger may not import the driver (features see only the model): a copy, kept equal."""
    assert {name.encode() for name in _NOT_ON_HTTP2} == CONNECTION_SPECIFIC
    pairs = [("Connection", "close, X-A"), ("x-a", "1"), ("TE", "trailers"), ("X-B", "2")]
    assert http2_fields(pairs) == [("TE", "trailers"), ("X-B", "2")]


async def test_request_and_status_lines_say_http2(
    tls_cert_files: CertFiles, tls_ca_pem: bytes, leak_check: LeakCheck
) -> None:
    session, printed = logged_session(tls_ca_pem)
    async with h2_server(tls_cert_files) as (base, port), session:
        printed.port = port
        with anyio.fail_after(BOUND):
            for path in ("/hello?q=1", "/status/299"):
                msg = Message("GET", base + path, headers=[("X-One", "1")])
                await session.send_and_read(msg)
                assert msg.http_version is HTTPVersion.HTTP_2_0
    server = "< server: hypercorn-h2"
    assert without_date(printed.lines()) == [
        # No Host: it went as :authority (libsoup removes it on HTTP/2).
        *request_block("GET /hello?q=1 HTTP/2", "X-One: 1"),
        SEP,
        # The reason phrase is the standard one: HTTP/2 carries none.
        *response_block("HTTP/2 200 OK", "content-length: 5", "content-type: text/plain"),
        server,
        SEP,
        *request_block("GET /status/299 HTTP/2", "X-One: 1", connection="reused", n=2),
        SEP,
        *response_block("HTTP/2 299 Unknown Error", "content-length: 0", n=2),  # libsoup too
        server,
        SEP,
    ]
    await leak_check(session)


async def test_http2_headers_are_the_fields_the_stream_carried(
    tls_cert_files: CertFiles, tls_ca_pem: bytes, leak_check: LeakCheck
) -> None:
    """Connection-specific fields are not logged, since HTTP/2 never sends them."""
    session, printed = logged_session(tls_ca_pem)
    headers = [
        ("Connection", "X-Hop"),
        ("X-Hop", "1"),  # named by Connection: connection-specific too
        ("Keep-Alive", "5"),
        ("Upgrade", "z"),
        ("TE", "gzip"),  # only "trailers" may go (RFC 9113 §8.2.2)
        ("X-Kept", "yes"),
    ]
    async with h2_server(tls_cert_files) as (base, _), session:
        msg = Message("POST", base + "/headers", headers=headers, body=b"abc")
        with anyio.fail_after(BOUND):
            received = json.loads(await session.send_and_read(msg))
    logged = [d for level, direction, d in printed.calls if direction == ">" and level is HEADERS]
    assert logged == ["X-Kept: yes", "Content-Length: 3"]
    # Hypercorn shows :authority as host.
    assert list(received) == ["host", *(line.partition(":")[0].lower() for line in logged)]
    await leak_check(session)


async def test_an_http1_hop_after_an_http2_one_says_http11(
    tls_cert_files: CertFiles, tls_ca_pem: bytes, leak_check: LeakCheck
) -> None:
    """The message that came over HTTP/2 is redirected to an http:// (HTTP/1.1) server."""

    async def plain(conn: ServerConnection, req: ReceivedRequest) -> None:
        await conn.respond(200, [("Content-Type", "text/plain")], b"here", reason=b"OK")

    session, printed = logged_session(tls_ca_pem)
    async with serve_http(plain) as http_server:
        there = http_server.url_for("/there").encode()

        async def redirect(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "lifespan":
                await echo_app(scope, receive, send)
                return
            headers = [(b"location", there), (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 302, "headers": headers})
            await send({"type": "http.response.body", "body": b""})

        async with h2_server(tls_cert_files, redirect) as (base, port), session:
            printed.port = port
            msg = Message("GET", base + "/away")
            with anyio.fail_after(BOUND):
                assert await session.send_and_read(msg) == b"here"
    assert msg.http_version is HTTPVersion.HTTP_1_1
    lines = [line.replace(f":{http_server.port}", ":HTTP") for line in printed.lines()]
    second = request_block(
        "GET /there HTTP/1.1", "Host: 127.0.0.1:HTTP", connection="new", restarted=True
    )
    second[2] = second[2].replace("127.0.0.1:PORT", "127.0.0.1:HTTP")
    assert without_date(lines) == [
        *request_block("GET /away HTTP/2"),
        SEP,
        *response_block("HTTP/2 302 Found", "location: http://127.0.0.1:HTTP/there"),
        "< content-length: 0",
        "< server: hypercorn-h2",
        SEP,
        *second,
        SEP,
        *response_block("HTTP/1.1 200 OK", "Content-Type: text/plain", "content-length: 4"),
        SEP,
    ]
    await leak_check(session)


@pytest.mark.parametrize("kept_by", ["session", "message"])
async def test_http11_over_tls_is_logged_as_before(
    kept_by: str, tls_cert_files: CertFiles, tls_ca_pem: bytes, leak_check: LeakCheck
) -> None:
    """``Session(http2=False)`` or ``Message.force_http1``: HTTP/1.1 lines, Host first."""
    session, printed = logged_session(tls_ca_pem, MINIMAL, http2=kept_by != "session")
    async with h2_server(tls_cert_files) as (base, port), session:
        printed.port = port
        msg = Message("GET", base + "/hello")
        msg.force_http1 = kept_by == "message"
        with anyio.fail_after(BOUND):
            assert await session.send_and_read(msg) == b"hello"
    assert msg.http_version is HTTPVersion.HTTP_1_1
    # Hypercorn's HTTP/1.1 status line has an empty reason phrase.
    assert printed.lines() == [
        *request_block("GET /hello HTTP/1.1"),
        SEP,
        *response_block("HTTP/1.1 200"),
        SEP,
    ]
    await leak_check(session)
