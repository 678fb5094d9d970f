"""Trio's own idioms around a session, under pytest-trio (``@pytest.mark.trio``).

The rest of the suite runs every async test on both backends through AnyIO;
these tests are about what only Trio code writes: ``nursery.start`` with a
``task_status``, trio's cancel scopes (``move_on_after``, ``CancelScope``),
nurseries cancelled with sends in flight, and a session living in a nursery
task. pytest-trio runs them (trio_mode is off: only marked tests are its),
against the suite's loopback servers, and the mock router where no server
is needed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing
from servers import ReceivedRequest, ServerConnection, serve_http

import anysoup
from anysoup import Message, PoolStatistics, Session
from anysoup.testing import MockRouter, Response

pytestmark = pytest.mark.trio

LeakCheck = Callable[[Session], Awaitable[None]]
IDLE = PoolStatistics(connections=0, connecting=0, idle=0, in_use=0, waiting=0)


async def hello(conn: ServerConnection, req: ReceivedRequest) -> None:
    await conn.respond(200, [("Content-Type", "text/plain")], b"hello " + req.target.encode())


class Stalling:
    """A server that answers ``/stall`` never (until the test ends) and the rest at once."""

    def __init__(self) -> None:
        self.stalled = 0
        self.changed = trio.Event()

    async def __call__(self, conn: ServerConnection, req: ReceivedRequest) -> None:
        if req.target.startswith("/stall"):
            self.stalled += 1
            self.changed.set()
            await trio.sleep_forever()  # cut short when the server closes
        await hello(conn, req)

    async def wait_for(self, count: int) -> None:
        while self.stalled < count:
            self.changed = trio.Event()
            await self.changed.wait()


async def test_nursery_start_preconnects(leak_check: LeakCheck) -> None:
    async with serve_http(hello) as server, Session() as session:
        msg = Message("GET", server.url_for("/after"))
        async with trio.open_nursery() as nursery:
            result = await nursery.start(session.preconnect, msg)
            assert result is None  # started() with no value (DESIGN §6)
            assert session.statistics().idle == 1
        assert await session.send_and_read(msg) == b"hello /after"
        assert server.connections == 1  # the request took the preconnected connection
    await leak_check(session)


async def test_move_on_after_cancels_a_send(leak_check: LeakCheck) -> None:
    stalling = Stalling()
    async with serve_http(stalling) as server, Session() as session:
        with trio.move_on_after(0.2) as scope:
            await session.send_and_read(Message("GET", server.url_for("/stall")))
        assert scope.cancelled_caught
        assert session.statistics() == IDLE
        assert await session.send_and_read(Message("GET", server.url_for("/next"))) == (
            b"hello /next"
        )
    await leak_check(session)


async def test_a_cancel_scope_cancels_a_send_from_another_task(leak_check: LeakCheck) -> None:
    stalling = Stalling()
    unqueued: list[Message] = []
    async with serve_http(stalling) as server, Session() as session:
        session.request_unqueued.connect(lambda s, m: unqueued.append(m))
        msg = Message("GET", server.url_for("/stall"))
        scope = trio.CancelScope()

        async def send() -> None:
            with scope:
                await session.send_and_read(msg)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            await stalling.wait_for(1)
            scope.cancel()
        assert scope.cancelled_caught and unqueued == [msg]
        assert session.statistics() == IDLE
    await leak_check(session)


async def test_a_cancelled_nursery_of_concurrent_sends(leak_check: LeakCheck) -> None:
    stalling = Stalling()
    async with serve_http(stalling) as server, Session(max_conns_per_host=2) as session:
        async with trio.open_nursery() as nursery:
            for number in range(5):
                msg = Message("GET", server.url_for(f"/stall/{number}"))
                nursery.start_soon(session.send_and_read, msg)
            await stalling.wait_for(2)  # two connections lent, three requests queued
            await trio.testing.wait_all_tasks_blocked()
            assert session.statistics().waiting == 3
            nursery.cancel_scope.cancel()
        assert session.statistics() == IDLE
        assert await session.send_and_read(Message("GET", server.url_for("/ok"))) == b"hello /ok"
    await leak_check(session)


async def test_a_session_in_a_nursery_task_closes_with_the_nursery(
    leak_check: LeakCheck,
) -> None:
    async def run_session(
        *, task_status: trio.TaskStatus[Session] = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with Session() as session:
            task_status.started(session)
            await trio.sleep_forever()

    async with serve_http(hello) as server:
        async with trio.open_nursery() as nursery:
            session: Session = await nursery.start(run_session)
            stream = await session.send(Message("GET", server.url_for("/open")))
            assert await stream.read(5) == b"hello"
            nursery.cancel_scope.cancel()  # the session closes under cancellation
        assert session._task_group is None
        await stream.aclose()
    await leak_check(session)


# -- the mock router under pytest-trio -------------------------------------------------


async def test_mocked_sends_from_a_nursery() -> None:
    router = MockRouter()
    route = router.get("https://api.example.org/item", params={"id": "1"})
    route.mock(side_effect=lambda msg: Response(text=msg.uri.query["n"]))
    async with Session(features=[router]) as session:
        results: dict[int, bytes] = {}

        async def get(n: int) -> None:
            msg = Message("GET", f"https://api.example.org/item?id=1&n={n}")
            results[n] = await session.send_and_read(msg)

        async with trio.open_nursery() as nursery:
            for n in range(10):
                nursery.start_soon(get, n)
    assert results == {n: str(n).encode() for n in range(10)}
    assert route.call_count == 10


async def test_a_mocked_send_is_cancelled_by_a_trio_scope() -> None:
    release = trio.Event()

    async def slow(msg: Message) -> Response:
        await release.wait()
        return Response(text="late")

    router = MockRouter()
    router.get("https://api.example.org/slow").mock(side_effect=slow)
    async with Session(features=[router]) as session:
        msg = Message("GET", "https://api.example.org/slow")
        with trio.move_on_after(0.05) as scope:
            await session.send_and_read(msg)
        assert scope.cancelled_caught and not msg._queued
        release.set()
        assert await session.send_and_read(msg) == b"late"


async def test_the_fixture_under_pytest_trio(anysoup_mock: MockRouter) -> None:
    anysoup_mock.get("https://api.example.org/").respond(json={"ok": True})
    async with anysoup.Session() as session:  # made during the test: mocked
        body = await session.send_and_read(Message("GET", "https://api.example.org/"))
    assert body == b'{"ok":true}'
