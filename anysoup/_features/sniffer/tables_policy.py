"""The byte patterns of the WHATWG MIME Sniffing Standard: its tables as data, and matching.

Theory of operation
-------------------
Each table below is the standard's own table (mimesniff.spec.whatwg.org,
review draft 2026-01), one :class:`Row` per row and in the same order: the
byte pattern and the pattern mask in hexadecimal as printed there, the set of
leading bytes to be ignored, and the MIME type a match computes. ``TT`` in a
pattern is the standard's *tag-terminating byte* (SP or ``>``), which no mask
can express; a row ending in ``TT`` checks that byte separately.

The tables are searched top to bottom and the first matching row wins, so
the rows keep the standard's order.

:meth:`Row.matches` is the standard's *pattern matching algorithm*
("Matching a MIME type pattern"): skip the leading bytes to be ignored, then
compare ``byte & mask`` with the pattern, position by position. In a mask,
``FF`` means the byte counts exactly, ``DF`` that it counts without ASCII
case, ``00`` that it does not count.

The matching functions at the end run a table, or (for MP4, WebM and MP3
without ID3, which the standard gives as algorithms) check a signature.

Section names below are the standard's headings.

This is a policy module: no I/O, no anyio.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "APACHE_BUG_TYPES",
    "ARCHIVE_TYPES",
    "AUDIO_VIDEO_TYPES",
    "FONT_TYPES",
    "IMAGE_TYPES",
    "MP25_BITRATES",
    "MP3_BITRATES",
    "MP3_SAMPLE_RATES",
    "NON_SCRIPTABLE_TYPES",
    "SCRIPTABLE_TYPES",
    "UNKNOWN_TYPES",
    "WHITESPACE",
    "Row",
    "first_match",
    "match_archive_type",
    "match_audio_video_type",
    "match_font_type",
    "match_image_type",
    "matches_mp3_without_id3",
    "matches_mp4",
    "matches_webm",
]

#: Terminology: "whitespace byte" (0xWS): HT, LF, FF, CR, SP.
WHITESPACE = frozenset(b"\t\n\x0c\r ")

#: Terminology: "tag-terminating byte" (0xTT): SP, ``>``.
TAG_TERMINATING = frozenset(b" >")

_NONE: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Row:
    """One row of a pattern table."""

    #: The byte pattern, without a trailing ``TT``.
    pattern: bytes
    #: The pattern mask, as long as :attr:`pattern`.
    mask: bytes
    #: Leading bytes to be ignored (an empty set for the standard's "None.").
    ignored: frozenset[int]
    #: The MIME type computed on a match.
    mime_type: str
    #: Whether a tag-terminating byte must follow the pattern.
    tag_terminated: bool = False

    def matches(self, data: bytes) -> bool:
        """The standard's pattern matching algorithm applied to ``data``."""
        size = len(self.pattern) + self.tag_terminated
        if len(data) < size:
            return False
        start = 0
        if self.ignored:
            while start < len(data) and data[start] in self.ignored:
                start += 1
        window = data[start : start + size]
        if len(window) < size:
            return False  # the standard's "undefined" byte never matches
        pattern = self.pattern
        if self.tag_terminated and window[-1] not in TAG_TERMINATING:
            return False
        if self.mask.count(0xFF) == len(self.mask):
            return window.startswith(pattern)
        return all(b & m == p for b, m, p in zip(window, self.mask, pattern, strict=False))


def _row(pattern: str, mask: str, ignored: frozenset[int], mime_type: str) -> Row:
    """Build a row from the standard's hexadecimal notation ("3C 48 31 TT")."""
    tokens = pattern.split()
    terminated = tokens[-1] == "TT"
    if terminated:
        tokens.pop()
    data = bytes.fromhex(" ".join(tokens))
    mask_bytes = bytes.fromhex(mask)
    # The TT column's mask (FF) is implied by the tag-terminating check.
    mask_bytes = mask_bytes[: len(data)] if terminated else mask_bytes
    if len(mask_bytes) != len(data):  # the standard asserts equal lengths
        raise ValueError(f"pattern {pattern!r} and mask {mask!r} differ in length")
    if any(p & m != p for p, m in zip(data, mask_bytes, strict=True)):
        raise ValueError(f"pattern {pattern!r} has bits its mask {mask!r} drops")
    return Row(data, mask_bytes, ignored, mime_type, terminated)


WS = WHITESPACE

