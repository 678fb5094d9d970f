"""The HTTP cache's rules (RFC 9111, RFC 5861), one table per rule family.

Pure policy: a fixed clock (``NOW``), no sleeps, no network. Each row's id
names the section it pins ("9111 4.2.1" is RFC 9111 §4.2.1, "RFC5861 3" is
RFC 5861 §3), or the libsoup/hishel fault of issue 18 it guards against.
"""

from __future__ import annotations

import pytest

from anysoup._features.cache.directives_policy import (
    delta_seconds,
    format_http_date,
    parse_cache_control,
    parse_http_date,
)
from anysoup._features.cache.entry_policy import StoredResponse
from anysoup._features.cache.freshness_policy import (
    HEURISTIC_CAP,
    Action,
    Decision,
    age_value,
    current_age,
    decide,
    freshness_lifetime,
)
from anysoup._features.cache.rules_policy import (
    invalidation_targets,
    is_error_status,
    primary_key,
    request_may_use_cache,
    request_no_cache,
    request_no_store,
    request_only_if_cached,
    storable,
    stored_headers,
)
from anysoup._features.cache.validation_policy import (
    answer_conditional,
    conditional_headers,
    merge_not_modified,
    not_modified_selects,
    request_is_conditional,
)
from anysoup._features.cache.vary_policy import vary_key, vary_matches
from anysoup._model.headers import MessageHeaders

#: The fixed "now" of every test: 2023-11-14 22:13:20 UTC.
NOW = 1_700_000_000.0
DAY = 86400.0

Pairs = tuple[tuple[str, str], ...]


def H(*pairs: tuple[str, str]) -> MessageHeaders:
    return MessageHeaders(pairs)


def date(seconds: float) -> str:
    return format_http_date(seconds)


def entry(
    *pairs: tuple[str, str],
    status: int = 200,
    received: float = NOW,
    delay: float = 0.0,
    dated: bool = True,
) -> StoredResponse:
    """An entry received at ``received`` (``Date`` the same unless ``dated=False``)."""
    headers: Pairs = ((("Date", date(received)),) if dated else ()) + pairs
    return StoredResponse(
        key="http://example.com/",
        entry_id="e1",
        status=status,
        reason="OK",
        http_version="1.1",
        headers=headers,
        vary=(),
        request_time=received - delay,
        response_time=received,
        body_size=0,
    )


# -- Cache-Control, delta-seconds, HTTP-date (§5.2, §1.2.2, RFC 9110 §5.6.7) ---------

CACHE_CONTROL = [
    pytest.param(["max-age=60"], {"max-age": "60"}, id="9111 5.2 token argument"),
    pytest.param(
        ["Max-Age=60, NO-STORE"], {"max-age": "60", "no-store": None}, id="9111 5.2 names ci"
    ),
    pytest.param(
        ['no-cache="Set-Cookie, X-A", private'],
        {"no-cache": "Set-Cookie, X-A", "private": None},
        id="9111 5.2 quoted-string argument keeps its comma",
    ),
    pytest.param(['foo="a\\"b"'], {"foo": 'a"b'}, id="9111 5.2 quoted-pair unescaped"),
    pytest.param(
        ["max-age=60", "max-age=5"], {"max-age": "60"}, id="9111 4.2.1 first wins (lines)"
    ),
    pytest.param(["max-age=1, max-age=2"], {"max-age": "1"}, id="9111 4.2.1 first wins (members)"),
    pytest.param(
        ["bad value, =x, no-store, ,, x=(y)"],
        {"no-store": None},
        id="9111 5.2 garbage skipped alone",
    ),
    pytest.param(
        ['x="unterminated, no-store'], {}, id="9111 5.2 unterminated quote runs to the end"
    ),
    pytest.param([" public ,\tmax-age = 3 "], {"public": None, "max-age": "3"}, id="9111 5.2 OWS"),
    pytest.param([], {}, id="9111 5.2 absent"),
]


@pytest.mark.parametrize(("values", "expected"), CACHE_CONTROL)
def test_parse_cache_control(values: list[str], expected: dict[str, str | None]) -> None:
    assert parse_cache_control(values) == expected


DELTAS = [
    pytest.param("60", 60, id="9111 1.2.2 digits"),
    pytest.param("0060", 60, id="9111 1.2.2 leading zeros"),
    pytest.param("99999999999999999999", 2**31, id="9111 1.2.2 overflow is 2^31"),
    pytest.param("-1", None, id="9111 1.2.2 sign invalid"),
    pytest.param("1.5", None, id="9111 1.2.2 fraction invalid"),
    pytest.param("", None, id="9111 1.2.2 empty invalid"),
    pytest.param(None, None, id="9111 1.2.2 no argument"),
]


@pytest.mark.parametrize(("argument", "expected"), DELTAS)
def test_delta_seconds(argument: str | None, expected: int | None) -> None:
    assert delta_seconds(argument) == expected


