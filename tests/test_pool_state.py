"""Table-driven tests of anysoup._pool.state_policy (policy: synchronous, no I/O).

A :class:`Harness` wraps a :class:`PoolState` whose callbacks record every
connection opened and closed; after every transition it checks the
invariants: counters never negative, ``statistics()`` consistent with the
records' states, every record closed exactly once, limits respected.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from typing import Any

import pytest

import anysoup
from anysoup import (
    MessagePriority,
    NetworkError,
    PoolStatistics,
)
from anysoup._pool.state_policy import (
    SPECULATIVE_IDLE_TIMEOUT,
    ConnectionRecord,
    ConnState,
    PoolState,
    Waiter,
)

# -- fakes ---------------------------------------------------------------------


class FakeRecord(ConnectionRecord):
    """A connection whose liveness the test decides."""

    def __init__(self, key: Hashable, name: str) -> None:
        super().__init__(key)
        self.name = name
        self.alive = True

    def is_alive(self) -> bool:
        return self.alive

    def __repr__(self) -> str:
        return f"<FakeRecord {self.name} {self.state.value}>"


class Harness:
    """A PoolState with recording callbacks; every call is followed by ``check()``."""

    def __init__(self, **limits: Any) -> None:
        self.opened: list[FakeRecord] = []
        self.closed: list[FakeRecord] = []
        self.waiters: list[Waiter] = []
        self.notified: dict[int, int] = {}
        self.strict_limits = True
        self.state = PoolState(self._open, self._close, **limits)
        self.check()

    # callbacks
    def _open(self, key: Hashable, plan: object = None) -> ConnectionRecord:
        count = sum(1 for r in self.opened if r.key == key)
        record = FakeRecord(key, f"{key}#{count}")
        self.opened.append(record)
        return record

    def _close(self, record: ConnectionRecord) -> None:
        assert isinstance(record, FakeRecord)
        assert record.state is ConnState.CLOSED, "close callback before the state is CLOSED"
        self.closed.append(record)

    # helpers
    def waiter(
        self,
        key: Hashable,
        *,
        priority: int = MessagePriority.NORMAL,
        fresh_only: bool = False,
        preconnect: bool = False,
    ) -> Waiter:
        waiter: Waiter

        def notify() -> None:
            self.notified[id(waiter)] = self.notified.get(id(waiter), 0) + 1

        waiter = Waiter(
            key, priority=priority, fresh_only=fresh_only, preconnect=preconnect, notify=notify
        )
        self.waiters.append(waiter)
        return waiter

    def request(self, key: Hashable, **kwargs: Any) -> Waiter:
        """Queue a waiter, as ``Pool.acquire`` does after ``checkout_idle`` failed."""
        waiter = self.waiter(key, **kwargs)
        self.enqueue(waiter)
        return waiter

    def notifications(self, waiter: Waiter) -> int:
        return self.notified.get(id(waiter), 0)

    def in_use_conn(self, key: Hashable, now: float = 0.0) -> FakeRecord:
        """Make a new connection for ``key`` and lend it (request + connected).

        The borrower marks it used, as the core does before writing a request.
        """
        waiter = self.request(key, fresh_only=True)
        record = waiter.connecting
        assert isinstance(record, FakeRecord)
        self.connected(record, now)
        assert waiter.conn is record
        record.used = True
        return record

    def idle_conn(self, key: Hashable, now: float = 0.0) -> FakeRecord:
        """A used connection for ``key``, now idle since ``now``."""
        record = self.in_use_conn(key, now)
        self.release(record, reusable=True, now=now)
        assert record.state is ConnState.IDLE
        return record

    def stats(self) -> PoolStatistics:
        return self.state.statistics()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.state, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            self.check()
            return result

        return call

    # invariants
    def check(self) -> None:
        state = self.state
        s = state.statistics()
        for field in ("connections", "connecting", "idle", "in_use", "waiting"):
            assert getattr(s, field) >= 0, (field, s)
        assert s.connections == s.connecting + s.idle + s.in_use, s
        detached = [r for r in self.opened if r.state is ConnState.DETACHED]
        assert s.detached == len(detached) and set(detached) == state.detached, s
        live = [r for r in self.opened if r.state not in (ConnState.CLOSED, ConnState.DETACHED)]
        assert s.connections == len(live), (s, live)
        assert s.connecting == sum(r.state is ConnState.CONNECTING for r in live), s
        assert s.idle == sum(r.state is ConnState.IDLE for r in live), s
        assert s.in_use == sum(r.state is ConnState.IN_USE for r in live), s
        assert sorted(map(id, state.records())) == sorted(map(id, live))
        # every closed record was closed through the callback exactly once
        assert len(self.closed) == len({id(r) for r in self.closed}), self.closed
        assert {id(r) for r in self.closed} == {
            id(r) for r in self.opened if r.state is ConnState.CLOSED
        }
        # per-key counts
        for key, host in state._hosts.items():
            assert host.count == sum(1 for r in live if r.key == key) > 0, key
        assert {r.key for r in live} == set(state._hosts)
        if self.strict_limits:
            assert s.connections <= state.max_conns, s
            for key in state._hosts:
                assert sum(1 for r in live if r.key == key) <= state.max_conns_per_host
        # connecting records know their owners, and owners their records
        for record in live:
            if record.state is ConnState.CONNECTING and record.owner is not None:
                assert record.owner.connecting is record
                assert not record.owner.done
            if record.state is not ConnState.CONNECTING:
                assert record.owner is None
        assert state._total == s.connections
        for waiter in self.waiters:
            assert self.notifications(waiter) <= 1, waiter
            if self.notifications(waiter):
                assert waiter.done
                outcomes = (waiter.conn is not None) + (waiter.error is not None)
                assert outcomes <= 1
                if waiter.preconnect:
                    assert waiter.conn is None
        assert f"{s.connections}/{state.max_conns} connections" in repr(state)
        assert f"{s.waiting} waiting" in repr(state)


# -- limits --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_conns", "per_host", "keys", "opened", "waiting"),
    [
        (10, 2, ["a"], ["a"], []),
        (10, 2, ["a", "a", "a"], ["a", "a"], ["a"]),
        (10, 1, ["a", "b", "a", "b"], ["a", "b"], ["a", "b"]),
        (2, 5, ["a", "b", "c"], ["a", "b"], ["c"]),
        (3, 2, ["a", "a", "a", "b", "b"], ["a", "a", "b"], ["a", "b"]),
        (1, 1, ["a", "b"], ["a"], ["b"]),
        (10, 2, ["a", "b", "c", "d", "e"], ["a", "b", "c", "d", "e"], []),
    ],
)
def test_limits(
    max_conns: int, per_host: int, keys: list[str], opened: list[str], waiting: list[str]
) -> None:
    h = Harness(max_conns=max_conns, max_conns_per_host=per_host)
    waiters = [h.request(key) for key in keys]
    assert [r.key for r in h.opened] == opened
    assert h.stats() == PoolStatistics(len(opened), len(opened), 0, 0, len(waiting))
    assert [w.key for w in waiters if w.connecting is None] == waiting
    # The connections come up: each owner gets its own, in use.
    for record in list(h.opened):
        owner = record.owner
        assert owner is not None
        h.connected(record, 1.0)
        assert owner.conn is record and owner.done and h.notifications(owner) == 1
    assert h.stats() == PoolStatistics(len(opened), 0, 0, len(opened), len(waiting))
    # Releasing them one by one serves every waiter in the end.
    served = 0
    for _ in range(len(keys) * 3):
        in_use = [r for r in h.opened if r.state is ConnState.IN_USE]
        if not in_use:
            break
        h.release(in_use[0], reusable=True, now=2.0)
        for record in [r for r in h.opened if r.state is ConnState.CONNECTING]:
            h.connected(record, 2.0)
        served = sum(1 for w in waiters if w.conn is not None)
    assert served == len(keys)
    assert h.stats().waiting == 0
    assert all(h.notifications(w) == 1 for w in waiters)


def test_set_limits_serves_waiters() -> None:
    h = Harness(max_conns=1, max_conns_per_host=1)
    h.in_use_conn("a")
    w = h.request("b")
    assert h.stats().waiting == 1
    h.set_limits(max_conns=2)
    assert w.connecting is not None and w.connecting.key == "b"
    assert h.stats() == PoolStatistics(2, 1, 0, 1, 0)
    w2 = h.request("b")
    assert w2.connecting is None
    h.set_limits(max_conns_per_host=2)
    assert w2.connecting is None  # the total limit still holds
    h.set_limits(max_conns=3)
    assert w2.connecting is not None
    assert h.state.max_conns == 3 and h.state.max_conns_per_host == 2


def test_lowering_limits_closes_nothing_in_use() -> None:
    h = Harness(max_conns=4, max_conns_per_host=4)
    records = [h.in_use_conn("a") for _ in range(3)]
    h.strict_limits = False
    h.set_limits(max_conns=1, max_conns_per_host=1)
    assert all(r.state is ConnState.IN_USE for r in records)
    w = h.request("a")
    assert w.connecting is None and not w.done
    h.release(records[0], reusable=False, now=1.0)
    h.release(records[1], reusable=False, now=1.0)
    assert not w.done
    h.release(records[2], reusable=True, now=1.0)  # to idle, then straight to w
    assert w.conn is records[2]
    h.strict_limits = True
    h.check()


# -- queue order ---------------------------------------------------------------

P = MessagePriority


@pytest.mark.parametrize(
    "priorities",
    [
        [P.NORMAL, P.NORMAL, P.NORMAL],
        [P.NORMAL, P.LOW, P.VERY_HIGH, P.NORMAL, P.HIGH, P.VERY_HIGH, P.VERY_LOW],
        [P.VERY_LOW, P.LOW, P.NORMAL, P.HIGH, P.VERY_HIGH],
        [P.VERY_HIGH, P.VERY_HIGH, P.VERY_LOW, P.VERY_HIGH],
    ],
)
@pytest.mark.parametrize("same_host", [True, False])
def test_queue_order_priority_then_fifo(priorities: list[int], same_host: bool) -> None:
    h = Harness(max_conns=1, max_conns_per_host=1)
    blocker = h.in_use_conn("a")
    waiters = [
        h.request("a" if same_host else f"h{i}", priority=p) for i, p in enumerate(priorities)
    ]
    assert h.stats().waiting == len(waiters)
    # expected: VERY_HIGH first, FIFO among equals (a stable sort by -priority)
    expected = sorted(range(len(priorities)), key=lambda i: -priorities[i])
    order: list[int] = []
    current = blocker
    for _ in priorities:
        h.release(current, reusable=True, now=1.0)
        served = [
            i
            for i, w in enumerate(waiters)
            if (w.done or w.connecting is not None) and i not in order
        ]
        assert len(served) == 1, served
        (index,) = served
        order.append(index)
        waiter = waiters[index]
        if waiter.conn is None:  # another host: the idle one was closed, a new one opened
            assert waiter.connecting is not None
            h.connected(waiter.connecting, 1.0)
        assert waiter.conn is not None
        current = waiter.conn
    assert order == expected
    assert h.stats().waiting == 0


# A table of queues: the limits (total/per host), the connections lent before
# anything queues (by key), the waiters as "name:key:priority[:fresh|:pre]",
# the names cancelled while they wait, and the order in which the waiters must
# be served when the lent connections are given back one at a time, oldest
# loan first (each new connection comes up at once).
QUEUE_TABLE = {
    "one-host-mixed-priorities": (
        "10/1",
        "a",
        "a1:a:N a2:a:L a3:a:VH a4:a:N a5:a:H",
        "",
        "a3 a5 a1 a4 a2",
    ),
    "total-limit-across-hosts": ("1/1", "a", "b1:b:N a1:a:N c1:c:VH b2:b:H", "", "c1 b2 b1 a1"),
    "per-host-queues-apart": ("10/1", "a b", "a1:a:N b1:b:VH a2:a:VH b2:b:L", "", "a2 b1 a1 b2"),
    "idle-of-another-host-closed-for-the-best": (
        "2/1",
        "a b",
        "c1:c:L a1:a:N d1:d:VH b1:b:N",
        "",
        "d1 a1 b1 c1",
    ),
    "cancel-in-the-middle-and-the-best": (
        "1/1",
        "a",
        "a1:a:N a2:a:N a3:a:N b1:b:N a4:a:VH",
        "a2 a4",
        "a1 a3 b1",
    ),
    "cancel-heads-of-two-hosts": ("1/1", "a", "a1:a:N a2:a:N b1:b:H b2:b:N", "b1 a1", "a2 b2"),
    "fresh-only-waits-its-turn": ("10/1", "a", "a1:a:N:fresh a2:a:H a3:a:N", "", "a2 a1 a3"),
    "both-limits-mixed": (
        "3/2",
        "a a b",
        "b1:b:L a1:a:N c1:c:N a2:a:H c2:c:VL b2:b:VH c3:c:N",
        "c1",
        "b2 a2 a1 c3 b1 c2",
    ),
    "preconnect-in-priority-order": ("1/1", "a", "p1:b:VH:pre a1:a:N", "", "p1 a1"),
}

_PRIORITIES = {"VL": P.VERY_LOW, "L": P.LOW, "N": P.NORMAL, "H": P.HIGH, "VH": P.VERY_HIGH}


def _also(first: Callable[[], None], then: Callable[[], None]) -> Callable[[], None]:
    def both() -> None:
        first()
        then()

    return both


@pytest.mark.parametrize("row", list(QUEUE_TABLE))
def test_queue_table(row: str) -> None:
    limits, lent, queued, cancelled, expected = QUEUE_TABLE[row]
    max_conns, per_host = map(int, limits.split("/"))
    h = Harness(max_conns=max_conns, max_conns_per_host=per_host)
    loans = [h.in_use_conn(key) for key in lent.split()]
    order: list[str] = []
    waiters: dict[str, Waiter] = {}
    for spec in queued.split():
        name, key, priority, *flags = spec.split(":")
        waiter = h.request(
            key,
            priority=_PRIORITIES[priority],
            fresh_only="fresh" in flags,
            preconnect="pre" in flags,
        )
        waiter.notify = _also(waiter.notify, lambda name=name: order.append(name))
        waiters[name] = waiter
        assert not waiter.done and waiter.connecting is None, f"{name} was served at once"
    for name in cancelled.split():
        h.cancel_waiter(waiters[name], 0.5)
    assert h.stats().waiting == len(queued.split()) - len(cancelled.split())
    now = 1.0
    while loans:
        h.release(loans.pop(0), reusable=True, now=now)
        now += 1.0
        while connecting := [r for r in h.opened if r.state is ConnState.CONNECTING]:
            h.connected(connecting[0], now)
        for name in order:
            conn = waiters[name].conn
            if conn is not None:  # the request task takes its connection
                waiters[name].conn = None
                conn.used = True
                loans.append(conn)
    assert order == expected.split()
    assert h.stats().waiting == 0
    assert all(h.notifications(waiters[name]) == 0 for name in cancelled.split())


def test_cancelled_waiters_in_a_long_queue_keep_order_and_memory_bounded() -> None:
    h = Harness(max_conns=1, max_conns_per_host=1)
    busy = h.in_use_conn("a")
    waiters = [h.request("a", priority=P.HIGH if i % 7 == 0 else P.NORMAL) for i in range(300)]
    keep = [w for i, w in enumerate(waiters) if i % 10 in (3, 7)]
    for waiter in waiters:
        if waiter not in keep:
            h.cancel_waiter(waiter, 0.5)
    assert h.stats().waiting == len(keep)
    # Cancelled waiters don't pile up in the queue: memory follows the live ones.
    (lane,) = h.state._queue._lanes.values()
    assert len(lane.heap) <= 2 * len(keep) + 16
    expected = sorted(keep, key=lambda w: w.sort_key)
    served = []
    current = busy
    for _ in keep:
        h.release(current, reusable=True, now=1.0)
        (waiter,) = [w for w in keep if w.conn is not None]
        served.append(waiter)
        current, waiter.conn = waiter.conn, None
    assert served == expected


@pytest.mark.parametrize("hosts", [1, 50])
def test_a_transition_looks_at_a_bounded_number_of_waiters(
    hosts: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15 item 6: no transition walks the whole queue (it used to, every time)."""
    state = PoolState(lambda key, plan: FakeRecord(key, str(key)), lambda record: None)
    state.max_conns_per_host = 2
    looked_at = 0
    serve = state._serve

    def counting(waiter: Waiter) -> Any:
        nonlocal looked_at
        looked_at += 1
        return serve(waiter)

    monkeypatch.setattr(state, "_serve", counting)
    waiters = [Waiter(f"h{i % hosts}") for i in range(4000)]
    for waiter in waiters:
        state.enqueue(waiter)
    assert state.statistics().waiting == 4000 - min(hosts * 2, state.max_conns)
    looked_at = 0
    steps = 0
    while True:
        for record in [r for r in state.records() if r.state is ConnState.CONNECTING]:
            state.connected(record, 1.0)
        lent = [w.conn for w in waiters if w.conn is not None]
        if not lent:
            break
        for waiter in waiters:
            waiter.conn = None
        for record in lent:
            assert record is not None
            state.release(record, reusable=True, now=1.0)
            steps += 1
    assert state.statistics().waiting == 0 and steps == len(waiters)
    # Each release serves one waiter: a few looks each, whatever the queue's length.
    assert looked_at <= 3 * steps, (looked_at, steps)


