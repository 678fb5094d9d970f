"""The pool's waiter queue: per-key lanes and two heaps of lanes to serve.

Theory of operation
-------------------

This module is policy: no I/O, no async library. It decides in which order
:class:`~anysoup._pool.state_policy.PoolState` looks at waiting requests, in
O(log n) per step (n: waiters) instead of walking every waiter after every
transition.

Waiters are served by priority (``VERY_HIGH`` first), FIFO among equals:
each has a ``sort_key`` of ``(-priority, arrival)``. They wait in *lanes*,
one per pool key and kind (requests, preconnects), each a heap by
``sort_key``. A lane's head blocks the rest of its lane: whatever keeps the
head waiting (no idle or takeable connection for its key, no room under the
limits) keeps every later waiter of that lane waiting too. So only lane
heads are ever looked at, and a lane is in one of four places:

* a *candidate*: something changed for its key (a waiter arrived, a
  connection of the key went idle, closed or lost its owner), so its head
  must be looked at again; candidates sit in a heap by their head's
  ``sort_key``;
* *waiting for room*: its head needs a new connection and only the
  ``max_conns`` limit stands in the way; such lanes sit in a second heap,
  looked at only while there is room (a free slot, or an idle connection
  to any host that may be closed for it);
* *blocked*: its key is at ``max_conns_per_host``; only a change for the key
  (which makes it a candidate again) or a raised limit can help it;
* being looked at.

:meth:`WaiterQueue.best` gives the head with the smallest ``sort_key`` of
both heaps (the second only when there is room), which is the waiter the
old walk over the whole queue would have served first. Heap entries are
never updated in place: an entry carries a token, and an entry whose token
is not its lane's current one, or whose ``sort_key`` is no longer its lane
head's (the head was cancelled), is dropped or re-pushed when it reaches the
top. Cancelled waiters stay in their lane's heap until they reach its top;
a lane (and the room heap) is rebuilt when its garbage outweighs its
content, so memory stays proportional to the live waiters.
"""

from __future__ import annotations

import enum
import heapq
import itertools
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .connections_policy import ConnectionRecord

__all__ = ["Waiter", "WaiterQueue"]

_sequence = itertools.count()


class _Place(enum.Enum):
    """Where a lane is (see the module docstring)."""

    #: Blocked by its host's limit, being looked at, or emptied.
    NOWHERE = "nowhere"
    #: In the candidate heap.
    CANDIDATE = "candidate"
    #: In the heap of lanes waiting for room under ``max_conns``.
    ROOM = "room"


