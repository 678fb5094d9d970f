"""ContentSniffer: the WHATWG MIME Sniffing algorithm, then the feature in a session.

The algorithm is tested as plain functions over byte strings written out by
hand from the standard's tables (mimesniff.spec.whatwg.org): every row of the
image, audio/video, font, archive and unknown-type tables, the MP4, WebM and
MP3 signatures, text versus binary, and feeds mislabeled as HTML. A coverage
test checks that each table row is the first match of some case here.

The feature is tested through a Session against the scripted h11 server of
``servers.py``, on both backends, with ``leak_check`` after each session.
"""

from __future__ import annotations

import ast
import gzip
import inspect
import struct
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from servers import ReceivedRequest, ServerConnection, serve_http

import anysoup
from anysoup import (
    ContentSniffer,
    Message,
    MessageFlags,
    PoolStatistics,
    Session,
    SessionFeature,
)
from anysoup._features.sniffer import tables_policy as tables
from anysoup._features.sniffer.sniff_policy import (
    SNIFF_BUFFER_SIZE,
    feed_or_html,
    identify_unknown,
    plan_sniffing,
    sniff_mime_type,
    text_or_binary,
)
from anysoup._features.sniffer.tables_policy import (
    Row,
    match_archive_type,
    match_audio_video_type,
    match_font_type,
    match_image_type,
)

LeakCheck = Callable[[Session], Awaitable[None]]

# -- hand-written resource headers ----------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01"
GIF89 = b"GIF89a\x10\x00\x10\x00\x80\x00\x00"


def eot_header() -> bytes:
    """An Embedded OpenType header: 34 bytes of sizes and metrics, then 0x504C LE."""
    head = struct.pack("<IIII", 4096, 4000, 0x00020001, 0)
    head += bytes(10) + b"\x01\x00" + struct.pack("<I", 400) + b"\x00\x00"
    assert len(head) == 34
    return head + b"LP" + bytes(8)


def mp3_frames(b1: int, b2: int, size: int, total: int = 512) -> bytes:
    """Two MPEG audio frame headers ``size`` bytes apart, padded to ``total``."""
    header = bytes((0xFF, b1, b2, 0x00))
    data = header + bytes(size - 4) + header
    return data + bytes(max(0, total - len(data)))


#: MPEG-1 Layer III, 128 kbit/s, 44.1 kHz: 144 * 128000 / 44100 = 417 bytes a frame.
MP3_MPEG1 = mp3_frames(0xFB, 0x90, 417)
#: The same with the padding bit: 418 bytes.
MP3_MPEG1_PADDED = mp3_frames(0xFB, 0x92, 418)
#: MPEG-2 Layer III, 64 kbit/s, 22.05 kHz: 72 * 64000 / 22050 = 208 bytes a frame.
MP3_MPEG2 = mp3_frames(0xF3, 0x80, 208)
#: MPEG-2.5 Layer III, 8 kbit/s, 11.025 kHz: 72 * 8000 / 11025 = 52 bytes a frame.
MP3_MPEG25 = mp3_frames(0xE3, 0x10, 52)

#: An EBML header whose DocType is "webm" (as mkvmerge writes it).
WEBM = bytes.fromhex("1A45DFA3 9F 4286 81 01 42F7 81 01 42F2 81 04 42F3 81 08 4282 84") + (
    b"webm\x42\x87\x81\x04\x42\x85\x81\x02"
)
#: The DocType padded with NULs in front (the standard's "padded sequence").
WEBM_PADDED = bytes.fromhex("1A45DFA3 93 4286 81 01 4282 86 0000") + b"webm\x42\x87\x81\x02"
#: A Matroska file: EBML, but another DocType.
MATROSKA = bytes.fromhex("1A45DFA3 A3 4286 81 01 4282 88") + b"matroska\x42\x87\x81\x04"

#: An ftyp box whose major brand is mp4 (box of 24 bytes).
MP4_MAJOR = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(8)
#: An ftyp box listing mp41 among its compatible brands.
MP4_COMPATIBLE = b"\x00\x00\x00\x1cftypisom\x00\x00\x02\x00isomiso2mp41" + bytes(8)
#: QuickTime: an ftyp box without an mp4 brand.
QUICKTIME = b"\x00\x00\x00\x14ftypqt  \x20\x05\x03\x00qt  " + bytes(8)

RSS_1_0 = (
    b'<?xml version="1.0"?>\n'
    b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"\n'
    b'         xmlns="http://purl.org/rss/1.0/">\n<channel>'
)
RSS_1_0_REVERSED = (
    b'<rdf:RDF xmlns="http://purl.org/rss/1.0/" '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
)


# -- the table of cases: (id, body, Content-Type, nosniff, expected type) -----------

Case = tuple[str, bytes, "str | None", bool, str]

