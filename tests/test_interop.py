"""Interoperability with a real third-party server: hypercorn serving ``echo_app``.

The scripted servers test faults precisely; these tests check that anysoup's
ordinary traffic is what a real HTTP/1.1 server understands, over plain TCP
and TLS, on both backends.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import anyio
import anyio.lowlevel
import pytest
from servers import CertFiles, echo_app, serve_asgi

import anysoup

BOUND = 5.0


def count_connects(msg: anysoup.Message, log: list[object]) -> None:
    """Record the connections ``msg`` opened (its ``network_event`` CONNECTED events)."""

    def on_event(m: anysoup.Message, event: anysoup.NetworkEvent, conn: object) -> None:
        if event is anysoup.NetworkEvent.CONNECTED:
            log.append(conn)

    msg.network_event.connect(on_event)


async def test_get(leak_check) -> None:
    async with serve_asgi(echo_app) as base, anysoup.Session() as session:
        msg = anysoup.Message("GET", f"{base}/hello")
        with anyio.fail_after(BOUND):
            body = await session.send_and_read(msg)
        assert (msg.status, body) == (200, b"hello")
        assert msg.response_headers.get_content_type() == ("text/plain", {})
        assert msg.response_headers.get_content_length() == 5
        assert msg.http_version is anysoup.HTTPVersion.HTTP_1_1
        assert msg.remote_address is not None
        assert msg.remote_address[0] == "127.0.0.1"
    await leak_check(session)


async def test_error_statuses_are_not_errors(leak_check) -> None:
    async with serve_asgi(echo_app) as base, anysoup.Session() as session:
        for status in (204, 404, 500):
            msg = anysoup.Message("GET", f"{base}/status/{status}")
            with anyio.fail_after(BOUND):
                assert await session.send_and_read(msg) == b""
            assert msg.status == status
        msg = anysoup.Message("HEAD", f"{base}/bytes/1000")
        with anyio.fail_after(BOUND):
            assert await session.send_and_read(msg) == b""
        assert msg.response_headers.get_content_length() == 1000
    await leak_check(session)


async def test_post_bytes_echo(leak_check) -> None:
    payload = bytes(range(256)) * 64
    async with serve_asgi(echo_app) as base, anysoup.Session() as session:
        msg = anysoup.Message("POST", f"{base}/echo")
        msg.set_request_body_from_bytes("application/octet-stream", payload)
        with anyio.fail_after(BOUND):
            assert await session.send_and_read(msg) == payload
        assert msg.status == 200
        assert msg.response_headers.get_one("x-method") == "POST"
        assert msg.response_headers.get_one("content-type") == "application/octet-stream"
    await leak_check(session)


async def test_post_streamed_body_is_chunked(leak_check) -> None:
    parts = [b"first,", b"second,", b"x" * 100_000, b"last"]

    async def stream() -> AsyncIterator[bytes]:
        for part in parts:
            await anyio.lowlevel.checkpoint()
            yield part

    async with serve_asgi(echo_app) as base, anysoup.Session() as session:
        msg = anysoup.Message("POST", f"{base}/echo", body=stream())
        msg.request_headers.replace("Content-Type", "text/plain")
        with anyio.fail_after(BOUND):
            assert await session.send_and_read(msg) == b"".join(parts)
        assert msg.response_headers.get_one("x-method") == "POST"
        assert msg.response_headers.get_one("content-type") == "text/plain"

        # What hypercorn saw of the framing.
        probe = anysoup.Message("PUT", f"{base}/headers", body=stream())
        with anyio.fail_after(BOUND):
            seen = json.loads(await session.send_and_read(probe))
        assert seen["transfer-encoding"] == "chunked"
        assert "content-length" not in seen
    await leak_check(session)


async def test_streaming_response_read_chunk_by_chunk(leak_check) -> None:
    count, size = 40, 4096
    async with serve_asgi(echo_app) as base, anysoup.Session() as session:
        msg = anysoup.Message("GET", f"{base}/stream?n={count}&size={size}")
        got_data: list[int] = []
        msg.got_body_data.connect(lambda m, chunk: got_data.append(len(chunk)))
        pieces: list[bytes] = []
        with anyio.fail_after(BOUND):
            async with session.send(msg) as body:
                assert msg.status == 200
                assert msg.response_headers.header_contains("Transfer-Encoding", "chunked")
                while True:
                    try:
                        piece = await body.receive(1000)
                    except anyio.EndOfStream:
                        break
                    assert 0 < len(piece) <= 1000
                    pieces.append(piece)
        assert b"".join(pieces) == b"x" * (count * size)
        assert len(pieces) >= count * size // 1000
        assert sum(got_data) == count * size
    await leak_check(session)


async def test_large_body_with_async_iteration(leak_check) -> None:
    n = 1_000_000
    async with serve_asgi(echo_app) as base, anysoup.Session() as session:
        msg = anysoup.Message("GET", f"{base}/bytes/{n}")
        total = 0
        with anyio.fail_after(BOUND):
            async with session.send(msg) as body:
                async for chunk in body:
                    expected = bytes((total + i) % 256 for i in range(len(chunk)))
                    assert chunk == expected
                    total += len(chunk)
        assert total == n
    await leak_check(session)


async def test_sequential_requests_reuse_one_connection(leak_check) -> None:
    connects: list[object] = []
    async with serve_asgi(echo_app) as base, anysoup.Session() as session:
        with anyio.fail_after(BOUND):
            for i in range(50):
                if i % 2:
                    msg = anysoup.Message("GET", f"{base}/hello")
                    expected = b"hello"
                else:
                    msg = anysoup.Message("PUT", f"{base}/echo", body=b"n=%d" % i)
                    expected = b"n=%d" % i
                count_connects(msg, connects)
                assert await session.send_and_read(msg) == expected
        assert len(connects) == 1
        stats = session.statistics()
        assert (stats.connections, stats.idle, stats.in_use) == (1, 1, 0), stats
    await leak_check(session)


async def test_concurrent_requests_respect_max_conns_per_host(leak_check) -> None:
    connects: list[object] = []
    most_in_use = 0
    results: dict[int, bytes] = {}
    async with serve_asgi(echo_app) as base, anysoup.Session(max_conns_per_host=2) as session:

        async def fetch(i: int) -> None:
            nonlocal most_in_use
            msg = anysoup.Message("GET", f"{base}/stream?n=8&size=2048")
            count_connects(msg, connects)
            async with session.send(msg) as body:
                stats = session.statistics()
                assert stats.connections <= 2, stats
                most_in_use = max(most_in_use, stats.in_use)
                data = b""
                async for chunk in body:
                    data += chunk
                    await anyio.lowlevel.checkpoint()
            results[i] = data

        with anyio.fail_after(BOUND):
            async with anyio.create_task_group() as tg:
                for i in range(12):
                    tg.start_soon(fetch, i)
        assert sorted(results) == list(range(12))
        assert all(data == b"x" * (8 * 2048) for data in results.values())
        # Twelve requests queued at once: both connections were made and used, no third.
        assert len(connects) == 2
        assert most_in_use == 2
        assert session.statistics().connections <= 2
    await leak_check(session)


@pytest.fixture
def tls_database(tls_ca_pem: bytes) -> anysoup.TlsDatabase:
    return anysoup.TlsDatabase.from_pem(tls_ca_pem)


async def test_https(tls_cert_files: CertFiles, tls_database, leak_check) -> None:
    connects: list[object] = []
    async with (
        serve_asgi(
            echo_app, ssl_certfile=tls_cert_files.certfile, ssl_keyfile=tls_cert_files.keyfile
        ) as base,
        anysoup.Session(tls_database=tls_database) as session,
    ):
        assert base.startswith("https://")
        with anyio.fail_after(BOUND):
            msg = anysoup.Message("GET", f"{base}/hello")
            count_connects(msg, connects)
            assert await session.send_and_read(msg) == b"hello"
            assert msg.status == 200
            assert msg.remote_address is not None

            post = anysoup.Message("POST", f"{base}/echo", body=b"over tls")
            assert await session.send_and_read(post) == b"over tls"

            again = anysoup.Message("GET", f"{base}/bytes/70000")
            count_connects(again, connects)
            assert await session.send_and_read(again) == bytes(i % 256 for i in range(70000))
        # GETs share one TLS connection (the POST had a fresh one of its own).
        assert len(connects) == 1
    await leak_check(session)


async def test_https_untrusted_hypercorn_is_tls_error(
    tls_cert_files: CertFiles, leak_check
) -> None:
    async with (
        serve_asgi(
            echo_app, ssl_certfile=tls_cert_files.certfile, ssl_keyfile=tls_cert_files.keyfile
        ) as base,
        anysoup.Session() as session,
    ):
        msg = anysoup.Message("GET", f"{base}/hello")
        with anyio.fail_after(BOUND), pytest.raises(anysoup.TlsError) as info:
            await session.send_and_read(msg)
        assert anysoup.TlsCertificateFlags.UNKNOWN_CA in info.value.errors
        assert info.value.message is msg
    await leak_check(session)
