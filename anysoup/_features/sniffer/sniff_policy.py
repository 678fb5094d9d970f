"""ContentSniffer: the WHATWG MIME Sniffing algorithm over a response's first bytes.

Theory of operation
-------------------
Servers often send a wrong ``Content-Type``, or none. The MIME Sniffing
Standard (mimesniff.spec.whatwg.org) says how a browser computes the type it
acts on from the supplied type and the first bytes of the body, the
*resource header*. This module is that algorithm for a browsing context, in
two steps:

1. :func:`plan_sniffing` looks at the headers only: the supplied type (the
   last ``Content-Type``), the check-for-apache-bug flag (the header is
   exactly one of four ``text/plain`` values) and the no-sniff flag
   (``X-Content-Type-Options: nosniff``, read as Fetch does). It picks the
   rule that applies, and so knows whether the body is needed at all: an
   XML type, a ``nosniff`` response with a type, or any type the standard
   leaves alone needs no byte of it.
2. :meth:`SniffPlan.apply` runs that rule over the resource header: the
   rules for identifying an unknown MIME type, for distinguishing text from
   binary, for distinguishing a feed from HTML, or the image or audio/video
   pattern matching. The byte patterns (the standard's tables, as data) and
   the MP4, WebM and MP3 signatures live in :mod:`anysoup._features.sniffer.tables_policy`.

:class:`ContentSniffer` is the feature: outside the content decoder in the
chain (so it sees decoded bytes), it peeks at the first 512 bytes of a
response that has a body, without consuming them, and emits the message's
``content_sniffed`` signal before :meth:`anysoup.Session.send` returns.

Everything but :meth:`ContentSniffer.handle` is policy: no I/O, no anyio.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..._model.headers import MessageHeaders
from .tables_policy import (
    APACHE_BUG_TYPES,
    NON_SCRIPTABLE_TYPES,
    SCRIPTABLE_TYPES,
    UNKNOWN_TYPES,
    WHITESPACE,
    first_match,
    match_archive_type,
    match_audio_video_type,
    match_font_type,
    match_image_type,
)

if TYPE_CHECKING:
    pass

__all__ = ["SNIFF_BUFFER_SIZE", "SniffPlan", "plan_sniffing", "sniff_mime_type"]

#: How much of the body is sniffed (libsoup's buffer size; the standard
#: suggests up to 1445 bytes, which makes a few rarer signatures decidable).
SNIFF_BUFFER_SIZE = 512

# Terminology: a "binary data byte" (no text has these).
_BINARY_DATA_BYTE = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f]")

_UTF8_BOM = b"\xef\xbb\xbf"


# -- the rules of the standard's "Determining the computed MIME type" ----------


def identify_unknown(data: bytes, *, sniff_scriptable: bool) -> str:
    """The rules for identifying an unknown MIME type.

    HTML, XML and PDF are recognised only with ``sniff_scriptable``. Fonts
    are recognised too, between audio/video and archives: the standard
    leaves that step commented out because browsers don't, but a client
    library gains from knowing a font when it sees one.
    """
    if sniff_scriptable:
        matched = first_match(SCRIPTABLE_TYPES, data)
        if matched is not None:
            return matched
    matched = (
        first_match(NON_SCRIPTABLE_TYPES, data)
        or match_image_type(data)
        or match_audio_video_type(data)
        or match_font_type(data)
        or match_archive_type(data)
    )
    if matched is not None:
        return matched
    return "application/octet-stream" if _BINARY_DATA_BYTE.search(data) else "text/plain"


def text_or_binary(data: bytes) -> str:
    """The rules for distinguishing if a resource is text or binary.

    Never a scriptable type: a ``text/plain`` resource must not become HTML.
    """
    if data[:2] in (b"\xfe\xff", b"\xff\xfe") or data[:3] == _UTF8_BOM:
        return "text/plain"
    return "application/octet-stream" if _BINARY_DATA_BYTE.search(data) else "text/plain"


_RSS_1_0 = b"http://purl.org/rss/1.0/"
_RDF_NS = b"http://www.w3.org/1999/02/22-rdf-syntax-ns#"


def feed_or_html(data: bytes) -> str | None:
    """The rules for distinguishing if a resource is a feed or HTML.

    Returns ``application/rss+xml`` or ``application/atom+xml`` when the
    first element (after whitespace, comments, ``<!…>`` and ``<?…?>``) is
    ``rss``, ``feed``, or ``rdf:RDF`` followed by both the RSS 1.0 and the
    RDF namespace URIs; None (keep the supplied type) otherwise. These rules
    come from the standard as libsoup implements it; later versions of the
    standard keep every HTML type as it is.
    """
    n = len(data)
    s = 3 if data.startswith(_UTF8_BOM) else 0
    while s < n:
        while data[s] in WHITESPACE:  # up to a "<"
            s += 1
            if s == n:
                return None
        if data[s] != 0x3C:
            return None
        s += 1
        if data.startswith(b"!--", s):
            end = data.find(b"-->", s + 3)
            s = -1 if end < 0 else end + 3
        elif data.startswith(b"!", s):
            end = data.find(b">", s + 1)
            s = -1 if end < 0 else end + 1
        elif data.startswith(b"?", s):
            end = data.find(b"?>", s + 1)
            s = -1 if end < 0 else end + 2
        elif data.startswith(b"rss", s):
            return "application/rss+xml"
        elif data.startswith(b"feed", s):
            return "application/atom+xml"
        elif data.startswith(b"rdf:RDF", s):
            rest = data[s + 7 :]
            return "application/rss+xml" if _RSS_1_0 in rest and _RDF_NS in rest else None
        else:
            return None
        if s < 0:  # a comment or declaration the resource header cuts off
            return None
    return None


class _Rule(enum.Enum):
    #: Keep the supplied type: the body is not needed.
    SUPPLIED = enum.auto()
    #: Identifying an unknown MIME type, scriptable types included.
    UNKNOWN = enum.auto()
    #: Identifying an unknown MIME type without scriptable types (``nosniff``).
    UNKNOWN_NOT_SCRIPTABLE = enum.auto()
    #: Distinguishing text from binary (the check-for-apache-bug flag).
    TEXT_OR_BINARY = enum.auto()
    #: Distinguishing a feed from HTML.
    FEED_OR_HTML = enum.auto()
    #: Image type pattern matching, else the supplied type.
    IMAGE = enum.auto()
    #: Audio or video type pattern matching, else the supplied type.
    AUDIO_VIDEO = enum.auto()


@dataclass(frozen=True, slots=True)
class SniffPlan:
    """What the headers alone decide: the rule to run and the supplied type."""

    rule: _Rule
    #: The supplied type's essence (``type/subtype``, lowercase), None if undefined.
    supplied: str | None = None
    #: The supplied type's parameters.
    params: dict[str, str] = field(default_factory=dict)

    @property
    def needs_body(self) -> bool:
        """Whether the rule looks at the resource header at all."""
        return self.rule is not _Rule.SUPPLIED

    def apply(self, data: bytes) -> tuple[str, dict[str, str]]:
        """The computed MIME type for the resource header ``data``, and its parameters.

        The parameters are the supplied type's when the type is kept; when
        sniffing changed it to a text or XML type, only the supplied
        ``charset`` is carried over; otherwise there are none.
        """
        data = data[:SNIFF_BUFFER_SIZE]
        rule = self.rule
        supplied = self.supplied
        if rule is _Rule.UNKNOWN or rule is _Rule.UNKNOWN_NOT_SCRIPTABLE:
            computed = identify_unknown(data, sniff_scriptable=rule is _Rule.UNKNOWN)
        elif rule is _Rule.TEXT_OR_BINARY:
            computed = text_or_binary(data)
        elif rule is _Rule.FEED_OR_HTML:
            computed = feed_or_html(data) or "text/html"
        elif rule is _Rule.IMAGE:
            computed = match_image_type(data) or supplied or ""
        elif rule is _Rule.AUDIO_VIDEO:
            computed = match_audio_video_type(data) or supplied or ""
        else:
            computed = supplied or ""
        if computed == supplied:
            return computed, dict(self.params)
        charset = self.params.get("charset")
        if charset is not None and (computed.startswith("text/") or _is_xml(computed)):
            return computed, {"charset": charset}
        return computed, {}


def _is_xml(essence: str) -> bool:
    return essence.endswith("+xml") or essence in ("text/xml", "application/xml")


def plan_sniffing(content_type: str | None, *, nosniff: bool = False) -> SniffPlan:
    """Choose the rule of the MIME type sniffing algorithm from the headers.

    Args:
        content_type: The value of the last ``Content-Type`` header, or None.
        nosniff: Whether the no-sniff flag is set (``X-Content-Type-Options: nosniff``).
    """
    parsed = None
    if content_type is not None:
        try:
            parsed = MessageHeaders([("Content-Type", content_type)]).get_content_type()
        except ValueError:  # a control character: not a MIME type
            parsed = None
    if parsed is None or parsed[0] in UNKNOWN_TYPES:
        # Undefined or unknown: sniff, scriptable types only without nosniff.
        rule = _Rule.UNKNOWN_NOT_SCRIPTABLE if nosniff else _Rule.UNKNOWN
        return SniffPlan(rule, parsed[0] if parsed else None, parsed[1] if parsed else {})
    essence, params = parsed
    if nosniff:
        rule = _Rule.SUPPLIED
    elif content_type in APACHE_BUG_TYPES:
        rule = _Rule.TEXT_OR_BINARY
    elif _is_xml(essence):
        rule = _Rule.SUPPLIED
    elif essence == "text/html":
        rule = _Rule.FEED_OR_HTML
    elif essence.startswith("image/"):
        rule = _Rule.IMAGE
    elif essence.startswith(("audio/", "video/")) or essence == "application/ogg":
        rule = _Rule.AUDIO_VIDEO
    else:
        rule = _Rule.SUPPLIED
    return SniffPlan(rule, essence, params)


def sniff_mime_type(
    resource_header: bytes, content_type: str | None, *, nosniff: bool = False
) -> tuple[str, dict[str, str]]:
    """The computed MIME type of a resource, for a browsing context.

    Args:
        resource_header: The first bytes of the (decoded) body; only the
            first :data:`SNIFF_BUFFER_SIZE` count.
        content_type: The supplied type: the last ``Content-Type`` value, or None.
        nosniff: Whether ``X-Content-Type-Options: nosniff`` was given.

    Returns:
        ``(type, params)``, e.g. ``("text/html", {"charset": "utf-8"})``.
    """
    return plan_sniffing(content_type, nosniff=nosniff).apply(resource_header)
