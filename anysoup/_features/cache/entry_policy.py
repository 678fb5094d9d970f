"""What the cache stores and reports: entries, the cache's kind, a message's result.

No I/O here: the rules (``rules_policy``), the storage (``storage``) and the
feature (``cache``) all speak these types.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ..._model.enums import CacheResult
from ..._model.public import public

__all__ = ["CacheResult", "CacheType", "StoredResponse"]


@public
class CacheType(enum.Enum):
    """Whose cache it is (libsoup's ``SoupCacheType``).

    It decides which responses may be stored and reused (RFC 9111 §3, §5.2.2).
    """

    #: A private cache for one user (a browser's, a program's): ``private``
    #: responses are stored, ``s-maxage`` and ``proxy-revalidate`` are ignored.
    SINGLE_USER = "single-user"
    #: A cache shared between users (a proxy's): ``private`` responses and
    #: answers to requests with ``Authorization`` are not stored (unless the
    #: response allows it), ``s-maxage`` and ``proxy-revalidate`` apply.
    SHARED = "shared"


@dataclass(frozen=True)
class StoredResponse:
    """One stored response (one variant of one URI), without its body.

    Times are wall-clock seconds since the epoch (``time.time()``), so that
    several processes sharing a cache directory agree on them.
    """

    #: The primary cache key: the request URI without its fragment (``str(uri)``).
    key: str
    #: Identifies this entry (and names its body in storage); unique per store.
    entry_id: str
    #: The response's status code, reason phrase and HTTP version ("1.0", "1.1", "2").
    status: int
    reason: str
    http_version: str
    #: The response header fields as stored, in order (RFC 9111 §3.1: without
    #: connection-specific fields and Set-Cookie).
    headers: tuple[tuple[str, str], ...]
    #: The secondary key (RFC 9111 §4.1): for each field the response's Vary
    #: named, the request's normalised value then (None when absent).
    vary: tuple[tuple[str, str | None], ...]
    #: When the request went and when its response came (RFC 9111 §4.2.3).
    request_time: float
    response_time: float
    #: The stored body's length in bytes (still content-encoded).
    body_size: int
    #: RFC 9842: this response may serve as a compression dictionary for
    #: requests whose URL matches this URL pattern (None: not a dictionary).
    dictionary_match: str | None = None
    #: Whatever else the stores keep with the entry, as text (reserved).
    extra: tuple[tuple[str, str], ...] = field(default=())
