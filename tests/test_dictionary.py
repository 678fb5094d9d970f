"""Compression dictionaries (RFC 9842) on the wire, on both backends.

A hypercorn app plays a server that speaks RFC 9842: it serves a dictionary
with ``Use-As-Dictionary``, and answers ``/app/...`` with a ``dcz`` body
compressed with that dictionary when the request offers it
(``Accept-Encoding: ... dcz`` and the right ``Available-Dictionary``), a
plain one otherwise; a few paths misbehave on purpose. It records the
headers of every request, so each test checks what anysoup offered as well
as what it decoded. Then the offer's bookkeeping across hops, without a
network (the ContentDecoder's ``offer_dictionary`` called directly).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
import zstandard
from servers import CertFiles, serve_asgi
from yarl import URL

import anysoup
from anysoup import CompressionDictionary, ContentDecoder, EncodingError, Message, Session
from anysoup._features.cache.dictionary_policy import (
    DCB_MAGIC,
    DCZ_MAGIC,
    available_dictionary_value,
    parse_use_as_dictionary,
)
from anysoup._features.decoder.dictionaries import offer_dictionary

LeakCheck = Callable[[Session], Awaitable[None]]
Seen = list[tuple[str, list[tuple[str, str]]]]

#: No test here may take longer than this.
BOUND = 10.0

_RNG = random.Random(9842)
DICTIONARY = _RNG.randbytes(30_000)
SHA256 = hashlib.sha256(DICTIONARY).digest()
AVAILABLE = available_dictionary_value(SHA256)
# The next version of the resource: mostly the dictionary, a little new.
BODY = DICTIONARY[:12_000] + b"version 2" + DICTIONARY[12_000:] + _RNG.randbytes(2_000)
_RAW = zstandard.ZstdCompressionDict(DICTIONARY, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
FRAME = zstandard.ZstdCompressor(dict_data=_RAW).compress(BODY)
DCB_ON = ContentDecoder.dictionary_support()["dcb"] is None


def make_app(seen: Seen) -> Callable[[Any, Any, Any], Awaitable[None]]:
    """The RFC 9842 server; each request's (path, headers) goes to ``seen``."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        while (await receive()).get("more_body"):
            pass
        path: str = scope["path"]
        headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in scope["headers"]]
        seen.append((path, headers))
        accept = ", ".join(v for n, v in headers if n == "accept-encoding")
        offered = [v for n, v in headers if n == "available-dictionary"]
        wants_dcz = "dcz" in [c.strip() for c in accept.split(",")] and offered == [AVAILABLE]

        async def reply(status: int, pieces: list[bytes], extra: list[tuple[str, str]]) -> None:
            raw = [(n.encode(), v.encode()) for n, v in extra]
            await send({"type": "http.response.start", "status": status, "headers": raw})
            for piece in pieces:  # no Content-Length: chunked, piece by piece
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": b""})

        dcz = [("content-encoding", "dcz"), ("vary", "accept-encoding, available-dictionary")]
        if path == "/dict.js":
            await reply(200, [DICTIONARY], [("use-as-dictionary", 'match="/app/*", id="v1"')])
        elif path == "/app/main.js" and wants_dcz:
            data = DCZ_MAGIC + SHA256 + FRAME
            await reply(200, [data[:20], data[20:50], data[50:]], dcz)
        elif path == "/app/main.js":
            await reply(200, [BODY], [])
        elif path == "/app/wrong-hash":  # compressed with the dictionary, another hash said
            await reply(200, [DCZ_MAGIC + bytes(32) + FRAME], dcz)
        elif path == "/app/always-dcz":  # dcz whatever was offered
            await reply(200, [DCZ_MAGIC + SHA256 + FRAME], dcz)
        elif path == "/app/always-dcb":
            await reply(200, [DCB_MAGIC + SHA256 + b"brotli data"], [("content-encoding", "dcb")])
        elif path == "/redirect":
            await reply(302, [], [("location", "/app/main.js")])
        else:
            await reply(404, [b"not found"], [])

    return app


def offered(seen: Seen, index: int = -1) -> tuple[str | None, list[str], list[str]]:
    """What request ``index`` offered: Accept-Encoding, Available-Dictionary, Dictionary-ID."""
    headers = seen[index][1]
    accept = [v for n, v in headers if n == "accept-encoding"]
    return (
        accept[0] if accept else None,
        [v for n, v in headers if n == "available-dictionary"],
        [v for n, v in headers if n == "dictionary-id"],
    )


