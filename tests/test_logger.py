"""Logger: libsoup's line format, levels, filters, redaction, re-sends and failures.

Every exchange runs against the scripted h11 server of ``servers.py`` on both
backends. Output is checked line by line, through a printer that collects the
lines and through the stdlib logger ``anysoup`` (caplog). Timestamps, object
addresses and the server's port vary from run to run: :func:`normalise`
replaces them before lines are compared.
"""

from __future__ import annotations

import base64
import gc
import gzip
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest
from servers import ReceivedRequest, ServerConnection, serve_http

import anysoup
from anysoup import Logger, LoggerLogLevel, Message, Session
from anysoup._features.logger.lines_policy import BodyText, address_text, redact_value
from anysoup._model.headers import MessageHeaders

LeakCheck = Callable[[Session], Awaitable[None]]
NONE, MINIMAL, HEADERS, BODY = (
    LoggerLogLevel.NONE,
    LoggerLogLevel.MINIMAL,
    LoggerLogLevel.HEADERS,
    LoggerLogLevel.BODY,
)
BOUND = 5.0

# -- helpers -------------------------------------------------------------------


class Printed:
    """A printer that collects ``(level, direction, data)`` for each line."""

    def __init__(self) -> None:
        self.calls: list[tuple[LoggerLogLevel, str, str]] = []
        self.port = 0

    def __call__(self, logger: Logger, level: LoggerLogLevel, direction: str, data: str) -> None:
        assert isinstance(logger, Logger)
        assert direction in "<> " and len(direction) == 1
        assert "\n" not in data
        self.calls.append((level, direction, data))

    def lines(self) -> list[str]:
        """``direction data`` per line, normalised (see :func:`normalise`)."""
        return [normalise(f"{d} {data}", self.port) for _, d, data in self.calls]

    def clear(self) -> None:
        self.calls.clear()


def normalise(line: str, port: int) -> str:
    """Timestamps become ``T``, addresses ``0x…`` and the server port ``PORT``."""
    line = re.sub(r"Soup-Debug-Timestamp: \d+$", "Soup-Debug-Timestamp: T", line)
    line = re.sub(r"\(0x[0-9a-f]+\)", "(0x…)", line)
    return line.replace(f":{port}", ":PORT") if port else line


def with_logger(
    level: LoggerLogLevel = HEADERS, *, decoder: bool = False, **kwargs: Any
) -> tuple[Session, Logger, Printed]:
    """A session with a Logger printing to a :class:`Printed`.

    The ContentDecoder is removed unless asked for, so that the request
    headers are exactly those a test gives (no ``Accept-Encoding``).
    """
    logger = Logger(level, **kwargs)
    printed = Printed()
    logger.set_printer(printed)
    session = Session(features=[logger])
    if not decoder:
        session.remove_feature_by_type(anysoup.ContentDecoder)
    return session, logger, printed


async def text_app(conn: ServerConnection, req: ReceivedRequest) -> None:
    """200 OK with a two-line text body (or the named status on ``/status/N``)."""
    if req.target.startswith("/status/"):
        await conn.respond(int(req.target[8:]), [("Content-Type", "text/plain")], b"", reason=b"")
        return
    await conn.respond(200, [("Content-Type", "text/plain")], b"hello\r\nworld\n", reason=b"OK")


def body_app(body: bytes, content_type: str = "text/plain", *extra: tuple[str, str]) -> Any:
    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        await conn.respond(200, [("Content-Type", content_type), *extra], body, reason=b"OK")

    return handler


def request_block(
    first: str, *headers: str, connection: str = "new", restarted: bool = False, n: int = 1
) -> list[str]:
    debug = f"> Soup-Debug: Session 1 (0x…), Message {n} (0x…), {connection}"
    if connection in ("new", "reused"):
        debug += " connection to 127.0.0.1:PORT"
    if restarted:
        debug += ", restarted"
    return [f"> {first}", "> Soup-Debug-Timestamp: T", debug, *(f"> {h}" for h in headers)]


def response_block(status: str, *headers: str, n: int = 1) -> list[str]:
    return [
        f"< {status}",
        "< Soup-Debug-Timestamp: T",
        f"< Soup-Debug: Message {n} (0x…)",
        *(f"< {h}" for h in headers),
    ]


SEP = "  "  # the empty line with direction " " that ends every block


# -- the feature itself ----------------------------------------------------------