#: "Identifying a resource with an unknown MIME type", first table: the
#: scriptable types, used only when the sniff-scriptable flag is set.
SCRIPTABLE_TYPES: tuple[Row, ...] = (
    _row("3C 21 44 4F 43 54 59 50 45 20 48 54 4D 4C TT",
         "FF FF DF DF DF DF DF DF DF FF DF DF DF DF FF", WS, "text/html"),  # <!DOCTYPE HTML
    _row("3C 48 54 4D 4C TT", "FF DF DF DF DF FF", WS, "text/html"),  # <HTML
    _row("3C 48 45 41 44 TT", "FF DF DF DF DF FF", WS, "text/html"),  # <HEAD
    _row("3C 53 43 52 49 50 54 TT", "FF DF DF DF DF DF DF FF", WS, "text/html"),  # <SCRIPT
    _row("3C 49 46 52 41 4D 45 TT", "FF DF DF DF DF DF DF FF", WS, "text/html"),  # <IFRAME
    _row("3C 48 31 TT", "FF DF FF FF", WS, "text/html"),  # <H1
    _row("3C 44 49 56 TT", "FF DF DF DF FF", WS, "text/html"),  # <DIV
    _row("3C 46 4F 4E 54 TT", "FF DF DF DF DF FF", WS, "text/html"),  # <FONT
    _row("3C 54 41 42 4C 45 TT", "FF DF DF DF DF DF FF", WS, "text/html"),  # <TABLE
    _row("3C 41 TT", "FF DF FF", WS, "text/html"),  # <A
    _row("3C 53 54 59 4C 45 TT", "FF DF DF DF DF DF FF", WS, "text/html"),  # <STYLE
    _row("3C 54 49 54 4C 45 TT", "FF DF DF DF DF DF FF", WS, "text/html"),  # <TITLE
    _row("3C 42 TT", "FF DF FF", WS, "text/html"),  # <B
    _row("3C 42 4F 44 59 TT", "FF DF DF DF DF FF", WS, "text/html"),  # <BODY
    _row("3C 42 52 TT", "FF DF DF FF", WS, "text/html"),  # <BR
    _row("3C 50 TT", "FF DF FF", WS, "text/html"),  # <P
    _row("3C 21 2D 2D TT", "FF FF FF FF FF", WS, "text/html"),  # <!--
    _row("3C 3F 78 6D 6C", "FF FF FF FF FF", WS, "text/xml"),  # <?xml
    _row("25 50 44 46 2D", "FF FF FF FF FF", _NONE, "application/pdf"),  # %PDF-
)  # fmt: skip

#: "Identifying a resource with an unknown MIME type", second table: PostScript
#: and the byte order marks.
NON_SCRIPTABLE_TYPES: tuple[Row, ...] = (
    _row("25 21 50 53 2D 41 64 6F 62 65 2D", "FF FF FF FF FF FF FF FF FF FF FF", _NONE,
         "application/postscript"),  # %!PS-Adobe-
    _row("FE FF 00 00", "FF FF 00 00", _NONE, "text/plain"),  # UTF-16BE BOM
    _row("FF FE 00 00", "FF FF 00 00", _NONE, "text/plain"),  # UTF-16LE BOM
    _row("EF BB BF 00", "FF FF FF 00", _NONE, "text/plain"),  # UTF-8 BOM
)  # fmt: skip

#: "Matching an image type pattern".
IMAGE_TYPES: tuple[Row, ...] = (
    _row("00 00 01 00", "FF FF FF FF", _NONE, "image/x-icon"),  # Windows Icon
    _row("00 00 02 00", "FF FF FF FF", _NONE, "image/x-icon"),  # Windows Cursor
    _row("42 4D", "FF FF", _NONE, "image/bmp"),  # BM
    _row("47 49 46 38 37 61", "FF FF FF FF FF FF", _NONE, "image/gif"),  # GIF87a
    _row("47 49 46 38 39 61", "FF FF FF FF FF FF", _NONE, "image/gif"),  # GIF89a
    _row("52 49 46 46 00 00 00 00 57 45 42 50 56 50",
         "FF FF FF FF 00 00 00 00 FF FF FF FF FF FF", _NONE, "image/webp"),  # RIFF....WEBPVP
    _row("89 50 4E 47 0D 0A 1A 0A", "FF FF FF FF FF FF FF FF", _NONE, "image/png"),
    _row("FF D8 FF", "FF FF FF", _NONE, "image/jpeg"),  # SOI + another marker
)  # fmt: skip

