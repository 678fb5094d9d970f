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

A connection is CONNECTING, IDLE, IN_USE, DRAINING, DETACHED or CLOSED (see
``docs/design.rst``). The limits count every connection that is CONNECTING,
IDLE or IN_USE, and a record becomes
CLOSED exactly once, in :meth:`PoolState._close`, so the counters cannot drift
whatever order events arrive in. Because no transition awaits, a cancellation
can't land in the middle of one: a cancelled request runs one synchronous
clean-up (:meth:`cancel_waiter` or :meth:`release`) and the state is whole.

A request that can't be served at once becomes a
:class:`~anysoup._pool.queue_policy.Waiter` in the
:class:`~anysoup._pool.queue_policy.WaiterQueue`, ordered by priority, then
arrival. A transition that frees something for a key *touches* the key (its
waiters are looked at again); :meth:`PoolState._process` then serves, best
first, every waiter that can be served, looking only at the head of each
lane that may have changed, so a transition costs O(log n) in the waiters.
The oldest idle connection (closed to make room for another host) comes from
a heap too.

HTTP/2 connections are *multiplexed*: each loan is one stream. Such a
record stays in its host's ``shared`` set while it has room for another
stream (up to the peer's limit), IDLE with none lent and IN_USE with some;
:meth:`PoolState.release` gives one stream back. After GOAWAY it is
DRAINING: not counted, lends nothing, closed when its last stream returns.
While the protocol of an HTTP/2-capable key is unknown, its waiters wait for
the first connection's ALPN answer instead of opening more; the answer is
remembered per key.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Hashable
from typing import Any

from .._model.exceptions import NetworkError
from .connections_policy import (
    SPECULATIVE_IDLE_TIMEOUT,
    ConnectionRecord,
    ConnState,
    Host,
    PoolStatistics,
)
from .queue_policy import Waiter
from .records_policy import Records

__all__ = [
    "SPECULATIVE_IDLE_TIMEOUT",
    "ConnState",
    "ConnectionRecord",
    "PoolState",
    "PoolStatistics",
    "Waiter",
]


class _Outcome(enum.Enum):
    """What :meth:`PoolState._serve` did with a waiter."""

    #: It got a connection (idle, taken over or new), or its preconnect is done.
    SERVED = "served"
    #: Only the ``max_conns`` limit stands in the way, and nothing idle to close.
    ROOM = "room"
    #: Its pool key is at ``max_conns_per_host``.
    HOST = "host"


class PoolState(Records):
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
        super().__init__(open_connection, close_connection, idle_timeout=idle_timeout)
        self.max_conns = max_conns
        self.max_conns_per_host = max_conns_per_host
        self.closing = False

    # -- requests -------------------------------------------------------------

    def checkout_idle(self, key: Hashable) -> ConnectionRecord | None:
        """The fast path: lend an idle connection for ``key`` when nobody waits.

        Returns None when the caller must queue a :class:`Waiter` instead.
        """
        if self._queue:
            return None
        host = self._hosts.get(key)
        if host is None:
            return None
        if host.shared:  # an HTTP/2 connection with room for a stream
            return self._shared(host)
        while host.idle:
            record = self._pop_idle(host)
            if record.is_alive():
                self._lend(record)
                return record
            self._close(record)
        return None

    def enqueue(self, waiter: Waiter) -> None:
        """Queue ``waiter`` and serve the queue (it may be served at once)."""
        if self.closing:
            waiter.error = _closed_error()  # no notify: the caller looks at once
            waiter.done = True
            return
        self._queue.push(waiter)
        self._process()

    def cancel_waiter(self, waiter: Waiter, now: float) -> None:
        """Undo ``waiter`` after its task was cancelled or failed, wherever it got to.

        A connection still being made for it goes to the best waiter queued
        for the same key; failing that, it goes on if a preconnect returned on
        it (``promised``), else it is closed: the attempt is cancelled now and
        its slot freed, rather than held until the attempt ends or times out.
        """
        if waiter.done:
            if waiter.conn is not None:  # served, but its task never took the connection
                conn, waiter.conn = waiter.conn, None
                self.release(conn, reusable=True, now=now)
            return
        waiter.done = True
        record = waiter.connecting
        if record is None:
            self._queue.remove(waiter)
            return
        waiter.connecting = None
        if record.owner is waiter:
            self._set_owner(record, None)
            self._queue.touch(record.key)
            self._process()  # a waiter for the same key may take the attempt over
            if record.owner is None and not record.promised:
                # Nobody wants it any more: cancel the attempt (DNS, connect, TLS,
                # proxy) now, so that its slot doesn't wait for the timeout.
                self._close(record)
                self._process()

    def release(self, record: ConnectionRecord, *, reusable: bool, now: float) -> None:
        """Take back a lent connection: to IDLE if ``reusable``, else close it.

        A multiplexed connection takes back one stream, whatever ``reusable``
        says: its driver closes it when the connection itself failed.
        """
        if record.multiplexed:
            self._release_stream(record, now)
            return
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

    def connected(
        self,
        record: ConnectionRecord,
        now: float,
        *,
        max_streams: int | None = None,
        offered_h2: bool = False,
    ) -> None:
        """A connection task finished connecting: give the connection to its owner.

        ``max_streams`` is given for a multiplexed (HTTP/2) connection: it
        serves that many loans at once. ``offered_h2``: the connection
        offered HTTP/2, and the server's choice is remembered for its key.
        """
        if record.state is not ConnState.CONNECTING:
            return
        owner, record.owner = record.owner, None
        host = self._hosts[record.key]
        del host.connecting[record]
        host.spare.pop(record, None)
        if offered_h2:
            if len(self._alpn) >= 1024:  # a crawler meets many hosts: stay bounded
                self._alpn.clear()
            self._alpn[record.key] = max_streams is not None
            self._queue.touch(record.key)  # its waiters waited for this answer
        if max_streams is not None:
            record.multiplexed = True
            record.max_streams = max_streams
            if max_streams > 0:
                host.shared[record] = None
        if owner is None or owner.preconnect:
            self._make_idle(record, now)
            if owner is not None:
                owner.finish()
        else:
            self._lend(record)
            owner.finish(record)
        self._process()

    def connect_failed(self, record: ConnectionRecord, error: BaseException) -> None:
        """A connection task failed to connect: the owner, if any, gets ``error``."""
        if record.state is not ConnState.CONNECTING:
            return
        owner = record.owner
        self._close(record)
        if owner is not None:
            owner.finish(error=error)
        self._process()

    def gone(self, record: ConnectionRecord) -> None:
        """A connection task ended: make sure its record is CLOSED."""
        if record.state is not ConnState.CLOSED:
            owner = record.owner if record.state is ConnState.CONNECTING else None
            self._close(record)
            if owner is not None:
                owner.finish(error=_closed_error())
            self._process()

    # -- multiplexed connections ----------------------------------------------

    def set_max_streams(self, record: ConnectionRecord, limit: int) -> None:
        """The peer changed its stream limit: lend up to ``limit`` streams at once."""
        record.max_streams = limit
        if record.state is ConnState.IDLE or record.state is ConnState.IN_USE:
            host = self._hosts[record.key]
            if record.streams < limit:
                host.shared[record] = None
                self._queue.touch(record.key)
                self._process()
            else:
                host.shared.pop(record, None)

    def drain(self, record: ConnectionRecord) -> None:
        """No new stream on ``record`` (GOAWAY); close it when its last stream returns.

        It stops counting against the limits at once, so waiters may get a
        new connection while its streams finish.
        """
        state = record.state
        if state is ConnState.IDLE or (state is ConnState.IN_USE and record.streams <= 0):
            self._close(record)
        elif state is ConnState.IN_USE:
            self.in_use.discard(record)
            self._hosts[record.key].shared.pop(record, None)
            self._uncount(record)
            record.state = ConnState.DRAINING
            self.draining.add(record)
        else:
            return
        self._process()

    def _shared(self, host: Host) -> ConnectionRecord:
        """Lend a stream of ``host``'s oldest multiplexed connection with room (there is one)."""
        record = next(iter(host.shared))
        self._lend(record)
        return record

    def _release_stream(self, record: ConnectionRecord, now: float) -> None:
        state = record.state
        if state is not ConnState.IN_USE and state is not ConnState.DRAINING:
            return  # closed meanwhile: its streams were uncounted then
        record.streams -= 1
        self._streams -= 1
        if state is ConnState.DRAINING:
            if record.streams <= 0:
                self._close(record)
            return
        host = self._hosts[record.key]
        if record.streams < record.max_streams:
            host.shared[record] = None
        if record.streams <= 0:
            self.in_use.discard(record)
            record.io_deadline = math.inf
            if self.closing:
                self._close(record)
            else:
                self._make_idle(record, now)
        self._queue.touch(record.key)
        self._process()

    # -- housekeeping ---------------------------------------------------------

    def expire(self, now: float) -> list[ConnectionRecord]:
        """Close idle connections past their expiry; return lent ones whose I/O stalled."""
        for record in [r for r in self._idle if r.expires_at <= now]:
            self._close(record)
        stalled = [r for r in (*self.in_use, *self.draining) if r.io_deadline <= now]
        for record in stalled:
            self._close(record)
        self._process()
        return stalled

    def next_expiry(self) -> float:
        """The earliest time an idle connection expires (inf if none)."""
        return min(
            (next(iter(host.idle)).expires_at for host in self._hosts.values() if host.idle),
            default=math.inf,
        )

    def close_idle(self) -> None:
        """Close every idle connection."""
        for record in list(self._idle):
            self._close(record)
        self._process()

    def close_all(self, error: Callable[[], BaseException]) -> None:
        """Close every connection and fail every waiter with ``error()``; refuse new ones."""
        self.closing = True
        self.abort(error)
        for host in list(self._hosts.values()):
            for record in list(host.connecting):
                self._close(record)
        for record in [*self.detached, *self.draining]:
            self._close(record)

    def abort(self, error: Callable[[], BaseException]) -> list[ConnectionRecord]:
        """Fail every waiter with ``error()`` and close idle and lent connections.

        Connections still connecting for a failed waiter are closed too,
        except those a preconnect returned on (see :meth:`cancel_waiter`).
        Returns the lent connections (their tasks are told why they closed).
        """
        waiters = self._queue.drain()
        unwanted = []
        for host in self._hosts.values():
            for record in host.connecting:
                if record.owner is not None:
                    waiters.append(record.owner)
                    self._set_owner(record, None)
                    if not record.promised:
                        unwanted.append(record)
        for record in unwanted:  # their attempts go with their requests
            self._close(record)
        for waiter in waiters:
            waiter.finish(error=error())  # one exception object per waiting task
        lent = [*self.in_use, *self.draining]
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
        self._queue.touch_all()
        self._process()

    # -- serving the queue -----------------------------------------------------

    def _room(self) -> bool:
        """Whether a new connection fits under ``max_conns``, if need be by closing an idle one."""
        return self._total < self.max_conns or bool(self._idle)

    def _process(self) -> None:
        """Serve every waiter that can be served, best first (see the module docstring)."""
        queue = self._queue
        while not self.closing:
            waiter = queue.best(self._room())
            if waiter is None:
                return
            outcome = self._serve(waiter)
            if outcome is _Outcome.SERVED:
                queue.served(waiter)
            else:
                queue.blocked(waiter, room=outcome is _Outcome.ROOM)

    def _serve(self, waiter: Waiter) -> _Outcome:
        host = self._hosts.get(waiter.key)
        if host is not None and waiter.multiplex and host.shared:
            if waiter.preconnect:
                waiter.finish()
            else:
                waiter.finish(self._shared(host))
            return _Outcome.SERVED
        if host is not None and not waiter.fresh_only:
            while host.idle:
                if waiter.preconnect:
                    waiter.finish()
                    return _Outcome.SERVED
                record = self._pop_idle(host)
                if record.is_alive():
                    self._lend(record)
                    waiter.finish(record)
                    return _Outcome.SERVED
                self._close(record)
            host = self._hosts.get(waiter.key)
        if host is not None:
            for record in host.spare:
                owner = record.owner
                if owner is None or not waiter.preconnect:
                    if owner is not None:  # the preconnect returns: its job is done
                        owner.finish()
                        record.promised = True
                    self._set_owner(record, waiter)
                    waiter.connecting = record
                    return _Outcome.SERVED
            if waiter.multiplex and host.connecting and self._alpn.get(waiter.key) is not False:
                # The first connection's ALPN answer decides: HTTP/2 serves
                # everyone from it. Its ``connected`` touches the key.
                return _Outcome.HOST
        outcome = self._make_room(waiter.key)
        if outcome is _Outcome.SERVED:
            self._open(waiter)
        return outcome

    def _make_room(self, key: Hashable) -> _Outcome:
        """Whether a new connection for ``key`` fits (SERVED), closing idle ones if that helps."""
        host = self._hosts.get(key)
        if host is not None and host.count >= self.max_conns_per_host:
            # Only a fresh-only waiter gets here with idle connections of its own key.
            if not host.idle:
                return _Outcome.HOST
            self._close(next(iter(host.idle)))
        if self._total >= self.max_conns:
            oldest = self._idle.oldest()
            if oldest is None:
                return _Outcome.ROOM
            self._close(oldest)
        return _Outcome.SERVED

    def __repr__(self) -> str:
        s = self.statistics()
        return (
            f"<PoolState {s.connections}/{self.max_conns} connections "
            f"({s.connecting} connecting, {s.idle} idle, {s.in_use} in use), "
            f"{s.waiting} waiting, per host {self.max_conns_per_host}>"
        )


def _closed_error() -> BaseException:
    return NetworkError("the session is closed")