def test_defaults_properties_and_aliases() -> None:
    logger = Logger()
    assert logger.level is HEADERS
    assert logger.max_body_size == -1
    assert logger.redact is True
    assert Logger.chain_position == anysoup.SessionFeature.POSITION_LOGGER
    logger.set_level(BODY)
    assert logger.get_level() is BODY and logger.level is BODY
    logger.level = 1  # type: ignore[assignment]  # an int is taken as the enum
    assert logger.level is MINIMAL
    logger.set_max_body_size(10)
    assert logger.get_max_body_size() == 10 == logger.max_body_size
    logger.set_redact(False)
    assert logger.get_redact() is False is logger.redact
    assert repr(logger) == "<anysoup.Logger level=MINIMAL max_body_size=10 redact=False>"
    assert Logger.new(BODY, 5).max_body_size == 5
    assert not Session().has_feature(Logger)  # not a default feature


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"level": 7}, "level: 7 is not a LoggerLogLevel"),
        ({"level": "BODY"}, "level: 'BODY' is not a LoggerLogLevel"),
        ({"max_body_size": -2}, "max_body_size: -2 is not -1"),
        ({"max_body_size": 1.5}, "max_body_size: 1.5 is not -1"),
    ],
)
def test_constructor_names_the_wrong_argument(kwargs: dict[str, Any], text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(text)):
        Logger(**kwargs)


def basic(credentials: bytes) -> str:
    return "Basic " + base64.b64encode(credentials).decode()


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("Authorization", basic(b"alice:s3cret"), "Basic alice:[redacted]"),
        ("authorization", basic(b"alice:s3cret"), "Basic alice:[redacted]"),
        ("AUTHORIZATION", "Bearer abc.def.ghi", "Bearer [redacted]"),
        ("Authorization", 'Digest username="bob", response="ab12"', "Digest [redacted]"),
        ("Authorization", "Basic !!not-base64!!", "Basic [redacted]"),
        ("Authorization", basic(b"no-colon"), "Basic [redacted]"),
        ("Authorization", "opaque-token", "[redacted]"),
        ("Proxy-Authorization", basic(b"proxy:pw"), "Basic proxy:[redacted]"),
        ("proxy-AUTHORIZATION", "Negotiate YIIB", "Negotiate [redacted]"),
        ("Cookie", "sid=abc; theme=dark", "sid=[redacted]; theme=[redacted]"),
        ("cookie", "lone", "lone=[redacted]"),
        ("Set-Cookie", "sid=abc; Path=/; HttpOnly", "sid=[redacted]; Path=/; HttpOnly"),
        ("SET-COOKIE", "sid=abc", "sid=[redacted]"),
        ("Content-Type", "text/plain", "text/plain"),
    ],
)
def test_redact_value(name: str, value: str, shown: str) -> None:
    assert redact_value(name, value) == shown


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        (("127.0.0.1", 8080), "127.0.0.1:8080"),
        (("::1", 443), "[::1]:443"),
        (anysoup.UnixSocketAddress("/run/app.sock"), "unix:/run/app.sock"),
        (None, "?"),
    ],
)
def test_connection_address(address: object, shown: str) -> None:
    assert address_text(address) == shown


def body_lines(body: BodyText, *, complete: bool = True) -> list[str]:
    return [data for _, _, data in body.lines(">", complete=complete)]


@pytest.mark.parametrize(
    ("limit", "pieces", "content_type", "lines"),
    [
        (-1, [b""], None, []),
        (-1, [b"one\r\ntwo\n"], None, ["", "one", "two"]),
        (-1, [b"no newline"], None, ["", "no newline"]),
        (-1, [b"a\n\nb"], None, ["", "a", "", "b"]),
        (5, [b"0123", b"456789"], None, ["", "01234", "[...]"]),
        (10, [b"0123456789"], None, ["", "0123456789"]),
        (0, [b"x"], None, ["", "[...]"]),
        (-1, ["héllo".encode()[:2], "héllo".encode()[2:]], None, ["", "héllo"]),
        (2, ["é!".encode()], None, ["", "é", "[...]"]),
        (2, ["aé".encode()], None, ["", "a", "[...]"]),  # a character cut by the limit
        (-1, ["aé".encode()[:2]], None, ["", "[2 bytes of binary data]"]),  # ends mid-character
        (-1, [bytes(range(256))], None, ["", "[256 bytes of binary data]"]),
        (-1, [b"text then ", b"\x00\x01", b"more"], None, ["", "[16 bytes of binary data]"]),
        (-1, [b"\xff\xfe"], None, ["", "[2 bytes of binary data]"]),
        (-1, [b"\x1b[31mred"], None, ["", "[8 bytes of binary data]"]),
        (-1, ["café".encode("latin-1")], "text/plain; charset=ISO-8859-1", ["", "café"]),
        (-1, [b"caf\xe9"], "text/plain; charset=no-such", ["", "[4 bytes of binary data]"]),
    ],
)
def test_body_text(
    limit: int, pieces: list[bytes], content_type: str | None, lines: list[str]
) -> None:
    headers = MessageHeaders({"Content-Type": content_type} if content_type else None)
    body = BodyText(limit, headers)
    for piece in pieces:
        body.feed(piece)
    assert body_lines(body) == lines
    assert body.size == sum(map(len, pieces))


