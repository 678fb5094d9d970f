r"""Compression Dictionary Transport (RFC 9842) as policy: the rules, no I/O.

Theory of operation
-------------------
A response with ``Use-As-Dictionary`` may serve as a dictionary for later
requests whose URL matches its ``match`` pattern (§2.1). The cache keeps
such responses; before a request goes out it picks the best stored
dictionary for it (:func:`choose_dictionary`, §2.2.2, §2.2.3), and the
:class:`~anysoup.ContentDecoder` advertises that one's SHA-256 in
``Available-Dictionary`` (:func:`available_dictionary_value`, §2.2) and its
id in ``Dictionary-ID`` (:func:`dictionary_id_value`, §2.3), offering the
``dcb`` and ``dcz`` codings. A ``dcb`` or ``dcz`` body starts with a fixed
header that names the dictionary's hash (§4, §5): :func:`parse_stream_header`
reads it so the decoder can check it is the dictionary offered.

``match`` is a URL Pattern (WHATWG URL Pattern Standard) resolved against
the dictionary's URL. anysoup implements the part of it that dictionaries
use, and rejects the rest, so such a dictionary is simply never used:

* a pattern is a path (``/app/*/main.js``, ``main.js`` relative to the
  dictionary's directory), a query (``?v=*``) or a fragment, or an absolute
  URL (``https://example.com/app/*``) whose scheme, host and port are those
  of the dictionary's URL, literally;
* in it, ``*`` matches any run of characters (``/`` included) and ``\``
  escapes the next character; everything else is fixed text;
* regular-expression groups ``(...)`` are refused as RFC 9842 §2.1.1
  requires, and named groups ``:name``, ``{...}`` groups, the modifiers
  ``?`` ``+`` (and ``*`` after a part), wildcards in the scheme, host or
  port, user names and dot segments are outside the subset and refused too.

Components a relative pattern leaves out follow the URL Pattern rules: the
scheme, host and port come from the dictionary's URL, a path pattern
matches any query and fragment, a query pattern keeps the dictionary's path.
Destinations (``match-dest``) are parsed but, anysoup having no request
destinations, treated as empty, as §2.1.2 asks of such clients.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import quote

from yarl import URL

from ..._model.compression_dictionary import MAX_ID_LENGTH
from ..._model.structured_fields import (
    StructuredFieldError,
    Token,
    parse_dictionary,
    serialize_byte_sequence,
    serialize_string,
)

__all__ = [
    "DCB_MAGIC",
    "DCZ_MAGIC",
    "HASH_SIZE",
    "STREAM_MAGIC",
    "DictionaryDirective",
    "available_dictionary_value",
    "choose_dictionary",
    "dictionary_id_value",
    "parse_stream_header",
    "parse_use_as_dictionary",
    "pattern_matches",
    "secure_context",
    "valid_pattern",
]

#: RFC 9842 §4: a ``dcb`` body starts with these 4 bytes, then the dictionary's SHA-256.
DCB_MAGIC = b"\xff\x44\x43\x42"
#: RFC 9842 §5: a ``dcz`` body starts with these 8 bytes (a zstd skippable
#: frame, magic 0x184D2A5E, 32 bytes long), then the dictionary's SHA-256.
DCZ_MAGIC = b"\x5e\x2a\x4d\x18\x20\x00\x00\x00"
#: The stream header's magic for each dictionary coding.
STREAM_MAGIC = {"dcb": DCB_MAGIC, "dcz": DCZ_MAGIC}
#: A SHA-256 digest's size, the hash in the stream header.
HASH_SIZE = 32


# -- Use-As-Dictionary (§2.1) ------------------------------------------------------------


@dataclass(frozen=True)
class DictionaryDirective:
    """A valid ``Use-As-Dictionary`` header, parsed."""

    #: The URL Pattern of the requests the dictionary serves (§2.1.1).
    match: str
    #: Request destinations (§2.1.2); parsed, not used for matching.
    match_dest: tuple[str, ...] = ()
    #: The server's identifier, echoed in ``Dictionary-ID`` (§2.1.3), or None.
    id: str | None = None
    #: The dictionary's format (§2.1.4): always ``"raw"`` (others aren't valid).
    type: str = "raw"


def parse_use_as_dictionary(value: str | None, dictionary_url: str) -> DictionaryDirective | None:
    """The directive of a response's ``Use-As-Dictionary`` header, or None if it has none.

    Args:
        value: The header's value (several lines joined with ``,``), or None.
        dictionary_url: The URL the response answered: relative patterns
            resolve against it.

    Returns:
        None when the header is absent or is not a valid Structured Field
        Dictionary; when ``match`` is missing, is not a String or is a
        pattern anysoup refuses (see the module's docstring); when
        ``match-dest`` is not an Inner List of Strings, ``id`` not a String
        of at most 1024 printable characters, ``type`` not the Token
        ``raw`` (§2.1.4: a client MUST NOT use a type it doesn't know).
        Unknown keys and parameters are ignored.
    """
    if value is None:
        return None
    try:
        members = parse_dictionary(value)
    except StructuredFieldError:
        return None
    match = members.get("match", (None, {}))[0]
    if not isinstance(match, str) or isinstance(match, Token):
        return None
    dest: tuple[str, ...] = ()
    if "match-dest" in members:
        items = members["match-dest"][0]
        if not isinstance(items, list) or not all(_is_string(item) for item, _ in items):
            return None
        dest = tuple(item for item, _ in items)
    ident = members.get("id", ("", {}))[0]
    if not _is_string(ident) or len(ident) > MAX_ID_LENGTH:
        return None
    kind = members.get("type", (Token("raw"), {}))[0]
    if not isinstance(kind, Token) or kind != "raw":
        return None
    if not valid_pattern(match, dictionary_url):
        return None
    return DictionaryDirective(match, dest, ident or None, "raw")


def _is_string(value: object) -> bool:
    return isinstance(value, str) and not isinstance(value, Token)


# -- the match pattern (§2.1.1, §2.2.2) ----------------------------------------------------


@dataclass(frozen=True)
class _Pattern:
    """A compiled pattern: the origin it serves and a regex per component (None: any)."""

    origin: tuple[str, str, int]
    path: re.Pattern[str]
    query: re.Pattern[str] | None
    fragment: re.Pattern[str] | None


#: Characters kept as they are when fixed text is percent-encoded, per component
#: (RFC 3986 §3.3, §3.4: what a path or query may hold; "%" keeps escapes as given).
_PATH_SAFE = "/!$&'()*+,;=:@-._~%"
_QUERY_SAFE = _PATH_SAFE + "?"
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://")
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%]+)(?::([0-9]{1,5}))?")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_DOT_SEGMENT = re.compile(r"(?:^|/)\.\.?(?:/|$)")


def valid_pattern(pattern: str, dictionary_url: str) -> bool:
    """Whether ``pattern`` is a ``match`` anysoup can use for a dictionary from ``dictionary_url``.

    §2.1.1: a pattern with regexp groups MUST NOT be used; so is one outside
    the subset anysoup implements (see the module's docstring) or one for
    another origin than the dictionary's.
    """
    return _compile(pattern, dictionary_url) is not None


def pattern_matches(pattern: str, dictionary_url: str, request_url: str) -> bool:
    """Whether the dictionary from ``dictionary_url`` with this ``match`` serves ``request_url``.

    §2.2.2: the request must be same-origin with the dictionary, and its URL
    must match the pattern resolved against the dictionary's URL. An invalid
    pattern matches nothing.
    """
    compiled = _compile(pattern, dictionary_url)
    if compiled is None:
        return False
    try:
        url = URL(request_url)
    except (ValueError, TypeError):
        return False
    if _origin(url) != compiled.origin:
        return False
    if compiled.path.fullmatch(url.raw_path) is None:
        return False
    if compiled.query is not None and compiled.query.fullmatch(url.raw_query_string) is None:
        return False
    return compiled.fragment is None or compiled.fragment.fullmatch(url.raw_fragment) is not None


def _origin(url: URL) -> tuple[str, str, int] | None:
    if url.scheme not in _DEFAULT_PORTS or not url.raw_host or url.port is None:
        return None
    return url.scheme, url.raw_host.lower(), url.port


@functools.lru_cache(maxsize=256)
def _compile(pattern: str, dictionary_url: str) -> _Pattern | None:
    """The compiled pattern, or None if it is invalid or outside the subset."""
    try:
        base = URL(dictionary_url)
    except (ValueError, TypeError):
        return None
    origin = _origin(base)
    if origin is None:
        return None
    scheme = _SCHEME.match(pattern)
    if scheme is not None:  # an absolute pattern: nothing is inherited from the base
        rest = pattern[scheme.end() :]
        end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
        if _authority_origin(scheme[1].lower(), rest[:end]) != origin:
            return None
        parts = _split(rest[end:])
        if parts is None:
            return None
        path, query, fragment = parts
        if path is None:
            path = "/" if rest[end:] else "*"  # "https://a.example?q": the path is "/"
        return _build(origin, path, query, fragment)
    parts = _split(pattern)
    if parts is None:
        return None
    path, query, fragment = parts
    base_path = _escape(base.raw_path)
    if path is not None:
        if not path.startswith("/"):  # relative to the dictionary's directory
            path = base_path[: base_path.rfind("/") + 1] + path
        return _build(origin, path, query, fragment)
    # A query or fragment alone keeps the dictionary's path (and, for a
    # fragment alone, its query); "" is the dictionary's own URL.
    if query is None:
        query = _escape(base.raw_query_string)
        if fragment is None:
            fragment = _escape(base.raw_fragment)
    return _build(origin, base_path, query, fragment)


def _authority_origin(scheme: str, authority: str) -> tuple[str, str, int] | None:
    """The origin ``scheme://authority`` names; None if not a plain host and port."""
    found = _HOST_PORT.fullmatch(authority)
    if found is None or scheme not in _DEFAULT_PORTS:
        return None
    host = found[1].strip("[]").lower()
    port = int(found[2]) if found[2] else _DEFAULT_PORTS[scheme]
    return scheme, host, port


def _split(text: str) -> tuple[str | None, str | None, str | None] | None:
    """``text`` cut into its path, query and fragment patterns (None: not given).

    In the URL Pattern constructor string an unescaped ``?`` starts the query
    unless it follows ``*`` (then it is a modifier: refused here), and ``#``
    starts the fragment.
    """
    parts: list[str | None] = [None, None, None]
    index = 0 if text[:1] not in ("?", "#") else (1 if text[0] == "?" else 2)
    start = 0 if index == 0 else 1
    if index == 0 and not text:
        return None, None, None
    i = start
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if (c == "?" and index == 0) or (c == "#" and index < 2):
            if c == "?" and i > 0 and text[i - 1] == "*" and (i < 2 or text[i - 2] != "\\"):
                return None  # "*?": an optional wildcard, outside the subset
            parts[index] = text[start:i]
            index = 1 if c == "?" else 2
            start = i + 1
        i += 1
    parts[index] = text[start:]
    return parts[0], parts[1], parts[2]


def _escape(fixed: str) -> str:
    """Fixed text as pattern text: every special character escaped."""
    return re.sub(r"([\\*?+:(){}#])", r"\\\1", fixed)


def _build(
    origin: tuple[str, str, int], path: str, query: str | None, fragment: str | None
) -> _Pattern | None:
    if _DOT_SEGMENT.search(path) is not None:
        return None  # URL Pattern would resolve them; anysoup refuses them instead
    path_re = _regex(path, _PATH_SAFE)
    query_re = _regex(query, _QUERY_SAFE) if query is not None else None
    fragment_re = _regex(fragment, _QUERY_SAFE) if fragment is not None else None
    if path_re is None or (query is not None and query_re is None):
        return None
    if fragment is not None and fragment_re is None:
        return None
    return _Pattern(origin, path_re, _any(query_re), _any(fragment_re))


def _any(compiled: re.Pattern[str] | None) -> re.Pattern[str] | None:
    """None for a component pattern that matches everything (``*``)."""
    return None if compiled is None or compiled.pattern == "(?s:.*)" else compiled


def _regex(text: str, safe: str) -> re.Pattern[str] | None:
    """A component pattern as a regex: fixed text (percent-encoded) and ``*``; None if refused."""
    out: list[str] = []
    fixed: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            if i + 1 == len(text):
                return None
            fixed.append(text[i + 1])
            i += 2
            continue
        if c in "(){}:+?":  # regexp and named groups, groups, modifiers: refused
            return None
        if c == "*":
            out.append(re.escape(quote("".join(fixed), safe=safe)))
            fixed.clear()
            out.append(".*")
        else:
            fixed.append(c)
        i += 1
    out.append(re.escape(quote("".join(fixed), safe=safe)))
    return re.compile("(?s:" + "".join(out) + ")")


# -- choosing among dictionaries (§2.2.3) ---------------------------------------------------

_T = TypeVar("_T")


def choose_dictionary(
    candidates: Iterable[tuple[str, str, float, _T]], request_url: str
) -> _T | None:
    """The dictionary to offer for ``request_url``, or None if none matches.

    Args:
        candidates: ``(match, dictionary_url, fetched, value)`` for each usable
            (fresh, or allowed to be served stale: §2.2.1) stored dictionary:
            its ``match`` pattern, its URL, when it was fetched (any clock
            that grows), and what to return if it is chosen.
        request_url: The URL of the request about to go out.

    §2.2.3: of the dictionaries that match, the one with the longest
    ``match`` wins, then the most recently fetched (then the first given).
    """
    best: tuple[int, float] | None = None
    chosen: _T | None = None
    for match, dictionary_url, fetched, value in candidates:
        if not pattern_matches(match, dictionary_url, request_url):
            continue
        rank = (len(match), fetched)
        if best is None or rank > best:
            best, chosen = rank, value
    return chosen


# -- request headers (§2.2, §2.3) and where dictionaries may be used (§8) --------------------


def available_dictionary_value(sha256: bytes) -> str:
    """The ``Available-Dictionary`` value: the SHA-256 as an sf-binary, ``:base64:``."""
    if len(sha256) != HASH_SIZE:
        raise ValueError(f"sha256: {len(sha256)} bytes, a SHA-256 digest has {HASH_SIZE}")
    return serialize_byte_sequence(sha256)


def dictionary_id_value(ident: str) -> str:
    """The ``Dictionary-ID`` value: the dictionary's id as an sf-string (quoted)."""
    if len(ident) > MAX_ID_LENGTH:
        raise ValueError(f"id: {len(ident)} characters, at most {MAX_ID_LENGTH}")
    return serialize_string(ident)


def secure_context(url: URL) -> bool:
    """Whether dictionaries may be offered for a request to ``url``.

    §8: "compression dictionary transport MUST only be used in secure
    contexts (HTTPS)". anysoup takes the W3C Secure Contexts meaning, as
    browsers do: https, or plain http to a loopback host (``localhost``,
    ``*.localhost``, 127.0.0.0/8, ``::1``), where no middlebox can stand
    between client and server.
    """
    if url.scheme == "https":
        return True
    if url.scheme != "http":
        return False
    host = (url.raw_host or "").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- the dcb and dcz stream headers (§4, §5) ---------------------------------------------------


def stream_header_size(coding: str) -> int:
    """The size of the fixed header that starts a ``coding`` body (36 or 40 bytes)."""
    return len(STREAM_MAGIC[coding]) + HASH_SIZE


def parse_stream_header(coding: str, header: bytes) -> bytes:
    """The dictionary hash a ``dcb`` or ``dcz`` body's fixed header names.

    Args:
        coding: ``"dcb"`` or ``"dcz"``.
        header: The body's first :func:`stream_header_size` bytes.

    Raises:
        ValueError: ``header`` is short, or doesn't start with the coding's magic.
    """
    magic = STREAM_MAGIC[coding]
    if len(header) != len(magic) + HASH_SIZE:
        raise ValueError(f"a {coding!r} stream header has {len(magic) + HASH_SIZE} bytes")
    if header[: len(magic)] != magic:
        raise ValueError(f"not a {coding!r} stream: bad magic number {header[: len(magic)].hex()}")
    return bytes(header[len(magic) :])