UNKNOWN_CASES: list[Case] = [
    # the scriptable table, with and without leading whitespace bytes and case
    ("doctype", b"<!DOCTYPE html>\n<html>", None, False, "text/html"),
    ("doctype-ws-case", b" \t\n\x0c\r<!doctype HTML x", None, False, "text/html"),
    ("doctype-not-terminated", b"<!DOCTYPE htmlx>", None, False, "text/plain"),
    ("html", b"<HTML><body>", None, False, "text/html"),
    ("html-ws", b"\r\n  <html lang=en>", None, False, "text/html"),
    ("head", b"<head>", None, False, "text/html"),
    ("script", b"\n<Script src=x>", None, False, "text/html"),
    ("iframe", b"<IFRAME src=x>", None, False, "text/html"),
    ("h1", b"<h1>Title</h1>", None, False, "text/html"),
    ("h2-is-not-listed", b"<h2>Title</h2>", None, False, "text/plain"),
    ("div", b"<div class=x>", None, False, "text/html"),
    ("font", b"<FONT color=red>", None, False, "text/html"),
    ("table", b"<table>", None, False, "text/html"),
    ("a", b"<a href=x>", None, False, "text/html"),
    ("a-not-terminated", b"<abbr>", None, False, "text/plain"),
    ("style", b"<STYLE>", None, False, "text/html"),
    ("title", b"\t<title>x</title>", None, False, "text/html"),
    ("b", b"<B>bold</B>", None, False, "text/html"),
    ("body", b"<body onload=x>", None, False, "text/html"),
    ("br", b"<BR>", None, False, "text/html"),
    ("p", b"<p>para", None, False, "text/html"),
    ("comment", b"<!-- a comment -->", None, False, "text/html"),
    ("comment-not-terminated", b"<!--x-->", None, False, "text/plain"),
    ("xml", b'<?xml version="1.0"?><root/>', None, False, "text/xml"),
    ("xml-ws", b'  \n<?xml version="1.0"?>', None, False, "text/xml"),
    ("xml-is-case-sensitive", b"<?XML version", None, False, "text/plain"),
    ("pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3", None, False, "application/pdf"),
    ("pdf-no-leading-ws", b" %PDF-1.7", None, False, "text/plain"),
    # the second table: PostScript and byte order marks
    ("postscript", b"%!PS-Adobe-3.0\n", None, False, "application/postscript"),
    ("utf16be-bom", b"\xfe\xff\x00h\x00i", None, False, "text/plain"),
    ("utf16le-bom", b"\xff\xfeh\x00i\x00", None, False, "text/plain"),
    ("utf8-bom", b"\xef\xbb\xbfhi\x00", None, False, "text/plain"),
    ("utf8-bom-hides-html", b"\xef\xbb\xbf<html>", None, False, "text/plain"),
    ("bom-needs-four-bytes", b"\xfe\xff\x00", None, False, "application/octet-stream"),
    # images, audio and video, fonts, archives (one case per row in the sections below)
    ("png", PNG, None, False, "image/png"),
    ("mp3-without-id3", MP3_MPEG1, None, False, "audio/mpeg"),
    ("woff2", b"wOF2\x00\x01\x00\x00", None, False, "font/woff2"),
    ("gzip", b"\x1f\x8b\x08\x00\x00\x00\x00\x00", None, False, "application/x-gzip"),
    # text or binary
    ("text", b"just some text, 100% ASCII\r\n\tand\x0cmore\x1b[0m", None, False, "text/plain"),
    ("empty", b"", None, False, "text/plain"),
    ("nul", b"text\x00more", None, False, "application/octet-stream"),
    ("vt", b"text\x0bmore", None, False, "application/octet-stream"),
    ("sub", b"\x1a", None, False, "application/octet-stream"),
    ("us", b"\x1f", None, False, "application/octet-stream"),
    ("utf8", "héllo wörld".encode(), None, False, "text/plain"),
    # the audio/basic row left the current standard
    ("snd", b".snd\x00\x00\x00\x18", None, False, "application/octet-stream"),
    # every unknown supplied type
    ("unknown-unknown", b"<html>", "unknown/unknown", False, "text/html"),
    ("application-unknown", b"<html>", "application/unknown", False, "text/html"),
    ("star-star", b"<html>", "*/*", False, "text/html"),
    ("unparsable", b"<html>", "html", False, "text/html"),
    ("no-subtype", b"<html>", "text/", False, "text/html"),
    # nosniff: scriptable types are not sniffed, the rest is
    ("nosniff-html", b"<html>", None, True, "text/plain"),
    ("nosniff-xml", b"<?xml version", "application/unknown", True, "text/plain"),
    ("nosniff-pdf", b"%PDF-1.4", None, True, "text/plain"),
    ("nosniff-postscript", b"%!PS-Adobe-", None, True, "application/postscript"),
    ("nosniff-png", PNG, None, True, "image/png"),
    ("nosniff-binary", b"\x00\x01", None, True, "application/octet-stream"),
]

IMAGE_CASES: list[Case] = [
    ("ico", b"\x00\x00\x01\x00\x01\x00\x10\x10", "image/png", False, "image/x-icon"),
    ("cur", b"\x00\x00\x02\x00\x01\x00\x20\x20", "image/png", False, "image/x-icon"),
    ("bmp", b"BM\x36\x00\x0c\x00\x00\x00", "image/png", False, "image/bmp"),
    ("gif87a", b"GIF87a\x01\x00\x01\x00", "image/png", False, "image/gif"),
    ("gif89a", GIF89, "image/png", False, "image/gif"),
    ("webp", b"RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00", "image/png", False, "image/webp"),
    ("webp-lossless", b"RIFF\xff\xff\x00\x00WEBPVP8L", "image/gif", False, "image/webp"),
    ("png", PNG, "image/gif", False, "image/png"),
    ("jpeg", JPEG, "image/png", False, "image/jpeg"),
    ("jpeg-exif", b"\xff\xd8\xff\xe1\x00\x18Exif", "image/png", False, "image/jpeg"),
    # no match: the supplied image type stays
    ("gif88a", b"GIF88a\x01\x00", "image/png", False, "image/png"),
    ("bm-lowercase", b"bm\x36\x00", "image/png", False, "image/png"),
    ("riff-not-webp", b"RIFF\x24\x00\x00\x00WEBPXX", "image/jpeg", False, "image/jpeg"),
    ("jpeg-two-bytes", b"\xff\xd8", "image/jpeg", False, "image/jpeg"),
    ("image-text", b"not an image", "image/x-unknown", False, "image/x-unknown"),
    ("svg-is-xml", PNG, "image/svg+xml", False, "image/svg+xml"),
    ("image-nosniff", PNG, "image/gif", True, "image/gif"),
    ("image-no-av", b"ID3\x04\x00", "image/png", False, "image/png"),
    # unknown types find images too
    ("unknown-gif", GIF89, None, False, "image/gif"),
    ("unknown-jpeg", JPEG, "application/unknown", False, "image/jpeg"),
]