def test_body_text_cut_short_drops_a_partial_character() -> None:
    body = BodyText(-1, MessageHeaders())
    body.feed("ab€".encode()[:3])
    assert body_lines(body, complete=False) == ["", "ab"]


# -- line format and levels ----------------------------------------------------------


async def test_headers_level_exact_lines(leak_check: LeakCheck) -> None:
    session, _, printed = with_logger(HEADERS)
    async with serve_http(text_app) as server, session:
        printed.port = server.port
        msg = Message(
            "GET", server.url_for("/path?q=1"), headers=[("X-One", "1"), ("Accept", "*/*")]
        )
        with anyio.fail_after(BOUND):
            assert await session.send_and_read(msg) == b"hello\r\nworld\n"
    assert printed.lines() == [
        *request_block(
            "GET /path?q=1 HTTP/1.1", "Host: 127.0.0.1:PORT", "X-One: 1", "Accept: */*"
        ),
        SEP,
        *response_block("HTTP/1.1 200 OK", "Content-Type: text/plain", "content-length: 13"),
        SEP,
    ]
    levels = [level for level, _, _ in printed.calls]
    assert levels == [MINIMAL] * 3 + [HEADERS] * 3 + [MINIMAL] * 4 + [HEADERS] * 2 + [MINIMAL]
    stamp = next(int(d.split()[-1]) for _, _, d in printed.calls if "Timestamp" in d)
    assert abs(stamp - time.time()) < 60
    await leak_check(session)


@pytest.mark.parametrize("level", [MINIMAL, HEADERS, BODY])
async def test_each_level(level: LoggerLogLevel, leak_check: LeakCheck) -> None:
    session, _, printed = with_logger(level)
    async with serve_http(text_app) as server, session:
        printed.port = server.port
        msg = Message("POST", server.url_for("/form"), body=b"a=1\nb=2")
        msg.request_headers.append("Content-Type", "text/plain")
        with anyio.fail_after(BOUND):
            await session.send_and_read(msg)
    request = request_block("POST /form HTTP/1.1")
    response = response_block("HTTP/1.1 200 OK")
    if level >= HEADERS:
        request += ["> Host: 127.0.0.1:PORT", "> Content-Type: text/plain", "> Content-Length: 7"]
        response += ["< Content-Type: text/plain", "< content-length: 13"]
    if level >= BODY:
        request += ["> ", "> a=1", "> b=2"]
        response += ["< ", "< hello", "< world"]
    assert printed.lines() == [*request, SEP, *response, SEP]
    await leak_check(session)


async def test_status_without_reason_and_ids_count_per_logger(leak_check: LeakCheck) -> None:
    session, _, printed = with_logger(MINIMAL)
    async with serve_http(text_app) as server, session:
        printed.port = server.port
        for status in (204, 404):
            with anyio.fail_after(BOUND):
                await session.send_and_read(Message("GET", server.url_for(f"/status/{status}")))
    assert printed.lines() == [
        *request_block("GET /status/204 HTTP/1.1"),
        SEP,
        *response_block("HTTP/1.1 204"),
        SEP,
        *request_block("GET /status/404 HTTP/1.1", connection="reused", n=2),
        SEP,
        *response_block("HTTP/1.1 404", n=2),
        SEP,
    ]
    await leak_check(session)


async def test_concurrent_messages_never_interleave_blocks(leak_check: LeakCheck) -> None:
    session, _, printed = with_logger(BODY)
    async with serve_http(text_app) as server, session:
        with anyio.fail_after(BOUND):
            async with anyio.create_task_group() as tg:
                for index in range(6):
                    msg = Message("GET", server.url_for(f"/{index}"))
                    tg.start_soon(session.send_and_read, msg)
    blocks: list[list[str]] = [[]]
    for line in printed.lines():
        if line == SEP:
            blocks.append([])
        else:
            blocks[-1].append(line)
    assert blocks.pop() == []
    owners = []
    for block in blocks:
        debug = [line for line in block if "Soup-Debug:" in line]
        assert len(debug) == 1, block
        owners.append((block[0][0], re.findall(r"Message (\d+)", debug[0])[0]))
    assert sorted(owners) == sorted([(d, str(n)) for n in range(1, 7) for d in "<>"])
    await leak_check(session)


