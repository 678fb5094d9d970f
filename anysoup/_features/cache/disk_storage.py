"""DiskStorage: the cache kept in a directory, shared by sessions and processes.

Theory of operation
-------------------
The directory holds ``index.sqlite`` (``disk_index``), ``bodies/`` (a
file per body over 64 KiB, ``disk_body``) and a ``lock`` file held while
a process opens the directory (checks the index, removes leftovers).

**Storing.** :meth:`DiskStorage.begin` returns a writer that collects the
body in 1 MiB buffers and hands each full one to the store's *worker*, one
thread per open store that does the store's disk writes in order. The
caller never waits for the disk, unless a second buffer fills while the
first is still being written (then it waits for that one: one buffer of
backpressure). On commit the entry is *published* in this process's map of
pending entries, so that :meth:`~DiskStorage.lookup` and
:meth:`~DiskStorage.open_body` serve it at once (from the bytes written so
far and the buffers still in memory), and the worker finishes the job: it
writes what is left, syncs and renames the file into place, then inserts
the row (replacing the key's row with the same secondary key) and evicts,
in one transaction. Only then does the entry leave the pending map. A
killed process therefore leaves either no row or a complete entry.

**Finding.** A lookup is one query in a worker thread, which also brings
the small bodies stored inline, so a hit on a small entry costs one thread
hop in all; a larger body is opened in a second hop and read in 64 KiB
pieces. The pending entries of this process come first and hide the rows
they will replace.

**Use and eviction (LRU).** Lookups and reads record a use in memory; the
uses are written in batches with the next insert or flush (a hit doesn't
write). Eviction deletes the rows used longest ago until the *index's*
total (every process's entries) fits in :attr:`max_size`, at every insert
and flush; a lowered :attr:`max_size` takes effect then.

**Failures** (a locked or damaged index, a bad row, a body file missing
or of the wrong size) are logged on ``anysoup.cache`` and the entry is
treated as absent (and dropped): callers never see an error for them.
Blocking work runs in threads: reads in AnyIO's, writes in the worker.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread

from . import disk_rows as rows
from .disk_body import (
    BodyFile,
    body_name,
    clean_leftovers,
    delete_bodies,
    directory_lock,
    is_body_name,
    make_private_dir,
    write_segments,
)
from .disk_index import BUSY_TIMEOUT, INLINE_MAX, DiskIndex, IndexUnavailable, Row
from .disk_local import LocalState
from .disk_readers import FileReader
from .disk_writer import DiskWriter
from .entry_policy import StoredResponse
from .storage import DEFAULT_MAX_SIZE, BodyReader, BytesReader, CacheStorage, EntryWriter

__all__ = ["DiskStorage"]

_log = logging.getLogger("anysoup.cache")
_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True)
class Opened:
    """An open store: its index connections and its worker thread."""

    index: DiskIndex
    worker: concurrent.futures.ThreadPoolExecutor


class DiskStorage(CacheStorage):
    """The cache's entries in a directory, safe to share between sessions and processes.

    Args:
        directory: Where the cache lives; created (0700) if missing.
        max_size: The cap on the bytes of bodies held in the directory.
        busy_timeout: How long (s) an index statement waits for another
            process's lock before it is retried (then given up, logged).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_size: int = DEFAULT_MAX_SIZE,
        busy_timeout: float = BUSY_TIMEOUT,
    ) -> None:
        super().__init__(max_size=max_size)
        self._busy_timeout = busy_timeout
        self._dir = os.path.abspath(os.fspath(directory))
        self._bodies = os.path.join(self._dir, "bodies")
        self._opened: Opened | None = None
        self._open_lock = threading.Lock()
        self._local = LocalState()
        self._total = 0

    @property
    def directory(self) -> str:
        """The cache directory."""
        return self._dir

    # -- opening and closing -----------------------------------------------------------

    async def open(self) -> None:
        """Create the directory, open (or make, or repair) the index, remove leftovers.

        A locked index is logged and the store stays closed (it tries again
        on next use).

        Raises:
            OSError: The directory can't be created or used.
        """
        if self._opened is None:
            try:
                await anyio.to_thread.run_sync(self._open_sync)
            except IndexUnavailable as exc:
                _log.warning("cache %r not opened: %s", self._dir, exc)

    def _open_sync(self) -> None:
        with self._open_lock:
            if self._opened is not None:
                return
            make_private_dir(self._dir)
            make_private_dir(self._bodies)
            index = DiskIndex(
                os.path.join(self._dir, "index.sqlite"), busy_timeout=self._busy_timeout
            )
            try:
                with directory_lock(self._dir):
                    index.open()
                    clean_leftovers(self._bodies, index.file_names())
                    self._total = index.total()
            except BaseException:
                index.close()
                raise
            worker = concurrent.futures.ThreadPoolExecutor(1, "anysoup-cache-writer")
            self._opened = Opened(index, worker)

    async def ready(self) -> Opened | None:
        """The open store, opening it first; None (logged) when it can't be opened."""
        opened = self._opened
        if opened is None:
            try:
                await self.open()
            except OSError as exc:
                _log.warning("cache directory %r not usable: %s", self._dir, exc)
            opened = self._opened
        return opened

    @property
    def opened(self) -> Opened | None:
        """The open store, or None."""
        return self._opened

    async def aclose(self) -> None:
        """Write what is pending, then close the index; :meth:`open` may reopen."""
        opened = self._opened
        if opened is None:
            return
        try:
            await self.flush()
        finally:
            # Queued after every write of this store: the worker closes the
            # index when they are done, then ends (even if we are cancelled).
            if self._opened is opened:
                self._opened = None
            closing = opened.worker.submit(opened.index.close)
            opened.worker.shutdown(wait=False)
        await anyio.to_thread.run_sync(closing.result, abandon_on_cancel=True)

    # -- finding -------------------------------------------------------------------

    async def lookup(self, key: str) -> list[StoredResponse]:
        """Every stored variant for ``key``, newest first (pending ones first)."""
        opened = await self.ready()
        # The snapshot comes before the query: an entry inserted meanwhile is
        # found in one or the other (merge drops the duplicate), never in neither.
        pending = self._local.pending(key)
        stored: list[Row] = []
        bad: list[str] = []
        if opened is not None:
            found = opened.index.lookup_now(key)
            try:
                if found is None:
                    found = await anyio.to_thread.run_sync(opened.index.lookup, key)
                stored, bad = found
            except IndexUnavailable as exc:
                _log.warning("cache lookup of %r missed: %s", key, exc)
        return self._local.merge(pending, stored, bad, time.time())

    async def dictionaries(self) -> list[StoredResponse]:
        """Every stored dictionary entry, in this directory's index."""
        opened = await self.ready()
        if opened is None:
            return []
        try:
            return await anyio.to_thread.run_sync(opened.index.dictionaries)
        except IndexUnavailable as exc:
            _log.warning("cache: listing dictionaries failed: %s", exc)
            return []

    async def open_body(self, entry: StoredResponse) -> BodyReader | None:
        """A reader for ``entry``'s body, or None when it is gone or damaged (logged, dropped)."""
        self._local.use(entry.entry_id, time.time())
        pending = self._local.open_pending(entry.entry_id)
        if pending is not None:
            return pending
        inline = self._local.take_prefetched(entry.entry_id)
        if inline is not None and len(inline) == entry.body_size:
            return BytesReader(inline)
        opened = await self.ready()
        if opened is None:
            return None
        return await anyio.to_thread.run_sync(self._open_body_sync, opened, entry)

    def _open_body_sync(self, opened: Opened, entry: StoredResponse) -> BodyReader | None:
        try:
            found = opened.index.body_of(entry.entry_id)
        except IndexUnavailable as exc:
            _log.warning("cache body of %r missed: %s", entry.key, exc)
            return None
        if found is None:
            return None  # evicted or replaced since the lookup
        size, inline, name = found
        if inline is not None:
            if len(inline) == size:
                return BytesReader(inline)
            problem = f"its inline body holds {len(inline)} bytes, the row says {size}"
        elif name is not None and is_body_name(name):
            try:
                return FileReader.open(os.path.join(self._bodies, name), size)
            except OSError as exc:
                problem = f"its body file is not usable: {exc}"
        else:
            problem = f"its row names no body ({name!r})"
        _log.warning("cache entry for %r dropped: %s", entry.key, problem)
        self._remove_sync(opened, entry.key, entry.entry_id)
        return None

    # -- storing -------------------------------------------------------------------

    def begin(self, entry: StoredResponse) -> EntryWriter:
        """Start storing ``entry``; its body goes to disk while it is written."""
        return DiskWriter(self, BodyFile(self._bodies, entry))

    def publish(self, body: BodyFile, entry: StoredResponse) -> None:
        """Make a committed entry visible in this process (the writer's commit)."""
        body.committed_at = time.time()
        self._local.publish(body, entry)

    def remove_pending(self, body: BodyFile) -> None:
        """Take back a published entry that will not be finished."""
        self._local.drop_body(body)

    def finish(self, opened: Opened, body: BodyFile) -> None:
        """Put a committed body in place and insert its row (the worker thread's job)."""
        name: str | None = None
        inserted = False
        try:
            with self._local.lock:
                size, dropped = body.entry.body_size, body.dropped
            if dropped:
                return
            if body.fd is None and size <= INLINE_MAX:
                inline: bytes | None = body.in_memory()
            else:
                inline = None
                write_segments(body)
                if body.failed or body.dropped or body.fd is None:
                    return
                os.fsync(body.fd)
                name = body_name()
                os.replace(body.temp_path, os.path.join(self._bodies, name))
                body.temp_exists = False
            inserted = self._write_batch(opened, body, inline, name)
        except OSError as exc:
            _log.warning("cache entry for %r not stored: %s", body.entry.key, exc)
        except Exception:  # no one awaits this job: say so rather than lose it
            _log.exception("cache entry for %r not stored", body.entry.key)
        finally:
            self._local.unlist(body)
            if name is not None and not inserted:
                delete_bodies(self._bodies, [name])
            body.discard()

    def _write_batch(
        self,
        opened: Opened,
        body: BodyFile | None = None,
        inline: bytes | None = None,
        name: str | None = None,
    ) -> bool:
        """One transaction: ``body``'s row (if any), the batched uses and bad rows, eviction."""
        uses, bad = self._local.take_batch(body.entry.entry_id if body is not None else None)

        def step(db: sqlite3.Connection) -> tuple[list[str], int] | None:
            files = [f for entry_id in bad for f in rows.remove(db, None, entry_id)]
            if body is not None:
                # Under the lock, inside the transaction: a remove() either
                # came before (dropped) or waits for this commit to delete the row.
                with self._local.lock:
                    if body.dropped:
                        return None  # removed or replaced while it was being written
                    entry = body.entry
                # Its last use is its commit (or a read since, in ``uses``), not
                # now: LRU order is the order the caller stored and read things.
                files += rows.insert(db, entry, inline, name, body.committed_at)
            rows.touch(db, uses)
            evicted, total = rows.evict(db, self._max_size)
            return files + evicted, total

        try:
            done = opened.index.write(step)
        except IndexUnavailable as exc:
            what = f"entry for {body.entry.key!r}" if body is not None else repr(self._dir)
            _log.warning("cache %s not stored: %s", what, exc)
            return False
        if done is None:
            return False
        files, self._total = done
        delete_bodies(self._bodies, files)
        return True

    async def flush(self) -> None:
        """Return when every committed entry, batched use and eviction is on disk."""
        opened = self._opened
        if opened is None:
            return
        try:
            # The worker runs jobs in order: this one runs after every commit's.
            done = opened.worker.submit(self._write_batch, opened)
        except RuntimeError:
            return  # closed meanwhile: aclose waits for the worker
        await anyio.to_thread.run_sync(done.result, abandon_on_cancel=True)

    # -- changing and dropping ---------------------------------------------------------

    async def update(self, entry: StoredResponse) -> None:
        """Give the entry ``entry.entry_id`` new metadata (after a 304); its body stays."""
        now = time.time()
        self._local.update(entry)
        opened = await self.ready()
        if opened is not None:
            await anyio.to_thread.run_sync(self._write_sync, opened, rows.update, entry, now)

    async def remove(self, key: str, entry_id: str | None = None) -> None:
        """Drop one variant of ``key`` (``entry_id``), or all of them."""
        self._local.drop(key, entry_id)
        opened = await self.ready()
        if opened is not None:
            await anyio.to_thread.run_sync(self._remove_sync, opened, key, entry_id)

    async def clear(self) -> None:
        """Drop every entry (every process's)."""
        self._local.drop()
        opened = await self.ready()
        if opened is not None:
            await anyio.to_thread.run_sync(self._remove_sync, opened, None, None)

    def _remove_sync(self, opened: Opened, key: str | None, entry_id: str | None) -> None:
        delete_bodies(self._bodies, self._write_sync(opened, rows.remove, key, entry_id) or [])
        with contextlib.suppress(IndexUnavailable):
            self._total = opened.index.total()

    def _write_sync(self, opened: Opened, change: Callable[..., _T], *args: object) -> _T | None:
        try:
            return opened.index.write(lambda db: change(db, *args))
        except IndexUnavailable as exc:
            _log.warning("cache %r not changed: %s", self._dir, exc)
            return None

    # -- sizes -------------------------------------------------------------------------

    def total_size(self) -> int:
        """The bytes of bodies in the index, as of this process's last write or flush."""
        return self._total

    async def load(self) -> None:
        """Re-read the index's total (entries are always read from the index)."""
        opened = await self.ready()
        self._local.forget_prefetched()
        if opened is not None:
            try:
                self._total = await anyio.to_thread.run_sync(opened.index.total)
            except IndexUnavailable as exc:
                _log.warning("cache %r not loaded: %s", self._dir, exc)

    def __repr__(self) -> str:
        state = "open" if self._opened is not None else "closed"
        return (
            f"<DiskStorage {self._dir!r} {state} total_size={self._total} "
            f"max_size={self._max_size} pending={len(self._local)}>"
        )