def test_checkout_idle_is_lifo_and_skips_dead() -> None:
    h = Harness(max_conns=5, max_conns_per_host=5)
    records = [h.in_use_conn("a", now=float(i)) for i in range(3)]
    for i, record in enumerate(records):
        h.release(record, reusable=True, now=float(i))
    assert h.checkout_idle("a") is records[2]  # most recently used first
    records[1].alive = False
    assert h.checkout_idle("a") is records[0]  # the dead one is closed on the way
    assert records[1].state is ConnState.CLOSED and h.closed == [records[1]]
    assert h.checkout_idle("a") is None
    assert h.checkout_idle("nobody") is None
    assert h.stats() == PoolStatistics(2, 0, 0, 2, 0)


def test_checkout_idle_refuses_while_others_wait() -> None:
    h = Harness(max_conns=1, max_conns_per_host=1)
    a = h.in_use_conn("a")
    w = h.request("b")  # queued: the total limit is reached
    assert not w.done
    # An idle "a" connection may not jump the queue past w through checkout_idle.
    a2_state = h.state
    assert a2_state.checkout_idle("a") is None
    h.release(a, reusable=True, now=1.0)
    assert a.state is ConnState.CLOSED  # closed to make room for w's host
    assert w.connecting is not None and w.connecting.key == "b"