async def test_none_level_makes_nothing_per_message(leak_check: LeakCheck) -> None:
    session, logger, printed = with_logger(NONE)
    async with serve_http(text_app) as server, session:
        msg = Message("GET", server.url_for("/"))
        with anyio.fail_after(BOUND):
            await session.send_and_read(msg)
        assert printed.calls == []
        assert msg._signals is None  # no handler was connected, no signal made
        logger.level = HEADERS  # a change takes effect with the next message
        with anyio.fail_after(BOUND):
            await session.send_and_read(Message("GET", server.url_for("/")))
        assert printed.calls
        printed.clear()
        msg = Message("GET", server.url_for("/"))
        msg.disable_feature(Logger)  # per message, through the chain
        with anyio.fail_after(BOUND):
            await session.send_and_read(msg)
        assert printed.calls == []
    await leak_check(session)


# -- filters ---------------------------------------------------------------------------


async def test_filters_choose_the_level_per_message(leak_check: LeakCheck) -> None:
    session, logger, printed = with_logger(HEADERS)
    asked: list[tuple[str, str, int]] = []

    def request_filter(lg: Logger, msg: Message, tag: str) -> LoggerLogLevel:
        assert lg is logger
        asked.append((tag, msg.uri.path, msg.status))
        return NONE if msg.uri.path == "/quiet" else MINIMAL

    def response_filter(lg: Logger, msg: Message) -> int:
        asked.append(("response", msg.uri.path, msg.status))
        content_type = msg.response_headers.get_content_type()
        return 3 if content_type and content_type[0] == "text/plain" else 0

    logger.set_request_filter(request_filter, "request")
    logger.set_response_filter(response_filter)
    async with serve_http(text_app) as server, session:
        printed.port = server.port
        with anyio.fail_after(BOUND):
            await session.send_and_read(Message("GET", server.url_for("/quiet")))
            await session.send_and_read(Message("GET", server.url_for("/loud")))
    assert asked == [
        ("request", "/quiet", 0),
        ("response", "/quiet", 200),
        ("request", "/loud", 0),
        ("response", "/loud", 200),
    ]
    assert printed.lines() == [
        # /quiet: the request filter said NONE; the response filter said BODY
        *response_block(
            "HTTP/1.1 200 OK", "Content-Type: text/plain", "content-length: 13", "", "hello"
        ),
        "< world",
        SEP,
        *request_block("GET /loud HTTP/1.1", connection="reused", n=2),
        SEP,
        *response_block(
            "HTTP/1.1 200 OK",
            "Content-Type: text/plain",
            "content-length: 13",
            "",
            "hello",
            n=2,
        ),
        "< world",
        SEP,
    ]
    await leak_check(session)


async def test_filters_returning_none_cost_nothing(leak_check: LeakCheck) -> None:
    session, logger, printed = with_logger(BODY)
    logger.set_request_filter(lambda lg, msg: NONE)
    logger.set_response_filter(lambda lg, msg: NONE)
    async with serve_http(text_app) as server, session:
        msg = Message("GET", server.url_for("/"))
        with anyio.fail_after(BOUND):
            async with session.send(msg) as body:
                assert type(body._source).__name__ != "_ResponseBodyLog"
                await body.read()
        assert msg._signals is None
        assert printed.calls == []
        logger.set_request_filter(None)  # back to the logger's level
        logger.set_response_filter(None)
        with anyio.fail_after(BOUND):
            await session.send_and_read(Message("GET", server.url_for("/")))
        assert printed.calls
    await leak_check(session)


async def test_bad_filter_result_is_an_error(leak_check: LeakCheck) -> None:
    session, logger, _ = with_logger(HEADERS)
    logger.set_request_filter(lambda lg, msg: "loud")
    async with serve_http(text_app) as server, session:
        with anyio.fail_after(BOUND), pytest.raises(ValueError, match="request filter result"):
            await session.send_and_read(Message("GET", server.url_for("/")))
        assert session.statistics().in_use == 0
    await leak_check(session)


# -- the stdlib logger -------------------------------------------------------------------


async def test_stdlib_logger_gets_the_lines_at_info(
    caplog: pytest.LogCaptureFixture, leak_check: LeakCheck
) -> None:
    caplog.set_level(logging.INFO, logger="anysoup")
    session = Session(features=[Logger(MINIMAL)])
    async with serve_http(text_app) as server, session:
        with anyio.fail_after(BOUND):
            await session.send_and_read(Message("GET", server.url_for("/x")))
    # (MINIMAL: the default features' headers don't show)
    records = [r for r in caplog.records if r.name == "anysoup"]
    assert {r.levelno for r in records} == {logging.INFO}
    # The empty lines that end blocks are left out: each record is one line.
    assert [normalise(r.getMessage(), server.port) for r in records] == [
        *request_block("GET /x HTTP/1.1"),
        *response_block("HTTP/1.1 200 OK"),
    ]
    await leak_check(session)


