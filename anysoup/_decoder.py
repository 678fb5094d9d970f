"""ContentDecoder: undo the response's content codings as the body is read.

Theory of operation
-------------------
:class:`ContentDecoder` does two things for each message (libsoup's
``SoupContentDecoder``). On the way out it offers ``Accept-Encoding: gzip,
deflate``, plus ``br`` and ``zstd`` over https when their libraries import,
unless the message has an Accept-Encoding of its own. On the way back, when
the response lists content codings (RFC 9110 §8.4), it stacks a filter on the
body stream that decodes them, last applied first, as the body is read.

Nothing is decoded ahead of the reader, and each piece the filter returns is
at most :data:`CHUNK_LIMIT` bytes: a decoder keeps the input it has not yet
turned into output (zlib's ``unconsumed_tail``, brotli's internal buffer, the
rest of a network chunk) and goes on from there at the next read. A
decompression bomb therefore costs the reader time, never memory.

Each decoder is synchronous and does no I/O: ``decode(data)`` takes new input
(or ``b""`` to go on with what it holds) and returns at most CHUNK_LIMIT
bytes; ``pending`` tells whether ``decode(b"")`` may give more without new
input; ``finish()`` raises when the input ended inside the compressed data.
They raise :class:`_Failure`, which the filter turns into an
:class:`~anysoup.EncodingError` naming the host and the coding.

The headers are left as received, as libsoup does: ``Content-Encoding`` still
names the codings, ``Content-Length`` still counts encoded bytes.
"""

from __future__ import annotations

import functools
import importlib
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ._exceptions import EncodingError
from ._feature import SessionFeature
from ._uri import is_secure

if TYPE_CHECKING:
    from ._body import BodySource, InputStream
    from ._feature import CallNext
    from ._headers import MessageHeaders
    from ._message import Message

__all__ = ["CHUNK_LIMIT", "MAX_CODINGS", "ContentDecoder"]

#: Decoded bytes one read of the filter returns at most (DESIGN §6). CPython's
#: zlib output buffer starts with a 32 KiB block: one full block is returned
#: as it is, where a 64 KiB limit would make zlib join two blocks every time.
CHUNK_LIMIT = 32768
#: Content codings one response may list; more is an EncodingError
#: (urllib3 CVE-2025-66418: each link of a long chain costs a decoder).
MAX_CODINGS = 5

_ACCEPT_HTTP = "gzip, deflate"
#: The optional codings: the module that decodes them and the extra that installs it.
_OPTIONAL = {"br": ("brotli", "brotli"), "zstd": ("zstandard", "zstd")}
#: libsoup's workaround for Apache (bgo 613361): a .gz file served as
#: ``Content-Encoding: gzip`` is handed over as it is, not unpacked.
_GZIP_TYPES = frozenset({"application/gzip", "application/x-gzip"})


@functools.cache
def _library(name: str) -> Any:
    """The module ``name`` (imported on first use), or None if it does not import.

    The long-dead brotlipy also installs a module ``brotli``, with another
    API: it counts as missing.
    """
    try:
        module = importlib.import_module(name)
    except ImportError:
        return None
    if name == "brotli" and not hasattr(getattr(module, "Decompressor", None), "process"):
        return None
    return module


@functools.cache
def _accept_https() -> str:
    """Accept-Encoding over https: br and zstd too when their libraries import.

    Like libsoup, Firefox and Chromium, anysoup offers brotli only over TLS:
    some middleboxes on plain HTTP mangle codings they don't know.
    """
    extra = [coding for coding, (module, _) in _OPTIONAL.items() if _library(module) is not None]
    return ", ".join([_ACCEPT_HTTP, *extra])


