"""Validation: conditional requests and ``304 Not Modified`` (RFC 9111 §4.3).

Theory of operation
-------------------
This module is policy (no I/O). When :func:`decide` says VALIDATE, the
feature sends the request with :func:`conditional_headers` added: the stored
``ETag`` as ``If-None-Match`` and the stored ``Last-Modified`` as
``If-Modified-Since`` (§4.3.1 asks for the first and recommends the second).
An entry with neither is fetched again unconditionally.

A ``304`` answer is used only if :func:`not_modified_selects` says it is
about the stored entry (§4.3.4). Entity tags are compared the weak way
(RFC 9110 §8.8.3.2) even when the 304's tag is strong: the server chose the
304 by the weak comparison ``If-None-Match`` uses (RFC 9110 §13.1.2), and
servers that weaken a tag when they compress (a stored ``W/"x"``, a 304
with ``"x"``) otherwise never freshen the entry: hishel's issue 466. A 304
with no validator at all selects the entry when it answers the cache's own
conditional request (``ours=True``): the server was asked about this very
entry, and refusing it would revalidate on every use (hishel's issue 239);
for a caller's own conditional request the strict rule of §4.3.4 applies.

:func:`merge_not_modified` then updates the stored headers (§3.2): each
field of the 304 replaces the stored lines of the same name, in the place of
the first of them; new fields come last. The 304's fields that are never
stored (:func:`excluded_fields`) are skipped, and so are the fields that
describe the stored body's framing (:data:`FRAMING_FIELDS`). The stored
``Age`` always goes (an ``Age`` of the 304 replaces it): after validation
the entry's age starts again from the 304 (§4.2.3), and the old value would
count twice. A 304 without ``Date`` likewise removes the stored one, or
replaces it with the time the 304 came, when the caller gives it.

:func:`answer_conditional` serves the other direction (§4.3.2): a caller's
own ``If-None-Match`` / ``If-Modified-Since`` request, evaluated against a
fresh stored entry, so the caller gets the ``304`` it asked for.
"""

from __future__ import annotations

from ..._model.headers import MessageHeaders
from .directives_policy import format_http_date, parse_http_date, split_list
from .entry_policy import StoredResponse
from .freshness_policy import entry_headers
from .rules_policy import excluded_fields, stored_headers

__all__ = [
    "FRAMING_FIELDS",
    "answer_conditional",
    "conditional_headers",
    "merge_not_modified",
    "not_modified_selects",
    "request_is_conditional",
]

#: Fields a 304 never changes in a stored response. The stored body is the
#: one the stored Content-Length and Content-Encoding describe (still
#: content-encoded, as received): a 304 must not change the stored
#: representation's framing. RFC 9111 §3.2 excepts Content-Length, and lets
#: a cache keep the fields whose update would make the stored response
#: inconsistent with what it stored (its example is Content-Encoding);
#: Transfer-Encoding and Content-Range describe a transfer, not the entry.
FRAMING_FIELDS = frozenset(
    {"content-length", "content-encoding", "transfer-encoding", "content-range"}
)
#: Every precondition field (RFC 9110 §13.1).
_PRECONDITIONS = (
    "If-None-Match",
    "If-Modified-Since",
    "If-Match",
    "If-Unmodified-Since",
    "If-Range",
)


def _opaque_tag(tag: str) -> str:
    """An entity tag without its weakness indicator (RFC 9110 §8.8.3)."""
    tag = tag.strip(" \t")
    return tag[2:] if tag[:2] in ("W/", "w/") else tag


def _weak_match(a: str, b: str) -> bool:
    """RFC 9110 §8.8.3.2 weak comparison: the opaque tags are equal."""
    return _opaque_tag(a) == _opaque_tag(b)


def conditional_headers(entry: StoredResponse) -> list[tuple[str, str]]:
    """The validators to add to a request validating ``entry`` (RFC 9111 §4.3.1).

    Returns:
        ``If-None-Match`` with the stored ``ETag`` (strong or weak), and
        ``If-Modified-Since`` with the stored ``Last-Modified`` if it is a
        date; an empty list when the entry has neither (then the request
        goes unconditional).
    """
    headers = entry_headers(entry)
    validators: list[tuple[str, str]] = []
    etag = headers.get_one("ETag")
    if etag:
        validators.append(("If-None-Match", etag))
    last_modified = headers.get_one("Last-Modified")
    if last_modified and parse_http_date(last_modified) is not None:
        validators.append(("If-Modified-Since", last_modified))
    return validators