AUDIO_VIDEO_CASES: list[Case] = [
    ("aiff", b"FORM\x00\x00\x10\x00AIFFCOMM", "audio/wav", False, "audio/aiff"),
    ("id3", b"ID3\x04\x00\x00\x00\x00\x00\x00", "audio/ogg", False, "audio/mpeg"),
    ("ogg", b"OggS\x00\x02\x00\x00", "audio/mpeg", False, "application/ogg"),
    ("ogg-version-1", b"OggS\x01\x02", "audio/x-thing", False, "audio/x-thing"),
    ("midi", b"MThd\x00\x00\x00\x06\x00\x01\x00\x02", "audio/mpeg", False, "audio/midi"),
    ("midi-bad-length", b"MThd\x00\x00\x00\x07\x00", "audio/mpeg", False, "audio/mpeg"),
    ("avi", b"RIFF\x00\x10\x00\x00AVI LIST", "video/mp4", False, "video/avi"),
    ("wave", b"RIFF\x24\x08\x00\x00WAVEfmt ", "audio/mpeg", False, "audio/wave"),
    ("mp4-major", MP4_MAJOR, "video/webm", False, "video/mp4"),
    ("mp4-compatible", MP4_COMPATIBLE, "video/webm", False, "video/mp4"),
    ("quicktime", QUICKTIME, "video/quicktime", False, "video/quicktime"),
    ("mp4-box-too-long", b"\x00\x00\x01\x00ftypmp42" + bytes(8), "video/x", False, "video/x"),
    ("mp4-box-odd", b"\x00\x00\x00\x19ftypmp42" + bytes(20), "video/x", False, "video/x"),
    ("mp4-too-short", b"\x00\x00\x00\x08ftyp", "video/x", False, "video/x"),
    ("webm", WEBM, "video/mp4", False, "video/webm"),
    ("webm-padded", WEBM_PADDED, "video/mp4", False, "video/webm"),
    ("matroska", MATROSKA, "video/x-matroska", False, "video/x-matroska"),
    ("mp3-mpeg1", MP3_MPEG1, "audio/ogg", False, "audio/mpeg"),
    ("mp3-mpeg1-padded", MP3_MPEG1_PADDED, "audio/ogg", False, "audio/mpeg"),
    ("mp3-mpeg2", MP3_MPEG2, "audio/ogg", False, "audio/mpeg"),
    ("mp3-mpeg25", MP3_MPEG25, "audio/ogg", False, "audio/mpeg"),
    ("mp3-one-frame", MP3_MPEG1[:420], "audio/ogg", False, "audio/ogg"),
    ("mp3-wrong-gap", mp3_frames(0xFB, 0x90, 416), "audio/ogg", False, "audio/ogg"),
    ("mp3-layer-1", mp3_frames(0xFF, 0x90, 417), "audio/ogg", False, "audio/ogg"),
    ("mp3-bad-bitrate", mp3_frames(0xFB, 0xF0, 417), "audio/ogg", False, "audio/ogg"),
    ("mp3-bad-rate", mp3_frames(0xFB, 0x9C, 417), "audio/ogg", False, "audio/ogg"),
    ("mp3-free-format", mp3_frames(0xFB, 0x00, 417), "audio/ogg", False, "audio/ogg"),
    ("application-ogg", b"ID3\x03", "application/ogg", False, "audio/mpeg"),
    ("av-no-image", PNG, "video/mp4", False, "video/mp4"),
    ("av-nosniff", b"OggS\x00", "audio/mpeg", True, "audio/mpeg"),
    ("unknown-webm", WEBM, None, False, "video/webm"),
    ("unknown-mp4", MP4_MAJOR, None, False, "video/mp4"),
    ("unknown-wave", b"RIFF\x24\x08\x00\x00WAVEfmt ", None, False, "audio/wave"),
]

FONT_CASES: list[Case] = [
    ("eot", eot_header(), None, False, "application/vnd.ms-fontobject"),
    ("ttf", b"\x00\x01\x00\x00\x00\x0e\x00\x80\x00\x03", None, False, "font/ttf"),
    ("otf", b"OTTO\x00\x0b\x00\x80\x00\x03", None, False, "font/otf"),
    ("ttc", b"ttcf\x00\x01\x00\x00\x00\x00\x00\x02", None, False, "font/collection"),
    ("woff", b"wOFF\x00\x01\x00\x00\x00\x00", None, False, "font/woff"),
    ("woff2", b"wOF2\x00\x01\x00\x00\x00\x00", None, False, "font/woff2"),
    ("eot-needs-36-bytes", eot_header()[:35], None, False, "application/octet-stream"),
    # a supplied type is kept: fonts are sniffed only for unknown types
    ("font-supplied", b"wOF2\x00\x01", "font/woff", False, "font/woff"),
]

