"""Session: properties, headers it adds, queue signals, features, sending, the pool.

Everything is checked against the scripted h11 server of ``servers.py`` on
both backends; ``leak_check`` makes sure each session left nothing behind.
"""

from __future__ import annotations

import gc
import json
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import pytest
from servers import ReceivedRequest, ServerConnection, serve_http

import anysoup
from anysoup import (
    DEFAULT,
    InputStream,
    Message,
    MessageAlreadyInQueue,
    PoolStatistics,
    Session,
    SessionFeature,
    SpliceFlags,
    TlsDatabase,
    UnixSocketAddress,
)

LeakCheck = Callable[[Session], Awaitable[None]]

# -- servers -------------------------------------------------------------------


async def headers_app(conn: ServerConnection, req: ReceivedRequest) -> None:
    """200 with the request's headers as JSON (lists of values per lowercased name)."""
    seen: dict[str, list[str]] = {}
    for name, value in req.headers:
        seen.setdefault(name, []).append(value)
    await conn.respond(200, [("Content-Type", "application/json")], json.dumps(seen).encode())


async def hello(conn: ServerConnection, req: ReceivedRequest) -> None:
    await conn.respond(200, [("Content-Type", "text/plain")], b"hello " + req.target.encode())


def sized(size: int) -> Callable[[ServerConnection, ReceivedRequest], Awaitable[None]]:
    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        await conn.respond(200, [], bytes(i % 251 for i in range(size)))

    return handler


async def seen_headers(session: Session, msg: Message) -> dict[str, list[str]]:
    return json.loads(await session.send_and_read(msg))  # type: ignore[no-any-return]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    # Pool statistics and server counters have no events to wait on: poll them.
    with anyio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.02)


# -- properties ----------------------------------------------------------------

PROPERTIES = [
    "accept_language",
    "accept_language_auto",
    "idle_timeout",
    "local_address",
    "max_conns",
    "max_conns_per_host",
    "proxy_resolver",
    "remote_connectable",
    "timeout",
    "tls_database",
    "tls_interaction",
    "user_agent",
]


def test_defaults() -> None:
    session = Session()
    assert session.max_conns == 10
    assert session.max_conns_per_host == 2
    assert session.idle_timeout == 60
    assert session.timeout == 60
    assert session.user_agent is None
    assert session.accept_language is None
    assert session.accept_language_auto is False
    assert session.local_address is None
    assert session.remote_connectable is None
    assert session.tls_interaction is None
    assert isinstance(session.tls_database, TlsDatabase)  # the system store, not a placeholder
    assert Session.new().max_conns == 10


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("accept_language", "fr, en;q=0.5"),
        ("accept_language", None),
        ("idle_timeout", 0.25),
        ("idle_timeout", 0),
        ("local_address", ("127.0.0.1", 0)),
        ("max_conns", 3),
        ("max_conns_per_host", 7),
        ("proxy_resolver", None),
        ("remote_connectable", ("127.0.0.1", 8080)),
        ("remote_connectable", UnixSocketAddress("/tmp/anysoup-test.sock")),
        ("timeout", 2.5),
        ("timeout", 0),
        ("tls_database", None),
        ("tls_interaction", None),
        ("user_agent", "Agent/1.0"),
        ("user_agent", ""),
    ],
)
def test_property_access_forms(name: str, value: Any) -> None:
    # constructor keyword, attribute, get_/set_ alias and session.props agree
    session = Session(**{name: value})
    assert getattr(session, name) == value
    assert getattr(session, f"get_{name}")() == value
    assert getattr(session.props, name) == value
    assert getattr(session.props, name.replace("_", "-")) == value

    session = Session()
    getattr(session, f"set_{name}")(value)
    assert getattr(session, name) == value
    session = Session()
    setattr(session.props, name, value)
    assert getattr(session, name) == value
    session = Session()
    setattr(session, name, value)
    assert getattr(session, f"get_{name}")() == value


def test_every_property_has_aliases() -> None:
    session = Session()
    assert sorted(dir(session.props)) == sorted(PROPERTIES)
    for name in PROPERTIES:
        assert isinstance(getattr(Session, name), property), name
        assert callable(getattr(session, f"get_{name}")), name
        assert callable(getattr(session, f"set_{name}")), name
    with pytest.raises(AttributeError):
        _ = session.props.no_such_property
    with pytest.raises(AttributeError):
        session.props.no_such_property = 1


