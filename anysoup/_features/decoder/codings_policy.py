"""Content-coding decoders: gzip, deflate, br and zstd, as policy (no I/O).

Each decoder is synchronous: ``decode(data)`` takes new input (or ``b""``
to go on with what it holds) and returns at most :data:`CHUNK_LIMIT` bytes
of output, even when the reader asked for the whole body: a bounded step
is what lets ``send_and_read`` stop a bomb at its ``max_size``. ``pending``
tells whether ``decode(b"")`` may give more without new input;
``finish()`` raises when the input ended inside the compressed data. They
raise :class:`CodingFailure`, which ``_features/decoder/decoder.py`` turns
into an :class:`~anysoup.EncodingError` naming the host and the coding. A decoder
keeps the input it has not yet turned into output (zlib's
``unconsumed_tail``, brotli's buffer, the rest of a chunk), so a
decompression bomb costs the reader time, never memory.
"""

from __future__ import annotations

import functools
import importlib
import zlib
from collections.abc import Callable
from typing import Any, Protocol

__all__ = [
    "CHUNK_LIMIT",
    "OPTIONAL",
    "load_any",
    "BrotliDecoder",
    "CodingFailure",
    "Decoder",
    "ZlibDecoder",
    "ZstdDecoder",
    "load_library",
    "decoder_for",
]

#: Decoded bytes one read of the filter returns at most (DESIGN §6). CPython's
#: zlib output buffer starts with a 32 KiB block: one full block is returned
#: as it is, where a 64 KiB limit would make zlib join two blocks every time.
CHUNK_LIMIT = 32768
#: The optional codings: the modules that decode them, in order of preference,
#: and the extra that installs one. brotlicffi has brotli's API and is what
#: PyPy users have (httpx, urllib3 and aiohttp take either).
OPTIONAL = {"br": (("brotli", "brotlicffi"), "brotli"), "zstd": (("zstandard",), "zstd")}


@functools.cache
def load_library(name: str) -> Any:
    """The module ``name`` (imported on first use), or None if it does not import.

    The long-dead brotlipy also installs a module ``brotli``, with another
    API: it counts as missing.
    """
    try:
        module = importlib.import_module(name)
    except ImportError:
        return None
    if name.startswith("brotli") and not hasattr(getattr(module, "Decompressor", None), "process"):
        return None
    return module


def load_any(names: tuple[str, ...]) -> Any:
    """The first of the modules ``names`` that imports, or None."""
    for name in names:
        module = load_library(name)
        if module is not None:
            return module
    return None


def decoder_for(coding: str) -> Callable[[], Decoder] | str | None:
    """A decoder factory for ``coding``; None if unknown; a str if its library is missing."""
    if coding in ("gzip", "x-gzip"):
        return functools.partial(ZlibDecoder, True)
    if coding == "deflate":
        return functools.partial(ZlibDecoder, False)
    if coding in OPTIONAL:
        modules, extra = OPTIONAL[coding]
        library = load_any(modules)
        if library is None:
            return (
                f"the {coding!r} content coding needs the {' or '.join(modules)} library: "
                f"install anysoup[{extra}]"
            )
        return functools.partial(BrotliDecoder if coding == "br" else ZstdDecoder, library)
    return None


class CodingFailure(Exception):
    """The data is corrupt or cut short (the filter makes it an EncodingError)."""


class Decoder(Protocol):
    pending: bool

    def decode(self, data: bytes) -> bytes: ...

    def finish(self) -> None: ...


def truncated() -> CodingFailure:
    return CodingFailure("data ends early: the body was cut inside the compressed stream")


#: After a gzip member ends, the rest is fed to zlib in windows from this size,
#: doubling while a member goes on. zlib copies the input left after a member
#: into ``unused_data``: feeding all of a chunk full of tiny members would copy
#: its rest once per member (quadratic); a window bounds each copy.
_FIRST_WINDOW = 512
_UNBOUNDED = 1 << 62


