"""The cache's body sources: the tee that stores a body as it is read, and a stored body.

Theory of operation
-------------------
Both are :class:`~anysoup._model.body.BodySource` objects, the kind an
:class:`~anysoup.InputStream` reads from, so every stage above the cache's
network stage (the logger, cookies, auth, the decoder, the sniffer) handles a
cached answer exactly as a network one.

:class:`Tee` sits directly on the network's source, below any decoding, so
the bytes it stores are the ones the server sent (still content-encoded). It
hands each piece to the storage's writer as the reader pulls it: the reader
never waits for the whole body, and waits for the disk only when more than
one buffer is behind (the writer's rule). The entry is committed when the
body ends; a body closed early, a failed read, or a body over the entry cap
leaves nothing stored. A failure of the storage never reaches the reader: it
is logged, and the body goes on uncached.

:class:`StoredBody` serves an entry: pieces come from the storage's reader;
``got_body_data`` fires per piece, ``got_body`` and ``finished`` when the
stream closes after its end (as for a network body), ``finished`` alone when
it is closed early.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import anyio

from ..._model.body import DRAIN_LIMIT
from ..._model.signals import active

if TYPE_CHECKING:
    from ..._model.body import BodySource
    from ..._model.message import Message
    from .entry_policy import StoredResponse
    from .storage import BodyReader, EntryWriter

__all__ = ["StoredBody", "Tee", "emit", "empty_body"]

_log = logging.getLogger("anysoup.cache")
#: How long closing a teed body may spend draining it through the tee.
DRAIN_SECONDS = 0.5


async def emit(msg: Message, name: str, *args: object) -> None:
    """Emit signal ``name`` of ``msg`` if it has handlers (as the core's ``emit``)."""
    signal = active(msg, name)
    if signal is not None:
        await signal.emit(*args)


class Tee:
    """A network body that is also written to the cache as it is read."""

    __slots__ = ("_entry", "_on_commit", "_size", "_source", "_writer")

    def __init__(
        self,
        source: BodySource,
        writer: EntryWriter,
        entry: StoredResponse,
        on_commit: Callable[[StoredResponse], None] | None = None,
    ) -> None:
        self._source = source
        self._writer: EntryWriter | None = writer
        self._entry = entry
        self._on_commit = on_commit
        self._size = 0

    async def receive_chunk(self) -> bytes | None:
        try:
            chunk = await self._source.receive_chunk()
        except BaseException:
            self._abort()
            raise
        writer = self._writer
        if writer is None:
            return chunk
        try:
            if chunk is None:
                self._writer = None
                entry = replace(self._entry, body_size=self._size)
                await writer.commit(entry)
                if self._on_commit is not None:
                    self._on_commit(entry)
            else:
                self._size += len(chunk)
                if not await writer.write(chunk):
                    self._writer = None  # over the entry cap: the writer gave up
        except anyio.get_cancelled_exc_class():
            self._abort(writer)
            raise
        except Exception as exc:  # the disk failed: the reader goes on, uncached
            self._abort(writer)
            _log.warning("cache: not storing %s: %s", self._entry.key, exc)
        return chunk

    def _abort(self, writer: EntryWriter | None = None) -> None:
        writer = writer if writer is not None else self._writer
        self._writer = None
        if writer is not None:
            writer.abort()

    async def close(self, *, drain: bool) -> None:
        rest = drain
        try:
            if drain and self._writer is not None:
                rest = False  # a failed or cancelled drain: the connection goes
                rest = await self._drain()
        finally:
            self._abort()  # closed before its end: a partial body is never stored
            await self._source.close(drain=rest)

    async def _drain(self) -> bool:
        """Read a small rest through the tee (a redirect's unread body); whether some is left.

        A closing reader would drain it anyway; through the tee, a body that
        ends there is kept.
        """
        drained = 0
        with anyio.move_on_after(DRAIN_SECONDS):
            while drained <= DRAIN_LIMIT and self._writer is not None:
                chunk = await self.receive_chunk()
                if chunk is None:
                    return False
                drained += len(chunk)
        return True

    def discard(self) -> None:
        self._abort()
        self._source.discard()


class StoredBody:
    """The body of an answer served from the cache."""

    __slots__ = ("_ended", "_msg", "_reader", "_received")

    def __init__(self, msg: Message, reader: BodyReader | None) -> None:
        self._msg = msg
        self._reader = reader
        self._received = 0
        self._ended = False

    async def receive_chunk(self) -> bytes | None:
        reader = self._reader
        if reader is None:
            if self._ended:
                raise anyio.ClosedResourceError
            self._end()
            return None
        chunk = await reader.read_chunk()
        if chunk is None:
            self._reader = None
            await reader.aclose()
            self._end()
            return None
        self._received += len(chunk)
        signal = active(self._msg, "got_body_data")
        if signal is not None:
            await signal.emit(chunk)
        return chunk

    def _end(self) -> None:
        self._ended = True
        metrics = self._msg.metrics
        if metrics is not None:
            metrics.response_end = time.monotonic()
            metrics.response_body_size = self._received

    async def close(self, *, drain: bool) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader.aclose()
        msg = self._msg
        if self._ended:
            await emit(msg, "got_body")
        await emit(msg, "finished")

    def discard(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            # Garbage collection: nothing may be awaited. The reader holds at
            # most an open file, which its own finaliser closes.
            pass


def empty_body(msg: Message) -> StoredBody:
    """The body of an answer with no stored bytes (HEAD, a made-up 504)."""
    return StoredBody(msg, None)