def test_tls_database_property() -> None:
    session = Session(tls_database=DEFAULT)
    assert isinstance(session.tls_database, TlsDatabase)
    session.tls_database = None
    assert session.tls_database is None
    session.set_tls_database(DEFAULT)
    assert isinstance(session.get_tls_database(), TlsDatabase)
    with pytest.raises(TypeError):
        session.tls_database = "not a database"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_conns", 0),
        ("max_conns", -1),
        ("max_conns", 1.5),
        ("max_conns", "4"),
        ("max_conns", True),
        ("max_conns", None),
        ("max_conns_per_host", 0),
        ("max_conns_per_host", -3),
        ("max_conns_per_host", 2.0),
        ("idle_timeout", -1),
        ("idle_timeout", "60"),
        ("idle_timeout", True),
        ("idle_timeout", None),
        ("timeout", -0.5),
        ("timeout", "1"),
        ("timeout", False),
    ],
)
def test_invalid_values(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=name):
        Session(**{name: value})
    session = Session()
    before = getattr(session, name)
    with pytest.raises(ValueError, match=name):
        setattr(session, name, value)
    with pytest.raises(ValueError, match=name):
        getattr(session, f"set_{name}")(value)
    with pytest.raises(ValueError, match=name):
        setattr(session.props, name, value)
    assert getattr(session, name) == before


def test_timeouts_accept_floats() -> None:
    session = Session(timeout=1.5, idle_timeout=0.3)
    assert session.timeout == 1.5 and session.idle_timeout == 0.3
    assert isinstance(session.get_timeout(), float)


async def test_limits_changed_while_open(leak_check: LeakCheck) -> None:
    async with serve_http(hello) as server:
        async with Session(max_conns=1) as session:
            session.max_conns = 4
            session.max_conns_per_host = 3
            assert session.statistics().connections == 0
            bodies = []
            for _ in range(3):
                bodies.append(await session.send(Message("GET", server.url_for("/"))))
            assert session.statistics().in_use == 3  # the raised limits are in force
            for body in bodies:
                await body.aclose()
        await leak_check(session)


# -- user agent ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("session_value", "message_value", "expected"),
    [
        (None, None, None),
        (None, "Mine/2", ["Mine/2"]),
        ("", None, [f"anysoup/{anysoup.__version__}"]),
        ("App/1.0 ", None, [f"App/1.0 anysoup/{anysoup.__version__}"]),
        ("App/1.0", None, ["App/1.0"]),
        ("App/1.0", "Mine/2", ["App/1.0"]),  # the session's replaces the message's
        ("", "Mine/2", [f"anysoup/{anysoup.__version__}"]),
    ],
)
async def test_user_agent(
    session_value: str | None,
    message_value: str | None,
    expected: list[str] | None,
    leak_check: LeakCheck,
) -> None:
    async with serve_http(headers_app) as server:
        async with Session(user_agent=session_value) as session:
            msg = Message("GET", server.url_for("/"))
            if message_value is not None:
                msg.request_headers.append("User-Agent", message_value)
            seen = await seen_headers(session, msg)
            assert seen.get("user-agent") == expected
        await leak_check(session)


async def test_user_agent_changed_between_requests() -> None:
    async with serve_http(headers_app) as server, Session() as session:
        seen = await seen_headers(session, Message("GET", server.url_for("/")))
        assert "user-agent" not in seen
        session.user_agent = "Later/3 "
        seen = await seen_headers(session, Message("GET", server.url_for("/")))
        assert seen["user-agent"] == [f"Later/3 anysoup/{anysoup.__version__}"]
        session.set_user_agent(None)
        seen = await seen_headers(session, Message("GET", server.url_for("/")))
        assert "user-agent" not in seen


# -- accept language -----------------------------------------------------------


def _set_locale(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)


async def test_accept_language(leak_check: LeakCheck) -> None:
    async with serve_http(headers_app) as server:
        async with Session(accept_language="fr, en;q=0.5") as session:
            seen = await seen_headers(session, Message("GET", server.url_for("/")))
            assert seen["accept-language"] == ["fr, en;q=0.5"]
            # only added when the message has none
            msg = Message("GET", server.url_for("/"), headers={"Accept-Language": "de"})
            seen = await seen_headers(session, msg)
            assert seen["accept-language"] == ["de"]
            session.accept_language = None
            seen = await seen_headers(session, Message("GET", server.url_for("/")))
            assert "accept-language" not in seen
        await leak_check(session)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"LANGUAGE": "fr_FR:de:en_US"}, "fr-fr, fr;q=0.9, de;q=0.8, en-us;q=0.7, en;q=0.6"),
        ({"LANG": "C"}, "en"),
        ({"LC_ALL": "de_DE.UTF-8", "LANG": "fr_FR"}, "de-de, de;q=0.9"),
        ({"LC_MESSAGES": "pt_BR", "LANG": "fr_FR"}, "pt-br, pt;q=0.9"),
    ],
)
async def test_accept_language_auto(
    environ: dict[str, str],
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    leak_check: LeakCheck,
) -> None:
    _set_locale(monkeypatch, **environ)
    async with serve_http(headers_app) as server:
        async with Session(accept_language_auto=True) as session:
            assert session.accept_language_auto is True
            assert session.accept_language == expected
            seen = await seen_headers(session, Message("GET", server.url_for("/")))
            assert seen["accept-language"] == [expected]
            msg = Message("GET", server.url_for("/"), headers={"Accept-Language": "ja"})
            seen = await seen_headers(session, msg)
            assert seen["accept-language"] == ["ja"]
            # switching it off removes the computed value
            session.accept_language_auto = False
            assert session.accept_language is None
            seen = await seen_headers(session, Message("GET", server.url_for("/")))
            assert "accept-language" not in seen
        await leak_check(session)


