"""Reading multipart responses: the scanner, ``Multipart.new_from_message`` and
``MultipartInputStream`` (libsoup's ``soup_multipart_new_from_message`` and
``SoupMultipartInputStream``).

The scanner is checked as policy (every split of the input gives the same
parts; the lenient forms servers send; bounded headers); the reader against
loopback servers on both backends: ``multipart/byteranges``, and a
``multipart/x-mixed-replace`` stream that never ends, whose parts are read
while the server waits to send the next.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from servers import ReceivedRequest, ServerConnection, serve_http

from anysoup import (
    InputStream,
    Message,
    MessageHeaders,
    Multipart,
    MultipartInputStream,
    ParsingError,
    Session,
)
from anysoup._model.multipart_parse import (
    END,
    MAX_PIECE,
    NEED_DATA,
    PART_END,
    MultipartScanner,
    PartData,
    PartStart,
)

BOUNDARY = "xyz"
TYPE = f"multipart/mixed; boundary={BOUNDARY}"

#: Preamble, a part with headers, one without, an empty one, a body holding
#: the boundary mid-line and a CR, LF line ends in the second, padding, epilogue.
BODY = (
    b"This is the preamble.\r\n"
    b"--xyz\r\nContent-Type: text/plain\r\nX-Folded: a\r\n b\r\n\r\nfirst --xyz not a delimiter\r"
    b"\r\n--xyz  \t\r\n\r\nsecond\n"
    b"\n--xyz\nX-Empty: yes\n\n"
    b"\r\n--xyz\r\nContent-Length: 5\r\n\r\nfifth"
    b"\r\n--xyz--\r\nThe epilogue."
)
PARTS = [
    ([("Content-Type", "text/plain"), ("X-Folded", "a b")], b"first --xyz not a delimiter\r"),
    ([], b"second\n"),
    ([("X-Empty", "yes")], b""),
    ([("Content-Length", "5")], b"fifth"),
]


def scan(pieces: list[bytes], boundary: str = BOUNDARY) -> list[tuple[list[Any], bytes]]:
    scanner = MultipartScanner(boundary)
    parts: list[tuple[list[Any], bytes]] = []
    feed = iter(pieces)
    while (event := scanner.next_event()) is not END:
        if event is NEED_DATA:
            piece = next(feed, None)
            if piece is None:
                scanner.feed_eof()
            else:
                scanner.feed(piece)
        elif isinstance(event, PartStart):
            parts.append((list(event.headers), b""))
        elif isinstance(event, PartData):
            assert event.data and len(event.data) <= MAX_PIECE
            parts[-1] = (parts[-1][0], parts[-1][1] + event.data)
        else:
            assert event is PART_END
    return parts


# -- the scanner -----------------------------------------------------------------------


def test_scanner_whole_and_byte_by_byte() -> None:
    assert scan([BODY]) == PARTS
    assert scan([BODY[i : i + 1] for i in range(len(BODY))]) == PARTS


@pytest.mark.parametrize("cut", range(0, len(BODY), 7))
def test_scanner_any_split(cut: int) -> None:
    assert scan([BODY[:cut], BODY[cut:]]) == PARTS


def test_scanner_without_preamble_crlf_or_close_delimiter_at_the_end() -> None:
    assert scan([b"--xyz\r\n\r\nonly\r\n--xyz--"]) == [([], b"only")]
    # A body that ends after a whole part, without its close delimiter: no more parts.
    assert scan([b"--xyz\r\nContent-Length: 2\r\n\r\nok"]) == [([("Content-Length", "2")], b"ok")]
    assert scan([b"no delimiter at all"]) == []


def test_scanner_refuses_truncation_and_huge_headers() -> None:
    with pytest.raises(ParsingError, match="inside a part"):
        scan([b"--xyz\r\n\r\ncut short"])
    with pytest.raises(ParsingError, match="headers"):
        scan([b"--xyz\r\nX: y"])
    scanner = MultipartScanner(BOUNDARY, max_header_size=100)
    scanner.feed(b"--xyz\r\nX-Long: " + b"a" * 200)
    with pytest.raises(ParsingError, match="over 100 bytes"):
        scanner.next_event()
        scanner.next_event()


def test_scanner_memory_is_bounded_by_what_is_fed() -> None:
    scanner = MultipartScanner(BOUNDARY)
    scanner.feed(b"--xyz\r\n\r\n")
    assert isinstance(scanner.next_event(), PartStart)
    handed = 0
    for _ in range(100):  # 100 x 64 KiB of one part's body
        scanner.feed(b"a" * 65536)
        while isinstance(event := scanner.next_event(), PartData):
            handed += len(event.data)
        assert event is NEED_DATA
        assert len(scanner._buffer) <= len(b"\n--xyz")
    assert handed == 100 * 65536 - len(b"\n--xyz")


# -- Multipart.new_from_message --------------------------------------------------------


def test_new_from_message_reads_back_what_to_message_wrote() -> None:
    sent = Multipart("multipart/form-data")
    sent.append_form_string("title", "Holiday")
    sent.append_form_file("photo", "beach.jpg", "image/jpeg", b"\xff\xd8 jpeg \r\n--")
    headers = MessageHeaders()
    body = sent.to_message(headers)
    got = Multipart.new_from_message(headers, body)
    assert got is not None
    assert (got.mime_type, got.boundary, len(got)) == ("multipart/form-data", sent.boundary, 2)
    assert [got.get_part(i) for i in range(2)] == [sent.get_part(i) for i in range(2)]


def test_new_from_message_parses_preamble_lf_and_epilogue() -> None:
    got = Multipart.new_from_message(MessageHeaders([("Content-Type", TYPE)]), BODY)
    assert got is not None
    assert [(list(h), b) for h, b in (got.get_part(i) for i in range(len(got)))] == PARTS


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (None, BODY),
        ("text/plain; boundary=xyz", BODY),
        ("multipart/mixed", BODY),  # no boundary
        (TYPE, b"--xyz\r\n\r\ntruncated"),
        (TYPE, b"no parts"),
    ],
)
def test_new_from_message_gives_none_as_libsoup_gives_null(
    content_type: str | None, body: bytes
) -> None:
    headers = MessageHeaders([("Content-Type", content_type)] if content_type else [])
    assert Multipart.new_from_message(headers, body) is None


# -- MultipartInputStream against a server --------------------------------------------


def byteranges_handler(pieces: int) -> Any:
    """206 with two ranges of ``0123456789``, sent in ``pieces`` chunked pieces."""
    body = (
        b"--RANGE\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-3/10\r\n\r\n0123"
        b"\r\n--RANGE\r\nContent-Type: text/plain\r\nContent-Range: bytes 6-9/10\r\n\r\n6789"
        b"\r\n--RANGE--\r\n"
    )

    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        await conn.send_head(206, [("Content-Type", "multipart/byteranges; boundary=RANGE")])
        step = -(-len(body) // pieces)
        for start in range(0, len(body), step):
            await conn.send_data(body[start : start + step])
        await conn.end()

    return handler


@pytest.mark.parametrize("pieces", [1, 13])
async def test_byteranges_part_by_part_and_the_connection_is_reused(
    pieces: int, leak_check: Any
) -> None:
    async with serve_http(byteranges_handler(pieces)) as server, Session() as session:
        for _ in range(2):
            msg = Message("GET", server.url_for("/file"))
            msg.request_headers.append("Range", "bytes=0-3,6-9")
            ranges = []
            async with MultipartInputStream(msg, await session.send(msg)) as multipart:
                assert multipart.headers is None and multipart.message is msg
                async for part in multipart:
                    assert isinstance(part, InputStream)
                    headers = multipart.get_headers()
                    assert headers is not None
                    ranges.append((headers["Content-Range"], await part.read()))
                assert await multipart.next_part() is None
            assert ranges == [("bytes 0-3/10", b"0123"), ("bytes 6-9/10", b"6789")]
        assert server.connections == 1
    await leak_check(session)


async def test_x_mixed_replace_parts_are_read_as_they_come_and_the_stream_never_ends(
    leak_check: Any,
) -> None:
    read: list[anyio.Event] = [anyio.Event() for _ in range(4)]

    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        await conn.send_head(200, [("Content-Type", "multipart/x-mixed-replace;boundary=frame")])
        for n in range(4):
            # Frame n with a Content-Length: the client must see all of it (and
            # its end) before frame n+1 is sent; the last has none and is long.
            body = f"frame {n}".encode()
            length = f"Content-Length: {len(body)}\r\n" if n < 3 else ""
            head = f"--frame\r\nContent-Type: image/jpeg\r\n{length}\r\n".encode()
            await conn.send_data(head + (body if n < 3 else b"x" * 100_000) + b"\r\n")
            await read[n].wait()
        while True:  # the stream goes on until the client leaves
            await conn.send_data(b"--frame\r\n\r\nmore\r\n")
            await anyio.sleep(0.01)

    async with serve_http(handler) as server, Session() as session:
        msg = Message("GET", server.url_for("/camera"))
        with anyio.fail_after(10):
            multipart = MultipartInputStream(msg, await session.send(msg))
            for n in range(3):
                part = await multipart.next_part()
                assert part is not None
                assert await part.read() == f"frame {n}".encode()
                read[n].set()
            part = await multipart.next_part()
            assert part is not None
            got = 0
            while got < 100_000 - len(b"\r\n--frame"):  # all but what may begin a delimiter
                got += len(await part.receive())
            read[3].set()
            assert await part.read() == b"x" * (100_000 - got)
            extra = await multipart.next_part()
            assert extra is not None and await extra.read() == b"more"
            await multipart.aclose()  # leaves a stream that never ends: the connection goes
        assert session.statistics().connections == 0
    await leak_check(session)


async def test_skipped_parts_and_a_truncated_body(leak_check: Any) -> None:
    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        # /truncated: a well-framed response whose multipart body stops in a part.
        body = BODY if req.target == "/whole" else BODY[:80]
        await conn.respond(200, [("Content-Type", TYPE)], body)

    async with serve_http(handler) as server, Session() as session:
        msg = Message("GET", server.url_for("/whole"))
        multipart = MultipartInputStream(msg, await session.send(msg))
        first = await multipart.next_part()
        assert first is not None and await first.read(5) == b"first"
        second = await multipart.next_part()  # the rest of the first is skipped
        assert await first.read() == b""
        assert second is not None
        parts = [p async for p in multipart]
        assert [await p.read() for p in parts] == [b"", b""]  # each cut when the next came
        assert multipart.headers is not None and multipart.headers["Content-Length"] == "5"
        await multipart.aclose()

        msg = Message("GET", server.url_for("/truncated"))
        multipart = MultipartInputStream(msg, await session.send(msg))
        part = await multipart.next_part()
        assert part is not None
        with pytest.raises(ParsingError, match="inside a part") as caught:
            await part.read()
        assert caught.value.message is msg
        assert await multipart.next_part() is None
        await multipart.aclose()
    await leak_check(session)


async def test_a_response_that_is_not_multipart_is_refused() -> None:
    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        await conn.respond(200, [("Content-Type", "text/plain")], b"plain")

    async with serve_http(handler) as server, Session() as session:
        msg = Message("GET", server.url_for("/"))
        async with await session.send(msg) as body:
            with pytest.raises(ValueError, match="not multipart"):
                MultipartInputStream(msg, body)