#: "Matching an audio or video type pattern" (the table part; MP4, WebM
#: and MP3 without ID3 are algorithms, in the sniffer).
AUDIO_VIDEO_TYPES: tuple[Row, ...] = (
    _row("46 4F 52 4D 00 00 00 00 41 49 46 46",
         "FF FF FF FF 00 00 00 00 FF FF FF FF", _NONE, "audio/aiff"),  # FORM....AIFF
    _row("49 44 33", "FF FF FF", _NONE, "audio/mpeg"),  # ID3
    _row("4F 67 67 53 00", "FF FF FF FF FF", _NONE, "application/ogg"),  # OggS NUL
    _row("4D 54 68 64 00 00 00 06", "FF FF FF FF FF FF FF FF", _NONE, "audio/midi"),  # MThd 6
    _row("52 49 46 46 00 00 00 00 41 56 49 20",
         "FF FF FF FF 00 00 00 00 FF FF FF FF", _NONE, "video/avi"),  # RIFF....AVI
    _row("52 49 46 46 00 00 00 00 57 41 56 45",
         "FF FF FF FF 00 00 00 00 FF FF FF FF", _NONE, "audio/wave"),  # RIFF....WAVE
)  # fmt: skip

#: "Matching a font type pattern".
FONT_TYPES: tuple[Row, ...] = (
    _row("00 " * 34 + "4C 50", "00 " * 34 + "FF FF", _NONE,
         "application/vnd.ms-fontobject"),  # 34 bytes, then "LP": Embedded OpenType
    _row("00 01 00 00", "FF FF FF FF", _NONE, "font/ttf"),  # TrueType version 1.0
    _row("4F 54 54 4F", "FF FF FF FF", _NONE, "font/otf"),  # OTTO
    _row("74 74 63 66", "FF FF FF FF", _NONE, "font/collection"),  # ttcf
    _row("77 4F 46 46", "FF FF FF FF", _NONE, "font/woff"),  # wOFF
    _row("77 4F 46 32", "FF FF FF FF", _NONE, "font/woff2"),  # wOF2
)  # fmt: skip

#: "Matching an archive type pattern".
ARCHIVE_TYPES: tuple[Row, ...] = (
    _row("1F 8B 08", "FF FF FF", _NONE, "application/x-gzip"),  # gzip, deflate method
    _row("50 4B 03 04", "FF FF FF FF", _NONE, "application/zip"),  # PK ETX EOT
    _row("52 61 72 21 1A 07 00", "FF FF FF FF FF FF FF", _NONE,
         "application/x-rar-compressed"),  # Rar! SUB BEL NUL (RAR 4.x)
)  # fmt: skip

#: "Interpreting the resource metadata": a Content-Type header *exactly* equal
#: to one of these sets the check-for-apache-bug flag (old Apache servers sent
#: them for any file).
APACHE_BUG_TYPES = frozenset(
    {
        "text/plain",
        "text/plain; charset=ISO-8859-1",
        "text/plain; charset=iso-8859-1",
        "text/plain; charset=UTF-8",
    }
)

#: "Determining the computed MIME type of a resource": essences that mean "no type supplied".
UNKNOWN_TYPES = frozenset({"unknown/unknown", "application/unknown", "*/*"})

#: "Signature for MP3 without ID3": the mp3-rates table (bits per second, by
#: bit-rate index), MPEG-1 Layer III.
MP3_BITRATES = (
    0, 32000, 40000, 48000, 56000, 64000, 80000, 96000,
    112000, 128000, 160000, 192000, 224000, 256000, 320000,
)  # fmt: skip

#: The same section's mp2.5-rates table: MPEG-2 and MPEG-2.5 Layer III.
MP25_BITRATES = (
    0, 8000, 16000, 24000, 32000, 40000, 48000, 56000,
    64000, 80000, 96000, 112000, 128000, 144000, 160000,
)  # fmt: skip

#: The same section's sample-rate table (Hz, by sample-rate index), for MPEG-1;
#: MPEG-2 halves it and MPEG-2.5 quarters it (ISO/IEC 13818-3).
MP3_SAMPLE_RATES = (44100, 48000, 32000)


# -- matching: the tables, and the signatures that are algorithms --------------


def first_match(rows: tuple[Row, ...], data: bytes) -> str | None:
    """The MIME type of the first row of ``rows`` that matches ``data``, or None."""
    for row in rows:
        if row.matches(data):
            return row.mime_type
    return None


# -- pattern matching: images, audio and video, fonts, archives ----------------


def match_image_type(data: bytes) -> str | None:
    """The image type pattern matching algorithm."""
    return first_match(IMAGE_TYPES, data)