async def test_stdlib_logger_disabled_makes_nothing_per_message(
    caplog: pytest.LogCaptureFixture, leak_check: LeakCheck
) -> None:
    caplog.set_level(logging.WARNING, logger="anysoup")
    logger = Logger(BODY)
    called: list[Message] = []
    logger.set_request_filter(lambda lg, msg: called.append(msg) or BODY)
    session = Session(features=[logger])
    async with serve_http(text_app) as server, session:
        msg = Message("GET", server.url_for("/"))
        with anyio.fail_after(BOUND):
            await session.send_and_read(msg)
        assert called == [] and msg._signals is None
        # A printer set later is used at once; None goes back to the stdlib logger.
        printed = Printed()
        logger.set_printer(printed)
        with anyio.fail_after(BOUND):
            await session.send_and_read(Message("GET", server.url_for("/")))
        assert len(called) == 1 and printed.calls
        logger.set_printer(None)
        with anyio.fail_after(BOUND):
            await session.send_and_read(Message("GET", server.url_for("/")))
        assert len(called) == 1
    assert not [r for r in caplog.records if r.name == "anysoup"]
    await leak_check(session)


async def test_printer_user_data(leak_check: LeakCheck) -> None:
    logger = Logger(MINIMAL)
    seen: list[tuple[str, str, str]] = []
    logger.set_printer(
        lambda lg, level, direction, data, tag: seen.append((tag, direction, data)), "tag"
    )
    session = Session(features=[logger])
    async with serve_http(text_app) as server, session:
        with anyio.fail_after(BOUND):
            await session.send_and_read(Message("GET", server.url_for("/")))
    assert seen[0] == ("tag", ">", "GET / HTTP/1.1")
    assert {tag for tag, _, _ in seen} == {"tag"}
    await leak_check(session)


# -- redaction -------------------------------------------------------------------------


async def cookie_app(conn: ServerConnection, req: ReceivedRequest) -> None:
    await conn.respond(
        200,
        [("set-COOKIE", "sid=s3cret; Path=/; HttpOnly"), ("X-Plain", "shown")],
        b"",
        reason=b"OK",
    )


SECRETS = [
    ("AUTHORIZATION", basic(b"alice:pa55word")),
    ("proxy-Authorization", "Bearer tok3n"),
    ("cOOKIE", "a=1; session=deadbeef"),
    ("X-Plain", "shown"),
]


@pytest.mark.parametrize("redact", [True, False])
async def test_redaction_on_and_off(redact: bool, leak_check: LeakCheck) -> None:
    session, _, printed = with_logger(HEADERS, redact=redact)
    async with serve_http(cookie_app) as server, session:
        printed.port = server.port
        with anyio.fail_after(BOUND):
            await session.send_and_read(Message("GET", server.url_for("/"), headers=SECRETS))
        # the wire carries the real values either way
        assert server.requests[0].header("authorization") == SECRETS[0][1]
    text = "\n".join(printed.lines())
    if redact:
        for secret in ("pa55word", "tok3n", "deadbeef", "s3cret", SECRETS[0][1]):
            assert secret not in text
        expected = [
            "> AUTHORIZATION: Basic alice:[redacted]",
            "> proxy-Authorization: Bearer [redacted]",
            "> cOOKIE: a=[redacted]; session=[redacted]",
            "> X-Plain: shown",
            "< set-COOKIE: sid=[redacted]; Path=/; HttpOnly",
            "< X-Plain: shown",
        ]
    else:
        expected = [
            *(f"> {name}: {value}" for name, value in SECRETS),
            "< set-COOKIE: sid=s3cret; Path=/; HttpOnly",
            "< X-Plain: shown",
        ]
    headers = [line for line in printed.lines() if "Soup-" not in line and ": " in line]
    assert [h for h in headers if "Host:" not in h and "content-length" not in h] == expected
    await leak_check(session)


# -- re-sends ------------------------------------------------------------------------------


async def redirecting_app(conn: ServerConnection, req: ReceivedRequest) -> None:
    if req.target == "/old":
        await conn.respond(302, [("Location", "/new")], b"", reason=b"Found")
    else:
        await conn.respond(200, [], b"arrived", reason=b"OK")


async def test_each_redirect_hop_is_logged(leak_check: LeakCheck) -> None:
    session, _, printed = with_logger(MINIMAL)
    async with serve_http(redirecting_app) as server, session:
        printed.port = server.port
        msg = Message("GET", server.url_for("/old"))
        with anyio.fail_after(BOUND):
            assert await session.send_and_read(msg) == b"arrived"
    assert printed.lines() == [
        *request_block("GET /old HTTP/1.1"),
        SEP,
        *response_block("HTTP/1.1 302 Found"),
        SEP,
        *request_block("GET /new HTTP/1.1", connection="reused", restarted=True),
        SEP,
        *response_block("HTTP/1.1 200 OK"),
        SEP,
    ]
    await leak_check(session)


