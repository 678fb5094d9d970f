"""ContentDecoder: undo the response's content codings as the body is read.

Theory of operation
-------------------
:class:`ContentDecoder` does two things for each message (libsoup's
``SoupContentDecoder``). On the way out it offers ``Accept-Encoding: gzip,
deflate``, plus ``br`` and ``zstd`` over https when their libraries import,
unless the message has an Accept-Encoding of its own, and offers a
compression dictionary when the message has one (``dictionaries.py``). On
the way back, when the response lists content codings (RFC 9110 §8.4), it
stacks a filter on the body stream that decodes them, last applied first,
as the body is read (``dcb`` and ``dcz`` with the message's dictionary).

Nothing is decoded ahead of the reader, and each piece the filter returns is
at most :data:`CHUNK_LIMIT` bytes: a decoder keeps the input it has not yet
turned into output (zlib's ``unconsumed_tail``, brotli's internal buffer, the
rest of a network chunk) and goes on from there at the next read. A
decompression bomb therefore costs the reader time, never memory.

The decoders themselves are policy, with no I/O, in ``_features/decoder/codings_policy.py``; they
raise ``CodingFailure``, which the filters here turn into an
:class:`~anysoup.EncodingError` naming the host and the coding.

The headers are left as received, as libsoup does: ``Content-Encoding`` still
names the codings, ``Content-Length`` still counts encoded bytes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from ..._model.exceptions import EncodingError
from ..._model.signals import active
from ..._model.uri import is_secure
from ..feature import SessionFeature
from .codings_policy import (
    CHUNK_LIMIT,
    OPTIONAL,
    CodingFailure,
    Decoder,
    decoder_for,
    load_any,
)

if TYPE_CHECKING:
    from ..._model.body import BodySource, InputStream
    from ..._model.headers import MessageHeaders
    from ..._model.message import Message
    from ..feature import CallNext

__all__ = ["CHUNK_LIMIT", "MAX_CODINGS", "ContentDecoder"]

#: Content codings one response may list; more is an EncodingError
#: (urllib3 CVE-2025-66418: each link of a long chain costs a decoder).
MAX_CODINGS = 5

_ACCEPT_HTTP = "gzip, deflate"
#: libsoup's workaround for Apache (bgo 613361): a .gz file served as
#: ``Content-Encoding: gzip`` is handed over as it is, not unpacked.
_GZIP_TYPES = frozenset({"application/gzip", "application/x-gzip"})


@functools.cache
def _accept_https() -> str:
    """Accept-Encoding over https: br and zstd too when their libraries import.

    Like libsoup, Firefox and Chromium, anysoup offers brotli only over TLS:
    some middleboxes on plain HTTP mangle codings they don't know.
    """
    extra = [coding for coding, (modules, _) in OPTIONAL.items() if load_any(modules) is not None]
    return ", ".join([_ACCEPT_HTTP, *extra])


class ContentDecoder(SessionFeature):
    """Decodes gzip, deflate, br and zstd response bodies (a default feature).

    It sets ``Accept-Encoding`` on messages that have none and decodes the
    body as it is read, at most 32 KiB of output per step. With a compression
    dictionary (RFC 9842: from the :class:`~anysoup.Message`'s
    ``request_compression_dictionary`` handlers) it offers and decodes
    ``dcb`` and ``dcz`` too (see :doc:`dictionaries`). Disable it for one
    message with ``msg.disable_feature(ContentDecoder)`` to get the raw bytes
    (then no Accept-Encoding is sent either), or remove it from the session.
    See :doc:`decoding`.
    """

    chain_position: ClassVar[int | None] = SessionFeature.POSITION_DECODER

    @staticmethod
    def dictionary_support() -> dict[str, str | None]:
        """Which compression-dictionary codings (RFC 9842) this installation decodes.

        Returns:
            ``{"dcb": reason, "dcz": reason}``, where ``reason`` is None for a
            coding that is decoded (and offered with a dictionary), else the
            reason it is off, naming what to install. See :doc:`dictionaries`.
        """
        from .dictionary_codings_policy import dictionary_support

        return dictionary_support()

    async def handle(self, msg: Message, call_next: CallNext) -> InputStream:
        """Offer the codings, send, and stack a decoding filter on the body."""
        headers = msg.request_headers
        accept = _accept_https() if is_secure(msg.uri) else _ACCEPT_HTTP
        if _wants_dictionary(msg):  # RFC 9842: see dictionaries.py
            from .dictionaries import offer_dictionary

            await offer_dictionary(msg, accept)
        if "Accept-Encoding" not in headers:
            headers.append("Accept-Encoding", accept)
        stream = await call_next(msg)
        listed = _content_encoding(msg.response_headers)
        if listed is not None:
            make = _filter_for(msg, listed)
            if make is not None:
                stream._filter(make)
        return stream


def _wants_dictionary(msg: Message) -> bool:
    """Whether ``offer_dictionary`` has anything to do for ``msg`` (the cheap test).

    The dictionary code (RFC 9842) loads only when a message has or may get
    a dictionary: most programs never offer one.
    """
    return (
        msg._compression_dictionary is not None
        or msg._dictionary_offer is not None
        or active(msg, "request_compression_dictionary") is not None
    )


def _content_encoding(headers: MessageHeaders) -> str | None:
    """The response's ``Content-Encoding`` list, or None; cheap when there is none.

    A head parsed by h11 is decoded to str only when first used
    (:meth:`MessageHeaders._from_raw`), and most responses have no
    Content-Encoding: h11's lowercased names tell so without decoding or
    allocating anything. (Inner stages read response headers; none rewrites
    this one.)
    """
    items = getattr(getattr(headers, "_raw", None), "_full_items", None)
    if items is not None:
        for item in items:
            if item[1] == b"content-encoding":
                break
        else:
            return None
    return headers.get_list("Content-Encoding")


def _filter_for(msg: Message, listed: str) -> Callable[[BodySource], BodySource] | None:
    """A ``make(source)`` for :meth:`InputStream._filter`, or None to leave the body as is."""
    # RFC 9110 §8.4.1: codings are case-insensitive tokens, listed in the order applied.
    codings = [c for c in (item.strip(" \t").lower() for item in listed.split(",")) if c]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return None
    if len(codings) > MAX_CODINGS:
        text = f"{len(codings)} content codings listed, at most {MAX_CODINGS} are decoded"
        return functools.partial(_Refusing, msg=msg, text=text)
    if len(codings) == 1 and codings[0] in ("gzip", "x-gzip"):
        content_type = msg.response_headers.get_content_type()
        if content_type is not None and content_type[0] in _GZIP_TYPES:
            return None
    makers = []
    for coding in reversed(codings):  # the last applied is undone first
        maker: Callable[[], Decoder] | str | None = decoder_for(coding)
        if maker is None:  # dcb, dcz (RFC 9842), or a coding nobody decodes
            from .dictionary_codings_policy import DICTIONARY_CODINGS, dictionary_decoder_for

            if coding in DICTIONARY_CODINGS:
                maker = dictionary_decoder_for(coding, msg._compression_dictionary)
        if maker is None:
            return None  # libsoup: one unknown coding and none is decoded
        if isinstance(maker, str):
            return functools.partial(_Refusing, msg=msg, text=maker)
        makers.append((coding, maker))
    if len(makers) == 1:
        coding, maker = makers[0]
        return functools.partial(_Decoding, msg=msg, coding=coding, decoder=maker())
    stages = [(coding, maker()) for coding, maker in makers]
    return functools.partial(_StackedDecoding, msg=msg, stages=stages)


# -- the filters: BodySources stacked on the exchange -----------------------------


def _label(msg: Message) -> str:
    host = msg.uri.raw_host or ""
    return f"[{host}]:{msg.uri.port}" if ":" in host else f"{host}:{msg.uri.port}"


class _Filter:
    """A BodySource over another one; closing and discarding go straight down."""

    __slots__ = ("_msg", "_source")

    def __init__(self, source: BodySource, msg: Message) -> None:
        self._source = source
        self._msg = msg

    async def close(self, *, drain: bool) -> None:
        await self._source.close(drain=drain)

    def discard(self) -> None:
        self._source.discard()

    def _error(self, coding: str, exc: CodingFailure) -> EncodingError:
        return EncodingError(
            f"decoding the response body from {_label(self._msg)}: {coding!r} {exc}",
            message=self._msg,
        )


class _Refusing(_Filter):
    """A body that can't be decoded: an EncodingError at its first byte (an empty one is fine)."""

    __slots__ = ("_text",)

    def __init__(self, source: BodySource, msg: Message, text: str) -> None:
        super().__init__(source, msg)
        self._text = text

    async def receive_chunk(self) -> bytes | None:
        if await self._source.receive_chunk() is None:
            return None
        text = f"decoding the response body from {_label(self._msg)}: {self._text}"
        raise EncodingError(text, message=self._msg)