def test_dead_idle_connection_is_skipped_when_serving() -> None:
    h = Harness(max_conns=5, max_conns_per_host=5)
    old, new = h.idle_conn("a", 1.0), h.idle_conn("a", 2.0)
    new.alive = False
    w = h.request("a")
    assert w.conn is old and new.state is ConnState.CLOSED
    old.alive = False
    h.release(old, reusable=True, now=3.0)
    w2 = h.request("a")
    assert old.state is ConnState.CLOSED
    assert w2.connecting is not None and w2.conn is None  # a new connection instead


# -- making room ---------------------------------------------------------------


def test_oldest_idle_connection_of_any_host_is_closed_to_make_room() -> None:
    h = Harness(max_conns=3, max_conns_per_host=2)
    b = h.idle_conn("b", now=5.0)
    a = h.idle_conn("a", now=1.0)
    c = h.idle_conn("c", now=3.0)
    assert h.stats() == PoolStatistics(3, 0, 3, 0, 0)
    w = h.request("d")
    assert a.state is ConnState.CLOSED and h.closed == [a]  # the oldest, whatever its host
    assert w.connecting is not None and w.connecting.key == "d"
    w2 = h.request("e")
    assert c.state is ConnState.CLOSED and h.closed == [a, c]
    assert w2.connecting is not None
    # A request for a host with an idle connection reuses it and closes nothing.
    w3 = h.request("b")
    assert w3.conn is b and h.closed == [a, c]
    # Now nothing is idle: the next one waits.
    w4 = h.request("f")
    assert not w4.done and h.stats().waiting == 1


