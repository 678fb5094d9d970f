"""What a careless caller can give: every mistake is refused clearly and early.

Framing headers that contradict the body are refused before a connection is
asked for (a ``ValueError`` naming the header); a stream body that lies
about its length mid-way is an :class:`anysoup.Error` naming host and phase,
and its connection is closed. Header values are octets both ways (RFC 9110
§5.5): what can't be an octet is refused when it is set, never during a
send, and a server's UTF-8 cookie goes back byte for byte. Bodies of the
wrong type are refused where they are given. No h11 or other foreign
exception escapes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import h11
import pytest
from servers import ServerConnection, serve_raw

import anysoup

LeakCheck = Callable[[anysoup.Session], Awaitable[None]]
BOUND = 5.0
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def recorder(
    heads: list[bytes], *, response: bytes = OK, chunked_body: bool = False
) -> Callable[[ServerConnection], Awaitable[None]]:
    """Record each request head as it came (bytes), then answer ``response``."""

    async def handler(conn: ServerConnection) -> None:
        while True:
            try:
                head = await conn.stream.receive_until(b"\r\n\r\n", 65536)
            except (anyio.EndOfStream, anyio.IncompleteRead):
                return
            heads.append(head)
            if chunked_body:
                await conn.stream.receive_until(b"0\r\n\r\n", 65536)
            await conn.send_raw(response)

    return handler


async def swallow(conn: ServerConnection) -> None:
    """Read everything, never answer (an early answer would be returned instead of an error)."""
    with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
        while True:
            await conn.stream.receive()


def header_lines(head: bytes) -> dict[bytes, bytes]:
    lines = head.split(b"\r\n")[1:]
    return {k.lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines)}


# -- framing headers -----------------------------------------------------------------


async def test_a_program_chunked_request_without_body_has_one_framing(
    leak_check: LeakCheck,
) -> None:
    heads: list[bytes] = []
    async with serve_raw(recorder(heads, chunked_body=True)) as server:
        msg = anysoup.Message(
            "POST", server.url_for("/"), headers={"Transfer-Encoding": "chunked"}
        )
        async with anysoup.Session() as session:
            with anyio.fail_after(BOUND):
                assert await session.send_and_read(msg) == b"ok"
        await leak_check(session)
    fields = header_lines(heads[0])
    assert fields[b"transfer-encoding"] == b"chunked"
    assert b"content-length" not in fields  # RFC 9112 §6.2: never both


@pytest.mark.parametrize(
    ("method", "headers", "words"),
    [
        ("POST", {"Transfer-Encoding": "chunked", "Content-Length": "0"}, "both set"),
        ("GET", {"Content-Length": "100"}, "Content-Length: 100 but the message has no body"),
        ("PUT", {"Content-Length": "7"}, "Content-Length: 7"),
        ("POST", {"Transfer-Encoding": "gzip"}, "Transfer-Encoding"),
    ],
    ids=["TE and CL", "GET with a length", "PUT with a length", "TE gzip"],
)
async def test_framing_headers_that_contradict_the_body_are_refused_before_sending(
    method: str, headers: dict[str, str], words: str, leak_check: LeakCheck
) -> None:
    heads: list[bytes] = []
    async with serve_raw(recorder(heads)) as server:
        async with anysoup.Session() as session:
            msg = anysoup.Message(method, server.url_for("/"), headers=headers)
            with anyio.fail_after(BOUND), pytest.raises(ValueError, match=words) as info:
                await session.send_and_read(msg)
            assert f"127.0.0.1:{server.port}" in str(info.value)
            # The session is fine: the next request goes through.
            ok = anysoup.Message("GET", server.url_for("/next"))
            with anyio.fail_after(BOUND):
                assert await session.send_and_read(ok) == b"ok"
        await leak_check(session)
    assert [h.split(b" ")[1] for h in heads] == [b"/next"]  # nothing of the bad one was sent


async def chunks(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


@pytest.mark.parametrize(
    ("pieces", "size"),
    [([b"0123456789", b"0123456789"], "more"), ([b"01234"], "fewer")],
    ids=["longer than declared", "shorter than declared"],
)
async def test_a_stream_body_that_lies_about_its_length(
    pieces: list[bytes], size: str, leak_check: LeakCheck
) -> None:
    async with serve_raw(swallow) as server:
        async with anysoup.Session() as session:
            msg = anysoup.Message("POST", server.url_for("/"))
            msg.set_request_body("text/plain", chunks(pieces), length=10)
            with anyio.fail_after(BOUND), pytest.raises(anysoup.Error) as info:
                await session.send_and_read(msg)
            exc = info.value
            assert not isinstance(exc, h11.ProtocolError)
            assert exc.message is msg
            text = str(exc)
            assert f"127.0.0.1:{server.port}" in text and "writing request body" in text, text
            assert f"gave {size} bytes than the length declared" in text, text
            stats = session.statistics()
            assert (stats.in_use, stats.idle) == (0, 0), stats  # its connection was closed
        await leak_check(session)


# -- header values are octets ----------------------------------------------------------


async def test_a_latin1_header_value_goes_out_as_octets(leak_check: LeakCheck) -> None:
    heads: list[bytes] = []
    async with serve_raw(recorder(heads)) as server:
        msg = anysoup.Message("GET", server.url_for("/"))
        msg.request_headers.append("X-Name", "café")
        async with anysoup.Session() as session:
            with anyio.fail_after(BOUND):
                await session.send_and_read(msg)
        await leak_check(session)
    assert header_lines(heads[0])[b"x-name"] == b"caf\xe9"


@pytest.mark.parametrize("value", ["€uro", "日本", "emoji 🙂"])
def test_a_value_with_no_octet_is_refused_when_set(value: str) -> None:
    headers = anysoup.MessageHeaders()
    with pytest.raises(ValueError, match="not an octet"):
        headers.append("X-Name", value)
    with pytest.raises(ValueError, match="not an octet"):
        headers.replace("X-Name", value)
    with pytest.raises(ValueError, match="not an octet"):
        anysoup.Message("GET", "http://example.org/", headers={"X-Name": value})
    assert len(headers) == 0


async def test_a_utf8_cookie_goes_back_byte_for_byte(leak_check: LeakCheck) -> None:
    heads: list[bytes] = []
    cookie = "name=caf\u00e9 \u2603".encode()  # the server's UTF-8 bytes
    setter = b"HTTP/1.1 200 OK\r\nSet-Cookie: " + cookie + b"\r\nContent-Length: 2\r\n\r\nok"
    async with serve_raw(recorder(heads, response=setter)) as server:
        async with anysoup.Session(features=[anysoup.CookieJar()]) as session:
            for path in ("/set", "/again", "/and-again"):
                with anyio.fail_after(BOUND):
                    await session.send_and_read(anysoup.Message("GET", server.url_for(path)))
        await leak_check(session)
    assert [header_lines(h).get(b"cookie") for h in heads] == [None, cookie, cookie]


# -- cookies: a Domain with a trailing dot -----------------------------------------------


async def test_a_cookie_domain_with_a_trailing_dot_is_refused(leak_check: LeakCheck) -> None:
    heads: list[bytes] = []
    setter = (
        b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Domain=home.example.org.\r\n"
        b"Set-Cookie: b=2; Domain=home.example.org\r\nContent-Length: 2\r\n\r\nok"
    )
    async with serve_raw(recorder(heads, response=setter)) as server:
        jar = anysoup.CookieJar()
        remote = ("127.0.0.1", server.port)
        async with anysoup.Session(features=[jar], remote_connectable=remote) as session:
            for path in ("/set", "/again"):
                url = f"http://home.example.org:{server.port}{path}"
                with anyio.fail_after(BOUND):
                    await session.send_and_read(anysoup.Message("GET", url))
        await leak_check(session)
    assert [c.name for c in jar.all_cookies()] == ["b"]
    assert header_lines(heads[1])[b"cookie"] == b"b=2"


# -- bodies of the wrong type -----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"a": 1}, "dict is not bytes.*new_from_encoded_form"),
        ({b"a", b"b"}, "set is not bytes.*no order"),
        (42, "int is not bytes"),
        ("text", "str is not bytes; encode it first"),
    ],
    ids=["dict", "set", "int", "str"],
)
def test_a_body_of_the_wrong_type_is_refused_where_it_is_given(body: object, words: str) -> None:
    with pytest.raises(TypeError, match=words):
        anysoup.Message("POST", "http://example.org/", body=body)  # type: ignore[arg-type]
    msg = anysoup.Message("POST", "http://example.org/")
    with pytest.raises(TypeError, match=words):
        msg.set_request_body("text/plain", body)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["text", 5, None], ids=["str", "int", "None"])
async def test_an_iterable_body_that_gives_no_bytes(bad: object, leak_check: LeakCheck) -> None:
    # bytes(5) would send five NUL bytes, bytes("text") fail with an unrelated message.
    heads: list[bytes] = []
    async with serve_raw(swallow) as bad_server, serve_raw(recorder(heads)) as server:
        async with anysoup.Session() as session:
            body = [b"ok", bad]
            msg = anysoup.Message("POST", bad_server.url_for("/"), body=body)  # type: ignore[arg-type]
            with anyio.fail_after(BOUND), pytest.raises(TypeError, match="the iterable gave"):
                await session.send_and_read(msg)
            after = anysoup.Message("GET", server.url_for("/"))
            with anyio.fail_after(BOUND):
                assert await session.send_and_read(after) == b"ok"
        await leak_check(session)