ARCHIVE_CASES: list[Case] = [
    ("gzip", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", None, False, "application/x-gzip"),
    ("gzip-not-deflate", b"\x1f\x8b\x09\x00", None, False, "application/octet-stream"),
    ("zip", b"PK\x03\x04\x14\x00\x00\x00\x08\x00", None, False, "application/zip"),
    ("zip-empty-archive", b"PK\x05\x06" + bytes(18), None, False, "application/octet-stream"),
    ("rar4", b"Rar!\x1a\x07\x00\xcf\x90\x73", None, False, "application/x-rar-compressed"),
    ("rar5-not-listed", b"Rar!\x1a\x07\x01\x00", None, False, "application/octet-stream"),
    (
        "archive-supplied",
        b"PK\x03\x04",
        "application/java-archive",
        False,
        "application/java-archive",
    ),
]

APACHE_TYPES = sorted(tables.APACHE_BUG_TYPES)

TEXT_OR_BINARY_CASES: list[Case] = [
    *[(f"text-{ct}", b"plain text\n", ct, False, "text/plain") for ct in APACHE_TYPES],
    *[
        (f"binary-{ct}", b"\x00\x01\x02", ct, False, "application/octet-stream")
        for ct in APACHE_TYPES
    ],
    ("utf16be", b"\xfe\xff\x00\x00\x01", "text/plain", False, "text/plain"),
    ("utf16le", b"\xff\xfe\x00\x00\x01", "text/plain", False, "text/plain"),
    ("utf8-bom", b"\xef\xbb\xbf\x00\x01", "text/plain", False, "text/plain"),
    ("bom-two-bytes", b"\xfe\xff", "text/plain", False, "text/plain"),
    ("never-html", b"<html><script>", "text/plain", False, "text/plain"),
    ("never-pdf", b"%PDF-1.4\n\x00", "text/plain", False, "application/octet-stream"),
    ("png-is-just-binary", PNG, "text/plain; charset=UTF-8", False, "application/octet-stream"),
    # not exactly one of the four values: the supplied type stays, even over binary
    ("lowercase-utf8", b"\x00\x01", "text/plain; charset=utf-8", False, "text/plain"),
    ("no-space", b"\x00\x01", "text/plain;charset=UTF-8", False, "text/plain"),
    ("uppercase-type", b"\x00\x01", "Text/Plain", False, "text/plain"),
    ("other-charset", b"\x00\x01", "text/plain; charset=windows-1252", False, "text/plain"),
    ("nosniff-text", b"\x00\x01", "text/plain", True, "text/plain"),
]

SUPPLIED_CASES: list[Case] = [
    ("xml", b"<html>", "application/xml", False, "application/xml"),
    ("text-xml", b"\x00\x01", "text/xml", False, "text/xml"),
    ("atom", b"<html>", "application/atom+xml", False, "application/atom+xml"),
    ("xhtml", PNG, "application/xhtml+xml", False, "application/xhtml+xml"),
    ("json", b"<html>", "application/json", False, "application/json"),
    ("javascript", b"\x00\x01", "text/javascript", False, "text/javascript"),
    ("octet-stream", b"<html>", "application/octet-stream", False, "application/octet-stream"),
    ("css-nosniff", b"<html>", "text/css", True, "text/css"),
]

FEED_CASES: list[Case] = [
    ("rss", b'<?xml version="1.0"?>\n<rss version="2.0">', "text/html", False,
     "application/rss+xml"),
    ("rss-first", b"<rss>", "text/html", False, "application/rss+xml"),
    ("atom", b'<feed xmlns="http://www.w3.org/2005/Atom">', "text/html", False,
     "application/atom+xml"),
    ("rdf", RSS_1_0, "text/html", False, "application/rss+xml"),
    ("rdf-reversed", RSS_1_0_REVERSED, "text/html", False, "application/rss+xml"),
    ("rdf-without-rss", b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">',
     "text/html", False, "text/html"),
    ("rdf-without-rdf", b'<rdf:RDF xmlns="http://purl.org/rss/1.0/">', "text/html", False,
     "text/html"),
    ("bom-ws-comment-doctype-pi",
     b'\xef\xbb\xbf \r\n<!-- <html> --><!DOCTYPE rss [ ]>\n<?xml-stylesheet href="s"?>'
     b"\t<rss>", "text/html", False, "application/rss+xml"),
    ("html", b"<!DOCTYPE html><html><rss>", "text/html", False, "text/html"),
    ("text-first", b"hello <rss>", "text/html", False, "text/html"),
    ("uppercase", b"<RSS>", "text/html", False, "text/html"),
    ("comment-cut-off", b"<!-- never closed <rss>", "text/html", False, "text/html"),
    ("pi-cut-off", b"<?xml version='1.0' <rss>", "text/html", False, "text/html"),
    ("declaration-cut-off", b"<!DOCTYPE rss <rss", "text/html", False, "text/html"),
    ("only-ws", b"   \n", "text/html", False, "text/html"),
    ("empty", b"", "text/html", False, "text/html"),
    ("lone-lt", b"<", "text/html", False, "text/html"),
    ("html-nosniff", b"<rss>", "text/html", True, "text/html"),
    ("html-binary", b"\x00\x01\x02", "text/html", False, "text/html"),
]  # fmt: skip

ALL_CASES = {
    "unknown": UNKNOWN_CASES,
    "image": IMAGE_CASES,
    "audio-video": AUDIO_VIDEO_CASES,
    "font": FONT_CASES,
    "archive": ARCHIVE_CASES,
    "text-or-binary": TEXT_OR_BINARY_CASES,
    "supplied": SUPPLIED_CASES,
    "feed": FEED_CASES,
}


def _params(cases: dict[str, list[Case]]) -> list[Any]:
    return [
        pytest.param(data, content_type, nosniff, expected, id=f"{group}-{name}")
        for group, rows in cases.items()
        for name, data, content_type, nosniff, expected in rows
    ]


@pytest.mark.parametrize(("data", "content_type", "nosniff", "expected"), _params(ALL_CASES))
def test_computed_mime_type(
    data: bytes, content_type: str | None, nosniff: bool, expected: str
) -> None:
    assert sniff_mime_type(data, content_type, nosniff=nosniff)[0] == expected


# -- every row of every table is the first match of some case ---------------------

TABLES = {
    "scriptable": (tables.SCRIPTABLE_TYPES, 19),
    "non-scriptable": (tables.NON_SCRIPTABLE_TYPES, 4),
    "image": (tables.IMAGE_TYPES, 8),
    "audio-video": (tables.AUDIO_VIDEO_TYPES, 6),
    "font": (tables.FONT_TYPES, 6),
    "archive": (tables.ARCHIVE_TYPES, 3),
}


@pytest.mark.parametrize("name", TABLES)
def test_every_table_row_is_exercised(name: str) -> None:
    rows, size = TABLES[name]
    assert len(rows) == size  # as many rows as the standard's table
    bodies = [case[1] for cases in ALL_CASES.values() for case in cases]
    for index, row in enumerate(rows):
        first_matches = [
            body
            for body in bodies
            if row.matches(body) and not any(r.matches(body) for r in rows[:index])
        ]
        assert first_matches, f"no case exercises {name} row {index} ({row.mime_type})"


def test_rows_are_the_standard_s_notation() -> None:
    html = tables.SCRIPTABLE_TYPES[1]
    assert html == Row(b"<HTML", b"\xff\xdf\xdf\xdf\xdf", tables.WHITESPACE, "text/html", True)
    assert tables.IMAGE_TYPES[5].mask == bytes.fromhex("FFFFFFFF00000000FFFFFFFFFFFF")
    assert tables.FONT_TYPES[0].pattern == bytes(34) + b"LP"
    with pytest.raises(ValueError, match="differ in length"):
        tables._row("3C 48", "FF", frozenset(), "text/html")
    with pytest.raises(ValueError, match="bits its mask"):
        tables._row("3C 68", "FF DF", frozenset(), "text/html")  # lowercase under DF


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"<p>", True),
        (b"<P ", True),
        (b" \t<p>", True),
        (b"<p", False),  # no tag-terminating byte
        (b"<p\n", False),  # LF is whitespace, not tag-terminating
        (b"<pre>", False),
        (b"\x0b<p>", False),  # VT is not a whitespace byte
        (b"     ", False),  # only ignored bytes
    ],
)
def test_pattern_matching_algorithm(data: bytes, expected: bool) -> None:
    row = tables.SCRIPTABLE_TYPES[15]
    assert row.pattern == b"<P"
    assert row.matches(data) is expected


