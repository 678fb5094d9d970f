"""The benchmark's Python servers, each run as its own process by servers.py.

``python serve.py ws`` is the WebSocket echo server: the third-party
``websockets`` package (on uvloop when installed), compression and keepalive
pings off, so every client sees plain frames and the server spends nothing
on timers.

``python serve.py http --root DIR`` is the fallback HTTP/1.1 server, used only
when nginx can't be had. It serves the files of ``DIR`` (the fixtures that
servers.py writes for nginx) the way the nginx config does: keep-alive,
Content-Length, ``/gzip`` always answered with the pre-compressed ``gzip.gz``
and ``Content-Encoding: gzip``, ``/cached`` with ``Cache-Control: max-age=3600``,
and big files through ``sendfile``. It parses just enough HTTP for GET
requests without a body; it is a load generator's target, not a general server.

Both bind a free port on 127.0.0.1 themselves and print ``listening PORT`` once
they accept connections, so the harness never races another program for a
port. They stop on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

#: The longest request head this server reads; anything longer is not ours.
MAX_HEAD = 16 * 1024
#: Bodies up to this size are kept in memory; bigger ones go out by sendfile.
IN_MEMORY = 1024 * 1024


async def _announce_and_wait(port: int) -> None:
    """Tell the harness the port, then serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    print(f"listening {port}", flush=True)
    await stop


async def _serve_ws() -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    server = await serve(
        echo, "127.0.0.1", 0, compression=None, ping_interval=None, max_size=None, max_queue=None
    )
    async with server:
        await _announce_and_wait(next(iter(server.sockets)).getsockname()[1])


class _Files:
    """The response head and body source for each path under the root."""

    def __init__(self, root: Path) -> None:
        self.heads: dict[bytes, bytes] = {}
        self.bodies: dict[bytes, bytes | Path] = {}
        for path in sorted(root.iterdir()):
            name = path.name
            if name.endswith(".gz"):
                continue
            extra = b""
            if name == "gzip":
                # Like nginx's ``gzip_static always``: the pre-compressed copy
                # whatever the request's Accept-Encoding (RFC 9110 §8.4).
                path = path.with_name(name + ".gz")
                extra = b"Content-Type: text/plain\r\nContent-Encoding: gzip\r\n"
            elif name == "cached":
                # Like nginx's ``add_header``: fresh for an hour (RFC 9111 §5.2.2.1).
                extra = b"Cache-Control: max-age=3600\r\n"
            size = path.stat().st_size
            target = b"/" + name.encode()
            self.heads[target] = (
                b"HTTP/1.1 200 OK\r\n" + extra + b"Content-Length: %d\r\n\r\n" % size
            )
            self.bodies[target] = path.read_bytes() if size <= IN_MEMORY else path


async def _answer(
    files: _Files, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Serve one connection's requests until the client closes it."""
    loop = asyncio.get_running_loop()
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return
            method, target, _ = head.split(b"\r\n", 1)[0].split(b" ", 2)
            body = files.bodies.get(target) if method == b"GET" else None
            if body is None:
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            elif isinstance(body, bytes):
                writer.write(files.heads[target] + body)
            else:
                writer.write(files.heads[target])
                with body.open("rb") as f:
                    await loop.sendfile(writer.transport, f)
            await writer.drain()
    except (ConnectionError, ValueError):
        return  # a client that went away, or a request line that isn't ours
    finally:
        writer.close()


async def _serve_http(root: Path) -> None:
    files = _Files(root)
    server = await asyncio.start_server(
        lambda r, w: _answer(files, r, w), "127.0.0.1", 0, limit=MAX_HEAD, backlog=4096
    )
    async with server:
        await _announce_and_wait(server.sockets[0].getsockname()[1])


def main() -> None:
    """Run the server named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["http", "ws"])
    parser.add_argument("--root", type=Path, help="the fixture folder (http only)")
    args = parser.parse_args()
    if args.kind == "http":
        asyncio.run(_serve_http(args.root))
        return
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve_ws())
    else:
        uvloop.run(_serve_ws())


if __name__ == "__main__":
    main()
