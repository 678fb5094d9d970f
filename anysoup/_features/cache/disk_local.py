"""What a disk store keeps in this process: entries not yet in the index, batched uses.

Theory of operation
-------------------
The index is the truth shared by every process; this is what one process
knows ahead of it, shared between the event loop and the store's worker
thread under one lock (held only for dictionary work, never across I/O):

* *pending* entries: committed, visible here at once, not yet inserted.
  A lookup lists them first and hides the rows they will replace (same
  entry id, or same secondary key). An entry leaves the map when its row
  is inserted, or is *dropped* (removed, replaced by a newer pending entry,
  cleared): the worker checks the flag inside the insert's transaction,
  under this lock, so a removal never loses to an insert already under way;
* *uses* (entry id -> time) and *bad* rows, written by the next transaction;
* *prefetched* inline bodies: a lookup reads the small bodies with the rows,
  and :meth:`take_prefetched` hands one to ``open_body`` without a query
  (a few dozen, newest kept).
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict

from .disk_body import BodyFile
from .disk_index import Row
from .disk_readers import PendingReader
from .entry_policy import StoredResponse

__all__ = ["LocalState"]

#: Inline bodies a lookup brought and ``open_body`` may take without a query.
_PREFETCH_MAX = 64


class LocalState:
    """The pending entries, batched uses and prefetched bodies of one disk store."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: Committed entries not yet in the index: by key (oldest first), by id.
        self._pending: dict[str, list[BodyFile]] = {}
        self._pending_ids: dict[str, BodyFile] = {}
        self._uses: dict[str, float] = {}
        self._bad: set[str] = set()
        self._prefetched: OrderedDict[str, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending_ids)

    # -- pending entries -------------------------------------------------------------

    def publish(self, body: BodyFile, entry: StoredResponse) -> None:
        """Make a committed entry visible; it replaces pending ones with its secondary key."""
        with self.lock:
            body.entry = entry
            self._drop([b for b in self._pending.get(entry.key, ()) if b.entry.vary == entry.vary])
            self._pending.setdefault(entry.key, []).append(body)
            self._pending_ids[entry.entry_id] = body

    def pending(self, key: str) -> list[BodyFile]:
        """The key's pending bodies, oldest first (a snapshot)."""
        with self.lock:
            return list(self._pending.get(key, ()))

    def open_pending(self, entry_id: str) -> PendingReader | None:
        """A reader of the pending entry ``entry_id``'s body, if it is pending.

        The reader takes its hold on the file under the lock, while the
        entry is listed: the worker lets go of the file only after unlisting
        it, so the file can't close between the two.
        """
        with self.lock:
            body = self._pending_ids.get(entry_id)
            return None if body is None else PendingReader(body, body.entry.body_size)

    def update(self, entry: StoredResponse) -> None:
        """New metadata for a pending entry (read by the insert when it comes)."""
        with self.lock:
            body = self._pending_ids.get(entry.entry_id)
            if body is not None:
                body.entry = dataclasses.replace(entry, body_size=body.entry.body_size)

    def drop(self, key: str | None = None, entry_id: str | None = None) -> None:
        """Drop one pending entry of ``key``, all of its, or (no key) all of them."""
        with self.lock:
            if key is None:
                self._drop(list(self._pending_ids.values()))
                self._uses.clear()
            else:
                self._drop(
                    [
                        b
                        for b in self._pending.get(key, ())
                        if entry_id is None or b.entry.entry_id == entry_id
                    ]
                )
            self._prefetched.clear()

    def drop_body(self, body: BodyFile) -> None:
        """Take back one published entry that will not be finished."""
        with self.lock:
            self._drop([body])

    def unlist(self, body: BodyFile) -> None:
        """The entry is in the index now (or failed): lookups read it from there."""
        with self.lock:
            self._unlist(body)

    def _drop(self, bodies: list[BodyFile]) -> None:
        for body in bodies:
            body.dropped = True
            self._unlist(body)

    def _unlist(self, body: BodyFile) -> None:
        entry = body.entry
        if self._pending_ids.get(entry.entry_id) is body:
            del self._pending_ids[entry.entry_id]
        listed = self._pending.get(entry.key)
        if listed is not None and body in listed:
            listed.remove(body)
            if not listed:
                del self._pending[entry.key]

    # -- lookups ---------------------------------------------------------------------

    def merge(
        self, pending: list[BodyFile], stored: list[Row], bad: list[str], now: float
    ) -> list[StoredResponse]:
        """A lookup's answer: the pending entries, then the rows they don't replace.

        Every entry returned counts as used at ``now``; the rows' inline
        bodies are kept for :meth:`take_prefetched`.
        """
        found = [body.entry for body in reversed(pending)]
        ids = {e.entry_id for e in found}
        varies = {e.vary for e in found}
        with self.lock:
            self._bad.update(bad)
            for entry, inline in stored:
                if entry.entry_id in ids or entry.vary in varies:
                    continue  # being replaced by a pending entry
                found.append(entry)
                if inline is not None:
                    self._prefetch(entry.entry_id, inline)
            for entry in found:
                self._uses[entry.entry_id] = now
        return found

    def _prefetch(self, entry_id: str, body: bytes) -> None:
        prefetched = self._prefetched
        prefetched[entry_id] = body
        prefetched.move_to_end(entry_id)
        if len(prefetched) > _PREFETCH_MAX:
            prefetched.popitem(last=False)

    def take_prefetched(self, entry_id: str) -> bytes | None:
        """The inline body a lookup brought for ``entry_id`` (taken once)."""
        with self.lock:
            return self._prefetched.pop(entry_id, None)

    def forget_prefetched(self) -> None:
        """Drop the prefetched bodies (the index is to be read again)."""
        with self.lock:
            self._prefetched.clear()

    # -- batched writes ----------------------------------------------------------------

    def use(self, entry_id: str, now: float) -> None:
        """Record a use of ``entry_id`` (written with the next transaction)."""
        with self.lock:
            self._uses[entry_id] = now

    def take_batch(self, inserting: str | None = None) -> tuple[dict[str, float], set[str]]:
        """The uses and bad rows to write now (the caller's transaction owns them).

        The uses of pending entries stay for a later batch (they have no row
        yet), except the one of the entry ``inserting`` in the same transaction.
        """
        with self.lock:
            pending = self._pending_ids
            uses = {i: t for i, t in self._uses.items() if i == inserting or i not in pending}
            self._uses = {i: t for i, t in self._uses.items() if i not in uses}
            bad, self._bad = self._bad, set()
        return uses, bad