def test_accept_language_auto_property_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_locale(monkeypatch, LANGUAGE="it")
    session = Session()
    session.set_accept_language_auto(True)
    assert session.get_accept_language() == "it"
    # setting accept_language by hand turns the automatic value off
    session.accept_language = "nl"
    assert session.accept_language_auto is False and session.accept_language == "nl"
    # switching auto off keeps a hand-set value
    session.accept_language_auto = False
    assert session.accept_language == "nl"
    session.props.accept_language_auto = True
    assert session.accept_language == "it"


# -- request_queued / request_unqueued -----------------------------------------


class RecordingSession(Session):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.log: list[tuple[str, Message]] = []

    def do_request_queued(self, msg: Message) -> None:
        self.log.append(("do_request_queued", msg))

    def do_request_unqueued(self, msg: Message) -> None:
        self.log.append(("do_request_unqueued", msg))


def _watch_queue(session: RecordingSession) -> None:
    def queued(emitter: Session, msg: Message) -> None:
        assert emitter is session
        session.log.append(("request_queued", msg))

    async def unqueued(emitter: Session, msg: Message) -> None:
        assert emitter is session
        await anyio.lowlevel.checkpoint()
        session.log.append(("request_unqueued", msg))

    session.request_queued.connect(queued)
    session.request_unqueued.connect(unqueued)


QUEUED = ["do_request_queued", "request_queued"]
UNQUEUED = ["do_request_unqueued", "request_unqueued"]


async def test_queue_signals_when_body_read(leak_check: LeakCheck) -> None:
    async with serve_http(hello) as server:
        async with RecordingSession() as session:
            _watch_queue(session)
            msg = Message("GET", server.url_for("/a"))
            body = await session.send(msg)
            assert [name for name, _ in session.log] == QUEUED
            assert all(m is msg for _, m in session.log)
            assert await body.read(3) == b"hel"
            assert [name for name, _ in session.log] == QUEUED
            assert await body.read() == b"lo /a"
            assert [name for name, _ in session.log] == QUEUED + UNQUEUED
            await body.aclose()
            assert len(session.log) == 4  # once only
        await leak_check(session)


async def test_queue_signals_when_body_closed(leak_check: LeakCheck) -> None:
    async with serve_http(hello) as server:
        async with RecordingSession() as session:
            _watch_queue(session)
            msg = Message("GET", server.url_for("/a"))
            async with session.send(msg) as body:
                assert await body.read(1) == b"h"
                assert [name for name, _ in session.log] == QUEUED
            assert [name for name, _ in session.log] == QUEUED + UNQUEUED
        await leak_check(session)


async def test_queue_signals_when_sending_fails(leak_check: LeakCheck) -> None:
    async with RecordingSession() as session:
        _watch_queue(session)
        msg = Message("GET", f"http://127.0.0.1:{closed_port()}/")
        with pytest.raises(anysoup.ConnectError) as info:
            await session.send(msg)
        assert info.value.message is msg
        assert [name for name, _ in session.log] == QUEUED + UNQUEUED
        assert all(m is msg for _, m in session.log)
    await leak_check(session)


async def test_queue_signals_with_send_and_read(leak_check: LeakCheck) -> None:
    async with serve_http(hello) as server:
        async with RecordingSession() as session:
            _watch_queue(session)
            msg = Message("GET", server.url_for("/"))
            await session.send_and_read(msg)
            assert [name for name, _ in session.log] == QUEUED + UNQUEUED
        await leak_check(session)


async def test_message_already_in_queue(leak_check: LeakCheck) -> None:
    async with serve_http(hello) as server:
        async with Session() as session:
            msg = Message("GET", server.url_for("/"))
            body = await session.send(msg)
            with pytest.raises(MessageAlreadyInQueue) as info:
                await session.send(msg)
            assert info.value.message is msg
            assert info.value.code is anysoup.SessionErrorCode.MESSAGE_ALREADY_IN_QUEUE
            assert isinstance(info.value, anysoup.SessionError)
            with pytest.raises(MessageAlreadyInQueue):
                await session.send_and_read(msg)
            assert await body.read() == b"hello /"
            await body.aclose()
            # done: it may be sent again
            assert await session.send_and_read(msg) == b"hello /"
        await leak_check(session)


async def test_message_already_in_queue_while_waiting_for_headers(
    leak_check: LeakCheck,
) -> None:
    release = anyio.Event()

    async def slow(conn: ServerConnection, req: ReceivedRequest) -> None:
        await release.wait()
        await conn.respond(200, [], b"late")

    async with serve_http(slow) as server:
        async with Session() as session, anyio.create_task_group() as tg:
            msg = Message("GET", server.url_for("/"))
            results: list[bytes] = []

            async def first() -> None:
                results.append(await session.send_and_read(msg))

            tg.start_soon(first)
            await eventually(lambda: server.requests != [] or session.statistics().in_use == 1)
            with pytest.raises(MessageAlreadyInQueue):
                await session.send(msg)
            release.set()
        assert results == [b"late"]
        await leak_check(session)