HTTP_DATES = [
    pytest.param("Sun, 06 Nov 1994 08:49:37 GMT", 784111777.0, id="RFC9110 5.6.7 IMF-fixdate"),
    pytest.param("Sunday, 06-Nov-94 08:49:37 GMT", 784111777.0, id="RFC9110 5.6.7 rfc850"),
    pytest.param("Sun Nov  6 08:49:37 1994", 784111777.0, id="RFC9110 5.6.7 asctime"),
    pytest.param("0", None, id="9111 5.3 '0' is not a date"),
    pytest.param("tomorrow", None, id="9111 5.3 garbage"),
    pytest.param(None, None, id="absent"),
]


@pytest.mark.parametrize(("text", "expected"), HTTP_DATES)
def test_parse_http_date(text: str | None, expected: float | None) -> None:
    assert parse_http_date(text) == expected


def test_format_http_date_round_trips() -> None:
    assert date(NOW) == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert parse_http_date(date(NOW)) == NOW


# -- whether a request uses the cache (§2, §5.2.1) ------------------------------------

REQUESTS = [
    pytest.param("GET", H(), True, id="9111 2 GET"),
    pytest.param("HEAD", H(), True, id="9111 2 HEAD answered from a stored GET"),
    pytest.param("POST", H(), False, id="9111 2 POST"),
    pytest.param("get", H(), False, id="RFC9110 9.1 methods are case-sensitive"),
    pytest.param("GET", H(("Range", "bytes=0-9")), False, id="libsoup fault: Range bypasses"),
    pytest.param(
        "GET", H(("Cache-Control", "no-store")), True, id="9111 5.2.1.5 no-store may still read"
    ),
]


@pytest.mark.parametrize(("method", "headers", "expected"), REQUESTS)
def test_request_may_use_cache(method: str, headers: MessageHeaders, expected: bool) -> None:
    assert request_may_use_cache(method, headers) is expected


REQUEST_DIRECTIVES = [
    pytest.param(
        H(("Cache-Control", "no-store")), (True, False, False), id="9111 5.2.1.5 no-store"
    ),
    pytest.param(
        H(("Cache-Control", "only-if-cached")),
        (False, True, False),
        id="9111 5.2.1.7 only-if-cached",
    ),
    pytest.param(
        H(("Cache-Control", "no-cache")), (False, False, True), id="9111 5.2.1.4 no-cache"
    ),
    pytest.param(H(("Pragma", "no-cache")), (False, False, True), id="9111 5.4 Pragma alone"),
    pytest.param(
        H(("Pragma", "no-cache"), ("Cache-Control", "max-age=5")),
        (False, False, False),
        id="9111 5.4 Pragma ignored with Cache-Control",
    ),
    pytest.param(H(), (False, False, False), id="none"),
]


@pytest.mark.parametrize(("headers", "expected"), REQUEST_DIRECTIVES)
def test_request_directives(headers: MessageHeaders, expected: tuple[bool, bool, bool]) -> None:
    found = (request_no_store(headers), request_only_if_cached(headers), request_no_cache(headers))
    assert found == expected


# -- storing (§3, §3.5) --------------------------------------------------------------------

AUTH = H(("Authorization", "Basic eDp5"))
CC = "Cache-Control"
STORABLE = [
    pytest.param("GET", 200, H(), H(), False, True, id="9111 3 200 heuristically cacheable"),
    pytest.param(
        "HEAD", 200, H(), H((CC, "max-age=60")), False, False, id="9111 3 HEAD not stored"
    ),
    pytest.param(
        "POST", 200, H(), H((CC, "max-age=60")), False, False, id="9111 3 POST not stored"
    ),
    pytest.param("GET", 206, H(), H((CC, "max-age=60")), False, False, id="9111 3 206 not stored"),
    pytest.param("GET", 304, H(), H((CC, "max-age=60")), False, False, id="9111 3 304 not stored"),
    pytest.param("GET", 101, H(), H(), False, False, id="9111 3 status must be final"),
    pytest.param("GET", 302, H(), H(), False, False, id="9111 3 302 needs explicit freshness"),
    pytest.param(
        "GET", 302, H(), H((CC, "max-age=60")), False, True, id="9111 3 302 with max-age"
    ),
    pytest.param("GET", 500, H(), H(("Expires", date(NOW))), False, True, id="9111 3 Expires"),
    pytest.param(
        "GET", 500, H(), H(("Expires", "0")), False, True, id="9111 3 invalid Expires too"
    ),
    pytest.param("GET", 403, H(), H((CC, "public")), False, True, id="9111 3 public"),
    pytest.param(
        "GET", 403, H(), H((CC, "private")), False, True, id="9111 3 private, single-user"
    ),
    pytest.param("GET", 403, H(), H((CC, "s-maxage=5")), True, True, id="9111 3 s-maxage, shared"),
    pytest.param(
        "GET", 403, H(), H((CC, "s-maxage=5")), False, False, id="9111 3 s-maxage ignored, private"
    ),
    pytest.param("GET", 200, H(), H((CC, "no-store")), False, False, id="9111 5.2.2.5 no-store"),
    pytest.param(
        "GET", 200, H((CC, "no-store")), H(), False, False, id="9111 5.2.1.5 request no-store"
    ),
    pytest.param(
        "GET", 200, H(), H((CC, "no-cache")), False, True, id="libsoup fault: no-cache is stored"
    ),
    pytest.param(
        "GET", 200, H(), H((CC, "private")), False, True, id="9111 5.2.2.7 private, SINGLE_USER"
    ),
    pytest.param(
        "GET", 200, H(), H((CC, "private")), True, False, id="9111 5.2.2.7 private, SHARED"
    ),
    pytest.param(
        "GET",
        200,
        H(),
        H((CC, 'private="X-User"')),
        True,
        True,
        id="9111 5.2.2.7 qualified, SHARED",
    ),
    pytest.param("GET", 200, AUTH, H((CC, "max-age=60")), True, False, id="9111 3.5 auth, shared"),
    pytest.param(
        "GET", 200, AUTH, H((CC, "max-age=60")), False, True, id="9111 3.5 auth, private"
    ),
    pytest.param("GET", 200, AUTH, H((CC, "public")), True, True, id="9111 3.5 auth + public"),
    pytest.param(
        "GET", 200, AUTH, H((CC, "s-maxage=9")), True, True, id="9111 3.5 auth + s-maxage"
    ),
    pytest.param(
        "GET",
        200,
        AUTH,
        H((CC, "must-revalidate")),
        True,
        True,
        id="9111 3.5 auth + must-revalidate",
    ),
    pytest.param(
        "GET", 200, H(), H(("Vary", "*")), False, False, id="9111 4.1 Vary: * never stored"
    ),
    pytest.param(
        "GET",
        200,
        H(),
        H(("Vary", "Accept, *")),
        False,
        False,
        id="9111 4.1 Vary with * in a list",
    ),
    pytest.param(
        "GET",
        200,
        H(),
        H((CC, "must-understand, no-store")),
        False,
        True,
        id="9111 5.2.2.3 must-understand overrides no-store",
    ),
    pytest.param(
        "GET",
        299,
        H(),
        H((CC, "must-understand, no-store, max-age=9")),
        False,
        False,
        id="9111 5.2.2.3 must-understand, unknown status",
    ),
    pytest.param(
        "GET",
        200,
        H((CC, "no-store")),
        H((CC, "must-understand, no-store")),
        False,
        False,
        id="9111 5.2.2.3 request no-store still wins",
    ),
]


