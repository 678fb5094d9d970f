"""Where the cache keeps its entries: the storage interface, and the in-memory store.

Theory of operation
-------------------
The cache feature speaks to one :class:`CacheStorage`; the rules (RFC 9111)
live elsewhere, and a store only keeps entries and hands them back. An
entry is a :class:`~.entry_policy.StoredResponse` (the metadata) plus a
body of still content-encoded bytes. Several entries may share a primary
key (the URI): one per *secondary key* (``vary``, RFC 9111 §4.1), and a new
entry replaces an older one with the same secondary key.

Storing is streamed: :meth:`CacheStorage.begin` returns an
:class:`EntryWriter` that the feature feeds while its caller reads the
response (the tee). Nothing is visible until :meth:`EntryWriter.commit`;
:meth:`EntryWriter.abort` (an error, a body closed early) leaves no trace.
A writer refuses more than :attr:`CacheStorage.max_entry_size` bytes
(10 % of :attr:`~CacheStorage.max_size`): ``write`` then returns False,
the entry is dropped and nothing more is buffered.

Bodies are read back through a :class:`BodyReader` in pieces of at most
:data:`READ_SIZE` bytes, so a large cached body streams with flat memory.

Eviction is *least recently used*: storing and reading an entry (and every
entry a lookup returns) counts as a use, and when the bodies held pass
:attr:`~CacheStorage.max_size` the entries used longest ago go first. The
size counted is the body's; the metadata is small and not counted.

:class:`MemoryStorage` keeps everything in this process: bodies as
``bytes`` in an ordered map whose order is the LRU order. It does no I/O
and needs no ``open``. The disk store is ``disk_storage.DiskStorage``.
"""

from __future__ import annotations

import abc
import dataclasses
from collections import OrderedDict

from .entry_policy import StoredResponse

__all__ = [
    "DEFAULT_MAX_SIZE",
    "READ_SIZE",
    "BodyReader",
    "BytesReader",
    "CacheStorage",
    "EntryWriter",
    "MemoryStorage",
]

#: The default cap on the bodies a store holds (50 MiB, as libsoup's callers use).
DEFAULT_MAX_SIZE = 50 * 1024 * 1024
#: The largest piece a :class:`BodyReader` returns.
READ_SIZE = 64 * 1024


class BodyReader(abc.ABC):
    """A stored body, read in pieces of at most :data:`READ_SIZE` bytes."""

    @abc.abstractmethod
    async def read_chunk(self) -> bytes | None:
        """The next piece of the body (never empty), or None at its end."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release what the reader holds (a file); reading ends."""


class BytesReader(BodyReader):
    """A body held in memory, served in pieces without copying small ones."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    async def read_chunk(self) -> bytes | None:
        """The next piece of the body, or None at its end."""
        data, pos = self._data, self._pos
        if pos >= len(data):
            return None
        if pos == 0 and len(data) <= READ_SIZE:
            self._pos = len(data)
            return data  # the common small body: no copy
        end = min(pos + READ_SIZE, len(data))
        self._pos = end
        return data[pos:end]

    async def aclose(self) -> None:
        """Stop reading."""
        self._pos = len(self._data)


class EntryWriter(abc.ABC):
    """Collects one entry's body while the response is read, then stores it (or not)."""

    @abc.abstractmethod
    async def write(self, chunk: bytes) -> bool:
        """Add the next piece of the body.

        Returns:
            False once the entry went over the store's
            :attr:`~CacheStorage.max_entry_size` (or the store failed): the
            entry is then aborted and the caller should stop feeding it.
        """

    @abc.abstractmethod
    async def commit(self, entry: StoredResponse) -> None:
        """The body is complete: store the entry, described by ``entry``.

        ``entry.body_size`` is set by the writer from the bytes it got. The
        entry is visible to :meth:`CacheStorage.lookup` at once; it replaces
        the key's entry with the same secondary key. A writer that was
        aborted (over the cap) stores nothing.
        """

    @abc.abstractmethod
    def abort(self) -> None:
        """Store nothing and drop what was collected (safe to call at any time, twice)."""


