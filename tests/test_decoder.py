"""ContentDecoder: Accept-Encoding, every coding, stacks, limits, bombs and errors.

First the decoders alone, as tables fed in every chunking (they are policy:
no I/O). Then on the wire against the scripted h11 server of ``servers.py``,
bodies framed by Content-Length and chunked, on both backends; then against
httpbin, a third-party server. ``leak_check`` makes sure each session left
nothing behind.
"""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import anyio
import brotli
import h11
import pytest
import zstandard
from servers import HeadersLike, ReceivedRequest, ServerConnection, serve_http

from anysoup import (
    ContentDecoder,
    EncodingError,
    IncompleteBody,
    Message,
    MessageHeaders,
    Session,
    TlsDatabase,
)
from anysoup._features.decoder import codings_policy as _codings
from anysoup._features.decoder import decoder as _decoder
from anysoup._features.decoder.decoder import CHUNK_LIMIT

LeakCheck = Callable[[Session], Awaitable[None]]
Handler = Callable[[ServerConnection, ReceivedRequest], Awaitable[None]]

#: No test here may take longer than this.
BOUND = 10.0

# Text that compresses like a web page: words, not zeros, not noise.
_RNG = random.Random(7)
_WORDS = [
    "".join(_RNG.choices("abcdefghijklmnopqrstuvwxyz", k=_RNG.randint(2, 9))) for _ in range(800)
]
TEXT = " ".join(_RNG.choices(_WORDS, k=40000)).encode()[: 200 * 1024]


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    return compressor.compress(data) + compressor.flush()


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,  # RFC 9110 §8.4.1.2: zlib-wrapped
    "br": brotli.compress,
    "zstd": zstandard.ZstdCompressor(level=3).compress,
}


def encode(data: bytes, codings: Sequence[str]) -> bytes:
    """Apply ``codings`` in the order listed, as a server does."""
    for coding in codings:
        data = ENCODERS[coding](data)
    return data


# -- the decoders alone --------------------------------------------------------


def feed(decoder: Any, data: bytes, sizes: Iterable[int]) -> bytes:
    """Run a decoder as the filter does, with input cut into pieces of ``sizes``."""
    out = []
    pos = 0
    cuts = iter(sizes)
    while True:
        if decoder.pending:
            piece = decoder.decode(b"")
        elif pos >= len(data):
            decoder.finish()
            return b"".join(out)
        else:
            size = next(cuts)
            piece = decoder.decode(data[pos : pos + size])
            pos += size
        assert len(piece) <= CHUNK_LIMIT
        out.append(piece)


def chunkings(seed: int) -> list[Iterable[int]]:
    rng = random.Random(seed)
    return [
        iter(lambda: 1 << 30, None),  # everything at once
        iter(lambda: 1, None),  # byte by byte
        iter(lambda: rng.choice([1, 2, 3, 5, 64, 1000, 65536]), None),
    ]


def zstd_streamed(data: bytes) -> bytes:
    """A zstd frame without content size, in several blocks (as a streaming server makes)."""
    compressor = zstandard.ZstdCompressor(level=1, write_checksum=True).compressobj()
    return compressor.compress(data) + compressor.flush()


SKIPPABLE = b"\x50\x2a\x4d\x18" + (5).to_bytes(4, "little") + b"hello"
DECODER_CASES = [
    ("gzip", lambda: _codings.ZlibDecoder(True), gzip.compress(TEXT), TEXT),
    ("zlib", lambda: _codings.ZlibDecoder(False), zlib.compress(TEXT), TEXT),
    ("raw deflate", lambda: _codings.ZlibDecoder(False), raw_deflate(TEXT), TEXT),
    ("br", lambda: _codings.BrotliDecoder(brotli), brotli.compress(TEXT), TEXT),
    ("zstd", lambda: _codings.ZstdDecoder(zstandard), zstd_streamed(TEXT), TEXT),
    (
        "zstd frames",
        lambda: _codings.ZstdDecoder(zstandard),
        SKIPPABLE + ENCODERS["zstd"](b"abc") + zstd_streamed(TEXT) + SKIPPABLE + b"junk",
        b"abc" + TEXT,
    ),
    (
        "gzip members",
        lambda: _codings.ZlibDecoder(True),
        b"".join(gzip.compress(TEXT[i : i + 999]) for i in range(0, 29970, 999)) + b"\0\0junk",
        TEXT[:29970],
    ),
]