@pytest.mark.parametrize(("method", "status", "req", "response", "shared", "expected"), STORABLE)
def test_storable(
    method: str,
    status: int,
    req: MessageHeaders,
    response: MessageHeaders,
    shared: bool,
    expected: bool,
) -> None:
    assert storable(method, status, req, response, shared=shared) is expected


def test_query_urls_with_explicit_expiry_are_cacheable() -> None:
    # libsoup's fault (RFC 2616 §13.9): a URI with a query and an explicit
    # expiry is as cacheable as any other, and its key keeps the query.
    response = H((CC, "max-age=60"))
    assert storable("GET", 200, H(), response, shared=False)
    assert freshness_lifetime(response, shared=False, status=200) == 60
    assert primary_key("http://Example.com:80/search?q=a%20b#top") == (
        "http://example.com/search?q=a%20b"
    )


STORED_HEADERS = [
    pytest.param(
        H(("Connection", "close, X-Hop"), ("X-Hop", "1"), ("Keep-Alive", "5"), ("ETag", '"a"')),
        True,
        (("ETag", '"a"'),),
        id="9111 3.1 Connection and the fields it names",
    ),
    pytest.param(
        H(
            ("Transfer-Encoding", "chunked"),
            ("TE", "trailers"),
            ("Upgrade", "h2c"),
            ("Proxy-Connection", "keep-alive"),
            ("Proxy-Authenticate", "Basic"),
            ("Proxy-Authentication-Info", "x"),
            ("Proxy-Authorization", "Basic x"),
            ("Content-Type", "text/plain"),
        ),
        True,
        (("Content-Type", "text/plain"),),
        id="9111 3.1 connection-specific and proxy fields",
    ),
    pytest.param(
        H(("Set-Cookie", "a=1"), ("set-cookie2", "b=2"), ("Age", "3")),
        True,
        (("Age", "3"),),
        id="project choice: Set-Cookie never stored",
    ),
    pytest.param(
        H((CC, 'no-cache="X-Secret"'), ("X-Secret", "s"), ("X-Other", "o")),
        False,
        ((CC, 'no-cache="X-Secret"'), ("X-Other", "o")),
        id="9111 5.2.2.4 qualified no-cache fields dropped",
    ),
    pytest.param(
        H((CC, 'private="X-User"'), ("X-User", "u")),
        True,
        ((CC, 'private="X-User"'),),
        id="9111 5.2.2.7 qualified private dropped, shared",
    ),
    pytest.param(
        H((CC, 'private="X-User"'), ("X-User", "u")),
        False,
        ((CC, 'private="X-User"'), ("X-User", "u")),
        id="9111 5.2.2.7 qualified private kept, single-user",
    ),
]


@pytest.mark.parametrize(("response", "shared", "expected"), STORED_HEADERS)
def test_stored_headers(response: MessageHeaders, shared: bool, expected: Pairs) -> None:
    assert stored_headers(response, shared=shared) == expected


# -- Vary (§4.1) --------------------------------------------------------------------------