def test_per_host_limit_waits_even_with_idle_elsewhere() -> None:
    h = Harness(max_conns=10, max_conns_per_host=1)
    h.idle_conn("b")
    h.in_use_conn("a")
    w = h.request("a")
    assert not w.done and h.stats() == PoolStatistics(2, 0, 1, 1, 1)


# -- fresh-only waiters --------------------------------------------------------


def test_fresh_only_never_gets_an_idle_connection() -> None:
    h = Harness(max_conns=10, max_conns_per_host=2)
    idle = h.idle_conn("a")
    w = h.request("a", fresh_only=True)
    assert w.conn is None and w.connecting is not None and w.connecting is not idle
    assert idle.state is ConnState.IDLE
    h.connected(w.connecting, 1.0)
    assert w.conn is not idle and w.conn is not None and w.conn.state is ConnState.IN_USE


def test_fresh_only_closes_its_own_idle_connection_at_the_host_limit() -> None:
    h = Harness(max_conns=10, max_conns_per_host=1)
    idle = h.idle_conn("a")
    w = h.request("a", fresh_only=True)
    assert idle.state is ConnState.CLOSED and h.closed == [idle]
    assert w.connecting is not None and w.connecting is not idle


def test_fresh_only_waits_for_a_fresh_connection_not_a_released_one() -> None:
    h = Harness(max_conns=1, max_conns_per_host=1)
    busy = h.in_use_conn("a")
    w = h.request("a", fresh_only=True)
    assert not w.done
    h.release(busy, reusable=True, now=1.0)
    # The released connection is idle; it is closed to make room for a new one.
    assert busy.state is ConnState.CLOSED
    assert w.conn is None and w.connecting is not None and w.connecting is not busy


# -- takeover of CONNECTING connections ------------------------------------------


def test_request_takes_over_an_unowned_connecting_connection() -> None:
    h = Harness()
    p = h.request("a", preconnect=True)
    w1 = h.request("a")  # takes the attempt over; the preconnect returns
    record = w1.connecting
    assert record is not None and p.done and record.promised
    h.cancel_waiter(w1, 0.5)
    # The preconnect returned on its promise: the attempt goes on, owned by nobody.
    assert record.owner is None and record.state is ConnState.CONNECTING
    w2 = h.request("a")
    assert w2.connecting is record and record.owner is w2
    assert len(h.opened) == 1
    h.connected(record, 1.0)
    assert w2.conn is record and h.notifications(w2) == 1
    assert h.notifications(w1) == 0 and w1.conn is None


def test_request_takes_over_a_preconnect_connection() -> None:
    h = Harness()
    p = h.request("a", preconnect=True)
    record = p.connecting
    assert record is not None and record.owner is p and not p.done
    w = h.request("a")
    # The preconnect completes successfully: its connection is in good hands.
    assert p.done and p.error is None and p.conn is None and h.notifications(p) == 1
    assert p.connecting is None
    assert w.connecting is record and record.owner is w and len(h.opened) == 1
    h.connected(record, 1.0)
    assert w.conn is record and record.state is ConnState.IN_USE
    assert h.notifications(p) == 1  # not notified twice


def test_connect_error_after_takeover_goes_to_the_request() -> None:
    h = Harness()
    p = h.request("a", preconnect=True)
    record = p.connecting
    assert record is not None
    w = h.request("a")
    error = OSError("refused")
    h.connect_failed(record, error)
    assert w.error is error and w.done and h.notifications(w) == 1
    assert p.error is None
    assert h.stats() == PoolStatistics(0, 0, 0, 0, 0)


