"""The pool's records and the primitive moves between its sets, without I/O.

Theory of operation: :class:`Records` holds every connection record where
its state puts it (a host's connecting, spare, idle and shared sets, the
idle index, the in-use, detached and draining sets) and the counters the
limits read, and moves one record at a time: lend, make idle, open, close.
:meth:`Records._close` is the one place a record becomes CLOSED and the
counters go down. Which move to make, and when, is
:class:`~anysoup._pool.state_policy.PoolState`'s business; it inherits
these.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterator
from typing import Any

from .connections_policy import (
    SPECULATIVE_IDLE_TIMEOUT,
    ConnectionRecord,
    ConnState,
    Host,
    IdleIndex,
    PoolStatistics,
)
from .queue_policy import Waiter, WaiterQueue

__all__ = ["Records"]


class Records:
    """Every connection record by state, the counters, and the moves between them.

    Args:
        open_connection: Make a record for a key (and a waiter's ``plan``) and
            start connecting it.
        close_connection: Tell a record's task to close it (called once per record).
        idle_timeout: Seconds an idle, used connection is kept; 0 keeps it forever.
    """

    def __init__(
        self,
        open_connection: Callable[[Hashable, Any], ConnectionRecord],
        close_connection: Callable[[ConnectionRecord], None],
        *,
        idle_timeout: float,
    ) -> None:
        self._open_connection = open_connection
        self._close_connection = close_connection
        self.idle_timeout = idle_timeout
        self._hosts: dict[Hashable, Host] = {}
        self._queue = WaiterQueue()
        self._total = 0
        self._idle = IdleIndex()
        self.in_use: set[ConnectionRecord] = set()
        #: Connections their message took out of the pool (WebSockets).
        self.detached: set[ConnectionRecord] = set()
        #: HTTP/2 connections finishing their streams after GOAWAY.
        self.draining: set[ConnectionRecord] = set()
        # Streams lent, over all multiplexed connections.
        self._streams = 0
        # Per key that offers HTTP/2: whether its server chose it (ALPN).
        self._alpn: dict[Hashable, bool] = {}

    def statistics(self) -> PoolStatistics:
        """The current counters."""
        connecting = sum(len(h.connecting) for h in self._hosts.values())
        return PoolStatistics(
            connections=self._total,
            connecting=connecting,
            idle=len(self._idle),
            in_use=len(self.in_use),
            waiting=len(self._queue),
            detached=len(self.detached),
            streams=self._streams,
            draining=len(self.draining),
        )

    def records(self) -> Iterator[ConnectionRecord]:
        """Every connection that is not closed."""
        for host in self._hosts.values():
            yield from host.connecting
            yield from host.idle
        yield from self.in_use
        yield from self.draining

    # -- moves ------------------------------------------------------------------

    def _lend(self, record: ConnectionRecord) -> None:
        if record.multiplexed:
            host = self._hosts[record.key]
            if record.state is ConnState.IDLE:
                host.idle.pop(record, None)
                self._idle.discard(record)
            record.streams += 1
            self._streams += 1
            if record.streams >= record.max_streams:
                host.shared.pop(record, None)
        record.state = ConnState.IN_USE
        self.in_use.add(record)

    def _set_owner(self, record: ConnectionRecord, owner: Waiter | None) -> None:
        """Give a CONNECTING record its owner, keeping its host's spare set right."""
        record.owner = owner
        spare = self._hosts[record.key].spare
        if owner is None or owner.preconnect:
            spare[record] = None
        else:
            spare.pop(record, None)

    def _make_idle(self, record: ConnectionRecord, now: float) -> None:
        record.state = ConnState.IDLE
        record.idle_since = now
        if not record.used:
            lifetime = SPECULATIVE_IDLE_TIMEOUT
        else:
            lifetime = self.idle_timeout if self.idle_timeout > 0 else math.inf
        record.expires_at = now + lifetime
        self._hosts[record.key].idle[record] = None
        self._idle.add(record)
        self._queue.touch(record.key)

    def _pop_idle(self, host: Host) -> ConnectionRecord:
        """Take the most recently used idle record of ``host`` (still IDLE)."""
        record, _ = host.idle.popitem()
        self._idle.discard(record)
        return record

    def _close(self, record: ConnectionRecord) -> None:
        """Move ``record`` to CLOSED: the one place the counters go down."""
        state = record.state
        if state is ConnState.CLOSED:
            return
        if record.multiplexed:
            self._streams -= record.streams
            record.streams = 0
        if state is ConnState.DETACHED or state is ConnState.DRAINING:
            # Counted no more since it was detached or began draining.
            self.detached.discard(record)
            self.draining.discard(record)
            record.state = ConnState.CLOSED
            self._close_connection(record)
            return
        host = self._hosts[record.key]
        host.shared.pop(record, None)
        if state is ConnState.IDLE:
            host.idle.pop(record, None)  # not there when the caller popped it already
            self._idle.discard(record)
        elif state is ConnState.CONNECTING:
            del host.connecting[record]
            host.spare.pop(record, None)
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
        self._queue.touch(record.key)

    def _open(self, waiter: Waiter) -> None:
        record = self._open_connection(waiter.key, waiter.plan)
        host = self._hosts.get(waiter.key)
        if host is None:
            host = self._hosts[waiter.key] = Host()
        host.connecting[record] = None
        host.count += 1
        self._total += 1
        self._set_owner(record, waiter)
        waiter.connecting = record
