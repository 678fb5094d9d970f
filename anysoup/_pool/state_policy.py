"""The connection pool's bookkeeping: limits, the waiter queue, connection states.

Theory of operation
-------------------

This module is policy: it does no I/O, imports no async library and never
waits. :class:`PoolState` holds every connection's state and every waiting
request, and each of its methods is one synchronous transition. The async
shell (``_pool/pool.py``) calls it and performs the I/O it asks for through two
callbacks given at construction:

* ``open_connection(key, plan)`` makes a :class:`ConnectionRecord` and starts the
  task that connects it (starting a task is synchronous);
* ``close_connection(record)`` tells that task to close its socket.

A connection is CONNECTING, IDLE, IN_USE, DETACHED or CLOSED (see
``docs/design.rst``). The limits count every connection that is CONNECTING,
IDLE or IN_USE, and a record becomes
CLOSED exactly once, in :meth:`PoolState._close`, so the counters cannot drift
whatever order events arrive in. Because no transition awaits, a cancellation
can't land in the middle of one: a cancelled request runs one synchronous
clean-up (:meth:`cancel_waiter` or :meth:`release`) and the state is whole.

A request that can't be served at once becomes a :class:`Waiter` in a queue
ordered by priority, then arrival. After every transition that frees something
:meth:`_process` walks the queue and serves whom it can.
"""

from __future__ import annotations

import bisect
import enum
import itertools
import math
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any

from .._model.exceptions import NetworkError

__all__ = ["ConnState", "ConnectionRecord", "PoolState", "PoolStatistics", "Waiter"]

#: A connection that was made ahead of need (preconnect, or for a request that
#: was cancelled while it connected) and never used is dropped after this long.
SPECULATIVE_IDLE_TIMEOUT = 3.0

_sequence = itertools.count()


class ConnState(enum.Enum):
    """The states of a pooled connection."""

    #: Its task is resolving, connecting or handshaking.
    CONNECTING = "connecting"
    #: Ready, waiting in its host's idle stack.
    IDLE = "idle"
    #: Lent to one message.
    IN_USE = "in-use"
    #: Taken out of the pool for good by its message (a WebSocket after its
    #: 101 answer): no longer counted against the limits, closed with the session.
    DETACHED = "detached"
    #: Out of the pool; its task closes (or has closed) the socket.
    CLOSED = "closed"


class ConnectionRecord:
    """The pool's view of one connection. The shell subclasses it."""

    __slots__ = ("expires_at", "idle_since", "io_deadline", "key", "owner", "state", "used")

    def __init__(self, key: Hashable) -> None:
        #: The pool key: connections are shared only between equal keys.
        self.key = key
        #: The current state.
        self.state = ConnState.CONNECTING
        #: The waiter this connection is being made for, while CONNECTING.
        self.owner: Waiter | None = None
        #: Whether a message was written on it (it then lives ``idle_timeout`` when
        #: idle); set by whoever borrows it.
        self.used = False
        #: When it last became IDLE.
        self.idle_since = 0.0
        #: When an IDLE connection expires.
        self.expires_at = math.inf
        #: While IN_USE: when the current read or write stalls out (set by the driver).
        self.io_deadline = math.inf

    def is_alive(self) -> bool:
        """Whether an IDLE connection can still carry a message (the shell checks the socket)."""
        return True


class Waiter:
    """A request (or preconnect) waiting for a connection.

    When it is served, ``notify`` is called once; then exactly one of ``conn``
    (an IN_USE connection now lent to it), ``error`` (its connection failed)
    or ``done`` alone (a preconnect found or made an idle connection) is set.
    """

    __slots__ = (
        "conn",
        "connecting",
        "done",
        "error",
        "fresh_only",
        "key",
        "notify",
        "plan",
        "preconnect",
        "sort_key",
    )

    def __init__(
        self,
        key: Hashable,
        *,
        priority: int = 0,
        fresh_only: bool = False,
        preconnect: bool = False,
        notify: Callable[[], None] = lambda: None,
        plan: object = None,
    ) -> None:
        self.key = key
        #: What the shell needs to make a connection for this waiter (opaque here).
        self.plan = plan
        self.sort_key = (-priority, next(_sequence))
        #: The message must go on a new connection (never an idle one).
        self.fresh_only = fresh_only
        #: A preconnect: wants a connection to exist, not to borrow one.
        self.preconnect = preconnect
        self.notify = notify
        #: The connection being made for this waiter, while it connects.
        self.connecting: ConnectionRecord | None = None
        self.conn: ConnectionRecord | None = None
        self.error: BaseException | None = None
        self.done = False

    def __lt__(self, other: Waiter) -> bool:
        return self.sort_key < other.sort_key


