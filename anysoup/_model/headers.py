"""HTTP header lists: :class:`MessageHeaders`, anysoup's SoupMessageHeaders.

Theory of operation
-------------------
A header block is kept as one Python list of ``(name, value)`` pairs, in the
order the lines were added or received, with each name in the case it was
given. That is the shape the wire has and the shape h11 wants, so sending a
request is a plain walk over the list, and repeated fields keep their relative
order, which RFC 9110 §5.3 makes significant.

Lookups are linear and compare ``name.lower()``. A header block holds a dozen
or two lines, and a scan of a short list beats keeping a second, lowercased
index in step on every append, replace and remove.

Everything that enters through the public API is checked once, at the door:
names must be tokens (RFC 9110 §5.6.2) and values must hold no control
characters other than horizontal tab (RFC 9110 §5.5), which closes the door on
header injection through CR, LF or NUL. Lines that h11 has already parsed and
validated come in through :meth:`MessageHeaders._from_trusted` and are not
checked a second time.

This is a policy module: no I/O, no anyio.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol

__all__ = ["MessageHeaders"]

# RFC 9110 §5.6.2: token = 1*tchar.
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 §5.5: a field value is VCHAR, obs-text, SP and HTAB. CR, LF and NUL
# must be rejected; the other controls are just as invalid, and h11 would refuse
# them later with an error that looks like an anysoup bug, so refuse them here.
_BAD_VALUE_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 9110 §5.6.3: optional whitespace around values and list items.
_OWS = " \t"
# Shown as "[secure]" by repr(): reprs end up in logs and tracebacks.
_SECRET_NAMES = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
# Content-Length is a signed 64-bit offset in libsoup (goffset).
_MAX_CONTENT_LENGTH = 2**63 - 1
# Names already found to be tokens. A program uses a few dozen names, so a set
# lookup saves the regex on the hot path; the bound keeps hostile or generated
# names from growing it without limit.
_VALID_NAMES: set[str] = set()
_VALID_NAMES_MAX = 1024


def _check(name: str, value: str, *, octets: bool = True) -> tuple[str, str]:
    """Validate one header line and return it with the value trimmed.

    ``octets=False`` is for the part headers of a multipart body, which are
    UTF-8 (RFC 7578 §5.1.1) rather than one octet per character.

    Raises:
        TypeError: ``name`` or ``value`` is not a ``str``.
        ValueError: the name is not a token, or the value holds a control
            character (CR, LF and NUL included).
    """
    if not isinstance(name, str) or not isinstance(value, str):
        raise TypeError(
            f"header {name!r}: name and value must be str, "
            f"not {type(name).__name__} and {type(value).__name__}"
        )
    # The cache is for exact str only: a subclass could redefine __eq__.
    if type(name) is not str or name not in _VALID_NAMES:
        if _TOKEN_RE.fullmatch(name) is None:
            raise ValueError(f"invalid header name {name!r}: a name must be an RFC 9110 token")
        if type(name) is str and len(_VALID_NAMES) < _VALID_NAMES_MAX:
            _VALID_NAMES.add(name)
    # Every character _BAD_VALUE_RE matches is a control, which isprintable()
    # rejects: the common, plain value skips the regex.
    if not str.isprintable(value) and _BAD_VALUE_RE.search(value) is not None:
        raise ValueError(
            f"invalid value for header {name!r}: control characters (CR, LF, NUL, ...) "
            "are not allowed in header values"
        )
    if octets and not str.isascii(value):
        _check_octets(name, value)
    # RFC 9110 §5.5: leading and trailing whitespace is not part of the value.
    return name, str.strip(value, _OWS)


def _check_octets(name: str, value: str) -> None:
    """Refuse a value that can't go on the wire as octets.

    RFC 9110 §5.5: a field value is octets; bytes past ASCII (obs-text) are
    carried as they are. Values are str here, one character per octet
    (latin-1) both ways, so a response header goes back byte for byte. A
    character past U+00FF has no octet: refuse it now, not during a send.
    """
    try:
        value.encode("latin-1")
    except UnicodeEncodeError as exc:
        bad = value[exc.start]
        raise ValueError(
            f"invalid value for header {name!r}: {bad!r} is not an octet; header values "
            "are bytes (one character per byte, latin-1): encode text first, e.g. as "
            "UTF-8 then percent-encoded (RFC 8187)"
        ) from None


def _ascii_equal_ignore_case(a: str, b: str) -> bool:
    """Compare two strings ignoring ASCII case only, as ``g_ascii_strcasecmp``.

    ``str.lower()`` folds some non-ASCII letters onto ASCII ones (KELVIN SIGN
    becomes ``k``); a header value must not match a token through that.
    """
    return len(a) == len(b) and a.lower() == b.lower() and a.isascii() and b.isascii()


def _split_list(value: str) -> list[str]:
    """Split a comma-separated list (RFC 9110 §5.6.1), respecting quoted strings."""
    if '"' not in value:
        return value.split(",")
    items: list[str] = []
    start = 0
    in_quotes = escaped = False
    for i, ch in enumerate(value):
        if escaped:
            escaped = False
        elif in_quotes:
            if ch == "\\":
                escaped = True
            elif ch == '"':
                in_quotes = False
        elif ch == '"':
            in_quotes = True
        elif ch == ",":
            items.append(value[start:i])
            start = i + 1
    items.append(value[start:])
    return items


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    """Read the quoted-string opening at ``text[start]`` (RFC 9110 §5.6.4).

    Returns:
        The unescaped content and the index just after the closing quote. An
        unterminated string runs to the end of ``text``.
    """
    out: list[str] = []
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            return "".join(out), i + 1
        if ch == "\\" and i + 1 < n:
            i += 1
            ch = text[i]
        out.append(ch)
        i += 1
    return "".join(out), n


def _parse_params(text: str) -> dict[str, str]:
    """Parse ``; name=value`` parameters (RFC 9110 §5.6.6), leniently.

    Names are lowercased. A parameter without ``=``, with a name that is not a
    token or with an empty value is skipped; the first of two parameters with
    the same name wins; an unterminated quoted string runs to the end.
    """
    params: dict[str, str] = {}
    i = 0
    n = len(text)
    while i < n:
        if text[i] in "; \t":
            i += 1
            continue
        end = i
        while end < n and text[end] not in "=;":
            end += 1
        name = text[i:end].strip(_OWS).lower()
        if end == n or text[end] == ";":
            i = end
            continue
        i = end + 1
        while i < n and text[i] in _OWS:
            i += 1
        if i < n and text[i] == '"':
            value, i = _read_quoted(text, i)
            semi = text.find(";", i)
            i = n if semi < 0 else semi
            valid = True
        else:
            semi = text.find(";", i)
            end = n if semi < 0 else semi
            value = text[i:end].strip(_OWS)
            i = end
            valid = bool(value)
        if valid and name not in params and _TOKEN_RE.fullmatch(name) is not None:
            params[name] = value
    return params


def _quote_param(value: str) -> str:
    """Return ``value`` as a token if it is one, else as a quoted-string."""
    if _TOKEN_RE.fullmatch(value) is not None:
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


class RawHeaderBlock(Protocol):
    """A parsed header block that lists its lines as bytes (h11's ``Headers``)."""

    def raw_items(self) -> list[tuple[bytes, bytes]]:
        """The lines, names in their original case."""
        ...


class MessageHeaders:
    """An ordered, case-insensitive, multi-valued list of HTTP header lines.

    This is libsoup's ``SoupMessageHeaders``. Names keep the case they were
    given in; lookups ignore case. A name may occur on several lines; the
    lines keep their order.

    Args:
        headers: the initial lines, as a mapping of names to values or as an
            iterable of ``(name, value)`` pairs. The caller's object is copied,
            never kept.

    Raises:
        ValueError: a name is not a token or a value holds CR, LF, NUL or
            another control character (header injection).
        TypeError: a name or value is not a ``str``.

    Example:
        >>> h = MessageHeaders({"Accept": "text/html"})
        >>> h.append("accept", "text/plain")
        >>> h.get_list("ACCEPT")
        'text/html, text/plain'
    """

    __slots__ = ("_list",)

    _list: list[tuple[str, str]]

    def __init__(
        self, headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None
    ) -> None:
        if headers is None:
            self._list = []
        elif isinstance(headers, MessageHeaders):
            self._list = list(headers._list)
        else:
            pairs = headers.items() if isinstance(headers, Mapping) else headers
            self._list = [_check(name, value) for name, value in pairs]

    @classmethod
    def _from_trusted(cls, pairs: list[tuple[str, str]]) -> MessageHeaders:
        """Wrap lines that are already valid, without checking them.

        For header blocks parsed by h11. The new object takes ``pairs`` over:
        the caller must not use the list afterwards.
        """
        self = cls.__new__(cls)
        self._list = pairs
        return self

    @classmethod
    def _from_raw(cls, raw: RawHeaderBlock) -> MessageHeaders:
        """Wrap a parsed header block (h11's), decoded (latin-1) on first use.

        Most responses are read without looking at most of their headers, so
        even listing the block waits until some method needs the lines.
        """
        self = _RawHeaders.__new__(_RawHeaders)
        self._raw = raw
        return self

    @classmethod
    def _from_pairs(cls, pairs: list[tuple[bytes, bytes]]) -> MessageHeaders:
        """Wrap a list of byte pairs (an HTTP/2 header block), decoded on first use."""
        return cls._from_raw(_Pairs(pairs))

    # -- adding and removing -------------------------------------------------

    def append(self, name: str, value: str) -> None:
        """Add a header line after all the others, even if ``name`` is present.

        Leading and trailing whitespace of ``value`` is dropped (RFC 9110 §5.5).

        Args:
            name: the header name, a token.
            value: the header value.

        Raises:
            ValueError: ``name`` is not a token or ``value`` holds a control
                character.
        """
        self._list.append(_check(name, value))

    def replace(self, name: str, value: str) -> None:
        """Set ``name`` to the single value ``value``.

        The first line with that name is overwritten in place (taking the case
        of ``name`` given here) and any later ones are removed; if there is
        none, the line is appended.

        Args:
            name: the header name, a token.
            value: the header value.

        Raises:
            ValueError: ``name`` is not a token or ``value`` holds a control
                character.
        """
        line = _check(name, value)
        key = name.lower()
        lines = self._list
        for i, (n, _) in enumerate(lines):
            if n.lower() == key:
                lines[i] = line
                lines[i + 1 :] = [p for p in lines[i + 1 :] if p[0].lower() != key]
                return
        lines.append(line)

    def remove(self, name: str) -> None:
        """Remove every line named ``name``; do nothing if there is none.

        Args:
            name: the header name, in any case.
        """
        key = name.lower()
        self._list = [p for p in self._list if p[0].lower() != key]

    def clear(self) -> None:
        """Remove every header line."""
        self._list = []

    # -- reading -------------------------------------------------------------

    def get_one(self, name: str) -> str | None:
        """Return the value of the first line named ``name``.

        libsoup returns the *last* value for headers that are not lists; with
        duplicated singleton headers anysoup returns the first, the one a
        reader of the wire meets first. Use :meth:`get_list` or
        :meth:`get_all` for list-valued headers.

        Args:
            name: the header name, in any case.

        Returns:
            The value, or None if there is no such header.
        """
        key = name.lower()
        for n, v in self._list:
            if n.lower() == key:
                return v
        return None

    def get_list(self, name: str) -> str | None:
        """Return all the values of ``name`` joined with ``", "``, as libsoup.

        Args:
            name: the header name, in any case.

        Returns:
            The combined value (RFC 9110 §5.3), or None if there is no such
            header.
        """
        values = self.get_all(name)
        return ", ".join(values) if values else None

    def get_all(self, name: str) -> list[str]:
        """Return the values of every line named ``name``, in order.

        Args:
            name: the header name, in any case.

        Returns:
            A new list, empty if there is no such header.
        """
        key = name.lower()
        return [v for n, v in self._list if n.lower() == key]

    def header_contains(self, name: str, token: str) -> bool:
        """Tell whether a list-valued header holds ``token`` (soup_header_contains).

        The values of every ``name`` line are read as one comma-separated list;
        an item matches when its first part, before any ``;`` parameters and
        without surrounding whitespace, equals ``token`` ignoring ASCII case.
        Commas inside quoted strings do not split items.

        Args:
            name: the header name, in any case.
            token: the item to look for, e.g. ``"close"`` in ``Connection``.

        Returns:
            True if an item matches.
        """
        key = name.lower()
        for n, v in self._list:
            if n.lower() != key:
                continue
            for item in _split_list(v):
                if _ascii_equal_ignore_case(item.partition(";")[0].strip(_OWS), token):
                    return True
        return False

    def header_equals(self, name: str, value: str) -> bool:
        """Tell whether the combined value of ``name`` equals ``value``.

        The comparison ignores ASCII case and uses :meth:`get_list`, as
        libsoup's ``soup_message_headers_header_equals``.

        Args:
            name: the header name, in any case.
            value: the value to compare with.

        Returns:
            True if the header is present and equal to ``value``.
        """
        current = self.get_list(name)
        return current is not None and _ascii_equal_ignore_case(current, value)

    # -- Content-Length and Content-Type -------------------------------------

    def get_content_length(self) -> int | None:
        """Return the ``Content-Length`` as an int (RFC 9110 §8.6).

        A list of identical values (``42, 42``, or repeated lines) counts as
        one value (RFC 9112 §6.3).

        Returns:
            The length, or None if the header is absent, is not a decimal
            number, exceeds 2**63 - 1, or holds differing values.
        """
        result: int | None = None
        for n, v in self._list:
            if n.lower() != "content-length":
                continue
            for part in v.split(","):
                digits = part.strip(_OWS)
                if not (digits.isascii() and digits.isdigit()):
                    return None
                # Strip leading zeros before int(): they are valid, and a
                # long run of them must not trip int()'s digit limit.
                digits = digits.lstrip("0") or "0"
                if len(digits) > 19:
                    return None
                number = int(digits)
                if number > _MAX_CONTENT_LENGTH or (result is not None and number != result):
                    return None
                result = number
        return result

    def set_content_length(self, n: int) -> None:
        """Set ``Content-Length`` to ``n``, replacing any previous value.

        Args:
            n: the body length in bytes.

        Raises:
            TypeError: ``n`` is not an int (or is a bool).
            ValueError: ``n`` is negative or above 2**63 - 1.
        """
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"Content-Length must be an int, not {type(n).__name__}")
        if not 0 <= n <= _MAX_CONTENT_LENGTH:
            raise ValueError(f"Content-Length must be between 0 and 2**63 - 1, not {n}")
        self.replace("Content-Length", str(n))

    def get_content_type(self) -> tuple[str, dict[str, str]] | None:
        """Parse the first ``Content-Type`` header (RFC 9110 §8.3).

        Parameter parsing is lenient, like libsoup's: a malformed parameter is
        skipped rather than spoiling the media type.

        Returns:
            ``(media_type, params)``: the media type lowercased (``text/html``)
            and the parameters with lowercased names and unquoted values; None
            if the header is absent or its media type is not ``type/subtype``.
        """
        value = self.get_one("Content-Type")
        if value is None:
            return None
        media, _, rest = value.partition(";")
        type_, slash, subtype = media.strip(_OWS).partition("/")
        if not slash or _TOKEN_RE.fullmatch(type_) is None or _TOKEN_RE.fullmatch(subtype) is None:
            return None
        return f"{type_}/{subtype}".lower(), _parse_params(rest)

    def set_content_type(self, content_type: str, params: Mapping[str, str] | None = None) -> None:
        """Set ``Content-Type``, replacing any previous value.

        Args:
            content_type: the media type, ``type/subtype``.
            params: parameters such as ``{"charset": "utf-8"}``; a value that
                is not a token is written as a quoted string.

        Raises:
            ValueError: ``content_type`` is not ``type/subtype``, a parameter
                name is not a token, or a value holds a control character.
        """
        type_, slash, subtype = content_type.partition("/")
        if not slash or _TOKEN_RE.fullmatch(type_) is None or _TOKEN_RE.fullmatch(subtype) is None:
            raise ValueError(f"invalid media type {content_type!r}: expected 'type/subtype'")
        parts = [content_type]
        for key, value in (params or {}).items():
            if _TOKEN_RE.fullmatch(key) is None:
                raise ValueError(f"invalid Content-Type parameter name {key!r}")
            parts.append(f"{key}={_quote_param(value)}")
        self.replace("Content-Type", "; ".join(parts))

    # -- container protocol --------------------------------------------------

    def items(self) -> list[tuple[str, str]]:
        """Return a snapshot of the ``(name, value)`` lines, in order."""
        return list(self._list)

    def copy(self) -> MessageHeaders:
        """Return an independent copy of these headers."""
        return MessageHeaders._from_trusted(list(self._list))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get_one(name) is not None

    def __getitem__(self, name: str) -> str:
        value = self.get_one(name)
        if value is None:
            raise KeyError(name)
        return value

    def __len__(self) -> int:
        return len(self._list)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._list)

    def __eq__(self, other: object) -> bool:
        # Equal when every name has the same values in the same order (RFC
        # 9110 §5.3: only the order of same-named lines is significant).
        if not isinstance(other, MessageHeaders):
            return NotImplemented
        return self._grouped() == other._grouped()

    def _grouped(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for n, v in self._list:
            groups.setdefault(n.lower(), []).append(v)
        return groups

    def __repr__(self) -> str:
        shown = [(n, "[secure]" if n.lower() in _SECRET_NAMES else v) for n, v in self._list]
        return f"MessageHeaders({shown!r})"


class _RawHeaders(MessageHeaders):
    """A :class:`MessageHeaders` whose lines are decoded when first needed."""

    __slots__ = ("_raw",)

    _raw: RawHeaderBlock

    def __getattr__(self, name: str) -> object:
        # Only reached while the ``_list`` slot is still empty.
        if name != "_list":
            raise AttributeError(name)
        self._list = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in self._raw.raw_items()]
        return self._list


class _Pairs:
    """A header block given as a list of byte pairs (names already lower case)."""

    __slots__ = ("_pairs",)

    def __init__(self, pairs: list[tuple[bytes, bytes]]) -> None:
        self._pairs = pairs

    def raw_items(self) -> list[tuple[bytes, bytes]]:
        return self._pairs
