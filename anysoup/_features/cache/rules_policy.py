"""What the cache may use, store and must forget (RFC 9111 §3, §4.4).

Theory of operation
-------------------
This module is policy (no I/O, no clock). The cache feature asks it four
questions around every exchange, in this order:

1. *May this request use the cache at all?* (:func:`request_may_use_cache`)
   Only GET and HEAD (a HEAD is answered from a stored GET), and never a
   request with ``Range``: the cache stores no partial content, and serving
   a whole body to a range request was one of libsoup's faults. A request's
   ``no-store`` does not stop it from being *answered* from the cache: RFC
   9111 §5.2.1.5 forbids storing the request or its response, and says the
   directive does not apply to a response already stored.
2. *May the response be stored?* (:func:`storable`) RFC 9111 §3, and §3.5
   for ``Authorization`` in a shared cache; see the function for the list.
   ``no-cache`` responses *are* stored (they are revalidated on every use,
   §5.2.2.4): treating them as uncacheable was another libsoup fault.
3. *Which header lines are kept?* (:func:`stored_headers`) Everything but
   the connection-specific fields and the proxy's authentication fields
   (§3.1), ``Set-Cookie`` (a project choice: a cached answer passes through
   the cookie jar again, which must not store its cookies twice), and the
   fields a qualified ``no-cache`` or ``private`` names (§5.2.2.4,
   §5.2.2.7). RFC 9111 lets a cache keep qualified ``no-cache`` fields and
   revalidate before sending them; dropping them is simpler and just as
   correct, and the rest of the response can then be reused without
   revalidation.
4. *What does an unsafe request invalidate?* (:func:`invalidation_targets`)
   §4.4: the target URI after a non-error answer, and the same-origin
   ``Location`` and ``Content-Location``.

Entries are found by :func:`primary_key`: the URI without fragment and
without user information (``absolute_form``, the form a proxy receives), so
a password in a URI is never written to the cache's index.
"""

from __future__ import annotations

from yarl import URL

from ..._model.headers import MessageHeaders
from ..._model.uri import absolute_form
from ..redirect import resolve_location
from .directives_policy import cache_control, field_names
from .vary_policy import vary_names

__all__ = [
    "ERROR_STATUSES",
    "HEURISTICALLY_CACHEABLE",
    "NEVER_STORED",
    "SAFE_METHODS",
    "UNDERSTOOD_STATUSES",
    "excluded_fields",
    "invalidation_targets",
    "is_error_status",
    "primary_key",
    "qualified_fields",
    "request_may_use_cache",
    "request_no_cache",
    "request_no_store",
    "request_only_if_cached",
    "storable",
    "stored_headers",
]

#: RFC 9110 §15.1: statuses a response may be stored with, and given a
#: heuristic lifetime, without explicit freshness. 206 is left out: the cache
#: stores no partial content.
HEURISTICALLY_CACHEABLE = frozenset({200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501})
#: The final statuses whose caching requirements the cache implements, for
#: ``must-understand`` (RFC 9111 §5.2.2.3): RFC 9110's final status codes
#: except 206 (partial content is never stored) and 304 (it updates an entry,
#: it is not one).
UNDERSTOOD_STATUSES = frozenset(
    {200, 201, 202, 203, 204, 205, 300, 301, 302, 303, 307, 308}
    | set(range(400, 418))
    | {421, 422, 426}
    | set(range(500, 506))
)
#: Fields never stored (RFC 9111 §3.1): the connection-specific ones (RFC 9110
#: §7.6.1, with the obsolete Proxy-Connection), the proxy's authentication
#: fields, and Set-Cookie/Set-Cookie2 (a project choice, see the module notes).
NEVER_STORED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authentication-info",
        "proxy-authorization",
        "set-cookie",
        "set-cookie2",
    }
)
#: Methods that invalidate nothing (RFC 9110 §9.2.1's safe methods, and
#: PROPFIND as libsoup's ``SOUP_METHOD_IS_SAFE``). Any other method, known or
#: not, is unsafe (RFC 9111 §4.4).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PROPFIND"})
#: The answers during validation that let ``stale-if-error`` serve a stale
#: entry (RFC 5861 §4), besides a failure to connect.
ERROR_STATUSES = frozenset({500, 502, 503, 504})