async def test_a_handler_supplies_the_bytes_and_dcz_decodes(leak_check: LeakCheck) -> None:
    seen: Seen = []
    asked: list[Message] = []

    def supply(msg: Message) -> bytes:
        asked.append(msg)
        return DICTIONARY

    async with serve_asgi(make_app(seen)) as base, Session() as session:
        msg = Message("GET", f"{base}/app/main.js")
        msg.request_compression_dictionary.connect(supply)
        with anyio.fail_after(BOUND):
            body = await session.send_and_read(msg)
        assert body == BODY
        assert msg.response_headers.get_one("Content-Encoding") == "dcz"
        assert asked == [msg]
        accept, available, ids = offered(seen)
        # http to a loopback host is a secure context; br and zstd stay https-only.
        assert accept == ("gzip, deflate, dcb, dcz" if DCB_ON else "gzip, deflate, dcz")
        assert available == [AVAILABLE] and ids == []
        assert msg._compression_dictionary is not None
        assert msg._compression_dictionary.url == f"{base}/app/main.js"
    await leak_check(session)


async def test_the_first_answer_wins_and_its_id_is_sent(leak_check: LeakCheck) -> None:
    seen: Seen = []
    calls: list[str] = []

    def nothing(msg: Message) -> None:
        calls.append("nothing")

    async def fetch_it(msg: Message) -> CompressionDictionary:
        calls.append("fetch_it")
        await anyio.lowlevel.checkpoint()
        return CompressionDictionary(DICTIONARY, id='/app v1 "quoted"')

    def never(msg: Message) -> bytes:
        calls.append("never")
        return b"not this one"

    async with serve_asgi(make_app(seen)) as base, Session() as session:
        msg = Message("GET", f"{base}/app/main.js")
        for handler in (nothing, fetch_it, never):
            msg.request_compression_dictionary.connect(handler)
        with anyio.fail_after(BOUND):
            assert await session.send_and_read(msg) == BODY
        assert calls == ["nothing", "fetch_it"]
        assert offered(seen)[1:] == ([AVAILABLE], ['"/app v1 \\"quoted\\""'])
    await leak_check(session)


async def test_a_dictionary_fetched_from_the_server(leak_check: LeakCheck) -> None:
    # The program keeps the server's dictionary itself (until the cache does).
    seen: Seen = []
    async with serve_asgi(make_app(seen)) as base, Session() as session:
        first = Message("GET", f"{base}/dict.js")
        with anyio.fail_after(BOUND):
            data = await session.send_and_read(first)
        directive = parse_use_as_dictionary(
            first.response_headers.get_list("Use-As-Dictionary"), str(first.uri)
        )
        assert directive is not None and directive.id == "v1"
        kept = CompressionDictionary(data, id=directive.id, url=str(first.uri))
        msg = Message("GET", f"{base}/app/main.js")
        msg.request_compression_dictionary.connect(lambda m: kept)
        with anyio.fail_after(BOUND):
            assert await session.send_and_read(msg) == BODY
        assert offered(seen)[1:] == ([AVAILABLE], ['"v1"'])
    await leak_check(session)


async def test_the_wrong_hash_is_an_encoding_error(leak_check: LeakCheck) -> None:
    async with serve_asgi(make_app([])) as base, Session() as session:
        msg = Message("GET", f"{base}/app/wrong-hash")
        msg.request_compression_dictionary.connect(lambda m: DICTIONARY)
        with anyio.fail_after(BOUND), pytest.raises(EncodingError) as info:
            await session.send_and_read(msg)
        assert info.value.message is msg
        text = str(info.value)
        assert text.startswith(f"decoding the response body from {URL(base).authority}: 'dcz'")
        assert "compressed with another dictionary (SHA-256 0000000000000000…)" in text
        assert f"than the one offered ({SHA256.hex()[:16]}…)" in text
    await leak_check(session)


async def test_without_a_dictionary_nothing_is_offered(leak_check: LeakCheck) -> None:
    seen: Seen = []
    async with serve_asgi(make_app(seen)) as base, Session() as session:
        plain = Message("GET", f"{base}/app/main.js")
        declining = Message("GET", f"{base}/app/main.js")
        declining.request_compression_dictionary.connect(lambda m: None)
        for msg in (plain, declining):
            with anyio.fail_after(BOUND):
                assert await session.send_and_read(msg) == BODY
            assert offered(seen) == ("gzip, deflate", [], [])
            assert msg.response_headers.get_one("Content-Encoding") is None

        # A server that sends dcz anyway: nothing to decode it with.
        rogue = Message("GET", f"{base}/app/always-dcz")
        with anyio.fail_after(BOUND), pytest.raises(EncodingError) as info:
            await session.send_and_read(rogue)
        assert str(info.value).endswith(
            "'dcz'-encoded, but no compression dictionary was offered for the request"
        )
    await leak_check(session)