def race_closing_handler() -> Any:
    """Answer the first request of each connection; drop a kept-alive one's next request."""
    answered: dict[int, int] = {}

    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        answered[conn.index] = answered.get(conn.index, 0) + 1
        if answered[conn.index] == 1:
            await conn.respond(200, [], req.target.encode(), reason=b"OK")
        else:
            await conn.close()

    return handler


async def test_stale_connection_retry_is_logged_as_two_writes(leak_check: LeakCheck) -> None:
    session, _, printed = with_logger(MINIMAL)
    async with serve_http(race_closing_handler()) as server, session:
        printed.port = server.port
        with anyio.fail_after(BOUND):
            assert await session.send_and_read(Message("GET", server.url_for("/1"))) == b"/1"
            printed.clear()
            assert await session.send_and_read(Message("GET", server.url_for("/2"))) == b"/2"
    assert printed.lines() == [
        *request_block("GET /2 HTTP/1.1", connection="reused", n=2),
        SEP,
        "< [no response; the request is sent again]",
        "< Soup-Debug-Timestamp: T",
        "< Soup-Debug: Message 2 (0x…)",
        SEP,
        *request_block("GET /2 HTTP/1.1", connection="new", restarted=True, n=2),
        SEP,
        *response_block("HTTP/1.1 200 OK", n=2),
        SEP,
    ]
    await leak_check(session)


# -- request bodies ------------------------------------------------------------------------


@pytest.mark.parametrize("level", [HEADERS, BODY])
async def test_streamed_request_body(level: LoggerLogLevel, leak_check: LeakCheck) -> None:
    session, _, printed = with_logger(level)
    printed_before_second_piece: list[str] = []

    async def pieces() -> AsyncIterator[bytes]:
        yield b"first line\nsecond "
        printed_before_second_piece.extend(printed.lines())
        yield b"line\n"

    async with serve_http(text_app) as server, session:
        printed.port = server.port
        msg = Message("PUT", server.url_for("/upload"), body=pieces())
        with anyio.fail_after(BOUND):
            await session.send_and_read(msg)
        assert server.requests[0].body == b"first line\nsecond line\n"
    head = request_block(
        "PUT /upload HTTP/1.1", "Host: 127.0.0.1:PORT", "Transfer-Encoding: chunked"
    )
    if level is HEADERS:
        # The head is printed as soon as it is written, before the body is streamed.
        assert printed_before_second_piece == [*head, SEP]
        assert printed.lines()[: len(head) + 1] == [*head, SEP]
    else:
        # At BODY level the block waits for the whole body.
        assert printed_before_second_piece == []
        assert printed.lines()[: len(head) + 4] == [
            *head,
            "> ",
            "> first line",
            "> second line",
            SEP,
        ]
    await leak_check(session)


async def test_request_body_truncated_to_max_body_size(leak_check: LeakCheck) -> None:
    session, _, printed = with_logger(BODY, max_body_size=6)
    async with serve_http(body_app(b"0123456789")) as server, session:
        printed.port = server.port
        msg = Message("POST", server.url_for("/"), body=b"abcdefghij")
        with anyio.fail_after(BOUND):
            await session.send_and_read(msg)
    lines = printed.lines()
    assert lines[lines.index("> Content-Length: 10") + 1 :][:4] == [
        "> ",
        "> abcdef",
        "> [...]",
        SEP,
    ]
    assert lines[-4:] == ["< ", "< 012345", "< [...]", SEP]
    await leak_check(session)


async def test_expect_continue_order(leak_check: LeakCheck) -> None:
    session, _, printed = with_logger(BODY)

    async def continue_app(conn: ServerConnection, req: ReceivedRequest) -> None:
        await conn.send_informational(100)
        body = await conn.read_body()
        await conn.respond(201, [], b"", reason=b"Created")
        assert body == b"payload"

    async with serve_http(continue_app, read_body=False) as server, session:
        printed.port = server.port
        msg = Message("POST", server.url_for("/up"), headers={"Expect": "100-continue"})
        msg.set_request_body_from_bytes(None, b"payload")
        with anyio.fail_after(BOUND):
            await session.send_and_read(msg)
    assert printed.lines() == [
        *request_block(
            "POST /up HTTP/1.1",
            "Host: 127.0.0.1:PORT",
            "Expect: 100-continue",
            "Content-Length: 7",
        ),
        SEP,
        *response_block("HTTP/1.1 100"),
        SEP,
        "> [Now sending request body...]",
        "> payload",
        SEP,
        *response_block("HTTP/1.1 201 Created", "content-length: 0"),
        SEP,
    ]
    await leak_check(session)