# -- the request -------------------------------------------------------------------


def request_may_use_cache(method: str, request_headers: MessageHeaders) -> bool:
    """Whether the cache takes part in this request at all.

    GET and HEAD only (RFC 9111 §2: other methods' answers are not reused
    here), and no ``Range`` (the request then bypasses the cache entirely:
    no lookup, no store). A request's ``no-store`` still allows a stored
    answer (§5.2.1.5); see :func:`request_no_store`.
    """
    return method in ("GET", "HEAD") and "Range" not in request_headers


def request_no_store(request_headers: MessageHeaders) -> bool:
    """Whether the request forbids storing its response (RFC 9111 §5.2.1.5)."""
    return "no-store" in cache_control(request_headers)


def request_only_if_cached(request_headers: MessageHeaders) -> bool:
    """Whether the request wants a stored answer or a 504 (RFC 9111 §5.2.1.7)."""
    return "only-if-cached" in cache_control(request_headers)


def request_no_cache(request_headers: MessageHeaders) -> bool:
    """Whether the request asks for validation before any stored answer is used.

    ``Cache-Control: no-cache`` (RFC 9111 §5.2.1.4), or ``Pragma: no-cache``
    when the request has no ``Cache-Control`` line at all (§5.4: with one,
    Pragma is ignored).
    """
    if "Cache-Control" in request_headers:
        return "no-cache" in cache_control(request_headers)
    return request_headers.header_contains("Pragma", "no-cache")


# -- storing -------------------------------------------------------------------------


def qualified_fields(argument: str | None) -> list[str]:
    """The field names of a qualified ``no-cache`` or ``private`` (lower-cased).

    An empty list means the unqualified directive: no argument, or one that
    names no field (``private=""``), which is read the strict way.
    """
    return [name for name in field_names(argument) if name != "*"]


def storable(
    method: str,
    status: int,
    request_headers: MessageHeaders,
    response_headers: MessageHeaders,
    *,
    shared: bool,
) -> bool:
    """Whether a response may be stored (RFC 9111 §3, §3.5).

    All of these must hold:

    * the request was a GET (a HEAD's answer is never stored: it has no body
      to serve a GET with);
    * the status is final, and neither 206 (no partial content is stored)
      nor 304; with ``must-understand`` it is one of
      :data:`UNDERSTOOD_STATUSES`, and then the response's ``no-store`` is
      ignored, as §5.2.2.3 asks of a cache that understands the status;
    * no ``no-store`` in the request (§5.2.1.5) or, without
      ``must-understand``, in the response (§5.2.2.5);
    * in a shared cache: no unqualified ``private`` (§5.2.2.7; a qualified
      one only keeps the named fields out, :func:`stored_headers`), and no
      ``Authorization`` in the request unless the response has
      ``must-revalidate``, ``public`` or ``s-maxage`` (§3.5);
    * no ``Vary: *`` (§4.1: it could never be reused);
    * something makes it cacheable: ``public``, ``private`` (in a
      single-user cache), ``Expires``, ``max-age``, ``s-maxage`` (in a
      shared cache), or a status in :data:`HEURISTICALLY_CACHEABLE`.

    ``no-cache`` doesn't prevent storing: such an entry is revalidated on
    every use. Nothing here looks at the URI: a URI with a query is as
    cacheable as any other (RFC 9111 dropped RFC 2616 §13.9's rule).
    """
    if method != "GET" or status < 200 or status in (206, 304):
        return False
    directives = cache_control(response_headers)
    if "no-store" in cache_control(request_headers):
        return False
    if "must-understand" in directives:
        if status not in UNDERSTOOD_STATUSES:
            return False
    elif "no-store" in directives:
        return False
    if shared:
        if "private" in directives and not qualified_fields(directives["private"]):
            return False
        if "Authorization" in request_headers and not (
            "must-revalidate" in directives or "public" in directives or "s-maxage" in directives
        ):
            return False
    if vary_names(response_headers) is None:
        return False
    return (
        "public" in directives
        or (not shared and "private" in directives)
        or "Expires" in response_headers
        or "max-age" in directives
        or (shared and "s-maxage" in directives)
        or status in HEURISTICALLY_CACHEABLE
    )