VARY_KEYS = [
    pytest.param(H(), H(("Accept", "x")), (), id="9111 4.1 no Vary: empty key"),
    pytest.param(
        H(("Vary", "Accept-Encoding, accept-language")),
        H(("Accept-Encoding", "gzip,  br")),
        (("accept-encoding", "gzip, br"), ("accept-language", None)),
        id="9111 4.1 names lower-cased, absent is None, whitespace collapsed",
    ),
    pytest.param(
        H(("Vary", "Accept"), ("Vary", "ACCEPT, Cookie")),
        H(("Accept", "a"), ("Accept", "b"), ("Cookie", "c=1")),
        (("accept", "a, b"), ("cookie", "c=1")),
        id="9111 4.1 several Vary lines, field lines combined",
    ),
    pytest.param(H(("Vary", "*")), H(), None, id="9111 4.1 Vary: * has no key"),
]


@pytest.mark.parametrize(("response", "req", "expected"), VARY_KEYS)
def test_vary_key(
    response: MessageHeaders,
    req: MessageHeaders,
    expected: tuple[tuple[str, str | None], ...] | None,
) -> None:
    assert vary_key(response, req) == expected


STORED_VARY = (("accept-encoding", "gzip, br"), ("cookie", None))
VARY_MATCHES = [
    pytest.param(H(("Accept-Encoding", "gzip, br")), True, id="9111 4.1 same value"),
    pytest.param(
        H(("accept-encoding", "gzip ,br")), True, id="9111 4.1 names ci, commas normalised"
    ),
    pytest.param(
        H(("Accept-Encoding", "gzip"), ("Accept-Encoding", "br")),
        True,
        id="9111 4.1 lines combined",
    ),
    pytest.param(H(("Accept-Encoding", "br, gzip")), False, id="9111 4.1 order is kept"),
    pytest.param(H(("Accept-Encoding", "GZIP, BR")), False, id="9111 4.1 values compared exactly"),
    pytest.param(H(), False, id="9111 4.1 absent does not match present"),
    pytest.param(
        H(("Accept-Encoding", "gzip, br"), ("Cookie", "a=1")),
        False,
        id="9111 4.1 present does not match absent",
    ),
    pytest.param(
        H(("Accept-Encoding", "gzip, br"), ("Cookie", "")),
        False,
        id="9111 4.1 empty is not absent",
    ),
]


@pytest.mark.parametrize(("req", "expected"), VARY_MATCHES)
def test_vary_matches(req: MessageHeaders, expected: bool) -> None:
    assert vary_matches(STORED_VARY, req) is expected


# -- freshness lifetime (§4.2.1, §4.2.2) --------------------------------------------------

LIFETIMES = [
    pytest.param(((CC, "max-age=60"),), 200, False, 60, id="9111 4.2.1 max-age"),
    pytest.param(
        ((CC, "max-age=60, s-maxage=5"),), 200, True, 5, id="9111 4.2.1 s-maxage, shared"
    ),
    pytest.param(
        ((CC, "max-age=60, s-maxage=5"),), 200, False, 60, id="hishel fault: s-maxage, private"
    ),
    pytest.param(
        ((CC, "max-age=60"), ("Expires", date(NOW + 999))),
        200,
        False,
        60,
        id="9111 4.2.1 max-age>Exp",
    ),
    pytest.param((("Expires", date(NOW + 120)),), 200, False, 120, id="9111 4.2.1 Expires - Date"),
    pytest.param(
        (("Expires", date(NOW - 120)),), 200, False, 0, id="9111 4.2.1 Expires in the past"
    ),
    pytest.param((("Expires", "0"),), 200, False, 0, id="9111 5.3 invalid Expires is expired"),
    pytest.param(((CC, "max-age=soon"),), 200, False, 0, id="9111 4.2.1 invalid max-age is stale"),
    pytest.param(
        (("Last-Modified", date(NOW - 1000)),), 200, False, 100, id="9111 4.2.2 heuristic 10 %"
    ),
    pytest.param(
        (("Last-Modified", date(NOW - 100 * DAY)),),
        200,
        False,
        HEURISTIC_CAP,
        id="9111 4.2.2 capped",
    ),
    pytest.param(
        (("Last-Modified", date(NOW + 1000)),), 200, False, 0, id="9111 4.2.2 future Last-Modified"
    ),
    pytest.param(
        (("Last-Modified", date(NOW - 1000)),), 302, False, 0, id="9111 4.2.2 not for a 302"
    ),
    pytest.param(
        ((CC, "public"), ("Last-Modified", date(NOW - 1000))),
        302,
        False,
        100,
        id="9111 4.2.2 a 302 marked public",
    ),
    pytest.param(
        (("Expires", date(NOW + 5)), ("Last-Modified", date(NOW - 1000))),
        200,
        False,
        5,
        id="9111 4.2.2 no heuristic with explicit freshness",
    ),
    pytest.param((), 200, False, 0, id="9111 4.2.2 nothing to go on"),
]


@pytest.mark.parametrize(("pairs", "status", "shared", "expected"), LIFETIMES)
def test_freshness_lifetime(pairs: Pairs, status: int, shared: bool, expected: float) -> None:
    stored = entry(*pairs, status=status)
    assert freshness_lifetime(stored, shared=shared) == expected
    # The same from bare headers, the Date given.
    headers = MessageHeaders(stored.headers)
    assert freshness_lifetime(headers, shared=shared, status=status) == expected