@pytest.mark.skipif(DCB_ON, reason="a brotli binding here decodes with a dictionary")
async def test_dcb_is_off_and_says_why(leak_check: LeakCheck) -> None:
    seen: Seen = []
    async with serve_asgi(make_app(seen)) as base, Session() as session:
        msg = Message("GET", f"{base}/app/always-dcb")
        msg.request_compression_dictionary.connect(lambda m: DICTIONARY)
        with anyio.fail_after(BOUND), pytest.raises(EncodingError) as info:
            await session.send_and_read(msg)
        assert "dcb" not in (offered(seen)[0] or "")
        reason = ContentDecoder.dictionary_support()["dcb"]
        assert reason is not None and str(info.value).endswith(reason)
    await leak_check(session)


async def test_the_programs_own_headers_decide(leak_check: LeakCheck) -> None:
    seen: Seen = []
    asked: list[str] = []

    def supply(msg: Message) -> bytes:
        asked.append(msg.request_headers.get_one("Accept-Encoding") or "")
        return DICTIONARY

    async with serve_asgi(make_app(seen)) as base, Session() as session:
        # An Accept-Encoding without dictionary codings: none offered, nobody asked.
        msg = Message("GET", f"{base}/app/main.js", headers={"Accept-Encoding": "gzip"})
        msg.request_compression_dictionary.connect(supply)
        with anyio.fail_after(BOUND):
            assert await session.send_and_read(msg) == BODY
        assert asked == [] and offered(seen) == ("gzip", [], [])

        # One that lists dcz: kept as it is, the dictionary offered with it.
        msg = Message("GET", f"{base}/app/main.js", headers={"Accept-Encoding": "DCZ;q=1"})
        msg.request_compression_dictionary.connect(supply)
        with anyio.fail_after(BOUND):
            assert await session.send_and_read(msg) == BODY
        assert asked == ["DCZ;q=1"] and offered(seen) == ("DCZ;q=1", [AVAILABLE], [])

        # The program's own Available-Dictionary and Dictionary-ID are left alone.
        msg = Message("GET", f"{base}/app/main.js")
        msg.request_headers.append("Available-Dictionary", ":AAAA:")
        msg.request_headers.append("Dictionary-ID", '"mine"')
        msg.request_compression_dictionary.connect(
            lambda m: CompressionDictionary(DICTIONARY, id="v1")
        )
        with anyio.fail_after(BOUND):
            assert await session.send_and_read(msg) == BODY  # the server declined: plain
        assert offered(seen)[1:] == ([":AAAA:"], ['"mine"'])
    await leak_check(session)


async def test_a_same_origin_redirect_offers_it_again(leak_check: LeakCheck) -> None:
    seen: Seen = []
    asked: list[URL] = []

    def supply(msg: Message) -> bytes:
        asked.append(msg.uri)
        return DICTIONARY

    async with serve_asgi(make_app(seen)) as base, Session() as session:
        msg = Message("GET", f"{base}/redirect")
        msg.request_compression_dictionary.connect(supply)
        with anyio.fail_after(BOUND):
            assert await session.send_and_read(msg) == BODY
        assert [path for path, _ in seen] == ["/redirect", "/app/main.js"]
        assert asked == [URL(f"{base}/redirect")]  # kept for the same origin
        for index in (0, 1):  # each hop offers it once, not twice
            assert offered(seen, index)[0] in ("gzip, deflate, dcz", "gzip, deflate, dcb, dcz")
            assert offered(seen, index)[1] == [AVAILABLE]
    await leak_check(session)


async def test_over_https(
    tls_cert_files: CertFiles, tls_ca_pem: bytes, leak_check: LeakCheck
) -> None:
    seen: Seen = []
    async with (
        serve_asgi(
            make_app(seen),
            ssl_certfile=tls_cert_files.certfile,
            ssl_keyfile=tls_cert_files.keyfile,
        ) as base,
        Session(tls_database=anysoup.TlsDatabase.from_pem(tls_ca_pem)) as session,
    ):
        msg = Message("GET", f"{base}/app/main.js")
        msg.request_compression_dictionary.connect(lambda m: DICTIONARY)
        with anyio.fail_after(BOUND):
            assert await session.send_and_read(msg) == BODY
        accept = offered(seen)[0] or ""
        assert accept.startswith("gzip, deflate, br, zstd") and accept.endswith("dcz")
    await leak_check(session)


# -- the offer across hops, without a network --------------------------------------------