class ContentDecoder(SessionFeature):
    """Decodes gzip, deflate, br and zstd response bodies (a default feature).

    It sets ``Accept-Encoding`` on messages that have none and decodes the
    body as it is read, at most 32 KiB of output per step. Disable it for one
    message with ``msg.disable_feature(ContentDecoder)`` to get the raw bytes
    (then no Accept-Encoding is sent either), or remove it from the session.
    See :doc:`decoding`.
    """

    chain_position: ClassVar[int | None] = SessionFeature.POSITION_DECODER

    async def handle(self, msg: Message, call_next: CallNext) -> InputStream:
        """Offer the codings, send, and stack a decoding filter on the body."""
        headers = msg.request_headers
        if "Accept-Encoding" not in headers:
            headers.append(
                "Accept-Encoding", _accept_https() if is_secure(msg.uri) else _ACCEPT_HTTP
            )
        stream = await call_next(msg)
        listed = _content_encoding(msg.response_headers)
        if listed is not None:
            make = _filter_for(msg, listed)
            if make is not None:
                stream._filter(make)
        return stream


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
        maker = _maker(coding)
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


def _maker(coding: str) -> Callable[[], _Decoder] | str | None:
    """A decoder factory for ``coding``; None if unknown; a str if its library is missing."""
    if coding in ("gzip", "x-gzip"):
        return functools.partial(_ZlibDecoder, True)
    if coding == "deflate":
        return functools.partial(_ZlibDecoder, False)
    if coding in _OPTIONAL:
        module, extra = _OPTIONAL[coding]
        library = _library(module)
        if library is None:
            return (
                f"the {coding!r} content coding needs the {module} library: "
                f"install anysoup[{extra}]"
            )
        return functools.partial(_BrotliDecoder if coding == "br" else _ZstdDecoder, library)
    return None


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

    def _error(self, coding: str, exc: _Failure) -> EncodingError:
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

    def __init__(self, source: BodySource, msg: Message, coding: str, decoder: _Decoder) -> None:
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
        except _Failure as exc:
            raise self._error(self._coding, exc) from exc.__cause__

    async def read_all(self) -> bytes:
        """The whole rest of the body, decoded (``InputStream.read()``).

        The reader asked for everything, so gzip and deflate may inflate in
        one step instead of 32 KiB ones: zlib's large-buffer path is faster.
        """
        decoder = self._decoder
        if not isinstance(decoder, _ZlibDecoder):
            pieces = []
            while (chunk := await self.receive_chunk()) is not None:
                pieces.append(chunk)
            return b"".join(pieces)
        raw = []
        while (data := await self._source.receive_chunk()) is not None:
            raw.append(data)
        decoder.limit = 0
        try:
            out = [decoder.decode(b"")] if decoder.pending else []
            while decoder.pending:
                out.append(decoder.decode(b""))
            if raw:
                out.append(decoder.decode(raw[0] if len(raw) == 1 else b"".join(raw)))
                while decoder.pending:
                    out.append(decoder.decode(b""))
            decoder.finish()
        except _Failure as exc:
            raise self._error(self._coding, exc) from exc.__cause__
        return out[0] if len(out) == 1 else b"".join(out)