class ZlibDecoder:
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
        "pending",
    )

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
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
            out: bytes = d.decompress(data or d.unconsumed_tail, CHUNK_LIMIT)
        except zlib.error as exc:
            raise CodingFailure(f"data is corrupt ({exc})") from exc
        if d.eof:
            self._end(d.unused_data)
        else:
            self.pending = len(out) == CHUNK_LIMIT or bool(d.unconsumed_tail)
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
            out: bytes = d.decompress(piece, CHUNK_LIMIT)
        except zlib.error as exc:
            raise CodingFailure(f"data is corrupt ({exc})") from exc
        if d.eof:
            pos += len(piece) - len(d.unused_data)
            self._end(b"")
        else:
            self._d = d
            tail = len(d.unconsumed_tail)
            pos += len(piece) - tail
            if not tail and len(out) < CHUNK_LIMIT:
                self._window = min(self._window * 2, _UNBOUNDED)  # it goes on: bigger steps
        if pos >= len(buf) or self._junk:
            self._buf = None
        else:
            self._buf = buf
            self._pos = pos
        self.pending = self._buf is not None or (self._d is not None and len(out) == CHUNK_LIMIT)
        return out

    def _start(self, head: bytes) -> Any:
        """An inflater for the member that starts with ``head``; None for trailing junk."""
        if self._gzip:
            if head != b"\x1f\x8b":  # RFC 1952 §2.3.1: ID1 ID2
                if self._streams:
                    return None
                raise CodingFailure("data is corrupt (not gzip: bad magic bytes)")
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
            raise truncated()


#: brotli stops growing its output buffer once it reaches the limit, so the
#: output may pass it by a block: ask for less (one 32 KiB block in brotli 1.2).
_BROTLI_LIMIT = CHUNK_LIMIT // 2


class BrotliDecoder:
    """br (RFC 7932). Bytes after the end are an error: brotli doesn't say where it ended.

    brotli >= 1.2 bounds each step's output (``output_buffer_limit``); older
    versions are fed 1 KiB of input at a time, which bounds the output only
    by brotli's ratio.
    """

    __slots__ = ("_d", "_done", "_error", "_extra", "_limited", "_rest", "_started", "pending")

    def __init__(self, brotli: Any, dictionary: bytes | None = None) -> None:
        # A raw dictionary (RFC 9842 dcb) only with a library that takes one.
        if dictionary is None:
            self._d = brotli.Decompressor()
        else:
            self._d = brotli.Decompressor(dictionary=dictionary)
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
                raise CodingFailure("data is corrupt (bytes after the end of the stream)")
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
            raise CodingFailure(f"data is corrupt ({exc})") from exc
        if d.is_finished():
            if self._rest:
                raise CodingFailure("data is corrupt (bytes after the end of the stream)")
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
            raise truncated()


#: RFC 9659 §3: the "zstd" coding uses windows of at most 8 MiB; a larger one is refused.
_ZSTD_MAX_WINDOW = 8 << 20
_ZSTD_MAGIC = 0xFD2FB528
_MAGIC, _DESCRIPTOR, _SKIP_SIZE, _BLOCK = range(4)  # header fields, by the bytes they want:
_WANT = (4, 1, 4, 3)
_HEADER_END, _BLOCK_END, _FRAME_END = range(3)  # what ends a run of bytes


class ZstdDecoder:
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

    def __init__(
        self, zstandard: Any, dict_data: Any = None, max_window: int = _ZSTD_MAX_WINDOW
    ) -> None:
        # dict_data: a ZstdCompressionDict for the frames (RFC 9842 dcz), or None.
        self._zstd = zstandard.ZstdDecompressor(dict_data=dict_data, max_window_size=max_window)
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
                    raise CodingFailure("data is corrupt (a frame ends before its last block)")
            except self._error as exc:
                raise CodingFailure(f"data is corrupt ({exc})") from exc
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
                    raise CodingFailure("data is corrupt (not zstd: bad magic number)")
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
                    raise CodingFailure("data is corrupt (reserved block type)")
                self._need = (1 if kind == 1 else size) + (4 if last and self._checksum else 0)
                self._then = _FRAME_END if last else _BLOCK_END
        self._pos = i
        return start, i, False

    def finish(self) -> None:
        # Between frames is the only good place to end; fewer than four bytes
        # after a frame are trailing junk, not the start of one.
        between = self._field == _MAGIC and self._then is None
        if not (self._junk or (between and (self._frames or not self._hdr))):
            raise truncated()