# -- the rules one by one -------------------------------------------------------------


def test_rule_functions() -> None:
    assert match_image_type(PNG) == "image/png"
    assert match_image_type(b"text") is None
    assert match_audio_video_type(WEBM) == "video/webm"
    assert match_audio_video_type(PNG) is None
    assert match_font_type(b"OTTO") == "font/otf"
    assert match_font_type(b"OTT") is None
    assert match_archive_type(b"PK\x03\x04") == "application/zip"
    assert match_archive_type(PNG) is None
    assert identify_unknown(b"<html>", sniff_scriptable=True) == "text/html"
    assert identify_unknown(b"<html>", sniff_scriptable=False) == "text/plain"
    assert text_or_binary(b"<html>") == "text/plain"
    assert feed_or_html(b"<feed>") == "application/atom+xml"
    assert feed_or_html(b"<html>") is None


def test_only_the_first_512_bytes_count() -> None:
    padding = b"x" * (SNIFF_BUFFER_SIZE - 1)
    assert sniff_mime_type(padding + b"\x00", None) == ("application/octet-stream", {})
    assert sniff_mime_type(padding + b"x\x00", None) == ("text/plain", {})
    assert sniff_mime_type(b" " * SNIFF_BUFFER_SIZE + b"<html>", None)[0] == "text/plain"
    assert ContentSniffer().get_buffer_size() == SNIFF_BUFFER_SIZE == 512


@pytest.mark.parametrize(
    ("data", "content_type", "expected"),
    [
        # the type is kept: all its parameters
        (b"<p>", "text/html; charset=utf-8; q=x", ("text/html", {"charset": "utf-8", "q": "x"})),
        (b"text", "text/plain; charset=UTF-8", ("text/plain", {"charset": "UTF-8"})),
        (b"{}", 'application/json; profile="a b"', ("application/json", {"profile": "a b"})),
        # sniffed into a text or XML type: the charset only
        (b"<rss>", "text/html; charset=koi8-r; level=1",
         ("application/rss+xml", {"charset": "koi8-r"})),
        (b"<p>", "application/unknown; charset=utf-8; x=y", ("text/html", {"charset": "utf-8"})),
        # sniffed into a binary type: none
        (b"\x00", "text/plain; charset=UTF-8", ("application/octet-stream", {})),
        (PNG, "image/gif; name=x", ("image/png", {})),
        # no type supplied: none
        (b"<p>", None, ("text/html", {})),
    ],
)  # fmt: skip
def test_params(
    data: bytes, content_type: str | None, expected: tuple[str, dict[str, str]]
) -> None:
    assert sniff_mime_type(data, content_type) == expected