def test_freshness_lifetime_without_date_uses_the_response_time() -> None:
    # RFC 9110 §6.6.1: a missing Date stands for the time the response came.
    stored = entry(("Expires", date(NOW + 30)), dated=False)
    assert freshness_lifetime(stored, shared=False) == 30
    headers = H(("Expires", date(NOW + 30)))
    assert freshness_lifetime(headers, shared=False, response_time=NOW) == 30
    assert freshness_lifetime(headers, shared=False) == 0  # no time to measure from


# -- age (§4.2.3) ------------------------------------------------------------------------


AGES = [
    pytest.param(entry(), NOW, 0, id="9111 4.2.3 just received"),
    pytest.param(entry(), NOW + 30, 30, id="9111 4.2.3 resident_time"),
    pytest.param(entry(("Age", "100")), NOW + 30, 130, id="9111 4.2.3 age_value"),
    pytest.param(entry(("Age", "100"), delay=2), NOW, 102, id="9111 4.2.3 corrected_age_value"),
    pytest.param(
        entry(("Date", date(NOW - 50)), dated=False), NOW, 50, id="9111 4.2.3 apparent_age"
    ),
    pytest.param(entry(("Age", "junk")), NOW + 1, 1, id="9111 5.1 invalid Age ignored"),
    pytest.param(entry(), NOW - 60, 0, id="clock went backwards: no negative age"),
]


@pytest.mark.parametrize(("stored", "now", "expected"), AGES)
def test_current_age(stored: StoredResponse, now: float, expected: float) -> None:
    assert current_age(stored, now) == expected


def test_apparent_age_and_corrected_age_take_the_larger() -> None:
    # §4.2.3: corrected_initial_age = max(apparent_age, corrected_age_value).
    stored = entry(("Date", date(NOW - 50)), ("Age", "10"), dated=False, delay=1)
    assert current_age(stored, NOW + 5) == 55
    stored = entry(("Date", date(NOW - 5)), ("Age", "10"), dated=False, delay=1)
    assert current_age(stored, NOW + 5) == 16


AGE_VALUES = [
    pytest.param(0.0, "0", id="9111 5.1 zero"),
    pytest.param(59.9, "59", id="9111 5.1 whole seconds"),
    pytest.param(-3.0, "0", id="9111 5.1 never negative"),
    pytest.param(1e12, "2147483648", id="9111 1.2.2 capped at 2^31"),
]


@pytest.mark.parametrize(("age", "expected"), AGE_VALUES)
def test_age_value(age: float, expected: str) -> None:
    assert age_value(age) == expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [(500, True), (502, True), (503, True), (504, True), (501, False), (404, False), (200, False)],
    ids=lambda v: f"RFC5861 4 {v}",
)
def test_is_error_status(status: int, expected: bool) -> None:
    assert is_error_status(status) is expected


# -- the reuse decision (§4.2, §4.2.4, §5.2; RFC 5861) ---------------------------------