# -- response bodies -----------------------------------------------------------------------


async def test_response_body_read_in_pieces(leak_check: LeakCheck) -> None:
    session, _, printed = with_logger(BODY)

    async def chunked(conn: ServerConnection, req: ReceivedRequest) -> None:
        await conn.send_head(200, [("Content-Type", "text/plain")], reason=b"OK")
        for piece in (b"alpha\nbe", b"ta\n", b"gamma"):
            await conn.send_data(piece)
        await conn.end()

    async with serve_http(chunked) as server, session:
        printed.port = server.port
        with anyio.fail_after(BOUND):
            async with session.send(Message("GET", server.url_for("/"))) as body:
                assert await body.read(3) == b"alp"
                assert not any(line.startswith("<") for line in printed.lines())
                pieces = [b"alp"]
                while piece := await body.read(4):
                    pieces.append(piece)
        assert b"".join(pieces) == b"alpha\nbeta\ngamma"
    assert printed.lines()[-6:] == [
        "< Transfer-Encoding: chunked",
        "< ",
        "< alpha",
        "< beta",
        "< gamma",
        SEP,
    ]
    await leak_check(session)


async def test_binary_response_body(leak_check: LeakCheck) -> None:
    session, _, printed = with_logger(BODY)
    async with serve_http(body_app(bytes(range(256)) * 4, "image/png")) as server, session:
        with anyio.fail_after(BOUND):
            assert len(await session.send_and_read(Message("GET", server.url_for("/")))) == 1024
    assert printed.lines()[-3:] == ["< ", "< [1024 bytes of binary data]", SEP]
    await leak_check(session)


async def test_bodies_are_logged_as_they_travel_before_decoding(leak_check: LeakCheck) -> None:
    session, _, printed = with_logger(BODY, decoder=True)
    text = b"decoded text\n" * 10
    async with (
        serve_http(
            body_app(gzip.compress(text), "text/plain", ("Content-Encoding", "gzip"))
        ) as server,
        session,
    ):
        printed.port = server.port
        msg = Message("GET", server.url_for("/"))
        msg.request_headers.append("Accept-Encoding", "gzip")
        with anyio.fail_after(BOUND):
            assert await session.send_and_read(msg) == text
    lines = printed.lines()
    assert "> Accept-Encoding: gzip" in lines
    size = len(gzip.compress(text))
    assert lines[-3:] == ["< ", f"< [{size} bytes of binary data]", SEP]
    await leak_check(session)


async def test_response_body_closed_before_the_end(leak_check: LeakCheck) -> None:
    session, _, printed = with_logger(BODY)
    async with serve_http(body_app(b"x" * 100_000)) as server, session:
        with anyio.fail_after(BOUND):
            async with session.send(Message("GET", server.url_for("/"))) as body:
                first = await body.receive(10)
        assert first == b"x" * 10
    lines = printed.lines()
    assert lines[-1] == SEP
    assert re.fullmatch(r"< \[closed before the end, \d+ bytes read\]", lines[-2])
    assert lines[-4] == "< "
    await leak_check(session)


async def test_response_body_never_closed(leak_check: LeakCheck) -> None:
    session, _, printed = with_logger(BODY)
    async with serve_http(text_app) as server, session:
        with anyio.fail_after(BOUND):
            body = await session.send(Message("GET", server.url_for("/")))
        with pytest.warns(ResourceWarning, match="never closed"):
            del body
            gc.collect()
        assert session.statistics().in_use == 0
    assert printed.lines()[-3:] == ["< ", "< [never closed, 0 bytes read]", SEP]
    await leak_check(session)


async def test_empty_response_body_at_body_level(leak_check: LeakCheck) -> None:
    session, _, printed = with_logger(BODY)
    async with serve_http(text_app) as server, session:
        printed.port = server.port
        with anyio.fail_after(BOUND):
            await session.send_and_read(Message("HEAD", server.url_for("/")))
    assert printed.lines()[-4:] == [
        "< Soup-Debug: Message 1 (0x…)",
        "< Content-Type: text/plain",
        "< content-length: 13",
        SEP,
    ]
    await leak_check(session)


# -- failures and cancellation -----------------------------------------------------------


async def test_connect_failure_is_logged(leak_check: LeakCheck) -> None:
    session, _, printed = with_logger(HEADERS)
    with anyio.fail_after(BOUND):
        async with serve_http(text_app) as server:
            port = server.port
        async with session:
            msg = Message("GET", f"http://127.0.0.1:{port}/gone")
            with pytest.raises(anysoup.ConnectError) as info:
                await session.send_and_read(msg)
    printed.port = port
    assert printed.lines() == [
        *request_block("GET /gone HTTP/1.1", "Host: 127.0.0.1:PORT", connection="not sent"),
        SEP,
        normalise(f"< [request failed: ConnectError: {info.value}]", port),
        "< Soup-Debug-Timestamp: T",
        "< Soup-Debug: Message 1 (0x…)",
        SEP,
    ]
    await leak_check(session)