class _StackedDecoding(_Filter):
    """Several codings: the output of each decoder is the input of the next."""

    __slots__ = ("_stages",)

    def __init__(
        self, source: BodySource, msg: Message, stages: list[tuple[str, _Decoder]]
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
        except _Failure as exc:
            raise self._error(coding, exc) from exc.__cause__


# -- the decoders: policy, no I/O --------------------------------------------------


class _Failure(Exception):
    """The data is corrupt or cut short (the filter makes it an EncodingError)."""


class _Decoder(Protocol):
    pending: bool

    def decode(self, data: bytes) -> bytes: ...

    def finish(self) -> None: ...


def _truncated() -> _Failure:
    return _Failure("data ends early: the body was cut inside the compressed stream")


#: After a gzip member ends, the rest is fed to zlib in windows from this size,
#: doubling while a member goes on. zlib copies the input left after a member
#: into ``unused_data``: feeding all of a chunk full of tiny members would copy
#: its rest once per member (quadratic); a window bounds each copy.
_FIRST_WINDOW = 512
_UNBOUNDED = 1 << 62


class _ZlibDecoder:
    """gzip (RFC 1952), member after member; or deflate: zlib (RFC 1950) or raw (RFC 1951).

    "deflate" means zlib-wrapped data (RFC 9110 §8.4.1.2), but some servers
    send raw deflate: the first two bytes tell which (libsoup tries both).
    Bytes after the end of the data (after the last gzip member) are ignored,
    as libsoup and urllib3 do.
    """

    __slots__ = (
        "_buf",
        "_d",
        "_gzip",
        "_head",
        "_junk",
        "_pos",
        "_streams",
        "_window",
        "limit",
        "pending",
    )

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        #: Most output per call; 0 = no limit (the reader asked for the whole body).
        self.limit = CHUNK_LIMIT
        self._d: Any = None  # the current member's inflater; None between members
        self._buf: memoryview | None = None  # input zlib has not seen yet (slow path)
        self._pos = 0
        self._head = b""  # the start of a member, until its first two bytes are in
        self._streams = 0  # members (or the deflate stream) finished
        self._window = _UNBOUNDED
        self._junk = False  # after the end: ignore the rest
        self.pending = False

    def decode(self, data: bytes) -> bytes:
        d = self._d
        if d is None or self._buf is not None:
            return self._decode_slow(data)
        # Inside a member, nothing left over: new data, or what max_length left.
        try:
            out: bytes = d.decompress(data or d.unconsumed_tail, self.limit)
        except zlib.error as exc:
            raise _Failure(f"data is corrupt ({exc})") from exc
        if d.eof:
            self._end(d.unused_data)
        else:
            self.pending = len(out) == self.limit or bool(d.unconsumed_tail)
        return out

    def _end(self, rest: bytes) -> None:
        self._d = None
        self._streams += 1
        self._window = _FIRST_WINDOW
        if not self._gzip:
            self._junk = True
        if rest and not self._junk:
            self._buf = memoryview(rest)
            self._pos = 0
            self.pending = True
        else:
            self._buf = None
            self.pending = False

    def _decode_slow(self, data: bytes) -> bytes:
        if data:
            if self._junk:
                return b""
            self._buf = memoryview(data)
            self._pos = 0
        buf = self._buf
        if buf is None:
            self.pending = False
            return b""
        pos = self._pos
        d = self._d
        if d is None:  # a member starts: its first two bytes say what it is
            saved = self._head
            head = saved + buf[pos : pos + 2 - len(saved)].tobytes()
            if len(head) < 2:
                self._head = head
                self._buf = None
                self.pending = False
                return b""
            self._head = b""
            d = self._start(head)
            if d is None:  # trailing bytes that start no member
                self._junk = True
                self._buf = None
                self.pending = False
                return b""
            if saved:  # one byte from the chunk before: too short for any output
                d.decompress(saved)
        piece = buf[pos : pos + self._window]
        try:
            out: bytes = d.decompress(piece, self.limit)
        except zlib.error as exc:
            raise _Failure(f"data is corrupt ({exc})") from exc
        if d.eof:
            pos += len(piece) - len(d.unused_data)
            self._end(b"")
        else:
            self._d = d
            tail = len(d.unconsumed_tail)
            pos += len(piece) - tail
            if not tail and (len(out) < self.limit or not self.limit):
                self._window = min(self._window * 2, _UNBOUNDED)  # it goes on: bigger steps
        if pos >= len(buf) or self._junk:
            self._buf = None
        else:
            self._buf = buf
            self._pos = pos
        self.pending = self._buf is not None or (self._d is not None and len(out) == self.limit)
        return out

    def _start(self, head: bytes) -> Any:
        """An inflater for the member that starts with ``head``; None for trailing junk."""
        if self._gzip:
            if head != b"\x1f\x8b":  # RFC 1952 §2.3.1: ID1 ID2
                if self._streams:
                    return None
                raise _Failure("data is corrupt (not gzip: bad magic bytes)")
            d = zlib.decompressobj(31)
        else:
            # RFC 1950 §2.2: CM 8, CINFO <= 7, and CMF*256 + FLG a multiple of 31.
            zlib_header = (
                head[0] & 0x0F == 8 and head[0] >> 4 <= 7 and int.from_bytes(head, "big") % 31 == 0
            )
            d = zlib.decompressobj(15 if zlib_header else -15)
        return d

    def finish(self) -> None:
        if self._d is not None or (self._head and not self._streams):
            raise _truncated()


#: brotli stops growing its output buffer once it reaches the limit, so the
#: output may pass it by a block: ask for less (one 32 KiB block in brotli 1.2).
_BROTLI_LIMIT = CHUNK_LIMIT // 2


class _BrotliDecoder:
    """br (RFC 7932). Bytes after the end are an error: brotli doesn't say where it ended.

    brotli >= 1.2 bounds each step's output (``output_buffer_limit``); older
    versions are fed 1 KiB of input at a time, which bounds the output only
    by brotli's ratio.
    """

    __slots__ = ("_d", "_done", "_error", "_extra", "_limited", "_rest", "_started", "pending")

    def __init__(self, brotli: Any) -> None:
        self._d = brotli.Decompressor()
        self._error = brotli.error
        self._limited = hasattr(self._d, "can_accept_more_data")
        self._extra: memoryview | None = None  # output beyond CHUNK_LIMIT, for the next calls
        self._rest = memoryview(b"")  # input not yet given (brotli < 1.2)
        self._started = self._done = False
        self.pending = False

    def decode(self, data: bytes) -> bytes:
        extra = self._extra
        if extra is not None:
            self._extra = extra[CHUNK_LIMIT:] if len(extra) > CHUNK_LIMIT else None
            self.pending = self._extra is not None or not self._done
            return extra[:CHUNK_LIMIT].tobytes()
        if data:
            self._started = True
            if self._done:
                raise _Failure("data is corrupt (bytes after the end of the stream)")
        d = self._d
        try:
            if self._limited:
                # brotli 1.2 says can_accept_more_data() even with output left:
                # output that came means more may come (urllib3 does the same).
                out: bytes = d.process(data, output_buffer_limit=_BROTLI_LIMIT)
                more = bool(out)
            else:
                rest = memoryview(data) if data else self._rest
                out = d.process(rest[:1024])
                self._rest = rest[1024:]
                more = bool(out) or bool(self._rest)
        except self._error as exc:
            raise _Failure(f"data is corrupt ({exc})") from exc
        if d.is_finished():
            if self._rest:
                raise _Failure("data is corrupt (bytes after the end of the stream)")
            self._done = True
            more = False
        if len(out) > CHUNK_LIMIT:
            self._extra = memoryview(out)[CHUNK_LIMIT:]
            out = out[:CHUNK_LIMIT]
            more = True
        self.pending = more
        return out

    def finish(self) -> None:
        if self._started and not self._done:
            raise _truncated()


#: RFC 9659 §3: the "zstd" coding uses windows of at most 8 MiB; a larger one is refused.
_ZSTD_MAX_WINDOW = 8 << 20
_ZSTD_MAGIC = 0xFD2FB528
_MAGIC, _DESCRIPTOR, _SKIP_SIZE, _BLOCK = range(4)  # header fields, by the bytes they want:
_WANT = (4, 1, 4, 3)
_HEADER_END, _BLOCK_END, _FRAME_END = range(3)  # what ends a run of bytes


class _ZstdDecoder:
    """zstd (RFC 8878), frame after frame; skippable frames are skipped.

    python-zstandard's decompressobj gives all the output of the input it
    gets, and a block (at most 128 KiB of output) may be 4 bytes long. So a
    small parser follows the frame and block headers (RFC 8878 §3.1.1) and
    input is fed up to the end of one block at a time. The parser also knows
    when the body ended inside a frame.
    """

    __slots__ = (
        "_buf",
        "_checksum",
        "_d",
        "_error",
        "_extra",
        "_field",
        "_frames",
        "_hdr",
        "_junk",
        "_need",
        "_pos",
        "_then",
        "_zstd",
        "pending",
    )

    def __init__(self, zstandard: Any) -> None:
        self._zstd = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW)
        self._error: type[Exception] = zstandard.ZstdError
        self._d: Any = None
        self._buf: memoryview | None = None
        self._pos = 0
        self._extra: memoryview | None = None
        self._field = _MAGIC  # the header field being read, when not in a run
        self._hdr = bytearray()
        self._need = 0  # bytes left in the current run (header rest, block, skippable frame)
        self._then: int | None = None  # what ends the run; None when reading a field
        self._checksum = False
        self._frames = 0
        self._junk = False
        self.pending = False

    def decode(self, data: bytes) -> bytes:
        extra = self._extra
        if extra is not None:
            self._extra = extra[CHUNK_LIMIT:] if len(extra) > CHUNK_LIMIT else None
            self.pending = self._extra is not None or self._buf is not None
            return extra[:CHUNK_LIMIT].tobytes()
        if data and not self._junk:
            self._buf = memoryview(data)
            self._pos = 0
        buf = self._buf
        while buf is not None:
            start, end, frame_end = self._walk(buf)
            d = self._d
            out = b""
            try:
                if d is not None and end > start:
                    out = d.decompress(buf[start:end])
                if frame_end and d is not None and not d.eof:
                    raise _Failure("data is corrupt (a frame ends before its last block)")
            except self._error as exc:
                raise _Failure(f"data is corrupt ({exc})") from exc
            if frame_end:
                self._d = None
            if self._pos >= len(buf) or self._junk:
                self._buf = buf = None
            if out:
                if len(out) > CHUNK_LIMIT:
                    self._extra = memoryview(out)[CHUNK_LIMIT:]
                    out = out[:CHUNK_LIMIT]
                self.pending = self._extra is not None or buf is not None
                return out
        self.pending = False
        return b""

    def _walk(self, buf: memoryview) -> tuple[int, int, bool]:
        """Follow the headers from ``self._pos``: feed ``buf[start:end]``; did a frame end?"""
        i = start = self._pos
        n = len(buf)
        while True:
            if self._then is not None:  # inside a run of bytes
                take = min(self._need, n - i)
                i += take
                self._need -= take
                if self._need:
                    break
                then, self._then = self._then, None
                self._field = _BLOCK
                if then != _HEADER_END:  # a block's output is complete: feed up to here
                    if then == _FRAME_END:
                        self._field = _MAGIC
                        self._frames += 1
                    self._pos = i
                    return start, i, then == _FRAME_END
                continue
            if i == n:
                break
            want = _WANT[self._field]
            take = min(want - len(self._hdr), n - i)
            self._hdr += buf[i : i + take]
            i += take
            if len(self._hdr) < want:
                break
            value = int.from_bytes(self._hdr, "little")
            if self._field == _MAGIC:
                magic = bytes(self._hdr)
                self._hdr.clear()
                start = i
                if value == _ZSTD_MAGIC:
                    self._d = self._zstd.decompressobj()
                    self._d.decompress(magic)  # four bytes give no output
                    self._field = _DESCRIPTOR
                elif value & 0xFFFFFFF0 == 0x184D2A50:  # RFC 8878 §3.1.2
                    self._field = _SKIP_SIZE
                elif self._frames:  # trailing bytes that start no frame
                    self._junk = True
                    self._pos = n
                    return i, i, False
                else:
                    raise _Failure("data is corrupt (not zstd: bad magic number)")
                continue
            self._hdr.clear()
            if self._field == _DESCRIPTOR:  # RFC 8878 §3.1.1.1.1
                single = value & 0x20
                self._checksum = bool(value & 0x04)
                self._need = (
                    (0 if single else 1)  # Window_Descriptor
                    + (0, 1, 2, 4)[value & 0x03]  # Dictionary_ID
                    + (1 if single else 0, 2, 4, 8)[value >> 6]  # Frame_Content_Size
                )
                self._then = _HEADER_END
            elif self._field == _SKIP_SIZE:
                self._need = value
                self._then = _FRAME_END
            else:  # RFC 8878 §3.1.1.2: Last_Block, Block_Type, Block_Size
                last, kind, size = value & 1, (value >> 1) & 3, value >> 3
                if kind == 3:
                    raise _Failure("data is corrupt (reserved block type)")
                self._need = (1 if kind == 1 else size) + (4 if last and self._checksum else 0)
                self._then = _FRAME_END if last else _BLOCK_END
        self._pos = i
        return start, i, False

    def finish(self) -> None:
        # Between frames is the only good place to end; fewer than four bytes
        # after a frame are trailing junk, not the start of one.
        between = self._field == _MAGIC and self._then is None
        if not (self._junk or (between and (self._frames or not self._hdr))):
            raise _truncated()