def test_request_does_not_take_over_another_requests_connection() -> None:
    h = Harness()
    w1 = h.request("a")
    w2 = h.request("a")
    assert w1.connecting is not None and w2.connecting is not None
    assert w1.connecting is not w2.connecting and len(h.opened) == 2


def test_preconnect_does_not_take_over_another_preconnect() -> None:
    h = Harness(max_conns_per_host=1)
    p1 = h.request("a", preconnect=True)
    p2 = h.request("a", preconnect=True)
    assert p1.connecting is not None and p1.connecting.owner is p1
    assert not p2.done and h.stats().waiting == 1
    h.connected(p1.connecting, 1.0)
    # p1 is done; p2 finds the idle connection and completes at once
    assert p1.done and p2.done and p1.error is None and p2.error is None
    assert h.stats() == PoolStatistics(1, 0, 1, 0, 0)


def test_preconnect_completes_at_once_with_an_idle_connection() -> None:
    h = Harness()
    idle = h.idle_conn("a")
    p = h.request("a", preconnect=True)
    assert p.done and p.error is None and p.conn is None and h.notifications(p) == 1
    assert idle.state is ConnState.IDLE and len(h.opened) == 1


def test_preconnected_connection_goes_idle_with_short_expiry() -> None:
    h = Harness(idle_timeout=60)
    p = h.request("a", preconnect=True)
    record = p.connecting
    assert record is not None
    h.connected(record, 10.0)
    assert p.done and p.error is None
    assert record.state is ConnState.IDLE and not record.used
    assert record.expires_at == 10.0 + SPECULATIVE_IDLE_TIMEOUT == 13.0
    assert h.state.next_expiry() == 13.0


# -- cancel_waiter in every state ----------------------------------------------


def test_cancel_queued_waiter() -> None:
    h = Harness(max_conns=1)
    busy = h.in_use_conn("a")
    w = h.request("b")
    assert h.stats().waiting == 1
    h.cancel_waiter(w, 1.0)
    assert w.done and h.notifications(w) == 0 and h.stats().waiting == 0
    h.release(busy, reusable=True, now=1.0)
    assert busy.state is ConnState.IDLE  # nobody to make room for
    assert len(h.opened) == 1
    h.cancel_waiter(w, 2.0)  # twice: nothing happens
    assert h.stats() == PoolStatistics(1, 0, 1, 0, 0)


def test_cancel_one_of_several_equal_priority_waiters() -> None:
    h = Harness(max_conns=1)
    busy = h.in_use_conn("a")
    ws = [h.request("a") for _ in range(4)]
    h.cancel_waiter(ws[2], 1.0)
    assert h.stats().waiting == 3
    order = []
    current = busy
    for _ in range(3):
        h.release(current, reusable=True, now=1.0)
        (w,) = [w for w in ws if w.conn is not None and w not in order]
        order.append(w)
        assert w.conn is not None
        current = w.conn
    assert order == [ws[0], ws[1], ws[3]]


# When the waiter that owns a CONNECTING record goes away (issue 15 item 5):
# what happens to the attempt, given who else waits. Columns: the limits
# (total/per host), the owner and the waiters queued behind it (each
# "key[:pre|:fresh][:VH]"), the record's fate, and the waiter that then owns
# it or got the freed slot.
ORPHAN_TABLE = {
    "alone": ("10/2", "a", "", "closed", None),
    "a-preconnect-alone": ("10/2", "a:pre", "", "closed", None),
    "only-another-host-waits": ("1/1", "a", "b", "closed", "b"),
    "a-preconnect-and-another-host": ("1/1", "a:pre", "b", "closed", "b"),
    "a-request-for-its-host-waits": ("1/1", "a", "b a", "taken", "a"),
    "a-fresh-only-request-waits": ("1/1", "a", "a:fresh", "taken", "a:fresh"),
    "a-preconnect-for-its-host-waits": ("1/1", "a", "a:pre", "taken", "a:pre"),
    "a-preconnect-after-a-preconnect": ("10/1", "a:pre", "a:pre", "taken", "a:pre"),
    "first-come-of-its-host": ("1/2", "a", "a a:pre", "taken", "a"),
    "best-of-its-host": ("1/2", "a", "a:pre a:VH", "taken", "a:VH"),
}


def _table_waiter(h: Harness, spec: str) -> Waiter:
    key, *flags = spec.split(":")
    return h.request(
        key,
        priority=P.VERY_HIGH if "VH" in flags else P.NORMAL,
        fresh_only="fresh" in flags,
        preconnect="pre" in flags,
    )


@pytest.mark.parametrize("row", list(ORPHAN_TABLE))
def test_cancel_waiter_owning_a_connecting_record(row: str) -> None:
    limits, owner, queued, fate, heir = ORPHAN_TABLE[row]
    max_conns, per_host = map(int, limits.split("/"))
    h = Harness(max_conns=max_conns, max_conns_per_host=per_host, idle_timeout=60)
    w = _table_waiter(h, owner)
    record = w.connecting
    assert record is not None
    waiters = {spec: _table_waiter(h, spec) for spec in queued.split()}
    assert all(not x.done and x.connecting is None for x in waiters.values())
    h.cancel_waiter(w, 1.0)
    assert w.done and w.connecting is None and w.conn is None and h.notifications(w) == 0
    if fate == "closed":
        # Nobody else could use it: the attempt is cancelled at once.
        assert record.state is ConnState.CLOSED and h.closed == [record]
        h.connected(record, 2.0)  # the task's late report changes nothing
        assert record.state is ConnState.CLOSED
    else:
        assert record.state is ConnState.CONNECTING and h.closed == []
        assert record.owner is waiters[heir]
    if heir is not None:
        assert waiters[heir].connecting is not None  # the attempt, or the freed slot
        others = [x for name, x in waiters.items() if name != heir]
        assert all(x.connecting is None and not x.done for x in others)
    assert h.stats().waiting == len(waiters) - (heir is not None)