def excluded_fields(response_headers: MessageHeaders, *, shared: bool = True) -> set[str]:
    """The lower-cased names of the fields :func:`stored_headers` leaves out.

    :data:`NEVER_STORED`, the fields the response's ``Connection`` names
    (RFC 9110 §7.6.1), those a qualified ``no-cache`` names (RFC 9111
    §5.2.2.4), and, when ``shared``, those a qualified ``private`` names
    (§5.2.2.7; a single-user cache may keep them).
    """
    names = set(NEVER_STORED)
    for value in response_headers.get_all("Connection"):
        names.update(field_names(value))
    directives = cache_control(response_headers)
    if "no-cache" in directives:
        names.update(qualified_fields(directives["no-cache"]))
    if shared and "private" in directives:
        names.update(qualified_fields(directives["private"]))
    return names


def stored_headers(
    response_headers: MessageHeaders, *, shared: bool = True
) -> tuple[tuple[str, str], ...]:
    """The response's header lines as an entry stores them (RFC 9111 §3.1).

    Args:
        response_headers: the response as received.
        shared: whether the cache is shared; a single-user cache keeps the
            fields a qualified ``private`` names. The default drops them.

    Returns:
        The lines, in order, without the :func:`excluded_fields`.
    """
    excluded = excluded_fields(response_headers, shared=shared)
    return tuple((name, value) for name, value in response_headers if name.lower() not in excluded)


# -- invalidation and errors -------------------------------------------------------------


def primary_key(uri: str | URL) -> str:
    """The primary cache key of a request URI (RFC 9111 §2).

    The absolute URI without fragment and without user information, as yarl
    normalises it (lower-case scheme and host, no default port). Every
    lookup, store and invalidation must use this one function.

    Raises:
        ValueError: ``uri`` is a string that is not a URI.
    """
    url = URL(uri) if isinstance(uri, str) else uri
    return absolute_form(url)


def _same_origin(a: URL, b: URL) -> bool:
    """RFC 6454 origin equality: scheme, host and port."""
    return (a.scheme, (a.raw_host or "").lower(), a.port) == (
        b.scheme,
        (b.raw_host or "").lower(),
        b.port,
    )


def invalidation_targets(
    method: str, status: int, request_uri: str | URL, response_headers: MessageHeaders
) -> list[str]:
    """The primary keys to invalidate after an answer (RFC 9111 §4.4).

    An unsafe method (anything not in :data:`SAFE_METHODS`; methods are
    case-sensitive, RFC 9110 §9.1) with a non-error status (2xx or 3xx)
    invalidates its target URI, and the URIs in ``Location`` and
    ``Content-Location`` when they have the target's origin (relative
    references resolved against it). Another origin is never invalidated:
    a server must not be able to evict a third party's entries.

    Returns:
        Primary keys (:func:`primary_key`), the target first, each once;
        empty when nothing is to be invalidated.
    """
    if method in SAFE_METHODS or not 200 <= status < 400:
        return []
    base = URL(request_uri) if isinstance(request_uri, str) else request_uri
    targets = [primary_key(base)]
    for name in ("Location", "Content-Location"):
        value = response_headers.get_one(name)
        if not value:
            continue
        try:
            target = resolve_location(base, value)
        except ValueError:
            continue  # not a usable URI: nothing to invalidate
        key = primary_key(target)
        if _same_origin(base, target) and key not in targets:
            targets.append(key)
    return targets


def is_error_status(status: int) -> bool:
    """Whether a validation answer lets ``stale-if-error`` apply (RFC 5861 §4)."""
    return status in ERROR_STATUSES
