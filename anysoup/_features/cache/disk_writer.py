"""The disk store's entry writer: the tee's end, buffering at most one buffer ahead of the disk.

Theory of operation
-------------------
A :class:`DiskWriter` collects the body the caller reads into a buffer;
when it holds :data:`~.disk_body.BUFFER_SIZE` bytes it becomes a segment of
the :class:`~.disk_body.BodyFile` and a job for the store's worker thread,
which writes it to the temporary file. The caller goes on at once. Only if
the next buffer fills while the previous segment is still not written does
:meth:`DiskWriter.write` wait (in a worker thread, so the event loop runs)
for that segment: at most about two buffers are ever held per entry, and
the caller is slowed to the disk's pace only when the disk falls more than
a buffer behind.

Counting starts at the first byte: past the store's ``max_entry_size`` the
entry is aborted, the buffer dropped and ``write`` returns False.

:meth:`~DiskWriter.commit` hands the last buffer over, publishes the entry
(visible in this process at once) and queues the store's ``finish`` job,
without waiting for it. :meth:`~DiskWriter.abort` (also run when a writer
is garbage-collected unfinished) marks the body dropped and queues its
removal after the jobs already queued, so the file descriptor is never
closed under a write.

A writer belongs to the open store it first wrote to: if the store was
closed (and perhaps reopened) meanwhile, the entry is dropped rather than
finished by another worker thread.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import enum
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio.to_thread

from .disk_body import BUFFER_SIZE, BodyFile, write_segments
from .entry_policy import StoredResponse
from .storage import EntryWriter

if TYPE_CHECKING:
    from .disk_storage import DiskStorage, Opened

__all__ = ["DiskWriter"]


class _State(enum.Enum):
    #: Taking bytes.
    WRITING = "writing"
    #: Handed to the store (visible, being finished).
    COMMITTED = "committed"
    #: Dropped: over the cap, failed, closed early.
    ABORTED = "aborted"


class DiskWriter(EntryWriter):
    """Streams one entry's body to a :class:`~.disk_storage.DiskStorage`.

    Args:
        storage: The store.
        body: The body record the store's worker writes.
    """

    def __init__(self, storage: DiskStorage, body: BodyFile) -> None:
        self._storage = storage
        self._body = body
        self._buffer = bytearray()
        self._size = 0
        self._state = _State.WRITING
        self._opened: Opened | None = None
        #: The last job queued for this body.
        self._last: concurrent.futures.Future[None] | None = None

    async def _pin(self) -> Opened | None:
        """The open store this writer uses (opening it the first time), None if gone."""
        if self._opened is None:
            self._opened = await self._storage.ready()
            return self._opened
        return self._opened if self._storage.opened is self._opened else None

    async def write(self, chunk: bytes) -> bool:
        """Add ``chunk``; False (entry dropped) once over the cap or when the store failed."""
        if self._state is not _State.WRITING:
            return False
        if await self._pin() is None or self._body.failed or self._state is not _State.WRITING:
            self.abort()
            return False
        self._size += len(chunk)
        if self._size > self._storage.max_entry_size:
            self.abort()
            return False
        self._buffer += chunk
        if len(self._buffer) < BUFFER_SIZE:
            return True
        last = self._last
        if last is not None and not last.done():
            # Backpressure: the previous buffer is still waiting for the disk.
            await anyio.to_thread.run_sync(last.result, abandon_on_cancel=True)
            if self._state is not _State.WRITING or self._body.failed:
                self.abort()
                return False
        # The buffer itself becomes the segment (no copy); a new one fills.
        self._body.add_segment(self._buffer)
        self._buffer = bytearray()
        return self._submit(write_segments, self._body)

    def _submit(self, job: Callable[..., None], *args: object) -> bool:
        opened = self._opened
        if opened is None:
            return False
        try:
            self._last = opened.worker.submit(job, *args)
        except RuntimeError:  # the store was closed
            self.abort()
            return False
        return True

    async def commit(self, entry: StoredResponse) -> None:
        """Store the entry: visible here at once, on disk when the worker is done."""
        if self._state is not _State.WRITING:
            return
        opened = await self._pin()
        if opened is None or self._body.failed or self._state is not _State.WRITING:
            self.abort()
            return
        if self._buffer:
            self._body.add_segment(self._buffer)
            self._buffer = bytearray()
        self._storage.publish(self._body, dataclasses.replace(entry, body_size=self._size))
        self._state = _State.COMMITTED
        if not self._submit(self._storage.finish, opened, self._body):
            # The store closed between the two lines above: take it back.
            self._state = _State.WRITING
            self._storage.remove_pending(self._body)
            self.abort()

    def abort(self) -> None:
        """Store nothing; the temporary file is removed by the worker (after its queued jobs)."""
        if self._state is not _State.WRITING:
            return
        self._state = _State.ABORTED
        self._buffer = bytearray()
        body = self._body
        body.dropped = True
        opened, last = self._opened, self._last
        if opened is not None:
            try:
                opened.worker.submit(body.discard)
            except RuntimeError:
                pass  # closed: clean up after the last job instead
            else:
                return
        if last is not None:
            last.add_done_callback(lambda _: body.discard())
        else:
            body.discard()  # no job ever ran: there is no file, only the count to drop

    def __del__(self) -> None:
        if getattr(self, "_state", None) is _State.WRITING:
            self.abort()
