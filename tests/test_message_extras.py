"""libsoup's smaller Message calls: options pings, filtered handlers, keep-alive, connection ids.

``is_options_ping`` (get and set), ``add_header_handler`` and
``add_status_code_handler`` (handlers that run only for a response header or
a status), ``is_keepalive`` (libsoup's header rule) and ``connection_id``
(which connection carried the latest exchange), each against loopback
servers on both backends, and over HTTP/2 where the answer differs.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from servers import (
    ReceivedRequest,
    ServerConnection,
    echo_app,
    serve_asgi,
    serve_http,
    serve_raw,
)

from anysoup import HTTPVersion, Message, MessageFlags, Session, TlsDatabase

# -- is_options_ping -----------------------------------------------------------------


async def test_set_is_options_ping_sends_options_star_then_the_path_again() -> None:
    seen: list[tuple[str, str]] = []

    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        seen.append((req.method, req.target))
        await conn.respond(200)

    async with serve_http(handler) as server, Session() as session:
        msg = Message("GET", server.url_for("/some/path?q=1"))
        assert msg.is_options_ping is False and msg.get_is_options_ping() is False
        msg.set_is_options_ping(True)
        assert msg.get_is_options_ping() is True
        assert msg.method == "OPTIONS"  # libsoup sets the method with it
        await session.send_and_read(msg)
        msg.is_options_ping = False
        assert msg.method == "OPTIONS"  # turning it off leaves the method alone
        await session.send_and_read(msg)
    assert seen == [("OPTIONS", "*"), ("OPTIONS", "/some/path?q=1")]
    assert Message.new_options_ping("http://example.org/").is_options_ping is True


# -- add_header_handler, add_status_code_handler ----------------------------------------


async def _answer_by_path(conn: ServerConnection, req: ReceivedRequest) -> None:
    if req.target == "/marked":
        await conn.respond(200, [("X-Mark", "yes")], b"marked")
    elif req.target == "/missing":
        await conn.respond(404, [], b"no")
    else:
        await conn.respond(200, [], b"plain")


async def test_header_handler_runs_only_when_the_response_has_the_header() -> None:
    calls: list[tuple[str, str]] = []

    async def coroutine_handler(msg: Message) -> None:
        await anyio.lowlevel.checkpoint()
        calls.append(("async", msg.uri.path))

    async with serve_http(_answer_by_path) as server, Session() as session:
        for path in ("/marked", "/plain"):
            msg = Message("GET", server.url_for(path))
            msg.add_header_handler(
                "got_headers", "x-mark", lambda m: calls.append(("plain", m.uri.path))
            )
            msg.add_header_handler("got-headers", "X-Mark", coroutine_handler)  # libsoup's name
            await session.send_and_read(msg)
    assert calls == [("plain", "/marked"), ("async", "/marked")]


async def test_status_code_handler_runs_only_for_its_status_and_can_be_disconnected() -> None:
    calls: list[tuple[str, int]] = []

    async with serve_http(_answer_by_path) as server, Session() as session:
        for path in ("/missing", "/plain"):
            msg = Message("GET", server.url_for(path))
            msg.add_status_code_handler("got_body", 404, lambda m: calls.append((m.uri.path, 404)))
            gone = msg.add_status_code_handler(
                "finished", 404, lambda m: calls.append(("never", 0))
            )
            msg.finished.disconnect(gone)
            await session.send_and_read(msg)
    assert calls == [("/missing", 404)]


def test_filtered_handlers_need_a_message_signal() -> None:
    msg = Message("GET", "http://example.org/")
    with pytest.raises(ValueError, match="no such signal"):
        msg.add_header_handler("got-header", "X-Mark", print)
    with pytest.raises(ValueError, match="no such signal"):
        msg.add_status_code_handler("request_queued", 200, print)
    with pytest.raises(ValueError, match="no such signal"):
        msg.add_status_code_handler("add_flags", 200, print)  # a method, not a signal


# -- is_keepalive ---------------------------------------------------------------------


def _raw_answer(head: bytes, body: bytes = b"") -> Any:
    async def handler(conn: ServerConnection) -> None:
        await conn.stream.receive_until(b"\r\n\r\n", 65536)
        await conn.send_raw(head + b"\r\n\r\n" + body)

    return handler


KEEPALIVE_CASES = [
    ("HTTP/1.1 200 OK\r\nContent-Length: 2", (), True),
    ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", (), True),
    ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close", (), False),
    ("HTTP/1.1 200 OK\r\nContent-Length: 2", (("Connection", "close"),), False),
    ("HTTP/1.1 200 OK", (), False),  # the body ends with the connection
    ("HTTP/1.1 204 No Content", (), True),  # no body: nothing ends at EOF
    ("HTTP/1.0 200 OK\r\nContent-Length: 2", (), False),
    ("HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: Keep-Alive", (), True),
]


@pytest.mark.parametrize(("head", "request_headers", "expected"), KEEPALIVE_CASES)
async def test_is_keepalive_follows_libsoup_header_rule(
    head: str, request_headers: tuple[tuple[str, str], ...], expected: bool
) -> None:
    body = b"2\r\nok\r\n0\r\n\r\n" if "chunked" in head else b"ok"
    if head.startswith("HTTP/1.1 204"):
        body = b""
    async with serve_raw(_raw_answer(head.encode(), body)) as server, Session() as session:
        msg = Message("GET", server.url_for("/"), headers=request_headers)
        await session.send_and_read(msg)
        assert msg.is_keepalive() is expected


# -- connection_id ----------------------------------------------------------------------


async def test_connection_id_names_the_connection_of_the_latest_exchange() -> None:
    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        await conn.respond(200, [], b"ok")

    events: list[int] = []
    async with serve_http(handler) as server, Session() as session:
        first = Message("GET", server.url_for("/a"))
        assert first.connection_id == 0 and first.get_connection_id() == 0
        first.network_event.connect(lambda m, event, conn: events.append(conn.id))
        await session.send_and_read(first)
        second = Message("GET", server.url_for("/b"))
        await session.send_and_read(second)
        third = Message("GET", server.url_for("/c"))
        third.add_flags(MessageFlags.NEW_CONNECTION)
        await session.send_and_read(third)
    assert first.connection_id > 0
    assert second.get_connection_id() == first.connection_id  # reused
    assert third.connection_id not in (0, first.connection_id)
    assert set(events) == {first.connection_id}


async def test_connection_id_and_keepalive_over_http2(
    tls_cert_files: Any, tls_ca_pem: bytes
) -> None:
    database = TlsDatabase.from_pem(tls_ca_pem)
    async with (
        serve_asgi(
            echo_app, ssl_certfile=tls_cert_files.certfile, ssl_keyfile=tls_cert_files.keyfile
        ) as url,
        Session(tls_database=database) as session,
    ):
        msgs = [Message("GET", f"{url}/hello") for _ in range(3)]
        async with anyio.create_task_group() as tg:
            for msg in msgs:
                tg.start_soon(session.send_and_read, msg)
    assert {msg.http_version for msg in msgs} == {HTTPVersion.HTTP_2_0}
    ids = {msg.connection_id for msg in msgs}
    assert len(ids) == 1 and 0 not in ids  # streams of one connection
    assert not any(msg.is_keepalive() for msg in msgs)  # libsoup: False for HTTP/2