@pytest.mark.parametrize(
    ("make", "data", "expected"), [c[1:] for c in DECODER_CASES], ids=[c[0] for c in DECODER_CASES]
)
def test_decoder_any_chunking(make: Callable[[], Any], data: bytes, expected: bytes) -> None:
    for seed, sizes in enumerate(chunkings(len(data))):
        assert feed(make(), data, sizes) == expected, seed


@pytest.mark.parametrize(
    ("make", "data"), [c[1:3] for c in DECODER_CASES[:5]], ids=[c[0] for c in DECODER_CASES[:5]]
)
def test_decoder_truncated(make: Callable[[], Any], data: bytes) -> None:
    for cut in (1, 7, len(data) // 2, len(data) - 1):
        with pytest.raises(_codings.CodingFailure, match="ends early"):
            feed(make(), data[:-cut], iter(lambda: 4096, None))


@pytest.mark.parametrize(
    ("make", "data"), [c[1:3] for c in DECODER_CASES[:5]], ids=[c[0] for c in DECODER_CASES[:5]]
)
def test_decoder_empty_input_is_fine(make: Callable[[], Any], data: bytes) -> None:
    assert feed(make(), b"", []) == b""  # a HEAD, a 204, an empty body said to be encoded


@pytest.mark.parametrize(
    ("make", "data"),
    [
        (lambda: _codings.ZlibDecoder(True), b"this is not gzip data at all"),
        (lambda: _codings.ZlibDecoder(True), gzip.compress(TEXT)[:-8] + b"\0" * 8),  # CRC
        (lambda: _codings.ZlibDecoder(False), zlib.compress(TEXT)[:-4] + b"\0" * 4),  # Adler-32
        (lambda: _codings.BrotliDecoder(brotli), brotli.compress(TEXT) + b"more"),
        (lambda: _codings.ZstdDecoder(zstandard), b"not zstd"),
        (lambda: _codings.ZstdDecoder(zstandard), zstd_streamed(TEXT)[:-4] + b"\0" * 4),
    ],
    ids=["gzip magic", "gzip crc", "zlib adler", "br trailing", "zstd magic", "zstd checksum"],
)
def test_decoder_corrupt(make: Callable[[], Any], data: bytes) -> None:
    with pytest.raises(_codings.CodingFailure, match="corrupt"):
        feed(make(), data, iter(lambda: 4096, None))


def test_gzip_magic_split_across_chunks() -> None:
    data = gzip.compress(b"one") + gzip.compress(b"two")
    first = data.index(b"\x1f\x8b", 2)  # where the second member starts
    sizes = [first + 1, 1, len(data)]  # its two magic bytes in different chunks
    assert feed(_codings.ZlibDecoder(True), data, iter(sizes)) == b"onetwo"


def test_old_brotli_feeds_small_pieces() -> None:
    # brotli < 1.2 has no output_buffer_limit: input goes in 1 KiB at a time
    # and output beyond CHUNK_LIMIT waits for the next call.
    decoder = _codings.BrotliDecoder(brotli)
    decoder._limited = False
    data = brotli.compress(bytes(5 << 20) + TEXT)
    assert feed(decoder, data, iter(lambda: 1 << 20, None)) == bytes(5 << 20) + TEXT


def test_zstd_window_over_8_mib_is_refused() -> None:
    # RFC 9659 §3: the "zstd" coding's window is at most 8 MiB.
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=24)
    data = zstandard.ZstdCompressor(compression_params=params).compress(bytes(20 << 20))
    with pytest.raises(_codings.CodingFailure, match="corrupt"):
        feed(_codings.ZstdDecoder(zstandard), data, iter(lambda: 65536, None))


def test_many_gzip_members_linear() -> None:
    # Each member end used to copy the whole rest of the chunk (unused_data):
    # quadratic. Not timed (speed is the bench's job), only checked for content.
    members = [b"%d\n" % i for i in range(10000)]
    data = b"".join(gzip.compress(m) for m in members)
    for sizes in (iter([len(data)]), iter(lambda: 65536, None)):
        assert feed(_codings.ZlibDecoder(True), data, sizes) == b"".join(members)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([("Content-Type", "text/plain")], None),
        ([("content-encoding", "gzip")], "gzip"),
        ([("Content-Encoding", "gzip"), ("X", "1"), ("CONTENT-ENCODING", "br")], "gzip, br"),
    ],
)
def test_content_encoding_lookup(lines: list[tuple[str, str]], expected: str | None) -> None:
    # Parsed by h11 (looked up without decoding the block) and built by hand.
    parsed = h11.Response(status_code=200, headers=lines).headers
    assert _decoder._content_encoding(MessageHeaders._from_raw(parsed)) == expected
    assert _decoder._content_encoding(MessageHeaders(lines)) == expected