# -- features ------------------------------------------------------------------


class Recorder(SessionFeature):
    """A middleware stage that logs its calls and tags the request."""

    chain_position = 650
    log: list[str]

    def __init__(self, log: list[str] | None = None, name: str | None = None) -> None:
        self.log = log if log is not None else []
        self.name = name or type(self).__name__

    async def handle(self, msg: Message, call_next: Any) -> InputStream:
        self.log.append(f"{self.name} in")
        msg.request_headers.append("X-Via", self.name)
        body = await call_next(msg)
        msg.response_headers.append("X-Seen-By", self.name)
        self.log.append(f"{self.name} out")
        return body


class Outer(Recorder):
    chain_position = SessionFeature.POSITION_HSTS


class Middle(Recorder):
    chain_position = SessionFeature.POSITION_DECODER


class Inner(Recorder):
    chain_position = SessionFeature.POSITION_LOGGER


class Passive(SessionFeature):
    """A feature that takes no part in sending."""


class Scheme:
    """Not a feature: an auth-scheme-like sub-feature type."""


class OtherScheme:
    pass


class SchemeHolder(SessionFeature):
    """Accepts ``Scheme`` (and subclasses) as sub-features, like the auth manager."""

    def __init__(self) -> None:
        self.schemes: list[type] = []

    def add_sub_feature(self, feature_type: type) -> bool:
        if isinstance(feature_type, type) and issubclass(feature_type, Scheme):
            self.schemes.append(feature_type)
            return True
        return False

    def remove_sub_feature(self, feature_type: type) -> bool:
        if feature_type in self.schemes:
            self.schemes.remove(feature_type)
            return True
        return False

    def has_sub_feature(self, feature_type: type) -> bool:
        return feature_type in self.schemes


def test_feature_registry() -> None:
    session = Session()
    outer = Outer()
    session.add_feature(outer)
    assert session.has_feature(Outer) and session.get_feature(Outer) is outer
    assert session.get_feature(Recorder) is outer  # a subclass instance matches
    assert session.has_feature(SessionFeature)
    assert outer.session is session
    assert not session.has_feature(Inner) and session.get_feature(Inner) is None
    with pytest.raises(ValueError, match="Outer"):
        session.add_feature(Outer())  # a second feature of the same type
    with pytest.raises(TypeError):
        session.add_feature(Scheme())  # type: ignore[arg-type]
    session.add_feature_by_type(Inner)
    inner = session.get_feature(Inner)
    assert isinstance(inner, Inner)
    with pytest.raises(ValueError):
        session.add_feature_by_type(Inner)
    assert outer in session.get_features() and inner in session.get_features()

    session.remove_feature(outer)
    assert not session.has_feature(Outer) and outer.session is None
    session.remove_feature(outer)  # not there: nothing happens
    session.remove_feature_by_type(Inner)
    assert session.get_feature(Inner) is None
    # removing by a base type removes subclasses too
    session.add_feature(Middle())
    session.add_feature(Outer())
    session.remove_feature_by_type(Recorder)
    assert not session.has_feature(Recorder)


def test_feature_belongs_to_one_session() -> None:
    feature = Outer()
    Session().add_feature(feature)
    with pytest.raises(ValueError):
        Session().add_feature(feature)


def test_features_keyword() -> None:
    outer, passive = Outer(), Passive()
    session = Session(features=[outer, passive])
    assert session.get_feature(Outer) is outer and session.get_feature(Passive) is passive
    with pytest.raises(ValueError):
        Session(features=[Outer(), Outer()])


def test_sub_features() -> None:
    session = Session()
    with pytest.raises(ValueError):
        session.add_feature_by_type(Scheme)  # nobody accepts it yet
    holder = SchemeHolder()
    session.add_feature(holder)
    session.add_feature_by_type(Scheme)
    assert holder.schemes == [Scheme]
    assert session.has_feature(Scheme)
    assert session.get_feature(SchemeHolder) is holder
    with pytest.raises(ValueError):
        session.add_feature_by_type(OtherScheme)
    assert not session.has_feature(OtherScheme)
    session.remove_feature_by_type(Scheme)
    assert holder.schemes == [] and not session.has_feature(Scheme)
    assert session.has_feature(SchemeHolder)


def test_get_feature_for_message() -> None:
    session = Session(features=[Outer(), Inner()])
    msg = Message("GET", "http://example.com/")
    assert session.get_feature_for_message(Outer, msg) is session.get_feature(Outer)
    msg.disable_feature(Outer)
    assert session.get_feature_for_message(Outer, msg) is None
    assert session.get_feature_for_message(Inner, msg) is session.get_feature(Inner)
    msg.disable_feature(Recorder)  # a base type disables subclasses
    assert session.get_feature_for_message(Inner, msg) is None
    assert session.get_feature(Inner) is not None