_NOWHERE, _CANDIDATE, _ROOM = _Place.NOWHERE, _Place.CANDIDATE, _Place.ROOM


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
        "multiplex",
        "notify",
        "plan",
        "preconnect",
        "queued",
        "sort_key",
    )

    def __init__(
        self,
        key: Hashable,
        *,
        priority: int = 0,
        fresh_only: bool = False,
        preconnect: bool = False,
        multiplex: bool = False,
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
        #: Its key offers HTTP/2 and it may share a connection: a stream of a
        #: multiplexed connection serves it (even when ``fresh_only``), and
        #: while the key's protocol is unknown it waits for the first
        #: connection's ALPN answer instead of opening another.
        self.multiplex = multiplex
        self.notify = notify
        #: Whether it is in the queue (its lane's heap holds it until it is served).
        self.queued = False
        #: The connection being made for this waiter, while it connects.
        self.connecting: ConnectionRecord | None = None
        self.conn: ConnectionRecord | None = None
        self.error: BaseException | None = None
        self.done = False

    def finish(
        self, conn: ConnectionRecord | None = None, error: BaseException | None = None
    ) -> None:
        """Serve (``conn``, or nothing for a preconnect) or fail it, and wake it."""
        self.connecting = None
        self.conn = conn
        self.error = error
        self.done = True
        self.notify()

    def __lt__(self, other: Waiter) -> bool:
        return self.sort_key < other.sort_key


class _Lane:
    """The waiters of one pool key and kind, a heap by ``sort_key``."""

    __slots__ = ("heap", "live", "token", "where")

    def __init__(self) -> None:
        self.heap: list[Waiter] = []
        self.live = 0  # waiters in ``heap`` still queued
        self.token = -1  # of the one heap entry that stands for this lane
        self.where = _NOWHERE

    def head(self) -> Waiter | None:
        """The first queued waiter, dropping cancelled ones above it."""
        heap = self.heap
        while heap and not heap[0].queued:
            heapq.heappop(heap)
        return heap[0] if heap else None


#: A heap entry: the head's sort key when pushed, a token, the lane.
_Entry = tuple[tuple[int, int], int, _Lane]


class WaiterQueue:
    """Waiting requests and preconnects, in lanes (see the module docstring)."""

    def __init__(self) -> None:
        self._lanes: dict[tuple[Hashable, bool], _Lane] = {}
        self._candidates: list[_Entry] = []
        self._room: list[_Entry] = []
        self._room_lanes = 0  # lanes whose place is _ROOM
        self._tokens = itertools.count()
        self._size = 0

    def __len__(self) -> int:
        """The number of queued waiters."""
        return self._size

    def push(self, waiter: Waiter) -> None:
        """Queue ``waiter``; its lane becomes a candidate."""
        lane = self._lanes.get((waiter.key, waiter.preconnect))
        if lane is None:
            lane = self._lanes[waiter.key, waiter.preconnect] = _Lane()
        heapq.heappush(lane.heap, waiter)
        lane.live += 1
        self._size += 1
        waiter.queued = True
        if lane.where is not _CANDIDATE:
            self._place(lane, _CANDIDATE, waiter.sort_key)

    def remove(self, waiter: Waiter) -> None:
        """Take a queued ``waiter`` out (it was cancelled); O(1) amortised."""
        if not waiter.queued:
            return
        waiter.queued = False
        self._size -= 1
        lane = self._lanes[waiter.key, waiter.preconnect]
        lane.live -= 1
        if not lane.live:
            self._place(lane, _NOWHERE, None)
            del self._lanes[waiter.key, waiter.preconnect]
        elif len(lane.heap) > 2 * lane.live + 16:
            lane.heap = [w for w in lane.heap if w.queued]
            heapq.heapify(lane.heap)

    def touch(self, key: Hashable) -> None:
        """Something changed for ``key``: its lanes' heads are to be looked at again."""
        for kind in (False, True):
            lane = self._lanes.get((key, kind))
            if lane is not None and lane.where is not _CANDIDATE:
                head = lane.head()
                assert head is not None  # a lane with no live waiter is deleted
                self._place(lane, _CANDIDATE, head.sort_key)

    def touch_all(self) -> None:
        """A limit changed: every lane is to be looked at again."""
        for key, _kind in list(self._lanes):
            self.touch(key)

    def best(self, room: bool) -> Waiter | None:
        """The first waiter to look at, or None: all are blocked (or none waits).

        ``room`` says whether a new connection would fit under ``max_conns``
        (closing an idle one if need be); only then are lanes waiting for
        room looked at. The waiter's lane is taken out of both heaps until
        :meth:`served` or :meth:`blocked` places it again.
        """
        while True:
            candidate = self._top(self._candidates)
            waiting = self._top(self._room) if room else None
            if candidate is None and waiting is None:
                return None
            if waiting is None or (candidate is not None and candidate[0] < waiting[0]):
                lane = heapq.heappop(self._candidates)[2]
            else:
                lane = heapq.heappop(self._room)[2]
            self._place(lane, _NOWHERE, None)
            head = lane.head()
            assert head is not None
            return head

    def served(self, waiter: Waiter) -> None:
        """``waiter`` (the head :meth:`best` gave) was served: dequeue it."""
        waiter.queued = False
        self._size -= 1
        lane = self._lanes[waiter.key, waiter.preconnect]
        first = heapq.heappop(lane.heap)
        assert first is waiter
        lane.live -= 1
        if not lane.live:
            self._place(lane, _NOWHERE, None)
            del self._lanes[waiter.key, waiter.preconnect]
            return
        head = lane.head()
        assert head is not None
        self._place(lane, _CANDIDATE, head.sort_key)

    def blocked(self, waiter: Waiter, *, room: bool) -> None:
        """``waiter`` can't be served: it waits for room (``room``) or for its host."""
        lane = self._lanes[waiter.key, waiter.preconnect]
        self._place(lane, _ROOM if room else _NOWHERE, waiter.sort_key)

    def drain(self) -> list[Waiter]:
        """Take every waiter out of the queue, in queue order."""
        waiters = sorted(w for lane in self._lanes.values() for w in lane.heap if w.queued)
        for waiter in waiters:
            waiter.queued = False
        self._lanes.clear()
        self._candidates.clear()
        self._room.clear()
        self._room_lanes = 0
        self._size = 0
        return waiters

    # -- internals ------------------------------------------------------------

    def _place(self, lane: _Lane, where: _Place, sort_key: tuple[int, int] | None) -> None:
        """Move ``lane`` to ``where``: a new entry in that heap, or none."""
        if lane.where is _ROOM:
            self._room_lanes -= 1
        lane.where = where
        lane.token = next(self._tokens)
        if where is _NOWHERE:
            return
        assert sort_key is not None
        if where is _CANDIDATE:
            heapq.heappush(self._candidates, (sort_key, lane.token, lane))
            return
        self._room_lanes += 1
        heapq.heappush(self._room, (sort_key, lane.token, lane))
        if len(self._room) > 2 * self._room_lanes + 16:
            # Lanes that moved on left entries behind: keep memory bounded.
            self._room = [e for e in self._room if e[1] == e[2].token]
            heapq.heapify(self._room)

    def _top(self, heap: list[_Entry]) -> _Entry | None:
        """The heap's first entry that still stands for its lane's head."""
        while heap:
            entry = heap[0]
            lane = entry[2]
            if entry[1] != lane.token:
                heapq.heappop(heap)  # the lane moved on since
                continue
            head = lane.head()
            assert head is not None  # an emptied lane got a new token
            if head.sort_key != entry[0]:  # its head was cancelled: re-sort it
                lane.token = next(self._tokens)
                heapq.heapreplace(heap, (head.sort_key, lane.token, lane))
                continue
            return entry
        return None
