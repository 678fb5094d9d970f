"""The chain of built-in features: its fixed order, per-message opt-outs, live changes.

Each feature's own behaviour has its module (test_redirects, test_decoder,
test_sniffer, test_logger); this one checks how they compose: the order comes
from class attributes only, every stage honours ``disable_feature``, and
adding or removing features while a request is under way neither changes
that request nor breaks the next one.
"""

from __future__ import annotations

import gzip
from collections.abc import Awaitable, Callable

import anyio
import pytest
from servers import ReceivedRequest, ServerConnection, serve_http

import anysoup
from anysoup import (
    ContentDecoder,
    ContentSniffer,
    Logger,
    LoggerLogLevel,
    Message,
    Session,
    SessionFeature,
)

LeakCheck = Callable[[Session], Awaitable[None]]
BOUND = 5.0
PAGE = b"<!DOCTYPE html><title>chain</title>" + b"x" * 2000


async def gzipped_page(conn: ServerConnection, req: ReceivedRequest) -> None:
    """An HTML page, gzip-encoded, with no Content-Type: something for every stage."""
    await conn.respond(200, [("Content-Encoding", "gzip")], gzip.compress(PAGE, mtime=0))


def recorder() -> tuple[Logger, list[str]]:
    lines: list[str] = []
    logger = Logger(LoggerLogLevel.MINIMAL)
    logger.set_printer(lambda _log, _level, direction, data: lines.append(f"{direction} {data}"))
    return logger, lines


def test_positions_follow_the_design_order() -> None:
    """redirect → HSTS → cache → sniffer → decoder → auth → cookies → logger (DESIGN §1)."""
    positions = [
        SessionFeature.POSITION_HSTS,
        SessionFeature.POSITION_CACHE,
        SessionFeature.POSITION_SNIFFER,
        SessionFeature.POSITION_DECODER,
        SessionFeature.POSITION_AUTH,
        SessionFeature.POSITION_COOKIES,
        SessionFeature.POSITION_LOGGER,
    ]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert ContentSniffer.chain_position == SessionFeature.POSITION_SNIFFER
    assert ContentDecoder.chain_position == SessionFeature.POSITION_DECODER
    assert Logger.chain_position == SessionFeature.POSITION_LOGGER


def test_defaults_and_replacing_one() -> None:
    """A new session has AuthManager, ContentDecoder and WebsocketExtensionManager
    (DESIGN §6); an instance given replaces one."""
    assert [type(f) for f in Session().get_features()] == [
        anysoup.AuthManager,
        ContentDecoder,
        anysoup.WebsocketExtensionManager,
    ]
    mine = ContentDecoder()
    session = Session(features=[mine])
    assert session.get_features()[-1] is mine and len(session.get_features()) == 3
    assert session.get_feature(ContentDecoder) is mine


async def test_order_does_not_depend_on_adding_order(leak_check: LeakCheck) -> None:
    """Logger added before the sniffer still logs the raw (encoded) exchange innermost."""
    logger, lines = recorder()
    sniffed: list[str] = []
    async with serve_http(gzipped_page) as server:
        async with Session(features=[logger, ContentSniffer()]) as session:
            msg = Message("GET", server.url_for("/page"))
            msg.content_sniffed.connect(lambda m, ctype, params: sniffed.append(ctype))
            with anyio.fail_after(BOUND):
                body = await session.send_and_read(msg)
        await leak_check(session)
    assert body == PAGE
    # The sniffer sat outside the decoder: it saw HTML, not gzip bytes.
    assert sniffed == ["text/html"]
    assert lines[0] == "> GET /page HTTP/1.1"
    assert any(line.startswith("< HTTP/1.1 200") for line in lines)


async def test_every_stage_honours_disable_feature(leak_check: LeakCheck) -> None:
    logger, lines = recorder()
    sniffed: list[str] = []
    async with serve_http(gzipped_page) as server:
        async with Session(features=[logger, ContentSniffer()]) as session:
            msg = Message("GET", server.url_for("/raw"))
            msg.content_sniffed.connect(lambda m, ctype, params: sniffed.append(ctype))
            for feature_type in (ContentDecoder, ContentSniffer, Logger):
                msg.disable_feature(feature_type)
                assert session.get_feature_for_message(feature_type, msg) is None
            with anyio.fail_after(BOUND):
                body = await session.send_and_read(msg)
        await leak_check(session)
    assert body == gzip.compress(PAGE, mtime=0)  # not decoded
    assert "Accept-Encoding" not in msg.request_headers
    assert sniffed == [] and lines == []


async def test_features_changed_while_a_request_is_under_way(leak_check: LeakCheck) -> None:
    """The request in flight keeps its chain and filters; the next one gets the new chain."""
    headers_sent = anyio.Event()
    go_on = anyio.Event()
    encoded = gzip.compress(PAGE, mtime=0)

    async def slow_body(conn: ServerConnection, req: ReceivedRequest) -> None:
        if req.target == "/slow":
            await conn.send_head(
                200, [("Content-Encoding", "gzip"), ("Content-Length", str(len(encoded)))]
            )
            headers_sent.set()
            await go_on.wait()
            await conn.send_data(encoded)
            await conn.end()
        else:
            await gzipped_page(conn, req)

    logger, lines = recorder()
    async with serve_http(slow_body) as server:
        async with Session(features=[logger]) as session:
            with anyio.fail_after(BOUND):
                async with session.send(Message("GET", server.url_for("/slow"))) as stream:
                    await headers_sent.wait()
                    # Change everything while the body is still on its way.
                    session.remove_feature_by_type(ContentDecoder)
                    session.remove_feature(logger)
                    session.add_feature(ContentSniffer())
                    go_on.set()
                    body = await stream.read()
                assert body == PAGE  # still decoded by the decoder it started with
                assert "> GET /slow HTTP/1.1" in lines
                count = len(lines)

                msg = Message("GET", server.url_for("/after"))
                sniffed: list[str] = []
                msg.content_sniffed.connect(lambda m, ctype, params: sniffed.append(ctype))
                after = await session.send_and_read(msg)
            assert after == encoded  # no decoder any more
            assert sniffed == ["application/x-gzip"]  # the new sniffer saw gzip bytes
            assert len(lines) == count  # the removed logger logged nothing more
            assert session.statistics().in_use == 0
        await leak_check(session)


def test_adding_a_feature_type_twice_is_refused() -> None:
    session = Session()
    with pytest.raises(ValueError, match="ContentDecoder"):
        session.add_feature(ContentDecoder())
    session.add_feature_by_type(Logger)
    assert isinstance(session.get_feature(Logger), anysoup.Logger)
