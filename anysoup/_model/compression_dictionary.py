"""``CompressionDictionary``: the dictionary of the ``dcb`` and ``dcz`` content codings (RFC 9842).

A message carries at most one (``Message._compression_dictionary``): the
cache puts there the stored dictionary that best matches the request, or a
handler of the message's ``request_compression_dictionary`` signal supplies
one. The :class:`~anysoup.ContentDecoder` advertises it
(``Available-Dictionary``) and decodes a ``dcb`` or ``dcz`` answer with it.

A dictionary is known by the SHA-256 of its bytes (RFC 9842 §2.2), computed
here once, so the hash sent and the bytes used can never disagree.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from yarl import URL

from .public import public
from .structured_fields import serialize_byte_sequence
from .uri import parse_uri

__all__ = ["MAX_ID_LENGTH", "CompressionDictionary"]

#: RFC 9842 §2.1.3: a dictionary's id is at most 1024 characters.
MAX_ID_LENGTH = 1024


@public
@dataclass(frozen=True, repr=False)
class CompressionDictionary:
    """A raw compression dictionary (RFC 9842), to decode ``dcb`` and ``dcz`` responses.

    Return one (or just its bytes) from a handler of the message's
    ``request_compression_dictionary`` signal. See :doc:`dictionaries`.

    Args:
        data: The dictionary's bytes (a "raw" dictionary, RFC 9842 §2.1.4).
        id: The server's identifier for it (the ``id`` of ``Use-As-Dictionary``),
            sent back as ``Dictionary-ID``; None or ``""`` for none.
        url: The URL the dictionary came from. It is used only for requests
            to the same origin (RFC 9842 §2.2.2). None binds it to the origin
            of the request it is supplied for.

    Raises:
        TypeError: ``data`` is not bytes-like.
        ValueError: ``id`` is longer than 1024 characters or has a character
            outside printable ASCII; ``url`` is not an absolute http(s) URL.
    """

    #: The dictionary's bytes.
    data: bytes
    #: The server's identifier (``Dictionary-ID``), or None.
    id: str | None = field(default=None, kw_only=True)
    #: Where the dictionary came from (its origin is the one it serves), or None.
    url: str | None = field(default=None, kw_only=True)
    #: The SHA-256 digest of :attr:`data` (32 bytes), computed from it.
    sha256: bytes = field(init=False, compare=False)

    def __post_init__(self) -> None:
        data = self.data
        if not isinstance(data, bytes):
            if not isinstance(data, bytearray | memoryview):
                raise TypeError(f"data: expected bytes, not {type(data).__name__}")
            object.__setattr__(self, "data", bytes(data))
        ident = self.id
        if ident is not None:
            if not isinstance(ident, str):
                raise TypeError(f"id: expected str or None, not {type(ident).__name__}")
            if len(ident) > MAX_ID_LENGTH:
                raise ValueError(f"id: {len(ident)} characters, at most {MAX_ID_LENGTH}")
            if not all(" " <= c <= "~" for c in ident):
                raise ValueError(f"id: {ident!r} has a character outside printable ASCII")
            if not ident:
                object.__setattr__(self, "id", None)
        if self.url is not None:
            url = parse_uri(self.url, what="url")
            if url.scheme not in ("http", "https"):
                raise ValueError(f"url: {str(url)!r} is not an http(s) URL")
            object.__setattr__(self, "url", str(url))
        object.__setattr__(self, "sha256", hashlib.sha256(self.data).digest())

    @classmethod
    def _known(
        cls, data: bytes, sha256: bytes, *, id: str | None = None, url: str | None = None
    ) -> CompressionDictionary:
        """A dictionary whose hash the caller already computed (the cache, at store time).

        Nothing is checked: ``id`` and ``url`` must be valid, ``sha256`` right.
        """
        self = cls.__new__(cls)
        for name, value in (("data", data), ("id", id or None), ("url", url), ("sha256", sha256)):
            object.__setattr__(self, name, value)
        return self

    def _bound_to(self, url: URL) -> CompressionDictionary:
        """This dictionary with :attr:`url` set to ``url`` (same bytes, same hash)."""
        return CompressionDictionary._known(self.data, self.sha256, id=self.id, url=str(url))

    def __repr__(self) -> str:
        extra = "".join(
            f" {name}={value!r}" for name, value in (("id", self.id), ("url", self.url)) if value
        )
        sha256 = serialize_byte_sequence(self.sha256)
        return f"<anysoup.CompressionDictionary {len(self.data)} bytes sha256={sha256}{extra}>"
