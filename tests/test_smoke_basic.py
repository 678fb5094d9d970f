"""First end-to-end checks of Session against the scripted server."""

from __future__ import annotations

from servers import ReceivedRequest, ServerConnection, serve_http

import anysoup


async def hello(conn: ServerConnection, req: ReceivedRequest) -> None:
    await conn.respond(200, [("Content-Type", "text/plain")], b"hello " + req.target.encode())


async def test_get_twice_reuses_connection(leak_check) -> None:
    async with serve_http(hello) as server:
        async with anysoup.Session() as session:
            for path in ("/a", "/b"):
                msg = anysoup.Message("GET", server.url_for(path))
                assert await session.send_and_read(msg) == b"hello " + path.encode()
                assert msg.status == 200
            assert server.connections == 1
        await leak_check(session)