@pytest.mark.parametrize(
    "order",
    [
        ("outer", "middle", "inner"),
        ("inner", "middle", "outer"),
        ("middle", "inner", "outer"),
    ],
)
async def test_chain_order_by_position(order: tuple[str, ...], leak_check: LeakCheck) -> None:
    log: list[str] = []
    make = {
        "outer": lambda: Outer(log, "outer"),
        "middle": lambda: Middle(log, "middle"),
        "inner": lambda: Inner(log, "inner"),
    }
    async with serve_http(headers_app) as server:
        async with Session() as session:
            session.add_feature(Passive())
            for name in order:
                session.add_feature(make[name]())
            msg = Message("GET", server.url_for("/"))
            seen = await seen_headers(session, msg)
            assert log == [
                "outer in",
                "middle in",
                "inner in",
                "inner out",
                "middle out",
                "outer out",
            ]
            # the server sees what each stage added, outer first
            assert seen["x-via"] == ["outer", "middle", "inner"]
            assert msg.response_headers.get_all("X-Seen-By") == ["inner", "middle", "outer"]

            # a disabled stage is skipped for that message only
            log.clear()
            msg = Message("GET", server.url_for("/"))
            msg.disable_feature(Middle)
            seen = await seen_headers(session, msg)
            assert seen["x-via"] == ["outer", "inner"]
            assert log == ["outer in", "inner in", "inner out", "outer out"]

            # removing a feature rebuilds the chain
            log.clear()
            session.remove_feature_by_type(Outer)
            seen = await seen_headers(session, Message("GET", server.url_for("/")))
            assert seen["x-via"] == ["middle", "inner"]
        await leak_check(session)


async def test_feature_can_answer_without_calling_next(leak_check: LeakCheck) -> None:
    class Refuse(SessionFeature):
        chain_position = 50

        async def handle(self, msg: Message, call_next: Any) -> InputStream:
            raise anysoup.NetworkError("refused by policy", message=msg)

    async with serve_http(hello) as server:
        async with Session(features=[Refuse()]) as session:
            msg = Message("GET", server.url_for("/"))
            with pytest.raises(anysoup.NetworkError, match="refused by policy"):
                await session.send(msg)
            assert server.connections == 0
            # the message is unqueued: it can be sent again
            session.remove_feature_by_type(Refuse)
            assert await session.send_and_read(msg) == b"hello /"
        await leak_check(session)


# -- send forms ----------------------------------------------------------------


async def test_send_await_and_async_with(leak_check: LeakCheck) -> None:
    async with serve_http(hello) as server:
        async with Session() as session:
            msg = Message("GET", server.url_for("/await"))
            body = await session.send(msg)
            assert isinstance(body, InputStream)
            assert isinstance(body, anyio.abc.ByteReceiveStream)
            assert msg.status == 200 and msg.response_headers["Content-Type"] == "text/plain"
            assert await body.read() == b"hello /await"
            await body.aclose()

            msg = Message("GET", server.url_for("/with"))
            async with session.send(msg) as body:
                assert await body.read() == b"hello /with"
            assert session.statistics() == PoolStatistics(1, 0, 1, 0, 0)

            msg = Message("GET", server.url_for("/read"))
            assert await session.send_and_read(msg) == b"hello /read"
            assert server.connections == 1
        await leak_check(session)


async def test_http_error_status_is_not_an_error() -> None:
    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        await conn.respond(503, [], b"busy")

    async with serve_http(handler) as server, Session() as session:
        msg = Message("GET", server.url_for("/"))
        assert await session.send_and_read(msg) == b"busy"
        assert msg.status == 503


class ByteSink(anyio.abc.ByteSendStream):
    """An anyio byte send stream that keeps what it gets."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    async def send(self, item: bytes) -> None:
        assert not self.closed
        self.data += item

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        self.closed = True


class Writer:
    """Not a stream: just ``async write`` and a synchronous ``close``."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    async def write(self, data: bytes) -> int:
        assert not self.closed
        self.data += data
        return len(data)

    def close(self) -> None:
        self.closed = True


class AsyncCloseWriter(Writer):
    async def close(self) -> None:  # type: ignore[override]
        await anyio.lowlevel.checkpoint()
        self.closed = True


BODY_SIZE = 300_000


@pytest.mark.parametrize("target_kind", ["byte stream", "writer", "async-close writer"])
@pytest.mark.parametrize("close_target", [False, True])
async def test_send_and_splice(
    target_kind: str, close_target: bool, leak_check: LeakCheck
) -> None:
    target: Any = {
        "byte stream": ByteSink,
        "writer": Writer,
        "async-close writer": AsyncCloseWriter,
    }[target_kind]()
    flags = SpliceFlags.CLOSE_TARGET if close_target else SpliceFlags.NONE
    async with serve_http(sized(BODY_SIZE)) as server:
        async with Session() as session:
            msg = Message("GET", server.url_for("/"))
            copied = await session.send_and_splice(msg, target, flags)
            assert copied == BODY_SIZE
            assert bytes(target.data) == bytes(i % 251 for i in range(BODY_SIZE))
            assert target.closed is close_target
            assert session.statistics() == PoolStatistics(1, 0, 1, 0, 0)
        await leak_check(session)