@pytest.mark.parametrize(
    ("content_type", "nosniff", "needs_body"),
    [
        (None, False, True),
        (None, True, True),  # unknown rules without the scriptable table
        ("*/*", True, True),
        ("text/html", False, True),
        ("text/html", True, False),
        ("text/plain", False, True),
        ("text/plain; charset=utf-8", False, False),
        ("image/png", False, True),
        ("video/mp4", False, True),
        ("application/ogg", False, True),
        ("application/xml", False, False),
        ("image/svg+xml", False, False),
        ("application/json", False, False),
        ("image/png", True, False),
    ],
)
def test_plan_knows_when_the_body_is_needed(
    content_type: str | None, nosniff: bool, needs_body: bool
) -> None:
    assert plan_sniffing(content_type, nosniff=nosniff).needs_body is needs_body


def test_sniffing_is_policy_without_io() -> None:
    # STYLE.md: sniffing is policy. Load the sniffer without anysoup/__init__
    # (which imports everything) and list what came with it.
    package = Path(anysoup.__file__).parent
    code = (
        "import sys, types\n"
        f"pkg = types.ModuleType('anysoup'); pkg.__path__ = [{str(package)!r}]\n"
        "sys.modules['anysoup'] = pkg\n"
        "import anysoup._features.sniffer.sniff_policy\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('anyio', 'trio', 'sniffio', 'h11', 'asyncio', 'socket', 'ssl') "
        "or m.startswith('anysoup.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    loaded = ast.literal_eval(out.strip())
    assert set(loaded) <= {
        "anysoup._features",
        "anysoup._features.sniffer",
        "anysoup._features.sniffer.sniff_policy",
        "anysoup._features.sniffer.tables_policy",
        "anysoup._model",
        "anysoup._model.enums",
        "anysoup._model.headers",
    }, loaded


# -- the feature -------------------------------------------------------------------------


def test_feature_basics() -> None:
    assert ContentSniffer.chain_position == SessionFeature.POSITION_SNIFFER
    assert not Session().has_feature(ContentSniffer)  # not a default
    session = Session()
    session.add_feature_by_type(ContentSniffer)
    assert isinstance(session.get_feature(ContentSniffer), ContentSniffer)
    assert "ContentSniffer" in repr(ContentSniffer())
    assert inspect.getdoc(ContentSniffer)


def test_sniff_method_reads_the_message_headers() -> None:
    msg = Message("GET", "http://example.com/")
    msg.response_headers.append("Content-Type", "text/plain")
    msg.response_headers.append("Content-Type", "text/html; charset=utf-8")  # the last counts
    sniffer = ContentSniffer()
    assert sniffer.sniff(msg, b"<rss>") == ("application/rss+xml", {"charset": "utf-8"})
    msg.response_headers.append("X-Content-Type-Options", "NoSniff, other")
    assert sniffer.sniff(msg, b"<rss>") == ("text/html", {"charset": "utf-8"})
    bare = Message("GET", "http://example.com/")
    assert sniffer.sniff(bare, b"%PDF-1.4") == ("application/pdf", {})
    bare.response_headers.append("X-Content-Type-Options", "sniff, nosniff")  # only the first
    assert sniffer.sniff(bare, b"%PDF-1.4") == ("application/pdf", {})


# -- through a session ---------------------------------------------------------------------

Handler = Callable[[ServerConnection, ReceivedRequest], Awaitable[None]]


def answer(
    body: bytes, headers: list[tuple[str, str]] | None = None, *, status: int = 200, **kw: Any
) -> Handler:
    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        await conn.respond(status, headers or [], body, **kw)

    return handler


class Recorder:
    """Connects to ``content_sniffed`` and records each ``(content_type, params)``."""

    def __init__(self, msg: Message) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []
        msg.content_sniffed.connect(self._on)

    def _on(self, msg: Message, content_type: str, params: dict[str, str]) -> None:
        self.calls.append((content_type, params))


BODY_SIZES = [0, 1, 100, 511, 512, 513, 4096, 1 << 20]


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
@pytest.mark.parametrize("size", BODY_SIZES)
async def test_body_is_complete_and_unchanged(
    size: int, chunked: bool, leak_check: LeakCheck
) -> None:
    with anyio.fail_after(10):
        body = bytes(i % 251 for i in range(size))  # binary from its first byte
        async with serve_http(answer(body, chunked=chunked)) as server:
            async with Session(features=[ContentSniffer()]) as session:
                msg = Message("GET", server.url_for("/"))
                seen = Recorder(msg)
                stream = await session.send(msg)
                expected = "application/octet-stream" if size else "text/plain"
                assert seen.calls == [(expected, {})]  # once, before send returned
                received = bytearray()
                async for chunk in stream:
                    received += chunk
                assert bytes(received) == body
                assert session.statistics().in_use == 0
            await leak_check(session)


async def test_signal_before_send_returns_with_type_and_params(leak_check: LeakCheck) -> None:
    with anyio.fail_after(10):
        feed = b'<?xml version="1.0"?>\n<rss version="2.0"><channel/></rss>'
        headers = [("Content-Type", "text/html; charset=ISO-8859-1")]
        async with serve_http(answer(feed, headers)) as server:
            async with Session(features=[ContentSniffer()]) as session:
                msg = Message("GET", server.url_for("/"))
                events: list[str] = []
                msg.got_headers.connect(lambda m: events.append("got_headers"))

                async def on_sniffed(
                    m: Message, content_type: str, params: dict[str, str]
                ) -> None:
                    await anyio.lowlevel.checkpoint()  # a coroutine handler is awaited
                    events.append(f"sniffed {content_type} {params}")

                msg.content_sniffed.connect(on_sniffed)
                async with session.send(msg) as stream:
                    events.append("returned")
                    assert await stream.read() == feed
            assert events == [
                "got_headers",
                "sniffed application/rss+xml {'charset': 'ISO-8859-1'}",
                "returned",
            ]
            await leak_check(session)


async def test_read_methods_see_the_peeked_bytes(leak_check: LeakCheck) -> None:
    with anyio.fail_after(10):
        body = b"<html>" + b"x" * 2000
        async with serve_http(answer(body, chunked=True)) as server:
            async with Session(features=[ContentSniffer()]) as session:
                msg = Message("GET", server.url_for("/"))
                seen = Recorder(msg)
                async with session.send(msg) as stream:
                    assert await stream.read(3) == b"<ht"
                    assert await stream.receive(5) == b"ml>xx"
                    assert await stream.read() == body[8:]
                assert seen.calls == [("text/html", {})]
                assert await session.send_and_read(Message("GET", server.url_for("/"))) == body
            await leak_check(session)


async def test_body_in_small_pieces_is_gathered(leak_check: LeakCheck) -> None:
    with anyio.fail_after(10):
        png = PNG + bytes(1000)

        async def trickle(conn: ServerConnection, req: ReceivedRequest) -> None:
            await conn.send_head(200, [("Content-Type", "image/gif")])
            for i in range(0, len(png), 7):
                await conn.send_data(png[i : i + 7])
                await anyio.lowlevel.checkpoint()
            await conn.end()

        async with serve_http(trickle) as server:
            async with Session(features=[ContentSniffer()]) as session:
                msg = Message("GET", server.url_for("/"))
                seen = Recorder(msg)
                assert await session.send_and_read(msg) == png
                assert seen.calls == [("image/png", {})]
            await leak_check(session)


def stalled(head: list[tuple[str, str]], first: bytes, release: anyio.Event) -> Handler:
    """Send the head and ``first``, then wait for ``release`` before ending the body."""

    async def handler(conn: ServerConnection, req: ReceivedRequest) -> None:
        await conn.send_head(200, head)
        if first:
            await conn.send_data(first)
        await release.wait()
        await conn.send_data(b"the rest")
        await conn.end()

    return handler


async def test_reads_no_more_than_512_bytes(leak_check: LeakCheck) -> None:
    # Exactly 512 bytes are there and the server waits: send must return.
    with anyio.fail_after(10):
        release = anyio.Event()
        first = b"A" * 512
        async with serve_http(stalled([], first, release)) as server:
            async with Session(features=[ContentSniffer()]) as session:
                msg = Message("GET", server.url_for("/"))
                seen = Recorder(msg)
                with anyio.fail_after(5):
                    stream = await session.send(msg)
                assert seen.calls == [("text/plain", {})]
                release.set()
                assert await stream.read() == first + b"the rest"
            await leak_check(session)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        ([("Content-Type", "text/css"), ("X-Content-Type-Options", "nosniff")], ("text/css", {})),
        (
            [("Content-Type", "application/xml; charset=utf-8")],
            ("application/xml", {"charset": "utf-8"}),
        ),
        ([("Content-Type", "application/json")], ("application/json", {})),
    ],
    ids=["nosniff", "xml", "json"],
)
async def test_headers_alone_decide_without_reading(
    head: list[tuple[str, str]], expected: tuple[str, dict[str, str]], leak_check: LeakCheck
) -> None:
    with anyio.fail_after(10):
        release = anyio.Event()
        async with serve_http(stalled(head, b"", release)) as server:
            async with Session(features=[ContentSniffer()]) as session:
                msg = Message("GET", server.url_for("/"))
                seen = Recorder(msg)
                with anyio.fail_after(5):
                    stream = await session.send(msg)  # no body byte was sent yet
                assert seen.calls == [expected]
                release.set()
                assert await stream.read() == b"the rest"
            await leak_check(session)