def test_cancel_waiter_keeps_an_attempt_a_preconnect_returned_on() -> None:
    h = Harness(idle_timeout=60)
    h.request("a", preconnect=True)
    w = h.request("a")
    record = w.connecting
    assert record is not None and record.promised
    h.cancel_waiter(w, 1.0)
    assert record.state is ConnState.CONNECTING and record.owner is None
    assert h.stats() == PoolStatistics(1, 1, 0, 0, 0)
    h.connected(record, 2.0)
    assert record.state is ConnState.IDLE and w.conn is None
    assert record.expires_at == 2.0 + SPECULATIVE_IDLE_TIMEOUT  # unused: short expiry
    h.connect_failed(record, OSError())  # too late: ignored
    assert record.state is ConnState.IDLE


def test_cancel_waiter_owning_a_failing_record_gets_no_error() -> None:
    h = Harness()
    w = h.request("a")
    record = w.connecting
    assert record is not None
    h.cancel_waiter(w, 1.0)
    h.connect_failed(record, OSError("refused"))
    assert w.error is None and h.notifications(w) == 0
    assert h.stats() == PoolStatistics(0, 0, 0, 0, 0) and h.closed == [record]


def test_cancel_waiter_already_served_gives_the_connection_back_idle() -> None:
    h = Harness()
    w = h.request("a")
    record = w.connecting
    assert record is not None
    h.connected(record, 1.0)
    assert w.conn is record and record.state is ConnState.IN_USE
    # Its task was cancelled between being served and taking the connection.
    h.cancel_waiter(w, 2.0)
    assert w.conn is None
    assert record.state is ConnState.IDLE
    assert h.stats() == PoolStatistics(1, 0, 1, 0, 0)
    h.cancel_waiter(w, 3.0)  # idempotent
    assert h.stats() == PoolStatistics(1, 0, 1, 0, 0)


def test_cancel_waiter_served_from_idle_hands_on_to_the_next() -> None:
    h = Harness(max_conns=1)
    busy = h.in_use_conn("a")
    w1, w2 = h.request("a"), h.request("a")
    h.release(busy, reusable=True, now=1.0)
    assert w1.conn is busy and not w2.done
    h.cancel_waiter(w1, 2.0)
    assert w2.conn is busy and h.notifications(w2) == 1


def test_cancel_waiter_after_error_or_preconnect_is_a_no_op() -> None:
    h = Harness()
    w = h.request("a")
    assert w.connecting is not None
    h.connect_failed(w.connecting, OSError())
    h.cancel_waiter(w, 1.0)
    assert w.error is not None
    p = h.request("b", preconnect=True)
    assert p.connecting is not None
    h.connected(p.connecting, 1.0)
    h.cancel_waiter(p, 2.0)
    assert h.stats() == PoolStatistics(1, 0, 1, 0, 0)


# -- connection task events ----------------------------------------------------


def test_connect_failed_delivers_the_error_to_the_owner() -> None:
    h = Harness(max_conns=1)
    w1 = h.request("a")
    w2 = h.request("b")  # waits for room
    record = w1.connecting
    assert record is not None and not w2.done
    error = OSError("connection refused")
    h.connect_failed(record, error)
    assert w1.done and w1.error is error and w1.conn is None and h.notifications(w1) == 1
    assert record.state is ConnState.CLOSED and h.closed == [record]
    # the room it left goes to the next waiter
    assert w2.connecting is not None and w2.connecting.key == "b"
    h.connect_failed(record, error)  # a second report changes nothing
    assert h.notifications(w1) == 1


def test_gone_while_connecting_fails_the_owner() -> None:
    h = Harness()
    w = h.request("a")
    record = w.connecting
    assert record is not None
    h.gone(record)
    assert isinstance(w.error, NetworkError) and h.notifications(w) == 1
    h.gone(record)  # once only
    assert h.closed == [record]


@pytest.mark.parametrize("state", ["idle", "in-use"])
def test_gone_closes_idle_or_lent_records(state: str) -> None:
    h = Harness()
    record = h.idle_conn("a") if state == "idle" else h.in_use_conn("a")
    h.gone(record)
    assert record.state is ConnState.CLOSED and h.closed == [record]
    h.release(record, reusable=True, now=5.0)  # the borrower comes back late: ignored
    assert h.stats() == PoolStatistics(0, 0, 0, 0, 0)


def test_connected_after_close_is_ignored() -> None:
    h = Harness()
    w = h.request("a")
    record = w.connecting
    assert record is not None
    h.close_all(lambda: NetworkError("closed"))
    h.connected(record, 1.0)
    assert record.state is ConnState.CLOSED and w.conn is None


# -- release -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reusable", "idle_timeout", "state", "expires_at"),
    [
        (True, 60.0, ConnState.IDLE, 70.0),
        (True, 0.3, ConnState.IDLE, 10.3),
        (True, 0.0, ConnState.IDLE, math.inf),
        (False, 60.0, ConnState.CLOSED, None),
    ],
)
def test_release(
    reusable: bool, idle_timeout: float, state: ConnState, expires_at: float | None
) -> None:
    h = Harness(idle_timeout=idle_timeout)
    record = h.in_use_conn("a")
    record.io_deadline = 99.0
    h.release(record, reusable=reusable, now=10.0)
    assert record.state is state
    assert record.io_deadline == math.inf
    if expires_at is not None:
        assert record.used and record.idle_since == 10.0
        assert record.expires_at == pytest.approx(expires_at)
        assert h.closed == []
    else:
        assert h.closed == [record]
    h.release(record, reusable=True, now=11.0)  # a second release is ignored
    assert record.state is state


def test_release_non_reusable_serves_a_waiter_with_a_new_connection() -> None:
    h = Harness(max_conns=1)
    busy = h.in_use_conn("a")
    w = h.request("a")
    h.release(busy, reusable=False, now=1.0)
    assert busy.state is ConnState.CLOSED
    assert w.connecting is not None and w.connecting is not busy