def match_audio_video_type(data: bytes) -> str | None:
    """The audio or video type pattern matching algorithm: the table, then MP4, WebM, MP3."""
    matched = first_match(AUDIO_VIDEO_TYPES, data)
    if matched is not None:
        return matched
    if matches_mp4(data):
        return "video/mp4"
    if matches_webm(data):
        return "video/webm"
    if matches_mp3_without_id3(data):
        return "audio/mpeg"
    return None


def match_font_type(data: bytes) -> str | None:
    """The font type pattern matching algorithm."""
    return first_match(FONT_TYPES, data)


def match_archive_type(data: bytes) -> str | None:
    """The archive type pattern matching algorithm."""
    return first_match(ARCHIVE_TYPES, data)


def matches_mp4(data: bytes) -> bool:
    """The signature for MP4: an ``ftyp`` box naming an ``mp4`` brand."""
    if len(data) < 12:
        return False
    box_size = int.from_bytes(data[:4], "big")
    if len(data) < box_size or box_size % 4 != 0 or data[4:8] != b"ftyp":
        return False
    if data[8:11] == b"mp4":  # the major brand
        return True
    # The compatible brands, skipping the major brand's version (bytes 12-15).
    return any(data[i : i + 3] == b"mp4" for i in range(16, box_size, 4))


def matches_webm(data: bytes) -> bool:
    """The signature for WebM: an EBML header whose DocType is ``webm``.

    The standard scans the first 38 bytes for the DocType element (ID
    ``42 82``), reads its size as an EBML variable-length integer, and wants
    the value to be ``webm`` after optional NUL padding. The whole value must
    be in ``data``.
    """
    if len(data) < 4 or data[:4] != b"\x1a\x45\xdf\xa3":
        return False
    i = 4
    while i < len(data) and i < 38:
        if data[i : i + 2] == b"\x42\x82":
            i += 2
            if i >= len(data):
                return False
            width, size = _parse_vint(data, i)
            i += width
            value = data[i : i + size]
            if len(value) == size and value.lstrip(b"\x00") == b"webm":
                return True
        i += 1
    return False


def _parse_vint(data: bytes, i: int) -> tuple[int, int]:
    """Parse an EBML variable-length integer at ``data[i]``: (its width, its value)."""
    first = data[i]
    mask = 0x80
    width = 1
    while width < 8 and not first & mask:  # the width is the place of the first 1 bit
        mask >>= 1
        width += 1
    value = first & ~mask & 0xFF
    for byte in data[i + 1 : i + width]:
        value = value << 8 | byte
    return width, value


def matches_mp3_without_id3(data: bytes) -> bool:
    """The signature for MP3 without ID3: two MPEG audio Layer III frame headers in a row.

    The frame length comes from the header's bit rate, sample rate and
    padding; the next frame header must start right after it.
    """
    size = _mp3_frame_size(data, 0)
    if size is None or size < 4 or size > len(data):
        return False
    return _mp3_frame_size(data, size) is not None


def _mp3_frame_size(data: bytes, s: int) -> int | None:
    """The length of the MPEG audio Layer III frame whose header is at ``data[s]``, or None.

    This is the standard's "match an mp3 header", "parse an mp3 frame" and
    "compute an mp3 frame size" with the MPEG audio header's meaning (ISO/IEC
    11172-3 and 13818-3): the version bits choose the bit-rate table (MPEG-1:
    mp3-rates; MPEG-2 and 2.5: mp2.5-rates), scale the sample rate and choose
    144 or 72 samples/8 per frame. (Read literally, the standard's text swaps
    the tables and never scales, and then rejects real files.)
    """
    if len(data) < s + 4:
        return None
    b1, b2 = data[s + 1], data[s + 2]
    if data[s] != 0xFF or b1 & 0xE0 != 0xE0:  # the 11-bit frame sync
        return None
    version = (b1 & 0x18) >> 3  # 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5, 1: reserved
    layer = (b1 & 0x06) >> 1  # 1: Layer III, 2: II, 3: I, 0: reserved
    bitrate_index = b2 >> 4
    rate_index = (b2 & 0x0C) >> 2
    if version == 1 or layer != 1 or bitrate_index == 15 or rate_index == 3:
        return None
    mpeg1 = version == 3
    bitrate = (MP3_BITRATES if mpeg1 else MP25_BITRATES)[bitrate_index]
    sample_rate = MP3_SAMPLE_RATES[rate_index] >> (0 if mpeg1 else 1 if version == 2 else 2)
    padding = (b2 & 0x02) >> 1
    return bitrate * (144 if mpeg1 else 72) // sample_rate + padding