class CacheStorage(abc.ABC):
    """The interface the cache feature uses: keep, find, read and drop entries.

    Args:
        max_size: The cap on the bytes of bodies held.
    """

    def __init__(self, *, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self._max_size = _check_size(max_size)

    @property
    def max_size(self) -> int:
        """The cap on the bytes of bodies held; lowering it evicts (LRU)."""
        return self._max_size

    @max_size.setter
    def max_size(self, value: int) -> None:
        self._max_size = _check_size(value)
        self._max_size_changed()

    @property
    def max_entry_size(self) -> int:
        """The largest body stored: a tenth of :attr:`max_size`."""
        return self._max_size // 10

    def _max_size_changed(self) -> None:  # noqa: B027 - a hook, empty by default
        """Called after :attr:`max_size` changed."""

    async def open(self) -> None:  # noqa: B027 - a hook, empty by default
        """Make the store ready (idempotent); other methods open it on first use."""

    @abc.abstractmethod
    async def lookup(self, key: str) -> list[StoredResponse]:
        """Every stored variant for the primary ``key``, newest first."""

    async def dictionaries(self) -> list[StoredResponse]:
        """Every stored entry that is a compression dictionary (RFC 9842), any key.

        Few entries are: the cache reads this list once and keeps it up to
        date itself. The default finds none.
        """
        return []

    @abc.abstractmethod
    async def open_body(self, entry: StoredResponse) -> BodyReader | None:
        """A reader for ``entry``'s body; None when it is gone (the entry is then dropped)."""

    @abc.abstractmethod
    def begin(self, entry: StoredResponse) -> EntryWriter:
        """Start storing ``entry`` (its ``body_size`` is not known yet)."""

    @abc.abstractmethod
    async def update(self, entry: StoredResponse) -> None:
        """Replace the metadata of the stored entry with ``entry.entry_id`` (after a 304)."""

    @abc.abstractmethod
    async def remove(self, key: str, entry_id: str | None = None) -> None:
        """Drop one variant of ``key``, or all of them."""

    @abc.abstractmethod
    async def clear(self) -> None:
        """Drop every entry."""

    async def flush(self) -> None:  # noqa: B027 - a hook, empty by default
        """Return when every committed entry and pending change is stored."""

    async def aclose(self) -> None:
        """Flush, then release files; :meth:`open` may open the store again."""
        await self.flush()

    @abc.abstractmethod
    def total_size(self) -> int:
        """The bytes of bodies held (as of the last write for a shared store)."""

    async def load(self) -> None:  # noqa: B027 - a hook, empty by default
        """Re-read the store's state (libsoup's ``soup_cache_load``)."""

    async def dump(self) -> None:
        """Write what is pending (libsoup's ``soup_cache_dump``): :meth:`flush`."""
        await self.flush()


def _check_size(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"max_size must be a non-negative int, not {value!r}")
    return value


# -- in memory ----------------------------------------------------------------------


class _MemoryWriter(EntryWriter):
    __slots__ = ("_chunks", "_done", "_size", "_storage")

    def __init__(self, storage: MemoryStorage) -> None:
        self._storage = storage
        self._chunks: list[bytes] = []
        self._size = 0
        self._done = False

    async def write(self, chunk: bytes) -> bool:
        if self._done:
            return False
        self._size += len(chunk)
        if self._size > self._storage.max_entry_size:
            self.abort()
            return False
        if chunk:
            self._chunks.append(bytes(chunk))
        return True

    async def commit(self, entry: StoredResponse) -> None:
        if self._done:
            return
        self._done = True
        body = b"".join(self._chunks)
        self._chunks = []
        self._storage._store(dataclasses.replace(entry, body_size=len(body)), body)

    def abort(self) -> None:
        self._done = True
        self._chunks = []


class MemoryStorage(CacheStorage):
    """Entries kept in this process, bodies as ``bytes``, evicted LRU by total body size.

    Args:
        max_size: The cap on the bytes of bodies held.
    """

    def __init__(self, *, max_size: int = DEFAULT_MAX_SIZE) -> None:
        super().__init__(max_size=max_size)
        #: entry_id -> (entry, body), least recently used first.
        self._entries: OrderedDict[str, tuple[StoredResponse, bytes]] = OrderedDict()
        #: key -> entry_ids, oldest stored first.
        self._by_key: dict[str, list[str]] = {}
        self._total = 0

    async def lookup(self, key: str) -> list[StoredResponse]:
        """Every stored variant for ``key``, newest first (each counts as used)."""
        ids = self._by_key.get(key)
        if not ids:
            return []
        found = []
        for entry_id in reversed(ids):
            self._entries.move_to_end(entry_id)
            found.append(self._entries[entry_id][0])
        return found

    async def dictionaries(self) -> list[StoredResponse]:
        """Every stored dictionary entry."""
        return [entry for entry, _ in self._entries.values() if entry.dictionary_match]

    async def open_body(self, entry: StoredResponse) -> BodyReader | None:
        """A reader over the body kept for ``entry``, or None if it is gone."""
        held = self._entries.get(entry.entry_id)
        if held is None:
            return None
        self._entries.move_to_end(entry.entry_id)
        return BytesReader(held[1])

    def begin(self, entry: StoredResponse) -> EntryWriter:
        """Start storing ``entry``."""
        return _MemoryWriter(self)

    def _store(self, entry: StoredResponse, body: bytes) -> None:
        ids = self._by_key.get(entry.key, [])
        for old in [i for i in ids if self._entries[i][0].vary == entry.vary]:
            self._drop(old)
        self._drop(entry.entry_id)
        self._entries[entry.entry_id] = (entry, body)
        self._by_key.setdefault(entry.key, []).append(entry.entry_id)
        self._total += len(body)
        self._evict()

    async def update(self, entry: StoredResponse) -> None:
        """Give the stored entry ``entry.entry_id`` new metadata; its body stays."""
        held = self._entries.get(entry.entry_id)
        if held is not None and held[0].key == entry.key:
            body = held[1]
            self._entries[entry.entry_id] = (
                dataclasses.replace(entry, body_size=len(body)),
                body,
            )
            self._entries.move_to_end(entry.entry_id)

    async def remove(self, key: str, entry_id: str | None = None) -> None:
        """Drop one variant of ``key``, or all of them."""
        for i in list(self._by_key.get(key, ())):
            if entry_id is None or i == entry_id:
                self._drop(i)

    async def clear(self) -> None:
        """Drop every entry."""
        self._entries.clear()
        self._by_key.clear()
        self._total = 0

    def total_size(self) -> int:
        """The bytes of bodies held."""
        return self._total

    def _max_size_changed(self) -> None:
        self._evict()

    def _drop(self, entry_id: str) -> None:
        held = self._entries.pop(entry_id, None)
        if held is None:
            return
        entry, body = held
        self._total -= len(body)
        ids = self._by_key[entry.key]
        ids.remove(entry_id)
        if not ids:
            del self._by_key[entry.key]

    def _evict(self) -> None:
        while self._total > self._max_size and self._entries:
            self._drop(next(iter(self._entries)))

    def __repr__(self) -> str:
        return (
            f"<MemoryStorage entries={len(self._entries)} total_size={self._total} "
            f"max_size={self._max_size}>"
        )