async def test_no_handler_no_reading(leak_check: LeakCheck) -> None:
    with anyio.fail_after(10):
        release = anyio.Event()
        async with serve_http(stalled([], b"", release)) as server:
            async with Session(features=[ContentSniffer()]) as session:
                with anyio.fail_after(5):
                    stream = await session.send(Message("GET", server.url_for("/")))
                release.set()
                assert await stream.read() == b"the rest"
            await leak_check(session)


@pytest.mark.parametrize(
    ("head", "body", "expected"),
    [
        ([("X-Content-Type-Options", "nosniff")], b"<html><body>", ("text/plain", {})),
        ([("X-Content-Type-Options", "nosniff")], PNG, ("image/png", {})),
        ([("Content-Type", "text/plain"), ("X-Content-Type-Options", "NOSNIFF")], b"\x00\x01",
         ("text/plain", {})),
        ([("Content-Type", "image/gif"), ("X-Content-Type-Options", "nosniff")], PNG,
         ("image/gif", {})),
        ([("Content-Type", "text/html"), ("X-Content-Type-Options", "nosniff")], b"<rss>",
         ("text/html", {})),
        ([("Content-Type", "text/plain")], b"\x00\x01", ("application/octet-stream", {})),
    ],
    ids=["unknown-html", "unknown-png", "text-binary", "image", "html-feed", "without-nosniff"],
)  # fmt: skip
async def test_nosniff(
    head: list[tuple[str, str]],
    body: bytes,
    expected: tuple[str, dict[str, str]],
    leak_check: LeakCheck,
) -> None:
    with anyio.fail_after(10):
        async with serve_http(answer(body, head)) as server:
            async with Session(features=[ContentSniffer()]) as session:
                msg = Message("GET", server.url_for("/"))
                seen = Recorder(msg)
                assert await session.send_and_read(msg) == body
                assert seen.calls == [expected]
            await leak_check(session)


