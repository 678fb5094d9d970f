"""The header grammar of RFC 9110 §5.6 as regular expressions (tokens, quoted-strings).

Shared by every parser of parameterised header values (authentication
challenges, WebSocket extensions) so that they agree on what a token is.
"""

from __future__ import annotations

import re

__all__ = ["ESCAPE", "QBODY", "TOKEN", "TOKEN_FULL", "unescape"]

#: A token (RFC 9110 §5.6.2): one or more tchar.
TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
#: A quoted-string's body, "unrolled": every character fits exactly one part,
#: so even a failed match (an unterminated quote) backs off in linear time.
QBODY = r'[^"\\]*(?:\\.[^"\\]*)*'
#: A quoted-pair (RFC 9110 §5.6.4), for ``ESCAPE.sub(unescape, body)``.
ESCAPE = re.compile(r"\\(.)", re.DOTALL)
#: A whole string that is one token.
TOKEN_FULL = re.compile(TOKEN + r"\Z")


def unescape(pair: re.Match[str]) -> str:
    """The character a quoted-pair stands for (a ``re.sub`` callback)."""
    # A function, not the template r"\1": CPython expands templates slowly.
    return pair[1]