V, OK, BG, F = Action.VALIDATE, Action.STALE_OK, Action.REVALIDATE_BACKGROUND, Action.FRESH
R = H  # a request's headers
DECISIONS = [
    pytest.param("max-age=60", R(), 30, False, F, False, id="9111 4.2 fresh"),
    pytest.param("max-age=60", R(), 60, False, V, False, id="9111 4.2 age == lifetime is stale"),
    pytest.param("max-age=0", R(), 0, False, V, False, id="9111 4.2 max-age=0 is stale at once"),
    pytest.param(
        "no-cache, max-age=60", R(), 0, False, V, False, id="9111 5.2.2.4 libsoup fault: no-cache"
    ),
    pytest.param(
        'no-cache="Set-Cookie", max-age=60', R(), 0, False, F, False, id="9111 5.2.2.4 qualified"
    ),
    pytest.param(
        "max-age=60", R((CC, "no-cache")), 0, False, V, False, id="9111 5.2.1.4 request no-cache"
    ),
    pytest.param(
        "max-age=60", R(("Pragma", "no-cache")), 0, False, V, False, id="9111 5.4 Pragma"
    ),
    pytest.param(
        "max-age=60", R((CC, "max-age=10")), 30, False, V, False, id="9111 5.2.1.1 too old"
    ),
    pytest.param(
        "max-age=60", R((CC, "max-age=30")), 30, False, F, False, id="9111 5.2.1.1 age == max-age"
    ),
    pytest.param(
        "max-age=60", R((CC, "max-age=x")), 1, False, V, False, id="9111 5.2.1.1 invalid means 0"
    ),
    pytest.param(
        "max-age=60", R((CC, "min-fresh=40")), 30, False, V, False, id="9111 5.2.1.3 min-fresh"
    ),
    pytest.param(
        "max-age=60", R((CC, "min-fresh=30")), 30, False, F, False, id="9111 5.2.1.3 min-fresh met"
    ),
    pytest.param(
        "max-age=60",
        R((CC, "max-stale")),
        1000,
        False,
        OK,
        False,
        id="9111 5.2.1.2 max-stale, any",
    ),
    pytest.param(
        "max-age=60", R((CC, "max-stale=100")), 150, False, OK, False, id="9111 5.2.1.2 within"
    ),
    pytest.param(
        "max-age=60", R((CC, "max-stale=100")), 200, False, V, False, id="9111 5.2.1.2 beyond"
    ),
    pytest.param(
        "max-age=60", R((CC, "max-stale=x")), 61, False, V, False, id="9111 5.2.1.2 invalid"
    ),
    pytest.param(
        "max-age=60",
        R((CC, "max-stale, max-age=10")),
        100,
        False,
        V,
        False,
        id="9111 5.2.1.1 max-age still limits the age with max-stale",
    ),
    pytest.param(
        "max-age=60, must-revalidate",
        R((CC, "max-stale")),
        100,
        False,
        V,
        False,
        id="9111 5.2.2.2 must-revalidate blocks max-stale",
    ),
    pytest.param(
        "max-age=60, proxy-revalidate",
        R((CC, "max-stale")),
        100,
        True,
        V,
        False,
        id="9111 5.2.2.8 proxy-revalidate, shared",
    ),
    pytest.param(
        "max-age=60, proxy-revalidate",
        R((CC, "max-stale")),
        100,
        False,
        OK,
        False,
        id="9111 5.2.2.8 proxy-revalidate ignored, private",
    ),
    pytest.param(
        "s-maxage=60",
        R((CC, "max-stale")),
        100,
        True,
        V,
        False,
        id="9111 5.2.2.10 s-maxage, shared",
    ),
    pytest.param(
        "max-age=60, stale-while-revalidate=100", R(), 100, False, BG, False, id="RFC5861 3 SWR"
    ),
    pytest.param(
        "max-age=60, stale-while-revalidate=100",
        R(),
        200,
        False,
        V,
        False,
        id="RFC5861 3 SWR window passed",
    ),
    pytest.param(
        "max-age=60, stale-while-revalidate=100, must-revalidate",
        R(),
        100,
        False,
        V,
        False,
        id="9111 4.2.4 must-revalidate blocks SWR",
    ),
    pytest.param(
        "max-age=60, stale-while-revalidate=100",
        R((CC, "max-age=1000")),
        100,
        False,
        V,
        False,
        id="9111 5.2.1.1 request max-age wants no stale, SWR blocked",
    ),
    pytest.param(
        "max-age=60, stale-while-revalidate=100",
        R((CC, "no-cache")),
        100,
        False,
        V,
        False,
        id="9111 5.2.1.4 request no-cache blocks SWR",
    ),
    pytest.param(
        "max-age=60, stale-while-revalidate=100",
        R((CC, "max-stale")),
        100,
        False,
        BG,
        False,
        id="RFC5861 3 SWR preferred to plain max-stale",
    ),
    pytest.param(
        "max-age=60, stale-if-error=100", R(), 100, False, V, True, id="RFC5861 4 SIE window"
    ),
    pytest.param(
        "max-age=60, stale-if-error=100", R(), 200, False, V, False, id="RFC5861 4 SIE passed"
    ),
    pytest.param(
        "max-age=60, stale-if-error=100", R(), 10, False, F, True, id="RFC5861 4 SIE when fresh"
    ),
    pytest.param(
        "max-age=60",
        R((CC, "stale-if-error=100")),
        100,
        False,
        V,
        True,
        id="RFC5861 4 request SIE",
    ),
    pytest.param(
        "max-age=60, stale-if-error=100, must-revalidate",
        R(),
        100,
        False,
        V,
        False,
        id="9111 4.2.4 must-revalidate blocks SIE",
    ),
    pytest.param(
        "no-cache, stale-if-error=100",
        R(),
        0,
        False,
        V,
        False,
        id="9111 4.2.4 no-cache blocks SIE",
    ),
    pytest.param(
        "s-maxage=60, stale-if-error=100",
        R(),
        100,
        True,
        V,
        False,
        id="9111 4.2.4 s-maxage blocks SIE, shared",
    ),
]


@pytest.mark.parametrize(
    ("cache_control", "req", "elapsed", "shared", "action", "stale_if_error"), DECISIONS
)
def test_decide(
    cache_control: str,
    req: MessageHeaders,
    elapsed: float,
    shared: bool,
    action: Action,
    stale_if_error: bool,
) -> None:
    stored = entry((CC, cache_control))
    assert decide(stored, req, NOW + elapsed, shared=shared) == Decision(
        action, elapsed, stale_if_error
    )


DECISIONS_BY_HEADERS = [
    pytest.param(
        (("Last-Modified", date(NOW - 1000)),), 50, F, id="9111 4.2.2 heuristic lifetime (100 s)"
    ),
    pytest.param(
        (("Last-Modified", date(NOW - 1000)),), 100, V, id="9111 4.2.2 heuristic lifetime passed"
    ),
    pytest.param(((CC, "max-age=60"), ("Age", "100")), 0, V, id="9111 4.2.3 Age makes it stale"),
    pytest.param((("Expires", "0"),), 0, V, id="9111 5.3 Expires: 0 is stale"),
    pytest.param((("Expires", date(NOW + 60)),), 59, F, id="9111 4.2.1 Expires fresh"),
    pytest.param((), 0, V, id="9111 4.2.2 no freshness at all: validate"),
]


