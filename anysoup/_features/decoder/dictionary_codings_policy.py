"""The dictionary codings ``dcb`` and ``dcz`` (RFC 9842 §4, §5), as policy (no I/O).

Theory of operation
-------------------
A ``dcb`` body is a 36-byte header (4 bytes of magic, then the SHA-256 of
the dictionary) followed by a brotli stream compressed with that raw
dictionary; a ``dcz`` body a 40-byte header (a zstd skippable frame holding
the hash) followed by zstd frames compressed with it.
:class:`DictionaryStreamDecoder` reads the header, checks that it names the
dictionary the request offered (anything else is an error, §9.3: "the
client MUST drop the response"), then hands the rest to the brotli or zstd
decoder of ``codings_policy``, built with the dictionary.

Whether a coding can be decoded here depends on the installed libraries,
found on first use and remembered (:func:`dictionary_support`):

* ``dcz`` needs zstandard's raw-content dictionaries
  (``ZstdCompressionDict(data, dict_type=DICT_TYPE_RAWCONTENT)``), which
  python-zstandard has had for years;
* ``dcb`` needs a brotli binding whose ``Decompressor`` takes a
  ``dictionary``: Google's ``brotli`` (1.2) has none, and ``brotlicffi``
  (1.2) takes the argument but calls a libbrotli function removed in
  libbrotli 1.0, so it fails. Both are tried, by making a decompressor with
  a dictionary; when neither works ``dcb`` is off and the reason says so.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ..._model.compression_dictionary import CompressionDictionary
from ..cache.dictionary_policy import parse_stream_header, stream_header_size
from .codings_policy import (
    OPTIONAL,
    BrotliDecoder,
    CodingFailure,
    Decoder,
    ZstdDecoder,
    load_library,
    truncated,
)

__all__ = [
    "DICTIONARY_CODINGS",
    "DictionaryStreamDecoder",
    "decodable_codings",
    "dictionary_decoder_for",
    "dictionary_support",
]

#: The dictionary codings, in the order they are offered in ``Accept-Encoding``.
DICTIONARY_CODINGS = ("dcb", "dcz")
#: RFC 9842 §5: a dcz decoder must accept windows of 8 MiB or 1.25 times the
#: dictionary's size, whichever is greater, up to 128 MiB; larger ones are refused.
_DCZ_MIN_WINDOW = 8 << 20
_DCZ_MAX_WINDOW = 128 << 20


@functools.cache
def _library(coding: str) -> tuple[Any, str | None]:
    """The module that decodes ``coding`` with a dictionary, or None and why not."""
    if coding == "dcz":
        zstandard = load_library("zstandard")
        if zstandard is None:
            return None, "'dcz' needs the zstandard library: install anysoup[zstd]"
        if not hasattr(zstandard, "DICT_TYPE_RAWCONTENT"):
            version = getattr(zstandard, "__version__", "?")
            return None, f"'dcz' needs raw-content dictionaries, which zstandard {version} lacks"
        return zstandard, None
    modules = OPTIONAL["br"][0]
    found = []
    for name in modules:
        module = load_library(name)
        if module is None:
            continue
        found.append(f"{name} {getattr(module, '__version__', '?')}")
        try:
            module.Decompressor(dictionary=b"\0")
        except Exception:  # TypeError: no such argument; AttributeError: not in libbrotli
            continue
        return module, None
    have = (
        " and ".join(found) + " can't" if found else "neither brotli nor brotlicffi is installed"
    )
    return None, f"'dcb' needs a brotli library that decodes with a raw dictionary; {have}"


def dictionary_support() -> dict[str, str | None]:
    """Which dictionary codings (RFC 9842) this installation decodes.

    Returns:
        ``{"dcb": reason_or_None, "dcz": reason_or_None}``: None for a coding
        that can be decoded (and is offered when a dictionary is), else the
        reason it is off, naming what to install.
    """
    return {coding: _library(coding)[1] for coding in DICTIONARY_CODINGS}


@functools.cache
def decodable_codings() -> tuple[str, ...]:
    """The dictionary codings this installation decodes, in the order they are offered."""
    return tuple(coding for coding in DICTIONARY_CODINGS if _library(coding)[0] is not None)


def dictionary_decoder_for(
    coding: str, dictionary: CompressionDictionary | None
) -> Callable[[], Decoder] | str:
    """A decoder factory for ``coding`` with ``dictionary``, or why there can't be one."""
    if dictionary is None:
        return (
            f"the response is {coding!r}-encoded, but no compression dictionary was "
            "offered for the request"
        )
    library, reason = _library(coding)
    if library is None:
        assert reason is not None
        return reason
    return functools.partial(_make, coding, library, dictionary)


def _make(coding: str, library: Any, dictionary: CompressionDictionary) -> Decoder:
    inner: Decoder
    if coding == "dcb":
        inner = BrotliDecoder(library, dictionary=dictionary.data)
    else:
        window = min(max(_DCZ_MIN_WINDOW, len(dictionary.data) * 5 // 4), _DCZ_MAX_WINDOW)
        raw = library.ZstdCompressionDict(dictionary.data, dict_type=library.DICT_TYPE_RAWCONTENT)
        inner = ZstdDecoder(library, dict_data=raw, max_window=window)
    return DictionaryStreamDecoder(coding, dictionary.sha256, inner)


class DictionaryStreamDecoder:
    """Reads and checks a dcb or dcz stream header, then decodes the rest with ``inner``."""

    __slots__ = ("_coding", "_head", "_inner", "_sha256", "_size", "pending")

    def __init__(self, coding: str, sha256: bytes, inner: Decoder) -> None:
        self._coding = coding
        self._sha256 = sha256
        self._inner = inner
        self._size = stream_header_size(coding)
        self._head: bytearray | None = bytearray()  # None once the header was checked
        self.pending = False

    def decode(self, data: bytes) -> bytes:
        head = self._head
        if head is not None:
            if not data:
                self.pending = False
                return b""
            need = self._size - len(head)
            head += data[:need]
            if len(head) < self._size:
                self.pending = False
                return b""
            self._check(bytes(head))
            self._head = None
            data = data[need:]
            if not data:
                self.pending = False
                return b""
        out = self._inner.decode(data)
        self.pending = self._inner.pending
        return out

    def _check(self, head: bytes) -> None:
        try:
            sha256 = parse_stream_header(self._coding, head)
        except ValueError as exc:
            raise CodingFailure(f"data is corrupt ({exc})") from None
        if sha256 != self._sha256:
            raise CodingFailure(
                f"the body was compressed with another dictionary (SHA-256 {sha256.hex()[:16]}…) "
                f"than the one offered ({self._sha256.hex()[:16]}…)"
            )

    def finish(self) -> None:
        if self._head is None:
            self._inner.finish()
        elif self._head:  # an empty body is fine; a header cut short is not
            raise truncated()