def test_import_anysoup_does_not_import_codecs() -> None:
    code = "import sys, anysoup; print(sorted({'brotli', 'zstandard'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- servers -------------------------------------------------------------------


def encoded(
    body: bytes,
    content_encoding: str | list[str] | None,
    *,
    chunked: bool = False,
    headers: HeadersLike = (("Content-Type", "text/plain"),),
) -> Handler:
    """Answer with ``body`` as it is, under the given Content-Encoding line(s).

    Chunked bodies go out in 1000-byte pieces, so decoding crosses chunk
    boundaries everywhere.
    """
    lines = [content_encoding] if isinstance(content_encoding, str) else content_encoding or []
    fields = [*headers] + [("Content-Encoding", v) for v in lines]

    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        if not chunked:
            await conn.respond(200, fields, body)
            return
        await conn.send_head(200, fields)
        for i in range(0, len(body), 1000):
            await conn.send_data(body[i : i + 1000])
        await conn.end()

    return handler


async def headers_app(conn: ServerConnection, req: ReceivedRequest) -> None:
    """200 with the request's headers as JSON (lists of values per lowercased name)."""
    seen: dict[str, list[str]] = {}
    for name, value in req.headers:
        seen.setdefault(name, []).append(value)
    await conn.respond(200, [("Content-Type", "application/json")], json.dumps(seen).encode())


async def fetch(
    handler: Handler, leak_check: LeakCheck, *, prepare: Callable[[Message], None] | None = None
) -> tuple[Message, bytes]:
    """GET from a server running ``handler``; return the message and its body."""
    async with serve_http(handler) as server:
        async with Session() as session:
            msg = Message("GET", server.url_for("/"))
            if prepare is not None:
                prepare(msg)
            with anyio.fail_after(BOUND):
                body = await session.send_and_read(msg)
        await leak_check(session)
    return msg, body


async def expect_encoding_error(handler: Handler, leak_check: LeakCheck, *words: str) -> None:
    """Reading the body fails: an EncodingError for the message naming the host and ``words``."""
    async with serve_http(handler) as server:
        async with Session() as session:
            msg = Message("GET", server.url_for("/"))
            with anyio.fail_after(BOUND), pytest.raises(EncodingError) as info:
                await session.send_and_read(msg)
            assert info.value.message is msg
            text = str(info.value)
            assert f"decoding the response body from 127.0.0.1:{server.port}" in text, text
            for word in words:
                assert word in text, text
            # The connection is closed, or idle when the transfer itself was complete.
            assert session.statistics().in_use == 0
            again = Message("GET", server.url_for("/"))
            again.disable_feature(ContentDecoder)
            await session.send_and_read(again)  # the session goes on
        await leak_check(session)


# -- Accept-Encoding -----------------------------------------------------------


async def test_accept_encoding_over_http(leak_check: LeakCheck) -> None:
    _, body = await fetch(headers_app, leak_check)
    assert json.loads(body)["accept-encoding"] == ["gzip, deflate"]


async def test_accept_encoding_over_https(
    tls_server_context: Any, tls_ca_pem: bytes, leak_check: LeakCheck
) -> None:
    # libsoup's rule: brotli (and zstd) only over TLS, and only when importable.
    async with serve_http(headers_app, ssl_context=tls_server_context) as server:
        async with Session(tls_database=TlsDatabase.from_pem(tls_ca_pem)) as session:
            with anyio.fail_after(BOUND):
                body = await session.send_and_read(Message("GET", server.url_for("/")))
        await leak_check(session)
    assert json.loads(body)["accept-encoding"] == ["gzip, deflate, br, zstd"]


def test_accept_encoding_over_https_without_the_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_codings, "load_library", lambda name: None)
    _decoder._accept_https.cache_clear()
    try:
        assert _decoder._accept_https() == "gzip, deflate"
    finally:
        _decoder._accept_https.cache_clear()