@pytest.mark.parametrize(("pairs", "elapsed", "action"), DECISIONS_BY_HEADERS)
def test_decide_from_other_freshness_sources(pairs: Pairs, elapsed: float, action: Action) -> None:
    assert decide(entry(*pairs), H(), NOW + elapsed, shared=False).action is action


# -- validation (§4.3) -------------------------------------------------------------------

CONDITIONALS = [
    pytest.param((("ETag", '"a"'),), [("If-None-Match", '"a"')], id="9111 4.3.1 strong ETag"),
    pytest.param((("ETag", 'W/"a"'),), [("If-None-Match", 'W/"a"')], id="9111 4.3.1 weak ETag"),
    pytest.param(
        (("Last-Modified", date(NOW - 9)),),
        [("If-Modified-Since", date(NOW - 9))],
        id="9111 4.3.1 Last-Modified",
    ),
    pytest.param(
        (("ETag", '"a"'), ("Last-Modified", date(NOW - 9))),
        [("If-None-Match", '"a"'), ("If-Modified-Since", date(NOW - 9))],
        id="9111 4.3.1 both",
    ),
    pytest.param((("Last-Modified", "yesterday"),), [], id="9111 4.3.1 unreadable date not sent"),
    pytest.param((), [], id="9111 4.3.1 no validator: unconditional"),
]


@pytest.mark.parametrize(("pairs", "expected"), CONDITIONALS)
def test_conditional_headers(pairs: Pairs, expected: list[tuple[str, str]]) -> None:
    assert conditional_headers(entry(*pairs)) == expected


LM = ("Last-Modified", date(NOW - 100))
SELECTS = [
    pytest.param((("ETag", '"a"'),), H(("ETag", '"a"')), False, True, id="9111 4.3.4 same ETag"),
    pytest.param((("ETag", '"a"'),), H(("ETag", '"b"')), False, False, id="9111 4.3.4 other ETag"),
    pytest.param(
        (("ETag", 'W/"a"'),), H(("ETag", '"a"')), False, True, id="hishel #466 weak vs strong"
    ),
    pytest.param((LM,), H(("ETag", '"a"')), False, False, id="9111 4.3.4 ETag, stored has none"),
    pytest.param((LM,), H(LM), False, True, id="9111 4.3.4 same Last-Modified"),
    pytest.param(
        (LM,), H(("Last-Modified", date(NOW))), False, False, id="9111 4.3.4 other Last-Modified"
    ),
    pytest.param((("ETag", '"a"'),), H(LM), False, False, id="9111 4.3.4 LM, stored has none"),
    pytest.param((), H(), False, True, id="9111 4.3.4 neither has a validator"),
    pytest.param(
        (("ETag", '"a"'),), H(), False, False, id="9111 4.3.4 no validator, caller's request"
    ),
    pytest.param((("ETag", '"a"'),), H(), True, True, id="hishel #239 no validator, ours"),
]


@pytest.mark.parametrize(("pairs", "response", "ours", "expected"), SELECTS)
def test_not_modified_selects(
    pairs: Pairs, response: MessageHeaders, ours: bool, expected: bool
) -> None:
    assert not_modified_selects(entry(*pairs, dated=False), response, ours=ours) is expected


MERGES = [
    pytest.param(
        (("Content-Type", "text/plain"), ("Content-Length", "10"), (CC, "max-age=1")),
        H((CC, "max-age=60"), ("Content-Length", "0"), ("X-New", "1")),
        None,
        (
            ("Content-Type", "text/plain"),
            ("Content-Length", "10"),
            (CC, "max-age=60"),
            ("X-New", "1"),
        ),
        id="9111 3.2 hishel fault: 304 keeps Content-Length, replaces in place, adds at the end",
    ),
    pytest.param(
        (("Content-Encoding", "gzip"), ("ETag", '"a"')),
        H(("Content-Encoding", "br"), ("Transfer-Encoding", "chunked"), ("Content-Range", "x")),
        None,
        (("Content-Encoding", "gzip"), ("ETag", '"a"')),
        id="9111 3.2 framing fields of the 304 ignored",
    ),
    pytest.param(
        (("Link", "<a>"), ("Link", "<b>"), ("X", "1")),
        H(("Link", "<c>")),
        None,
        (("Link", "<c>"), ("X", "1")),
        id="9111 3.2 all stored lines of a name replaced",
    ),
    pytest.param(
        (("X", "1"),),
        H(("Set-Cookie", "a=1"), ("Connection", "X-Hop"), ("X-Hop", "h"), ("Keep-Alive", "1")),
        None,
        (("X", "1"),),
        id="9111 3.1 the 304's unstorable fields skipped",
    ),
    pytest.param(
        (("Date", date(NOW - 500)), ("Age", "40"), ("X", "1")),
        H(("Date", date(NOW))),
        None,
        (("Date", date(NOW)), ("X", "1")),
        id="9111 4.2.3 stored Age dropped, Date replaced",
    ),
    pytest.param(
        (("Date", date(NOW - 500)), ("Age", "40")),
        H(("Age", "3")),
        None,
        (("Age", "3"),),
        id="9111 4.2.3 304 Age kept; no Date in the 304: old Date dropped",
    ),
    pytest.param(
        (("Date", date(NOW - 500)),),
        H(),
        NOW,
        (("Date", date(NOW)),),
        id="RFC9110 6.6.1 Date from the response time",
    ),
    pytest.param(
        (("X-A", "1"), ("X-B", "2")),
        H((CC, 'no-cache="X-A"')),
        None,
        (("X-B", "2"), (CC, 'no-cache="X-A"')),
        id="9111 5.2.2.4 new qualified no-cache drops the stored field",
    ),
]


