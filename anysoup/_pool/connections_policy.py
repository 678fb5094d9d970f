"""The pool's records of connections: states, per-key sets, the idle index.

This module is policy: no I/O, no async library. It holds the data that
:class:`~anysoup._pool.state_policy.PoolState` moves connections between;
the transitions themselves are there.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import math
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .queue_policy import Waiter

__all__ = [
    "SPECULATIVE_IDLE_TIMEOUT",
    "ConnState",
    "ConnectionRecord",
    "Host",
    "IdleIndex",
    "PoolStatistics",
]

#: A connection that was made ahead of need (by a preconnect) and never used
#: is dropped after this long.
SPECULATIVE_IDLE_TIMEOUT = 3.0


class ConnState(enum.Enum):
    """The states of a pooled connection."""

    #: Its task is resolving, connecting or handshaking.
    CONNECTING = "connecting"
    #: Ready, waiting in its host's idle stack.
    IDLE = "idle"
    #: Lent to one message (HTTP/2: carrying at least one stream).
    IN_USE = "in-use"
    #: HTTP/2 after the server's GOAWAY: takes no new stream, no longer counted
    #: against the limits, closed when its last stream ends.
    DRAINING = "draining"
    #: Taken out of the pool for good by its message (a WebSocket after its
    #: 101 answer): no longer counted against the limits, closed with the session.
    DETACHED = "detached"
    #: Out of the pool; its task closes (or has closed) the socket.
    CLOSED = "closed"


class ConnectionRecord:
    """The pool's view of one connection. The shell subclasses it."""

    __slots__ = (
        "expires_at",
        "idle_since",
        "io_deadline",
        "key",
        "max_streams",
        "multiplexed",
        "owner",
        "promised",
        "state",
        "streams",
        "used",
    )

    def __init__(self, key: Hashable) -> None:
        #: The pool key: connections are shared only between equal keys.
        self.key = key
        #: The current state.
        self.state = ConnState.CONNECTING
        #: The waiter this connection is being made for, while CONNECTING.
        self.owner: Waiter | None = None
        #: Whether a preconnect returned on the promise of this connection (a
        #: request took it over while it connected): it is then made even if
        #: that request goes away, and waits idle like any preconnected one.
        self.promised = False
        #: Whether a message was written on it (it then lives ``idle_timeout`` when
        #: idle); set by whoever borrows it.
        self.used = False
        #: When it last became IDLE.
        self.idle_since = 0.0
        #: When an IDLE connection expires.
        self.expires_at = math.inf
        #: While IN_USE: when the current read or write stalls out (set by the driver).
        self.io_deadline = math.inf
        #: Whether it carries many messages at once (HTTP/2), lent per stream.
        self.multiplexed = False
        #: Streams lent and not yet given back (multiplexed connections only).
        self.streams = 0
        #: The most streams it may carry at once (the peer's limit).
        self.max_streams = 1

    def is_alive(self) -> bool:
        """Whether an IDLE connection can still carry a message (the shell checks the socket)."""
        return True


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
    #: HTTP/2 streams in use, over all multiplexed connections (draining ones too).
    streams: int = 0
    #: HTTP/2 connections that received GOAWAY and still finish their streams.
    draining: int = 0


class Host:
    """The connections of one pool key."""

    __slots__ = ("connecting", "count", "idle", "shared", "spare")

    def __init__(self) -> None:
        # Dicts used as ordered sets: O(1) removal, insertion order kept.
        #: IDLE records, oldest first; reuse pops the newest.
        self.idle: dict[ConnectionRecord, None] = {}
        #: CONNECTING records, oldest first.
        self.connecting: dict[ConnectionRecord, None] = {}
        #: CONNECTING records a request may take over: owned by nobody or a preconnect.
        self.spare: dict[ConnectionRecord, None] = {}
        #: Multiplexed records (IDLE or IN_USE) with room for another stream, oldest first.
        self.shared: dict[ConnectionRecord, None] = {}
        #: Records in every state but CLOSED, DETACHED and DRAINING (what the limits count).
        self.count = 0


class IdleIndex:
    """Every IDLE record of every host; finds the oldest in O(log n).

    The oldest idle connection, whatever its host, is the one closed to make
    room under ``max_conns``. A heap of ``(idle_since, tie, record)`` finds it;
    entries of records that left IDLE stay until they reach the top, and the
    heap is rebuilt when they outnumber the live ones.
    """

    __slots__ = ("_heap", "_records", "_ties")

    def __init__(self) -> None:
        self._records: dict[ConnectionRecord, None] = {}
        self._heap: list[tuple[float, int, ConnectionRecord]] = []
        self._ties = itertools.count()

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[ConnectionRecord]:
        return iter(self._records)

    def add(self, record: ConnectionRecord) -> None:
        """``record`` became IDLE (its ``idle_since`` is set)."""
        self._records[record] = None
        heap = self._heap
        heapq.heappush(heap, (record.idle_since, next(self._ties), record))
        if len(heap) > 2 * len(self._records) + 16:
            self._heap = [e for e in heap if self._current(e)]
            heapq.heapify(self._heap)

    def discard(self, record: ConnectionRecord) -> None:
        """``record`` left IDLE."""
        self._records.pop(record, None)

    def oldest(self) -> ConnectionRecord | None:
        """The record idle the longest, or None."""
        heap = self._heap
        while heap:
            if self._current(heap[0]):
                return heap[0][2]
            heapq.heappop(heap)
        return None

    def _current(self, entry: tuple[float, int, ConnectionRecord]) -> bool:
        return entry[2] in self._records and entry[2].idle_since == entry[0]
