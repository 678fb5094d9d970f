"""The cache's answers: storing a network answer, serving a stored one, a made-up 504.

The steps of :class:`~anysoup.Cache`'s network stage that touch a message's
response; the stage itself (``cache.py``) decides which to take.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import anyio

from ..._model.body import InputStream
from ..._model.enums import CacheResult, HTTPVersion
from ..._model.headers import MessageHeaders
from . import freshness_policy as freshness
from . import rules_policy as rules
from .dictionaries import DICTIONARY_ID
from .dictionary_policy import parse_use_as_dictionary
from .entry_policy import StoredResponse
from .serving import StoredBody, Tee, emit, empty_body
from .vary_policy import vary_key

if TYPE_CHECKING:
    from ..._model.message import Message
    from .storage import CacheStorage

__all__ = ["cache_key", "gateway_timeout", "serve", "store"]

_log = logging.getLogger("anysoup.cache")
_VERSIONS = {version.value: version for version in HTTPVersion}


def cache_key(msg: Message) -> str:
    """The primary cache key of ``msg``: its URI without fragment or credentials."""
    return rules.primary_key(msg.uri)


def store(
    storage: CacheStorage,
    msg: Message,
    stream: InputStream,
    times: tuple[float, float],
    *,
    shared: bool,
    on_commit: Callable[[StoredResponse], None],
) -> None:
    """Put a tee on ``stream`` if its answer may be stored (§3).

    ``times`` are the request's and the response's (§4.2.3); ``on_commit``
    hears of the entry once its body is stored.
    """
    request_time, response_time = times
    if msg.method != "GET":
        return  # a HEAD answer is never stored; GET's serve HEAD requests
    request_headers = msg.request_headers
    response_headers = msg.response_headers
    if not rules.storable(
        msg.method, msg.status, request_headers, response_headers, shared=shared
    ):
        return
    length = response_headers.get_content_length()
    if length is not None and length > storage.max_entry_size:
        return  # too big to keep: its body is never buffered
    vary = vary_key(response_headers, request_headers)
    if vary is None:
        return
    entry = StoredResponse(
        key=cache_key(msg),
        entry_id=uuid.uuid4().hex,
        status=msg.status,
        reason=msg.reason_phrase,
        http_version=msg.http_version.value,
        headers=rules.stored_headers(response_headers, shared=shared),
        vary=vary,
        request_time=request_time,
        response_time=response_time,
        body_size=0,
    )
    directive = parse_use_as_dictionary(
        response_headers.get_list("Use-As-Dictionary"), str(msg.uri)
    )
    if directive is not None:  # RFC 9842: kept as a dictionary for matching requests
        extra = () if directive.id is None else ((DICTIONARY_ID, directive.id),)
        entry = replace(entry, dictionary_match=directive.match, extra=extra)
    try:
        writer = storage.begin(entry)
    except Exception as exc:
        _log.warning("cache: not storing %s: %s", entry.key, exc)
        return
    stream._filter(lambda source: Tee(source, writer, entry, on_commit))


async def serve(
    storage: CacheStorage,
    msg: Message,
    entry: StoredResponse,
    result: CacheResult,
    now: float,
    *,
    started: bool = True,
    known_age: float | None = None,
    extra: list[tuple[str, str]] | None = None,
) -> InputStream | None:
    """Make ``entry`` the answer to ``msg``; None if its body is gone.

    ``started`` says whether the core already emitted ``starting`` for
    this pass (a validation went out); a pure hit emits it here, as
    libsoup's ``soup_cache_send_response`` does.
    """
    reader = None
    if msg.method != "HEAD":
        try:
            reader = await storage.open_body(entry)
        except Exception as exc:
            _log.warning("cache: reading %s failed: %s", entry.key, exc)
        if reader is None:
            return None
    stream = InputStream(StoredBody(msg, reader))
    try:
        if not started:
            await emit(msg, "starting")
        metrics = msg.metrics
        if metrics is not None:
            metrics.request_start = metrics.response_start = time.monotonic()
        msg.status = entry.status
        msg.reason_phrase = entry.reason
        msg.http_version = _VERSIONS.get(entry.http_version, HTTPVersion.HTTP_1_1)
        # The storage hands back what it was given, or rows it checked on load.
        headers = MessageHeaders._from_trusted(list(entry.headers))
        age = freshness.current_age(entry, now) if known_age is None else known_age
        headers.replace("Age", freshness.age_value(age))
        for name, value in extra or ():
            headers.append(name, value)
        msg.response_headers = headers
        msg.cache_result = result
        await emit(msg, "got_headers")
    except BaseException:
        stream._discard()
        if reader is not None:
            with anyio.CancelScope(shield=True):  # closing a file: never left open
                await reader.aclose()
        raise
    return stream


async def gateway_timeout(msg: Message) -> InputStream:
    """``only-if-cached`` and nothing stored fits: 504 (RFC 9111 §5.2.1.7)."""
    stream = InputStream(empty_body(msg))
    await emit(msg, "starting")
    msg.status = 504
    msg.reason_phrase = "Gateway Timeout"
    msg.response_headers = MessageHeaders([("Content-Length", "0")])
    msg.cache_result = CacheResult.MISS
    await emit(msg, "got_headers")
    return stream