@pytest.mark.parametrize(("pairs", "response", "received", "expected"), MERGES)
def test_merge_not_modified(
    pairs: Pairs, response: MessageHeaders, received: float | None, expected: Pairs
) -> None:
    stored = entry(*pairs, dated=False)
    assert merge_not_modified(stored, response, response_time=received) == expected


ETAG_ENTRY = entry(("ETag", '"a,1"'), ("Last-Modified", date(NOW - 100)))
ANSWERS = [
    pytest.param(R(("If-None-Match", '"a,1"')), True, id="9111 4.3.2 INM matches"),
    pytest.param(R(("If-None-Match", 'W/"a,1"')), True, id="9111 4.3.2 INM weak comparison"),
    pytest.param(
        R(("If-None-Match", '"b", "a,1"')), True, id="9111 4.3.2 INM list, comma in a tag"
    ),
    pytest.param(R(("If-None-Match", '"b"')), False, id="9111 4.3.2 INM differs"),
    pytest.param(R(("If-None-Match", "*")), True, id="9111 4.3.2 INM *"),
    pytest.param(
        R(("If-None-Match", '"b"'), ("If-Modified-Since", date(NOW))),
        False,
        id="RFC9110 13.2.2 INM before IMS",
    ),
    pytest.param(R(("If-Modified-Since", date(NOW))), True, id="9111 4.3.2 IMS after LM"),
    pytest.param(R(("If-Modified-Since", date(NOW - 200))), False, id="9111 4.3.2 IMS before LM"),
    pytest.param(R(("If-Modified-Since", "soon")), False, id="9111 4.3.2 IMS unreadable"),
    pytest.param(
        R(("If-None-Match", '"a,1"'), ("If-Match", '"a,1"')),
        False,
        id="9111 4.3.2 other precondition",
    ),
    pytest.param(R(), False, id="9111 4.3.2 not conditional"),
]


@pytest.mark.parametrize(("req", "expected"), ANSWERS)
def test_answer_conditional(req: MessageHeaders, expected: bool) -> None:
    assert answer_conditional(ETAG_ENTRY, req) is expected
    assert request_is_conditional(req) is (len(req) > 0)


def test_answer_conditional_falls_back_to_date() -> None:
    # §4.3.2: without Last-Modified, the stored Date stands for it.
    stored = entry(received=NOW - 100)
    assert answer_conditional(stored, R(("If-Modified-Since", date(NOW - 50))))
    assert not answer_conditional(stored, R(("If-Modified-Since", date(NOW - 150))))


# -- invalidation (§4.4) ---------------------------------------------------------------------

URI = "http://example.com/items/1?x=1#frag"
KEY = "http://example.com/items/1?x=1"
INVALIDATIONS = [
    pytest.param(
        "POST", 200, H(), [KEY], id="9111 4.4 unsafe method, 2xx: target without fragment"
    ),
    pytest.param("DELETE", 302, H(), [KEY], id="9111 4.4 3xx is not an error"),
    pytest.param("PURGE", 200, H(), [KEY], id="9111 4.4 unknown method is unsafe"),
    pytest.param("POST", 404, H(), [], id="9111 4.4 4xx invalidates nothing"),
    pytest.param("POST", 500, H(), [], id="9111 4.4 5xx invalidates nothing"),
    pytest.param("GET", 200, H(("Location", "/a")), [], id="9111 4.4 safe GET"),
    pytest.param("OPTIONS", 200, H(), [], id="9111 4.4 safe OPTIONS"),
    pytest.param("PROPFIND", 207, H(), [], id="9111 4.4 safe PROPFIND (libsoup)"),
    pytest.param(
        "PUT",
        201,
        H(("Location", "/items/2"), ("Content-Location", "http://EXAMPLE.com:80/items/3")),
        [KEY, "http://example.com/items/2", "http://example.com/items/3"],
        id="9111 4.4 same-origin Location and Content-Location",
    ),
    pytest.param(
        "POST",
        303,
        H(("Location", "http://other.example/x"), ("Content-Location", "https://example.com/")),
        [KEY],
        id="9111 4.4 another origin (host or scheme) never invalidated",
    ),
    pytest.param(
        "POST", 200, H(("Location", "http://")), [KEY], id="9111 4.4 unusable Location ignored"
    ),
    pytest.param(
        "POST", 200, H(("Content-Location", "1?x=1")), [KEY], id="9111 4.4 each key once"
    ),
]


@pytest.mark.parametrize(("method", "status", "response", "expected"), INVALIDATIONS)
def test_invalidation_targets(
    method: str, status: int, response: MessageHeaders, expected: list[str]
) -> None:
    assert invalidation_targets(method, status, URI, response) == expected


def test_primary_key_leaves_out_user_information() -> None:
    # A password in a URI must never reach the cache's index on disk.
    assert primary_key("https://user:secret@example.com/a#b") == "https://example.com/a"