def not_modified_selects(
    entry: StoredResponse, response_headers: MessageHeaders, *, ours: bool = False
) -> bool:
    """Whether a ``304`` is about ``entry`` and may update it (RFC 9111 §4.3.4).

    Args:
        entry: the stored response that was validated.
        response_headers: the 304's headers.
        ours: True when the 304 answers the cache's own conditional request
            (:func:`conditional_headers` of ``entry``).

    Returns:
        With an ``ETag`` in the 304: whether it matches the entry's (weak
        comparison, see the module notes). Else with a ``Last-Modified``:
        whether the entry has the same. Else: True if ``ours``, or if the
        entry has no validator either.
    """
    stored = entry_headers(entry)
    new_tag = response_headers.get_one("ETag")
    if new_tag:
        old_tag = stored.get_one("ETag")
        return old_tag is not None and _weak_match(old_tag, new_tag)
    new_date = response_headers.get_one("Last-Modified")
    if new_date:
        old_date = stored.get_one("Last-Modified")
        if old_date is None:
            return False
        old, new = parse_http_date(old_date), parse_http_date(new_date)
        return old == new if old is not None and new is not None else old_date == new_date
    return ours or ("ETag" not in stored and "Last-Modified" not in stored)


def merge_not_modified(
    entry: StoredResponse,
    response_headers: MessageHeaders,
    *,
    shared: bool = True,
    response_time: float | None = None,
) -> tuple[tuple[str, str], ...]:
    """The entry's headers updated with a selecting ``304`` (RFC 9111 §3.2, §4.3.4).

    Args:
        entry: the stored response the 304 selected.
        response_headers: the 304's headers.
        shared: whether the cache is shared (as for :func:`stored_headers`).
        response_time: when the 304 came; if given and the 304 has no
            ``Date``, the new ``Date`` says this time (RFC 9110 §6.6.1).

    Returns:
        The header lines to store with the entry's body, in the stored
        order (see the module notes for what changes).
    """
    skipped = excluded_fields(response_headers, shared=shared) | FRAMING_FIELDS
    updates: dict[str, list[tuple[str, str]]] = {}
    for name, value in response_headers:
        key = name.lower()
        if key not in skipped:
            updates.setdefault(key, []).append((name, value))
    # The old Age and Date describe the old response (§4.2.3): never kept.
    updates.setdefault("age", [])
    if "date" not in updates:
        date = [] if response_time is None else [("Date", format_http_date(response_time))]
        updates["date"] = date
    merged: list[tuple[str, str]] = []
    placed: set[str] = set()
    for name, value in entry.headers:
        key = name.lower()
        if key not in updates:
            merged.append((name, value))
        elif key not in placed:
            merged.extend(updates[key])
            placed.add(key)
    for key, lines in updates.items():
        if key not in placed:
            merged.extend(lines)
    # The new Cache-Control may name fields (qualified no-cache, private) to drop.
    return stored_headers(MessageHeaders._from_trusted(merged), shared=shared)


def request_is_conditional(request_headers: MessageHeaders) -> bool:
    """Whether a request carries its own preconditions (RFC 9110 §13.1)."""
    return any(name in request_headers for name in _PRECONDITIONS)


def answer_conditional(entry: StoredResponse, request_headers: MessageHeaders) -> bool:
    """Whether a caller's conditional GET or HEAD may be answered ``304`` from ``entry``.

    RFC 9111 §4.3.2 with RFC 9110 §13.2.2's order: ``If-None-Match`` when
    present (weak comparison with the stored ``ETag``, ``*`` matching any
    entry), else ``If-Modified-Since`` against the stored ``Last-Modified``
    (else ``Date``, else the time it was received). A request with any other
    precondition (``If-Match``, ``If-Unmodified-Since``, ``If-Range``), or
    with an unreadable ``If-Modified-Since``, gets False: the caller gets
    the full entry, or the feature asks the server.

    Only meaningful for an entry that :func:`decide` found FRESH.
    """
    if any(n in request_headers for n in ("If-Match", "If-Unmodified-Since", "If-Range")):
        return False
    stored = entry_headers(entry)
    wanted = request_headers.get_list("If-None-Match")
    if wanted is not None:
        if wanted.strip(" \t") == "*":
            return True
        etag = stored.get_one("ETag")
        return etag is not None and any(_weak_match(t, etag) for t in split_list(wanted))
    since = parse_http_date(request_headers.get_one("If-Modified-Since"))
    if since is None:
        return False
    modified = parse_http_date(stored.get_one("Last-Modified"))
    if modified is None:
        modified = parse_http_date(stored.get_one("Date"))
    if modified is None:
        modified = entry.response_time
    return modified <= since