# -- expiry --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("used", "idle_timeout", "lifetime"),
    [
        (False, 60.0, SPECULATIVE_IDLE_TIMEOUT),
        (False, 0.0, SPECULATIVE_IDLE_TIMEOUT),
        (False, 1.0, SPECULATIVE_IDLE_TIMEOUT),
        (True, 60.0, 60.0),
        (True, 0.3, 0.3),
        (True, 0.0, math.inf),
    ],
)
def test_idle_expiry(used: bool, idle_timeout: float, lifetime: float) -> None:
    h = Harness(idle_timeout=idle_timeout)
    if used:
        record = h.idle_conn("a", now=100.0)
    else:
        p = h.request("a", preconnect=True)
        assert p.connecting is not None
        record = p.connecting
        h.connected(record, 100.0)
    assert record.used is used
    assert h.state.next_expiry() == 100.0 + lifetime
    if math.isinf(lifetime):
        assert h.expire(1e12) == []
        assert record.state is ConnState.IDLE
        return
    assert h.expire(100.0 + lifetime - 0.01) == []
    assert record.state is ConnState.IDLE
    assert h.expire(100.0 + lifetime) == []  # idle ones are closed, not returned
    assert record.state is ConnState.CLOSED and h.closed == [record]
    assert h.state.next_expiry() == math.inf


def test_expiry_closes_only_expired_connections() -> None:
    h = Harness(idle_timeout=10.0, max_conns=5, max_conns_per_host=5)
    early = h.idle_conn("a", now=0.0)
    late = h.idle_conn("a", now=5.0)
    other = h.idle_conn("b", now=2.0)
    busy = h.in_use_conn("c")
    assert h.state.next_expiry() == 10.0
    h.expire(11.0)
    assert early.state is ConnState.CLOSED
    assert late.state is other.state is ConnState.IDLE and busy.state is ConnState.IN_USE
    assert h.state.next_expiry() == 12.0
    h.expire(15.0)
    assert h.stats() == PoolStatistics(1, 0, 0, 1, 0)


def test_stalled_in_use_records_are_returned_by_expire() -> None:
    h = Harness(max_conns=5, max_conns_per_host=5)
    stalled = h.in_use_conn("a")
    fine = h.in_use_conn("a")
    idle = h.idle_conn("b", now=0.0)
    stalled.io_deadline = 5.0
    fine.io_deadline = 50.0
    assert h.expire(4.9) == []
    assert h.expire(5.0) == [stalled]
    assert stalled.state is ConnState.CLOSED and h.closed == [stalled]
    assert fine.state is ConnState.IN_USE and idle.state is ConnState.IDLE
    assert h.expire(6.0) == []  # reported once
    h.release(stalled, reusable=True, now=7.0)  # the borrower gives it back: ignored
    assert h.stats() == PoolStatistics(2, 0, 1, 1, 0)


def test_close_idle() -> None:
    h = Harness()
    idle = [h.idle_conn("a"), h.idle_conn("b")]
    busy = h.in_use_conn("c")
    h.close_idle()
    assert all(r.state is ConnState.CLOSED for r in idle) and busy.state is ConnState.IN_USE


# -- close_all and abort -------------------------------------------------------


def _populated() -> tuple[Harness, dict[str, Any]]:
    """A pool with a queued waiter, an idle and a lent connection, and four
    connecting records: one owned by a request, one by a preconnect, and two
    that a request took over from a preconnect (one of these requests was
    cancelled since: its record goes on, owned by nobody)."""
    h = Harness(max_conns=10, max_conns_per_host=1)
    parts: dict[str, Any] = {}
    parts["idle"] = h.idle_conn("idle")
    parts["busy"] = h.in_use_conn("busy")
    parts["owner"] = h.request("owned")
    parts["owned"] = parts["owner"].connecting
    for name in ("unowned", "taken"):
        h.request(name, preconnect=True)
        parts[f"{name}-taker"] = h.request(name)  # the preconnect returns
        parts[name] = parts[f"{name}-taker"].connecting
    h.cancel_waiter(parts["unowned-taker"], 0.0)
    parts["preconnect"] = h.request("pre", preconnect=True)
    parts["pre"] = parts["preconnect"].connecting
    parts["queued"] = h.request("busy")  # waits: the host limit is reached
    assert h.stats() == PoolStatistics(6, 4, 1, 1, 1)
    assert parts["unowned"].owner is None and parts["unowned"].promised
    return h, parts


#: The waiters still waiting in ``_populated()``.
WAITING = ("owner", "taken-taker", "preconnect", "queued")


def test_close_all() -> None:
    h, p = _populated()
    h.close_all(lambda: NetworkError("the session is closed"))
    assert h.stats() == PoolStatistics(0, 0, 0, 0, 0)
    assert all(r.state is ConnState.CLOSED for r in h.opened)
    assert len(h.closed) == len(h.opened) == 6
    errors = [p[name].error for name in WAITING]
    assert all(isinstance(e, NetworkError) for e in errors), errors
    assert len({id(e) for e in errors}) == len(WAITING)  # one exception object per task
    assert all(h.notifications(p[name]) == 1 for name in WAITING)
    # late events from the connection tasks change nothing
    h.connected(p["owned"], 1.0)
    h.connect_failed(p["pre"], OSError())
    h.gone(p["unowned"])
    h.release(p["busy"], reusable=True, now=1.0)
    assert h.stats() == PoolStatistics(0, 0, 0, 0, 0)
    # new requests are refused at once
    w = h.request("late")
    assert w.done and isinstance(w.error, NetworkError) and not h.opened[6:]
    assert "0/10 connections" in repr(h.state)