async def test_accept_encoding_of_the_message_is_kept(leak_check: LeakCheck) -> None:
    def prepare(msg: Message) -> None:
        msg.request_headers.append("Accept-Encoding", "identity")

    _, body = await fetch(headers_app, leak_check, prepare=prepare)
    assert json.loads(body)["accept-encoding"] == ["identity"]


# -- decoding on the wire ------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
@pytest.mark.parametrize("coding", ["gzip", "x-gzip", "deflate", "br", "zstd"])
async def test_each_coding(coding: str, chunked: bool, leak_check: LeakCheck) -> None:
    wire = encode(TEXT, [coding])
    msg, body = await fetch(encoded(wire, coding, chunked=chunked), leak_check)
    assert body == TEXT
    # libsoup: the headers stay as received.
    assert msg.response_headers.get_one("Content-Encoding") == coding
    if not chunked:
        assert msg.response_headers.get_content_length() == len(wire)


async def test_raw_deflate(leak_check: LeakCheck) -> None:
    # Some servers send "deflate" without its zlib wrapping; libsoup accepts it.
    _, body = await fetch(encoded(raw_deflate(TEXT), "deflate", chunked=True), leak_check)
    assert body == TEXT


async def test_coding_names_ignore_case(leak_check: LeakCheck) -> None:
    _, body = await fetch(encoded(gzip.compress(TEXT), "GZip"), leak_check)
    assert body == TEXT


@pytest.mark.parametrize(
    "lines",
    [["gzip, br"], ["gzip", "br"], ["deflate, zstd, gzip"], ["br,, gzip , identity"]],
    ids=["one line", "two lines", "three codings", "spaces and identity"],
)
@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
async def test_stacked_codings_undone_last_first(
    lines: list[str], chunked: bool, leak_check: LeakCheck
) -> None:
    codings = [c.strip() for line in lines for c in line.split(",")]
    wire = encode(TEXT, [c for c in codings if c and c != "identity"])
    _, body = await fetch(encoded(wire, lines, chunked=chunked), leak_check)
    assert body == TEXT


async def test_five_codings_are_decoded(leak_check: LeakCheck) -> None:
    wire = encode(TEXT, ["gzip"] * 5)
    _, body = await fetch(encoded(wire, ", ".join(["gzip"] * 5)), leak_check)
    assert body == TEXT


@pytest.mark.parametrize("count", [6, 100])
async def test_more_than_five_codings_are_refused(count: int, leak_check: LeakCheck) -> None:
    # urllib3 CVE-2025-66418: a long chain costs a decoder per link.
    wire = encode(b"x", ["gzip"] * count)
    handler = encoded(wire, ", ".join(["gzip"] * count))
    await expect_encoding_error(handler, leak_check, f"{count} content codings", "at most 5")


@pytest.mark.parametrize("content_encoding", ["compress", "gzip, compress", "br, foo", "identity"])
async def test_unknown_coding_passes_the_body_through(
    content_encoding: str, leak_check: LeakCheck
) -> None:
    # libsoup: one coding it doesn't know, and none of them is decoded.
    wire = gzip.compress(b"as it came")
    _, body = await fetch(encoded(wire, content_encoding), leak_check)
    assert body == wire


@pytest.mark.parametrize("content_type", ["application/gzip", "application/x-gzip; q=1"])
async def test_gzip_file_is_not_unpacked(content_type: str, leak_check: LeakCheck) -> None:
    # libsoup's Apache workaround (bgo 613361): a .gz download keeps its bytes.
    wire = gzip.compress(TEXT)
    handler = encoded(wire, "gzip", headers=[("Content-Type", content_type)])
    _, body = await fetch(handler, leak_check)
    assert body == wire


async def test_trailing_junk_after_gzip_is_ignored(leak_check: LeakCheck) -> None:
    # libsoup and urllib3 ignore bytes after the last member.
    wire = gzip.compress(TEXT) + b"\0\0\0 trailing junk"
    _, body = await fetch(encoded(wire, "gzip", chunked=True), leak_check)
    assert body == TEXT


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
async def test_concatenated_gzip_members(chunked: bool, leak_check: LeakCheck) -> None:
    # RFC 1952 §2.2: a gzip file is a series of members. 10,000 tiny ones here,
    # many to a network read: decoding them is linear (not timed; see the policy test).
    members = [b"line %d\n" % i for i in range(10000)]
    wire = b"".join(gzip.compress(m) for m in members)
    _, body = await fetch(encoded(wire, "gzip", chunked=chunked), leak_check)
    assert body == b"".join(members)


