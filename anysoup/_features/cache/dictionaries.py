"""The cache's compression dictionaries (RFC 9842): which stored answer to offer.

Theory of operation
-------------------
A response with a valid ``Use-As-Dictionary`` is stored like any other, with
its ``match`` pattern in ``StoredResponse.dictionary_match``. Before the
decoder offers its codings, the cache's outer stage asks :class:`Shelf` for
the dictionary of the request: among the stored dictionaries that are fresh
(RFC 9842 §2.2.1: a dictionary is usable while its response is), the one
whose pattern matches the request URL (same origin only) with the longest
``match`` wins, then the most recent (§2.2.3). It goes on the message as a
:class:`~anysoup.CompressionDictionary`; the :class:`~anysoup.ContentDecoder`
then sends ``Available-Dictionary`` and accepts ``dcb``/``dcz`` (when it can
decode them) and decodes the answer with it.

The list of dictionary entries is read from the storage once, then kept up
to date by this process (entries it stores or drops) and read again every
:data:`REFRESH` seconds for other processes' changes: the common request,
for which no dictionary matches, costs no storage call. The bytes of the
last few dictionaries used are kept, decoded (a dictionary is its
response's *content*: a stored gzip body is inflated first).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..._model.compression_dictionary import CompressionDictionary
from ..decoder.codings_policy import decoder_for
from ..decoder.dictionary_codings_policy import decodable_codings
from . import freshness_policy as freshness
from .dictionary_policy import choose_dictionary, secure_context

if TYPE_CHECKING:
    from ..._model.message import Message
    from .entry_policy import StoredResponse
    from .storage import CacheStorage

__all__ = ["DICTIONARY_ID", "REFRESH", "Shelf"]

_log = logging.getLogger("anysoup.cache")

#: Seconds between two readings of the storage's list of dictionaries.
REFRESH = 30.0
#: How many dictionaries' bytes are kept in memory.
KEPT = 4
#: The name under which an entry's ``extra`` holds the dictionary's ``id``.
DICTIONARY_ID = "dictionary-id"


class Shelf:
    """The stored dictionaries of one cache, and the bytes of those last used."""

    def __init__(self, storage: CacheStorage, clock: Callable[[], float], *, shared: bool) -> None:
        self._storage = storage
        self._clock = clock
        self._shared = shared
        self._entries: list[StoredResponse] | None = None
        self._read_at = 0.0
        self._kept: OrderedDict[str, CompressionDictionary] = OrderedDict()

    def is_ours(self, dictionary: CompressionDictionary | None) -> bool:
        """Whether ``dictionary`` came from this shelf (a later hop chooses again)."""
        return dictionary is not None and any(d is dictionary for d in self._kept.values())

    def stored(self, entry: StoredResponse) -> None:
        """``entry`` was committed: offer it from now on (it replaces its own variant)."""
        if self._entries is None or not entry.dictionary_match:
            return
        self._entries = [
            e for e in self._entries if not (e.key == entry.key and e.vary == entry.vary)
        ]
        self._entries.insert(0, entry)

    def forget(self, key: str | None = None) -> None:
        """Entries of ``key`` (or all) were removed."""
        if key is None:
            self._entries = None
            self._kept.clear()
        elif self._entries is not None:
            self._entries = [e for e in self._entries if e.key != key]

    async def choose(self, msg: Message) -> CompressionDictionary | None:
        """The stored dictionary to offer for ``msg``, or None."""
        entries = await self._list()
        if not entries or not decodable_codings() or not secure_context(msg.uri):
            return None
        now = self._clock()
        usable = [
            (entry.dictionary_match or "", entry.key, entry.response_time, entry)
            for entry in entries
            if freshness.current_age(entry, now)
            < freshness.freshness_lifetime(entry, shared=self._shared)
        ]
        entry = choose_dictionary(usable, str(msg.uri))
        return None if entry is None else await self._load(entry)

    async def _list(self) -> list[StoredResponse]:
        now = time.monotonic()
        if self._entries is None or now - self._read_at > REFRESH:
            self._read_at = now
            try:
                self._entries = await self._storage.dictionaries()
            except Exception as exc:
                _log.warning("cache: listing dictionaries failed: %s", exc)
                self._entries = []
        return self._entries

    async def _load(self, entry: StoredResponse) -> CompressionDictionary | None:
        kept = self._kept.get(entry.entry_id)
        if kept is not None:
            self._kept.move_to_end(entry.entry_id)
            return kept
        reader = await self._storage.open_body(entry)
        if reader is None:
            self.forget(entry.key)
            return None
        pieces = []
        try:
            while (piece := await reader.read_chunk()) is not None:
                pieces.append(piece)
        finally:
            await reader.aclose()
        data = _content(b"".join(pieces), entry)
        if data is None:
            return None
        ident = dict(entry.extra).get(DICTIONARY_ID)
        dictionary = CompressionDictionary(data, id=ident, url=entry.key)
        self._kept[entry.entry_id] = dictionary
        while len(self._kept) > KEPT:
            self._kept.popitem(last=False)
        return dictionary


def _content(body: bytes, entry: StoredResponse) -> bytes | None:
    """The stored body with its content codings undone; None if one can't be."""
    listed = [value for name, value in entry.headers if name.lower() == "content-encoding"]
    codings = [c.strip().lower() for value in listed for c in value.split(",")]
    for coding in reversed([c for c in codings if c and c != "identity"]):
        maker = decoder_for(coding)
        if maker is None or isinstance(maker, str):
            _log.info("cache: dictionary %s is %r-encoded: not used", entry.key, coding)
            return None
        decoder = maker()
        try:
            out = [decoder.decode(body)]
            while decoder.pending:
                out.append(decoder.decode(b""))
            decoder.finish()
        except Exception as exc:
            _log.warning("cache: dictionary %s does not decode: %s", entry.key, exc)
            return None
        body = b"".join(out)
    return body