def test_abort() -> None:
    h, p = _populated()
    lent = h.abort(lambda: anysoup.RequestCancelled("aborted"))
    assert lent == [p["busy"]] and p["busy"].state is ConnState.CLOSED
    assert p["idle"].state is ConnState.CLOSED
    errors = [p[name].error for name in WAITING]
    assert all(isinstance(e, anysoup.RequestCancelled) for e in errors), errors
    assert len({id(e) for e in errors}) == len(WAITING)
    assert all(h.notifications(p[name]) == 1 for name in WAITING)
    # Attempts go with their requests and preconnects...
    assert p["owned"].state is ConnState.CLOSED and p["pre"].state is ConnState.CLOSED
    # ...except those a preconnect returned on: they go on, without owners.
    for name in ("unowned", "taken"):
        assert p[name].state is ConnState.CONNECTING and p[name].owner is None
    assert h.stats() == PoolStatistics(2, 2, 0, 0, 0)
    # the pool still works: they come up idle and serve new requests
    for name in ("unowned", "taken"):
        h.connected(p[name], 1.0)
    assert h.stats() == PoolStatistics(2, 0, 2, 0, 0)
    w = h.request("taken")
    assert w.conn is p["taken"]


def test_repr() -> None:
    h = Harness(max_conns=7, max_conns_per_host=3)
    assert repr(h.state) == (
        "<PoolState 0/7 connections (0 connecting, 0 idle, 0 in use), 0 waiting, per host 3>"
    )
    h.in_use_conn("a")
    h.idle_conn("b")
    h.request("c")
    h.set_limits(max_conns=3)
    assert repr(h.state) == (
        "<PoolState 3/3 connections (1 connecting, 1 idle, 1 in use), 0 waiting, per host 3>"
    )
    h.request("d")  # the idle "b" connection is closed to make room
    assert repr(h.state) == (
        "<PoolState 3/3 connections (2 connecting, 0 idle, 1 in use), 0 waiting, per host 3>"
    )
    h.request("e")
    assert repr(h.state) == (
        "<PoolState 3/3 connections (2 connecting, 0 idle, 1 in use), 1 waiting, per host 3>"
    )


# -- a long random walk keeps every invariant ------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_random_walk_keeps_invariants(seed: int) -> None:
    import random

    rng = random.Random(seed)
    h = Harness(max_conns=4, max_conns_per_host=2, idle_timeout=5.0)
    now = 0.0
    taken: list[ConnectionRecord] = []  # connections a request task took from its waiter
    for _ in range(400):
        now += rng.random()
        action = rng.randrange(9)
        live = [r for r in h.opened if r.state is not ConnState.CLOSED]
        pending = [w for w in h.waiters if not w.done]
        taken = [r for r in taken if r.state is ConnState.IN_USE]
        if action <= 1:
            h.request(
                rng.choice("abc"),
                priority=rng.choice(list(MessagePriority)),
                fresh_only=rng.random() < 0.2,
                preconnect=rng.random() < 0.15,
            )
        elif action == 2 and pending:
            h.cancel_waiter(rng.choice(pending), now)
        elif action == 3:
            connecting = [r for r in live if r.state is ConnState.CONNECTING]
            if connecting:
                record = rng.choice(connecting)
                if rng.random() < 0.8:
                    h.connected(record, now)
                else:
                    h.connect_failed(record, OSError("no"))
        elif action == 4 and taken:
            record = taken.pop(rng.randrange(len(taken)))
            h.release(record, reusable=rng.random() < 0.7, now=now)
        elif action == 5:
            for r in live:
                if r.state is ConnState.IDLE and rng.random() < 0.2:
                    r.alive = False
            h.expire(now)
        elif action == 6 and live:
            h.gone(rng.choice(live))
        elif action == 7:
            # Served waiters: the task either takes the connection or was cancelled.
            for w in [w for w in h.waiters if w.conn is not None]:
                if rng.random() < 0.3:
                    h.cancel_waiter(w, now)
                    assert w.conn is None
                else:
                    taken.append(w.conn)
                    w.conn = None
        elif action == 8 and rng.random() < 0.1:
            h.abort(lambda: NetworkError("abort"))
    h.close_all(lambda: NetworkError("end"))
    assert h.stats() == PoolStatistics(0, 0, 0, 0, 0)
    assert all(w.done for w in h.waiters)


# -- detached connections (WebSockets) -------------------------------------------


def test_detach_leaves_the_limits_and_serves_a_waiter() -> None:
    h = Harness(max_conns=1, max_conns_per_host=1)
    conn = h.in_use_conn("a")
    waiting = h.request("a")
    assert not waiting.done
    h.detach(conn)
    assert conn.state is ConnState.DETACHED
    assert h.stats() == PoolStatistics(1, 1, 0, 0, 0, detached=1)
    assert waiting.connecting is not None  # the slot went to the waiter at once
    h.release(conn, reusable=True, now=0.0)  # a stray release changes nothing
    assert conn.state is ConnState.DETACHED and conn not in h.closed


def test_detached_connection_closes_with_the_session_not_with_abort() -> None:
    h = Harness()
    conn = h.in_use_conn("a")
    h.detach(conn)
    h.abort(lambda: NetworkError("aborted"))
    assert conn.state is ConnState.DETACHED
    h.expire(math.inf)
    assert conn.state is ConnState.DETACHED
    h.close_all(lambda: NetworkError("closed"))
    assert conn.state is ConnState.CLOSED and h.closed == [conn]
    assert h.stats() == PoolStatistics(0, 0, 0, 0, 0)


def test_detached_connection_gone_when_its_task_ends() -> None:
    h = Harness()
    conn = h.in_use_conn("a")
    h.detach(conn)
    h.gone(conn)
    assert conn.state is ConnState.CLOSED and h.closed == [conn]
    assert h.stats() == PoolStatistics(0, 0, 0, 0, 0)


@pytest.mark.parametrize("how", ["idle", "closed", "detached"])
def test_only_a_lent_connection_can_be_detached(how: str) -> None:
    h = Harness()
    if how == "idle":
        conn = h.idle_conn("a")
    else:
        conn = h.in_use_conn("a")
        if how == "closed":
            h.release(conn, reusable=False, now=0.0)
        else:
            h.detach(conn)
    with pytest.raises(RuntimeError, match="can't be detached"):
        h.detach(conn)