async def test_no_response_is_logged(leak_check: LeakCheck) -> None:
    session, _, printed = with_logger(MINIMAL)

    async def hang_up(conn: ServerConnection, req: ReceivedRequest) -> None:
        await conn.close()

    async with serve_http(hang_up) as server, session:
        printed.port = server.port
        with anyio.fail_after(BOUND), pytest.raises(anysoup.NetworkError) as info:
            await session.send_and_read(Message("GET", server.url_for("/")))
    assert printed.lines() == [
        *request_block("GET / HTTP/1.1"),
        SEP,
        normalise(f"< [request failed: {type(info.value).__name__}: {info.value}]", server.port),
        "< Soup-Debug-Timestamp: T",
        "< Soup-Debug: Message 1 (0x…)",
        SEP,
    ]
    await leak_check(session)


async def test_body_failure_is_logged(leak_check: LeakCheck) -> None:
    session, _, printed = with_logger(BODY)

    async def short(conn: ServerConnection, req: ReceivedRequest) -> None:
        await conn.send_head(200, [("Content-Length", "100")], reason=b"OK")
        await conn.send_data(b"only this")
        await conn.close()

    async with serve_http(short) as server, session:
        printed.port = server.port
        with anyio.fail_after(BOUND), pytest.raises(anysoup.IncompleteBody) as info:
            await session.send_and_read(Message("GET", server.url_for("/")))
        assert session.statistics().in_use == 0
    assert printed.lines()[-4:] == [
        "< ",
        "< only this",
        normalise(f"< [failed: IncompleteBody: {info.value}]", server.port),
        SEP,
    ]
    await leak_check(session)


async def test_cancelled_while_waiting_for_the_response(leak_check: LeakCheck) -> None:
    session, _, printed = with_logger(MINIMAL)
    arrived = anyio.Event()

    async def stall(conn: ServerConnection, req: ReceivedRequest) -> None:
        arrived.set()
        await anyio.sleep_forever()

    async with serve_http(stall) as server, session:
        printed.port = server.port
        with anyio.fail_after(BOUND):
            async with anyio.create_task_group() as tg:
                tg.start_soon(session.send_and_read, Message("GET", server.url_for("/")))
                await arrived.wait()
                tg.cancel_scope.cancel()
        assert session.statistics().in_use == 0
    assert printed.lines()[-4:] == [
        "< [request cancelled]",
        "< Soup-Debug-Timestamp: T",
        "< Soup-Debug: Message 1 (0x…)",
        SEP,
    ]
    await leak_check(session)


async def test_cancelled_while_reading_a_logged_body_leaves_the_pool_clean(
    leak_check: LeakCheck,
) -> None:
    session, _, printed = with_logger(BODY)

    async def trickle(conn: ServerConnection, req: ReceivedRequest) -> None:
        if req.target == "/next":
            await conn.respond(200, [], b"next", reason=b"OK")
            return
        await conn.send_head(200, [("Content-Length", "1000")], reason=b"OK")
        await conn.send_data(b"partial\n")
        await anyio.sleep_forever()

    async with serve_http(trickle) as server, session:
        printed.port = server.port
        with anyio.fail_after(BOUND):
            with anyio.CancelScope() as scope:
                async with session.send(Message("GET", server.url_for("/"))) as body:
                    assert await body.receive() == b"partial\n"
                    scope.cancel()
                    await body.receive()
            assert scope.cancelled_caught
            stats = session.statistics()
            assert stats.in_use == 0 and stats.waiting == 0
            assert printed.lines()[-4:] == ["< ", "< partial", "< [cancelled]", SEP]
            assert await session.send_and_read(Message("GET", server.url_for("/next"))) == b"next"
    await leak_check(session)


async def test_failing_response_filter_closes_the_stream(leak_check: LeakCheck) -> None:
    session, logger, _ = with_logger(HEADERS)
    logger.set_response_filter(lambda lg, msg: 42)
    async with serve_http(text_app) as server, session:
        with anyio.fail_after(BOUND), pytest.raises(ValueError, match="response filter result"):
            await session.send_and_read(Message("GET", server.url_for("/")))
        assert session.statistics().in_use == 0  # given back, not left to the GC
        logger.set_response_filter(None)
        with anyio.fail_after(BOUND):
            await session.send_and_read(Message("GET", server.url_for("/")))
    await leak_check(session)