@pytest.mark.parametrize("method", ["HEAD", "GET"])
async def test_empty_body_said_to_be_encoded(method: str, leak_check: LeakCheck) -> None:
    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        await conn.respond(200, [("Content-Encoding", "gzip"), ("Content-Length", "0")])

    async with serve_http(handler) as server:
        async with Session() as session:
            with anyio.fail_after(BOUND):
                body = await session.send_and_read(Message(method, server.url_for("/")))
        await leak_check(session)
    assert body == b""


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
async def test_corrupt_gzip(chunked: bool, leak_check: LeakCheck) -> None:
    wire = bytearray(gzip.compress(TEXT))
    wire[len(wire) // 2 : len(wire) // 2 + 16] = bytes(16)
    handler = encoded(bytes(wire), "gzip", chunked=chunked)
    await expect_encoding_error(handler, leak_check, "'gzip'", "corrupt")


async def test_not_gzip_at_all(leak_check: LeakCheck) -> None:
    # libsoup would pass a mislabelled body through; DESIGN §6 makes it an error.
    handler = encoded(b"<html>not compressed</html>", "gzip")
    await expect_encoding_error(handler, leak_check, "'gzip'", "not gzip")


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
async def test_truncated_stream(coding: str, leak_check: LeakCheck) -> None:
    # The transfer is complete (Content-Length), the compressed data is not:
    # an EncodingError, never a silently short body.
    wire = encode(TEXT, [coding])
    handler = encoded(wire[: len(wire) // 2], coding)
    await expect_encoding_error(handler, leak_check, f"{coding!r}", "ends early")


async def test_transfer_cut_short_is_incomplete_body(leak_check: LeakCheck) -> None:
    # When the transfer itself ends early, that is what is reported.
    wire = gzip.compress(TEXT)

    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        headers = [("Content-Encoding", "gzip"), ("Content-Length", str(len(wire)))]
        await conn.send_head(200, headers)
        await conn.send_data(wire[: len(wire) // 2])
        await conn.close()

    async with serve_http(handler) as server:
        async with Session() as session:
            with anyio.fail_after(BOUND), pytest.raises(IncompleteBody):
                await session.send_and_read(Message("GET", server.url_for("/")))
        await leak_check(session)


async def test_stacked_error_names_the_coding(leak_check: LeakCheck) -> None:
    wire = brotli.compress(b"this is not gzip inside")
    await expect_encoding_error(encoded(wire, "gzip, br"), leak_check, "'gzip'", "corrupt")


async def test_missing_library(monkeypatch: pytest.MonkeyPatch, leak_check: LeakCheck) -> None:
    monkeypatch.setattr(_codings, "load_library", lambda name: None)
    handler = encoded(brotli.compress(TEXT), "br")
    await expect_encoding_error(
        handler, leak_check, "'br'", "brotli or brotlicffi library", "anysoup[brotli]"
    )


async def test_brotlicffi_decodes_br_when_brotli_is_missing(
    monkeypatch: pytest.MonkeyPatch,
    tls_server_context: Any,
    tls_ca_pem: bytes,
    leak_check: LeakCheck,
) -> None:
    # PyPy users have brotlicffi (brotli's API, through cffi) instead of brotli.
    real = _codings.load_library.__wrapped__
    monkeypatch.setattr(
        _codings, "load_library", lambda name: None if name == "brotli" else real(name)
    )
    _decoder._accept_https.cache_clear()
    try:
        assert _decoder._accept_https() == "gzip, deflate, br, zstd"
        _msg, body = await fetch(encoded(brotli.compress(TEXT), "br"), leak_check)
        assert body == TEXT
    finally:
        _decoder._accept_https.cache_clear()


async def test_disabled_for_one_message(leak_check: LeakCheck) -> None:
    wire = gzip.compress(TEXT)
    seen: list[str | None] = []

    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        seen.append(req.header("accept-encoding"))
        await conn.respond(200, [("Content-Encoding", "gzip")], wire)

    _, body = await fetch(handler, leak_check, prepare=lambda m: m.disable_feature(ContentDecoder))
    assert body == wire
    assert seen == [None]  # no Accept-Encoding either


async def test_removed_from_the_session(leak_check: LeakCheck) -> None:
    wire = gzip.compress(TEXT)
    async with serve_http(encoded(wire, "gzip")) as server:
        async with Session() as session:
            session.remove_feature_by_type(ContentDecoder)
            with anyio.fail_after(BOUND):
                body = await session.send_and_read(Message("GET", server.url_for("/")))
        await leak_check(session)
    assert body == wire


async def test_connection_reused_after_a_decoded_body(leak_check: LeakCheck) -> None:
    async with serve_http(encoded(gzip.compress(TEXT), "gzip")) as server:
        async with Session() as session:
            with anyio.fail_after(BOUND):
                for _ in range(3):
                    assert await session.send_and_read(Message("GET", server.url_for("/"))) == TEXT
        await leak_check(session)
    assert server.connections == 1


# -- bounded output ------------------------------------------------------------


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
async def test_receive_returns_at_most_what_is_asked(coding: str, leak_check: LeakCheck) -> None:
    data = bytes(3 << 20) + TEXT
    async with serve_http(encoded(encode(data, [coding]), coding, chunked=True)) as server:
        async with Session() as session:
            pieces = []
            with anyio.fail_after(BOUND):
                async with session.send(Message("GET", server.url_for("/"))) as body:
                    while chunk := await body.read(1000):
                        assert len(chunk) <= 1000
                        pieces.append(chunk)
        await leak_check(session)
    assert b"".join(pieces) == data


def _gzip_of_zeros() -> tuple[bytes, bytes]:
    """The start of a gzip stream of zeros, and a piece that adds 1 MiB of zeros each time.

    After a full flush the compressor starts afresh and byte-aligned, so
    compressing the same block again gives the same bytes: the stream can be
    made as long as wanted without compressing anything more.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    start = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    piece = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH) == piece
    return start, piece


async def test_decompression_bomb(leak_check: LeakCheck) -> None:
    # 10 GiB of zeros in about 10 MiB of gzip, sent only as fast as it is read.
    # Reading 50 MiB of it holds no more than a few chunks at a time.
    start, piece = _gzip_of_zeros()
    burst = piece * 64  # 64 MiB of zeros in some 64 KiB

    async def bomb(conn: ServerConnection, req: ReceivedRequest) -> None:
        await conn.send_head(200, [("Content-Encoding", "gzip")])
        await conn.send_data(start)
        for _ in range(160):
            await conn.send_data(burst)
        await conn.end()

    async with serve_http(bomb) as server:
        async with Session() as session:
            tracemalloc.start()
            try:
                with anyio.fail_after(30):
                    async with session.send(Message("GET", server.url_for("/"))) as body:
                        total = 0
                        while total < 50 << 20:
                            chunk = await body.receive(65536)
                            assert 0 < len(chunk) <= 65536
                            assert not chunk.strip(b"\0")
                            total += len(chunk)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
        await leak_check(session)
    assert peak < 4 << 20, f"peak {peak} bytes while reading 50 MiB"


# -- a third-party server: httpbin ---------------------------------------------


@pytest.mark.parametrize(
    ("path", "flag"), [("/gzip", "gzipped"), ("/deflate", "deflated"), ("/brotli", "brotli")]
)
async def test_httpbin(path: str, flag: str, httpbin: Any, leak_check: LeakCheck) -> None:
    async with Session() as session:
        msg = Message("GET", httpbin.url + path)
        with anyio.fail_after(BOUND):
            body = await session.send_and_read(msg)
    await leak_check(session)
    assert msg.response_headers.get_one("Content-Encoding") in ("gzip", "deflate", "br")
    answer = json.loads(body)
    assert answer[flag] is True
    assert answer["headers"]["Accept-Encoding"] == "gzip, deflate"


async def test_httpbin_over_https_offers_brotli(
    httpbin_secure: Any, leak_check: LeakCheck
) -> None:
    from pytest_httpbin import certs

    database = TlsDatabase.from_pem(await anyio.Path(certs.where()).read_bytes())
    async with Session(tls_database=database) as session:
        msg = Message("GET", httpbin_secure.url + "/brotli")
        with anyio.fail_after(BOUND):
            body = await session.send_and_read(msg)
    await leak_check(session)
    answer = json.loads(body)
    assert answer["brotli"] is True
    assert answer["headers"]["Accept-Encoding"] == "gzip, deflate, br, zstd"