@pytest.mark.parametrize(
    ("method", "status", "headers", "body"),
    [
        ("HEAD", 200, [("Content-Type", "text/html")], b"<html>"),
        ("GET", 204, [], b""),
        ("GET", 304, [("Content-Type", "text/html")], b""),
    ],
)
async def test_no_body_no_signal(
    method: str, status: int, headers: list[tuple[str, str]], body: bytes, leak_check: LeakCheck
) -> None:
    with anyio.fail_after(10):
        async with serve_http(answer(body, headers, status=status)) as server:
            async with Session(features=[ContentSniffer()]) as session:
                msg = Message(method, server.url_for("/"))
                seen = Recorder(msg)
                assert await session.send_and_read(msg) == b""
                assert msg.status == status
                assert seen.calls == []
            await leak_check(session)


async def test_redirect_not_followed_is_sniffed(leak_check: LeakCheck) -> None:
    with anyio.fail_after(10):
        head = [("Location", "/elsewhere"), ("Content-Type", "text/html")]
        async with serve_http(answer(b"<rss>", head, status=302)) as server:
            async with Session(features=[ContentSniffer()]) as session:
                msg = Message("GET", server.url_for("/"))
                msg.add_flags(MessageFlags.NO_REDIRECT)
                seen = Recorder(msg)
                assert await session.send_and_read(msg) == b"<rss>"
                assert msg.status == 302
                assert seen.calls == [("application/rss+xml", {})]
            await leak_check(session)


async def test_redirect_followed_sniffs_the_final_response_only(leak_check: LeakCheck) -> None:
    with anyio.fail_after(10):

        async def app(conn: ServerConnection, req: ReceivedRequest) -> None:
            if req.target == "/":
                await conn.respond(302, [("Location", "/final")], b"<html>moved</html>")
            else:
                await conn.respond(200, [], PNG)

        async with serve_http(app) as server:
            async with Session(features=[ContentSniffer()]) as session:
                msg = Message("GET", server.url_for("/"))
                seen = Recorder(msg)
                assert await session.send_and_read(msg) == PNG
                assert msg.status == 200
                assert seen.calls == [("image/png", {})]
            await leak_check(session)


async def test_disabled_for_a_message(leak_check: LeakCheck) -> None:
    with anyio.fail_after(10):
        async with serve_http(answer(b"<html>")) as server:
            async with Session() as session:
                session.add_feature_by_type(ContentSniffer)
                msg = Message("GET", server.url_for("/"))
                msg.disable_feature(ContentSniffer)
                seen = Recorder(msg)
                assert await session.send_and_read(msg) == b"<html>"
                assert seen.calls == []
                other = Message("GET", server.url_for("/"))
                seen = Recorder(other)
                assert await session.send_and_read(other) == b"<html>"
                assert seen.calls == [("text/html", {})]
            await leak_check(session)


async def test_gzip_encoded_html_is_sniffed_after_decoding(leak_check: LeakCheck) -> None:
    with anyio.fail_after(10):
        html = b"<!DOCTYPE html>\n<html><head><title>t</title></head><body>" + b"x" * 3000
        head = [("Content-Encoding", "gzip")]
        async with serve_http(answer(gzip.compress(html), head)) as server:
            async with Session(features=[ContentSniffer()]) as session:
                msg = Message("GET", server.url_for("/"))
                seen = Recorder(msg)
                assert await session.send_and_read(msg) == html
                assert seen.calls == [("text/html", {})]
            await leak_check(session)


async def test_cancelled_while_peeking_leaves_the_pool_clean(leak_check: LeakCheck) -> None:
    with anyio.fail_after(10):
        release = anyio.Event()
        head = [("Content-Length", str(len(b"<html>the rest")))]
        async with serve_http(stalled(head, b"<html>", release)) as server:
            async with Session(features=[ContentSniffer()]) as session:
                msg = Message("GET", server.url_for("/"))
                seen = Recorder(msg)
                got_headers: list[Message] = []
                msg.got_headers.connect(got_headers.append)
                unqueued: list[Message] = []
                session.request_unqueued.connect(lambda s, m: unqueued.append(m))
                with anyio.move_on_after(0.3) as scope:
                    await session.send(msg)
                assert scope.cancelled_caught
                assert got_headers == [msg]  # cancelled while peeking at the body
                assert seen.calls == []
                assert unqueued == [msg]
                # the connection is gone, the message unqueued
                assert session.statistics() == PoolStatistics(0, 0, 0, 0, 0)
                # the session goes on
                again = Message("GET", server.url_for("/"))
                seen = Recorder(again)
                release.set()
                with anyio.fail_after(5):
                    body = await session.send_and_read(again)
                assert body == b"<html>the rest"
                assert seen.calls == [("text/html", {})]
            await leak_check(session)


async def test_failing_handler_closes_the_stream(leak_check: LeakCheck) -> None:
    with anyio.fail_after(10):
        async with serve_http(answer(b"<html>" + bytes(5000))) as server:
            async with Session(features=[ContentSniffer()]) as session:
                msg = Message("GET", server.url_for("/"))

                def boom(m: Message, content_type: str, params: dict[str, str]) -> None:
                    raise RuntimeError("handler failed")

                msg.content_sniffed.connect(boom)
                with pytest.raises(RuntimeError, match="handler failed"):
                    await session.send(msg)
                assert session.statistics().in_use == 0
                assert await session.send_and_read(Message("GET", server.url_for("/"))) != b""
            await leak_check(session)