async def test_a_cross_origin_hop_takes_the_offer_back() -> None:
    answers: list[bytes | None] = [DICTIONARY, None]
    msg = Message("GET", "https://a.example/app/x")
    msg.request_compression_dictionary.connect(lambda m: answers.pop(0))
    headers = msg.request_headers

    await offer_dictionary(msg, "gzip, deflate")
    assert headers.get_one("Available-Dictionary") == AVAILABLE
    assert (headers.get_one("Accept-Encoding") or "").endswith("dcz")
    assert msg._compression_dictionary is not None
    assert msg._compression_dictionary.url == "https://a.example/app/x"

    msg.uri = URL("https://b.example/y")  # as a redirect does
    await offer_dictionary(msg, "gzip, deflate")
    assert answers == []  # asked again, for the new origin: no answer
    assert msg._compression_dictionary is None
    assert "Available-Dictionary" not in headers and "Accept-Encoding" not in headers


async def test_headers_the_program_changed_stay() -> None:
    msg = Message("GET", "https://a.example/app/x")
    msg.request_compression_dictionary.connect(lambda m: DICTIONARY)
    await offer_dictionary(msg, "gzip")
    msg.request_headers.replace("Available-Dictionary", ":AAAA:")
    msg.uri = URL("http://b.example/y")  # not a secure context: nothing offered
    await offer_dictionary(msg, "gzip")
    assert msg.request_headers.get_one("Available-Dictionary") == ":AAAA:"
    assert "Accept-Encoding" not in msg.request_headers


async def test_a_dictionary_already_on_the_message() -> None:
    # As the cache will put it there: same origin, used without asking;
    # another origin's is dropped and the handlers asked instead.
    asked: list[Message] = []
    msg = Message("GET", "https://a.example/app/x")
    msg.request_compression_dictionary.connect(lambda m: asked.append(m))
    msg._compression_dictionary = CompressionDictionary(DICTIONARY, url="https://a.example/d")
    await offer_dictionary(msg, "gzip")
    assert asked == [] and msg.request_headers.get_one("Available-Dictionary") == AVAILABLE

    other = Message("GET", "https://a.example/app/x")
    other.request_compression_dictionary.connect(lambda m: asked.append(m))
    other._compression_dictionary = CompressionDictionary(DICTIONARY, url="https://b.example/d")
    await offer_dictionary(other, "gzip")
    assert asked == [other] and other._compression_dictionary is None
    assert "Available-Dictionary" not in other.request_headers


@pytest.mark.parametrize(
    ("answer", "used"),
    [
        (bytearray(DICTIONARY), True),
        (memoryview(DICTIONARY), True),
        (CompressionDictionary(DICTIONARY, url="https://a.example:443/other"), True),
        (CompressionDictionary(DICTIONARY, url="https://b.example/d"), False),
        (CompressionDictionary(DICTIONARY, url="http://a.example/d"), False),
    ],
)
async def test_what_a_handler_may_answer(answer: Any, used: bool) -> None:
    msg = Message("GET", "https://a.example/app/x")
    msg.request_compression_dictionary.connect(lambda m: answer)
    await offer_dictionary(msg, "gzip")
    assert (msg.request_headers.get_one("Available-Dictionary") == AVAILABLE) is used


async def test_a_handler_answering_nonsense_is_a_type_error() -> None:
    msg = Message("GET", "https://a.example/app/x")
    msg.request_compression_dictionary.connect(lambda m: "a str")
    with pytest.raises(TypeError, match="returned str; expected CompressionDictionary"):
        await offer_dictionary(msg, "gzip")


async def test_no_dictionary_over_plain_http_elsewhere() -> None:
    msg = Message("GET", "http://example.com/app/x")
    msg.request_compression_dictionary.connect(lambda m: pytest.fail("asked"))
    await offer_dictionary(msg, "gzip")
    assert len(msg.request_headers) == 0


@pytest.mark.parametrize(
    ("accept", "asked"),
    [
        ("gzip, dcz", True),
        ("DCZ;Q=1", True),
        ("dcz;q=0.5, gzip", True),
        ("gzip", False),
        ("gzip, dcz;q=0", False),  # RFC 9110 §12.4.2: q=0 means "not acceptable"
        ("dcz ; q = 0.000", False),
        ("identity", False),
    ],
)
async def test_the_programs_accept_encoding_decides(accept: str, asked: bool) -> None:
    calls: list[Message] = []
    msg = Message("GET", "https://a.example/app/x", headers={"Accept-Encoding": accept})
    msg.request_compression_dictionary.connect(lambda m: calls.append(m) or DICTIONARY)
    await offer_dictionary(msg, "gzip")
    assert (calls == [msg]) is asked
    assert ("Available-Dictionary" in msg.request_headers) is asked
    assert msg.request_headers.get_list("Accept-Encoding") == accept  # never rewritten
