"""Structured Field Values for HTTP (RFC 8941): the parser of a Dictionary, and serialisers.

Theory of operation
-------------------
A structured field is parsed strictly, left to right, by the algorithms of
RFC 8941 §4.2: any deviation fails the whole field, and a field that fails
is ignored by its user (§4.2: "parsing MUST fail"; the caller then acts as
if the field were absent). Only what anysoup needs is here: a Dictionary
(§3.2) whose members are Items or Inner Lists, every bare item type of RFC
8941 (Integer, Decimal, String, Token, Byte Sequence, Boolean), and
parameters, which are parsed and kept but that no user reads yet. The
newer types of RFC 9651 (Date, Display String) fail the parse, as they
do in an RFC 8941 parser.

Values come back as Python objects: ``int``, ``float``, ``str`` (a String),
:class:`Token` (a ``str`` subclass, so a Token is never mistaken for a
String), ``bytes`` and ``bool``; an Inner List is a ``list`` of
``(value, params)`` pairs.

No I/O, no imports from the rest of anysoup.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

__all__ = [
    "StructuredFieldError",
    "Token",
    "parse_dictionary",
    "serialize_byte_sequence",
    "serialize_string",
]

#: A parsed member: its value (an item, or a list of ``(item, params)``) and its parameters.
Member = tuple[Any, dict[str, Any]]

_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_STRING_BODY = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")  # printable ASCII but " and \
_BASE64 = re.compile(r"[A-Za-z0-9+/=]*")


class StructuredFieldError(ValueError):
    """The field is not a valid structured field (RFC 8941 §4.2): ignore it."""


class Token(str):
    """An RFC 8941 Token (§3.3.4), told apart from a String by its type."""

    __slots__ = ()


class _Parser:
    """One field value being parsed; ``pos`` is where the next character is read."""

    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> StructuredFieldError:
        return StructuredFieldError(f"{what} at offset {self.pos} of {self.text!r}")

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def skip(self, chars: str) -> None:
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos] in chars:
            pos += 1
        self.pos = pos

    def match(self, pattern: re.Pattern[str], what: str) -> str:
        found = pattern.match(self.text, self.pos)
        if found is None or not found[0]:
            raise self.fail(f"expected {what}")
        self.pos = found.end()
        return found[0]

    # -- RFC 8941 §4.2.1 - §4.2.9 ---------------------------------------------

    def dictionary(self) -> dict[str, Member]:
        """§4.2.2: members separated by commas; a later duplicate key replaces an earlier one."""
        result: dict[str, Member] = {}
        while self.pos < len(self.text):
            key = self.match(_KEY, "a key")
            if self.peek() == "=":
                self.pos += 1
                result[key] = self.item_or_inner_list()
            else:
                result[key] = (True, self.parameters())
            self.skip(" \t")
            if self.pos == len(self.text):
                break
            if self.peek() != ",":
                raise self.fail("expected ','")
            self.pos += 1
            self.skip(" \t")
            if self.pos == len(self.text):
                raise self.fail("a trailing ','")
        return result

    def item_or_inner_list(self) -> Member:
        if self.peek() == "(":
            return self.inner_list()
        return self.item()

    def inner_list(self) -> Member:
        """§4.2.1.2: ``(`` items separated by spaces ``)``, then parameters."""
        self.pos += 1
        items: list[Member] = []
        while self.pos < len(self.text):
            self.skip(" ")
            if self.peek() == ")":
                self.pos += 1
                return items, self.parameters()
            items.append(self.item())
            if self.peek() not in (" ", ")"):
                raise self.fail("expected ' ' or ')' in an inner list")
        raise self.fail("an inner list without its ')'")

    def item(self) -> Member:
        return self.bare_item(), self.parameters()

    def parameters(self) -> dict[str, Any]:
        """§4.2.3.2: ``;key`` (True) or ``;key=value``, repeated."""
        params: dict[str, Any] = {}
        while self.peek() == ";":
            self.pos += 1
            self.skip(" ")
            key = self.match(_KEY, "a parameter key")
            value: Any = True
            if self.peek() == "=":
                self.pos += 1
                value = self.bare_item()
            params[key] = value
        return params

    def bare_item(self) -> Any:
        """§4.2.3.1: the first character tells the type."""
        c = self.peek()
        if c and c in "-0123456789":
            return self.number()
        if c == '"':
            return self.string()
        if c == ":":
            return self.byte_sequence()
        if c == "?":
            return self.boolean()
        if c.isascii() and (c.isalpha() or c == "*"):
            return Token(self.match(_TOKEN, "a token"))
        raise self.fail("expected an item")

    def number(self) -> int | float:
        """§4.2.4: at most 15 digits for an Integer, 12 and 3 for a Decimal."""
        text = self.match(_NUMBER, "a number")
        digits = text.lstrip("-")
        if "." in digits:
            whole, frac = digits.split(".")
            if len(whole) > 12 or len(frac) > 3:
                raise self.fail("a decimal out of range")
            return float(text)
        if len(digits) > 15:
            raise self.fail("an integer out of range")
        return int(text)

    def string(self) -> str:
        r"""§4.2.5: printable ASCII; only ``\"`` and ``\\`` are escapes."""
        self.pos += 1
        parts = []
        while True:
            found = _STRING_BODY.match(self.text, self.pos)
            assert found is not None  # the pattern matches the empty string
            parts.append(found[0])
            self.pos = found.end()
            c = self.peek()
            if c == '"':
                self.pos += 1
                return "".join(parts)
            if c == "\\":
                escaped = self.text[self.pos + 1 : self.pos + 2]
                if escaped not in ('"', "\\"):
                    raise self.fail("a bad escape in a string")
                parts.append(escaped)
                self.pos += 2
                continue
            raise self.fail("a string not closed, or with a character it may not hold")

    def byte_sequence(self) -> bytes:
        """§4.2.7: ``:`` base64 ``:``."""
        self.pos += 1
        end = self.text.find(":", self.pos)
        if end < 0:
            raise self.fail("a byte sequence without its closing ':'")
        encoded = self.text[self.pos : end]
        if _BASE64.fullmatch(encoded) is None:
            raise self.fail("a byte sequence that is not base64")
        try:
            # Padding may be left out (§4.2.7 allows a parser to accept that).
            value = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except binascii.Error as exc:
            raise self.fail(f"a byte sequence that is not base64 ({exc})") from exc
        self.pos = end + 1
        return value

    def boolean(self) -> bool:
        """§4.2.8: ``?0`` or ``?1``."""
        value = self.text[self.pos + 1 : self.pos + 2]
        if value not in ("0", "1"):
            raise self.fail("a boolean that is not ?0 or ?1")
        self.pos += 2
        return value == "1"


def parse_dictionary(value: str) -> dict[str, Member]:
    """Parse a Dictionary field value (RFC 8941 §4.2.2), lines already joined with ``,``.

    Raises:
        StructuredFieldError: The value is not a valid Dictionary.
    """
    # §4.2: leading and trailing spaces are discarded; other whitespace isn't allowed.
    parser = _Parser(value.strip(" "))
    return parser.dictionary()


def serialize_string(value: str) -> str:
    r"""An sf-string (RFC 8941 §4.1.6): quoted, with ``"`` and ``\`` escaped.

    Raises:
        ValueError: ``value`` has a character outside printable ASCII.
    """
    if not all(" " <= c <= "~" for c in value):
        raise ValueError(f"{value!r}: a structured-field string holds printable ASCII only")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def serialize_byte_sequence(value: bytes) -> str:
    """An sf-binary (RFC 8941 §4.1.8): ``:`` base64 ``:``."""
    return ":" + base64.b64encode(value).decode("ascii") + ":"
