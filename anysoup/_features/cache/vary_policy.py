"""Secondary cache keys: ``Vary`` (RFC 9111 §4.1).

Theory of operation
-------------------
This module is policy (no I/O). A response's ``Vary`` names the request
fields its selection depended on. When it is stored, :func:`vary_key`
records, for each named field, the value the request carried (None when the
field was absent): that tuple is the entry's secondary key
(:attr:`StoredResponse.vary`), so several variants of one URI live side by
side. A later request may reuse the entry only if :func:`vary_matches`: every
recorded field has the same normalised value in the new request, and a field
that was absent is still absent (§4.1: absent matches only absent).

Normalisation is the one RFC 9111 §4.1 allows for any field: the field lines
are combined into one value joined by ``", "`` (RFC 9110 §5.3), and
whitespace around the commas is collapsed, so ``gzip,br`` and ``gzip, br``
(or the same list over two lines) select the same variant. Values are
otherwise compared exactly: case and order can matter to a field, and a
cache that knows no field's semantics must not guess (a miss costs a
request; a wrong match serves the wrong variant).

``Vary: *`` (alone or in a list) means the response depends on more than
header fields; it can never match (§4.1), so such a response is not stored
at all and :func:`vary_key` returns None for it.
"""

from __future__ import annotations

import re

from ..._model.headers import MessageHeaders
from .directives_policy import field_names

__all__ = ["normalise_field", "vary_key", "vary_matches", "vary_names"]

# Whitespace around the commas of a combined list value.
_COMMA_RE = re.compile(r"[ \t]*,[ \t]*")


def vary_names(response_headers: MessageHeaders) -> list[str] | None:
    """The lower-cased field names a response's ``Vary`` lists, or None for ``*``."""
    names: list[str] = []
    for value in response_headers.get_all("Vary"):
        for name in field_names(value):
            if name == "*":
                return None
            if name not in names:
                names.append(name)
    return names


def normalise_field(headers: MessageHeaders, name: str) -> str | None:
    """The value of field ``name`` as a secondary key compares it, None when absent."""
    values = headers.get_all(name)
    if not values:
        return None
    return _COMMA_RE.sub(", ", ", ".join(values))


def vary_key(
    response_headers: MessageHeaders, request_headers: MessageHeaders
) -> tuple[tuple[str, str | None], ...] | None:
    """The secondary key to store a response under (RFC 9111 §4.1).

    Args:
        response_headers: the response, whose ``Vary`` names the fields.
        request_headers: the request as sent, whose values are recorded.

    Returns:
        ``(name, value)`` for each field ``Vary`` names, names lower-cased,
        in ``Vary``'s order; an empty tuple without ``Vary``; None for
        ``Vary: *`` (the response can never be reused).
    """
    names = vary_names(response_headers)
    if names is None:
        return None
    return tuple((name, normalise_field(request_headers, name)) for name in names)


def vary_matches(
    stored: tuple[tuple[str, str | None], ...], request_headers: MessageHeaders
) -> bool:
    """Whether a request selects a stored variant (RFC 9111 §4.1).

    Args:
        stored: the entry's secondary key (:attr:`StoredResponse.vary`).
        request_headers: the new request as it will be sent.

    Returns:
        True if every recorded field has the same normalised value in the
        request (absent where it was absent).
    """
    return all(normalise_field(request_headers, name) == value for name, value in stored)
