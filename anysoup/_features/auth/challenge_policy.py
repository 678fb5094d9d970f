"""Parsing ``WWW-Authenticate`` and ``Proxy-Authenticate`` (policy: no I/O).

Theory of operation: the field is a comma-separated list of challenges
(RFC 9110 §11.6.1), each ``auth-scheme [ 1*SP ( token68 / #auth-param ) ]``
(§11.2). The same comma separates a challenge's params and the challenges
themselves, so the parser walks the list one *element* (the text between two
top-level commas) at a time and sorts each into one of these shapes:

================================  ============================================
``""`` (``,,``)                   ignored (§5.6.1.2)
``scheme``                        a new challenge with no params (yet)
``scheme 1*SP token68``           a new challenge with a token68 (Negotiate)
``scheme 1*SP name BWS = value``  a new challenge and its first param
``name BWS = BWS value``          one more param of the current challenge
anything else                     malformed: skipped (see below)
================================  ============================================

So a token followed by whitespace and then a token68 or a ``name=`` starts a
new challenge, and a bare token followed by a comma is a scheme with no params
whose params, if any, follow in the next elements.

Decisions where the RFC leaves room, or where input is broken:

* Several field lines are one list (§5.3): a line that starts with a param
  continues the last challenge of the line before. A quoted string does not
  run across lines, so an unterminated quote loses only the rest of its line.
* Scheme and param names are lowercased; values are kept as given, unquoted
  and unescaped (§5.6.4).
* A duplicated param keeps its first value (§11.2 forbids duplicates; like
  libsoup's non-strict param-list parsing, a later copy cannot override).
* A challenge is params *or* a token68: params after a token68 are dropped.
* Leniency for values: besides quoted-string and token, an unquoted value may
  be any run of visible characters other than ``,`` and ``"``, not starting
  with ``=`` (real servers send ``domain=/path``); it ends at whitespace.
* At most ``MAX_CHALLENGES`` challenges; the rest of the field is not read.
* A param that is broken (no value, unterminated quote, control characters,
  trailing junk) is dropped; the challenge keeps its other params. An element
  that is not even ``token ...`` (``Bas/ic``, ``"x"``, ``=x``) is dropped and
  ends the current challenge: the params after it might belong to whatever it
  was meant to be, so they are dropped until the next scheme.

The work is linear in the input: each element is matched once by regular
expressions without ambiguous repetition (no catastrophic backtracking), then
the position moves past it; a malformed element is skipped with the same
quoted-string rule. Nothing here raises on any ``str`` input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..._model.grammar import ESCAPE as _ESCAPE
from ..._model.grammar import QBODY as _QBODY
from ..._model.grammar import TOKEN as _TOKEN
from ..._model.grammar import TOKEN_FULL as _TOKEN_FULL
from ..._model.grammar import unescape as _escaped
from ..._model.public import public

__all__ = ["Challenge", "parse_challenges", "MAX_CHALLENGES", "format_params", "quote"]


@public
@dataclass(frozen=True)
class Challenge:
    """One challenge: a scheme with its parameters or its token68 (RFC 9110 §11.2)."""

    #: The scheme, lowercased (``"basic"``, ``"digest"``).
    scheme: str
    #: The auth-params, names lowercased, values unquoted.
    params: dict[str, str] = field(default_factory=dict)
    #: The token68 form (``Negotiate <base64>``), or None.
    token68: str | None = None


# -- the grammar (RFC 9110 §5.6.2, §5.6.4, §11.2) ----------------------------------

#: At most this many challenges are returned; the rest of the header is not
#: read. Real servers offer a handful; the bound keeps a hostile header from
#: costing the auth manager one object per three bytes.
MAX_CHALLENGES = 32

# token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_TOKEN68 = r"[A-Za-z0-9\-._~+/]+=*"
# Not "=" first: ``abc==`` with no scheme is an orphan token68, not abc="=".
_BARE = r'[^\x00-\x20\x7f",=][^\x00-\x20\x7f",]*'
_END = r"[ \t]*(?=,|\Z)"

#: The separators (OWS, empty elements), then one well-formed element (the
#: shapes of the module docstring) up to its comma. Everything is optional, so
#: it always matches; ``tok`` is None when the element is missing or broken.
_ELEMENT = re.compile(
    rf"""
    [ \t,]*
    (?:
        (?P<tok>{_TOKEN})
        (?:
            [ \t]*=[ \t]*(?:"(?P<q1>{_QBODY})"|(?P<b1>{_BARE}))          # name = value
          | [ \t]+(?P<t68>{_TOKEN68})(?={_END})                          # scheme token68
          | [ \t]+(?P<name>{_TOKEN})[ \t]*=[ \t]*(?:"(?P<q2>{_QBODY})"|(?P<b2>{_BARE}))
        )?
        {_END}
    )?
    """,
    re.VERBOSE | re.DOTALL,
)
_TOKEN_RE = re.compile(_TOKEN)
# After the name of a broken element: ``=`` (a param) or whitespace (a scheme).
_AFTER_TOKEN = re.compile(r"[ \t]*(=)|[ \t]+")
# The rest of a broken element: up to a comma that is not in a quoted-string.
_SKIP = re.compile(rf'[^,"]*(?:"{_QBODY}"[^,"]*)*', re.DOTALL)
# RFC 9110 §5.6.4: qdtext and quoted-pair allow HTAB but no other control.
_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def parse_challenges(values: list[str]) -> list[Challenge]:
    """Every challenge in the header values, in order; malformed ones skipped.

    Args:
        values: The ``WWW-Authenticate`` (or ``Proxy-Authenticate``) field
            lines, in the order received; together they form one list.

    Returns:
        The challenges (at most ``MAX_CHALLENGES``), schemes and param
        names lowercased, values unquoted.

    Never raises: a crafted header gives fewer challenges, not an error.
    """
    parser = _Parser()
    for value in values:
        if not parser.feed(value):
            break
    return [Challenge(scheme, params, token68) for scheme, params, token68 in parser.found]


class _Parser:
    """The list walk; ``current`` is the params dict later elements add to."""

    def __init__(self) -> None:
        self.found: list[tuple[str, dict[str, str], str | None]] = []
        self.current: dict[str, str] | None = None

    def feed(self, s: str) -> bool:
        """Parse one field line; return False once ``MAX_CHALLENGES`` is reached."""
        pos, end = 0, len(s)
        while True:
            m = _ELEMENT.match(s, pos)
            assert m is not None  # everything in the pattern is optional
            tok, q1, b1, t68, name, q2, b2 = m.groups()
            pos = m.end()
            if tok is None:
                if pos >= end:
                    return True
                pos = self._malformed(s, pos)
            elif name is not None:  # scheme 1*SP name = value
                self._start(tok, None)
                self._param(name, q2, b2)
            elif t68 is not None:  # scheme 1*SP token68
                self._start(tok, t68)
            elif q1 is not None or b1 is not None:  # name = value
                self._param(tok, q1, b1)
            else:  # a scheme alone
                self._start(tok, None)
            if len(self.found) > MAX_CHALLENGES:
                del self.found[MAX_CHALLENGES:]
                return False

    def _start(self, scheme: str, token68: str | None) -> None:
        params: dict[str, str] = {}
        self.found.append((scheme.lower(), params, token68))
        # A token68 challenge takes no params (§11.2: one form or the other).
        self.current = None if token68 is not None else params

    def _param(self, name: str, quoted: str | None, bare: str | None) -> None:
        if self.current is None:
            return  # no challenge to add it to: before any scheme, or after a token68
        if quoted is None:
            value = bare or ""
        elif _CTL.search(quoted):
            return  # §5.6.4: not a quoted-string; the param alone is dropped
        else:
            value = _ESCAPE.sub(_escaped, quoted) if "\\" in quoted else quoted
        self.current.setdefault(name.lower(), value)  # the first one wins

    def _malformed(self, s: str, pos: int) -> int:
        """Handle the broken element at ``pos``; return where it ends."""
        tok = _TOKEN_RE.match(s, pos)
        after = _AFTER_TOKEN.match(s, tok.end()) if tok is not None else None
        if tok is None or after is None:
            # Not ``token ...``: we cannot tell what it was meant to be, so
            # the params after it do not go to the challenge before it.
            self.current = None
        elif after.group(1) is None:
            # ``scheme 1*SP junk``: the scheme is clear, its first param is not.
            self._start(tok.group(), None)
        # else ``name = junk``: a broken param, dropped; the challenge goes on.
        skipped = _SKIP.match(s, pos)
        assert skipped is not None  # everything in the pattern is optional
        if skipped.end() < len(s) and s[skipped.end()] == '"':
            return len(s)  # an unterminated quote runs to the end of the line
        return skipped.end()


# -- building Authorization params ---------------------------------------------------


def quote(value: str) -> str:
    r"""``value`` as a quoted-string: in double quotes, ``"`` and ``\`` escaped.

    Raises:
        ValueError: ``value`` holds a control character other than HTAB
            (RFC 9110 §5.6.4), which no quoted-string can carry.
    """
    if _CTL.search(value):
        raise ValueError("a quoted-string cannot hold control characters")
    return _quote(value)


def format_params(params: list[tuple[str, str]], quote: set[str]) -> str:
    """An ``Authorization`` param list: ``name="value", name=token, ...``.

    Args:
        params: The names and values, in the order to send them.
        quote: The names whose values are sent as quoted-strings (Digest's
            ``username``, ``realm``, ``nonce``, ``uri``, ``response`` ...);
            the others are sent bare and must be tokens (``algorithm=MD5``,
            ``qop=auth``, ``nc=00000001``).

    Raises:
        ValueError: A name is not a token, a bare value is not a token, or a
            quoted value holds a control character. The message names the
            param, never its value (it may be derived from a credential).
    """
    parts = []
    for name, value in params:
        if not _TOKEN_FULL.match(name):
            raise ValueError(f"auth-param name {name!r} is not a token")
        if name in quote:
            if _CTL.search(value):
                raise ValueError(f"auth-param {name!r}: control characters in the value")
            parts.append(f"{name}={_quote(value)}")
        elif _TOKEN_FULL.match(value):
            parts.append(f"{name}={value}")
        else:
            raise ValueError(f"auth-param {name!r}: a bare value must be a token; quote it")
    return ", ".join(parts)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