@pytest.mark.parametrize("close_target", [False, True])
async def test_send_and_splice_into_memory_object_stream(
    close_target: bool, leak_check: LeakCheck
) -> None:
    send, receive = anyio.create_memory_object_stream[bytes](1000)
    flags = SpliceFlags.CLOSE_TARGET if close_target else SpliceFlags.NONE
    async with serve_http(sized(BODY_SIZE)) as server, receive:
        async with Session() as session:
            msg = Message("GET", server.url_for("/"))
            copied = await session.send_and_splice(msg, send, flags)
            assert copied == BODY_SIZE
            if not close_target:
                await send.aclose()
            chunks = [chunk async for chunk in receive]  # ends only if the sender closed
            assert b"".join(chunks) == bytes(i % 251 for i in range(BODY_SIZE))
        await leak_check(session)


async def test_send_and_splice_closes_target_on_error(leak_check: LeakCheck) -> None:
    target = Writer()
    async with Session() as session:
        msg = Message("GET", f"http://127.0.0.1:{closed_port()}/")
        with pytest.raises(anysoup.ConnectError):
            await session.send_and_splice(msg, target, SpliceFlags.CLOSE_TARGET)
        assert target.closed
    await leak_check(session)


# -- preconnect ----------------------------------------------------------------


async def test_preconnect_await(leak_check: LeakCheck) -> None:
    async with serve_http(hello) as server:
        async with Session() as session:
            msg = Message("GET", server.url_for("/"))
            assert await session.preconnect(msg) is None
            assert session.statistics() == PoolStatistics(1, 0, 1, 0, 0)
            await eventually(lambda: server.connections == 1)
            # an idle connection exists: the next preconnect completes at once
            with anyio.fail_after(1):
                await session.preconnect(Message("GET", server.url_for("/other")))
            assert session.statistics() == PoolStatistics(1, 0, 1, 0, 0)
            assert await session.send_and_read(msg) == b"hello /"
            assert server.connections == 1
        await leak_check(session)


async def test_preconnect_with_task_group_start(leak_check: LeakCheck) -> None:
    async with serve_http(hello) as server:
        async with Session() as session, anyio.create_task_group() as tg:
            msg = Message("GET", server.url_for("/"))
            assert await tg.start(session.preconnect, msg) is None
            assert session.statistics().idle == 1
            assert await session.send_and_read(msg) == b"hello /"
            assert server.connections == 1
        await leak_check(session)


async def test_preconnect_failure(leak_check: LeakCheck) -> None:
    async with Session() as session:
        msg = Message("GET", f"http://127.0.0.1:{closed_port()}/")
        with pytest.raises(anysoup.ConnectError) as info:
            await session.preconnect(msg)
        assert info.value.message is msg
        assert session.statistics() == PoolStatistics(0, 0, 0, 0, 0)
    await leak_check(session)


async def test_request_takes_over_a_connecting_preconnect(leak_check: LeakCheck) -> None:
    resolved = anyio.Event()

    async def slow_resolver(host: str, port: int) -> list[str]:
        assert host == "slow.example"
        await resolved.wait()
        return ["127.0.0.1"]

    async with serve_http(hello) as server:
        async with Session() as session, anyio.create_task_group() as tg:
            session._pool.resolver = slow_resolver
            url = f"http://slow.example:{server.port}/taken"
            done: list[str] = []

            async def preconnect() -> None:
                await session.preconnect(Message("GET", url))
                done.append("preconnect")

            async def request() -> None:
                body = await session.send_and_read(Message("GET", url))
                done.append(body.decode())

            tg.start_soon(preconnect)
            await eventually(lambda: session.statistics().connecting == 1)
            tg.start_soon(request)
            # the request took the connection over: the preconnect is done, no second connect
            await eventually(lambda: done == ["preconnect"])
            assert session.statistics() == PoolStatistics(1, 1, 0, 0, 0)
            resolved.set()
            await eventually(lambda: len(done) == 2)
            assert done == ["preconnect", "hello /taken"]
            assert server.connections == 1
        await leak_check(session)


@pytest.mark.slow
async def test_unused_preconnected_connection_is_dropped_after_3_seconds(
    leak_check: LeakCheck,
) -> None:
    async with serve_http(hello) as server:
        async with Session(idle_timeout=60) as session:
            await session.preconnect(Message("GET", server.url_for("/")))
            await eventually(lambda: server.connections == 1)
            await anyio.sleep(2.0)
            assert session.statistics() == PoolStatistics(1, 0, 1, 0, 0)  # not yet
            await anyio.sleep(1.5)
            # dropped by now (a little slack for a loaded machine)
            await eventually(lambda: session.statistics().connections == 0, seconds=2)
            with anyio.fail_after(2):
                await server.wait_connections_closed()
        await leak_check(session)