class _Decoding(_Filter):
    """One content coding (the common case): the tight loop."""

    __slots__ = ("_coding", "_decoder")

    def __init__(self, source: BodySource, msg: Message, coding: str, decoder: Decoder) -> None:
        super().__init__(source, msg)
        self._coding = coding
        self._decoder = decoder

    async def receive_chunk(self) -> bytes | None:
        decoder = self._decoder
        try:
            while True:
                if decoder.pending:
                    out = decoder.decode(b"")
                else:
                    data = await self._source.receive_chunk()
                    if data is None:
                        decoder.finish()
                        return None
                    out = decoder.decode(data)
                if out:
                    return out
        except CodingFailure as exc:
            raise self._error(self._coding, exc) from exc.__cause__


class _StackedDecoding(_Filter):
    """Several codings: the output of each decoder is the input of the next."""

    __slots__ = ("_stages",)

    def __init__(
        self, source: BodySource, msg: Message, stages: list[tuple[str, Decoder]]
    ) -> None:
        super().__init__(source, msg)
        self._stages = stages

    async def receive_chunk(self) -> bytes | None:
        stages = self._stages
        last = len(stages) - 1
        coding = stages[0][0]
        try:
            while True:
                # Drain the deepest stage that holds something first: new input
                # only ever goes to a decoder that is not pending.
                k = last
                while k >= 0 and not stages[k][1].pending:
                    k -= 1
                if k < 0:
                    data = await self._source.receive_chunk()
                    if data is None:
                        for stage in stages:
                            coding = stage[0]
                            stage[1].finish()
                        return None
                    k = 0
                else:
                    data = b""
                coding, decoder = stages[k]
                out = decoder.decode(data)
                while out and k < last:
                    k += 1
                    coding, decoder = stages[k]
                    out = decoder.decode(out)
                if out:
                    return out
        except CodingFailure as exc:
            raise self._error(coding, exc) from exc.__cause__
