"""The minimal ``python -m anysoup URL`` command, run as a subprocess."""

from __future__ import annotations

import shlex
import subprocess
import sys

import anyio
from servers import ReceivedRequest, ServerConnection, serve_http


async def body_for_path(conn: ServerConnection, req: ReceivedRequest) -> None:
    status = 404 if req.target == "/missing" else 200
    await conn.respond(status, [("Content-Type", "text/plain")], b"body of " + req.target.encode())


async def run_cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return await anyio.run_process([sys.executable, "-m", "anysoup", *args], check=False)


async def test_prints_the_body() -> None:
    async with serve_http(body_for_path) as server:
        result = await run_cli(server.url_for("/hello"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"body of /hello"
    user_agent = server.requests[0].header("user-agent")
    assert user_agent is not None and user_agent.startswith("anysoup/")


async def test_http_error_status_exits_22() -> None:
    async with serve_http(body_for_path) as server:
        result = await run_cli(server.url_for("/missing"))
    assert result.returncode == 22
    assert result.stdout == b"body of /missing"


async def test_refused_connection_is_one_line_naming_host_and_cause() -> None:
    async with serve_http(body_for_path) as server:
        url = server.url_for("/")
    result = await run_cli(url)  # the server is gone: nothing listens there now
    assert result.returncode == 7
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert "127.0.0.1" in lines[0] and "refused" in lines[0]
    assert "Traceback" not in result.stderr.decode()


async def test_bad_url_is_a_usage_error() -> None:
    result = await run_cli("ftp://example.org/")
    assert result.returncode == 3
    assert b"scheme" in result.stderr and b"Traceback" not in result.stderr


async def test_reader_going_away_is_quiet() -> None:
    """``anysoup URL | head``: a closed pipe ends the command without a traceback."""

    async def big(conn: ServerConnection, req: ReceivedRequest) -> None:
        await conn.respond(200, [], b"x" * (4 << 20))

    async with serve_http(big) as server:
        command = f"{shlex.quote(sys.executable)} -m anysoup {server.url} | head -c 10 >/dev/null"
        with anyio.fail_after(20):
            result = await anyio.run_process(
                ["bash", "-c", command + "; echo rc=${PIPESTATUS[0]}"], check=False
            )
    assert result.stdout.strip() == b"rc=23"
    assert b"Traceback" not in result.stderr and result.stderr == b""