async def test_idle_timeout_closes_idle_connections(leak_check: LeakCheck) -> None:
    async with serve_http(hello) as server:
        async with Session(idle_timeout=0.3) as session:
            await session.send_and_read(Message("GET", server.url_for("/")))
            assert session.statistics() == PoolStatistics(1, 0, 1, 0, 0)
            await eventually(lambda: session.statistics().connections == 0, seconds=3)
            with anyio.fail_after(2):
                await server.wait_connections_closed()
            # a new request simply connects again
            assert await session.send_and_read(Message("GET", server.url_for("/"))) == b"hello /"
            assert server.connections == 2
        await leak_check(session)


async def test_idle_timeout_zero_keeps_connections() -> None:
    async with serve_http(hello) as server, Session(idle_timeout=0) as session:
        await session.send_and_read(Message("GET", server.url_for("/")))
        await anyio.sleep(1.2)  # longer than a sweep
        assert session.statistics() == PoolStatistics(1, 0, 1, 0, 0)


# -- InputStream ---------------------------------------------------------------


async def test_input_stream_read(leak_check: LeakCheck) -> None:
    expected = bytes(i % 251 for i in range(200_000))
    async with serve_http(sized(len(expected))) as server:
        async with Session() as session:
            async with session.send(Message("GET", server.url_for("/"))) as body:
                assert await body.read(0) == b""
                first = await body.read(10)
                assert first == expected[:10]
                pieces = [first]
                while len(piece := await body.read(7000)) > 0:
                    assert len(piece) <= 7000
                    pieces.append(piece)
                assert b"".join(pieces) == expected
                assert await body.read() == b""
                assert await body.read(5) == b""
                with pytest.raises(anyio.EndOfStream):
                    await body.receive()
            with pytest.raises(anyio.ClosedResourceError):
                await body.receive()
            assert "closed" in repr(body)

            async with session.send(Message("GET", server.url_for("/"))) as body:
                assert await body.read(3) == expected[:3]
                assert await body.read() == expected[3:]

            async with session.send(Message("GET", server.url_for("/"))) as body:
                chunks = [chunk async for chunk in body]
                assert all(chunks) and b"".join(chunks) == expected
            assert server.connections == 1
        await leak_check(session)


async def test_receive_max_bytes() -> None:
    async with (
        serve_http(sized(1000)) as server,
        Session() as session,
        session.send(Message("GET", server.url_for("/"))) as body,
    ):
        got = b""
        while True:
            try:
                chunk = await body.receive(33)
            except anyio.EndOfStream:
                break
            assert 0 < len(chunk) <= 33
            got += chunk
        assert len(got) == 1000


async def test_closing_early_drains_a_small_rest(leak_check: LeakCheck) -> None:
    async with serve_http(sized(20_000)) as server:
        async with Session() as session:
            msg = Message("GET", server.url_for("/"))
            finished: list[str] = []
            msg.finished.connect(lambda m: finished.append("finished"))
            body = await session.send(msg)
            assert len(await body.read(100)) == 100
            await body.aclose()
            await body.aclose()  # twice is fine
            assert finished == ["finished"]
            assert session.statistics() == PoolStatistics(1, 0, 1, 0, 0)  # kept
            assert len(await session.send_and_read(Message("GET", server.url_for("/")))) == 20_000
            assert server.connections == 1
        await leak_check(session)