@dataclass(frozen=True)
class PoolStatistics:
    """A snapshot of the pool's counters (``Session.statistics()``)."""

    #: Connections not closed: connecting + idle + in use.
    connections: int
    #: Connections being made.
    connecting: int
    #: Connections ready and unused.
    idle: int
    #: Connections lent to a message.
    in_use: int
    #: Requests and preconnects waiting for a connection.
    waiting: int
    #: Connections taken out of the pool by their message (open WebSockets).
    detached: int = 0


class _Host:
    """The connections of one pool key."""

    __slots__ = ("connecting", "count", "idle")

    def __init__(self) -> None:
        self.idle: list[ConnectionRecord] = []  # oldest first; reuse pops the newest
        self.connecting: list[ConnectionRecord] = []
        self.count = 0  # every state but CLOSED


class PoolState:
    """Connection limits, the waiter queue and every connection's state.

    Args:
        open_connection: Make a record for a key (and a waiter's ``plan``) and
            start connecting it.
        close_connection: Tell a record's task to close it (called once per record).
        max_conns: The limit on connections, all hosts together.
        max_conns_per_host: The limit on connections for one pool key.
        idle_timeout: Seconds an idle, used connection is kept; 0 keeps it forever.
    """

    def __init__(
        self,
        open_connection: Callable[[Hashable, Any], ConnectionRecord],
        close_connection: Callable[[ConnectionRecord], None],
        *,
        max_conns: int = 10,
        max_conns_per_host: int = 2,
        idle_timeout: float = 60.0,
    ) -> None:
        self._open_connection = open_connection
        self._close_connection = close_connection
        self.max_conns = max_conns
        self.max_conns_per_host = max_conns_per_host
        self.idle_timeout = idle_timeout
        self._hosts: dict[Hashable, _Host] = {}
        self._waiters: list[Waiter] = []
        self._total = 0
        self.in_use: set[ConnectionRecord] = set()
        #: Connections their message took out of the pool (WebSockets).
        self.detached: set[ConnectionRecord] = set()
        self.closing = False

    # -- requests -------------------------------------------------------------

    def checkout_idle(self, key: Hashable) -> ConnectionRecord | None:
        """The fast path: lend an idle connection for ``key`` when nobody waits.

        Returns None when the caller must queue a :class:`Waiter` instead.
        """
        if self._waiters:
            return None
        host = self._hosts.get(key)
        if host is None:
            return None
        idle = host.idle
        while idle:
            record = idle.pop()
            if record.is_alive():
                record.state = ConnState.IN_USE
                self.in_use.add(record)
                return record
            self._close(record)
        return None

    def enqueue(self, waiter: Waiter) -> None:
        """Queue ``waiter`` and serve the queue (it may be served at once)."""
        if self.closing:
            waiter.error = _closed_error()
            waiter.done = True
            return
        bisect.insort(self._waiters, waiter)
        self._process()

    def cancel_waiter(self, waiter: Waiter, now: float) -> None:
        """Undo ``waiter`` after its task was cancelled or failed, wherever it got to."""
        if waiter.done:
            if waiter.conn is not None:  # served, but its task never took the connection
                conn, waiter.conn = waiter.conn, None
                self.release(conn, reusable=True, now=now)
            return
        waiter.done = True
        record = waiter.connecting
        if record is not None:
            waiter.connecting = None
            if record.owner is waiter:
                record.owner = None  # it goes on connecting, then waits idle
            return
        index = bisect.bisect_left(self._waiters, waiter)
        if index < len(self._waiters) and self._waiters[index] is waiter:
            del self._waiters[index]

    def release(self, record: ConnectionRecord, *, reusable: bool, now: float) -> None:
        """Take back a lent connection: to IDLE if ``reusable``, else close it."""
        if record.state is not ConnState.IN_USE:
            return  # closed while lent (timeout, abort, session end)
        self.in_use.discard(record)
        record.io_deadline = math.inf
        if reusable and not self.closing:
            self._make_idle(record, now)
        else:
            self._close(record)
        self._process()

    def detach(self, record: ConnectionRecord) -> None:
        """Take a lent connection out of the pool for good (libsoup's "steal").

        It stops counting against the limits, so waiters may be served at
        once; :meth:`close_all` still closes it. The caller runs it from then on.

        Raises:
            RuntimeError: ``record`` is not lent (the pool closed it meanwhile).
        """
        if record.state is not ConnState.IN_USE:
            raise RuntimeError(f"{record!r} is not lent and can't be detached")
        self.in_use.discard(record)
        record.io_deadline = math.inf
        self._uncount(record)
        record.state = ConnState.DETACHED
        self.detached.add(record)
        self._process()

    # -- connection tasks -----------------------------------------------------

    def connected(self, record: ConnectionRecord, now: float) -> None:
        """A connection task finished connecting: give the connection to its owner."""
        if record.state is not ConnState.CONNECTING:
            return
        self._hosts[record.key].connecting.remove(record)
        owner, record.owner = record.owner, None
        if owner is None or owner.preconnect:
            self._make_idle(record, now)
            if owner is not None:
                owner.connecting = None
                owner.done = True
                owner.notify()
        else:
            owner.connecting = None
            record.state = ConnState.IN_USE
            self.in_use.add(record)
            owner.conn = record
            owner.done = True
            owner.notify()
        self._process()

    def connect_failed(self, record: ConnectionRecord, error: BaseException) -> None:
        """A connection task failed to connect: the owner, if any, gets ``error``."""
        if record.state is not ConnState.CONNECTING:
            return
        owner = record.owner
        self._close(record)
        if owner is not None:
            owner.connecting = None
            owner.error = error
            owner.done = True
            owner.notify()
        self._process()

    def gone(self, record: ConnectionRecord) -> None:
        """A connection task ended: make sure its record is CLOSED."""
        if record.state is not ConnState.CLOSED:
            owner = record.owner if record.state is ConnState.CONNECTING else None
            self._close(record)
            if owner is not None:
                owner.connecting = None
                owner.error = _closed_error()
                owner.done = True
                owner.notify()
            self._process()

    # -- housekeeping ---------------------------------------------------------

    def expire(self, now: float) -> list[ConnectionRecord]:
        """Close idle connections past their expiry; return lent ones whose I/O stalled."""
        for host in list(self._hosts.values()):
            for record in [r for r in host.idle if r.expires_at <= now]:
                self._close(record)
        stalled = [r for r in self.in_use if r.io_deadline <= now]
        for record in stalled:
            self._close(record)
        self._process()
        return stalled

    def next_expiry(self) -> float:
        """The earliest time an idle connection expires (inf if none)."""
        return min(
            (host.idle[0].expires_at for host in self._hosts.values() if host.idle),
            default=math.inf,
        )

    def close_idle(self) -> None:
        """Close every idle connection."""
        for host in list(self._hosts.values()):
            for record in list(host.idle):
                self._close(record)
        self._process()

    def close_all(self, error: Callable[[], BaseException]) -> None:
        """Close every connection and fail every waiter with ``error()``; refuse new ones."""
        self.closing = True
        self.abort(error)
        for host in list(self._hosts.values()):
            for record in list(host.connecting):
                self._close(record)
        for record in list(self.detached):
            self._close(record)

    def abort(self, error: Callable[[], BaseException]) -> list[ConnectionRecord]:
        """Fail every waiter with ``error()`` and close idle and lent connections.

        Returns the lent connections (their tasks are told why they closed).
        """
        waiters, self._waiters = self._waiters, []
        for host in self._hosts.values():
            for record in host.connecting:
                if record.owner is not None:
                    waiters.append(record.owner)
                    record.owner = None
        for waiter in waiters:
            waiter.connecting = None
            waiter.error = error()  # one exception object per waiting task
            waiter.done = True
            waiter.notify()
        lent = list(self.in_use)
        for record in lent:
            self._close(record)
        self.close_idle()
        return lent

    def set_limits(
        self, *, max_conns: int | None = None, max_conns_per_host: int | None = None
    ) -> None:
        """Change the limits; waiters that now fit are served."""
        if max_conns is not None:
            self.max_conns = max_conns
        if max_conns_per_host is not None:
            self.max_conns_per_host = max_conns_per_host
        self._process()

    def statistics(self) -> PoolStatistics:
        """The current counters."""
        idle = sum(len(h.idle) for h in self._hosts.values())
        connecting = sum(len(h.connecting) for h in self._hosts.values())
        return PoolStatistics(
            connections=self._total,
            connecting=connecting,
            idle=idle,
            in_use=len(self.in_use),
            waiting=len(self._waiters),
            detached=len(self.detached),
        )

    def records(self) -> Iterator[ConnectionRecord]:
        """Every connection that is not closed."""
        for host in self._hosts.values():
            yield from host.connecting
            yield from host.idle
        yield from self.in_use

    # -- internals ------------------------------------------------------------

    def _make_idle(self, record: ConnectionRecord, now: float) -> None:
        record.state = ConnState.IDLE
        record.idle_since = now
        if not record.used:
            lifetime = SPECULATIVE_IDLE_TIMEOUT
        else:
            lifetime = self.idle_timeout if self.idle_timeout > 0 else math.inf
        record.expires_at = now + lifetime
        self._hosts[record.key].idle.append(record)

    def _close(self, record: ConnectionRecord) -> None:
        """Move ``record`` to CLOSED: the one place the counters go down."""
        state = record.state
        if state is ConnState.CLOSED:
            return
        if state is ConnState.DETACHED:  # counted no more since it was detached
            self.detached.discard(record)
            record.state = ConnState.CLOSED
            self._close_connection(record)
            return
        host = self._hosts[record.key]
        if state is ConnState.IDLE:
            if record in host.idle:  # not when the caller popped it already
                host.idle.remove(record)
        elif state is ConnState.CONNECTING:
            host.connecting.remove(record)
            record.owner = None
        elif state is ConnState.IN_USE:
            self.in_use.discard(record)
        record.state = ConnState.CLOSED
        self._uncount(record)
        self._close_connection(record)

    def _uncount(self, record: ConnectionRecord) -> None:
        host = self._hosts[record.key]
        host.count -= 1
        self._total -= 1
        if host.count == 0:
            del self._hosts[record.key]

    def _open(self, waiter: Waiter) -> None:
        record = self._open_connection(waiter.key, waiter.plan)
        host = self._hosts.get(waiter.key)
        if host is None:
            host = self._hosts[waiter.key] = _Host()
        host.connecting.append(record)
        host.count += 1
        self._total += 1
        record.owner = waiter
        waiter.connecting = record

    def _process(self) -> None:
        """Serve every waiter that can be served, in queue order."""
        if not self._waiters or self.closing:
            return
        waiting: list[Waiter] = []
        for waiter in self._waiters:
            if not self._serve(waiter):
                waiting.append(waiter)
        self._waiters = waiting

    def _serve(self, waiter: Waiter) -> bool:
        host = self._hosts.get(waiter.key)
        if host is not None and not waiter.fresh_only:
            while host.idle:
                if waiter.preconnect:
                    waiter.done = True
                    waiter.notify()
                    return True
                record = host.idle.pop()
                if record.is_alive():
                    record.state = ConnState.IN_USE
                    self.in_use.add(record)
                    waiter.conn = record
                    waiter.done = True
                    waiter.notify()
                    return True
                self._close(record)
            host = self._hosts.get(waiter.key)
        if host is not None:
            for record in host.connecting:
                owner = record.owner
                if owner is None or (owner.preconnect and not waiter.preconnect):
                    if owner is not None:
                        owner.connecting = None
                        owner.done = True
                        owner.notify()
                    record.owner = waiter
                    waiter.connecting = record
                    return True
        if not self._make_room(waiter.key):
            return False
        self._open(waiter)
        return True

    def _make_room(self, key: Hashable) -> bool:
        """Whether a new connection for ``key`` fits, closing idle ones if that helps."""
        host = self._hosts.get(key)
        if host is not None and host.count >= self.max_conns_per_host:
            # Only a fresh-only waiter gets here with idle connections of its own key.
            if not host.idle:
                return False
            self._close(host.idle[0])
        if self._total >= self.max_conns:
            oldest = self._oldest_idle()
            if oldest is None:
                return False
            self._close(oldest)
        return True

    def _oldest_idle(self) -> ConnectionRecord | None:
        oldest: ConnectionRecord | None = None
        for host in self._hosts.values():
            if host.idle and (oldest is None or host.idle[0].idle_since < oldest.idle_since):
                oldest = host.idle[0]
        return oldest

    def __repr__(self) -> str:
        s = self.statistics()
        return (
            f"<PoolState {s.connections}/{self.max_conns} connections "
            f"({s.connecting} connecting, {s.idle} idle, {s.in_use} in use), "
            f"{s.waiting} waiting, per host {self.max_conns_per_host}>"
        )


def _closed_error() -> BaseException:
    return NetworkError("the session is closed")
