"""Cache: libsoup's ``SoupCache``, done to RFC 9111 (and RFC 5861's stale extensions).

Theory of operation
-------------------
The feature has two stages in the chain. Its place among the features
(``POSITION_CACHE``, between HSTS and the sniffer) picks a stored compression
dictionary for the request (RFC 9842) before the decoder offers codings. Its
second stage sits at the network edge, inside the logger, cookies and auth:
there it sees the request exactly as it goes out (so ``Vary: Cookie`` or
``Vary: Accept-Encoding`` compare the real values) and the response before
any decoding (so it stores the bytes the server sent). A cached answer is
returned from that stage as an :class:`~anysoup.InputStream`, so every stage
above it handles it as it would a network answer: the logger prints it
(marked), the decoder decodes it, the sniffer sniffs it, redirects from it
are followed.

For one pass through the network stage (one hop, one auth retry):

1. A request that can't use a cache (not GET or HEAD, a Range) goes on; the
   answer to an unsafe method invalidates what it names (§4.4).
2. Otherwise the stored variants of the URI are looked up and the one whose
   secondary key matches the request is chosen (§4.1). The rules
   (``rules_policy.decide``) say: serve it (fresh, or stale as allowed),
   serve it and revalidate in the background (``stale-while-revalidate``),
   or validate it first.
3. Validation sends the request with ``If-None-Match``/``If-Modified-Since``
   added; a ``304`` updates the stored headers and the stored body is served
   (the caller sees the stored status, never the 304); its ``got_headers``
   and ``finished`` come from the served answer only (``msg._validating``
   keeps the core quiet about the 304). A request that carried validators
   of its own goes to the network as it is and gets whatever comes back.
4. An answer from the network that may be stored (§3) gets a tee on its
   body (``serving.Tee``); the entry exists once the body was read to its end.

Errors of the storage never fail a request: they are logged and the request
goes on as a miss. ``msg.cache_result`` tells where the answer came from.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar

import anyio

from ..._model.body import InputStream
from ..._model.enums import CacheResult
from ..._model.exceptions import Error, RequestCancelled
from ..._model.headers import MessageHeaders
from ..._model.message import Message
from ..._model.public import public
from ..._model.resends import check_resend
from ..feature import SessionFeature
from . import freshness_policy as freshness
from . import rules_policy as rules
from . import validation_policy as validation
from .answers import cache_key, gateway_timeout, serve, store
from .dictionaries import Shelf
from .entry_policy import CacheType, StoredResponse
from .storage import CacheStorage, MemoryStorage
from .vary_policy import vary_matches

if TYPE_CHECKING:
    from ..._session.session import Session
    from ..feature import CallNext

__all__ = ["DEFAULT_MAX_SIZE", "Cache", "CacheType"]

_log = logging.getLogger("anysoup.cache")

#: libsoup's default size, and DESIGN §7's: 50 MiB of stored bodies.
DEFAULT_MAX_SIZE = 50 * 1024 * 1024
#: Methods that change nothing on the server (RFC 9110 §9.2.1): no invalidation.
#: Seconds before opening a storage that failed is tried again.
_RETRY_OPEN = 60.0
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PROPFIND"})


@public
class Cache(SessionFeature):
    """An HTTP cache (libsoup's ``SoupCache``), in memory or in a directory.

    Add it to a session: ``Session(features=[Cache("/path/to/dir")])``. It
    stores answers to GET as RFC 9111 allows and serves them again while
    they are fresh, validates stale ones with the server, and keeps the total
    size of stored bodies under ``max_size`` (least recently used first out).
    An entry larger than a tenth of ``max_size`` is never stored.

    A directory may be shared by several sessions and processes at once; it
    survives restarts on its own (no :meth:`dump` needed). With
    ``cache_dir=None`` the cache lives in memory and ends with the object.
    ``msg.disable_feature(Cache)`` keeps one message away from it;
    ``msg.cache_result`` tells where an answer came from. See :doc:`cache`.

    Args:
        cache_dir: The directory to keep entries in (created, mode 0700), or
            None for a cache in memory.
        cache_type: :attr:`CacheType.SINGLE_USER` (a private cache, the
            default) or :attr:`CacheType.SHARED` (a proxy's rules).
        max_size: The most bytes of stored bodies.

    Raises:
        ValueError: ``max_size`` is negative.
    """

    chain_position: ClassVar[int | None] = SessionFeature.POSITION_CACHE
    network_position: ClassVar[int | None] = SessionFeature.POSITION_CACHE_NETWORK

    def __init__(
        self,
        cache_dir: str | os.PathLike[str] | None = None,
        cache_type: CacheType = CacheType.SINGLE_USER,
        *,
        max_size: int = DEFAULT_MAX_SIZE,
    ) -> None:
        if not isinstance(cache_type, CacheType):
            raise TypeError(f"cache_type: expected a CacheType, got {cache_type!r}")
        _check_size(max_size)
        self._cache_dir = None if cache_dir is None else os.fspath(cache_dir)
        self._cache_type = cache_type
        self._shared = cache_type is CacheType.SHARED
        self._storage: CacheStorage
        if self._cache_dir is None:
            self._storage = MemoryStorage(max_size=max_size)
        else:
            from .disk_storage import DiskStorage  # sqlite3: only for a cache on disk

            self._storage = DiskStorage(self._cache_dir, max_size=max_size)
        self._opened = False
        self._failed_at = -_RETRY_OPEN
        self._open_lock: anyio.Lock | None = None
        #: The wall clock the rules read (tests put their own here).
        self._clock: Callable[[], float] = time.time
        # Entries with a background revalidation under way (stale-while-revalidate).
        self._revalidating: set[str] = set()
        # The stored compression dictionaries (RFC 9842).
        self._shelf = Shelf(self._storage, lambda: self._clock(), shared=self._shared)

    # -- properties (libsoup's, with get_/set_ aliases) ---------------------------------

    @property
    def cache_dir(self) -> str | None:
        """The directory of the cache, or None for a cache in memory."""
        return self._cache_dir

    @property
    def cache_type(self) -> CacheType:
        """Whose cache this is (a single user's or a shared one), a :class:`CacheType`."""
        return self._cache_type

    @property
    def max_size(self) -> int:
        """The most bytes of stored bodies; lowering it evicts at once."""
        return self._storage.max_size

    @max_size.setter
    def max_size(self, value: int) -> None:
        _check_size(value)
        self._storage.max_size = value

    def get_max_size(self) -> int:
        """Alias of :attr:`max_size`."""
        return self.max_size

    def set_max_size(self, max_size: int) -> None:
        """Set :attr:`max_size`."""
        self.max_size = max_size

    # -- libsoup's methods ------------------------------------------------------------

    async def clear(self) -> None:
        """Remove every entry (``soup_cache_clear``)."""
        storage = await self._open()
        self._shelf.forget()
        await storage.clear()

    async def flush(self) -> None:
        """Wait until every entry being written is on disk (``soup_cache_flush``)."""
        if self._opened:
            await self._storage.flush()

    async def dump(self) -> None:
        """Write what is pending to disk (``soup_cache_dump``).

        The cache writes as it goes, so this only waits like :meth:`flush`; it
        exists so libsoup code reads the same.
        """
        if self._opened:
            await self._storage.dump()

    async def load(self) -> None:
        """Read the directory's index again (``soup_cache_load``).

        Not needed to survive a restart: a new cache on the same directory
        sees every complete entry.
        """
        storage = await self._open()
        await storage.load()

    async def session_closed(self, session: Session) -> None:
        """Finish the writes under way, so entries are on disk when the session ends."""
        if self._opened:
            self._opened = False
            await self._storage.aclose()

    async def _open(self) -> CacheStorage:
        """The storage, opened on first use.

        Raises:
            OSError: The directory can't be used; tried again at most once a
                minute (``_usable`` says whether to try), so a broken
                directory costs a log line a minute, not one per request.
        """
        storage = self._storage
        if not self._opened:
            if self._open_lock is None:
                self._open_lock = anyio.Lock()
            async with self._open_lock:
                if not self._opened:
                    try:
                        await storage.open()
                    except Exception:
                        self._failed_at = time.monotonic()
                        raise
                    self._opened = True
        return storage

    def _usable(self) -> bool:
        """False for a minute after the storage failed to open."""
        return self._opened or time.monotonic() - self._failed_at > _RETRY_OPEN

    # -- the stages -------------------------------------------------------------------

    async def handle(self, msg: Message, call_next: CallNext) -> InputStream:
        """The cache's place among the features: offer a stored dictionary (RFC 9842)."""
        msg.cache_result = CacheResult.NONE
        current = msg._compression_dictionary
        if (
            msg.method == "GET"
            and (current is None or self._shelf.is_ours(current))
            and self._usable()
        ):
            try:
                await self._open()
            except Exception as exc:  # an unusable directory: no cache, not a failed request
                _log.warning("cache: %s unusable: %s", self._cache_dir, exc)
                return await call_next(msg)
            try:
                msg._compression_dictionary = await self._shelf.choose(msg)
            except Exception as exc:  # no dictionary, not a failed request
                _log.warning("cache: choosing a dictionary for %s failed: %s", msg.uri, exc)
        return await call_next(msg)

    async def handle_network(self, msg: Message, call_next: CallNext) -> InputStream:
        """Answer from the cache, validate a stored answer, or fetch and store."""
        method = msg.method
        request_headers = msg.request_headers
        if (
            not rules.request_may_use_cache(method, request_headers)
            or "Upgrade" in request_headers  # a WebSocket handshake: never an answer to keep
            or not self._usable()
        ):
            msg.cache_result = CacheResult.NONE
            stream = await call_next(msg)
            if method not in _SAFE_METHODS:
                await self._invalidate(msg, stream)
            return stream
        try:
            storage = await self._open()
        except Exception as exc:  # an unusable directory: no cache, not a failed request
            _log.warning("cache: %s unusable: %s", self._cache_dir, exc)
            return await call_next(msg)
        if "If-None-Match" in request_headers or "If-Modified-Since" in request_headers:
            # The program validates on its own: it gets the network's answer, 304 included.
            return await self._fetch(msg, call_next)
        key = cache_key(msg)
        entry = await self._select(storage, key, request_headers)
        only_if_cached = rules.request_only_if_cached(request_headers)
        if entry is not None:
            now = self._clock()
            decision = freshness.decide(entry, request_headers, now, shared=self._shared)
            action = decision.action
            if msg._reload and not only_if_cached:
                action = freshness.Action.VALIDATE  # sent again (Retry): ask the server
            if action is not freshness.Action.VALIDATE:
                result = CacheResult.HIT if action is freshness.Action.FRESH else CacheResult.STALE
                served = await serve(
                    self._storage, msg, entry, result, now, started=False, known_age=decision.age
                )
                if served is not None:
                    if action is freshness.Action.REVALIDATE_BACKGROUND:
                        self._revalidate_later(msg, entry)
                    return served
            elif not only_if_cached:
                return await self._validate(msg, call_next, entry, decision.stale_if_error)
        if only_if_cached:  # RFC 9111 §5.2.1.7: nothing fit, and the network is not to be used
            return await gateway_timeout(msg)
        return await self._fetch(msg, call_next)

    # -- the steps --------------------------------------------------------------------

    async def _select(
        self, storage: CacheStorage, key: str, request_headers: MessageHeaders
    ) -> StoredResponse | None:
        """The newest stored variant whose secondary key matches the request (§4.1)."""
        try:
            variants = await storage.lookup(key)
        except Exception as exc:
            _log.warning("cache: looking up %s failed: %s", key, exc)
            return None
        for entry in variants:
            if vary_matches(entry.vary, request_headers):
                return entry
        return None

    async def _fetch(self, msg: Message, call_next: CallNext) -> InputStream:
        """Go to the network; store the answer if the rules allow."""
        request_time = self._clock()
        stream = await call_next(msg)
        msg.cache_result = CacheResult.MISS
        self._store(msg, stream, (request_time, self._clock()))
        return stream

    async def _validate(
        self, msg: Message, call_next: CallNext, entry: StoredResponse, stale_if_error: bool
    ) -> InputStream:
        """Ask the server whether ``entry`` is still good (§4.3); serve or replace it."""
        headers = msg.request_headers
        added = validation.conditional_headers(entry)
        for name, value in added:
            headers.append(name, value)
        msg._validating = bool(added)
        request_time = self._clock()
        try:
            stream = await call_next(msg)
        except (anyio.get_cancelled_exc_class(), RequestCancelled):
            raise
        except Error:
            if stale_if_error:  # RFC 5861 §4: the stale answer rather than the error
                served = await serve(self._storage, msg, entry, CacheResult.STALE, self._clock())
                if served is not None:
                    return served
            raise
        finally:
            msg._validating = False
            for name, _ in added:
                headers.remove(name)
        response_time = self._clock()
        if added and msg.status == 304:
            times = (request_time, response_time)
            return await self._not_modified(msg, call_next, stream, entry, times)
        if stale_if_error and rules.is_error_status(msg.status):
            await stream.aclose()
            served = await serve(self._storage, msg, entry, CacheResult.STALE, response_time)
            if served is not None:
                return served
            return await self._fetch(msg, call_next)  # the stored body vanished meanwhile
        msg.cache_result = CacheResult.MISS
        self._store(msg, stream, (request_time, response_time))
        return stream

    async def _not_modified(
        self,
        msg: Message,
        call_next: CallNext,
        stream: InputStream,
        entry: StoredResponse,
        times: tuple[float, float],
    ) -> InputStream:
        """A 304 to our validation: freshen the entry and serve it (§4.3.4)."""
        request_time, response_time = times
        await stream.read()  # no body: this gives the connection back
        await stream.aclose()
        not_modified = msg.response_headers
        if validation.not_modified_selects(entry, not_modified, ours=True):
            merged = validation.merge_not_modified(
                entry, not_modified, shared=self._shared, response_time=response_time
            )
            fresh = replace(
                entry, headers=merged, request_time=request_time, response_time=response_time
            )
            try:
                await self._storage.update(fresh)
            except Exception as exc:
                _log.warning("cache: updating %s failed: %s", entry.key, exc)
            # Cookies set by the 304 reach the jar once; stored headers never keep them.
            cookies = [("Set-Cookie", value) for value in not_modified.get_all("Set-Cookie")]
            served = await serve(
                self._storage, msg, fresh, CacheResult.REVALIDATED, response_time, extra=cookies
            )
            if served is not None:
                return served
        # The 304 names nothing we hold (§4.3.3): ask again, without conditions.
        await self._remove(entry.key, entry.entry_id)
        check_resend(msg)
        return await self._fetch(msg, call_next)

    def _store(self, msg: Message, stream: InputStream, times: tuple[float, float]) -> None:
        store(self._storage, msg, stream, times, shared=self._shared, on_commit=self._shelf.stored)

    async def _invalidate(self, msg: Message, stream: InputStream) -> None:
        """An unsafe method succeeded: drop what it may have changed (§4.4)."""
        targets = rules.invalidation_targets(msg.method, msg.status, msg.uri, msg.response_headers)
        if not targets:
            return
        try:
            storage = await self._open()
            for key in targets:
                self._shelf.forget(key)
                await storage.remove(key)
        except BaseException as exc:
            if not isinstance(exc, Exception):
                stream._discard()  # cancelled: the caller never gets the stream
                raise
            _log.warning("cache: invalidating after %s %s failed: %s", msg.method, msg.uri, exc)

    async def _remove(self, key: str, entry_id: str) -> None:
        try:
            await self._storage.remove(key, entry_id)
        except Exception as exc:
            _log.warning("cache: removing %s failed: %s", key, exc)

    def _revalidate_later(self, msg: Message, entry: StoredResponse) -> None:
        """``stale-while-revalidate``: validate ``entry`` in the background (RFC 5861 §3)."""
        session = self.session
        if session is None or session._task_group is None:
            return
        if entry.entry_id in self._revalidating:
            return
        self._revalidating.add(entry.entry_id)
        headers = MessageHeaders(msg.request_headers)
        headers.replace("Cache-Control", "no-cache")
        revalidation = Message("GET", msg.uri, headers=headers)
        name = f"anysoup cache revalidation {entry.key}"
        session._task_group.start_soon(
            self._revalidate, session, revalidation, entry.entry_id, name=name
        )

    async def _revalidate(self, session: Session, msg: Message, entry_id: str) -> None:
        try:
            await session.send_and_read(msg)
        except Exception as exc:
            _log.info("cache: background revalidation of %s failed: %s", msg.uri, exc)
        finally:
            self._revalidating.discard(entry_id)

    def __repr__(self) -> str:
        where = "in memory" if self._cache_dir is None else repr(self._cache_dir)
        return f"<anysoup.Cache {where} {self._cache_type.name} max_size={self._storage.max_size}>"


def _check_size(value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"max_size: expected a size in bytes (an int >= 0), got {value!r}")