async def test_closing_early_closes_a_large_rest(leak_check: LeakCheck) -> None:
    size = 8 * 1024 * 1024

    async def big(conn: ServerConnection, req: ReceivedRequest) -> None:
        chunk = b"z" * 65536
        await conn.send_head(200, [("Content-Length", str(size))])
        for _ in range(size // len(chunk)):
            await conn.send_data(chunk)
        await conn.end()

    async with serve_http(big) as server:
        async with Session() as session:
            body = await session.send(Message("GET", server.url_for("/")))
            assert len(await body.read(10)) == 10
            with anyio.fail_after(5):
                await body.aclose()
            assert session.statistics() == PoolStatistics(0, 0, 0, 0, 0)
        await leak_check(session)


async def test_unclosed_input_stream_warns_and_frees_its_connection(
    leak_check: LeakCheck,
) -> None:
    async with serve_http(hello) as server:
        async with RecordingSession() as session:
            unqueued: list[Message] = []
            session.request_unqueued.connect(lambda s, m: unqueued.append(m))
            msg = Message("GET", server.url_for("/"))
            body = await session.send(msg)
            assert session.statistics().in_use == 1
            with pytest.warns(ResourceWarning, match="never closed"):
                del body
                gc.collect()
            assert session.statistics().in_use == 0
            assert session.statistics().connections == 0
            # the message is unqueued (plain handlers run; nothing can be awaited there)
            assert unqueued == [msg]
            assert [name for name, _ in session.log] == ["do_request_queued", UNQUEUED[0]]
            # the pool goes on working, and the message can be sent again
            assert await session.send_and_read(msg) == b"hello /"
        await leak_check(session)


def _rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
async def test_streaming_1_gib_keeps_memory_flat(leak_check: LeakCheck) -> None:
    chunk_size = 64 * 1024
    total = 1 << 30
    buffer = b"\xa5" * chunk_size  # one preallocated buffer, sent again and again

    async def gigabyte(conn: ServerConnection, req: ReceivedRequest) -> None:
        await conn.send_head(200, [("Content-Length", str(total))])
        for _ in range(total // chunk_size):
            await conn.send_data(buffer)
        await conn.end()

    async with serve_http(gigabyte) as server:
        async with Session() as session:
            # warm up both sides so that buffers and code paths exist already
            async with session.send(Message("GET", server.url_for("/"))) as body:
                await body.read(1 << 20)
            gc.collect()
            before = _rss()
            peak = before
            received = 0
            with anyio.fail_after(40):
                async with session.send(Message("GET", server.url_for("/"))) as body:
                    count = 0
                    async for chunk in body:
                        received += len(chunk)
                        count += 1
                        if count % 512 == 0:
                            peak = max(peak, _rss())
            peak = max(peak, _rss())
            assert received == total
            assert peak - before < 30 * 1024 * 1024, (before, peak)
        await leak_check(session)


# -- the session itself --------------------------------------------------------


async def test_exception_in_session_block_is_not_wrapped(leak_check: LeakCheck) -> None:
    class Boom(Exception):
        pass

    async with serve_http(hello) as server:
        session = Session()
        with pytest.raises(Boom) as info:
            async with session:
                await session.send_and_read(Message("GET", server.url_for("/")))
                assert session.statistics().idle == 1
                raise Boom("mine")
        assert type(info.value) is Boom and str(info.value) == "mine"
        await leak_check(session)

    with pytest.raises(KeyError):
        async with Session():
            raise KeyError("plain")


async def test_cancelled_session_block(leak_check: LeakCheck) -> None:
    async with serve_http(hello) as server:
        session = Session()
        with anyio.move_on_after(0.2) as scope:
            async with session:
                await session.send_and_read(Message("GET", server.url_for("/")))
                await anyio.sleep_forever()
        assert scope.cancelled_caught
        await leak_check(session)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_session_created_outside_a_running_loop(backend: str) -> None:
    session = Session(max_conns=3, user_agent="")
    assert "closed" in repr(session)

    async def main() -> bytes:
        async with serve_http(hello) as server, session:
            assert "open" in repr(session)
            return await session.send_and_read(Message("GET", server.url_for("/sync")))

    assert anyio.run(main, backend=backend) == b"hello /sync"
    assert "closed" in repr(session)


async def test_session_reusable_after_close(leak_check: LeakCheck) -> None:
    async with serve_http(hello) as server:
        session = Session()
        for _ in range(2):
            async with session:
                assert await session.send_and_read(Message("GET", server.url_for("/"))) == (
                    b"hello /"
                )
            await leak_check(session)


async def test_send_needs_an_open_session() -> None:
    session = Session()
    msg = Message("GET", "http://127.0.0.1:9/")
    with pytest.raises(anysoup.NetworkError, match="not open") as info:
        await session.send(msg)
    assert info.value.message is msg
    # the failed message was unqueued
    with pytest.raises(anysoup.NetworkError, match="not open"):
        await session.send(msg)


async def test_get_async_result_message() -> None:
    async with Session() as session:
        msg = Message("GET", f"http://127.0.0.1:{closed_port()}/")
        with pytest.raises(anysoup.Error) as info:
            await session.send_and_read(msg)
        assert info.value.message is msg
        assert session.get_async_result_message(info.value) is msg
        assert session.get_async_result_message(ValueError("other")) is None


async def test_repr(leak_check: LeakCheck) -> None:
    async def hello_ok(conn: ServerConnection, req: ReceivedRequest) -> None:
        await conn.respond(200, [], b"hello", reason=b"OK")

    session = Session()
    assert repr(session) == (
        "<anysoup.Session closed <anysoup.Pool <PoolState 0/10 connections "
        "(0 connecting, 0 idle, 0 in use), 0 waiting, per host 2>>>"
    )
    async with serve_http(hello_ok) as server:
        async with session:
            msg = Message("GET", server.url_for("/r"))
            assert repr(msg) == f"<anysoup.Message GET '{server.url}/r'>"
            body = await session.send(msg)
            assert repr(msg) == f"<anysoup.Message GET '{server.url}/r' 200 OK>"
            assert "open" in repr(session) and "1 in use" in repr(session)
            assert repr(body) == "<anysoup.InputStream open>"
            await body.read()
            assert repr(body) == "<anysoup.InputStream at end>"
            await body.aclose()
            assert "1/10 connections (0 connecting, 1 idle, 0 in use)" in repr(session)
        assert repr(session).startswith("<anysoup.Session closed")
        await leak_check(session)
